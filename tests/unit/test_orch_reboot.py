"""orch.rolling_reboot and orch.airflow_rolling_restart as the master renders
them (its own pillar, no minion's): the preconditions before anything
changes, the order of hosts, and each host's steps and gates."""

import pytest

from tests.unit.test_orch_backup import args, render

QUORUM = {"compact": ["db1", "db2", "db3"], "full": ["mq1", "mq2", "mq3", "sql1", "sql2", "sql3"]}


def hosts_in_order(high):
    """The hosts rebooted, in the order of their reboot steps."""
    return [args(s)["tgt"] for s in high.values() if args(s).get("name") == "ha_cluster.reboot"]


def chain_is_linear(high):
    ids = list(high)
    for before, after in zip(ids, ids[1:]):
        required = args(high[after]).get("require")
        assert required and list(required[0].values()) == [before], (after, required)


@pytest.mark.parametrize("topology", ["compact", "full"])
def test_preconditions_come_first_and_quorum_members_last(topology):
    high = render("rolling_reboot", {}, topology)
    ids = list(high)
    changes = ("ha_cluster.move_patroni_leader", "airflow_ha.drain_worker", "ha_cluster.reboot")
    first_change = next(i for i, k in enumerate(ids) if args(high[k]).get("name") in changes)
    checks = ids[:first_change]
    assert checks[:2] == ["orch-reboot-plan", "orch-reboot-minions-up"]
    assert checks[-2:] == ["orch-reboot-precheck-airflow", "orch-reboot-precheck-workers"]
    assert all(args(high[k])["name"] in ("ha_cluster.check",) for k in checks[2:-2])
    order = hosts_in_order(high)
    assert order[-len(QUORUM[topology]):] == QUORUM[topology]
    assert sorted(order) == sorted(args(high["orch-reboot-minions-up"])["tgt"].split(","))
    assert all(args(s).get("failhard") for k, s in high.items() if k != "orch-reboot-plan")
    chain_is_linear(high)


def test_compact_prechecks_every_quorum_service_from_db1():
    high = render("rolling_reboot", {})
    kwarg = args(high["orch-reboot-precheck-db1"])["kwarg"]
    assert kwarg["postgres"] == ["db1", "db2", "db3"]
    assert kwarg["rabbitmq"] == ["rabbit@db1", "rabbit@db2", "rabbit@db3"]
    assert kwarg["etcd"] == [f"https://10.83.0.1{i}:2379" for i in (1, 2, 3)]
    assert kwarg["key_file"].endswith("/etcd.key") and kwarg["max_lag_mb"] == 16


def test_full_checks_each_service_from_its_own_members():
    high = render("rolling_reboot", {}, "full")
    sql1, mq1 = args(high["orch-reboot-precheck-sql1"])["kwarg"], args(high["orch-reboot-precheck-mq1"])["kwarg"]
    assert set(sql1) >= {"postgres", "etcd"} and "rabbitmq" not in sql1
    assert mq1["rabbitmq"] == ["rabbit@mq1", "rabbit@mq2", "rabbit@mq3"] and "postgres" not in mq1
    # after sql1's own reboot its services are checked from sql2
    assert "orch-reboot-healthy-sql1-via-sql2" in high and "orch-reboot-healthy-sql1-via-mq1" in high


def test_steps_of_a_database_host_and_of_an_airflow_host():
    high = render("rolling_reboot", {})
    db2 = [k for k in high if (k.endswith("-db2") and "-via-" not in k) or "-healthy-db2-via-" in k]
    assert db2 == ["orch-reboot-leader-off-db2", "orch-reboot-db2", "orch-reboot-back-db2",
                   "orch-reboot-healthy-db2-via-db1", "orch-reboot-healthy-db2", "orch-reboot-done-db2"]
    af2 = [k for k in high if k.endswith("-af2") or "-healthy-af2-via-" in k]
    assert af2 == ["orch-reboot-drain-af2", "orch-reboot-af2", "orch-reboot-back-af2", "orch-reboot-healthy-af2-via-db1",
                   "orch-reboot-jobs-af2", "orch-reboot-worker-af2", "orch-reboot-units-af2", "orch-reboot-healthy-af2",
                   "orch-reboot-done-af2"]
    back = args(high["orch-reboot-back-af2"])
    assert back["name"] == "ha_cluster.rebooted" and back["retry"]["until"] is True and back["retry"]["attempts"] >= 30
    assert args(high["orch-reboot-drain-af2"])["kwarg"] == {"timeout": 600}
    assert args(high["orch-reboot-jobs-af2"])["kwarg"]["components"] == ["scheduler", "triggerer", "dag_processor"]
    assert args(high["orch-reboot-leader-off-db2"])["kwarg"]["member"] == "db2"


