"""Every custom state function, with the execution module stubbed:

- test mode (``testmode`` fixture): result None and the would-be changes,
  and no function that changes anything is called;
- failure paths: the execution module raising CommandExecutionError (or
  SaltInvocationError) gives ``result: False`` with its message, never an
  exception out of the state.

``test_every_state_function_is_covered`` fails when a state function is added
without a case here.
"""

import inspect
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError, SaltInvocationError

import _states.airflow_ha as airflow_ha_state
import _states.dag_release as dag_release_state
import _states.patroni as patroni_state
import _states.pgbackrest as pgbackrest_state
import _states.rabbitmq_ha as rabbitmq_state

STATE_MODULES = (patroni_state, rabbitmq_state, pgbackrest_state, dag_release_state, airflow_ha_state)
NODES = ["rabbit@mq1", "rabbit@mq2", "rabbit@mq3"]

# execution functions that change something: none may run in test mode
WRITERS = {"patroni.edit_config", "rabbitmq_ha.join", "rabbitmq_ha.add_vhost", "rabbitmq_ha.add_user",
           "rabbitmq_ha.change_password", "rabbitmq_ha.set_user_tags", "rabbitmq_ha.set_permissions",
           "rabbitmq_ha.delete_user", "rabbitmq_ha.set_policy", "rabbitmq_ha.forget",
           "pgbackrest.stanza_create", "pgbackrest.check", "pgbackrest.backup",
           "dag_release.stage", "dag_release.switch", "dag_release.prune", "dag_release.validate",
           "dag_release.wait_parsed", "airflow_ha.set_variable", "airflow_ha.switch_venv"}


class Salt(dict):
    """__salt__ whose functions are MagicMocks (answers given per name)."""

    def __init__(self, **answers):
        super().__init__()
        for key in (*WRITERS, "rabbitmq_ha.await_startup", "dag_release.discard"):  # `use` copies into a plain dict
            self[key] = MagicMock(name=key)
        for name, answer in answers.items():
            key = name.replace("__", ".")
            self[key] = answer if isinstance(answer, MagicMock) else MagicMock(return_value=answer)

    def __missing__(self, key):
        self[key] = MagicMock(name=key)
        return self[key]

    def writes(self):
        return sorted(k for k, f in self.items() if k in WRITERS and f.called)


@pytest.fixture
def configure_loader_modules():
    return {mod: {"__salt__": {}, "__opts__": {"test": False}} for mod in STATE_MODULES}


@pytest.fixture
def testmode():
    """test=True for every custom state module (as `state.apply test=True` sets it)."""
    for mod in STATE_MODULES:
        mod.__opts__["test"] = True
    yield
    for mod in STATE_MODULES:
        mod.__opts__["test"] = False


def use(mod, salt):
    mod.__salt__.clear()
    mod.__salt__.update(salt)
    return salt


def raising(exc_type=CommandExecutionError, message="rabbitmqctl: nodedown"):
    return MagicMock(side_effect=exc_type(message))


# --- every state function appears below --------------------------------------------------------

COVERED = {
    "patroni.cluster_healthy", "patroni.config_applied",
    "rabbitmq_ha.joined", "rabbitmq_ha.cluster_healthy", "rabbitmq_ha.vhost_present",
    "rabbitmq_ha.user_present", "rabbitmq_ha.user_absent", "rabbitmq_ha.policy_present",
    "pgbackrest.stanza_ready", "pgbackrest.backup_present",
    "dag_release.validated", "dag_release.staged", "dag_release.switched", "dag_release.present",
    "dag_release.release_available", "dag_release.parsed", "dag_release.recorded",
    "airflow_ha.venv_switched",
}


def test_every_state_function_is_covered():
    found = {f"{mod.__virtualname__}.{name}" for mod in STATE_MODULES
             for name, func in inspect.getmembers(mod, inspect.isfunction)
             if func.__module__ == mod.__name__ and not name.startswith("_")}
    assert found == COVERED, f"state functions without test-mode and failure tests: {sorted(found - COVERED)}"


# --- patroni -------------------------------------------------------------------------------------

UNHEALTHY = {"leader": None, "running": 2}


