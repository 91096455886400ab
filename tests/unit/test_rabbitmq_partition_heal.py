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


def stub(heal, monkeypatch, status, answering=(), status_rc=0):
    calls = []

    def run(*cmd):
        calls.append(cmd)
        if cmd[:2] == ("rabbitmqctl", "cluster_status"):
            return subprocess.CompletedProcess(cmd, status_rc, json.dumps(status) if status_rc == 0 else "", "")
        if cmd[0] == "rabbitmq-diagnostics":
            return subprocess.CompletedProcess(cmd, 0 if cmd[2] in answering else 69, "", "")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(heal, "run", run)
    return calls


def restarted(calls):
    return [c[1] for c in calls if c[0] == "rabbitmqctl" and c[1] in ("stop_app", "start_app")]


def test_stranded_minority_node_restarts_once_the_majority_answers(heal, monkeypatch):
    status = {"disk_nodes": NODES, "running_nodes": ["rabbit@db2"],
              "partitions": {"rabbit@db2": ["rabbit@db1", "rabbit@db3"]}}
    calls = stub(heal, monkeypatch, status, answering=("rabbit@db1", "rabbit@db3"))
    assert heal.main() == 0
    assert restarted(calls) == ["stop_app", "start_app"]


def test_minority_node_waits_while_the_cut_is_still_on(heal, monkeypatch):
    status = {"disk_nodes": NODES, "running_nodes": ["rabbit@db2"],
              "partitions": {"rabbit@db2": ["rabbit@db1", "rabbit@db3"]}}
    calls = stub(heal, monkeypatch, status, answering=())
    assert heal.main() == 0
    assert restarted(calls) == []


@pytest.mark.parametrize("status", [
    # healthy
    {"disk_nodes": NODES, "running_nodes": NODES, "partitions": {}},
    # the majority side of the same partition
    {"disk_nodes": NODES, "running_nodes": ["rabbit@db1", "rabbit@db3"],
     "partitions": {"rabbit@db1": ["rabbit@db2"], "rabbit@db3": ["rabbit@db2"]}},
    # a node down, no partition: nothing to heal
    {"disk_nodes": NODES, "running_nodes": ["rabbit@db1"], "partitions": {}},
])
def test_nothing_to_do(heal, monkeypatch, status):
    calls = stub(heal, monkeypatch, status, answering=tuple(NODES))
    assert heal.main() == 0
    assert restarted(calls) == []


def test_paused_node_is_left_to_pause_minority(heal, monkeypatch):
    calls = stub(heal, monkeypatch, {}, status_rc=69)
    assert heal.main() == 0
    assert restarted(calls) == []
