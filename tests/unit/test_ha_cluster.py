"""_modules/ha_cluster.py with patronictl, rabbitmqctl, etcd and systemd
stubbed: the problems of each quorum service, the switchover off a leader,
the reboot and the proof that it happened."""

import json

import pytest
from salt.exceptions import CommandExecutionError

import _modules.ha_cluster as ha_cluster


def member(name, role="replica", state="streaming", lag=0):
    return {"name": name, "role": role, "state": state, "lag_mb": None if role == "leader" else lag}


HEALTHY = {"leader": "db1", "members": [member("db1", "leader", "running"), member("db2", "sync_standby"),
                                       member("db3", lag=1)]}


@pytest.fixture
def configure_loader_modules(http_utils):
    return {ha_cluster: {"__salt__": {}, "__grains__": {"id": "db1"}, "__utils__": http_utils}}


@pytest.fixture(autouse=True)
def fast(monkeypatch):
    import time

    clock = {"now": 0.0}
    monkeypatch.setattr(time, "monotonic", lambda: clock["now"])
    monkeypatch.setattr(time, "sleep", lambda s: clock.__setitem__("now", clock["now"] + s))
    return clock


def test_patroni_healthy_and_each_problem():
    assert ha_cluster.patroni_problems(["db1", "db2", "db3"], status=HEALTHY) == []
    status = {"leader": None, "members": [member("db1", "replica", "running"), member("db2", lag=40),
                                          member("db3", state="stopped", lag=None)]}
    assert ha_cluster.patroni_problems("db1,db2,db3,db4", 16, status) == [
        "Patroni: no running leader", "Patroni: replica db2 lags 40 MB (over 16 MB)", "Patroni: member db3 is stopped",
        "Patroni: member db4 is not in the cluster"]


def test_health_gathers_every_service_and_a_check_that_cannot_run():
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: HEALTHY
    ha_cluster.__salt__["rabbitmq_ha.health_problems"] = lambda nodes: ["rabbit@db3 is not running"]
    report = ha_cluster.health(postgres=["db1", "db2", "db3"], rabbitmq=["rabbit@db1", "rabbit@db3"])
    assert report == {"healthy": False, "problems": ["RabbitMQ: rabbit@db3 is not running"]}
    del ha_cluster.__salt__["rabbitmq_ha.health_problems"]
    report = ha_cluster.health(rabbitmq=["rabbit@db1"])
    assert report["problems"][0].startswith("RabbitMQ: cannot check from db1")
    with pytest.raises(CommandExecutionError, match=r"cluster not healthy \(seen from db1\): RabbitMQ: cannot check"):
        ha_cluster.check(rabbitmq=["rabbit@db1"])
    assert ha_cluster.check(postgres="db1,db2,db3")["healthy"] is True


def test_etcd_asks_each_member_health(monkeypatch):
    asked = []

    def request(method, url, timeout=10, context=None, label=None, **kw):
        asked.append(url)
        if "10.0.0.3" in url:
            raise CommandExecutionError(f"{label} unreachable: refused")
        return {"health": "true"} if "10.0.0.1" in url else {"health": "false", "reason": "RAFT NO LEADER"}

    ha_cluster.__utils__["ha_http.request"] = request
    problems = ha_cluster.etcd_problems(["http://10.0.0.1:2379", "http://10.0.0.2:2379", "http://10.0.0.3:2379/"])
    assert asked == [f"http://10.0.0.{i}:2379/health" for i in (1, 2, 3)]
    assert problems == ["etcd: member http://10.0.0.2:2379 is not healthy: {'health': 'false', 'reason': 'RAFT NO LEADER'}",
                        "etcd: etcd member http://10.0.0.3:2379 unreachable: refused"]


def test_wait_healthy_until_healthy_or_raises_with_the_last_problems(fast):
    answers = [{"leader": None, "members": []}, HEALTHY]
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: answers.pop(0) if len(answers) > 1 else answers[0]
    report = ha_cluster.wait_healthy(postgres=["db1", "db2", "db3"], timeout=60, interval=5)
    assert report["healthy"] and report["waited_s"] == 5.0
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: {"leader": "db1", "members": HEALTHY["members"][:2]}
    with pytest.raises(CommandExecutionError, match="after 30 s.*member db3 is not in the cluster"):
        ha_cluster.wait_healthy(postgres=["db1", "db2", "db3"], timeout=30)


