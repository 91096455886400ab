"""The Salt audit engine's lines (salt/_engines/airflow_ha_audit.py) for the master events Salt 3008
publishes: who ran what on which targets with what result, and never an argument value that could be a
secret. tests/integration/test_salt_audit_real.py runs the engine in a real master."""

import json

import pytest

from tests.helpers.inventory import REPO

import importlib.util

spec = importlib.util.spec_from_file_location("airflow_ha_audit", REPO / "salt" / "_engines" / "airflow_ha_audit.py")
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

SECRET = "s3cr3t-Value-9"


def fields(line):
    event, _, body = line.partition(" {")
    return event, json.loads("{" + body)


def test_a_state_job_names_user_function_target_and_sls_and_hides_pillar():
    line = audit.describe("salt/job/20261203/new", {
        "jid": "20261203", "user": "root", "fun": "state.apply", "tgt": "af*", "tgt_type": "glob",
        "minions": ["af1", "af2"], "arg": ["airflow.migrate", {"pillar": {"x": SECRET}, "test": True,
                                                                "__kwarg__": True}]})
    event, f = fields(line)
    assert event == "job new"
    assert f == {"jid": "20261203", "user": "root", "fun": "state.apply", "tgt": "af*", "tgt_type": "glob",
                 "minions": ["af1", "af2"], "args": ["airflow.migrate"], "pillar": "***", "test": True}
    assert SECRET not in line


@pytest.mark.parametrize("arg", [
    [f"PGPASSWORD={SECRET} psql -c 'select 1'"],  # a command line: positional, of a function not shown
    [f"echo {SECRET}"],
    [{"password": SECRET, "__kwarg__": True}],
    [f"password={SECRET}"],  # a CLI-style keyword argument
])
def test_arguments_that_may_hold_a_secret_are_not_written(arg):
    line = audit.describe("salt/job/1/new", {"user": "sudo_ops", "fun": "cmd.run", "tgt": "db1", "arg": arg})
    assert SECRET not in line
    assert '"fun": "cmd.run"' in line and '"user": "sudo_ops"' in line


def test_a_state_return_is_counted_not_written():
    ret = {"file_|-a_|-/etc/a_|-managed": {"result": True, "changes": {"diff": SECRET}},
           "cmd_|-b_|-x_|-run": {"result": False, "changes": {}, "comment": SECRET},
           "pkg_|-c_|-y_|-installed": {"result": True, "changes": {}}}
    line = audit.describe("salt/job/1/ret/af1", {"id": "af1", "fun": "state.apply", "success": True,
                                                 "retcode": 2, "return": ret})
    assert fields(line) == ("job ret", {"jid": "1", "minion": "af1", "fun": "state.apply", "success": True,
                                        "retcode": 2, "states": 3, "changed": 1, "failed": 1})
    assert SECRET not in line


def test_an_orchestrate_is_a_runner_job_with_its_sls_and_counts():
    new = audit.describe("salt/run/2/new", {"fun": "runner.state.orchestrate", "user": "root",
                                            "fun_args": ["orch.bringup", {"pillar": {"p": SECRET}}]})
    assert fields(new) == ("run new", {"jid": "2", "user": "root", "fun": "runner.state.orchestrate",
                                       "args": ["orch.bringup"], "pillar": "***"})
    ret = audit.describe("salt/run/2/ret", {"fun": "runner.state.orchestrate", "user": "root", "success": True,
                                            "return": {"data": {"db1_master": {
                                                "salt_|-orch-x_|-orch-x_|-state": {"result": True,
                                                                                   "changes": {"ret": SECRET}}}},
                                                "retcode": 0}})
    assert fields(ret) == ("run ret", {"jid": "2", "user": "root", "fun": "runner.state.orchestrate",
                                       "success": True, "retcode": 0, "states": 1, "changed": 1, "failed": 0})
    assert SECRET not in ret


def test_key_events_are_audited_and_polling_and_other_events_are_not():
    assert fields(audit.describe("salt/key", {"id": "worker1", "act": "accept", "result": True})) == \
        ("key", {"act": "accept", "minion": "worker1", "result": True})
    assert audit.describe("salt/job/1/new", {"fun": "saltutil.find_job", "arg": ["1"]}) is None
    assert audit.describe("salt/auth", {"id": "af1", "act": "accept"}) is None
    assert audit.describe("minion_start", {"id": "af1"}) is None
    assert audit.describe("salt/job/1/prog/af1/0", {"fun": "state.apply"}) is None
