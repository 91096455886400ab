# The custom modules and states (dag_release among them) on this host before
# orch.deploy_dags or orch.rollback_dags runs their states (and orch.airflow_upgrade
# its airflow_ha.venv_switched and pgbackrest states); no change when in sync.
storage-dag-release-modules-synced:
  saltutil.sync_all:
    - refresh: True
