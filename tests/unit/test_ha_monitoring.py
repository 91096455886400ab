"""Scrape targets follow the inventory: each exporter on the hosts of its role."""

import pytest

import _modules.ha_monitoring as ha_monitoring
from tests.helpers.inventory import hosts_with_role, load_inventory


@pytest.fixture
def configure_loader_modules():
    return {ha_monitoring: {"__pillar__": {"inventory": load_inventory("full")}}}


def test_every_host_runs_node_exporter():
    jobs = {j["job_name"]: j for j in ha_monitoring.scrape_jobs()}
    inv = load_inventory("full")
    assert [t["host"] for t in jobs["node"]["targets"]] == sorted(inv["hosts"])
    assert {t["address"] for t in jobs["node"]["targets"]} == {f"{h['ip']}:9100" for h in inv["hosts"].values()}


def test_role_exporters_only_on_their_role_hosts():
    jobs = {j["job_name"]: j for j in ha_monitoring.scrape_jobs()}
    inv = load_inventory("full")
    for job, role in (("etcd", "etcd"), ("patroni", "postgres"), ("rabbitmq", "rabbitmq"), ("haproxy", "haproxy")):
        assert [t["host"] for t in jobs[job]["targets"]] == hosts_with_role(inv, role), job
    assert jobs["patroni"]["targets"][0]["address"].endswith(":8008")


def test_disabled_jobs_and_roles_without_hosts_are_left_out():
    inv = load_inventory("full")
    inv["hosts"].pop("monitor1")
    jobs = [j["job_name"] for j in ha_monitoring.jobs_for(inv, disabled=["etcd"])]
    assert "etcd" not in jobs and "prometheus" not in jobs and "statsd" not in jobs
    assert "node" in jobs


def test_alertmanager_targets_are_the_monitoring_hosts():
    assert ha_monitoring.alertmanager_targets() == ["192.168.83.160:9093"]


def test_with_tls_etcd_and_patroni_are_scraped_over_https_with_what_each_needs():
    tls = {"ca_file": "/pki/ca.crt", "cert_file": "/pki/host.crt", "key_file": "/pki/prometheus.key"}
    jobs = {j["job_name"]: j for j in ha_monitoring.scrape_jobs(tls=tls)}
    assert jobs["etcd"]["scheme"] == "https" and jobs["etcd"]["tls_config"] == tls  # client certificate required
    assert jobs["patroni"]["scheme"] == "https" and jobs["patroni"]["tls_config"] == {"ca_file": "/pki/ca.crt"}
    assert all("scheme" not in j for name, j in jobs.items() if name not in ("etcd", "patroni"))
    # targets stay IPs: the host certificates carry them
    assert jobs["etcd"]["targets"][0] == {"address": "192.168.83.148:2379", "host": "sql1"}
    assert all("scheme" not in j and "tls_config" not in j for j in ha_monitoring.scrape_jobs())


def test_pgbouncer_exporter_is_scraped_on_every_host_with_an_airflow_role_once():
    inv = load_inventory("full")
    jobs = {j["job_name"]: j for j in ha_monitoring.scrape_jobs()}
    airflow_hosts = sorted(n for n, h in inv["hosts"].items() if set(h["roles"]) & set(ha_monitoring.AIRFLOW_ROLES))
    assert [t["host"] for t in jobs["pgbouncer"]["targets"]] == airflow_hosts  # a host of several roles: one target
    assert {t["address"] for t in jobs["pgbouncer"]["targets"]} == {f"{inv['hosts'][n]['ip']}:9127" for n in airflow_hosts}
    # monitoring/map.jinja leaves it out while pillar airflow:pgbouncer:enabled is false
    assert "pgbouncer" not in [j["job_name"] for j in ha_monitoring.scrape_jobs(disabled=["pgbouncer"])]
