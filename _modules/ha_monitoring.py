"""
Prometheus scrape targets of the cluster, generated from the inventory: each
exporter lives on the hosts of the role that runs it, so adding a host to the
inventory adds its targets.

CLI Example:

.. code-block:: bash

    salt-call ha_monitoring.scrape_jobs
"""

__virtualname__ = "ha_monitoring"

# The roles of the Airflow components: every host with one of them runs
# PgBouncer when pillar airflow:pgbouncer:enabled (salt/airflow/pgbouncer.sls).
AIRFLOW_ROLES = ("scheduler", "webserver", "dag_processor", "triggerer", "worker", "flower")

# job -> (role whose hosts expose it, or a tuple of roles: any of them, port, metrics path)
EXPORTERS = {
    "node": ("all", 9100, "/metrics"),
    "etcd": ("etcd", 2379, "/metrics"),
    "patroni": ("postgres", 8008, "/metrics"),
    "postgres": ("postgres", 9187, "/metrics"),
    "rabbitmq": ("rabbitmq", 15692, "/metrics"),
    "haproxy": ("haproxy", 7000, "/metrics"),
    "statsd": ("monitoring", 9102, "/metrics"),
    "prometheus": ("monitoring", 9090, "/metrics"),
    "alertmanager": ("monitoring", 9093, "/metrics"),
    # beside each Airflow host's PgBouncer; left out unless airflow:pgbouncer:enabled (monitoring/map.jinja)
    "pgbouncer": (AIRFLOW_ROLES, 9127, "/metrics"),
}

# The blackbox exporter listens on loopback of each monitoring host (port as
# in pillar/ports.sls): its Prometheus is the only client.
BLACKBOX_ADDRESS = "127.0.0.1:9115"

# Probes through the blackbox exporter (salt/monitoring/files/blackbox.yml.jinja
# defines the modules): job -> (role whose hosts are probed, module, target
# template). Templates take the host's ``ip`` and the ``params`` of
# ``probe_jobs`` (ports and paths owned by the airflow, postgres and haproxy
# areas). ``tls`` jobs exist only with pillar tls:enabled; ``vip`` jobs probe
# the main VIP once instead of each host.
PROBES = {
    # each api-server answers its health endpoint
    "airflow_api": ("webserver", "airflow_api", "http://{ip}:{api_port}{health_path}"),
    # the components' heartbeats as an api-server reports them (from the DB)
    "airflow_scheduler_heartbeat": ("webserver", "airflow_scheduler_heartbeat", "http://{ip}:{api_port}{health_path}"),
    "airflow_triggerer_heartbeat": ("webserver", "airflow_triggerer_heartbeat", "http://{ip}:{api_port}{health_path}"),
    "airflow_dag_processor_heartbeat": ("webserver", "airflow_dag_processor_heartbeat",
                                        "http://{ip}:{api_port}{health_path}"),
    # each process, on its own host
    "airflow_scheduler": ("scheduler", "http_2xx", "http://{ip}:{scheduler_health_port}/health"),
    # the workers but the standby ones (inventory `standby: true`, stopped until a backlog: not a failure)
    "airflow_worker": ("worker", "tcp_connect", "{ip}:{log_server_port}"),
    # the standby workers: whether the autoscaling has started them (CeleryBacklogHigh/Idle), no alert of its own
    "airflow_standby_worker": ("standby_worker", "tcp_connect", "{ip}:{log_server_port}"),
    "airflow_triggerer": ("triggerer", "tcp_connect", "{ip}:{trigger_log_server_port}"),
    # what users reach: the UI/API on the main VIP
    "airflow_vip": ("vip", "airflow_api", "http://{vip}:{public_port}{health_path}"),
}
TLS_PROBES = {
    "airflow_vip": ("vip", "airflow_api_tls", "https://{vip}:{public_tls_port}{health_path}"),
    # certificates the cluster serves (their expiry: probe_ssl_earliest_cert_expiry)
    "tls_patroni": ("postgres", "tls_connect", "{ip}:{restapi_port}"),
    "tls_haproxy": ("haproxy", "tls_connect", "{ip}:{public_tls_port}"),
}


# With TLS (pillar tls:enabled), jobs scraped over https: what each presents.
# etcd's client port requires a client certificate of the cluster CA (the
# monitoring host's own); the Patroni REST API only needs the CA to verify it.
TLS_JOBS = {
    "etcd": ("ca_file", "cert_file", "key_file"),
    "patroni": ("ca_file",),
}


