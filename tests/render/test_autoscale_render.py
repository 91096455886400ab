"""Autoscaling on queue depth (issue 20) as the states compile: with a
standby worker host (compact's af2 marked `standby: true`) its worker unit is
disabled and left to the autoscaling, the CA host (db1, the Salt master's
host) runs salt-api with the webhook token, the monitoring host (db3) routes
the autoscale alerts to its webhook with the bearer token file and the
cluster CA, and orch.autoscale targets the standby host; without one
(the shipped compact inventory) none of it renders."""

import multiprocessing
import shutil
import subprocess

import pytest
import yaml

from clusters.state_render import host_states_in_fresh_process, make_salt_env
from tests.helpers.standby import STANDBY_HOST, standby_root

AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
URL = "https://10.83.0.11:8000/hook/airflow-ha/autoscale"

# (name, host, sls, with the standby host)
JOBS = [
    ("af2-standby", STANDBY_HOST, ["airflow.worker"], True),
    ("af1-standby", "af1", ["airflow.worker"], True),
    ("db1-standby", "db1", ["autoscale"], True),
    ("db3-standby", "db3", ["monitoring.alertmanager", "monitoring.prometheus"], True),
    ("af2-plain", STANDBY_HOST, ["airflow.worker"], False),
    ("db1-plain", "db1", ["autoscale"], False),
    ("db3-plain", "db3", ["monitoring.alertmanager", "monitoring.prometheus"], False),
]


@pytest.fixture(scope="module")
def tls_env(tmp_path_factory):
    return make_salt_env(str(tmp_path_factory.mktemp("autoscale-tls")), tls=True)


@pytest.fixture(scope="module")
def compiled(tls_env, tmp_path_factory):
    """name -> {state id: {fun, args, text}} (TLS on: the default)"""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {}
        for name, host, sls, standby in JOBS:
            root = tmp_path_factory.mktemp(f"autoscale-{name}")
            if standby:
                standby_root(root)
            pending[name] = pool.apply_async(host_states_in_fresh_process,
                                             (host, "compact", sls, str(root), {}, *tls_env))
        return {name: p.get(timeout=600) for name, p in pending.items()}


def test_the_standby_worker_unit_is_installed_disabled_and_left_alone(compiled):
    states = compiled["af2-standby"]
    assert "airflow-worker-unit" in states
    assert "airflow-worker-running" not in states
    assert states["airflow-worker-standby"]["fun"] == "service.disabled"
    # no service.running/dead: a second highstate neither starts nor stops it; a new config restarts it
    # only while it runs
    restart = states["airflow-worker-restarted-if-running"]
    assert restart["fun"] == "module.run"
    assert restart["args"]["onlyif"] == "systemctl is-active --quiet airflow-worker.service"
    assert {"file": "airflow-worker-unit"} in restart["args"]["onchanges"]
    assert not [s for s in states.values() if s["fun"] in ("service.running", "service.dead")
                and s["args"].get("name") == "airflow-worker"]
    # the other worker and the same host without standby run theirs
    for name in ("af1-standby", "af2-plain"):
        assert compiled[name]["airflow-worker-running"]["fun"] == "service.running"
        assert "airflow-worker-standby" not in compiled[name]


def test_the_ca_host_runs_salt_api_with_the_webhook_token(compiled):
    states = compiled["db1-standby"]
    token = states["autoscale-webhook-token"]
    assert token["fun"] == "file.managed"
    assert token["args"]["name"] == "/etc/salt/airflow-ha/autoscale-webhook.token"
    assert (token["args"]["mode"], token["args"]["user"], token["args"]["show_changes"]) == ("0600", "root", False)
    assert len(token["args"]["contents"]) >= 32
    conf = yaml.safe_load(states["autoscale-salt-api-config"]["text"])["rest_cherrypy"]
    assert conf == {"host": "10.83.0.11", "port": 8000, "webhook_url": "/hook", "webhook_disable_auth": True,
                    "ssl_crt": "/etc/airflow-ha/pki/host.crt", "ssl_key": "/etc/airflow-ha/pki/salt-api.key"}
    unit = states["autoscale-salt-api-installed"]["text"]
    assert "\nExecStart=" in unit and "/salt-api\n" in unit
    running = states["autoscale-salt-api-running"]["args"]
    assert {"x509": "pki-host-cert"} in running["watch"] and running["name"] == "salt-api"


