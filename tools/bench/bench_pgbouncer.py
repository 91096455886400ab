"""The PgBouncer part of make bench (``--pgbouncer``): PostgreSQL's server
connections at a fan-out's peak, without PgBouncer and with it (issue 19).

1. **Without** (the lab as `make lab` brings it up: pillar
   ``airflow:pgbouncer:enabled`` false): the backends of the ``airflow`` role
   on the Patroni leader (``pg_stat_activity``), sampled every second, idle
   for ``IDLE_S`` and then through a fan-out of ``n`` tasks.
2. **Switch on**: a highstate with pillar
   ``{"airflow": {"pgbouncer": {"enabled": true}}}``, the database and
   monitoring hosts first (the ``airflow`` role's SCRAM verifier, which
   PgBouncer logs in with, and the exporter's scrape targets), then the
   Airflow hosts; it waits until every Airflow host's processes hold
   connections to their PgBouncer (127.0.0.1:6432) and the API through the
   VIP is healthy.
3. **With**: the same samples and fan-out; PgBouncer's waiting clients at
   their peak (Prometheus, the PgBouncerClientsWaiting alert's series) and
   whether that alert fired.
4. **Switch off** again (a highstate without that pillar, as the lab was),
   also when a step failed.

Figures: idle and peak server connections, their median through the
fan-out, the fan-out's tasks/s, on each side."""

import statistics
import time

import drill
import drill_throughput
from drill_housekeeping import airflow_hosts
from drill import roles, run, wait
from repeating import Repeating

IDLE_S = 15
SAMPLE_S = 1.0
SWITCH_TIMEOUT_S = 1200
SERVER_CONNECTIONS = ("runuser -u postgres -- psql -X -Atq -d postgres -c "
                      "\"SELECT count(*) FROM pg_stat_activity WHERE usename = 'airflow'\"")
WAITING_PEAK = "max_over_time((max(pgbouncer_waiting_clients or pgbouncer_pools_client_waiting_connections))[{s}s:5s])"


def pgbouncer_port():
    """airflow:pgbouncer:port of salt/airflow/defaults.yaml (the lab sets no other)."""
    import yaml

    defaults = yaml.safe_load((drill.REPO / "salt" / "airflow" / "defaults.yaml").read_text())
    return int(defaults["pgbouncer"]["port"])


class ConnectionSampler(Repeating):
    """Counts the ``airflow`` role's backends on ``leader`` every SAMPLE_S seconds in a thread."""

    every = SAMPLE_S
    join_timeout = 60

    def __init__(self, leader):
        super().__init__("bench-pg-connections")
        self.leader, self.samples, self.errors = leader, [], 0

    def step(self):
        proc = run(self.leader, SERVER_CONNECTIONS, check=False, timeout=30)
        if proc.returncode == 0 and proc.stdout.strip().isdigit():
            self.samples.append((time.time(), int(proc.stdout.strip())))
        else:
            self.errors += 1

    def between(self, start, end):
        return [count for at, count in self.samples if start <= at <= end]


def connection_figures(samples_idle, samples_busy):
    """Idle (median), peak and median through the fan-out of the sampled server connections."""
    if not samples_idle or not samples_busy:
        raise RuntimeError("no sample of pg_stat_activity: the leader's psql did not answer")
    return {"idle": int(statistics.median(samples_idle)), "peak": max(samples_busy),
            "median_busy": int(statistics.median(samples_busy)), "samples": len(samples_idle) + len(samples_busy)}


def side(inv, n, label):
    """Idle samples, then a fan-out of ``n`` sampled: the figures of one side."""
    leader = drill.patroni_leader(inv, roles(inv, "postgres")[0])
    with ConnectionSampler(leader) as sampler:
        idle_from = time.time()
        time.sleep(IDLE_S)
        busy_from = time.time()
        fanout = drill_throughput.fanout(inv, n=n)
        busy_to = time.time()
    figures = connection_figures(sampler.between(idle_from, busy_from), sampler.between(busy_from, busy_to))
    figures.update(leader=leader, tasks_per_s=round(fanout["tasks_per_s"], 2), sample_errors=sampler.errors,
                   fanout_s=round(busy_to - busy_from, 1), run_twice=fanout["run_twice"])
    print(f"FIGURE bench pgbouncer {label}: server connections of role airflow on {leader}: idle {figures['idle']}, "
          f"peak {figures['peak']} (median {figures['median_busy']}) through a fan-out of {n} "
          f"({figures['tasks_per_s']} tasks/s, {figures['fanout_s']} s)", flush=True)
    return figures


