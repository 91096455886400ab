"""Network-partition drills on the running lab, Jepsen style: a writer commits
a row every ~20 ms through HAProxy's leader port with Airflow's own DB URL and
records every id whose COMMIT was acknowledged; the drill cuts the network
(nftables inside the containers), lifts the cut, waits until the cluster is
back to every member healthy on one timeline, and counts the acknowledged ids
that are gone.

    .venv/bin/python tools/lab/drill.py partition

Scenarios (each prints a FIGURE line: acknowledged / present / lost, the
longest write gap, the time from the lift to a healthy cluster):
  leader_isolated      the Patroni leader cut off from both peers (PostgreSQL,
                       etcd, Patroni, RabbitMQ: the whole host); HAProxy and
                       the client still reach it
  leader_etcd_only     the leader cut off from the etcd members only, still
                       streaming to its replicas
  etcd_member_isolated one etcd member (not the leader's host) cut off, then
                       healed: it must not disturb the quorum when it returns
  haproxy_cut_from_db  the HAProxy host holding the VIP cut off from the
                       database hosts: the VIP must move to the other one
  replica_isolated     a replica cut off, then healed: it rejoins by itself,
                       without a rebuild
  rabbitmq_node_isolated  the RabbitMQ node leading the Celery queue cut off
                       from the other nodes during a 200-task fan-out: every
                       task once, none twice (pause_minority); then a cut
                       just under net_ticktime, which strands Mnesia unless
                       the partition heal timer restarts the node
"""

import json
import time

import drill
from drill import roles, run, wait

TABLE = "lab_partition"
STATE_DIR = "/var/tmp/airflow-ha-drill"
DRILL_TABLE = "airflow_ha_drill"  # the nftables table of the drill's cuts

# The writer runs inside an Airflow host: Airflow's own DB URL (through the VIP
# and HAProxy :5000), one connection until it breaks, ids chosen by the writer
# so that a lost row cannot be mistaken for a later one with the same serial.
WRITER = r"""set -a; . /etc/default/airflow; set +a
mkdir -p {dir}; rm -f {dir}/{name}.*
nohup /opt/airflow/venv/bin/python - drill-writer-{name} >{dir}/{name}.log 2>&1 <<'PY' &
import os, time, sqlalchemy
from sqlalchemy.pool import NullPool
url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args={{
    "connect_timeout": 2, "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 3}})
with engine.begin() as c:
    c.exec_driver_sql("CREATE TABLE IF NOT EXISTS {table} (id bigint PRIMARY KEY, scenario text, at timestamptz DEFAULT now())")
acked = open("{dir}/{name}.acked", "a", buffering=1)
base, n, conn = {base}, 0, None
while not os.path.exists("{dir}/{name}.stop"):
    try:
        if conn is None:
            conn = engine.raw_connection()
        cur = conn.cursor()
        cur.execute("INSERT INTO {table} (id, scenario) VALUES (%s, %s)", (base + n, "{name}"))
        conn.commit()
        notices = " ".join(conn.driver_connection.notices)
        # a COMMIT whose wait for the synchronous standby was cancelled is not durable
        if "synchronous replication" in notices:
            print("not durable", base + n, notices, flush=True)
            conn.driver_connection.notices.clear()
        else:
            acked.write(f"{{base + n}} {{time.time():.3f}}\n")
        n += 1
    except Exception as exc:
        print(time.strftime("%H:%M:%S"), type(exc).__name__, str(exc).strip().splitlines()[0][:200], flush=True)
        if type(exc).__name__ == "UniqueViolation":
            n += 1  # the COMMIT went through but its answer was lost: that id is not counted as acknowledged
        try:
            conn.close()
        except Exception:
            pass
        conn = None
        time.sleep(0.2)
        continue
    time.sleep(0.02)
PY
echo $! > {dir}/{name}.pid"""

