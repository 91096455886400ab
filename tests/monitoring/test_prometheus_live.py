"""A real Prometheus, with the shipped config and alert rules, scrapes a real
node_exporter on loopback; stopping the exporter raises HostDown."""

import json
import shutil
import subprocess
import time
import urllib.request

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROM_ADDR = "127.0.0.1:59090"
NODE_ADDR = "127.0.0.1:59100"


def api(path):
    with urllib.request.urlopen(f"http://{PROM_ADDR}/api/v1/{path}", timeout=5) as resp:
        return json.load(resp)["data"]


def wait_for(what, check, timeout=60):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last}")


@pytest.fixture
def live_prometheus(render_state_file, tmp_path):
    rules = tmp_path / "rules" / "airflow-ha.yml"
    rules.parent.mkdir()
    rules.write_text(render_state_file("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-rules"))
    config = yaml.safe_load(render_state_file("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config"))
    # the shipped config, with its targets moved to loopback and faster timing
    config["rule_files"] = [str(rules.parent / "*.yml")]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = []
    node_job = next(j for j in config["scrape_configs"] if j["job_name"] == "node")
    node_job["static_configs"] = [{"targets": [NODE_ADDR], "labels": {"host": "db1"}}]
    config["scrape_configs"] = [node_job]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    procs = {
        "node": subprocess.Popen([shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter",
                                  f"--web.listen-address={NODE_ADDR}", "--collector.disable-defaults",
                                  "--collector.filesystem", "--collector.loadavg"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "prometheus": subprocess.Popen([shutil.which("prometheus") or "/usr/bin/prometheus",
                                        f"--config.file={tmp_path / 'prometheus.yml'}",
                                        f"--storage.tsdb.path={tmp_path / 'data'}",
                                        f"--web.listen-address={PROM_ADDR}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def test_target_up_rules_loaded_and_host_down_raised(live_prometheus):
    targets = wait_for("node target up", lambda: [t for t in api("targets")["activeTargets"] if t["health"] == "up"])
    assert targets[0]["labels"]["host"] == "db1"
    groups = {g["name"]: g for g in api("rules")["groups"]}
    assert set(groups) == {"hosts", "airflow", "database", "broker", "load-balancer"}
    assert not [a for a in api("alerts")["alerts"] if a["labels"]["alertname"] == "HostDown"]

    live_prometheus["node"].terminate()
    live_prometheus["node"].wait(timeout=10)
    alert = wait_for("HostDown pending", lambda: [a for a in api("alerts")["alerts"] if a["labels"]["alertname"] == "HostDown"])
    assert alert[0]["labels"]["host"] == "db1"
    assert alert[0]["state"] in ("pending", "firing")
