{#- Day 2: restart every Airflow component host by host (a new Airflow
    release: orch.airflow_upgrade, which switches each host's venv in its
    turn; here a changed airflow:version would switch every host's venv
    symlink at once in the first step, `airflow db migrate` running once
    before the restarts). Each host's Celery
    worker is drained first (airflow:drain_timeout); after its restart the
    next host waits until this one's scheduler/triggerer/dag_processor jobs
    are alive, its worker answers and consumes, and Airflow is healthy
    through the VIP (salt/orch/gates.jinja, docs/operations.md).
    salt-run state.orchestrate orch.airflow_rolling_restart -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- import 'orch/gates.jinja' as gates with context %}
{%- set airflow_hosts = orch.airflow_hosts %}

orch-airflow-installed:
  salt.state:
    - tgt: {{ airflow_hosts | join(',') | json }}
    - tgt_type: list
    - sls: [airflow.config]
    - failhard: True

orch-airflow-db-migrated:
  salt.state:
    - tgt: {{ orch.migrate_host | json }}
    - sls: [airflow.migrate]
    - failhard: True
    - require:
      - salt: orch-airflow-installed
{%- set ns = namespace(prev='orch-airflow-db-migrated') %}

{%- for host in airflow_hosts %}
{{ gates.drain(orch, ns, 'orch-airflow', host) }}

orch-airflow-restart-{{ host }}:
  # one host at a time; the next waits for this one's gates
  salt.function:
    - name: cmd.run
    - tgt: {{ host | json }}
    - arg:
{%-   if host in orch.standby %}
      # a standby worker host (issue 20): only what runs (the autoscaling decides whether its worker does)
      - {{ ('systemctl try-restart ' ~ orch.airflow_units[host] | join(' ')) | json }}
{%-   else %}
      # this host's component units by name (orch/map.jinja): not the housekeeping services
      - {{ ('systemctl restart ' ~ orch.airflow_units[host] | join(' ')) | json }}
{%-   endif %}
    - failhard: True
    - require:
      - salt: {{ ns.prev }}
{%-   set ns.prev = 'orch-airflow-restart-' ~ host %}
{{ gates.gates(orch, ns, 'orch-airflow', host) }}
{%- endfor %}
