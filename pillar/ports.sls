# The one port map: which role listens on which port, and which roles may
# reach it. `from_networks: [admin]` stands for pillar base:firewall:admin_networks
# (the inventory network when empty). The base role turns it into firewall rules (nftables on Debian,
# firewalld on RedHat) for the roles each host has; `from_roles: [all]` means
# every host of the inventory, `from_networks` adds CIDRs (admin networks).
# The flows are those of the seeds' port table (seed 000) plus what HA needs.
# `tls: true` / `tls: false`: the entry holds only with / without pillar
# tls:enabled (RabbitMQ's AMQPS and https management ports replace the plain ones,
# HAProxy adds 443); entries without `tls` always hold.
# `from_queues: [card]`: the worker hosts whose inventory `queues` hold one of
# these Celery queues (a worker pool). `except_roles`: the entry does not hold
# on hosts having one of these roles (an entry of that role says who comes in).
# `keys`: the pillar settings (area:key) that name this port; every area's
# defaults.yaml holds the entry's port (tests/unit/test_one_source.py). A pillar
# value of one of them moves the firewall rule with it (ha_inventory.port_map),
# unless the entry is `scraped: true` (a Prometheus target of
# ha_monitoring.EXPORTERS, which do not follow pillar) or two of its keys
# disagree: then the render fails naming the key (ha_inventory.validate).
ports:
  - {role: all, port: 22, proto: tcp, from_roles: [all], from_networks: [admin], except_roles: [card_target], purpose: "ssh: admin, salt-ssh"}
  # the card target: the admin networks (admin, salt-ssh) and the card pool's workers (the card DAG's SFTP and
  # card-process-batch) only; its key is accepted from those workers only too (salt/card_target)
  - {role: card_target, port: 22, proto: tcp, from_queues: [card], from_networks: [admin], purpose: "ssh: admin, salt-ssh, the card pool's workers to the card target"}
  # pgBackRest over SSH (backup:transport ssh), also where a member or the repository is the card target
  - {role: postgres, port: 22, proto: tcp, from_roles: [backup], purpose: "ssh: pgBackRest from the repository host (transport ssh)"}
  - {role: backup, port: 22, proto: tcp, from_roles: [postgres], purpose: "ssh: pgBackRest from the members (transport ssh)"}
  - {role: all, port: 9100, proto: tcp, from_roles: [monitoring], purpose: node_exporter, scraped: true}
  - {role: all, port: 4505-4506, proto: tcp, from_roles: [all], purpose: "Salt master publish/return, on the host that runs it"}
  - {role: etcd, port: 2379, proto: tcp, from_roles: [etcd, postgres, monitoring], purpose: etcd clients (Patroni), keys: [etcd:client_port], scraped: true}
  - {role: etcd, port: 2380, proto: tcp, from_roles: [etcd], purpose: etcd peers, keys: [etcd:peer_port]}
  - {role: postgres, port: 5432, proto: tcp, from_roles: [postgres, haproxy, monitoring], purpose: "PostgreSQL: replication, HAProxy backends", keys: [postgres:port]}
  - {role: postgres, port: 9187, proto: tcp, from_roles: [monitoring], purpose: postgres_exporter, scraped: true}
  - {role: postgres, port: 8008, proto: tcp, from_roles: [postgres, haproxy, monitoring], purpose: Patroni REST API (HAProxy health checks), keys: [postgres:restapi_port], scraped: true}
  - {role: postgres, port: 8432, proto: tcp, tls: true, from_roles: [backup], purpose: "pgBackRest TLS server on the members (backups and checks from the repository host)", keys: [backup:tls_port]}
  - {role: backup, port: 8432, proto: tcp, tls: true, from_roles: [postgres], purpose: "pgBackRest TLS server on the repository (WAL archive-push/get, restores)", keys: [backup:tls_port]}
  - {role: rabbitmq, port: 5672, proto: tcp, tls: false, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, rabbitmq], purpose: AMQP, keys: [rabbitmq:amqp_port, airflow:amqp_port]}
  - {role: rabbitmq, port: 5671, proto: tcp, tls: true, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, rabbitmq], purpose: AMQP over TLS, keys: [rabbitmq:amqps_port, airflow:amqps_port]}
  - {role: rabbitmq, port: 15672, proto: tcp, tls: false, from_roles: [haproxy, monitoring, rabbitmq], purpose: RabbitMQ management, keys: [rabbitmq:management_port]}
  - {role: rabbitmq, port: 15671, proto: tcp, tls: true, from_roles: [haproxy, monitoring, rabbitmq], purpose: RabbitMQ management over https, keys: [rabbitmq:management_tls_port]}
  - {role: rabbitmq, port: 15692, proto: tcp, from_roles: [monitoring], purpose: RabbitMQ Prometheus plugin, keys: [rabbitmq:prometheus_port], scraped: true}
  - {role: rabbitmq, port: 4369, proto: tcp, from_roles: [rabbitmq], purpose: epmd}
  - {role: rabbitmq, port: 25672, proto: tcp, from_roles: [rabbitmq], purpose: Erlang distribution, keys: [rabbitmq:dist_port]}
  - {role: rabbitmq, port: 35672-35682, proto: tcp, from_roles: [rabbitmq], purpose: RabbitMQ CLI tools}
  - {role: haproxy, port: 5000, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, monitoring], purpose: DB read/write (Patroni leader), keys: [haproxy:frontends:postgres_rw, airflow:db_port]}
  - {role: haproxy, port: 6000, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, monitoring], purpose: DB read-only (replicas), keys: [haproxy:frontends:postgres_ro]}
  - {role: haproxy, port: 7000, proto: tcp, from_roles: [monitoring, haproxy], from_networks: [admin], purpose: HAProxy stats and exporter, keys: [haproxy:frontends:stats], scraped: true}
  - {role: haproxy, port: 80, proto: tcp, from_roles: [all], from_networks: [admin], purpose: "Airflow UI/API through HAProxy (with TLS: redirect to 443)", keys: [haproxy:frontends:airflow, airflow:public_port]}
  - {role: haproxy, port: 443, proto: tcp, tls: true, from_roles: [all], from_networks: [admin], purpose: Airflow UI/API through HAProxy over https, keys: [haproxy:frontends:airflow_tls, airflow:public_tls_port]}
  - {role: haproxy, port: 5555, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Flower through HAProxy (https with TLS), keys: [haproxy:frontends:flower]}
  - {role: haproxy, port: vrrp, proto: vrrp, from_roles: [haproxy], purpose: keepalived VRRP}
  - {role: webserver, port: 8080, proto: tcp, from_roles: [haproxy, monitoring], purpose: Airflow webserver / api-server, keys: [airflow:api_port]}
  - {role: scheduler, port: 8974, proto: tcp, from_roles: [monitoring], purpose: scheduler health check server, keys: [airflow:scheduler_health_port]}
  - {role: worker, port: 8793, proto: tcp, from_roles: [webserver, scheduler, monitoring], purpose: "worker log server (monitoring: the worker's liveness probe)", keys: [airflow:log_server_port]}
  - {role: triggerer, port: 8794, proto: tcp, from_roles: [webserver, monitoring], purpose: "triggerer log server (monitoring: the triggerer's liveness probe)", keys: [airflow:trigger_log_server_port]}
  - {role: flower, port: 5556, proto: tcp, from_roles: [haproxy], purpose: Flower backend, keys: [airflow:flower_port]}
  # PgBouncer on every Airflow host (pillar airflow:pgbouncer:enabled): 127.0.0.1 only, so no
  # source (no firewall rule); its exporter to the monitoring hosts (nothing listens while it is off)
  - {role: scheduler, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: webserver, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: dag_processor, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: triggerer, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: worker, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: flower, port: 6432, proto: tcp, from_roles: [], purpose: "PgBouncer (listens on 127.0.0.1 only)", keys: [airflow:pgbouncer:port]}
  - {role: scheduler, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: webserver, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: dag_processor, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: triggerer, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: worker, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: flower, port: 9127, proto: tcp, from_roles: [monitoring], purpose: PgBouncer exporter, keys: [airflow:pgbouncer:exporter_port], scraped: true}
  - {role: nfs, port: 2049, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, triggerer, nfs], purpose: NFSv4 (DAG folder)}
  - {role: nfs, port: vrrp, proto: vrrp, from_roles: [nfs], purpose: keepalived VRRP (NFS VIP)}
  - {role: ftp, port: 21, proto: tcp, from_roles: [worker, dag_processor, card_target], purpose: FTP control}
  - {role: ftp, port: 30000-30100, proto: tcp, from_roles: [worker, dag_processor, card_target], purpose: FTP passive data}
  - {role: ldap, port: 636, proto: tcp, from_roles: [webserver], purpose: "LDAPS: the api-servers' FAB logins (slapd)", keys: [ldap:port]}
  - {role: logs, port: 6514, proto: tcp, from_roles: [all], purpose: "syslog over TLS (rsyslog, mutual x509): every host's logs to the central log host", keys: [logs:port]}
  - {role: webserver, port: 6515, proto: tcp, from_roles: [worker, triggerer], purpose: "syslog over TLS (rsyslog, mutual x509): task log copies to the api-server hosts", keys: [logs:task_logs:port]}
  # salt-api on the Salt master's host (role ca): Alertmanager's autoscaling webhook (listens only with a
  # standby worker host in the inventory; salt/autoscale)
  - {role: ca, port: 8000, proto: tcp, from_roles: [monitoring], purpose: "salt-api: Alertmanager's autoscaling webhook", keys: [autoscale:salt_api:port]}
  - {role: monitoring, port: 9090, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Prometheus, scraped: true}
  - {role: monitoring, port: 9093, proto: tcp, from_roles: [monitoring], purpose: Alertmanager, scraped: true}
  - {role: monitoring, port: 9094, proto: tcp, from_roles: [monitoring], purpose: "Alertmanager cluster (only with 2+ monitoring hosts)"}
  - {role: monitoring, port: 3000, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Grafana}
  - {role: monitoring, port: 9115, proto: tcp, from_roles: [monitoring], purpose: "blackbox exporter (listens on loopback: its Prometheus probes through it)"}
  - {role: monitoring, port: 9102, proto: tcp, from_roles: [monitoring], purpose: statsd_exporter metrics, scraped: true}
  - {role: monitoring, port: 9125, proto: udp, from_roles: [scheduler, webserver, dag_processor, worker, triggerer], purpose: statsd (Airflow metrics), keys: [airflow:statsd_port]}
