"""Autoscaling on queue depth (issue 20): the inventory's `standby` (checks
naming the key and the fix), the webhook request's verdict
(ha_inventory.autoscale_request: bearer token, payload of our firing alerts),
the reactor's reaction (salt/reactor/autoscale.sls, loaded as the master
does), the standby hosts' up/down (airflow_ha.standby_up/standby_down with
__salt__ stubbed), the probes that leave a stopped standby worker out of
AirflowWorkerDown, and the wiring of the master config."""

import copy
import importlib.util
import logging

import pytest
import yaml
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha
import _modules.ha_inventory as ha_inventory
import _modules.ha_monitoring as ha_monitoring
from tests.helpers.inventory import REPO, load_inventory, load_ports
from tests.helpers.standby import STANDBY_HOST, standby_inventory

TOKEN = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"


def errors_of(inventory, secrets):
    return ha_inventory.find_errors(inventory, secrets, load_ports())


# ------------------------------------------------------------ the inventory


@pytest.mark.parametrize("topology", ["full", "compact"])
def test_the_shipped_inventories_have_no_standby_host(topology):
    assert ha_inventory.standby_members(load_inventory(topology)) == []


def test_a_standby_worker_is_valid_and_listed(secrets):
    inv = standby_inventory()
    assert errors_of(inv, secrets) == []
    assert ha_inventory.standby_members(inv) == [STANDBY_HOST]
    norm = ha_inventory.normalize(inv)
    assert norm["standby"] == [STANDBY_HOST]
    assert norm["hosts"][STANDBY_HOST]["standby"] is True and norm["hosts"]["af1"]["standby"] is False


@pytest.mark.parametrize("host, value, message", [
    ("af2", "yes", "inventory:hosts:af2:standby is 'yes': use true (the highstate leaves its Celery worker "
                   "stopped, the autoscaling starts it on a backlog) or false, or leave it out"),
    ("db1", True, "inventory:hosts:db1:standby is true but db1 has no role 'worker' (only a Celery worker is "
                  "started on a backlog): remove db1's standby or give it the worker role"),
])
def test_a_bad_standby_names_the_key_and_the_fix(secrets, host, value, message):
    inv = copy.deepcopy(load_inventory("compact"))
    inv["hosts"][host]["standby"] = value
    assert message in errors_of(inv, secrets)


def test_a_queue_served_only_by_standby_hosts_is_refused(secrets):
    inv = standby_inventory()
    inv["hosts"]["af1"]["queues"] = ["default"]  # card now only on the standby af2
    assert ("inventory:hosts: queue 'card' (the card_processing DAG's tasks (salt/dags/card_processing.py), the "
            "only workers the card target admits) is served only by standby hosts (af2), whose workers are stopped "
            "until a backlog: set inventory:hosts:<name>:standby false on one of them, or add 'card' to the queues "
            "of a worker host that is no standby") in errors_of(inv, secrets)
    inv["hosts"]["af1"]["standby"] = True
    assert any("queue 'default'" in e and "served only by standby hosts (af1, af2)" in e
               for e in errors_of(inv, secrets))


# ----------------------------------------------------------- the request


def payload(*alerts, status="firing"):
    return {"version": "4", "status": status, "receiver": "airflow-ha-autoscale",
            "alerts": [{"status": s, "labels": {"alertname": name, "autoscale": label, "severity": "info"}}
                       for name, label, s in alerts]}


def event(post, auth=f"Bearer {TOKEN}"):
    headers = {"Content-Type": "application/json", "Host": "10.83.0.11:8000"}
    if auth is not None:
        headers["Authorization"] = auth
    return {"headers": headers, "post": post, "body": "...", "_stamp": "2026-01-01T00:00:00"}


def test_a_firing_backlog_alert_with_the_token_scales_up():
    verdict = ha_inventory.autoscale_request(event(payload(("CeleryBacklogHigh", "up", "firing"))), TOKEN)
    assert verdict == {"action": "up", "reason": "CeleryBacklogHigh firing: scale up", "alerts": ["CeleryBacklogHigh"]}
    verdict = ha_inventory.autoscale_request(event(payload(("CeleryBacklogIdle", "down", "firing"))), TOKEN + "\n")
    assert verdict["action"] == "down"


