"""The housekeeping drill (tools/lab/drill_housekeeping.py) against a fake lab: its
commands, what it checks and its FIGURE line; registered before the partition drill."""

import sys

import pytest

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill  # noqa: E402
import drill_dags  # noqa: E402
import drill_housekeeping  # noqa: E402

INV = {"hosts": {"db1": {"ip": "10.83.0.11", "roles": ["postgres"]},
                 "af2": {"ip": "10.83.0.22", "roles": ["scheduler", "worker"]},
                 "af1": {"ip": "10.83.0.21", "roles": ["scheduler", "worker"]}}}


class Lab:
    def __init__(self):
        self.commands = []
        self.result = {"airflow-db-clean.service": "success", "airflow-task-log-cleanup.service": "success"}
        self.units_on = {"af1"}
        self.left = "new.log\n"

    def run(self, host, script, check=True, timeout=120):
        self.commands.append((host, script))
        out, rc = "", 0
        if script.startswith("systemctl cat airflow-db-clean"):
            rc = 0 if host in self.units_on else 1
        elif script.startswith("systemctl show -p Result"):
            out = self.result[script.split()[-1]] + "\n"
        elif script.startswith("ls "):
            out = self.left
        return type("Proc", (), {"returncode": rc, "stdout": out, "stderr": ""})()


@pytest.fixture
def lab(monkeypatch):
    fake = Lab()
    monkeypatch.setattr(drill_housekeeping, "run", fake.run)
    monkeypatch.setattr(drill_dags, "orchestrate", lambda master, sls: (fake.commands.append((master, sls)) or True,
                                                                       12.0, {}))
    return fake


def test_registered_before_partition():
    assert drill.DRILLS.index("housekeeping") + 1 == drill.DRILLS.index("partition")


def test_a_healthy_lab_passes_and_prints_the_figure(lab, capsys):
    result = drill_housekeeping.drill_housekeeping(INV)
    assert result["db_clean_host"] == "af1" and set(result["task_log_cleanup_s"]) == {"af1", "af2"}
    assert ("af1", "systemctl start airflow-db-clean.service") in lab.commands
    assert ("af2", "systemctl start airflow-task-log-cleanup.service") in lab.commands
    assert ("db1", "orch.preflight") in lab.commands
    assert not any(h == "db1" and "systemctl" in c for h, c in lab.commands)
    figure = capsys.readouterr().out
    assert figure.startswith("FIGURE drill housekeeping: airflow db clean on af1 (the one host with the timer)")
    assert "orch.preflight on the running cluster passed in 12 s" in figure


@pytest.mark.parametrize("broken, message", [
    (lambda lab: lab.units_on.add("af2"), "must be on the first scheduler af1 only, it is on ['af1', 'af2']"),
    (lambda lab: lab.result.update({"airflow-db-clean.service": "exit-code"}),
     "airflow-db-clean.service on af1: Result=exit-code"),
    (lambda lab: lab.result.update({"airflow-task-log-cleanup.service": "exit-code"}),
     "airflow-task-log-cleanup.service on af1: Result=exit-code"),
    (lambda lab: setattr(lab, "left", "new.log\nold.log\n"), "holds ['new.log', 'old.log'], want only new.log"),
])
def test_each_failure_is_named(lab, broken, message):
    broken(lab)
    with pytest.raises(AssertionError, match=message.replace("[", r"\[").replace("]", r"\]")):
        drill_housekeeping.drill_housekeeping(INV)


def test_a_failed_preflight_shows_the_hosts_problems(lab, monkeypatch):
    data = {"db1_master": {"salt_|-orch-preflight_|-orch-preflight_|-function": {
        "result": False, "comment": "Running function preflight.check failed on minions: af1",
        "changes": {"ret": {"af1": "ERROR: preflight of af1: 1 problem(s), nothing was changed:\n  - af1: x"}}}}}
    monkeypatch.setattr(drill_dags, "orchestrate", lambda master, sls: (False, 3.0, data))
    with pytest.raises(AssertionError, match="preflight of af1: 1 problem"):
        drill_housekeeping.drill_housekeeping(INV)
