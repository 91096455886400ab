"""The gates and the worker drain of _modules/airflow_ha.py with the celery
and airflow CLIs stubbed: what is sent to which node, through the env file
(no secret on a command line), the waits and their failures naming the host."""

import json

import pytest
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha

NODE = "celery@af1"
SECRET = "amqps://airflow:s3cret@10.0.0.1:5671/airflow"


@pytest.fixture
def configure_loader_modules(http_utils):
    return {airflow_ha: {"__utils__": http_utils, "__salt__": {}, "__grains__": {"id": "af1"}}}


@pytest.fixture(autouse=True)
def fast(monkeypatch, tmp_path):
    import time

    clock = {"now": 0.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s))
    env = tmp_path / "airflow.env"
    env.write_text(f"AIRFLOW_HOME='/opt/airflow'\nAIRFLOW__CELERY__BROKER_URL='{SECRET}'\n")
    real = airflow_ha._read_env_file
    monkeypatch.setattr(airflow_ha, "_read_env_file", lambda path: real(str(env)))
    return clock


class FakeCelery:
    """celery inspect/control: answers per command (a list is consumed one call at a time)."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def __call__(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        kind = cmd[cmd.index("--json") - 5]  # inspect | control
        command, args = cmd[cmd.index("--json") + 1], cmd[cmd.index("--json") + 2:]
        key = " ".join([kind, command, *args])
        answer = self.answers[key]
        if isinstance(answer, list) and answer and isinstance(answer[0], tuple):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if answer == "no reply":
            return {"retcode": 69, "stdout": "", "stderr": "Error: No nodes replied within time constraint"}
        replies = answer[1] if isinstance(answer, tuple) else answer
        out = json.dumps([{NODE: replies}] if kind == "control" else {NODE: replies})
        return {"retcode": 0, "stdout": "some warning\n" + out + "\n", "stderr": ""}


def use(answers):
    fake = FakeCelery(answers)
    airflow_ha.__salt__["cmd.run_all"] = fake
    return fake


def test_commands_go_to_the_one_node_with_the_broker_url_in_the_environment_only():
    fake = use({"inspect ping": {"ok": "pong"}})
    assert airflow_ha.worker_ping("af1") is True
    (cmd, kwargs), = fake.calls
    assert cmd[:4] == ["/opt/airflow/venv/bin/celery", "--app", airflow_ha.CELERY_APP, "--quiet"]
    assert cmd[cmd.index("--destination") + 1] == NODE and "--json" in cmd
    assert not [a for a in cmd if "s3cret" in a]
    assert kwargs["env"]["AIRFLOW__CELERY__BROKER_URL"] == SECRET
    assert kwargs["python_shell"] is False and kwargs["output_loglevel"] == "quiet"


def test_nodename_is_celerys_default_of_the_host():
    import socket

    assert airflow_ha.worker_nodename() == f"celery@{socket.gethostname()}"
    assert airflow_ha.worker_nodename("af2") == "celery@af2"
    assert airflow_ha.worker_nodename("w@af2") == "w@af2"


def test_ping_without_a_reply_is_false_and_a_broken_cli_raises():
    use({"inspect ping": "no reply"})
    assert airflow_ha.worker_ping("af1") is False
    airflow_ha.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "ImportError: x"}
    with pytest.raises(CommandExecutionError, match="celery inspect ping to celery@af1 failed on af1.*ImportError"):
        airflow_ha.worker_ping("af1")


def test_drain_cancels_every_queue_then_waits_for_active_and_reserved(fast):
    fake = use({
        "inspect active_queues": [{"name": "default"}, {"name": "card"}],
        "control cancel_consumer card": {"ok": "no longer consuming from card"},
        "control cancel_consumer default": {"ok": "no longer consuming from default"},
        "inspect active": [("a", [{"id": "t1"}, {"id": "t2"}]), ("a", [{"id": "t2"}]), ("a", [])],
        "inspect reserved": [("r", [{"id": "t3"}]), ("r", []), ("r", [])],
    })
    report = airflow_ha.drain_worker("af1", timeout=600, interval=5)
    assert report == {"node": NODE, "replied": True, "queues": ["card", "default"], "waited_s": 10.0,
                      "tasks_at_start": 3, "tasks_finished": 3}
    sent = [c[0][c[0].index("--json") + 1:] for c in fake.calls]
    assert sent[:3] == [["active_queues"], ["cancel_consumer", "card"], ["cancel_consumer", "default"]]
    assert not [s for s in sent if s[0] == "add_consumer"]


def test_drain_times_out_naming_the_host_and_gives_the_queues_back(fast):
    fake = use({
        "inspect active_queues": [{"name": "default"}],
        "control cancel_consumer default": {"ok": "no longer consuming from default"},
        "control add_consumer default": {"ok": "add consumer default"},
        "inspect active": [{"id": "long-task"}],
        "inspect reserved": [],
    })
    with pytest.raises(CommandExecutionError, match=r"af1: Celery worker celery@af1 still runs 1 task\(s\) after 60 s"
                                                    r".*long-task.*consumes its queues again.*airflow:drain_timeout"):
        airflow_ha.drain_worker("af1", timeout=60, interval=5)
    assert [c[0][-2:] for c in fake.calls][-1] == ["add_consumer", "default"]
    assert fast["now"] > 60


def test_drain_of_a_worker_that_does_not_reply_has_nothing_to_do():
    use({"inspect active_queues": "no reply"})
    assert airflow_ha.drain_worker("af1")["replied"] is False


def test_refused_cancel_raises():
    use({"inspect active_queues": [{"name": "default"}],
         "control cancel_consumer default": {"error": "not consuming"}})
    with pytest.raises(CommandExecutionError, match="cancel_consumer default to celery@af1 failed: not consuming"):
        airflow_ha.drain_worker("af1")


def test_wait_worker_until_it_answers_and_consumes(fast):
    use({"inspect ping": [("p", "no reply"), ("p", {"ok": "pong"})],
         "inspect active_queues": [("q", []), ("q", [{"name": "default"}])]})
    report = airflow_ha.wait_worker("af1", timeout=300, interval=5)
    assert report["queues"] == ["default"] and report["waited_s"] == 10.0


def test_wait_worker_times_out_naming_the_host():
    use({"inspect ping": "no reply"})
    with pytest.raises(CommandExecutionError, match="af1: Celery worker celery@af1 does not answer ping after 20 s"):
        airflow_ha.wait_worker("af1", timeout=20, interval=5)


def test_airflow_hostname_is_asked_of_airflow():
    calls = []

    def run_all(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return {"retcode": 0, "stdout": "warning\naf1.lab.internal\n", "stderr": ""}

    airflow_ha.__salt__["cmd.run_all"] = run_all
    assert airflow_ha.airflow_hostname() == "af1.lab.internal"
    assert "get_hostname" in calls[0][0][-1] and calls[0][1]["env"]["AIRFLOW_HOME"] == "/opt/airflow"


def test_wait_jobs_checks_each_component_on_the_airflow_hostname(monkeypatch, fast):
    seen = []
    alive = {"scheduler": [True], "triggerer": [False, True], "dag_processor": [True]}
    monkeypatch.setattr(airflow_ha, "airflow_hostname", lambda *a: "af1.lab.internal")
    monkeypatch.setattr(airflow_ha, "jobs_check",
                        lambda c, h, *a: seen.append((c, h)) or alive[c].pop(0))
    report = airflow_ha.wait_jobs("scheduler,triggerer,dag_processor", timeout=60, interval=5)
    assert report == {"hostname": "af1.lab.internal", "components": ["scheduler", "triggerer", "dag_processor"],
                      "waited_s": 5.0}
    assert seen == [("scheduler", "af1.lab.internal"), ("triggerer", "af1.lab.internal"),
                    ("dag_processor", "af1.lab.internal"), ("triggerer", "af1.lab.internal")]


def test_wait_jobs_times_out_naming_host_and_components(monkeypatch):
    monkeypatch.setattr(airflow_ha, "jobs_check", lambda c, h, *a: c == "scheduler")
    with pytest.raises(CommandExecutionError, match=r"af1 \(af1.x\): no live triggerer job after 30 s"):
        airflow_ha.wait_jobs(["scheduler", "triggerer"], hostname="af1.x", timeout=30)
    with pytest.raises(CommandExecutionError, match="unknown component worker"):
        airflow_ha.wait_jobs(["worker"], hostname="af1")