def test_patroni_cluster_healthy_testmode_waits_for_nothing(testmode):
    salt = use(patroni_state, Salt(patroni__cluster_status=UNHEALTHY, patroni__health_problems=["no leader"]))
    ret = patroni_state.cluster_healthy("pg", timeout=300)
    assert ret["result"] is None and ret["changes"] == {}
    assert "no leader" in ret["comment"] and "would wait up to 300 s" in ret["comment"]
    assert salt["patroni.cluster_status"].call_count == 1 and salt.writes() == []


def test_patroni_cluster_healthy_failure_is_result_false():
    use(patroni_state, Salt(patroni__cluster_status=raising(message="etcd unreachable")))
    ret = patroni_state.cluster_healthy("pg", timeout=0, interval=0)
    assert ret["result"] is False and "etcd unreachable" in ret["comment"]


def test_patroni_config_applied_testmode_shows_the_diff(testmode):
    salt = use(patroni_state, Salt(patroni__show_config={"loop_wait": 10, "postgresql": {"parameters": {}}}))
    ret = patroni_state.config_applied("dcs", {"loop_wait": 5, "postgresql": {"parameters": {"max_connections": 300}}})
    assert ret["result"] is None
    assert ret["changes"] == {"loop_wait": {"old": 10, "new": 5},
                              "postgresql.parameters.max_connections": {"old": None, "new": 300}}
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["patroni.show_config", "patroni.edit_config"])
@pytest.mark.parametrize("exc_type", [CommandExecutionError, SaltInvocationError])
def test_patroni_config_applied_failure_is_result_false(failing, exc_type):
    salt = Salt(patroni__show_config={"loop_wait": 10})
    salt[failing] = raising(exc_type, "Patroni REST API PATCH /config: HTTP 503")
    use(patroni_state, salt)
    ret = patroni_state.config_applied("dcs", {"loop_wait": 5})
    assert ret["result"] is False and ret["changes"] == {}
    assert "HTTP 503" in ret["comment"]


# --- rabbitmq_ha ---------------------------------------------------------------------------------

def test_joined_testmode_asks_once_and_never_waits(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__is_member=False))
    ret = rabbitmq_state.joined("rabbit@mq1", timeout=300)
    assert ret["result"] is None and ret["changes"] == {"joined": "rabbit@mq1"}
    assert not salt["rabbitmq_ha.await_startup"].called, "test mode must not wait up to 300 s for the node"
    assert salt.writes() == []


def test_joined_testmode_node_not_booted_is_a_would_be_join(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__is_member=raising()))
    ret = rabbitmq_state.joined("rabbit@mq1", timeout=300)
    assert ret["result"] is None and ret["changes"] == {"joined": "rabbit@mq1"}
    assert "nodedown" in ret["comment"] and "would wait up to 300 s" in ret["comment"]
    assert not salt["rabbitmq_ha.await_startup"].called and salt.writes() == []


def test_joined_testmode_member_already(testmode):
    use(rabbitmq_state, Salt(rabbitmq_ha__is_member=True))
    ret = rabbitmq_state.joined("rabbit@mq1")
    assert ret["result"] is True and ret["changes"] == {}


@pytest.mark.parametrize("failing", ["rabbitmq_ha.await_startup", "rabbitmq_ha.join"])
def test_joined_failure_is_result_false(failing):
    salt = Salt(rabbitmq_ha__is_member=False)
    salt[failing] = raising(message="join_cluster failed: inconsistent_cluster")
    use(rabbitmq_state, salt)
    ret = rabbitmq_state.joined("rabbit@mq1", timeout=1)
    assert ret["result"] is False and "inconsistent_cluster" in ret["comment"]


def test_rabbitmq_cluster_healthy_testmode(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__health_problems=["rabbit@mq3 not running"]))
    ret = rabbitmq_state.cluster_healthy("mq", nodes=NODES, timeout=300)
    assert ret["result"] is None and ret["changes"] == {} and "mq3 not running" in ret["comment"]
    assert salt["rabbitmq_ha.health_problems"].call_count == 1 and salt.writes() == []


@pytest.mark.parametrize("exc_type", [CommandExecutionError, SaltInvocationError])
def test_rabbitmq_cluster_healthy_failure_is_result_false(exc_type):
    use(rabbitmq_state, Salt(rabbitmq_ha__health_problems=raising(exc_type)))
    ret = rabbitmq_state.cluster_healthy("mq", nodes=NODES, timeout=0, interval=0)
    assert ret["result"] is False and "nodedown" in ret["comment"]