def test_the_monitoring_host_routes_the_autoscale_alerts_to_salt_api(compiled, tmp_path):
    states = compiled["db3-standby"]
    token = states["monitoring-alertmanager-autoscale-token"]["args"]
    assert (token["name"], token["mode"], token["group"], token["show_changes"]) == (
        "/etc/prometheus/airflow-ha-autoscale.token", "0640", "prometheus", False)
    # the same token as the CA host's
    assert token["contents"] == compiled["db1-standby"]["autoscale-webhook-token"]["args"]["contents"]
    text = states["monitoring-alertmanager-config"]["text"]
    config = yaml.safe_load(text)
    route = config["route"]["routes"][0]
    assert route["receiver"] == "airflow-ha-autoscale" and route["continue"] is True
    assert route["matchers"] == ['autoscale =~ "up|down"']
    receiver = next(r for r in config["receivers"] if r["name"] == "airflow-ha-autoscale")
    hook = receiver["webhook_configs"][0]
    assert hook["url"] == URL and hook["send_resolved"] is False
    assert hook["http_config"] == {"authorization": {"type": "Bearer",
                                                     "credentials_file": "/etc/prometheus/airflow-ha-autoscale.token"},
                                   "tls_config": {"ca_file": "/etc/airflow-ha/pki/ca.crt"}}
    assert [r["name"] for r in config["receivers"]][0] == "airflow-ha"  # the existing receiver stays
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    out = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    rules = states["monitoring-prometheus-rules"]["text"]
    assert "alert: CeleryBacklogHigh" in rules and "alert: CeleryBacklogIdle" in rules
    (tmp_path / "rules.yml").write_text(rules)
    out = subprocess.run([PROMTOOL, "check", "rules", str(tmp_path / "rules.yml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # the standby worker is probed apart: its stopped worker is no AirflowWorkerDown
    scrape = yaml.safe_load(states["monitoring-prometheus-config"]["text"])
    targets = {job["job_name"]: [t for c in job.get("static_configs", []) for t in c["targets"]]
               for job in scrape["scrape_configs"]}
    assert targets["airflow_worker"] == ["10.83.0.21:8793"]
    assert targets["airflow_standby_worker"] == ["10.83.0.22:8793"]


def test_without_a_standby_host_nothing_new_renders(compiled):
    assert compiled["db1-plain"] == {}
    states = compiled["db3-plain"]
    assert "monitoring-alertmanager-autoscale-token" not in states
    config = yaml.safe_load(states["monitoring-alertmanager-config"]["text"])
    assert "routes" not in config["route"]
    assert [r["name"] for r in config["receivers"]] == ["airflow-ha"]
    assert "CeleryBacklog" not in states["monitoring-prometheus-rules"]["text"]
    assert "airflow_standby_worker" not in states["monitoring-prometheus-config"]["text"]


def orchestrate_in_fresh_process(pillar, root, secrets_dir, cache_root):
    """orch.autoscale as the master renders it (its own id, in no inventory) with orchestrate ``pillar``."""
    import salt.client

    from clusters.state_render import render_tool, state_args

    opts = render_tool.minion_opts(render_tool.MASTER_ID, "compact", "debian12", secrets_dir, cache_root,
                                   (root,), cache_tag="-autoscale-orch")
    high = salt.client.Caller(mopts=opts).cmd("state.show_sls", "orch.autoscale", pillar=pillar)
    assert isinstance(high, dict), high
    return {state_id: state_args(chunk) for state_id, chunk in high.items() if isinstance(chunk, dict)}


@pytest.fixture(scope="module")
def orchestrates(tls_env, tmp_path_factory):
    root = str(standby_root(tmp_path_factory.mktemp("autoscale-orch")))
    plain = str(tmp_path_factory.mktemp("autoscale-orch-plain"))
    jobs = {"up": ({"action": "up"}, root), "down": ({"action": "down"}, root), "none": ({}, root),
            "sideways": ({"action": "sideways"}, root), "plain-up": ({"action": "up"}, plain)}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        pending = {k: pool.apply_async(orchestrate_in_fresh_process, (p, r, *tls_env)) for k, (p, r) in jobs.items()}
        return {k: p.get(timeout=600) for k, p in pending.items()}


def test_orch_autoscale_targets_the_standby_hosts(orchestrates):
    up = orchestrates["up"]["orch-autoscale-up"]
    assert (up["fun"], up["name"], up["tgt"], up["tgt_type"]) == ("salt.function", "airflow_ha.standby_up",
                                                                  STANDBY_HOST, "list")
    down = orchestrates["down"]["orch-autoscale-down"]
    assert (down["name"], down["tgt"], down["kwarg"]) == ("airflow_ha.standby_down", STANDBY_HOST, {"timeout": 600})
    for bad in ("none", "sideways"):
        refused = orchestrates[bad]["orch-autoscale-refused"]
        assert refused["fun"] == "test.fail_without_changes" and "give up" in refused["name"]
    assert list(orchestrates["plain-up"]) == ["orch-autoscale-no-standby-host"]