@pytest.mark.parametrize("data, token, reason", [
    (event(payload(("CeleryBacklogHigh", "up", "firing")), auth=None), TOKEN,
     "the request has no 'Authorization: Bearer' header"),
    (event(payload(("CeleryBacklogHigh", "up", "firing")), auth="Basic " + TOKEN), TOKEN,
     "the request has no 'Authorization: Bearer' header"),
    (event(payload(("CeleryBacklogHigh", "up", "firing")), auth="Bearer " + TOKEN[:-1]), TOKEN,
     "the request's bearer token is not the webhook token"),
    (event(payload(("CeleryBacklogHigh", "up", "firing"))), None, "no webhook token on the master"),
    (event(payload(("CeleryBacklogHigh", "up", "firing"))), " ", "no webhook token on the master"),
    (event({"text": "hello"}), TOKEN, "the body is not an Alertmanager webhook payload"),
    (event(["not", "a", "mapping"]), TOKEN, "the body is not an Alertmanager webhook payload"),
    (event(payload(("CeleryBacklogHigh", "up", "resolved"), status="resolved")), TOKEN,
     "the alert group is 'resolved', not firing: nothing to do"),
    (event(payload(("CeleryBacklogHigh", "up", "resolved"))), TOKEN, "no alert of the payload is firing"),
    (event(payload(("HostDown", "up", "firing"))), TOKEN, "alert 'HostDown' (autoscale='up') is not an autoscale alert"),
    (event(payload(("CeleryBacklogHigh", "down", "firing"))), TOKEN,
     "alert 'CeleryBacklogHigh' (autoscale='down') is not an autoscale alert"),
    (event(payload(("CeleryBacklogHigh", "up", "firing"), ("CeleryBacklogIdle", "down", "firing"))), TOKEN,
     "the payload asks for both down and up: nothing done"),
    ("not a mapping", TOKEN, "the request has no 'Authorization: Bearer' header"),
])
def test_anything_else_is_refused_with_its_reason(data, token, reason):
    verdict = ha_inventory.autoscale_request(data, token)
    assert verdict["action"] is None
    assert verdict["reason"].startswith(reason), verdict["reason"]


def test_the_header_name_is_read_in_any_case():
    data = event(payload(("CeleryBacklogHigh", "up", "firing")), auth=None)
    data["headers"]["authorization"] = f"bearer {TOKEN}"
    assert ha_inventory.autoscale_request(data, TOKEN)["action"] == "up"


# ------------------------------------------------------------ the reactor


def load_reactor(file_roots, token_file=None):
    """salt/reactor/autoscale.sls as the py renderer runs it: a module with the renderer's globals."""
    spec = importlib.util.spec_from_file_location("autoscale_reactor", REPO / "salt" / "reactor" / "autoscale.sls",
                                                  loader=None)
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("autoscale_reactor", str(REPO / "salt" / "reactor" / "autoscale.sls"))
    spec = importlib.util.spec_from_loader("autoscale_reactor", loader)
    module = importlib.util.module_from_spec(spec)
    opts = {"file_roots": {"base": file_roots}}
    if token_file:
        opts["airflow_ha_autoscale_token_file"] = str(token_file)
    module.__dict__.update(__opts__=opts, saltenv="base", tag=ha_inventory.AUTOSCALE_TAG)
    loader.exec_module(module)
    return module


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "autoscale-webhook.token"
    path.write_text(TOKEN + "\n")
    path.chmod(0o600)
    return path


def test_the_reactor_runs_orch_autoscale_with_the_action_only(token_file, caplog):
    reactor = load_reactor(["/nonexistent", str(REPO / "salt")], token_file)
    reactor.data = event(payload(("CeleryBacklogHigh", "up", "firing")))
    with caplog.at_level(logging.WARNING):
        reaction = reactor.run()
    assert reaction == {"airflow-ha-autoscale-up": {"runner.state.orchestrate": [
        {"args": [{"mods": "orch.autoscale"}, {"pillar": {"action": "up", "alerts": ["CeleryBacklogHigh"]}}]}]}}
    assert TOKEN not in repr(reaction) and TOKEN not in caplog.text  # nothing of the request reaches the job
    assert "CeleryBacklogHigh firing: scale up" in caplog.text