def test_vhost_present_testmode(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__list_vhosts={"/": "classic"}))
    ret = rabbitmq_state.vhost_present("airflow", default_queue_type="quorum")
    assert ret["result"] is None
    assert ret["changes"] == {"vhost": "airflow", "default_queue_type": "quorum"}
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["rabbitmq_ha.list_vhosts", "rabbitmq_ha.add_vhost"])
def test_vhost_present_failure_is_result_false(failing):
    salt = Salt(rabbitmq_ha__list_vhosts={"/": "classic"})
    salt[failing] = raising()
    use(rabbitmq_state, salt)
    ret = rabbitmq_state.vhost_present("airflow", default_queue_type="quorum")
    assert ret["result"] is False and ret["changes"] == {} and "nodedown" in ret["comment"]


def test_user_present_testmode(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__list_users={"airflow": []}, rabbitmq_ha__check_password=False,
                                    rabbitmq_ha__list_user_permissions={}))
    ret = rabbitmq_state.user_present("airflow", "s3cret", tags=["management"],
                                      permissions={"airflow": [".*", ".*", ".*"]})
    assert ret["result"] is None
    assert ret["changes"] == {"password": "changed", "tags": {"old": [], "new": ["management"]},
                              "permissions": {"airflow": {"old": None, "new": [".*", ".*", ".*"]}}}
    assert "s3cret" not in str(ret)
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["rabbitmq_ha.list_users", "rabbitmq_ha.check_password",
                                     "rabbitmq_ha.change_password", "rabbitmq_ha.set_permissions"])
def test_user_present_failure_is_result_false(failing):
    salt = Salt(rabbitmq_ha__list_users={"airflow": []}, rabbitmq_ha__check_password=False,
                rabbitmq_ha__list_user_permissions={})
    salt[failing] = raising(message="rabbitmqctl change_password failed (exit 69)")
    use(rabbitmq_state, salt)
    ret = rabbitmq_state.user_present("airflow", "s3cret", permissions={"airflow": [".*", ".*", ".*"]})
    assert ret["result"] is False and "exit 69" in ret["comment"]
    assert "s3cret" not in str(ret)


def test_user_absent_testmode(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__list_users={"guest": ["administrator"]}))
    ret = rabbitmq_state.user_absent("guest")
    assert ret["result"] is None and ret["changes"] == {"user": "deleted"}
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["rabbitmq_ha.list_users", "rabbitmq_ha.delete_user"])
def test_user_absent_failure_is_result_false(failing):
    salt = Salt(rabbitmq_ha__list_users={"guest": ["administrator"]})
    salt[failing] = raising()
    use(rabbitmq_state, salt)
    ret = rabbitmq_state.user_absent("guest")
    assert ret["result"] is False and ret["changes"] == {} and "nodedown" in ret["comment"]


POLICY = {"pattern": ".*", "definition": {"delivery-limit": 20}, "vhost": "airflow"}


def test_policy_present_testmode(testmode):
    salt = use(rabbitmq_state, Salt(rabbitmq_ha__list_policies={}))
    ret = rabbitmq_state.policy_present("delivery-limit", **POLICY)
    assert ret["result"] is None
    assert ret["changes"] == {"old": None, "new": {"pattern": ".*", "apply_to": "queues",
                                                   "definition": {"delivery-limit": 20}, "priority": 0}}
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["rabbitmq_ha.list_policies", "rabbitmq_ha.set_policy"])
def test_policy_present_failure_is_result_false(failing):
    salt = Salt(rabbitmq_ha__list_policies={})
    salt[failing] = raising()
    use(rabbitmq_state, salt)
    ret = rabbitmq_state.policy_present("delivery-limit", **POLICY)
    assert ret["result"] is False and ret["changes"] == {} and "nodedown" in ret["comment"]


# --- pgbackrest ----------------------------------------------------------------------------------

def test_stanza_ready_testmode_neither_creates_nor_checks(testmode):
    salt = use(pgbackrest_state, Salt(pgbackrest__stanza_exists=False))
    ret = pgbackrest_state.stanza_ready("airflow-ha")
    assert ret["result"] is None and ret["changes"] == {"stanza": {"old": None, "new": "airflow-ha"}}
    assert salt.writes() == []