PRESENT = r"""set -a; . /etc/default/airflow; set +a
/opt/airflow/venv/bin/python - <<'PY'
import os, sqlalchemy
engine = sqlalchemy.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], connect_args={"connect_timeout": 3})
with engine.begin() as c:
    print(" ".join(str(r[0]) for r in c.exec_driver_sql("SELECT id FROM lab_partition WHERE scenario = %s", ("NAME",))))
PY"""


class Writer:
    """The continuous writer of one scenario, on ``host``."""

    def __init__(self, host, name, base):
        self.host, self.name, self.base = host, name, base

    def start(self):
        # a writer left running by an interrupted drill
        run(self.host, f"pkill -f 'drill-writer-{self.name}' ; true", check=False)
        run(self.host, WRITER.format(dir=STATE_DIR, name=self.name, table=TABLE, base=self.base))
        wait(lambda: len(self.acked()) >= 20, 60, f"writer {self.name}: first commits")

    def acked(self):
        out = run(self.host, f"cat {STATE_DIR}/{self.name}.acked 2>/dev/null", check=False).stdout
        return [(int(i), float(t)) for i, t in (line.split() for line in out.splitlines() if line.strip())]

    def stop(self):
        run(self.host, f"touch {STATE_DIR}/{self.name}.stop; sleep 1; kill $(cat {STATE_DIR}/{self.name}.pid) "
                       f"2>/dev/null; true")
        return self.acked()

    def present(self):
        out = run(self.host, PRESENT.replace("NAME", self.name), timeout=60).stdout.strip().splitlines()
        return {int(i) for i in (out[-1].split() if out else [])}

    def errors(self):
        return run(self.host, f"cat {STATE_DIR}/{self.name}.log", check=False).stdout.strip().splitlines()


def cut(host, peers, ports=None):
    """Drop every packet between ``host`` and the ``peers``' IPs (only these TCP ports when given), both ways."""
    run(host, cut_script(peers, ports))


HEAL = f"nft delete table inet {DRILL_TABLE} 2>/dev/null; true"


def cut_script(peers, ports=None):
    """The shell command of :py:func:`cut` (nftables rules in a table of the drill's own)."""
    ips = "{ " + ", ".join(peers) + " }"
    match_in = f"ip saddr {ips}" + (f" tcp dport {{ {', '.join(map(str, ports))} }}" if ports else "")
    match_in_sport = f"ip saddr {ips} tcp sport {{ {', '.join(map(str, ports))} }}" if ports else None
    match_out = f"ip daddr {ips}" + (f" tcp dport {{ {', '.join(map(str, ports))} }}" if ports else "")
    match_out_sport = f"ip daddr {ips} tcp sport {{ {', '.join(map(str, ports))} }}" if ports else None
    rules = [f"add table inet {DRILL_TABLE}",
             f"add chain inet {DRILL_TABLE} input {{ type filter hook input priority -200 ; }}",
             f"add chain inet {DRILL_TABLE} output {{ type filter hook output priority -200 ; }}",
             f"add rule inet {DRILL_TABLE} input {match_in} drop",
             f"add rule inet {DRILL_TABLE} output {match_out} drop"]
    if ports:
        rules += [f"add rule inet {DRILL_TABLE} input {match_in_sport} drop",
                  f"add rule inet {DRILL_TABLE} output {match_out_sport} drop"]
    return "nft -f - <<'NFT'\n" + "\n".join(rules) + "\nNFT"


def heal(host):
    run(host, HEAL)


def patroni_on(host):
    """The project's patroni execution module, its patronictl run in ``host``'s container."""
    return drill.module_on(host, "patroni")


def cluster_problems(inv, via):
    """Why the Patroni cluster is not healthy (the patroni module's checks, plus one timeline), seen from ``via``."""
    patroni = patroni_on(via)
    try:
        status = patroni.cluster_status(config="/etc/patroni/config.yml")
    except Exception as exc:  # noqa: BLE001 - a member that cannot answer is a problem to report
        return [f"patronictl on {via}: {exc}"]
    problems = patroni.health_problems(status, members=len(roles(inv, "postgres")), max_lag_mb=16)
    timelines = {m["name"]: m["timeline"] for m in status["members"]}
    if None in timelines.values() or len(set(timelines.values())) > 1:
        problems.append(f"members on different or unknown timelines: {timelines}")
    return problems