def test_the_reactor_refuses_a_bad_token_and_logs_why(token_file, caplog):
    reactor = load_reactor([str(REPO / "salt")], token_file)
    reactor.data = event(payload(("CeleryBacklogIdle", "down", "firing")), auth="Bearer guess")
    with caplog.at_level(logging.WARNING):
        assert reactor.run() == {}
    assert "autoscale webhook refused: the request's bearer token is not the webhook token" in caplog.text
    assert "guess" not in caplog.text


def test_the_reactor_without_its_token_file_refuses(tmp_path, caplog):
    reactor = load_reactor([str(REPO / "salt")], tmp_path / "missing")
    reactor.data = event(payload(("CeleryBacklogHigh", "up", "firing")))
    with caplog.at_level(logging.WARNING):
        assert reactor.run() == {}
    assert "no webhook token on the master" in caplog.text


def test_the_reactor_reads_the_token_file_salt_autoscale_writes():
    reactor = load_reactor([str(REPO / "salt")])
    assert reactor._ha_inventory().AUTOSCALE_TOKEN_FILE == ha_inventory.AUTOSCALE_TOKEN_FILE


# ------------------------------------------------- up and down on a standby host


class Service:
    def __init__(self, running):
        self.running, self.calls = running, []

    def status(self, name):
        self.calls.append(("status", name))
        return self.running

    def start(self, name):
        self.calls.append(("start", name))
        self.running = True
        return True

    def stop(self, name):
        self.calls.append(("stop", name))
        self.running = False
        return True


@pytest.fixture
def standby_host(monkeypatch):
    def make(running, host=STANDBY_HOST):
        svc = Service(running)
        salt = {"service.status": svc.status, "service.start": svc.start, "service.stop": svc.stop,
                "ha_inventory.standby_hosts": lambda: [STANDBY_HOST]}
        monkeypatch.setattr(airflow_ha, "__salt__", salt, raising=False)
        monkeypatch.setattr(airflow_ha, "__grains__", {"id": host}, raising=False)
        return svc
    return make


def test_up_starts_a_stopped_standby_worker(standby_host):
    svc = standby_host(running=False)
    assert airflow_ha.standby_up() == {"host": "af2", "changed": True, "comment": "af2: airflow-worker started"}
    assert svc.calls == [("status", "airflow-worker"), ("start", "airflow-worker")]


def test_up_leaves_a_running_worker_alone_and_says_so(standby_host):
    svc = standby_host(running=True)
    assert airflow_ha.standby_up()["comment"] == "af2: airflow-worker already runs: nothing to do"
    assert svc.calls == [("status", "airflow-worker")]


def test_down_drains_then_stops(standby_host, monkeypatch):
    svc = standby_host(running=True)
    drained = []
    monkeypatch.setattr(airflow_ha, "drain_worker", lambda timeout, interval: drained.append(timeout) or
                        {"node": "celery@af2", "waited_s": 12.0, "tasks_finished": 3})
    ret = airflow_ha.standby_down(timeout=300)
    assert drained == [300] and svc.calls[-1] == ("stop", "airflow-worker") and not svc.running
    assert ret["changed"] and ret["comment"] == "af2: airflow-worker drained (3 task(s) finished in 12.0 s) and stopped"


def test_down_of_a_stopped_worker_does_nothing_and_says_so(standby_host, monkeypatch):
    svc = standby_host(running=False)
    monkeypatch.setattr(airflow_ha, "drain_worker", lambda **kw: pytest.fail("drained a stopped worker"))
    assert airflow_ha.standby_down()["comment"] == "af2: airflow-worker is already stopped: nothing to do"
    assert svc.calls == [("status", "airflow-worker")]