def test_stanza_ready_testmode_existing_stanza_is_true_without_a_check(testmode):
    salt = use(pgbackrest_state, Salt(pgbackrest__stanza_exists=True))
    ret = pgbackrest_state.stanza_ready("airflow-ha")
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == []


def test_stanza_ready_creates_then_checks_and_an_existing_one_changes_nothing():
    salt = use(pgbackrest_state, Salt(pgbackrest__stanza_exists=False))
    ret = pgbackrest_state.stanza_ready("airflow-ha")
    assert ret["result"] is True and ret["changes"] and salt.writes() == ["pgbackrest.check", "pgbackrest.stanza_create"]
    salt = use(pgbackrest_state, Salt(pgbackrest__stanza_exists=True))
    ret = pgbackrest_state.stanza_ready("airflow-ha")
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == ["pgbackrest.check"]


@pytest.mark.parametrize("failing", ["pgbackrest.stanza_exists", "pgbackrest.stanza_create", "pgbackrest.check"])
@pytest.mark.parametrize("exc_type", [CommandExecutionError, SaltInvocationError])
def test_stanza_ready_failure_is_result_false(failing, exc_type):
    salt = Salt(pgbackrest__stanza_exists=False)
    salt[failing] = raising(exc_type, "pgbackrest check failed (exit 82): WAL segment was not archived")
    use(pgbackrest_state, salt)
    ret = pgbackrest_state.stanza_ready("airflow-ha")
    assert ret["result"] is False and "exit 82" in ret["comment"]


def test_backup_present_testmode_takes_none(testmode):
    salt = use(pgbackrest_state, Salt(pgbackrest__has_backup=False))
    ret = pgbackrest_state.backup_present("airflow-ha")
    assert ret["result"] is None and ret["changes"] == {"backup": {"old": None, "new": "full"}}
    assert salt.writes() == []


def test_backup_present_takes_one_only_when_there_is_none():
    salt = use(pgbackrest_state, Salt(pgbackrest__has_backup=True))
    assert pgbackrest_state.backup_present("airflow-ha")["changes"] == {} and salt.writes() == []
    salt = use(pgbackrest_state, Salt(pgbackrest__has_backup=False,
                                      pgbackrest__backup={"label": "20261202-011500F", "duration_s": 12}))
    ret = pgbackrest_state.backup_present("airflow-ha")
    assert ret["result"] is True and ret["changes"]["backup"]["new"] == "20261202-011500F"


@pytest.mark.parametrize("failing", ["pgbackrest.has_backup", "pgbackrest.backup"])
def test_backup_present_failure_is_result_false(failing):
    salt = Salt(pgbackrest__has_backup=False)
    salt[failing] = raising(message="pgbackrest backup failed (exit 56): unable to find primary cluster")
    use(pgbackrest_state, salt)
    ret = pgbackrest_state.backup_present("airflow-ha")
    assert ret["result"] is False and "unable to find primary" in ret["comment"]


# --- dag_release ---------------------------------------------------------------------------------

V1, V2 = "0123456789abcdef", "fedcba9876543210"


def test_dag_release_validated_testmode_validates_nothing(testmode):
    salt = use(dag_release_state, Salt())
    ret = dag_release_state.validated("v", source="salt://dags")
    assert ret["result"] is None and ret["changes"] == {} and "would validate" in ret["comment"]
    assert not salt["dag_release.prepare"].called and salt.writes() == []


def test_dag_release_validated_failure_names_file_and_line(tmp_path):
    salt = use(dag_release_state, Salt(dag_release__prepare={"path": str(tmp_path / "set"), "version": V1},
                                       dag_release__validate=raising(message="DAG set refused: bad.py:3: "
                                                                             "SyntaxError: invalid syntax")))
    ret = dag_release_state.validated("v", source="salt://dags", releases_dir=str(tmp_path))
    assert ret["result"] is False and ret["changes"] == {}
    assert "bad.py:3: SyntaxError" in ret["comment"]
    assert salt["dag_release.discard"].called  # the scratch copy goes, whatever happened


def test_dag_release_staged_testmode(testmode, tmp_path):
    salt = use(dag_release_state, Salt(dag_release__prepare={"path": str(tmp_path / "x" / "set"), "version": V1}))
    ret = dag_release_state.staged(str(tmp_path), source="salt://dags")
    assert ret["result"] is None and ret["changes"] == {"staged": V1}
    assert salt.writes() == []


