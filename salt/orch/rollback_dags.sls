{#- Roll the DAG folder back in one command (docs/dag-deploy.md):
      salt-run state.orchestrate orch.rollback_dags                 # to the previous release
      salt-run state.orchestrate orch.rollback_dags pillar='{"release": "0123456789abcdef"}'
    First every release host checks that the target release is staged there
    (and, for `previous`, which one that is); any host without it refuses the
    rollback before a single host switched. Then every host switches (one
    atomic symlink rename each) and the run waits until the DAG processors
    report the release parsed with zero import errors. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- from 'orch/dags.jinja' import step with context %}

orch-dags-sync-modules:
  salt.state:
    - tgt: {{ (orch.dags.release_hosts + [orch.migrate_host]) | unique | join(',') | json }}
    - tgt_type: list
    - sls: [storage.dag_release_sync]
    - failhard: True
{{ step('orch-dags-rollback-available', orch.dags.release_hosts, 'available', orch, 'orch-dags-sync-modules', {'release': orch.dags.release}) }}
{{ step('orch-dags-rolled-back', orch.dags.release_hosts, 'switch', orch, 'orch-dags-rollback-available', {'release': orch.dags.release}) }}
{{ step('orch-dags-parsed', orch.migrate_host, 'parsed', orch, 'orch-dags-rolled-back', {'where': 'local'}) }}
