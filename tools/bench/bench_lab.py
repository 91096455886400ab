"""The lab side of make bench: reaching the running lab as the drills do
(tools/lab/drill.py: its inventory, lxc-attach, the REST API through the VIP),
refusing clearly when it is not up, and the two failures measured under load:

- ``leader_kill``: the continuous writer of the partition drills
  (drill_partition.Writer: a commit every ~20 ms through HAProxy's leader port
  with Airflow's own DB URL, every acknowledged id recorded) and a fan-out run
  while the Patroni leader's host is killed (lxc-stop -k, as drill.py's
  `leader` drill does; in the compact topology that host also holds an etcd
  member and a RabbitMQ node). It is started again once a new leader took a
  write. Figures: commits acknowledged, acknowledged ones lost, the longest
  write gap; the fan-out's stall (the longest time no task started), tasks
  that never succeeded, tasks run twice.
- ``broker_stop``: a fan-out while the RabbitMQ node leading the Celery
  quorum queue is stopped (drill.celery_queue_leader; ``systemctl stop
  rabbitmq-server``) for ``hold`` seconds, then started; the cluster must be
  whole again (drill.rabbitmq_whole). Figures: the fan-out's stall, tasks
  lost, tasks run twice.

Each scenario starts from a healthy cluster (every Patroni member running on
one timeline, RabbitMQ whole) and waits for one again before it returns."""

import subprocess
import time

import yaml

import drill
import drill_partition
from bench_figures import writer_across
from bench_measure import BackgroundFanout
from drill import roles, run, wait

LEAD_IN_S = 10  # the fan-out's tasks are starting when the failure comes
BROKER_HOLD_S = 30  # the RabbitMQ node stays down this long (the rabbitmq drill's smoke DAG takes 11-21 s)
FANOUT_TIMEOUT_S = 1200  # a task lost with its worker is retried after Airflow's retry delay (5 min)
SETTLE_TIMEOUT_S = 300


class LabNotUp(RuntimeError):
    pass


def problems(inv):
    """Why the lab cannot be benched (empty: it is up). The files come first: on a machine without a lab
    nothing runs lxc-* at all."""
    found = []
    if not (drill.REPO / ".secrets" / "airflow_ha_secrets.sls").exists():
        found.append("no .secrets/airflow_ha_secrets.sls (the admin password of the REST API)")
    missing = [h for h in inv["hosts"] if not (drill.REPO / ".vagrant" / "machines" / h / "lxc" / "id").exists()]
    if missing:
        found.append(f"no container for {', '.join(missing)} (.vagrant/machines/HOST/lxc/id)")
    if found:
        return found
    stopped = [h for h in inv["hosts"] if not drill.running(h)]
    if stopped:
        found.append(f"containers not running: {', '.join(stopped)}")
    elif not drill.ui_healthy(inv):
        found.append(f"the Airflow API through the VIP ({drill.api_base(inv)[0]}) does not report a healthy "
                     f"metadatabase")
    return found


def connect():
    """The lab's inventory (drill.inventory(), as drill.py's main gets it), once the lab answers."""
    inv = drill.inventory()
    found = problems(inv)
    if found:
        raise LabNotUp("the lab is not up (make lab first; --single-only runs without it): " + "; ".join(found))
    return inv


def worker_slots(inv):
    """The lab's Celery worker slots (worker hosts x airflow:worker_concurrency) and its scheduler-side
    parallelism, from salt/airflow/defaults.yaml: the single host gets as many LocalExecutor slots."""
    defaults = yaml.safe_load((drill.REPO / "salt" / "airflow" / "defaults.yaml").read_text())
    workers = len(roles(inv, "worker"))
    return {"workers": workers, "worker_concurrency": int(defaults["worker_concurrency"]),
            "slots": workers * int(defaults["worker_concurrency"]), "parallelism": int(defaults["parallelism"])}


def kill_host(host):
    """The host dies (drill.py's `leader` drill kills it so, inline)."""
    subprocess.run(["lxc-stop", "-k", "-n", drill.container(host)], check=True, capture_output=True)


def start_host(host):
    subprocess.run(["lxc-start", "-n", drill.container(host)], check=True, capture_output=True)


def settle(inv, via):
    """Seconds until the Patroni cluster is healthy (drill_partition.cluster_problems) and RabbitMQ whole."""
    started = time.monotonic()
    wait(lambda: not drill_partition.cluster_problems(inv, via), SETTLE_TIMEOUT_S, "a healthy Patroni cluster")
    wait(lambda: drill.rabbitmq_whole(inv), SETTLE_TIMEOUT_S, "the RabbitMQ cluster whole")
    return time.monotonic() - started


