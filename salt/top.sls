# States by role. A host's roles come from the inventory (pillar `roles`,
# see pillar/inventory.sls); the base role also sets them as the `roles`
# grain so that `salt -G roles:etcd ...` targets work from the master.
base:
  '*':
    - base
    - monitoring.exporters
    - logs.forward
  'roles:etcd':
    - match: pillar
    - etcd
  'roles:postgres':
    - match: pillar
    - postgres
  'roles:rabbitmq':
    - match: pillar
    - rabbitmq
  'roles:haproxy':
    - match: pillar
    - haproxy
  'roles:nfs':
    - match: pillar
    - storage.nfs
  'roles:ftp':
    - match: pillar
    - ftp
  'roles:card_target':
    - match: pillar
    - card_target
  'roles:scheduler':
    - match: pillar
    - storage.dags
    - airflow.scheduler
  'roles:webserver':
    - match: pillar
    - storage.dags
    - airflow.webserver
    - logs.task_log_copies
  'roles:dag_processor':
    - match: pillar
    - storage.dags
    - airflow.dag_processor
  'roles:worker':
    - match: pillar
    - storage.dags
    - airflow.worker
  'roles:flower':
    - match: pillar
    - airflow.flower
  'roles:triggerer':
    - match: pillar
    - storage.dags
    - airflow.triggerer
  'roles:ldap':
    - match: pillar
    - ldap
  'roles:logs':
    - match: pillar
    - logs
  'roles:monitoring':
    - match: pillar
    - monitoring
  # the Salt master's host: salt-api for the autoscaling webhook (only with a
  # standby worker host in the inventory)
  'roles:ca':
    - match: pillar
    - autoscale
  'roles:backup':
    - match: pillar
    - backup
    - backup.stanza