def test_move_leader_switches_to_the_sync_standby_and_nothing_off_a_replica():
    calls = []
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: HEALTHY
    ha_cluster.__salt__["patroni.switchover"] = lambda **kw: calls.append(kw) or kw["candidate"]
    assert ha_cluster.move_patroni_leader("db3") == {"moved": False, "leader": "db1"}
    moved = ha_cluster.move_patroni_leader("db1", wait=60)
    assert moved["moved"] and moved["to"] == "db2"
    assert calls == [{"candidate": "db2", "current_leader": "db1", "wait": 60}]


def test_move_leader_refuses_without_a_fit_replica_and_when_the_switchover_did_not_take():
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: {"leader": "db1", "members": [
        member("db1", "leader", "running"), member("db2", lag=500), member("db3", state="stopped", lag=None)]}
    with pytest.raises(CommandExecutionError, match="db1 is the Patroni leader and no replica is fit"):
        ha_cluster.move_patroni_leader("db1")
    ha_cluster.__salt__["patroni.cluster_status"] = lambda: HEALTHY
    ha_cluster.__salt__["patroni.switchover"] = lambda **kw: "db1"
    with pytest.raises(CommandExecutionError, match="switchover from db1 to db2 did not take"):
        ha_cluster.move_patroni_leader()


def test_reboot_notes_the_boot_then_rebooted_tells_a_new_one(monkeypatch, tmp_path):
    state = tmp_path / "reboot.json"
    marker = {"now": "boot-a:100"}
    monkeypatch.setattr(ha_cluster, "boot_marker", lambda: marker["now"])
    calls = []
    ha_cluster.__salt__["cmd.run_all"] = lambda cmd, **kw: calls.append(cmd) or {"retcode": 0, "stdout": "", "stderr": ""}
    assert ha_cluster.reboot(delay=5, state_file=str(state)) == {"host": "db1", "reboot_in_s": 5}
    assert calls == [["systemd-run", "--unit=airflow-ha-reboot", "--on-active=5", "/bin/systemctl", "reboot"]]
    assert json.loads(state.read_text())["marker"] == "boot-a:100"
    with pytest.raises(CommandExecutionError, match="db1 has not rebooted yet"):
        ha_cluster.rebooted(str(state))
    marker["now"] = "boot-a:900"  # a container: same kernel, new init
    assert ha_cluster.rebooted(str(state))["rebooted"] is True and state.exists()
    ha_cluster.rebooted(str(state), clear=True)
    assert not state.exists()
    with pytest.raises(CommandExecutionError, match="no reboot noted"):
        ha_cluster.rebooted(str(state))


def test_reboot_that_cannot_be_scheduled_raises(monkeypatch, tmp_path):
    monkeypatch.setattr(ha_cluster, "boot_marker", lambda: "x")
    ha_cluster.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 1, "stdout": "", "stderr": "Unit exists"}
    with pytest.raises(CommandExecutionError, match="db1: could not schedule the reboot: Unit exists"):
        ha_cluster.reboot(state_file=str(tmp_path / "r.json"))
    assert not (tmp_path / "r.json").exists()


def test_boot_marker_reads_this_machine():
    boot_id, starttime = ha_cluster.boot_marker().split(":")
    assert len(boot_id) == 36 and starttime.isdigit()


def test_wait_units(fast):
    states = {"haproxy": [3, 0], "keepalived": [0]}
    ha_cluster.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": (states[cmd[-1]].pop(0) if len(states[cmd[-1]]) > 1 else states[cmd[-1]][0])}
    assert ha_cluster.wait_units(["haproxy", "keepalived"], timeout=30)["waited_s"] == 5.0
    states["haproxy"] = [3]
    with pytest.raises(CommandExecutionError, match="db1: haproxy not active after 10 s"):
        ha_cluster.wait_units("haproxy,keepalived", timeout=10)


# ------------------------------------------------------------------ reboot_plan (orch.rolling_reboot)

ROLES = {"af1": ["scheduler", "worker"], "af2": ["webserver"], "db1": ["postgres", "etcd"], "db2": ["rabbitmq"],
         "db3": ["postgres", "rabbitmq", "etcd"], "mon": ["monitoring"]}
IPS = {"af1": "10.0.0.21", "af2": "10.0.0.22", "db1": "10.0.0.11", "db2": "10.0.0.12", "db3": "10.0.0.13",
       "mon": "10.0.0.5"}
