{#- Day 2: restart every Airflow component host by host (e.g. after an
    upgrade: set pillar airflow:version first; the highstate installs it and
    `airflow db migrate` runs once before the restarts).
    salt-run state.orchestrate orch.airflow_rolling_restart -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set airflow_hosts = [] %}
{%- for role in ['scheduler', 'webserver', 'dag_processor', 'worker', 'triggerer', 'flower'] %}
{%-   for host in orch.roles.get(role, []) if host not in airflow_hosts %}
{%-     do airflow_hosts.append(host) %}
{%-   endfor %}
{%- endfor %}

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

{%- for host in airflow_hosts %}

orch-airflow-restart-{{ host }}:
  # one host at a time; the next waits until Airflow answers healthy again
  salt.function:
    - name: cmd.run
    - tgt: {{ host | json }}
    - arg:
      - systemctl restart 'airflow-*.service'
    - failhard: True
    - require:
      - salt: {{ 'orch-airflow-db-migrated' if loop.first else 'orch-airflow-healthy-' ~ loop.previtem }}

orch-airflow-healthy-{{ host }}:
  salt.function:
    - name: airflow_ha.wait_healthy
    - tgt: {{ orch.migrate_host | json }}
    - kwarg:
        url: {{ orch.api_url | json }}
        ca_file: {{ orch.ca_file | json }}
        major: {{ orch.airflow_major }}
        timeout: 300
    - failhard: True
    - require:
      - salt: orch-airflow-restart-{{ host }}
{%- endfor %}
