{#- Day 2: a new Celery worker. Add the host to the inventory (roles:
    [worker]), accept its key, then:
    salt-run state.orchestrate orch.add_worker pillar='{"host": "worker2"}'
    Every host re-reads the inventory (hosts file, firewall sources), then the
    new host gets its highstate and the cluster proves it with the smoke DAG. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set host = salt['pillar.get']('host') %}
{%- if not host %}
{%-   do salt['test.exception']("orch.add_worker: pass pillar='{\"host\": \"NAME\"}' (a host of the inventory with the worker role)") %}
{%- endif %}

orch-add-worker-refresh:
  salt.function:
    - name: saltutil.refresh_pillar
    - tgt: '*'

orch-add-worker-base-everywhere:
  # hosts files and firewall sources now include the new host
  salt.state:
    - tgt: '*'
    - sls: [base]
    - failhard: True
    - require:
      - salt: orch-add-worker-refresh

orch-add-worker-highstate:
  salt.state:
    - tgt: {{ host | json }}
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-add-worker-base-everywhere

orch-add-worker-smoke:
  salt.function:
    - name: airflow_ha.smoke_test
    - tgt: {{ orch.migrate_host | json }}
    - kwarg:
        url: {{ orch.api_url | json }}
        ca_file: {{ orch.ca_file | json }}
        major: {{ orch.airflow_major }}
    - require:
      - salt: orch-add-worker-highstate
