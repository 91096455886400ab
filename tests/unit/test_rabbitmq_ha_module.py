"""The rabbitmq_ha module's parsing and decisions with rabbitmqctl stubbed
(the real program is exercised in tests/rabbitmq): JSON shapes of RabbitMQ
3.10, passwords only on stdin, the join's no-op and failure paths, and the
states' test mode."""

import json

import pytest
from salt.exceptions import CommandExecutionError

import _modules.rabbitmq_ha as rabbitmq_ha
import _states.rabbitmq_ha as rabbitmq_ha_state

NODES = ["rabbit@mq1", "rabbit@mq2", "rabbit@mq3"]
CLUSTER_STATUS = {
    "alarms": [], "cluster_name": "rabbit@mq1", "disk_nodes": NODES, "partitions": {},
    "running_nodes": ["rabbit@mq3", "rabbit@mq1", "rabbit@mq2"],
    "versions": {n: {"erlang_version": "25.2.3", "rabbitmq_version": "3.10.8"} for n in NODES},
}


class FakeCtl:
    """cmd.run_all standing in for rabbitmqctl: answers by subcommand."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, cmd, **kwargs):
        self.calls.append((cmd, kwargs))
        sub = next(a for a in cmd[1:] if not a.startswith("-") and not a.startswith("rabbit@"))
        answer = self.answers.get(sub, {"retcode": 0, "stdout": "", "stderr": ""})
        if callable(answer):
            answer = answer(cmd, kwargs)
        if not isinstance(answer, dict) or "retcode" not in answer:
            answer = {"retcode": 0, "stdout": json.dumps(answer), "stderr": ""}
        return answer

    def subcommands(self):
        return [next(a for a in cmd[1:] if not a.startswith("-") and not a.startswith("rabbit@"))
                for cmd, _ in self.calls]


@pytest.fixture
def configure_loader_modules():
    return {rabbitmq_ha: {"__salt__": {}},
            rabbitmq_ha_state: {"__salt__": {}, "__opts__": {"test": False}}}


def use(answers=None):
    fake = FakeCtl(answers)
    rabbitmq_ha.__salt__["cmd.run_all"] = fake
    for name in dir(rabbitmq_ha):
        func = getattr(rabbitmq_ha, name)
        if callable(func) and not name.startswith("_") and getattr(func, "__module__", "") == rabbitmq_ha.__name__:
            rabbitmq_ha_state.__salt__[f"rabbitmq_ha.{name}"] = func
    return fake


def test_cluster_status_reads_the_json_shape_of_3_10():
    fake = use({"cluster_status": CLUSTER_STATUS})
    status = rabbitmq_ha.cluster_status(node="rabbit@mq2")
    assert status["running_nodes"] == NODES
    assert status["versions"]["rabbit@mq1"] == "3.10.8"
    cmd, kwargs = fake.calls[0]
    assert cmd == ["rabbitmqctl", "-n", "rabbit@mq2", "cluster_status", "--formatter", "json"]
    assert kwargs["python_shell"] is False and kwargs["output_loglevel"] == "quiet"


def test_health_problems_name_down_nodes_partitions_and_alarms():
    status = dict(CLUSTER_STATUS, running_nodes=["rabbit@mq1", "rabbit@mq2"],
                  partitions={"rabbit@mq1": ["rabbit@mq3"]},
                  alarms=[{"node": "rabbit@mq2", "resource": "disk"}])
    use({"cluster_status": status})
    assert rabbitmq_ha.health_problems(NODES + ["rabbit@mq4"]) == [
        "rabbit@mq3 is not running",
        "rabbit@mq4 is not a member of the cluster",
        "rabbit@mq1 is partitioned from rabbit@mq3",
        'alarm: {"node": "rabbit@mq2", "resource": "disk"}',
    ]


def test_a_failing_command_raises_with_the_node_and_the_error():
    use({"cluster_status": {"retcode": 69, "stdout": "", "stderr": "Error: unable to perform an operation\nmore"}})
    with pytest.raises(CommandExecutionError, match=r"cluster_status failed on rabbit@mq9 \(exit 69\)"):
        rabbitmq_ha.cluster_status(node="rabbit@mq9")


def test_passwords_go_on_stdin_never_on_the_command_line():
    fake = use({"authenticate_user": {"retcode": 65, "stdout": "", "stderr": "invalid credentials"}})
    rabbitmq_ha.add_user("airflow", "S3cret-pw")
    rabbitmq_ha.change_password("airflow", "S3cret-pw")
    assert rabbitmq_ha.check_password("airflow", "S3cret-pw") is False
    for cmd, kwargs in fake.calls:
        assert "S3cret-pw" not in " ".join(cmd)
        assert kwargs["stdin"] == "S3cret-pw"


def test_check_password_raises_on_anything_but_accepted_or_refused():
    use({"authenticate_user": {"retcode": 69, "stdout": "", "stderr": "node down"}})
    with pytest.raises(CommandExecutionError, match="node down"):
        rabbitmq_ha.check_password("airflow", "x")


def test_join_is_a_no_op_for_a_member():
    fake = use({"cluster_status": CLUSTER_STATUS})
    assert rabbitmq_ha.join("rabbit@mq1", node="rabbit@mq2") is False
    assert "stop_app" not in fake.subcommands()


def test_a_failed_join_starts_the_app_again():
    alone = dict(CLUSTER_STATUS, disk_nodes=["rabbit@mq2"], running_nodes=["rabbit@mq2"])
    fake = use({"cluster_status": alone,
                "join_cluster": {"retcode": 69, "stdout": "", "stderr": "mq1 unreachable"}})
    with pytest.raises(CommandExecutionError, match="mq1 unreachable"):
        rabbitmq_ha.join("rabbit@mq1", node="rabbit@mq2")
    subs = fake.subcommands()
    assert subs.index("stop_app") < subs.index("join_cluster") < subs.index("start_app")


def test_list_policies_decodes_the_definition_string():
    use({"list_policies": [{"vhost": "airflow", "name": "q", "pattern": ".*", "apply-to": "queues",
                            "definition": "{\"delivery-limit\":10}", "priority": 0}]})
    assert rabbitmq_ha.list_policies("airflow") == {
        "q": {"pattern": ".*", "apply_to": "queues", "definition": {"delivery-limit": 10}, "priority": 0}}


def test_list_vhosts_maps_undefined_queue_type_to_none():
    use({"list_vhosts": [{"name": "airflow", "default_queue_type": "quorum"},
                         {"name": "/", "default_queue_type": "undefined"}]})
    assert rabbitmq_ha.list_vhosts() == {"airflow": "quorum", "/": None}


def test_user_present_in_test_mode_changes_nothing_and_hides_the_password():
    fake = use({"list_users": [{"user": "guest", "tags": ["administrator"]}]})
    rabbitmq_ha_state.__opts__["test"] = True
    ret = rabbitmq_ha_state.user_present("airflow", "S3cret-pw", permissions={"airflow": [".*", ".*", ".*"]})
    assert ret["result"] is None
    assert ret["changes"]["user"] == "created" and "airflow" in ret["changes"]["permissions"]
    assert "S3cret-pw" not in json.dumps(ret)
    assert "add_user" not in fake.subcommands()


def test_user_present_refuses_an_empty_password():
    use({"list_users": []})
    ret = rabbitmq_ha_state.user_present("airflow", "")
    assert ret["result"] is False and "secrets pillar" in ret["comment"]


def test_joined_in_test_mode_reports_the_join_without_doing_it():
    alone = dict(CLUSTER_STATUS, disk_nodes=["rabbit@mq3"], running_nodes=["rabbit@mq3"])
    fake = use({"cluster_status": alone})
    rabbitmq_ha_state.__opts__["test"] = True
    ret = rabbitmq_ha_state.joined("rabbit@mq1", node="rabbit@mq3")
    assert ret["result"] is None and ret["changes"] == {"joined": "rabbit@mq1"}
    assert "stop_app" not in fake.subcommands()
