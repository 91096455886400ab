{#- Is every host ready for the bring-up? salt-run state.orchestrate orch.preflight
    (also the first step of orch.bringup). Each minion checks its clock, RAM,
    CPUs and free disk against pillar orch:preflight:minimums, that every
    inventory name resolves to its inventory IP, that its roles' ports are
    free or held by their own services, and that its id is an inventory host;
    the run fails naming each host's problems and their fixes, having changed
    nothing (docs/operations.md). -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- from 'orch/preflight.jinja' import preflight with context %}

orch-sync-modules:
  # the preflight module on every minion (Salt's cache only)
  salt.function:
    - name: saltutil.sync_all
    - tgt: '*'
    - failhard: True

{{ preflight(orch, 'orch-sync-modules') }}
