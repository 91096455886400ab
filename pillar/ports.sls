# The one port map: which role listens on which port, and which roles may
# reach it. `from_networks: [admin]` stands for pillar base:firewall:admin_networks
# (the inventory network when empty). The base role turns it into firewall rules (nftables on Debian,
# firewalld on RedHat) for the roles each host has; `from_roles: [all]` means
# every host of the inventory, `from_networks` adds CIDRs (admin networks).
# The flows are those of the seeds' port table (seed 000) plus what HA needs.
# `tls: true` / `tls: false`: the entry holds only with / without pillar
# tls:enabled (RabbitMQ's AMQPS and https management ports replace the plain ones,
# HAProxy adds 443); entries without `tls` always hold.
ports:
  - {role: all, port: 22, proto: tcp, from_roles: [all], from_networks: [admin], purpose: "ssh: admin, salt-ssh, worker to card target"}
  - {role: all, port: 9100, proto: tcp, from_roles: [monitoring], purpose: node_exporter}
  - {role: all, port: 4505-4506, proto: tcp, from_roles: [all], purpose: "Salt master publish/return, on the host that runs it"}
  - {role: etcd, port: 2379, proto: tcp, from_roles: [etcd, postgres, monitoring], purpose: etcd clients (Patroni)}
  - {role: etcd, port: 2380, proto: tcp, from_roles: [etcd], purpose: etcd peers}
  - {role: postgres, port: 5432, proto: tcp, from_roles: [postgres, haproxy, monitoring], purpose: "PostgreSQL: replication, HAProxy backends"}
  - {role: postgres, port: 9187, proto: tcp, from_roles: [monitoring], purpose: postgres_exporter}
  - {role: postgres, port: 8008, proto: tcp, from_roles: [postgres, haproxy, monitoring], purpose: Patroni REST API (HAProxy health checks)}
  - {role: rabbitmq, port: 5672, proto: tcp, tls: false, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, rabbitmq], purpose: AMQP}
  - {role: rabbitmq, port: 5671, proto: tcp, tls: true, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, rabbitmq], purpose: AMQP over TLS}
  - {role: rabbitmq, port: 15672, proto: tcp, tls: false, from_roles: [haproxy, monitoring, rabbitmq], purpose: RabbitMQ management}
  - {role: rabbitmq, port: 15671, proto: tcp, tls: true, from_roles: [haproxy, monitoring, rabbitmq], purpose: RabbitMQ management over https}
  - {role: rabbitmq, port: 15692, proto: tcp, from_roles: [monitoring], purpose: RabbitMQ Prometheus plugin}
  - {role: rabbitmq, port: 4369, proto: tcp, from_roles: [rabbitmq], purpose: epmd}
  - {role: rabbitmq, port: 25672, proto: tcp, from_roles: [rabbitmq], purpose: Erlang distribution}
  - {role: rabbitmq, port: 35672-35682, proto: tcp, from_roles: [rabbitmq], purpose: RabbitMQ CLI tools}
  - {role: haproxy, port: 5000, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, monitoring], purpose: DB read/write (Patroni leader)}
  - {role: haproxy, port: 6000, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, flower, triggerer, monitoring], purpose: DB read-only (replicas)}
  - {role: haproxy, port: 7000, proto: tcp, from_roles: [monitoring, haproxy], from_networks: [admin], purpose: HAProxy stats and exporter}
  - {role: haproxy, port: 80, proto: tcp, from_roles: [all], from_networks: [admin], purpose: "Airflow UI/API through HAProxy (with TLS: redirect to 443)"}
  - {role: haproxy, port: 443, proto: tcp, tls: true, from_roles: [all], from_networks: [admin], purpose: Airflow UI/API through HAProxy over https}
  - {role: haproxy, port: 5555, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Flower through HAProxy (https with TLS)}
  - {role: haproxy, port: vrrp, proto: vrrp, from_roles: [haproxy], purpose: keepalived VRRP}
  - {role: webserver, port: 8080, proto: tcp, from_roles: [haproxy, monitoring], purpose: Airflow webserver / api-server}
  - {role: scheduler, port: 8974, proto: tcp, from_roles: [monitoring], purpose: scheduler health check server}
  - {role: worker, port: 8793, proto: tcp, from_roles: [webserver, scheduler], purpose: worker log server}
  - {role: triggerer, port: 8794, proto: tcp, from_roles: [webserver], purpose: triggerer log server}
  - {role: flower, port: 5556, proto: tcp, from_roles: [haproxy], purpose: Flower backend}
  - {role: nfs, port: 2049, proto: tcp, from_roles: [scheduler, webserver, dag_processor, worker, triggerer, nfs], purpose: NFSv4 (DAG folder)}
  - {role: nfs, port: vrrp, proto: vrrp, from_roles: [nfs], purpose: keepalived VRRP (NFS VIP)}
  - {role: ftp, port: 21, proto: tcp, from_roles: [worker, dag_processor, card_target], purpose: FTP control}
  - {role: ftp, port: 30000-30100, proto: tcp, from_roles: [worker, dag_processor, card_target], purpose: FTP passive data}
  - {role: monitoring, port: 9090, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Prometheus}
  - {role: monitoring, port: 9093, proto: tcp, from_roles: [monitoring], purpose: Alertmanager}
  - {role: monitoring, port: 9094, proto: tcp, from_roles: [monitoring], purpose: "Alertmanager cluster (only with 2+ monitoring hosts)"}
  - {role: monitoring, port: 3000, proto: tcp, from_roles: [all], from_networks: [admin], purpose: Grafana}
  - {role: monitoring, port: 9102, proto: tcp, from_roles: [monitoring], purpose: statsd_exporter metrics}
  - {role: monitoring, port: 9125, proto: udp, from_roles: [scheduler, webserver, dag_processor, worker, triggerer], purpose: statsd (Airflow metrics)}
