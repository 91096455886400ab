#!/usr/bin/python3
"""Restart the RabbitMQ application of this node when it is stranded in the minority of a
partition that Mnesia will not re-merge by itself.

pause_minority pauses a node only once it has detected the cut (net_ticktime). A cut that heals
around the moment of detection leaves Mnesia partitioned for good: the node's rabbit app runs,
distribution is up again, but its Mnesia excludes the other members (rabbitmq-server#17319).
RabbitMQ's documented recovery is to restart the nodes of the side that is not trusted; this does
that, and only that:
- nothing when no node records a partition, or when the rabbit app is not running here (paused
  by pause_minority, starting) unless it stays stopped for good (the last case below);
- a node stranded in a minority whose majority answers again restarts its own rabbit app;
- otherwise the untrusted side is read from the partition records (a record names the minority
  side; a recorder that names a majority is itself the minority). When such a node answers and
  runs its app, and the records still say so after a grace period (the pause_minority and
  start-up windows pass in less), the first running node outside that side restarts its rabbit
  app. That also clears a record the majority keeps about a node that has already rejoined:
  Mnesia forgets it only when that node's app goes down.
- a node whose rabbit app stays stopped (boot state ``stopped``) while every other member of
  its cluster answers and runs its app starts its app again. pause_minority restarts a paused
  node itself once its condition holds, but the attempt is made once: when that start fails
  (a second cut during the recovery, rabbitmq-server#2175, or a slow Mnesia start), the node
  stays paused for good, sometimes with Mnesia still running (its peers then list it among their
  running nodes, and start_app fails): stop_app, Mnesia stopped if it still runs, start_app. The node must stay so
  for a grace period; a node that is booting, or whose peers do not all run, is left alone. To
  keep a node's app stopped on purpose, stop this timer first.
Run by rabbitmq-partition-heal.timer; every action is logged to the journal.
"""
import json
import re
import socket
import subprocess
import sys
import time

# a node being paused by pause_minority, or starting again, leaves that state in less
GRACE_SECONDS = 20


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def answers(node):
    return run("rabbitmq-diagnostics", "-n", node, "-q", "ping").returncode == 0


def app_running(node):
    return run("rabbitmq-diagnostics", "-n", node, "-q", "check_running").returncode == 0


def mnesia_running(target):
    proc = run("rabbitmqctl", *target, "eval", "mnesia:system_info(is_running).")
    return proc.returncode == 0 and proc.stdout.strip() != "no"


def restart_app(node=None):
    target = ("-n", node) if node else ()
    for step in ("stop_app", "start_app"):
        if step == "start_app" and mnesia_running(target):
            # a rabbit app that stopped without its Mnesia (a failed pause_minority recovery) keeps it
            # running through stop_app, and start_app refuses a running Mnesia: stop it as rabbit's stop would
            print(f"Mnesia still runs{' on ' + node if node else ''} with the rabbit app stopped: stopping it", flush=True)
            run("rabbitmqctl", *target, "eval", "mnesia:stop().")
        proc = run("rabbitmqctl", *target, step)
        if proc.returncode:
            print(f"rabbitmqctl {' '.join(target)} {step} failed: {proc.stderr.strip()}", file=sys.stderr, flush=True)
            return 1
    return 0


def local_state():
    """(node name, boot state, [cluster members]) of this node from its Erlang VM, which answers while the
    app is stopped (the members then come from its cluster status file); None when the VM does not answer."""
    proc = run("rabbitmqctl", "eval", "{node(), rabbit_boot_state:get(), rabbit_mnesia:cluster_nodes(all)}.")
    match = re.match(r"^\{'?([^,']+)'?,(\w+),\[(.*)\]\}$", "".join(proc.stdout.split())) \
        if proc.returncode == 0 else None
    if not match:
        return None
    return match.group(1), match.group(2), [n.strip("'") for n in match.group(3).split(",") if n]


def start_stuck_app():
    """Start this node's app when it stays stopped while every other member runs (the docstring)."""
    state = local_state()
    if state is None or state[1] != "stopped":
        return 0
    others = [node for node in state[2] if node != state[0]]
    if not others or not all(app_running(node) for node in others):
        return 0
    time.sleep(GRACE_SECONDS)
    state = local_state()
    if state is None or state[1] != "stopped" or not all(app_running(node) for node in others):
        return 0
    print(f"the rabbit app stays stopped here while {others} run theirs (a pause_minority recovery that did "
          "not restart it): starting the rabbit app", flush=True)
    # stop_app first: a stop of the rabbit app alone can leave Mnesia running, and start_app then fails
    # (rabbit_prelaunch asserts that Mnesia is not running); stop_app stops Mnesia too
    return restart_app()


def cluster_status():
    proc = run("rabbitmqctl", "cluster_status", "--formatter", "json")
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def members_of(status):
    return (status.get("disk_nodes") or []) + (status.get("ram_nodes") or [])


def untrusted(status):
    """The nodes that the partition records put on the minority side."""
    members = members_of(status)
    nodes = set()
    for recorder, peers in (status.get("partitions") or {}).items():
        nodes.update(peers if 2 * len(peers) < len(members) else [recorder])
    return nodes


def main():
    status = cluster_status()
    if status is None:
        return start_stuck_app()
    if not status.get("partitions"):
        return 0
    members = members_of(status)
    running = status.get("running_nodes") or []
    if 2 * len(running) <= len(members):
        answering = [node for node in members if node not in running and answers(node)]
        if 2 * (len(running) + len(answering)) <= len(members):
            print(f"partitioned from {sorted(set(members) - set(running))}, majority unreachable: waiting",
                  flush=True)
            return 0
        print(f"stranded in a minority partition (running {running} of {members}; {answering} answer again): "
              "restarting the rabbit app to rejoin", flush=True)
        return restart_app()
    minority_side = untrusted(status)
    trusted = sorted(set(running) - minority_side)
    # one actor: the first trusted running node (node names are prefix@host name)
    if not trusted or trusted[0].split("@", 1)[-1] != socket.gethostname().split(".")[0]:
        return 0
    suspects = sorted(node for node in minority_side if answers(node) and app_running(node))
    if suspects:
        time.sleep(GRACE_SECONDS)
        status = cluster_status() or {}
        suspects = sorted(node for node in untrusted(status) if node in suspects and app_running(node))
    if not suspects:
        return 0
    print(f"partition records put {suspects} on the minority side while their app runs: restarting their "
          f"rabbit app so that they rejoin and the records clear (records {status.get('partitions')})", flush=True)
    return max(restart_app(node) for node in suspects)


if __name__ == "__main__":
    sys.exit(main())