def test_pillar_hosts_limits_and_orders_and_the_masters_host_goes_last():
    high = render("rolling_reboot", {"hosts": ["db2", "af2", "db1"], "master_host": "db1"})
    assert hosts_in_order(high) == ["db2", "af2", "db1"]
    assert "orch-reboot-back-db1" not in high and list(high)[-1] == "orch-reboot-master-last"
    assert args(high["orch-reboot-db1"])["kwarg"]["delay"] == 15
    high = render("rolling_reboot", {"hosts": ["db1", "af2"], "master_host": "db1"})
    assert hosts_in_order(high) == ["af2", "db1"]
    # by default the master's host (found by its IP among the master's grains) is left out
    high = render("rolling_reboot", {"master_host": "db1"})
    assert "db1" not in hosts_in_order(high) and "left out: db1" in args(high["orch-reboot-plan"])["name"]
    assert "db1" in args(render("rolling_reboot", {"include_master": True, "master_host": "db1"})
                         ["orch-reboot-plan"])["name"].split("order: ")[1].split(" (")[0]


def test_the_masters_host_is_found_by_its_ip_among_the_masters_grains():
    # the plan is ha_cluster.reboot_plan's (tests/unit/test_ha_cluster.py), read through orch/module_call.py
    high = render("rolling_reboot", {}, grains={"ipv4": ["127.0.0.1", "10.83.0.12"]})
    assert "db2" not in hosts_in_order(high) and "left out: db2" in args(high["orch-reboot-plan"])["name"]
    high = render("rolling_reboot", {"include_master": "yes"}, grains={"ipv4": ["10.83.0.12"]})
    assert hosts_in_order(high)[-1] == "db2" and list(high)[-1] == "orch-reboot-master-last"
    assert args(high["orch-reboot-db2"])["kwarg"]["delay"] == 15


def test_no_hosts_checks_only_and_bad_pillar_refuses():
    high = render("rolling_reboot", {"hosts": []})
    assert list(high)[-1] == "orch-reboot-precheck-workers" and not hosts_in_order(high)
    for pillar, reason in [({"hosts": ["db9"]}, '"db9" is no inventory host'),
                           ({"hosts": ["af1", "af1"]}, '"af1" is listed twice'),
                           ({"hosts": {"a": 1}}, "give a list of inventory hosts"),
                           ({"master_host": "x"}, 'master_host "x" is no inventory host')]:
        high = render("rolling_reboot", pillar)
        assert list(high) == ["orch-reboot-refused"]
        assert reason in args(high["orch-reboot-refused"])["name"]
    assert hosts_in_order(render("rolling_reboot", {"hosts": "af2, db3"})) == ["af2", "db3"]


@pytest.mark.parametrize("topology", ["compact", "full"])
def test_rolling_restart_drains_then_gates_each_host(topology):
    high = render("airflow_rolling_restart", {}, topology)
    chain_is_linear(high)
    restarted = [k[len("orch-airflow-restart-"):] for k in high if k.startswith("orch-airflow-restart-")]
    for host in restarted:
        ids = [k for k in high if k.endswith("-" + host)]
        assert ids[-2:][-1] == f"orch-airflow-healthy-{host}"
        assert ids.index(f"orch-airflow-restart-{host}") < ids.index(f"orch-airflow-healthy-{host}")
        for step in ids:
            assert args(high[step])["failhard"] is True
    if topology == "full":
        assert [k for k in high if k.endswith("-worker1")] == [
            "orch-airflow-drain-worker1", "orch-airflow-restart-worker1", "orch-airflow-worker-worker1",
            "orch-airflow-healthy-worker1"]
        assert [k for k in high if k.endswith("-scheduler2")] == [
            "orch-airflow-restart-scheduler2", "orch-airflow-jobs-scheduler2", "orch-airflow-healthy-scheduler2"]
        assert args(high["orch-airflow-jobs-scheduler2"])["kwarg"]["components"] == ["scheduler", "triggerer"]
        assert args(high["orch-airflow-jobs-scheduler2"])["tgt"] == "scheduler2"


def test_rolling_restart_restarts_each_hosts_component_units_by_name():
    """Never a glob: 'airflow-*.service' also matched the housekeeping services (airflow-db-clean, which must
    run once cluster-wide, and airflow-task-log-cleanup), so every rolling restart ran them on every host."""
    high = render("airflow_rolling_restart", {}, "compact")
    command = args(high["orch-airflow-restart-af1"])["arg"][0]
    assert command.split() == ["systemctl", "restart", "airflow-scheduler", "airflow-webserver",
                               "airflow-dag-processor", "airflow-triggerer", "airflow-worker", "airflow-flower"]
    assert "*" not in command and "db-clean" not in command