@pytest.mark.parametrize("failing", ["dag_release.prepare", "dag_release.stage"])
def test_dag_release_staged_failure_is_result_false(failing, tmp_path):
    salt = Salt(dag_release__prepare={"path": str(tmp_path / "x" / "set"), "version": V1})
    salt[failing] = raising(message="salt://dags: no files on the Salt fileserver")
    use(dag_release_state, salt)
    ret = dag_release_state.staged(str(tmp_path), source="salt://dags")
    assert ret["result"] is False and ret["changes"] == {} and "no files" in ret["comment"]


def test_dag_release_switched_testmode(testmode):
    salt = use(dag_release_state, Salt(dag_release__resolve=V2, dag_release__current=V1))
    ret = dag_release_state.switched("/srv/airflow/dags", release="staged")
    assert ret["result"] is None and ret["changes"] == {"release": {"old": V1, "new": V2}}
    assert salt.writes() == []


def test_dag_release_switched_already_there_is_no_change():
    salt = use(dag_release_state, Salt(dag_release__resolve=V1, dag_release__current=V1))
    ret = dag_release_state.switched("/srv/airflow/dags")
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == []


@pytest.mark.parametrize("failing", ["dag_release.resolve", "dag_release.switch"])
def test_dag_release_switched_failure_is_result_false(failing):
    salt = Salt(dag_release__resolve=V2, dag_release__current=V1)
    salt[failing] = raising(message=f"DAG release {V2} is not staged on this host")
    use(dag_release_state, salt)
    ret = dag_release_state.switched("/srv/airflow/dags", release=V2)
    assert ret["result"] is False and ret["changes"] == {} and "not staged" in ret["comment"]


def test_dag_release_present_testmode(testmode, tmp_path):
    salt = use(dag_release_state, Salt(dag_release__current=None))
    ret = dag_release_state.present(str(tmp_path / "dags"), releases_dir=str(tmp_path))
    assert ret["result"] is None and ret["changes"]["release"]["old"] is None
    assert salt.writes() == []


def test_dag_release_present_keeps_a_host_release(tmp_path):
    (tmp_path / V1).mkdir()
    salt = use(dag_release_state, Salt(dag_release__current=V1))
    ret = dag_release_state.present(str(tmp_path / "dags"), releases_dir=str(tmp_path))
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == []


def test_dag_release_present_failure_is_result_false(tmp_path):
    use(dag_release_state, Salt(dag_release__current=None, dag_release__stage=raising(message="no files")))
    ret = dag_release_state.present(str(tmp_path / "dags"), releases_dir=str(tmp_path))
    assert ret["result"] is False and ret["changes"] == {} and "no files" in ret["comment"]


def test_dag_release_release_available_testmode(testmode):
    salt = use(dag_release_state, Salt(dag_release__resolve=V1))
    ret = dag_release_state.release_available("/srv/airflow/dag-releases", release="previous")
    assert ret["result"] is True and ret["changes"] == {} and V1 in ret["comment"]
    assert salt.writes() == []


def test_dag_release_release_available_failure_refuses():
    use(dag_release_state, Salt(dag_release__resolve=raising(message="no previous DAG release on this host")))
    ret = dag_release_state.release_available("/srv/airflow/dag-releases")
    assert ret["result"] is False and "no previous DAG release" in ret["comment"]


def test_dag_release_parsed_testmode_waits_for_nothing(testmode):
    salt = use(dag_release_state, Salt())
    ret = dag_release_state.parsed("/srv/airflow/dags", timeout=300)
    assert ret["result"] is None and "would wait up to 300 s" in ret["comment"]
    assert salt.writes() == []


def test_dag_release_recorded_testmode_sets_nothing(testmode):
    salt = use(dag_release_state, Salt(dag_release__current=V1, airflow_ha__variable="0123"))
    ret = dag_release_state.recorded("/srv/airflow/dags")
    assert ret["result"] is None and ret["changes"] == {"airflow_ha_dag_release": {"old": "0123", "new": V1}}
    assert salt.writes() == []


