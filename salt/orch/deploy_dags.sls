{#- Deploy the DAG set (docs/dag-deploy.md):
      salt-run state.orchestrate orch.deploy_dags
      salt-run state.orchestrate orch.deploy_dags pillar='{"source": "salt://dags-next"}'
    `source`: another set than the inventory's (salt://PATH, or a directory
    present on every host); the inventory's distribution decides where the
    releases go (the Airflow hosts, or the NFS servers' export). Validated on
    the first scheduler in the Airflow venv before any host gets it; staged
    as a release named by its content everywhere; switched everywhere
    (one atomic symlink rename per host); then waits until the DAG processors
    report it parsed with zero import errors. The same set again: zero changes. -#}
{%- from 'orch/map.jinja' import orch with context %}
{%- from 'orch/dags.jinja' import deploy with context %}

orch-dags-sync-modules:
  # dag_release is a custom module: the hosts need it before its states run
  salt.state:
    - tgt: {{ (orch.dags.release_hosts + [orch.migrate_host]) | unique | join(',') | json }}
    - tgt_type: list
    - sls: [storage.dag_release_sync]
    - failhard: True
{{ deploy(orch, 'orch-dags-sync-modules') }}