def leader(inv, via):
    return patroni_on(via).leader(config="/etc/patroni/config.yml")


def longest_gap(acked, since, until=None):
    """The longest time between two acknowledged commits, from ``since`` to the first one and from the last
    one to ``until`` (the writer's stop): a writer that got no acknowledgement at all has a gap of the whole time."""
    times = [since] + sorted(t for _, t in acked) + ([until] if until is not None else [])
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def scenario(inv, name, base, client, victim, peers, ports=None, hold=60, via=None):
    """Start the writer, cut ``victim`` from ``peers`` for ``hold`` s, heal, wait for a healthy cluster, count."""
    members = roles(inv, "postgres")
    writer = Writer(client, name, base)
    writer.start()
    time.sleep(3)
    cut_at = time.time()
    cut(victim, peers, ports)
    try:
        time.sleep(hold)
    finally:
        heal(victim)
    via = via or next(m for m in members if m != victim)
    try:
        healthy = wait(lambda: not cluster_problems(inv, via), 300, f"{name}: a healthy cluster after the lift")
    except TimeoutError:
        healthy = None
    time.sleep(3)  # the writer commits on the healed cluster
    acked = writer.stop()
    stopped_at = time.time()
    present = writer.present()
    acked_ids = {i for i, _ in acked}
    lost = sorted(acked_ids - present)
    gap = longest_gap([a for a in acked if a[1] >= cut_at], cut_at, stopped_at)
    result = {"acked": len(acked_ids), "present": len(present & acked_ids), "lost": len(lost),
              "lost_ids": (lost[0], lost[-1]) if lost else None, "longest_gap_s": round(gap, 1),
              "healthy_after_lift_s": round(healthy, 1) if healthy is not None else None,
              "problems": cluster_problems(inv, via) if healthy is None else [],
              "leader": leader(inv, via), "errors": writer.errors()[-5:]}
    print(f"FIGURE drill partition {name}: cut {victim} from {', '.join(peers)}"
          f"{' (tcp ' + ','.join(map(str, ports)) + ')' if ports else ''} for {hold} s; acknowledged "
          f"{result['acked']}, present {result['present']}, lost {result['lost']}; longest write gap "
          f"{result['longest_gap_s']} s; healthy {result['healthy_after_lift_s']} s after the lift; leader now "
          f"{result['leader']}", flush=True)
    if result["problems"]:
        print(f"  not healthy: {result['problems']}", flush=True)
    return result


def rabbitmq_views(inv, nodes):
    """Each node's view of the cluster (running nodes, partitions) and the last partition-heal lines, for a
    drill that failed: which side is stranded tells the fix."""
    views = {}
    for node in nodes:
        try:
            status = drill.module_on(node, "rabbitmq_ha").cluster_status()
            views[node] = {"running": status["running_nodes"], "partitions": status["partitions"]}
        except Exception as exc:  # pylint: disable=broad-except  # paused, or the app stopped
            views[node] = {"error": str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else repr(exc)}
        views[node]["heal"] = heal_journal(node, "-n 4").splitlines()
    return views


def rabbitmq_defaults():
    """salt/rabbitmq/defaults.yaml: net_ticktime and the partition heal timer's interval the waits follow."""
    return drill.yaml.safe_load((drill.REPO / "salt" / "rabbitmq" / "defaults.yaml").read_text())


def heal_journal(node, selection):
    """The partition heal timer's journal lines on ``node`` (``selection``: journalctl's -n or --since)."""
    return run(node, f"journalctl -u rabbitmq-partition-heal {selection} --no-pager -o cat", check=False).stdout.strip()


def heal_timer_acted(nodes, since):
    """Whether the partition heal timer restarted a node since ``since``: the stranded node itself, or the
    first trusted node when the partition records put a running node on the minority side."""
    return any("restarting" in heal_journal(node, f"--since '{since}'") for node in nodes)


