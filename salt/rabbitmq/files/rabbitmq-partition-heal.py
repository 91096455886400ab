#!/usr/bin/python3
"""Restart the RabbitMQ application of this node when it is stranded in the minority of a
partition that Mnesia will not re-merge by itself.

pause_minority pauses a node only once it has detected the cut (net_ticktime). A cut that heals
around the moment of detection leaves Mnesia partitioned for good: the node's rabbit app runs,
distribution is up again, but its Mnesia excludes the other members (rabbitmq-server#17319).
RabbitMQ's documented recovery is to restart the nodes of the minority side; this does that,
and only that:
- nothing when the rabbit app is not running (paused by pause_minority, starting, stopped);
- nothing when Mnesia reports no partition;
- nothing while the majority is still unreachable (the cut is still on: pause_minority's case);
- on a node stranded in the minority: restart its own rabbit app;
- on the majority side, when a node it is partitioned from runs its app again but is still not
  counted as running (that node's own view may show no partition, so it would never act): the
  first running node of the majority restarts that node's rabbit app.
Run by rabbitmq-partition-heal.timer; every action is logged to the journal.
"""
import json
import socket
import subprocess
import sys


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


def main():
    proc = run("rabbitmqctl", "cluster_status", "--formatter", "json")
    if proc.returncode:
        return 0
    status = json.loads(proc.stdout)
    members = (status.get("disk_nodes") or []) + (status.get("ram_nodes") or [])
    running = status.get("running_nodes") or []
    partitioned = sorted({peer for peers in (status.get("partitions") or {}).values() for peer in peers})
    if not partitioned:
        return 0
    if 2 * len(running) > len(members):
        # the majority side: a peer that is up again but still left out is stranded for good
        stranded = [node for node in partitioned if node not in running and answers(node) and app_running(node)]
        # one actor: the first running node of the majority (node names are prefix@host name)
        if not stranded or sorted(running)[0].split("@", 1)[-1] != socket.gethostname().split(".")[0]:
            return 0
        print(f"{stranded} run again but stay partitioned from the majority {sorted(running)}: "
              "restarting their rabbit app to rejoin", flush=True)
        return max(restart_app(node) for node in stranded)
    answering = [node for node in members if node not in running and answers(node)]
    if 2 * (len(running) + len(answering)) <= len(members):
        print(f"partitioned from {sorted(set(members) - set(running))}, majority unreachable: waiting", flush=True)
        return 0
    print(f"stranded in a minority partition (running {running} of {members}; {answering} answer again): "
          "restarting the rabbit app to rejoin", flush=True)
    return restart_app()


if __name__ == "__main__":
    sys.exit(main())
