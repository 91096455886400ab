"""The patroni execution and state modules against a real 3-member etcd +
Patroni + PostgreSQL cluster (configured from the states' own templates):
bootstrap, members, dynamic config as compare-and-set, switchover, and a
failover after the leader's host dies, with no committed row lost."""

import time

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def status(loaders, cluster, via="db1"):
    return loaders.modules.patroni.cluster_status(config=cluster.configs[via])


def test_bootstrap_reaches_health_through_the_state(loaders, cluster):
    ret = loaders.states.patroni.cluster_healthy(name="bootstrap", members=3, timeout=180,
                                                 config=cluster.configs["db1"])
    assert ret.result is True, ret.comment
    assert "leader" in ret.comment and ret.changes == {}


def test_members_lists_one_leader_and_two_streaming_replicas(loaders, cluster):
    members = loaders.modules.patroni.members(config=cluster.configs["db2"])
    assert sorted(m["name"] for m in members) == ["db1", "db2", "db3"]
    assert sorted(m["role"] for m in members) == ["leader", "replica", "replica"]
    assert all(m["state"] in ("running", "streaming") for m in members)
    assert all(m["lag_mb"] is not None and m["lag_mb"] <= 1 for m in members if m["role"] == "replica")
    assert loaders.modules.patroni.is_healthy(members=3, config=cluster.configs["db3"]) is True
    assert loaders.modules.patroni.is_healthy(members=4, config=cluster.configs["db3"]) is False


def test_shipped_dcs_settings_are_in_the_dcs(loaders, cluster, patroni_contexts):
    shipped = patroni_contexts[1]["patroni"]["dcs"]
    current = loaders.modules.patroni.show_config(config=cluster.configs["db1"])
    assert current["ttl"] == shipped["ttl"] and current["failsafe_mode"] is True
    assert current["postgresql"]["use_pg_rewind"] is True


def test_config_applied_honours_test_mode_then_sets_and_is_idempotent(loaders, cluster):
    config = cluster.configs["db2"]
    settings = {"synchronous_mode": True, "postgresql": {"parameters": {"max_connections": 300}}}
    dry = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config, test=True)
    assert dry.result is None
    assert dry.changes == {"synchronous_mode": {"old": False, "new": True}}
    assert loaders.modules.patroni.show_config(config=config)["synchronous_mode"] is False
    ret = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config)
    assert ret.result is True and "synchronous_mode" in ret.changes
    again = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config)
    assert again.result is True and again.changes == {}
    # a synchronous standby is elected: commits now wait for it
    deadline = time.time() + 60
    while time.time() < deadline:
        roles = {m["role"] for m in loaders.modules.patroni.members(config=config)}
        if "sync_standby" in roles:
            break
        time.sleep(1)
    assert "sync_standby" in roles


def test_switchover_moves_the_leader_to_the_candidate(loaders, cluster):
    before = loaders.modules.patroni.leader(config=cluster.configs["db1"])
    candidate = next(m["name"] for m in loaders.modules.patroni.members(config=cluster.configs["db1"])
                     if m["role"] == "sync_standby")
    new_leader = loaders.modules.patroni.switchover(candidate=candidate, config=cluster.configs["db1"])
    assert new_leader == candidate != before
    ret = loaders.states.patroni.cluster_healthy(name="after switchover", members=3, timeout=120,
                                                 config=cluster.configs["db1"])
    assert ret.result is True, ret.comment


def test_failover_after_the_leaders_host_dies_loses_no_committed_row(loaders, cluster):
    config = cluster.configs
    old = loaders.modules.patroni.leader(config=config["db1"])
    survivor = next(n for n in config if n != old)
    cluster.psql(old, "create table if not exists drill (id int primary key)")
    committed = 0
    for i in range(200):  # each statement autocommits: returned means committed
        cluster.psql(old, f"insert into drill values ({i})")
        committed = i + 1
    cluster.kill(old)
    killed_at = time.time()
    new = None
    while time.time() - killed_at < 120:
        try:
            new = loaders.modules.patroni.leader(config=config[survivor])
        except Exception:
            new = None
        if new and new != old and cluster.psql(new, "select pg_is_in_recovery()", check=False) == "f":
            break
        time.sleep(0.5)
    assert new and new != old, "no new leader within 120 s"
    assert int(cluster.psql(new, "select count(*) from drill")) == committed
    assert loaders.modules.patroni.is_leader(name=new, config=config[survivor]) is True

    cluster.start_member(old)  # the dead host comes back and rejoins as a replica
    ret = loaders.states.patroni.cluster_healthy(name="rejoined", members=3, timeout=180, config=config[survivor])
    assert ret.result is True, ret.comment
    assert int(cluster.psql(old, "select count(*) from drill")) == committed


def test_cluster_healthy_fails_with_the_reason_when_a_member_is_missing(loaders, cluster):
    ret = loaders.states.patroni.cluster_healthy(name="too many", members=4, timeout=3, interval=1,
                                                 config=cluster.configs["db1"])
    assert ret.result is False
    assert "3 of 4 members running" in ret.comment
