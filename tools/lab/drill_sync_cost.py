"""What zero-loss replication costs: pgbench through HAProxy's leader port
(:5000 on the main VIP, TLS verify-full), once with Patroni's
synchronous_mode as the lab runs it, once with it switched off, in one run.

    .venv/bin/python tools/lab/drill.py sync_cost

pgbench runs on a PostgreSQL member that the port map lets reach :5000 (in
the compact lab db3, which is also the monitoring host), as the database
superuser, its password read there from Patroni's config into the
environment (never a command line). Its own database, dropped at the end;
synchronous_mode is restored whatever happens, and the drill waits until a
synchronous standby is named again.

Prints `FIGURE drill sync_cost: ...` with transactions per second and the
mean latency of each mode and their ratio. Nothing is asserted about speed:
the figure is the product. The drill fails when a mode cannot be set or the
synchronous standby does not come back.
"""

import re

import drill
from drill import roles, run, wait

CONFIG = "/etc/patroni/config.yml"
DATABASE = "airflow_ha_pgbench"
SECONDS = 20
CLIENTS = 4
# the superuser's password from Patroni's config (root-only) into PGPASSWORD; libpq verifies the member's
# certificate, which names the VIP (tools/gen_tls.py THROUGH_VIPS)
PG_ENV = r"""{{ read -r PGUSER; read -r PGPASSWORD; }} < <(/opt/patroni/venv/bin/python -c 'import yaml; su = yaml.safe_load(open("{config}"))["postgresql"]["authentication"]["superuser"]; print(su["username"]); print(su["password"])')
export PGUSER PGPASSWORD PGHOST={vip} PGPORT={port} PGSSLMODE=verify-full PGSSLROOTCERT=/etc/airflow-ha/pki/ca.crt PGCONNECT_TIMEOUT=10
"""


def bench_host(inv):
    """A PostgreSQL member (it has pgbench) whose roles the port map lets reach HAProxy's leader port."""
    from _modules.ha_inventory import read_ports

    leader_port = drill.port("haproxy", "DB read/write")
    allowed = next(set(p["from_roles"]) for p in read_ports(str(drill.REPO))
                   if p["role"] == "haproxy" and str(p["port"]) == str(leader_port))
    for host in roles(inv, "postgres"):
        if allowed & set(inv["hosts"][host]["roles"]):
            return host
    raise RuntimeError(f"no PostgreSQL member may reach HAProxy's leader port (from roles {sorted(allowed)})")


def sync_mode(host, on):
    run(host, f"patronictl -c {CONFIG} edit-config --force -s synchronous_mode={'true' if on else 'false'} "
              ">/dev/null")

    def settled():
        members = drill.module_on(host, "patroni").members(config=CONFIG)
        sync = [m for m in members if m["role"] == "sync_standby" and m["state"] in ("streaming", "running")]
        return bool(sync) == on

    return wait(settled, 120, f"synchronous_mode {'on' if on else 'off'}: a synchronous standby "
                              f"{'named' if on else 'gone'}")


def pgbench(host, env):
    out = run(host, env + f"pgbench -n -N -c {CLIENTS} -j 2 -T {SECONDS} -d {DATABASE} 2>&1",
              timeout=SECONDS + 120).stdout
    tps = re.search(r"tps = ([0-9.]+)", out)
    latency = re.search(r"latency average = ([0-9.]+) ms", out)
    failed = re.search(r"number of failed transactions: (\d+)", out)
    if not tps or not latency:
        raise RuntimeError(f"pgbench on {host}: no figures in its output:\n{out[-2000:]}")
    return {"tps": float(tps.group(1)), "latency_ms": float(latency.group(1)),
            "failed": int(failed.group(1)) if failed else 0}


def drill_sync_cost(inv):
    host = bench_host(inv)
    vip = inv["vips"]["main"]["ip"]
    env = PG_ENV.format(config=CONFIG, vip=vip, port=drill.port("haproxy", "DB read/write"))
    run(host, env + f"psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS {DATABASE}' "
                    f"-c 'CREATE DATABASE {DATABASE}' && pgbench -q -i -s 5 -d {DATABASE} 2>&1", timeout=300)
    results = {}
    try:
        results["sync"] = pgbench(host, env)
        results["sync"]["settle_s"] = sync_mode(host, False)
        results["async"] = pgbench(host, env)
    finally:
        settle = sync_mode(host, True)
        run(host, env + f"psql -X -q -d postgres -c 'DROP DATABASE IF EXISTS {DATABASE}'", check=False)
    sync, off = results["sync"], results["async"]
    print(f"FIGURE drill sync_cost: pgbench ({CLIENTS} clients, {SECONDS} s, simple updates) through the VIP's "
          f":{drill.port('haproxy', 'DB read/write')} from {host}: synchronous_mode on {sync['tps']:.0f} tps, "
          f"{sync['latency_ms']:.1f} ms mean; off {off['tps']:.0f} tps, {off['latency_ms']:.1f} ms; "
          f"synchronous costs {100 * (1 - sync['tps'] / off['tps']):.0f}% of the throughput; failed transactions "
          f"{sync['failed'] + off['failed']}; synchronous standby named again {settle:.0f} s after switching back",
          flush=True)
    return {"host": host, **results, "restored_s": settle}
