"""
Prometheus scrape targets of the cluster, generated from the inventory: each
exporter lives on the hosts of the role that runs it, so adding a host to the
inventory adds its targets.

CLI Example:

.. code-block:: bash

    salt-call ha_monitoring.scrape_jobs
"""

__virtualname__ = "ha_monitoring"

# job -> (role whose hosts expose it, port, metrics path)
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
        names = sorted(n for n, h in hosts.items() if role == "all" or role in (h.get("roles") or []))
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
