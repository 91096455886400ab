"""orch.restore's sequence on a real 3-member etcd + Patroni 4.1.5 +
PostgreSQL 15 cluster on loopback (configured from the postgres state's own
template and context, archiving with the shipped archive_command and
restore_command into a local pgBackRest repository): rows before and after a
time T, then every Patroni stopped, the cluster removed from etcd, the
replicas wiped, `pgbackrest restore --type=time --delta` and the standalone
recovery on one member, Patroni adopting the restored data directory, the
replicas cloned from it. Rows before T must be back, none after."""

import os
import pwd
import shutil
import tempfile
import threading
import time

import pytest

from clusters.patroni import MEMBERS, PatroniCluster

# the lab's restore drill runs orch.restore itself on the real cluster (rows before T back, none after)
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.lab_covered]

BIN = "/usr/lib/postgresql/15/bin"
STANZA = "airflow-ha"  # the shipped archive_command's
OFFSET = 100  # ports clear of the plain (0) and TLS (50) clusters
TIMELINE = "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"


@pytest.fixture(scope="module")
def archiving(patroni_contexts):
    if not shutil.which("pgbackrest") or not shutil.which("patroni"):
        pytest.skip("pgbackrest or Patroni missing: make deps")
    params = patroni_contexts[1]["patroni"]["dcs"]["postgresql"]["parameters"]
    assert params["archive_command"] == f"pgbackrest --stanza={STANZA} archive-push %p"
    assert patroni_contexts[1]["patroni"]["recovery_conf"]["restore_command"].startswith("pgbackrest ")
    workdir = tempfile.mkdtemp(prefix="airflow-ha-pgbackrest-patroni-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    pw = pwd.getpwnam("postgres")
    shared = os.path.join(workdir, "pgbackrest")
    for sub in ("repo", "log", "lock", "spool"):
        os.makedirs(os.path.join(shared, sub))
    cluster = PatroniCluster(*patroni_contexts, workdir, offset=OFFSET)
    configs = {}
    for i, name in enumerate(MEMBERS):
        path = os.path.join(shared, f"{name}.conf")
        with open(path, "w") as f:
            f.write(f"""[global]
repo1-path={shared}/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=test-only-passphrase-patroni-0123456789
log-path={shared}/log
lock-path={shared}/lock
spool-path={shared}/spool
log-level-console=warn
log-level-file=detail
start-fast=y
compress-type=zst

[{STANZA}]
pg1-path={cluster.member_dir(name)}/data
pg1-port={cluster.ports(i)['pg']}
pg1-socket-path={cluster.member_dir(name)}
""")
        configs[name] = path
        # the member's PostgreSQL runs the shipped commands with this member's config
        cluster.member_env[name] = {"PGBACKREST_CONFIG": path}
    for root, dirs, files in os.walk(shared):
        for entry in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(entry, pw.pw_uid, pw.pw_gid)
    with cluster as running:
        yield running, configs


def wait_healthy(loaders, cluster, members, via="db1", timeout=300):
    ret = loaders.states.patroni.cluster_healthy(name="restore", members=members, timeout=timeout,
                                                 config=cluster.configs[via])
    assert ret.result is True, ret.comment


def test_point_in_time_recovery_of_the_patroni_cluster(loaders, archiving):
    cluster, pgbr_configs = archiving
    patroni, pgbr = loaders.modules.patroni, loaders.modules.pgbackrest
    wait_healthy(loaders, cluster, 3)
    leader = patroni.leader(config=cluster.configs["db1"])
    pgbr.stanza_create(STANZA, config=pgbr_configs[leader])
    assert pgbr.check(STANZA, config=pgbr_configs[leader]) is True  # the leader archives with the shipped command
    full = pgbr.backup(STANZA, type="full", config=pgbr_configs[leader])
    timeline_before = int(cluster.psql(leader, TIMELINE), 16)

    cluster.psql(leader, "CREATE TABLE drill (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    cluster.psql(leader, "INSERT INTO drill (id) SELECT generate_series(1, 100)")
    time.sleep(1.5)
    target = cluster.psql(leader, "SELECT clock_timestamp()")
    time.sleep(1.5)
    cluster.psql(leader, "INSERT INTO drill (id) SELECT generate_series(101, 200)")
    cluster.psql(leader, "DELETE FROM drill WHERE id <= 50")
    pre = pgbr.restore_preflight(STANZA, target, confirm="restore", config=pgbr_configs[leader])
    assert pre["wal_flushed"] is True and pre["backups"] == 1

    # orch.restore: Patroni stopped everywhere at once (service.stop on the list of members)
    stoppers = [threading.Thread(target=cluster.stop_member, args=(m,)) for m in MEMBERS]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    assert patroni.remove_cluster(config=cluster.configs["db1"]) is True
    assert patroni.members(config=cluster.configs["db1"]) == []
    restore_member, replicas = "db1", ["db2", "db3"]
    for name in replicas:  # as orch.restore calls them: the paths from the member's Patroni config
        wiped = pgbr.wipe_data_dir(patroni_config=cluster.configs[name])
        assert wiped == os.path.join(cluster.member_dir(name), "data") and not os.path.exists(wiped)
    data = os.path.join(cluster.member_dir(restore_member), "data")
    took = pgbr.restore(STANZA, target_time=target, delta=True, config=pgbr_configs[restore_member])
    recovered = pgbr.recover_standalone(patroni_config=cluster.configs[restore_member],
                                        socket_dir=cluster.member_dir(restore_member))
    assert "recovery_target_time" not in open(os.path.join(data, "postgresql.auto.conf")).read()

    cluster.start_member(restore_member)
    wait_healthy(loaders, cluster, 1, via=restore_member, timeout=180)
    assert patroni.leader(config=cluster.configs[restore_member]) == restore_member
    for name in replicas:
        cluster.start_member(name)
    wait_healthy(loaders, cluster, 3, via=restore_member)

    assert cluster.psql(restore_member, "SELECT min(id), max(id), count(*) FROM drill") == "1|100|100"
    for name in replicas:  # cloned from the restored leader
        wait_for = time.time() + 60
        while cluster.psql(name, "SELECT count(*) FROM drill", check=False) != "100" and time.time() < wait_for:
            time.sleep(1)
        assert cluster.psql(name, "SELECT count(*) FROM drill") == "100"
    timeline_after = int(cluster.psql(restore_member, TIMELINE), 16)
    assert timeline_after > timeline_before
    # archiving goes on, on the new timeline
    assert pgbr.check(STANZA, config=pgbr_configs[restore_member]) is True
    print(f"\nFIGURE pgbackrest patroni restore: full backup {full['duration_s']} s, restore {took} s, "
          f"recovery {recovered} s, timeline {timeline_before} -> {timeline_after}")
