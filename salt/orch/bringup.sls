{#- Bare hosts to a working HA Airflow: salt-run state.orchestrate orch.bringup
    Each step waits on health through the custom states its SLS ends with
    (etcd /health, patroni.cluster_healthy, rabbitmq_ha.cluster_healthy...),
    never on sleeps, and a failed step stops the run (failhard), naming the
    host and the state that failed. -#}
{%- from 'orch/map.jinja' import orch with context %}

orch-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: '*'
    - failhard: True

orch-base:
  salt.state:
    - tgt: '*'
    - sls: [base]
    - failhard: True
    - require:
      - salt: orch-sync-modules

{%- for step in orch.steps %}

orch-{{ step.name }}:
  salt.state:
    - tgt: {{ ('roles:' ~ step.role) | json }}
    - tgt_type: pillar
    - sls: {{ step.sls | json }}
{%-   if step.get('batch') %}
    - batch: {{ step.batch }}
{%-   endif %}
    - failhard: True
    - require:
      - salt: {{ 'orch-' ~ (loop.previtem.name if not loop.first else 'base') }}
{%- endfor %}

orch-airflow-db-migrated:
  # exactly once, from one host
  salt.state:
    - tgt: {{ orch.migrate_host | json }}
    - sls: [airflow.migrate]
    - failhard: True
    - require:
      - salt: orch-{{ orch.steps[-1].name }}

orch-highstate:
  # every Airflow component, and anything a role step above did not cover
  salt.state:
    - tgt: '*'
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-airflow-db-migrated

orch-smoke-dag:
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
      - salt: orch-highstate
