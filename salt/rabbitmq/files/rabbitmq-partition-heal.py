#!/usr/bin/python3
"""Restart the RabbitMQ application of this node when it is stranded in the minority of a
partition that Mnesia will not re-merge by itself.

pause_minority pauses a node only once it has detected the cut (net_ticktime). A cut that heals
around the moment of detection leaves Mnesia partitioned for good: the node's rabbit app runs,
distribution is up again, but its Mnesia excludes the other members (rabbitmq-server#17319).
RabbitMQ's documented recovery is to restart the nodes of the side that is not trusted; this does
that, and only that:
- nothing when the rabbit app is not running here (paused by pause_minority, starting, stopped),
  or when no node records a partition;
- a node stranded in a minority whose majority answers again restarts its own rabbit app;
- otherwise the untrusted side is read from the partition records (a record names the minority
  side; a recorder that names a majority is itself the minority). When such a node answers and
  runs its app, and the records still say so after a grace period (the pause_minority and
  start-up windows pass in less), the first running node outside that side restarts its rabbit
  app. That also clears a record the majority keeps about a node that has already rejoined:
  Mnesia forgets it only when that node's app goes down.
Run by rabbitmq-partition-heal.timer; every action is logged to the journal.
"""
import json
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


def restart_app(node=None):
    target = ("-n", node) if node else ()
    for step in ("stop_app", "start_app"):
        proc = run("rabbitmqctl", *target, step)
        if proc.returncode:
            print(f"rabbitmqctl {' '.join(target)} {step} failed: {proc.stderr.strip()}", file=sys.stderr, flush=True)
            return 1
    return 0


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
    if status is None or not status.get("partitions"):
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
