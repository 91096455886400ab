#!/usr/bin/env python3
"""Switchover drill through HAProxy: a real 3-member etcd + Patroni +
PostgreSQL cluster on loopback and HAProxy in front of it, both configured
from the states' templates (salt/haproxy/files/haproxy.cfg.jinja with the
shipped check timing: inter 3s fall 3 rise 2, or --fastinter/--downinter).

    .venv/bin/python tools/drill_haproxy_switchover.py [--runs 3] [--fastinter 1s --downinter 1s] [--no-tls]

With TLS (the default) HAProxy checks the Patroni REST API with check-ssl
against the cluster's CA, and the writer connects with sslmode=verify-full.

A writer inserts a row through HAProxy's read/write port every ~0.1 s. Per
run, prints the time from the switchover request to the first write committed
on the new leader through HAProxy, the write outage (last write on the old
leader to the first on the new one) and the writes refused meanwhile; then
the medians.
"""

import argparse
import os
import statistics
import json
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tools")]

from drill_patroni_failover import wait_healthy  # noqa: E402
from clusters import tls_material  # noqa: E402
from clusters.base import in_scratch_dir  # noqa: E402
from clusters.haproxy import LoadBalancer, lb_context, switchover_drill, wait_for  # noqa: E402
from clusters.patroni import MEMBERS, PatroniCluster  # noqa: E402
from clusters.state_render import in_fresh_process, make_salt_env  # noqa: E402

OFFSET = 200  # ports clear of tests/postgres (0) and tests/haproxy (100)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--fastinter", default="", help="haproxy:check:fastinter to drill with, e.g. 1s")
    parser.add_argument("--downinter", default="", help="haproxy:check:downinter to drill with, e.g. 1s")
    parser.add_argument("--no-tls", action="store_true",
                        help="drill without TLS (plain http checks of the Patroni REST API)")
    args = parser.parse_args(argv)
    return in_scratch_dir("airflow-ha-lb-drill-", drill, args)


def drill(args, tmp):
    env = make_salt_env(tmp, tls=not args.no_tls, topologies=["compact"])
    etcd_ctx = in_fresh_process("db1", "compact", "etcd", "etcd-config", "debian12", {}, *env, True)
    patroni_ctx = in_fresh_process("db1", "compact", "postgres", "postgres-patroni-config", "debian12", {}, *env, True)
    haproxy_ctx = in_fresh_process("af1", "compact", "haproxy", "haproxy-config", "debian12", {}, *env, True)
    with PatroniCluster(etcd_ctx, patroni_ctx, os.path.join(tmp, "cluster"), offset=OFFSET) as cluster:
        cluster.superuser_password = patroni_ctx["patroni"]["superuser"]["password"]
        ctx = lb_context(haproxy_ctx["haproxy"], cluster, tmp)
        ctx["check"].update({k: v for k, v in (("fastinter", args.fastinter), ("downinter", args.downinter)) if v})
        if (ctx.get("tls") or {}).get("enabled"):  # the https frontends need a certificate and key (one PEM)
            ctx["tls"] = dict(ctx["tls"], pem=tls_material.issue(os.path.join(tmp, "lb-pki"))["pem"])
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(in_fresh_process("af1", "compact", "haproxy", "haproxy-config", "debian12", {"haproxy": ctx}, *env))
        subprocess.run(["haproxy", "-c", "-q", "-f", cfg], check=True, timeout=30)
        c = ctx["check"]
        print(f"HAProxy checks: inter {c['inter']} fastinter {c.get('fastinter') or '-'} "
              f"downinter {c.get('downinter') or '-'} fall {c['fall']} rise {c['rise']}; "
              f"Patroni: loop_wait {patroni_ctx['patroni']['dcs']['loop_wait']} s")
        lb = LoadBalancer(cfg, ctx, cluster, os.path.join(tmp, "haproxy.log"))
        try:
            leader = wait_healthy(cluster)
            wait_for(lb.settled, 120, "HAProxy to see one leader and two replicas", interval=1)
            lb.psql("postgres_rw", "create table lb_drill (id serial primary key)")
            runs = []
            for run in range(1, args.runs + 1):
                leader = wait_healthy(cluster)
                wait_for(lb.settled, 120, "HAProxy to see one leader and two replicas", interval=1)
                # synchronous_mode (the default): only the synchronous standby may take over
                rows = json.loads(subprocess.run(["patronictl", "-c", cluster.configs[leader], "list", "-f", "json"],
                                                 capture_output=True, text=True, check=True).stdout)
                sync = [r["Member"] for r in rows if str(r.get("Role", "")).lower() in ("sync standby", "sync_standby")]
                candidate = sync[0] if sync else sorted(m for m in MEMBERS if m != leader)[run % 2]

                def switchover():
                    subprocess.run(["patronictl", "-c", cluster.configs[candidate], "switchover", "--force",
                                    "--leader", leader, "--candidate", candidate],
                                   capture_output=True, check=True, timeout=120)

                figures = switchover_drill(lb, leader, candidate, switchover)
                runs.append(figures)
                print(f"switchover {run}: {leader} -> {candidate}: first write on the new leader through HAProxy "
                      f"{figures['to_write']:.1f} s after the request; write outage {figures['outage']:.1f} s; "
                      f"{figures['refused']} writes refused")
        finally:
            lb.stop()
    print(f"median over {len(runs)} runs: request to write {statistics.median(r['to_write'] for r in runs):.1f} s "
          f"(min {min(r['to_write'] for r in runs):.1f}, max {max(r['to_write'] for r in runs):.1f}); "
          f"write outage {statistics.median(r['outage'] for r in runs):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