def test_a_failed_drain_leaves_the_worker_running(standby_host, monkeypatch):
    svc = standby_host(running=True)

    def timeout(**kw):
        raise CommandExecutionError("af2: Celery worker celery@af2 still runs 1 task(s) after 600 s")

    monkeypatch.setattr(airflow_ha, "drain_worker", timeout)
    with pytest.raises(CommandExecutionError, match="still runs 1 task"):
        airflow_ha.standby_down()
    assert svc.running and ("stop", "airflow-worker") not in svc.calls


@pytest.mark.parametrize("fun", ["standby_up", "standby_down"])
def test_a_host_that_is_no_standby_is_refused(standby_host, fun):
    svc = standby_host(running=True, host="af1")
    with pytest.raises(CommandExecutionError, match=r"af1 is no standby worker \(inventory:hosts:af1:standby is "
                                                    r"not true; standby hosts: af2\)"):
        getattr(airflow_ha, fun)()
    assert svc.calls == []


# ------------------------------------------------------- probes and wiring


def test_a_standby_worker_is_probed_apart_from_the_others():
    params = {"api_port": 8080, "health_path": "/h", "scheduler_health_port": 8974, "log_server_port": 8793,
              "trigger_log_server_port": 8794, "public_port": 80, "public_tls_port": 443, "restapi_port": 8008}
    jobs = {j["job_name"]: [t["host"] for t in j["targets"]] for j in
            ha_monitoring.probes_for(ha_inventory.normalize(standby_inventory()), params)}
    assert jobs["airflow_worker"] == ["af1"] and jobs["airflow_standby_worker"] == [STANDBY_HOST]
    plain = {j["job_name"] for j in ha_monitoring.probes_for(ha_inventory.normalize(load_inventory("compact")), params)}
    assert "airflow_standby_worker" not in plain


def test_the_master_config_maps_the_hook_to_the_reactor():
    defaults = yaml.safe_load((REPO / "salt" / "autoscale" / "defaults.yaml").read_text())
    assert defaults["hook"] == ha_inventory.AUTOSCALE_HOOK
    assert ha_inventory.AUTOSCALE_TAG == "salt/netapi/hook/airflow-ha/autoscale"
    for path in ("README.md", "tools/lab/provision.sh", "docs/operations.md"):
        text = (REPO / path).read_text()
        assert "'salt/netapi/hook/airflow-ha/autoscale':" in text, path
        assert "salt://reactor/autoscale.sls" in text, path


def test_the_webhook_token_goes_to_the_monitoring_and_ca_hosts():
    role_secrets = ha_inventory.read_role_secrets()
    inv = load_inventory("compact")
    assert "autoscale:webhook_token" in ha_inventory.host_secrets(inv, "db1", role_secrets)  # ca
    assert "autoscale:webhook_token" in ha_inventory.host_secrets(inv, "db3", role_secrets)  # monitoring
    assert "autoscale:webhook_token" not in ha_inventory.host_secrets(inv, "af1", role_secrets)


def test_salts_own_py_renderer_runs_the_reactor(token_file):
    """As the master's reactor renders it: Salt's template pipeline, `#!py`, with `tag` and `data`."""
    import salt.config
    import salt.loader
    import salt.template

    opts = salt.config.minion_config(None)
    opts.update(file_roots={"base": [str(REPO / "salt")]}, airflow_ha_autoscale_token_file=str(token_file))
    renderers = salt.loader.render(opts, {})

    def react(data):
        return salt.template.compile_template(
            str(REPO / "salt" / "reactor" / "autoscale.sls"), renderers, opts["renderer"],
            opts["renderer_blacklist"], opts["renderer_whitelist"], tag=ha_inventory.AUTOSCALE_TAG, data=data)

    assert react(event(payload(("CeleryBacklogIdle", "down", "firing")))) == {"airflow-ha-autoscale-down": {
        "runner.state.orchestrate": [{"args": [{"mods": "orch.autoscale"},
                                               {"pillar": {"action": "down", "alerts": ["CeleryBacklogIdle"]}}]}]}}
    assert react(event(payload(("CeleryBacklogIdle", "down", "firing")), auth="Bearer nope")) == {}
