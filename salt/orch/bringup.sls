{#- Bare hosts to a working HA Airflow: salt-run state.orchestrate orch.bringup
    First orch.preflight's checks (nothing changed when a host is not ready).
    Each step waits on health through the custom states its SLS ends with
    (etcd /health, patroni.cluster_healthy, rabbitmq_ha.cluster_healthy...),
    never on sleeps, and a failed step stops the run (failhard), naming the
    host and the state that failed. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- from 'orch/dags.jinja' import deploy, step with context %}
{%- from 'orch/preflight.jinja' import preflight with context %}

orch-sync-modules:
  salt.function:
    - name: saltutil.sync_all
    - tgt: '*'
    - failhard: True

# before anything changes: every host ready (orch.preflight, docs/operations.md)
{{ preflight(orch, 'orch-sync-modules') }}

orch-base:
  # with the base role, every host's log forwarding (docs/logs.md), so the
  # bring-up itself is in the central logs
  salt.state:
    - tgt: '*'
    - sls: [base, logs.forward]
    - failhard: True
    - require:
      - salt: orch-preflight

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

# the DAG set, validated on the first scheduler (its venv and env file are
# there since airflow-config), staged and switched on every release host
# before any DAG processor starts (docs/dag-deploy.md)
{{ deploy(orch, 'orch-airflow-db-migrated', parsed=False) }}

orch-highstate:
  # every Airflow component, and anything a role step above did not cover
  salt.state:
    - tgt: '*'
    - highstate: True
    - failhard: True
    - require:
      - salt: orch-dags-switched

{{ step('orch-dags-parsed', orch.migrate_host, 'parsed', orch, 'orch-highstate') }}

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
      - salt: orch-dags-parsed