def wait_whole(inv, nodes, timeout, what):
    """Seconds until the RabbitMQ cluster is whole; on a timeout, each node's view goes into the error."""
    try:
        return wait(lambda: drill.rabbitmq_whole(inv), timeout, what)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; each node's view: {json.dumps(rabbitmq_views(inv, nodes))}") from None


def rabbitmq_node_isolated(inv, hold=45):
    """The RabbitMQ node leading the Celery queue cut off from the other nodes (Erlang distribution and
    epmd) while a 200-task fan-out runs: pause_minority pauses it, clients move to the majority; every task
    must succeed once, none twice. Then a cut just shorter than net_ticktime, so that it is detected as it
    heals: the case that leaves Mnesia partitioned for good (rabbitmq-server#17319) unless the partition
    heal timer restarts the stranded node; the cluster must be whole again either way."""
    import threading

    import drill_throughput

    nodes = roles(inv, "rabbitmq")
    ports = [drill.port("rabbitmq", "epmd"), drill.port("rabbitmq", "Erlang distribution")]
    defaults = rabbitmq_defaults()

    def isolate(victim, seconds):
        cut(victim, [inv["hosts"][n]["ip"] for n in nodes if n != victim], ports)
        try:
            time.sleep(seconds)
        finally:
            heal(victim)

    # the scenarios before this one cut Erlang distribution too (a DB host runs a RabbitMQ node): start
    # from a whole cluster, as the heal timer's window allows
    window = 120 + int(defaults["partition_heal"]["interval"].rstrip("s"))
    settled = wait_whole(inv, nodes, window, "RabbitMQ cluster whole before the drill")
    print(f"FIGURE drill partition rabbitmq_before: cluster whole {settled:.0f} s after the database scenarios",
          flush=True)
    victim = drill.celery_queue_leader(inv)
    result = {}
    fanout = threading.Thread(target=lambda: result.update(drill_throughput.fanout(inv)))
    fanout.start()
    time.sleep(5)
    since = run(victim, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    isolate(victim, hold)
    healed = wait_whole(inv, nodes, 300, "RabbitMQ cluster whole again after the long cut")
    fanout.join(timeout=900)
    assert result, "the fan-out across the RabbitMQ partition did not finish"
    print(f"FIGURE drill partition rabbitmq_node_isolated: cut {victim} (leader of the Celery queue) from the other "
          f"RabbitMQ nodes for {hold} s during a {result['tasks']}-task fan-out: all succeeded in {result['wall_s']:.0f} s "
          f"({result['tasks_per_s']:.1f} tasks/s), run twice {result['run_twice']}, unrecorded {result['unrecorded']}; "
          f"cluster whole {healed:.0f} s after the lift"
          f"{' (the partition heal timer restarted a node)' if heal_timer_acted(nodes, since) else ''}", flush=True)
    blip = max(1, int(defaults["net_ticktime"]) - 1)
    blip_victim = drill.celery_queue_leader(inv)
    since = run(blip_victim, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    isolate(blip_victim, blip)
    blip_healed = wait_whole(inv, nodes, window, f"RabbitMQ cluster whole again after a {blip} s cut")
    restarted = heal_timer_acted(nodes, since)
    print(f"FIGURE drill partition rabbitmq_blip: cut {blip_victim} for {blip} s (net_ticktime "
          f"{defaults['net_ticktime']} s): cluster whole {blip_healed:.0f} s after the lift; "
          f"{'stranded, restarted by the partition heal timer' if restarted else 'pause_minority recovered it'}",
          flush=True)
    return {"lost": result["unrecorded"], "run_twice": result["run_twice"], "healthy_after_lift_s": healed,
            "blip_healthy_after_lift_s": blip_healed, "blip_restarted_by_timer": restarted,
            "wall_s": result["wall_s"], "victim": victim}


def rabbitmq_left_paused(inv):
    """A node whose app stays stopped while its peers run (pause_minority's one restart failed): the
    partition heal timer must start it. Stopping the rabbit application alone leaves the node as a failed
    recovery did in a lab run: Mnesia still running, the peers listing the node as running, and a bare
    ``start_app`` refused."""
    nodes = roles(inv, "rabbitmq")
    victim = nodes[-1]
    defaults = rabbitmq_defaults()
    since = run(victim, "date '+%Y-%m-%d %H:%M:%S'").stdout.strip()
    run(victim, "cd /tmp && runuser -u rabbitmq -- rabbitmqctl eval 'application:stop(rabbit).'")
    # the timer's interval and its grace period, and a start under load
    window = 2 * int(defaults["partition_heal"]["interval"].rstrip("s")) + 120
    whole = wait_whole(inv, nodes, window, f"RabbitMQ cluster whole after the rabbit app stopped on {victim}")
    started = "starting the rabbit app" in heal_journal(victim, f"--since '{since}'")
    print(f"FIGURE drill partition rabbitmq_left_paused: the app of {victim} stopped, its peers running: "
          f"cluster whole {whole:.0f} s later, {'started by the partition heal timer' if started else 'not by the timer'}",
          flush=True)
    assert started, (f"the cluster was whole again after the rabbit app stopped on {victim}, but not through the "
                     "partition heal timer")
    return {"whole_after_s": round(whole, 1), "started_by_timer": started}


def drill_partition(inv, only=None):
    """Every scenario in turn (or the ``only`` ones); returns {scenario: figures}."""
    members = roles(inv, "postgres")
    etcd_members = roles(inv, "etcd")
    client = roles(inv, "scheduler")[0]
    ip = {h: spec["ip"] for h, spec in inv["hosts"].items()}
    etcd_ports = [drill.port("etcd", "clients"), drill.port("etcd", "peers")]
    wait(lambda: not cluster_problems(inv, members[0]), 300, "a healthy cluster before the drill")
    results = {}
    base = int(time.time()) * 1000

    def leader_now():
        return leader(inv, members[0])

    def plan_leader_isolated():
        lead = leader_now()
        return dict(victim=lead, peers=[ip[m] for m in members if m != lead])

    def plan_leader_etcd_only():
        lead = leader_now()
        return dict(victim=lead, peers=[ip[m] for m in etcd_members if m != lead], ports=etcd_ports)

    def plan_etcd_member_isolated():
        lead = leader_now()
        victim = next(m for m in etcd_members if m != lead)
        return dict(victim=victim, peers=[ip[m] for m in etcd_members if m != victim], ports=etcd_ports, hold=30)

    def plan_haproxy_cut_from_db():
        holder = drill.vip_holder(inv)
        return dict(victim=holder, peers=[ip[m] for m in members], hold=45,
                    client=next(h for h in roles(inv, "scheduler") if h != holder) if len(
                        roles(inv, "scheduler")) > 1 else client)

    def plan_replica_isolated():
        # the synchronous standby when there is one: the commits wait for it
        lead = leader_now()
        sync = [m["name"] for m in patroni_on(members[0]).members(config="/etc/patroni/config.yml")
                if m["role"] == "sync_standby"]
        victim = sync[0] if sync else next(m for m in members if m != lead)
        return dict(victim=victim, peers=[ip[m] for m in members if m != victim], hold=30)

    plans = [("leader_isolated", plan_leader_isolated), ("leader_etcd_only", plan_leader_etcd_only),
             ("etcd_member_isolated", plan_etcd_member_isolated), ("haproxy_cut_from_db", plan_haproxy_cut_from_db),
             ("replica_isolated", plan_replica_isolated)]
    for n, (name, plan) in enumerate(plans):
        if only and name not in only:
            continue
        spec = plan()
        spec.setdefault("client", client)
        results[name] = scenario(inv, name, base + n * 1_000_000, **spec)
    if not only or "rabbitmq_node_isolated" in only:
        results["rabbitmq_node_isolated"] = rabbitmq_node_isolated(inv)
    if not only or "rabbitmq_left_paused" in only:
        results["rabbitmq_left_paused"] = rabbitmq_left_paused(inv)
    print(json.dumps({k: {x: y for x, y in v.items() if x not in ("errors",)} for k, v in results.items()}))
    return results