def test_dag_release_recorded_sets_the_variable_once():
    salt = use(dag_release_state, Salt(dag_release__current=V1, airflow_ha__variable=None))
    ret = dag_release_state.recorded("/srv/airflow/dags", url="https://vip", major=3)
    assert ret["result"] is True and ret["changes"] == {"airflow_ha_dag_release": {"old": None, "new": V1}}
    args, kwargs = salt["airflow_ha.set_variable"].call_args
    assert args[:2] == ("airflow_ha_dag_release", V1) and kwargs["url"] == "https://vip"
    salt = use(dag_release_state, Salt(dag_release__current=V1, airflow_ha__variable=V1))
    ret = dag_release_state.recorded("/srv/airflow/dags")
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == []


def test_dag_release_recorded_failure_is_result_false():
    use(dag_release_state, Salt(dag_release__current=V1, airflow_ha__variable=raising(
        message="GET /api/v2/variables/airflow_ha_dag_release on https://vip: HTTP 403 forbidden")))
    ret = dag_release_state.recorded("/srv/airflow/dags")
    assert ret["result"] is False and "HTTP 403" in ret["comment"]


def test_dag_release_parsed_failure_is_result_false():
    use(dag_release_state, Salt(dag_release__current=V1, dag_release__wait_parsed=raising(
        message=f"DAG release {V1} not parsed within 300 s: import error in x.py")))
    ret = dag_release_state.parsed("/srv/airflow/dags", timeout=300)
    assert ret["result"] is False and "import error in x.py" in ret["comment"]


def test_backup_present_with_an_annotation_looks_for_and_takes_an_annotated_one():
    salt = use(pgbackrest_state, Salt(pgbackrest__has_backup=False,
                                      pgbackrest__backup={"label": "20261204-011500F", "duration_s": 30}))
    ret = pgbackrest_state.backup_present("airflow-ha", annotation={"airflow-upgrade": "3.3.2"})
    assert ret["result"] is True and ret["changes"]["backup"]["new"] == "20261204-011500F"
    salt["pgbackrest.has_backup"].assert_called_once_with("airflow-ha", config=None,
                                                          annotation={"airflow-upgrade": "3.3.2"})
    assert salt["pgbackrest.backup"].call_args.kwargs["annotation"] == {"airflow-upgrade": "3.3.2"}


# --- airflow_ha (versioned venvs, orch.airflow_upgrade) --------------------------------------------

SWITCH = {"name": "/opt/airflow/venv", "target": "/opt/airflow/venv-3.3.2", "units": ["airflow-worker"],
          "drain": True}


def test_venv_switched_testmode_drains_and_switches_nothing(testmode):
    salt = use(airflow_ha_state, Salt(airflow_ha__current_venv="/opt/airflow/venv-3.3.1"))
    ret = airflow_ha_state.venv_switched(**SWITCH)
    assert ret["result"] is None
    assert ret["changes"] == {"venv": {"old": "/opt/airflow/venv-3.3.1", "new": "/opt/airflow/venv-3.3.2"}}
    assert "worker drained" in ret["comment"] and salt.writes() == []


def test_venv_switched_already_there_changes_nothing():
    salt = use(airflow_ha_state, Salt(airflow_ha__current_venv="/opt/airflow/venv-3.3.2"))
    ret = airflow_ha_state.venv_switched(**SWITCH)
    assert ret["result"] is True and ret["changes"] == {} and salt.writes() == []


def test_venv_switched_switches_and_reports_the_restarted_units():
    salt = use(airflow_ha_state, Salt(airflow_ha__current_venv="/opt/airflow/venv-3.3.1", airflow_ha__switch_venv={
        "changed": True, "old": "/opt/airflow/venv-3.3.1", "new": "/opt/airflow/venv-3.3.2",
        "started": ["airflow-worker"], "comment": "af1: switched"}))
    ret = airflow_ha_state.venv_switched(**SWITCH)
    assert ret["result"] is True and ret["changes"]["restarted"] == ["airflow-worker"]
    assert salt["airflow_ha.switch_venv"].call_args.kwargs["drain"] is True


def test_venv_switched_failure_is_result_false():
    use(airflow_ha_state, Salt(airflow_ha__current_venv="/opt/airflow/venv-3.3.1",
                               airflow_ha__switch_venv=raising(message="af1: airflow-worker did not start")))
    ret = airflow_ha_state.venv_switched(**SWITCH)
    assert ret["result"] is False and "did not start" in ret["comment"]