QUORUM_ROLES = ["etcd", "postgres", "rabbitmq"]


def plan(**kwargs):
    return ha_cluster.reboot_plan(ROLES, QUORUM_ROLES, host_ips=IPS, **kwargs)


def test_reboot_plan_default_order_hosts_without_a_quorum_role_first():
    assert plan() == {"plan": ["af1", "af2", "mon", "db1", "db2", "db3"], "left_out": [], "master": "", "errors": []}
    assert ha_cluster.reboot_plan({}, QUORUM_ROLES) == {"plan": [], "left_out": [], "master": "", "errors": []}


def test_reboot_plan_given_hosts_in_their_order():
    assert plan(hosts=["db3", "af2"])["plan"] == ["db3", "af2"]
    assert plan(hosts=("af1",))["plan"] == ["af1"]
    assert plan(hosts=[]) == {"plan": [], "left_out": [], "master": "", "errors": []}


def test_reboot_plan_comma_string():
    assert plan(hosts="af2, db3,,") == plan(hosts=["af2", "db3"])
    assert plan(hosts=" ,")["plan"] == [] and not plan(hosts="")["errors"]


@pytest.mark.parametrize("hosts, error", [
    (["af1", "db9"], 'orchestrate pillar hosts: "db9" is no inventory host'),
    ("af1,db9", 'orchestrate pillar hosts: "db9" is no inventory host'),
    ([5], "orchestrate pillar hosts: 5 is no inventory host"),
    ([["af1"]], 'orchestrate pillar hosts: ["af1"] is no inventory host'),
    (["af1", "af1"], 'orchestrate pillar hosts: "af1" is listed twice'),
    ("af1, af1", 'orchestrate pillar hosts: "af1" is listed twice'),
    ({"a": 1}, 'orchestrate pillar hosts is {"a": 1}: give a list of inventory hosts'),
    (3, "orchestrate pillar hosts is 3: give a list of inventory hosts"),
])
def test_reboot_plan_refuses_unknown_duplicate_and_no_list(hosts, error):
    assert plan(hosts=hosts)["errors"] == [error]


def test_reboot_plan_every_error_together():
    assert plan(hosts=["db9", "af1", "af1"], master_host="x")["errors"] == [
        'orchestrate pillar master_host "x" is no inventory host',
        'orchestrate pillar hosts: "db9" is no inventory host',
        'orchestrate pillar hosts: "af1" is listed twice']


def test_reboot_plan_master_found_by_its_ip_and_left_out_by_default():
    result = plan(master_ips=["127.0.0.1", "10.0.0.12"])
    assert result == {"plan": ["af1", "af2", "mon", "db1", "db3"], "left_out": ["db2"], "master": "db2", "errors": []}
    # the first inventory host by name when more than one IP is the master's; no IP, no master
    assert plan(master_ips=["10.0.0.13", "10.0.0.11"])["master"] == "db1"
    assert plan(master_ips=["192.0.2.1"])["master"] == ""
    assert ha_cluster.reboot_plan(ROLES, QUORUM_ROLES, host_ips={"af1": None}, master_ips=[None])["master"] == ""


def test_reboot_plan_master_host_wins_over_the_ip():
    result = plan(master_host="af2", master_ips=["10.0.0.12"])
    assert result["master"] == "af2" and result["left_out"] == ["af2"] and "db2" in result["plan"]


def test_reboot_plan_master_host_not_in_the_inventory():
    result = plan(master_host="salt", master_ips=["10.0.0.12"])
    assert result["errors"] == ['orchestrate pillar master_host "salt" is no inventory host']
    assert result["master"] == "salt" and result["left_out"] == []


def test_reboot_plan_include_master_puts_it_last():
    result = plan(include_master=True, master_host="af1")
    assert result == {"plan": ["af2", "mon", "db1", "db2", "db3", "af1"], "left_out": [], "master": "af1", "errors": []}


def test_reboot_plan_given_hosts_always_include_the_master_last():
    for include_master in (False, True):
        result = plan(hosts=["db1", "af2", "db3"], include_master=include_master, master_ips=["10.0.0.11"])
        assert result["plan"] == ["af2", "db3", "db1"] and result["left_out"] == []
    # not among the given hosts: not rebooted, not left out
    assert plan(hosts=["af2"], master_host="db1") == {"plan": ["af2"], "left_out": [], "master": "db1", "errors": []}