def new_leader(inv, via, old):
    """The Patroni leader as ``via`` sees it when it is not ``old``; None in the failover (no leader yet, or
    ``via``'s Patroni busy)."""
    try:
        leader = drill.patroni_leader(inv, via)
    except Exception:  # noqa: BLE001 - no leader while the key is held by the dead one or expiring
        return None
    return leader if leader != old else None


def poll_error(result):
    """The API's answer that failed the fan-out's polling in the outage, for a FIGURE line ('' when none): the run
    went on, its figures are read after."""
    return f"; the fan-out's polling met (figures read after the outage): {result['error']}" if result["error"] else ""


def leader_kill(inv, n, lead_in=LEAD_IN_S):
    members = roles(inv, "postgres")
    settle(inv, members[0])
    leader = drill.patroni_leader(inv, members[0])
    survivor = next(m for m in members if m != leader)
    # the writer runs on an Airflow host the kill spares
    client = next(h for h in roles(inv, "scheduler") if h != leader)
    writer = drill_partition.Writer(client, "bench_leader_kill", int(time.time()) * 1000)
    writer.start()
    events = {}
    try:
        fan = BackgroundFanout(inv, n).start()
        time.sleep(lead_in)
        killed = time.time()
        kill_host(leader)
        try:
            # a commit in flight may still be acknowledged just after the kill: the new leader is another member
            wait(lambda: new_leader(inv, survivor, leader), 300, f"a Patroni leader other than {leader}")
            events["a new Patroni leader"] = round(time.time() - killed, 2)
            promoted = time.time()
            wait(lambda: any(t > promoted for _, t in writer.acked()), 300, "a write acknowledged by the new leader")
            events["first write on the new leader"] = round(time.time() - killed, 2)
        finally:
            start_host(leader)
            events[f"{leader} started again"] = round(time.time() - killed, 2)
        wait(lambda: drill.running(leader), 60, f"{leader} back")
        fanout = fan.finish(FANOUT_TIMEOUT_S, killed)
        settle(inv, survivor)
        events["cluster healthy"] = round(time.time() - killed, 2)
        time.sleep(3)  # the writer commits on the healed cluster
    finally:
        acked = writer.stop()
    figures = writer_across(acked, writer.present(), killed, time.time())
    result = {"victim": leader, "new_leader": drill.patroni_leader(inv, survivor), "writer_on": client,
              "events_s": events, "writer_errors": writer.errors()[-5:], **figures, **fanout}
    print(f"FIGURE bench leader_kill: killed {leader}; writer on {client}: acknowledged "
          f"{result['writer_acknowledged']}, lost {result['writer_lost']}, longest write gap "
          f"{result['writer_gap_s']:.1f} s; fan-out of {n}: longest stall {result['fanout_stall_s']:.1f} s, "
          f"lost {result['fanout_lost']}, run twice {result['fanout_run_twice']}"
          f"{poll_error(result)}", flush=True)
    return result


def broker_stop(inv, n, hold=BROKER_HOLD_S, lead_in=LEAD_IN_S):
    settle(inv, roles(inv, "postgres")[0])
    victim = drill.celery_queue_leader(inv)
    events = {}
    fan = BackgroundFanout(inv, n).start()
    time.sleep(lead_in)
    stopped = time.time()
    run(victim, "systemctl stop rabbitmq-server", timeout=180)
    try:
        time.sleep(hold)
    finally:
        run(victim, "systemctl start rabbitmq-server", timeout=180)
        events[f"rabbitmq-server on {victim} started again"] = round(time.time() - stopped, 2)
    wait(lambda: drill.rabbitmq_whole(inv), SETTLE_TIMEOUT_S, "the RabbitMQ cluster whole again")
    events["cluster whole"] = round(time.time() - stopped, 2)
    fanout = fan.finish(FANOUT_TIMEOUT_S, stopped)
    result = {"victim": victim, "hold_s": hold, "events_s": events, **fanout}
    print(f"FIGURE bench broker_stop: stopped rabbitmq-server on {victim} (Celery queue leader) for {hold} s "
          f"during a fan-out of {n}: longest stall {result['fanout_stall_s']:.1f} s, lost {result['fanout_lost']}, "
          f"run twice {result['fanout_run_twice']}{poll_error(result)}", flush=True)
    return result


SCENARIOS = {"leader_kill": leader_kill, "broker_stop": broker_stop}
