#!/usr/bin/python3
"""Restart the RabbitMQ application of this node when it is stranded in the minority of a
partition that Mnesia will not re-merge by itself.

pause_minority pauses a node only once it has detected the cut (net_ticktime). A cut that heals
around the moment of detection leaves Mnesia partitioned for good: the node's rabbit app runs,
distribution is up again, but its Mnesia excludes the other members (rabbitmq-server#17319).
RabbitMQ's documented recovery is to restart the nodes of the minority side; this does that,
and only that:
- nothing when the rabbit app is not running (paused by pause_minority, starting, stopped);
- nothing when Mnesia reports no partition, or when this node is in the majority;
- nothing while the majority is still unreachable (the cut is still on: pause_minority's case).
Run by rabbitmq-partition-heal.timer; every action is logged to the journal.
"""
import json
import subprocess
import sys


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def main():
    proc = run("rabbitmqctl", "cluster_status", "--formatter", "json")
    if proc.returncode:
        return 0
    status = json.loads(proc.stdout)
    members = (status.get("disk_nodes") or []) + (status.get("ram_nodes") or [])
    running = status.get("running_nodes") or []
    if not status.get("partitions") or 2 * len(running) > len(members):
        return 0
    answering = [node for node in members if node not in running
                 and run("rabbitmq-diagnostics", "-n", node, "-q", "ping").returncode == 0]
    if 2 * (len(running) + len(answering)) <= len(members):
        print(f"partitioned from {sorted(set(members) - set(running))}, majority unreachable: waiting", flush=True)
        return 0
    print(f"stranded in a minority partition (running {running} of {members}; {answering} answer again): "
          "restarting the rabbit app to rejoin", flush=True)
    for step in ("stop_app", "start_app"):
        proc = run("rabbitmqctl", step)
        if proc.returncode:
            print(f"rabbitmqctl {step} failed: {proc.stderr.strip()}", file=sys.stderr, flush=True)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
