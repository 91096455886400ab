#!/usr/bin/env python3
"""Failover and switchover drill on a real 3-member etcd + Patroni + PostgreSQL
cluster on loopback, configured from the states' templates with the shipped
timing settings (salt/postgres/defaults.yaml `dcs`: ttl, loop_wait, retry_timeout).

    .venv/bin/python tools/drill_patroni_failover.py [--runs 3] [--synchronous] [--no-tls]

Prints, per run, the failover time (SIGKILL of the leader's Patroni and
PostgreSQL, as a host crash, to the first committed write on a new leader)
and the committed rows lost; then the median, and the switchover time
(request to the first committed write on the new leader).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from _modules.patroni import normalize_member, summarize  # noqa: E402
from clusters.base import in_scratch_dir  # noqa: E402
from clusters.patroni import MEMBERS, PatroniCluster  # noqa: E402
from clusters.state_render import in_fresh_process, make_salt_env  # noqa: E402


def state_contexts(tmp, tls=True):
    """The etcd and postgres states' contexts of compact db1; with ``tls`` (the
    default, as in production) the cluster runs with TLS and its own CA."""
    env = make_salt_env(tmp, tls=tls, topologies=["compact"])
    return (in_fresh_process("db1", "compact", "etcd", "etcd-config", "debian12", {}, *env, True),
            in_fresh_process("db1", "compact", "postgres", "postgres-patroni-config", "debian12", {}, *env, True))


def status(cluster, via):
    out = subprocess.run(["patronictl", "-c", cluster.configs[via], "list", "-f", "json"],
                         capture_output=True, text=True, timeout=15)
    return summarize([normalize_member(r) for r in json.loads(out.stdout or "[]")]) if out.returncode == 0 else None


def wait_healthy(cluster, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for via in cluster.patroni_procs:
            s = status(cluster, via)
            if s and s["leader"] and s["running"] == len(MEMBERS) and s["max_lag_mb"] is not None and s["max_lag_mb"] < 1:
                return s["leader"]
        time.sleep(1)
    raise TimeoutError("cluster not healthy")


def first_write(cluster, candidates, marker, timeout=180):
    """Poll the candidates until one commits a row; return (member, seconds waited)."""
    start = time.time()
    while time.time() - start < timeout:
        for name in candidates:
            if cluster.psql(name, f"insert into drill values ({marker})", check=False) is not None:
                return name, time.time() - start
        time.sleep(0.2)
    raise TimeoutError("no member accepted a write")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--synchronous", action="store_true", help="drill with synchronous_mode on")
    parser.add_argument("--no-tls", action="store_true", help="drill the cluster without TLS (tls:enabled false)")
    args = parser.parse_args(argv)
    return in_scratch_dir("airflow-ha-drill-", drill, args)


def drill(args, tmp):
    etcd_ctx, patroni_ctx = state_contexts(tmp, tls=not args.no_tls)
    if args.synchronous:
        patroni_ctx["patroni"]["dcs"]["synchronous_mode"] = True
    dcs = patroni_ctx["patroni"]["dcs"]
    print(f"timing: ttl={dcs['ttl']} loop_wait={dcs['loop_wait']} retry_timeout={dcs['retry_timeout']} "
          f"synchronous_mode={dcs['synchronous_mode']}")
    with PatroniCluster(etcd_ctx, patroni_ctx, os.path.join(tmp, "cluster")) as cluster:
        leader = wait_healthy(cluster)
        cluster.psql(leader, "create table drill (id bigint primary key)")
        marker = 0
        failovers, lost = [], []
        for run in range(1, args.runs + 1):
            leader = wait_healthy(cluster)
            committed = []
            for _ in range(100):
                marker += 1
                if cluster.psql(leader, f"insert into drill values ({marker})", check=False) is not None:
                    committed.append(marker)
            cluster.kill(leader)
            killed = time.time()
            others = [m for m in MEMBERS if m != leader]
            marker += 1
            new, waited = first_write(cluster, others, marker)
            seconds = time.time() - killed
            present = set(int(x) for x in cluster.psql(new, "select id from drill").split())
            missing = len([c for c in committed if c not in present])
            failovers.append(seconds)
            lost.append(missing)
            print(f"failover {run}: {leader} killed -> {new} writable in {seconds:.1f} s, committed rows lost: {missing}")
            cluster.start_member(leader)
        print(f"failover median: {statistics.median(failovers):.1f} s over {len(failovers)} runs "
              f"(min {min(failovers):.1f}, max {max(failovers):.1f}); committed rows lost in all: {sum(lost)}")
        leader = wait_healthy(cluster)
        candidate = next(m for m in MEMBERS if m != leader)
        start = time.time()
        subprocess.run(["patronictl", "-c", cluster.configs[candidate], "switchover", "--force",
                        "--leader", leader, "--candidate", candidate], capture_output=True, check=True, timeout=120)
        marker += 1
        first_write(cluster, [candidate], marker)
        print(f"switchover: {leader} -> {candidate} writable in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
