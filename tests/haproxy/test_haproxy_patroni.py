"""HAProxy, configured from the state's own template (backends moved onto a
real 3-member Patroni cluster on loopback, frontends on free loopback ports),
in front of the cluster: the read/write port reaches only the leader, the
read-only port only replicas, and after a Patroni switchover writes reach the
new leader within a bounded time while sessions to members that changed role
are cut (on-marked-down shutdown-sessions)."""

import time

import pytest

from clusters.haproxy import lb_context, start_lb, switchover_drill, wait_for
from clusters.patroni import MEMBERS

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SWITCHOVER_WRITE_BOUND = 45  # s from the switchover request to a committed write on the new leader


@pytest.fixture(scope="module")
def lb(lb_patroni_cluster, state_file_context, render_state_file, tmp_path_factory):
    cluster = lb_patroni_cluster
    tmp = tmp_path_factory.mktemp("haproxy")
    ctx = lb_context(state_file_context("af1", "compact", "haproxy", "haproxy-config")["haproxy"], cluster, tmp)
    balancer, _ = start_lb(ctx, cluster, render_state_file, tmp)
    try:
        # bootstrap, then HAProxy's checks: exactly one leader and two replicas in service
        wait_for(balancer.settled, 180, "one leader behind the read/write port and two replicas behind the "
                 "read-only one", interval=1)
        yield balancer
    finally:
        balancer.stop()


def test_stats_page_needs_the_password_and_metrics_are_open(lb):
    assert lb.http("/", auth=False)[0] == 401
    assert lb.http("/")[0] == 200
    status, metrics = lb.http("/metrics", auth=False)
    assert status == 200
    assert 'haproxy_backend_active_servers{proxy="postgres_rw"} 1' in metrics
    assert 'haproxy_backend_active_servers{proxy="postgres_ro"} 2' in metrics


def test_read_write_port_reaches_the_leader_and_writes(lb, loaders, lb_patroni_cluster):
    leader = loaders.modules.patroni.leader(config=lb_patroni_cluster.configs["db1"])
    assert lb.up("postgres_rw") == [leader]
    for _ in range(3):
        assert lb.where("postgres_rw") == (False, leader)
    assert lb.psql("postgres_rw", "create table lb_drill (id serial primary key, at timestamptz default now())") == ""
    assert lb.psql("postgres_rw", "insert into lb_drill default values returning id") == "1"


def test_read_only_port_reaches_only_replicas(lb, loaders, lb_patroni_cluster):
    leader = loaders.modules.patroni.leader(config=lb_patroni_cluster.configs["db1"])
    seen = set()
    for _ in range(6):
        recovery, member = lb.where("postgres_ro")
        assert recovery is True
        seen.add(member)
    assert seen == set(MEMBERS) - {leader}  # both replicas serve reads, the leader none
    # the write of the previous test reached them (streaming), and they refuse writes
    wait_for(lambda: lb.psql("postgres_ro", "select count(*) from lb_drill") == "1", 30, "replication")
    assert lb.psql("postgres_ro", "insert into lb_drill default values") is None


def test_switchover_writes_reach_the_new_leader_and_stale_sessions_are_cut(lb, loaders, lb_patroni_cluster):
    cluster = lb_patroni_cluster
    config = cluster.configs["db1"]
    old_leader = loaders.modules.patroni.leader(config=config)
    # sessions opened before: one to the leader, one to each replica (leastconn spreads them)
    rw_session = lb.session("postgres_rw")
    assert lb.pg_port_of[int(rw_session.query("select inet_server_port()"))] == old_leader
    ro_sessions = {}
    for _ in range(6):
        s = lb.session("postgres_ro")
        name = lb.pg_port_of[int(s.query("select inet_server_port()"))]
        if name in ro_sessions:
            s.close()
        else:
            ro_sessions[name] = s
        if len(ro_sessions) == 2:
            break
    # synchronous_mode (the default): the switchover goes to the synchronous standby
    deadline = time.time() + 60
    while time.time() < deadline and not [m for m in loaders.modules.patroni.members(config=config)
                                          if m["role"] == "sync_standby"]:
        time.sleep(1)
    candidate = next(m["name"] for m in loaders.modules.patroni.members(config=config) if m["role"] == "sync_standby")
    assert candidate in ro_sessions
    started = cluster.psql(candidate, "select pg_postmaster_start_time()")

    def switchover():
        assert loaders.modules.patroni.switchover(candidate=candidate, config=config) == candidate

    figures = switchover_drill(lb, old_leader, candidate, switchover, bound=SWITCHOVER_WRITE_BOUND)
    print(f"\nswitchover {old_leader} -> {candidate}: request to first committed write on the new leader "
          f"through HAProxy {figures['to_write']:.1f} s; write outage (last write on the old leader to the "
          f"first on the new) {figures['outage']:.1f} s; {figures['refused']} writes refused meanwhile")
    assert figures["to_write"] < SWITCHOVER_WRITE_BOUND
    # every write landed on the leader of its time: first the old one, then the new one, never both
    members = figures["members"]
    assert set(members) <= {old_leader, candidate}
    assert members == sorted(members, key=lambda m: m == candidate)

    # HAProxy takes the promoted member out of the read-only pool and cuts the
    # sessions it had there, though PostgreSQL kept them (promotion without restart)
    wait_for(lambda: candidate not in lb.up("postgres_ro"), 30, f"{candidate} out of the read-only pool")
    assert ro_sessions[candidate].lost(), "read-only session to the promoted member not cut"
    assert cluster.psql(candidate, "select pg_postmaster_start_time()") == started
    # the session to the old leader is gone too: no client keeps talking to a demoted member
    wait_for(lambda: old_leader not in lb.up("postgres_rw"), 30, f"{old_leader} out of the read/write pool")
    assert rw_session.lost(), "session to the old leader not cut"
    for s in [rw_session, *ro_sessions.values()]:
        s.close()
    assert lb.up("postgres_rw") == [candidate]
    assert lb.where("postgres_rw") == (False, candidate)


def test_after_the_switchover_the_old_leader_serves_reads(lb, loaders, lb_patroni_cluster):
    leader = loaders.modules.patroni.leader(config=lb_patroni_cluster.configs["db1"])
    wait_for(lambda: lb.up("postgres_ro") == sorted(set(MEMBERS) - {leader}), 90,
             "the old leader back in the read-only pool as a replica", interval=1)
    for _ in range(6):
        recovery, member = lb.where("postgres_ro")
        assert recovery is True and member != leader
