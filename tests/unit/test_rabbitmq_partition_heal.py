"""The partition heal script's decisions (salt/rabbitmq/files/rabbitmq-partition-heal.py) with the
RabbitMQ CLI tools stubbed: it restarts the rabbit app only on a node stranded in a minority
partition whose majority answers again. The lab's partition drill runs it against real nodes."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "salt" / "rabbitmq" / "files" / "rabbitmq-partition-heal.py"
NODES = ["rabbit@db1", "rabbit@db2", "rabbit@db3"]


@pytest.fixture
def heal():
    spec = importlib.util.spec_from_file_location("rabbitmq_partition_heal", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stub(heal, monkeypatch, status, answering=(), status_rc=0, apps_running=None, host="db1", boot=(),
         mnesia_stops=None):
    """``answering``: nodes that answer a ping; ``apps_running``: those whose rabbit app runs (default: the same);
    ``boot``: this node's successive boot states as its VM reports them (None: the VM does not answer);
    ``mnesia_stops``: successive answers to "has Mnesia stopped" after stop_app (default: it has)."""
    calls = []
    mnesia_stops = list(mnesia_stops or [])
    boots = list(boot)
    apps_running = answering if apps_running is None else apps_running
    statuses = list(status) if isinstance(status, list) else [status]  # successive reads; the last one repeats

    def run(*cmd):
        calls.append(cmd)
        if cmd[:2] == ("rabbitmqctl", "cluster_status"):
            current = statuses.pop(0) if len(statuses) > 1 else statuses[0]
            return subprocess.CompletedProcess(cmd, status_rc, json.dumps(current) if status_rc == 0 else "", "")
        if cmd[-1] == "mnesia:system_info(is_running).":
            return subprocess.CompletedProcess(cmd, 0, "no\n" if mnesia_stops.pop(0) else "yes\n", "") \
                if mnesia_stops else subprocess.CompletedProcess(cmd, 0, "no\n", "")
        if cmd[:2] == ("rabbitmqctl", "eval"):
            state = boots.pop(0) if len(boots) > 1 else (boots[0] if boots else None)
            out = f"{{rabbit@{host},{state},\n [rabbit@db3,rabbit@db2,rabbit@db1]}}\n" if state else ""
            return subprocess.CompletedProcess(cmd, 0 if state else 69, out, "")
        if cmd[0] == "rabbitmq-diagnostics":
            up = answering if cmd[-1] == "ping" else apps_running
            return subprocess.CompletedProcess(cmd, 0 if cmd[2] in up else 69, "", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(heal, "run", run)
    monkeypatch.setattr(heal.socket, "gethostname", lambda: host)
    monkeypatch.setattr(heal, "GRACE_SECONDS", 0)
    return calls


def restarted(calls):
    """The restarts, as (target node or None for this one, step)."""
    return [(c[2] if c[1] == "-n" else None, c[-1]) for c in calls
            if c[0] == "rabbitmqctl" and c[-1] in ("stop_app", "start_app")]


def test_stranded_minority_node_restarts_once_the_majority_answers(heal, monkeypatch):
    status = {"disk_nodes": NODES, "running_nodes": ["rabbit@db2"],
              "partitions": {"rabbit@db2": ["rabbit@db1", "rabbit@db3"]}}
    calls = stub(heal, monkeypatch, status, answering=("rabbit@db1", "rabbit@db3"), host="db2")
    assert heal.main() == 0
    assert restarted(calls) == [(None, "stop_app"), (None, "start_app")]


def test_minority_node_waits_while_the_cut_is_still_on(heal, monkeypatch):
    status = {"disk_nodes": NODES, "running_nodes": ["rabbit@db2"],
              "partitions": {"rabbit@db2": ["rabbit@db1", "rabbit@db3"]}}
    calls = stub(heal, monkeypatch, status, answering=(), host="db2")
    assert heal.main() == 0
    assert restarted(calls) == []


@pytest.mark.parametrize("status", [
    # healthy
    {"disk_nodes": NODES, "running_nodes": NODES, "partitions": {}},
    # a node down, no partition: nothing to heal
    {"disk_nodes": NODES, "running_nodes": ["rabbit@db1"], "partitions": {}},
])
def test_nothing_to_do(heal, monkeypatch, status):
    calls = stub(heal, monkeypatch, status, answering=tuple(NODES))
    assert heal.main() == 0
    assert restarted(calls) == []


@pytest.mark.parametrize("boot, answering", [
    (["stopped"], ()),  # paused while the cut is on: its CLI reaches neither peer
    (["stopped"], ("rabbit@db1",)),  # a peer down too: pause_minority decides
    (["booting"], ("rabbit@db1", "rabbit@db3")),  # starting
    (["stopped", "ready"], ("rabbit@db1", "rabbit@db3")),  # pause_minority restarted it within the grace period
    ([None], ("rabbit@db1", "rabbit@db3")),  # the VM itself is down: systemd's business
])
def test_paused_node_is_left_to_pause_minority(heal, monkeypatch, boot, answering):
    calls = stub(heal, monkeypatch, {}, status_rc=69, host="db2", boot=boot, answering=answering)
    assert heal.main() == 0
    assert restarted(calls) == []


def test_a_node_left_paused_while_every_peer_runs_starts_its_app(heal, monkeypatch, capsys):
    calls = stub(heal, monkeypatch, {}, status_rc=69, host="db2", boot=["stopped"],
                 answering=("rabbit@db1", "rabbit@db3"))
    assert heal.main() == 0
    # stop_app first: the app may have stopped with Mnesia left running, which start_app alone refuses
    assert restarted(calls) == [(None, "stop_app"), (None, "start_app")]
    assert "starting the rabbit app" in capsys.readouterr().out


def test_a_lone_node_is_never_started_by_the_timer(heal, monkeypatch):
    """A node whose cluster is itself (before its join, or after a reset) has no peers to go by."""
    calls = stub(heal, monkeypatch, {}, status_rc=69, host="db2", boot=["stopped"])
    monkeypatch.setattr(heal, "local_state", lambda: ("rabbit@db2", "stopped", ["rabbit@db2"]))
    assert heal.main() == 0
    assert restarted(calls) == []


MAJORITY_VIEW = {"disk_nodes": NODES, "running_nodes": ["rabbit@db1", "rabbit@db3"],
                 "partitions": {"rabbit@db1": ["rabbit@db2"], "rabbit@db3": ["rabbit@db2"]}}


def test_majority_restarts_a_peer_that_runs_again_but_stays_left_out(heal, monkeypatch):
    calls = stub(heal, monkeypatch, MAJORITY_VIEW, answering=tuple(NODES), host="db1")
    assert heal.main() == 0
    assert restarted(calls) == [("rabbit@db2", "stop_app"), ("rabbit@db2", "start_app")]


@pytest.mark.parametrize("partitions", [
    # the majority still records a node that has rejoined: only that node's app going down clears it
    {"rabbit@db1": ["rabbit@db2"], "rabbit@db3": ["rabbit@db2"]},
    # a recorder that names a majority is itself the minority side
    {"rabbit@db2": ["rabbit@db1", "rabbit@db3"]},
])
def test_a_rejoined_node_that_the_records_still_name_is_restarted(heal, monkeypatch, partitions):
    status = {"disk_nodes": NODES, "running_nodes": NODES, "partitions": partitions}
    calls = stub(heal, monkeypatch, status, answering=tuple(NODES), host="db1")
    assert heal.main() == 0
    assert restarted(calls) == [("rabbit@db2", "stop_app"), ("rabbit@db2", "start_app")]


def test_records_that_clear_within_the_grace_period_are_left_alone(heal, monkeypatch):
    healed = {"disk_nodes": NODES, "running_nodes": NODES, "partitions": {}}
    calls = stub(heal, monkeypatch, [MAJORITY_VIEW, healed], answering=tuple(NODES), host="db1")
    assert heal.main() == 0
    assert restarted(calls) == []


def test_only_the_first_node_of_the_majority_acts(heal, monkeypatch):
    calls = stub(heal, monkeypatch, MAJORITY_VIEW, answering=tuple(NODES), host="db3")
    assert heal.main() == 0
    assert restarted(calls) == []


@pytest.mark.parametrize("answering, apps_running", [
    (("rabbit@db1", "rabbit@db3"), ("rabbit@db1", "rabbit@db3")),  # the cut is still on
    (tuple(NODES), ("rabbit@db1", "rabbit@db3")),  # paused by pause_minority: it rejoins by itself
])
def test_majority_leaves_an_unreachable_or_paused_peer_alone(heal, monkeypatch, answering, apps_running):
    calls = stub(heal, monkeypatch, MAJORITY_VIEW, answering=answering, apps_running=apps_running, host="db1")
    assert heal.main() == 0
    assert restarted(calls) == []


def test_a_failed_restart_is_reported(heal, monkeypatch, capsys):
    calls = stub(heal, monkeypatch, MAJORITY_VIEW, answering=tuple(NODES), host="db1")
    real = heal.run
    monkeypatch.setattr(heal, "run", lambda *cmd: subprocess.CompletedProcess(cmd, 1, "", "boom")
                        if cmd[-1] == "stop_app" else real(*cmd))
    assert heal.main() == 1
    assert "stop_app failed: boom" in capsys.readouterr().err
    assert restarted(calls) == []


def test_mnesia_left_running_is_stopped_before_start_app(heal, monkeypatch):
    """A rabbit app stopped without its Mnesia keeps it through stop_app; start_app would then fail its
    prelaunch assertion (seen on the lab), so Mnesia is stopped first."""
    calls = stub(heal, monkeypatch, {}, status_rc=69, host="db2", boot=["stopped"],
                 answering=("rabbit@db1", "rabbit@db3"), mnesia_stops=[False])
    assert heal.main() == 0
    steps = [c[-1] for c in calls if c[-1] in ("stop_app", "start_app", "mnesia:stop().")]
    assert steps == ["stop_app", "mnesia:stop().", "start_app"]


def test_mnesia_already_stopped_is_left_alone(heal, monkeypatch):
    calls = stub(heal, monkeypatch, {}, status_rc=69, host="db2", boot=["stopped"],
                 answering=("rabbit@db1", "rabbit@db3"))
    assert heal.main() == 0
    assert "mnesia:stop()." not in [c[-1] for c in calls]
