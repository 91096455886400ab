"""
Prometheus scrape targets of the cluster, generated from the inventory: each
exporter lives on the hosts of the role that runs it, so adding a host to the
inventory adds its targets.

CLI Example:

.. code-block:: bash

    salt-call ha_monitoring.scrape_jobs
"""

__virtualname__ = "ha_monitoring"

# job -> (role whose hosts expose it, port, metrics path, scheme)
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


def __virtual__():
    return __virtualname__


def jobs_for(inventory, exporters=None, disabled=()):
    """
    Scrape jobs (name, metrics_path, targets with a ``host`` label) for an
    inventory; jobs whose role has no host, or named in ``disabled``, are left out.
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
        jobs.append(
            {
                "job_name": job,
                "metrics_path": path,
                "targets": [{"address": f"{hosts[n]['ip']}:{port}", "host": n} for n in names],
            }
        )
    return jobs


def scrape_jobs(disabled=()):
    """
    The scrape jobs of this cluster's inventory (pillar ``inventory``).

    CLI Example:

    .. code-block:: bash

        salt-call ha_monitoring.scrape_jobs disabled='[statsd]'
    """
    return jobs_for(__pillar__["inventory"], disabled=disabled)


def alertmanager_targets():
    """
    ``ip:9093`` of every monitoring host (Prometheus sends alerts to all).

    CLI Example:

    .. code-block:: bash

        salt-call ha_monitoring.alertmanager_targets
    """
    hosts = __pillar__["inventory"]["hosts"]
    return [f"{h['ip']}:9093" for n, h in sorted(hosts.items()) if "monitoring" in (h.get("roles") or [])]