def highstate(inv, hosts, enabled):
    """A highstate of ``hosts`` from the master, with the switch given on the command line when on."""
    import json

    master = next(iter(inv["hosts"]))
    pillar = f" pillar='{json.dumps({'airflow': {'pgbouncer': {'enabled': True}}})}'" if enabled else ""
    proc = run(master, f"salt -L {','.join(hosts)} state.highstate{pillar} -t {SWITCH_TIMEOUT_S} "
               f"--out=json --static --state-verbose=False",
               check=False, timeout=SWITCH_TIMEOUT_S)
    out = json.loads(proc.stdout or "{}")
    failed = [f"{host}: {state.get('comment', '')[:200]}" for host, states in out.items()
              if isinstance(states, dict) for state in states.values() if not state.get("result", True)]
    if proc.returncode or failed or set(out) != set(hosts):
        raise RuntimeError(f"highstate of {','.join(hosts)} (pgbouncer {'on' if enabled else 'off'}) failed: "
                           f"{failed[:5] or proc.stderr.strip()[-500:] or sorted(set(hosts) - set(out))}")


def uses_pgbouncer(host, port):
    """Connections from this host's processes to its PgBouncer (ss), 0 when none."""
    proc = run(host, f"ss -Htn state established '( dport = :{port} )' | wc -l", check=False)
    return int(proc.stdout.strip() or 0)


def switch(inv, enabled):
    """PgBouncer on or off on the lab; seconds it took."""
    started = time.monotonic()
    af = airflow_hosts(inv)
    others = [h for h in inv["hosts"] if h not in af]
    highstate(inv, others, enabled)
    highstate(inv, af, enabled)
    port = pgbouncer_port()
    if enabled:
        wait(lambda: all(uses_pgbouncer(h, port) for h in af), 300, f"every Airflow host's processes on :{port}")
    wait(lambda: drill.ui_healthy(inv), 300, "the Airflow API healthy through the VIP")
    took = time.monotonic() - started
    print(f"bench pgbouncer: switched {'on' if enabled else 'off'} in {took:.0f} s", flush=True)
    return took


def waiting_peak(inv, seconds):
    """PgBouncer's most waiting clients over the last ``seconds`` (Prometheus), and whether the alert fired."""
    import urllib.parse

    query = urllib.parse.quote(WAITING_PEAK.format(s=int(seconds) + 30))
    result = drill.prometheus_get(inv, 9090, f"/api/v1/query?query={query}")["data"]["result"]
    peak = int(float(result[0]["value"][1])) if result else None
    return peak, bool(drill.firing(inv, "PgBouncerClientsWaiting", ""))


def measure(inv, n):
    """Both sides; the lab ends as it started (PgBouncer off) whatever happened."""
    result = {"without": side(inv, n, "without")}
    try:
        result["switch_on_s"] = round(switch(inv, True), 1)
        started = time.time()
        result["with"] = side(inv, n, "with")
        if roles(inv, "monitoring"):
            peak, fired = waiting_peak(inv, time.time() - started)
            result["with"].update(waiting_clients_peak=peak, saturation_alert_fired=fired)
            print(f"FIGURE bench pgbouncer with: PgBouncer's waiting clients at most {peak}; "
                  f"PgBouncerClientsWaiting {'FIRED' if fired else 'silent'}", flush=True)
    finally:
        result["switch_off_s"] = round(switch(inv, False), 1)
    without, with_ = result["without"]["peak"], result["with"]["peak"]
    print(f"FIGURE bench pgbouncer: peak server connections {without} without, {with_} with PgBouncer "
          f"({with_ / max(without, 1):.2f}x)", flush=True)
    return result
