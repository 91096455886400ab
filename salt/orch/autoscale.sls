{#- Autoscaling on queue depth (issue 20, docs/operations.md#autoscaling):
    the reactor salt/reactor/autoscale.sls runs it on a firing
    CeleryBacklogHigh (pillar action: up) or CeleryBacklogIdle (action:
    down) that it has checked (bearer token, payload). By hand:
    salt-run state.orchestrate orch.autoscale pillar='{"action": "up"}'
    up: on every standby worker host (inventory `standby: true`)
    airflow_ha.standby_up starts airflow-worker (service.start); down:
    airflow_ha.standby_down drains it (airflow_ha.drain_worker,
    airflow:drain_timeout) and stops it. A worker already in that state is
    left alone, its host's return saying so; the functions refuse a host
    that is no standby. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- set action = salt['pillar.get']('action', '') %}
{%- set refusal = [] %}
{%- if action not in ['up', 'down'] %}
{%-   do refusal.append('pillar action is ' ~ (action | json) ~ ': give up (start the standby workers) or down (drain and stop them), e.g. pillar=\'{"action": "up"}\'') %}
{%- endif %}
{%- if refusal %}

orch-autoscale-refused:
  test.fail_without_changes:
    - name: {{ ('orch.autoscale refused: ' ~ refusal[0]) | json }}
    - failhard: True
{%- elif not orch.standby %}

orch-autoscale-no-standby-host:
  test.succeed_without_changes:
    - name: "orch.autoscale: no inventory host has standby: true: nothing to scale"
{%- elif action == 'up' %}

orch-autoscale-up:
  # each standby host's airflow-worker started, unless it runs (its return says so)
  salt.function:
    - name: airflow_ha.standby_up
    - tgt: {{ orch.standby | join(',') | json }}
    - tgt_type: list
    - expect_minions: True
{%- else %}

orch-autoscale-down:
  # each standby host's worker drained (its tasks finish, the others take new ones), then stopped
  salt.function:
    - name: airflow_ha.standby_down
    - tgt: {{ orch.standby | join(',') | json }}
    - tgt_type: list
    - expect_minions: True
    - kwarg:
        timeout: {{ orch.drain_timeout | int }}
    - timeout: {{ orch.drain_timeout | int + 120 }}
{%- endif %}
