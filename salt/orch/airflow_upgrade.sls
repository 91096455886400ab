{#- Day 2: Airflow to the release pillar airflow:version and
    airflow:requirements choose (the pinned file salt://airflow/files/<requirements>),
    without downtime: the Helm chart's migrate job and rolling update on VMs.
    salt-run state.orchestrate orch.airflow_upgrade
    First, with nothing changed: the pin file exists and pins that version,
    every Airflow host (and the backup host) answers, the cluster is healthy
    (orch/gates.jinja prechecks: Patroni, RabbitMQ, etcd, Airflow through the
    VIP, every worker). Then: a full pgBackRest backup annotated
    airflow-upgrade=<version> (once per version; pillar skip_backup: true
    without one); the release's venv <home>/venv-<version> built on every
    Airflow host beside the running one (airflow.venv; nothing restarts);
    `airflow db migrate` once from it (airflow.migrate on the first
    scheduler); then one host at a time: its worker drained, its units
    stopped, the symlink <home>/venv switched, its units started
    (airflow.venv_switch), its gates; last the smoke DAG. Every step is
    failhard: the first host that does not come back stops the rollout, the
    step's ID and message naming it. A second run: no change (the venvs
    built, the schema current, every symlink switched, the backup there);
    only the checks run. docs/operations.md#airflow-upgrade-orchairflow_upgrade -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- import 'orch/gates.jinja' as gates with context %}
{%- set release = orch.airflow_release %}
{%- set airflow_hosts = orch.airflow_hosts %}
{%- set skip_backup = salt['pillar.get']('skip_backup', false) | to_bool %}
{%- set pin_url = 'salt://airflow/files/' ~ release.requirements %}
{%- set pins = salt['cp.get_file_str'](pin_url) %}
{%- set errors = [] %}
{%- if not pins %}
{%-   do errors.append('the pin file ' ~ pin_url ~ ' (pillar airflow:requirements) is missing on the master: '
                       ~ 'run tools/pin_airflow.sh ' ~ release.version.split('.')[0] ~ ' ' ~ release.version
                       ~ ' (requirements/airflow-' ~ release.version ~ '.txt, linked into salt/airflow/files/) '
                       ~ 'or set airflow:requirements to the file pinning apache-airflow==' ~ release.version) %}
{%- elif ('apache-airflow==' ~ release.version) not in (pins.splitlines() | map('trim') | list) %}
{%-   do errors.append('the pin file ' ~ pin_url ~ ' pins no apache-airflow==' ~ release.version
                       ~ ' (pillar airflow:version): set airflow:version and airflow:requirements to one release') %}
{%- endif %}
{%- if not orch.backup and not skip_backup %}
{%-   do errors.append('no host has the backup role (and a postgres member): no backup before the migration; '
                       ~ "add one, or run with pillar='{\"skip_backup\": true}'") %}
{%- endif %}
{%- set target_pillar = {'airflow': {'version': release.version, 'requirements': release.requirements}} %}
{%- set build_pillar = {'airflow': dict(target_pillar.airflow, switch_venv=False)} %}

{%- if errors %}

orch-upgrade-refused:
  test.fail_without_changes:
    - name: {{ ('orch.airflow_upgrade refused, nothing changed: ' ~ '; '.join(errors)) | json }}
    - failhard: True
{%- else %}

orch-upgrade-plan:
  test.succeed_without_changes:
    - name: {{ ('Airflow ' ~ release.version ~ ' (' ~ pin_url ~ '): '
               ~ ('no backup (skip_backup), ' if skip_backup or not orch.backup else 'a full backup on ' ~ orch.backup.host ~ ', ')
               ~ 'its venv on ' ~ airflow_hosts | join(', ') ~ ', airflow db migrate on ' ~ orch.migrate_host
               ~ ', then one host at a time: ' ~ airflow_hosts | join(', ') ~ ', the smoke DAG') | json }}

orch-upgrade-minions-up:
  # every host the run acts on answers before anything changes
  salt.function:
    - name: test.ping
    - tgt: {{ (airflow_hosts + ([orch.backup.host] if orch.backup and not skip_backup else [])) | unique | join(',') | json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
    - require:
      - test: orch-upgrade-plan
{%- set ns = namespace(prev='orch-upgrade-minions-up') %}
{{ gates.prechecks(orch, ns, 'orch-upgrade', orch.reboot.max_lag_mb) }}

orch-upgrade-modules-synced:
  # the custom modules and states of this tree (airflow_ha.venv_switched, pgbackrest's annotation)
  salt.state:
    - tgt: {{ (airflow_hosts + ([orch.backup.host] if orch.backup and not skip_backup else [])) | unique | join(',') | json }}
    - tgt_type: list
    - sls: [storage.dag_release_sync]
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%- set ns.prev = 'orch-upgrade-modules-synced' %}
{%- if orch.backup and not skip_backup %}

orch-upgrade-backup:
  # a full backup (from the Patroni leader) before the migration, once per release
  salt.state:
    - tgt: {{ orch.backup.host | json }}
    - sls: [backup.full]
    - pillar: {{ {'backup_annotation': {'airflow-upgrade': release.version}} | json }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-   set ns.prev = 'orch-upgrade-backup' %}
{%- endif %}

orch-upgrade-venvs:
  # <home>/venv-<version> beside the running venv on every Airflow host: nothing switched or restarted
  salt.state:
    - tgt: {{ airflow_hosts | join(',') | json }}
    - tgt_type: list
    - sls: [airflow.venv]
    - pillar: {{ build_pillar | json }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}

orch-upgrade-db-migrated:
  # `airflow db migrate` once, from the new venv, the units still on the old one
  salt.state:
    - tgt: {{ orch.migrate_host | json }}
    - sls: [airflow.migrate]
    - pillar: {{ build_pillar | json }}
    - failhard: True
    - require:
      - salt: orch-upgrade-venvs
{%- set ns.prev = 'orch-upgrade-db-migrated' %}

{%- for host in airflow_hosts %}

orch-upgrade-switch-{{ host }}:
  # worker drained, units stopped, symlink switched, units started; nothing on a host already switched
  salt.state:
    - tgt: {{ host | json }}
    - sls: [airflow.venv_switch]
    - pillar: {{ target_pillar | json }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-   set ns.prev = 'orch-upgrade-switch-' ~ host %}
{{ gates.gates(orch, ns, 'orch-upgrade', host) }}
{%- endfor %}

orch-upgrade-smoke-dag:
  salt.function:
    - name: airflow_ha.smoke_test
    - tgt: {{ orch.migrate_host | json }}
    - kwarg:
        url: {{ orch.api_url | json }}
        ca_file: {{ orch.ca_file | json }}
        major: {{ orch.airflow_major }}
        timeout: {{ orch.smoke_timeout }}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%- endif %}
