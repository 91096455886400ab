"""The Prometheus, rule and Alertmanager files the monitoring states install
pass the real promtool/amtool checks, for both topologies and OS families,
and their targets follow the inventory."""

import json
import shutil
import subprocess

import pytest
import yaml

from tests.helpers.inventory import REPO, hosts_with_role, load_inventory

MONITOR_HOST = {"compact": "db3"}
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"


def write_config_tree(render_state_file, tmp_path, host, topology, os_name="debian12"):
    states = {}
    rules = render_state_file(host, topology, "monitoring.prometheus", "monitoring-prometheus-rules", os_name)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "airflow-ha.yml").write_text(rules)
    # same template and context as the state, with the config dir moved here
    config = render_state_file(host, topology, "monitoring.prometheus", "monitoring-prometheus-config", os_name)
    config = config.replace("/etc/prometheus/rules/*.yml", str(tmp_path / "rules" / "*.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    return tmp_path / "prometheus.yml", tmp_path / "rules" / "airflow-ha.yml"


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_compact_prometheus_config_and_rules_pass_promtool(render_state_file, tmp_path, os_name):
    config, rules = write_config_tree(render_state_file, tmp_path, "db3", "compact", os_name)
    out = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout + out.stderr
    out = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_targets_follow_the_inventory(render_state_file, tmp_path):
    config, _ = write_config_tree(render_state_file, tmp_path, "db3", "compact")
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    inv = load_inventory("compact")
    node_targets = [sc["targets"][0] for sc in jobs["node"]["static_configs"]]
    assert sorted(node_targets) == sorted(f"{h['ip']}:9100" for h in inv["hosts"].values())
    patroni = [sc["targets"][0] for sc in jobs["patroni"]["static_configs"]]
    assert sorted(patroni) == sorted(f"{inv['hosts'][n]['ip']}:8008" for n in hosts_with_role(inv, "postgres"))
    assert {sc["labels"]["host"] for sc in jobs["rabbitmq"]["static_configs"]} == set(hosts_with_role(inv, "rabbitmq"))
    # Debian has no statsd_exporter package: its job is left out there
    assert "statsd" not in jobs
    assert {"etcd", "haproxy", "postgres", "prometheus", "alertmanager"} <= set(jobs)


def test_rocky_scrapes_statsd_exporter(render_state_file, tmp_path):
    config, _ = write_config_tree(render_state_file, tmp_path, "db3", "compact", "rocky9")
    jobs = {j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert "statsd" in jobs


def test_alertmanager_config_passes_amtool(render_state_file, tmp_path):
    text = render_state_file("db3", "compact", "monitoring.alertmanager", "monitoring-alertmanager-config")
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    out = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dashboards_are_valid_json_with_valid_promql(tmp_path):
    records = []
    boards = sorted((REPO / "salt" / "monitoring" / "files" / "dashboards").glob("*.json"))
    assert {b.stem for b in boards} == {"cluster-overview", "dag-performance", "workers", "database", "broker"}
    for board in boards:
        data = json.loads(board.read_text())
        assert data["uid"].startswith("airflow-ha-") and data["panels"]
        for panel in data["panels"]:
            for target in panel["targets"]:
                records.append({"record": f"dashboard:check:{len(records)}", "expr": target["expr"]})
    # promtool parses every panel query as a recording rule
    rules = tmp_path / "dashboards.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    out = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_statsd_mapping_and_grafana_provisioning_are_valid_yaml(render_state_file):
    mapping = yaml.safe_load((REPO / "salt" / "monitoring" / "files" / "statsd_mapping.yml").read_text())
    names = {m["name"] for m in mapping["mappings"]}
    assert {"airflow_scheduler_heartbeat", "airflow_ti_failures", "airflow_ti_successes"} <= names
    ds = yaml.safe_load(render_state_file("db3", "compact", "monitoring.grafana", "monitoring-grafana-datasource", "rocky9"))
    assert ds["datasources"][0]["url"] == "http://127.0.0.1:9090"
    provider = yaml.safe_load(render_state_file("db3", "compact", "monitoring.grafana", "monitoring-grafana-dashboard-provider", "rocky9"))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/airflow-ha"