def __virtual__():
    return __virtualname__


def jobs_for(inventory, exporters=None, disabled=(), tls=None):
    """
    Scrape jobs (name, metrics_path, targets with a ``host`` label) for an
    inventory; jobs whose role has no host, or named in ``disabled``, are left out.
    With ``tls`` ({ca_file, cert_file, key_file}: the cluster CA and the
    monitoring host's certificate and key), the jobs of ``TLS_JOBS`` get
    ``scheme: https`` and a ``tls_config`` with the files each needs.
    Targets are IPs: the host certificates carry their IP.
    """
    exporters = exporters or EXPORTERS
    hosts = inventory["hosts"]
    jobs = []
    for job, (role, port, path) in exporters.items():
        if job in disabled:
            continue
        roles = (role,) if isinstance(role, str) else tuple(role)
        names = sorted(n for n, h in hosts.items() if "all" in roles or set(roles) & set(h.get("roles") or []))
        if not names:
            continue
        entry = {
            "job_name": job,
            "metrics_path": path,
            "targets": [{"address": f"{hosts[n]['ip']}:{port}", "host": n} for n in names],
        }
        if tls and job in TLS_JOBS:
            entry["scheme"] = "https"
            entry["tls_config"] = {key: tls[key] for key in TLS_JOBS[job]}
        jobs.append(entry)
    return jobs


def _probed(role, host):
    """Whether a probe of ``role`` targets inventory ``host``: ``worker`` the workers that are no standby,
    ``standby_worker`` the standby ones (issue 20), any other role its hosts."""
    roles = host.get("roles") or []
    standby = host.get("standby") is True and "worker" in roles
    if role == "standby_worker":
        return standby
    return role in roles and not (role == "worker" and standby)


def probes_for(inventory, params, disabled=(), tls=False):
    """
    Blackbox probe jobs for an inventory: like ``jobs_for`` (name, metrics_path,
    targets with a ``host`` label) plus the blackbox ``module``; the targets are
    what the exporter probes (URLs or host:port), the scrape goes to
    ``BLACKBOX_ADDRESS``. ``params``: ``api_port``, ``health_path``,
    ``scheduler_health_port``, ``log_server_port``, ``trigger_log_server_port``,
    ``public_port``, ``public_tls_port``, ``restapi_port``.
    """
    hosts = inventory["hosts"]
    probes = dict(PROBES, **(TLS_PROBES if tls else {}))
    jobs = []
    for job, (role, module, template) in probes.items():
        if job in disabled:
            continue
        if role == "vip":
            vip = (inventory.get("vips") or {}).get("main")
            targets = [{"address": template.format(vip=vip["ip"], **params), "host": vip["hostname"]}] if vip else []
        else:
            names = sorted(n for n, h in hosts.items() if _probed(role, h))
            targets = [{"address": template.format(ip=hosts[n]["ip"], **params), "host": n} for n in names]
        if targets:
            jobs.append({"job_name": job, "metrics_path": "/probe", "module": module, "targets": targets,
                         "blackbox": BLACKBOX_ADDRESS})
    return jobs


def probe_jobs(params, disabled=(), tls=False):
    """
    The blackbox probe jobs of this cluster's inventory (pillar ``inventory``);
    ``params`` and ``tls`` as in ``probes_for``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_monitoring.probe_jobs '{api_port: 8080, health_path: /api/v2/monitor/health, ...}'
    """
    return probes_for(__pillar__["inventory"], params, disabled=disabled, tls=tls)


def scrape_jobs(disabled=(), tls=None):
    """
    The scrape jobs of this cluster's inventory (pillar ``inventory``);
    ``tls`` as in ``jobs_for``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_monitoring.scrape_jobs disabled='[statsd]'
    """
    return jobs_for(__pillar__["inventory"], disabled=disabled, tls=tls)


def alertmanager_targets():
    """
    ``ip:9093`` of every monitoring host (Prometheus sends alerts to all).

    CLI Example:

    .. code-block:: bash

        salt-call ha_monitoring.alertmanager_targets
    """
    hosts = __pillar__["inventory"]["hosts"]
    return [f"{h['ip']}:9093" for n, h in sorted(hosts.items()) if "monitoring" in (h.get("roles") or [])]
