{#- Point-in-time recovery of the whole cluster to pillar target_time (with
    a zone), from the pgBackRest repository:
    salt-run state.orchestrate orch.restore pillar='{"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"}'
    Refuses, before anything stops, without confirm: restore, with a target
    outside the backups' range or an unreadable repository. Then: Airflow
    stopped (no writer), Patroni stopped on every member, the cluster removed
    from etcd, the replicas' data directories wiped, pgbackrest restore
    --type=time --delta on one member (pillar restore_member, default the
    first), recovery to the target and promotion, Patroni started there (it
    adopts the data directory as a new cluster), the replicas cloned from it,
    archiving checked, Airflow started, the smoke DAG run. docs/backup.md. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set b = orch.backup %}
{%- set target_time = salt['pillar.get']('target_time', '') %}
{%- set confirm = salt['pillar.get']('confirm', '') %}
{%- set members = b.get('members', []) %}
{%- set restore_member = salt['pillar.get']('restore_member', members[0] if members else '') %}
{%- set replicas = members | reject('equalto', restore_member) | list %}
{%- set refusal = [] %}
{%- if not b %}
{%-   do refusal.append("no minion has the backup role (and a postgres member) in its pillar: there is no repository to restore from") %}
{%- elif not target_time %}
{%-   do refusal.append('pillar target_time is missing: give the time to recover to, with a zone, e.g. pillar=\'{"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"}\'') %}
{%- elif confirm != 'restore' %}
{%-   do refusal.append("a point-in-time recovery stops Airflow and every PostgreSQL member and replaces the whole database with its state at " ~ target_time ~ ": confirm with pillar confirm: restore") %}
{%- elif restore_member not in members %}
{%-   do refusal.append("pillar restore_member " ~ restore_member ~ " is not a postgres member (" ~ members | join(', ') ~ ")") %}
{%- endif %}
{%- if refusal %}

orch-restore-refused:
  test.fail_without_changes:
    - name: {{ ('refusing to restore: ' ~ refusal[0]) | json }}
    - failhard: True
{%- else %}

orch-restore-preflight:
  # the repository answers, the stanza is ok, target_time is inside the backups' range; then
  # pgbackrest check switches the leader's WAL so the archive holds every commit up to now
  salt.function:
    - name: pgbackrest.restore_preflight
    - tgt: {{ b.host | json }}
    - kwarg:
        stanza: {{ b.stanza | json }}
        target_time: {{ target_time | string | json }}
        confirm: {{ confirm | json }}
        config: {{ b.config | json }}
    - failhard: True

orch-restore-airflow-stopped:
  # every writer: schedulers, api-servers, DAG processors, triggerers, workers (and Flower)
  salt.function:
    - name: cmd.run
    - tgt: {{ orch.airflow_hosts | join(',') | json }}
    - tgt_type: list
    - arg:
      - systemctl stop 'airflow-*.service'
    - failhard: True
    - require:
      - salt: orch-restore-preflight

orch-restore-patroni-stopped:
  salt.function:
    - name: service.stop
    - tgt: {{ members | join(',') | json }}
    - tgt_type: list
    - arg:
      - {{ b.patroni_service | json }}
    - failhard: True
    - require:
      - salt: orch-restore-airflow-stopped

orch-restore-removed-from-dcs:
  salt.function:
    - name: patroni.remove_cluster
    - tgt: {{ restore_member | json }}
    - failhard: True
    - require:
      - salt: orch-restore-patroni-stopped
{%- if replicas %}

orch-restore-replicas-wiped:
  # they are cloned from the restored leader (everything after the target
  # stays in the repository's WAL archive of the old timeline)
  salt.function:
    - name: pgbackrest.wipe_data_dir
    - tgt: {{ replicas | join(',') | json }}
    - tgt_type: list
    - failhard: True
    - require:
      - salt: orch-restore-removed-from-dcs
{%- endif %}

orch-restore-pgbackrest-restore:
  salt.function:
    - name: pgbackrest.restore
    - tgt: {{ restore_member | json }}
    - kwarg:
        stanza: {{ b.stanza | json }}
        target_time: {{ target_time | string | json }}
        target_action: promote
        delta: True
        timeout: {{ b.timeout | int }}
    - failhard: True
    - require:
      - salt: orch-restore-removed-from-dcs
{%- if replicas %}
      - salt: orch-restore-replicas-wiped
{%- endif %}

orch-restore-recovered:
  # PostgreSQL by itself (socket only) replays the archive up to the target and
  # promotes; the recovery settings are reset and it stops cleanly
  salt.function:
    - name: pgbackrest.recover_standalone
    - tgt: {{ restore_member | json }}
    - kwarg:
        port: {{ b.port | int }}
        timeout: {{ b.timeout | int }}
    - failhard: True
    - require:
      - salt: orch-restore-pgbackrest-restore

orch-restore-leader-started:
  salt.function:
    - name: service.start
    - tgt: {{ restore_member | json }}
    - arg:
      - {{ b.patroni_service | json }}
    - failhard: True
    - require:
      - salt: orch-restore-recovered

orch-restore-leader-running:
  salt.function:
    - name: state.single
    - tgt: {{ restore_member | json }}
    - arg:
      - patroni.cluster_healthy
      - restored leader
    - kwarg:
        members: 1
        timeout: 600
    - failhard: True
    - require:
      - salt: orch-restore-leader-started
{%- if replicas %}

orch-restore-replicas-started:
  salt.function:
    - name: service.start
    - tgt: {{ replicas | join(',') | json }}
    - tgt_type: list
    - arg:
      - {{ b.patroni_service | json }}
    - failhard: True
    - require:
      - salt: orch-restore-leader-running
{%- endif %}

orch-restore-postgres-healthy:
  # every member streaming again, the dynamic configuration as pillar says
  salt.state:
    - tgt: {{ members | join(',') | json }}
    - tgt_type: list
    - sls: [postgres]
    - failhard: True
    - require:
      - salt: orch-restore-leader-running
{%- if replicas %}
      - salt: orch-restore-replicas-started
{%- endif %}

orch-restore-archiving-checked:
  salt.function:
    - name: pgbackrest.check
    - tgt: {{ b.host | json }}
    - kwarg:
        stanza: {{ b.stanza | json }}
        config: {{ b.config | json }}
    - failhard: True
    - require:
      - salt: orch-restore-postgres-healthy

orch-restore-airflow-started:
  salt.state:
    - tgt: {{ orch.airflow_hosts | join(',') | json }}
    - tgt_type: list
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-restore-archiving-checked

orch-restore-smoke-dag:
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
      - salt: orch-restore-airflow-started
{%- endif %}
