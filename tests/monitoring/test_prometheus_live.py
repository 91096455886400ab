"""A real Prometheus with the shipped config and alert rules scrapes a real
node_exporter and a real blackbox exporter (the shipped probe modules)
probing a small Airflow-like health endpoint and a worker's log-server port
on loopback: with everything healthy no alert is firing or pending; an
unhealthy scheduler heartbeat and a closed worker port raise their alerts,
which go away again on recovery; stopping node_exporter raises HostDown."""

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
NODE = shutil.which("prometheus-node-exporter") or "/usr/bin/prometheus-node-exporter"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"
# the probe jobs this test serves (the other probes need a whole cluster)
SERVED = ("airflow_api", "airflow_scheduler_heartbeat", "airflow_triggerer_heartbeat",
          "airflow_dag_processor_heartbeat", "airflow_scheduler", "airflow_worker")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout=90):
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


class FakeAirflow:
    """/api/v2/monitor/health as an api-server answers it (each component's status
    settable), /health as a scheduler's health server, and a worker's log-server port."""

    def __init__(self):
        self.status = {"metadatabase": "healthy", "scheduler": "healthy", "triggerer": "healthy",
                       "dag_processor": "healthy"}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({k: {"status": v, "latest_heartbeat": None} for k, v in owner.status.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.worker = None
        self.worker_port = free_port()
        self.open_worker()

    @property
    def http_port(self):
        return self.http.server_address[1]

    def open_worker(self):
        self.worker = socket.socket()
        self.worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.worker.bind(("127.0.0.1", self.worker_port))
        self.worker.listen(16)
        threading.Thread(target=self._accept, args=(self.worker,), daemon=True).start()

    @staticmethod
    def _accept(sock):
        try:
            while True:
                conn, _ = sock.accept()
                conn.close()
        except OSError:
            pass

    def close_worker(self):
        self.worker.close()

    def stop(self):
        self.http.shutdown()
        self.worker.close()


@pytest.fixture
def live(render_state_file, tmp_path):
    prom_addr, node_addr, bb_addr = (f"127.0.0.1:{free_port()}" for _ in range(3))
    airflow = FakeAirflow()
    rules = tmp_path / "rules" / "airflow-ha.yml"
    rules.parent.mkdir()
    rules.write_text(render_state_file("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-rules"))
    (tmp_path / "blackbox.yml").write_text(
        render_state_file("db3", "compact", "monitoring.blackbox", "monitoring-blackbox-config"))
    config = yaml.safe_load(render_state_file("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config"))
    # the shipped config, its targets moved to loopback, faster timing (the rules' for: stay)
    config["rule_files"] = [str(rules.parent / "*.yml")]
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = []
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    jobs["node"]["static_configs"] = [{"targets": [node_addr], "labels": {"host": "db1"}}]
    api = f"http://127.0.0.1:{airflow.http_port}/api/v2/monitor/health"
    moved = {"airflow_scheduler": f"http://127.0.0.1:{airflow.http_port}/health",
             "airflow_worker": f"127.0.0.1:{airflow.worker_port}"}
    for name in SERVED:
        job = jobs[name]
        labels = job["static_configs"][0]["labels"]
        job["static_configs"] = [{"targets": [moved.get(name, api)], "labels": labels}]
        job["relabel_configs"][-1]["replacement"] = bb_addr
    config["scrape_configs"] = [jobs["node"]] + [jobs[n] for n in SERVED]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    procs = {
        "node": subprocess.Popen([NODE, f"--web.listen-address={node_addr}", "--collector.disable-defaults",
                                  "--collector.filesystem", "--collector.loadavg"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "blackbox": subprocess.Popen([BLACKBOX, f"--config.file={tmp_path / 'blackbox.yml'}",
                                      f"--web.listen-address={bb_addr}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        "prometheus": subprocess.Popen([PROMETHEUS, f"--config.file={tmp_path / 'prometheus.yml'}",
                                        f"--storage.tsdb.path={tmp_path / 'data'}",
                                        f"--web.listen-address={prom_addr}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    }

    def api_get(path):
        with urllib.request.urlopen(f"http://{prom_addr}/api/v1/{path}", timeout=5) as resp:
            return json.load(resp)["data"]

    try:
        yield {"procs": procs, "airflow": airflow, "api": api_get, "jobs": len(config["scrape_configs"])}
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        airflow.stop()


def alerts(api, name=None):
    return [f"{a['labels']['alertname']} {a['state']} {a['labels'].get('host', '')}" for a in api("alerts")["alerts"]
            if name in (None, a["labels"]["alertname"])]


def test_healthy_quiet_then_each_failure_raises_its_alert(live):
    api, airflow = live["api"], live["airflow"]
    wait_for("every target up", lambda: len([t for t in api("targets")["activeTargets"] if t["health"] == "up"])
             == live["jobs"])
    groups = {g["name"] for g in api("rules")["groups"]}
    assert {"hosts", "airflow", "database", "broker", "load-balancer", "certificates"} <= groups
    # every probe succeeds, then several rule evaluations later nothing is firing or pending
    wait_for("every probe succeeding", lambda: [r for r in api("query?query=probe_success")["result"]]
             and all(r["value"][1] == "1" for r in api("query?query=probe_success")["result"]))
    evaluated = api("rules")["groups"][0]["lastEvaluation"]
    wait_for("three more rule evaluations", lambda: api("rules")["groups"][0]["lastEvaluation"] != evaluated)
    time.sleep(3)
    assert alerts(api) == [], "alerts with every target healthy"

    airflow.status["scheduler"] = "unhealthy"
    airflow.close_worker()
    found = wait_for("heartbeat and worker alerts", lambda: alerts(api, "AirflowSchedulerHeartbeatMissing")
                     and alerts(api, "AirflowWorkerDown"))
    assert found
    assert not alerts(api, "AirflowApiServerDown") and not alerts(api, "AirflowTriggererHeartbeatMissing"), alerts(api)
    airflow.status["scheduler"] = "healthy"
    airflow.open_worker()
    wait_for("no alert after recovery", lambda: alerts(api) == [])

    live["procs"]["node"].terminate()
    live["procs"]["node"].wait(timeout=10)
    down = wait_for("HostDown", lambda: alerts(api, "HostDown"))
    assert down[0] in ("HostDown pending db1", "HostDown firing db1"), down
