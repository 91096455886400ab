{#- Day 2: move the Patroni leader (maintenance of its host), then prove the
    cluster and Airflow are healthy.
    salt-run state.orchestrate orch.patroni_switchover pillar='{"candidate": "db2"}' -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set via = orch.roles.postgres[0] %}

orch-patroni-switchover:
  salt.function:
    - name: patroni.switchover
    - tgt: {{ via | json }}
    - kwarg:
        candidate: {{ salt['pillar.get']('candidate', '') | json }}
    - failhard: True

orch-patroni-healthy:
  salt.state:
    - tgt: {{ via | json }}
    - sls: [postgres]
    - failhard: True
    - require:
      - salt: orch-patroni-switchover

orch-airflow-healthy:
  salt.function:
    - name: airflow_ha.wait_healthy
    - tgt: {{ orch.migrate_host | json }}
    - kwarg:
        url: {{ orch.api_url | json }}
        ca_file: {{ orch.ca_file | json }}
        major: {{ orch.airflow_major }}
        timeout: 300
    - require:
      - salt: orch-patroni-healthy
