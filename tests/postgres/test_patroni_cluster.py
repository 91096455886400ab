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


def test_config_check_of_the_state_passes_a_running_members_config_and_fails_a_broken_one(cluster, tmp_path):
    """The state's check_cmd (patroni --validate-config, tolerating the member's own ports in use)."""
    import subprocess

    import yaml

    from tests.helpers.inventory import REPO

    validator = str(REPO / "salt" / "postgres" / "files" / "patroni-validate-config.py")
    config = yaml.safe_load(open(cluster.configs["db1"]))
    # Patroni refuses loopback connect addresses, which only this test cluster uses
    config["restapi"]["connect_address"] = "10.83.0.11:18008"
    config["postgresql"]["connect_address"] = "10.83.0.11:15432"
    good, broken = tmp_path / "good.yml", tmp_path / "broken.yml"
    good.write_text(yaml.safe_dump(config))
    config["postgresql"]["bin_dir"] = "/nonexistent/bin"
    broken.write_text(yaml.safe_dump(config))
    ok = subprocess.run([validator, str(good)], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run([validator, str(broken)], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "bin_dir" in bad.stderr


def test_airflow_role_and_database_created_on_the_leader_idempotently(loaders, cluster, generated_secrets):
    leader = loaders.modules.patroni.leader(config=cluster.configs["db1"])
    replica = next(n for n in cluster.configs if n != leader)
    assert loaders.modules.patroni.is_leader(name=replica, config=cluster.configs["db1"]) is False
    conn = {"db_user": "postgres", "user": "postgres", "db_host": cluster.member_dir(leader),
            "db_port": cluster.ports(["db1", "db2", "db3"].index(leader))["pg"]}
    password = generated_secrets[0]["postgres"]["airflow_password"]
    for attempt in (1, 2):
        role = loaders.states.postgres_user.present(name="airflow", password=password, encrypted="scram-sha-256",
                                                    login=True, **conn)
        db = loaders.states.postgres_database.present(name="airflow", owner="airflow", encoding="UTF8", **conn)
        assert role.result is True and db.result is True, (role.comment, db.comment)
        assert bool(role.changes) == bool(db.changes) == (attempt == 1)
        assert password not in str(role.changes) + role.comment
    assert cluster.psql(leader, "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname='airflow'") == "t"
    # it reached the replicas through replication, not by running there
    import time

    deadline = time.time() + 30
    while cluster.psql(replica, "select count(*) from pg_database where datname='airflow'") != "1" and time.time() < deadline:
        time.sleep(0.5)
    assert cluster.psql(replica, "select count(*) from pg_database where datname='airflow'") == "1"


def test_members_lists_one_leader_and_two_streaming_replicas(loaders, cluster):
    # CREATE DATABASE above wrote the template's pages to the WAL: let replicas catch up
    ret = loaders.states.patroni.cluster_healthy(name="caught up", members=3, max_lag_mb=1, timeout=60,
                                                 config=cluster.configs["db2"])
    assert ret.result is True, ret.comment
    members = loaders.modules.patroni.members(config=cluster.configs["db2"])
    assert sorted(m["name"] for m in members) == ["db1", "db2", "db3"]
    # synchronous_mode (the default): one of the two replicas is the synchronous standby
    assert sorted(m["role"] for m in members) in (["leader", "replica", "replica"],
                                                  ["leader", "replica", "sync_standby"])
    assert all(m["state"] in ("running", "streaming") for m in members)
    assert all(m["lag_mb"] is not None and m["lag_mb"] <= 1 for m in members if m["role"] != "leader")
    assert loaders.modules.patroni.is_healthy(members=3, config=cluster.configs["db3"]) is True
    assert loaders.modules.patroni.is_healthy(members=4, config=cluster.configs["db3"]) is False


def test_shipped_dcs_settings_are_in_the_dcs(loaders, cluster, patroni_contexts):
    shipped = patroni_contexts[1]["patroni"]["dcs"]
    current = loaders.modules.patroni.show_config(config=cluster.configs["db1"])
    assert current["ttl"] == shipped["ttl"] and current["failsafe_mode"] is True
    assert current["postgresql"]["use_pg_rewind"] is True
    # zero loss by default: one synchronous standby, which commits wait for
    assert current["synchronous_mode"] is True and shipped["synchronous_mode"] is True
    deadline = time.time() + 60
    while time.time() < deadline:
        roles = sorted(m["role"] for m in loaders.modules.patroni.members(config=cluster.configs["db1"]))
        if roles == ["leader", "replica", "sync_standby"]:
            break
        time.sleep(1)
    assert roles == ["leader", "replica", "sync_standby"]


def test_config_applied_honours_test_mode_then_sets_and_is_idempotent(loaders, cluster):
    config = cluster.configs["db2"]
    before = loaders.modules.patroni.show_config(config=config)["maximum_lag_on_failover"]
    settings = {"maximum_lag_on_failover": before * 2, "postgresql": {"parameters": {"max_connections": 300}}}
    dry = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config, test=True)
    assert dry.result is None
    assert dry.changes == {"maximum_lag_on_failover": {"old": before, "new": before * 2}}
    assert loaders.modules.patroni.show_config(config=config)["maximum_lag_on_failover"] == before
    ret = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config)
    assert ret.result is True and "maximum_lag_on_failover" in ret.changes
    assert loaders.modules.patroni.show_config(config=config)["maximum_lag_on_failover"] == before * 2
    again = loaders.states.patroni.config_applied(name="dcs", settings=settings, config=config)
    assert again.result is True and again.changes == {}


def test_switchover_moves_the_leader_to_the_candidate(loaders, cluster):
    before = loaders.modules.patroni.leader(config=cluster.configs["db1"])
    candidate = next(m["name"] for m in loaders.modules.patroni.members(config=cluster.configs["db1"])
                     if m["role"] == "sync_standby")
    new_leader = loaders.modules.patroni.switchover(candidate=candidate, config=cluster.configs["db1"])
    assert new_leader == candidate != before
    ret = loaders.states.patroni.cluster_healthy(name="after switchover", members=3, timeout=120,
                                                 config=cluster.configs["db1"])
    assert ret.result is True, ret.comment


def test_maintenance_operations_on_the_real_cluster(loaders, cluster):
    mod, config = loaders.modules.patroni, cluster.configs["db1"]
    mod.pause(config=config)
    assert mod.show_config(config=config).get("pause") is True
    mod.resume(config=config)
    assert not mod.show_config(config=config).get("pause")
    leader = mod.leader(config=config)
    replica = next(m["name"] for m in mod.members(config=config) if m["role"] == "replica")
    mod.restart(member=replica, config=config)
    mod.reinit(replica, config=config)
    ret = loaders.states.patroni.cluster_healthy(name="after reinit", members=3, timeout=120, config=config)
    assert ret.result is True, ret.comment
    # synchronous_mode is on (the shipped default): only the synchronous standby may take over
    candidate = next(m["name"] for m in mod.members(config=config) if m["role"] == "sync_standby")
    assert mod.failover(candidate=candidate, config=config) == candidate != leader
    ret = loaders.states.patroni.cluster_healthy(name="after failover", members=3, timeout=120, config=config)
    assert ret.result is True, ret.comment


@pytest.mark.lab_covered  # the lab's leader and card_kills drills kill the leader's host under writes
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
