"""
Drive a RabbitMQ cluster through ``rabbitmqctl`` and ``rabbitmq-diagnostics``
with ``--formatter json`` (Salt core's ``rabbitmq`` module scrapes text and
passes passwords as arguments). Passwords go to ``rabbitmqctl`` on standard
input, never on a command line, and commands run with ``output_loglevel:
quiet``.

Every function takes ``node`` (``-n``), the node to talk to; by default the
local node of the CLI's environment.

CLI Example:

.. code-block:: bash

    salt-call rabbitmq_ha.cluster_status
    salt-call rabbitmq_ha.join rabbit@mq1
    salt-call rabbitmq_ha.list_queues vhost=airflow
"""

import json
import time

import salt.utils.path
from salt.exceptions import CommandExecutionError

__virtualname__ = "rabbitmq_ha"

RABBITMQCTL = "rabbitmqctl"
DIAGNOSTICS = "rabbitmq-diagnostics"
QUEUE_COLUMNS = ("name", "type", "leader", "members", "online", "messages", "consumers", "durable")
# rabbitmqctl authenticate_user exits 65 (EX_DATAERR) on wrong credentials
EX_DATAERR = 65


def __virtual__():
    if not salt.utils.path.which(RABBITMQCTL):
        return (False, "rabbitmqctl is not installed (package rabbitmq-server)")
    return __virtualname__


def _run(tool, args, node=None, stdin=None, json_output=True, timeout=120, check=True):
    cmd = [tool] + (["-n", node] if node else []) + list(args)
    if json_output:
        cmd += ["--formatter", "json"]
    ret = __salt__["cmd.run_all"](
        cmd, python_shell=False, ignore_retcode=True, output_loglevel="quiet", stdin=stdin, timeout=timeout
    )
    if not check:
        return ret
    if ret["retcode"] != 0:
        message = (ret["stderr"] or ret["stdout"]).strip().splitlines()
        raise CommandExecutionError(
            f"{tool} {' '.join(args)} failed on {node or 'the local node'} (exit {ret['retcode']}): "
            + " ".join(message[:3])
        )
    if not json_output:
        return ret["stdout"]
    text = ret["stdout"].strip()
    return json.loads(text) if text else None


def _ctl(args, **kwargs):
    return _run(RABBITMQCTL, args, **kwargs)


# ------------------------------------------------------------------ cluster
def cluster_status(node=None):
    """
    The cluster as one node sees it: ``running_nodes``, ``disk_nodes``,
    ``partitions`` (node -> nodes it is partitioned from), ``alarms``,
    ``versions`` (node -> RabbitMQ version), ``cluster_name``.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.cluster_status
    """
    raw = _ctl(["cluster_status"], node=node)
    return {
        "cluster_name": raw.get("cluster_name"),
        "running_nodes": sorted(raw.get("running_nodes", [])),
        "disk_nodes": sorted(raw.get("disk_nodes", [])),
        "partitions": raw.get("partitions") or {},
        "alarms": raw.get("alarms") or [],
        "versions": {n: v.get("rabbitmq_version") for n, v in (raw.get("versions") or {}).items()},
        "maintenance": raw.get("maintenance_status") or {},
    }


def health_problems(nodes, node=None, status=None):
    """
    What keeps the cluster from being healthy, as sentences (empty: healthy):
    an expected node not running, a node not a member, partitions, alarms.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.health_problems '[rabbit@mq1, rabbit@mq2, rabbit@mq3]'
    """
    status = status or cluster_status(node=node)
    problems = []
    for expected in sorted(nodes):
        if expected not in status["disk_nodes"]:
            problems.append(f"{expected} is not a member of the cluster")
        elif expected not in status["running_nodes"]:
            problems.append(f"{expected} is not running")
    for member, peers in sorted(status["partitions"].items()):
        if peers:
            problems.append(f"{member} is partitioned from {', '.join(sorted(peers))}")
    for alarm in status["alarms"]:
        problems.append(f"alarm: {json.dumps(alarm, sort_keys=True)}")
    return problems


def await_startup(timeout=300, node=None):
    """
    Wait until the node has booted (RabbitMQ app running); raise after
    ``timeout`` seconds. ``rabbitmqctl await_startup`` fails at once while
    the node is not yet registered with epmd, so that is retried too.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.await_startup timeout=120
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = max(1, int(deadline - time.monotonic()))
        ret = _run(RABBITMQCTL, ["await_startup", "--timeout", str(remaining)], node=node, json_output=False,
                   timeout=remaining + 10, check=False)
        if ret["retcode"] == 0:
            return True
        if time.monotonic() >= deadline:
            raise CommandExecutionError(
                f"RabbitMQ node {node or 'local'} did not start within {timeout} s: "
                f"{(ret['stderr'] or ret['stdout']).strip().splitlines()[:1]}"
            )
        time.sleep(2)


def is_member(seed, node=None):
    """True when ``node`` (default local) is clustered with ``seed``."""
    return seed in cluster_status(node=node)["disk_nodes"]


def join(seed, node=None, timeout=300):
    """
    Join the cluster of ``seed``: no-op (returns False) when already a
    member; otherwise stop_app, join_cluster, start_app (returns True). The
    app is started again even when the join fails, so a failed join leaves
    the node running standalone rather than stopped.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.join rabbit@mq1
    """
    await_startup(timeout=timeout, node=node)
    if is_member(seed, node=node):
        return False
    _ctl(["stop_app"], node=node, json_output=False)
    try:
        _ctl(["join_cluster", seed], node=node, json_output=False, timeout=timeout)
    finally:
        _ctl(["start_app"], node=node, json_output=False, timeout=timeout)
    await_startup(timeout=timeout, node=node)
    if not is_member(seed, node=node):
        raise CommandExecutionError(f"{node or 'local node'} ran join_cluster {seed} but is not a member")
    return True


def forget(member, node=None):
    """
    Remove a (stopped) ``member`` from the cluster, run on a live node.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.forget rabbit@mq3
    """
    if member not in cluster_status(node=node)["disk_nodes"]:
        return False
    _ctl(["forget_cluster_node", member], node=node, json_output=False)
    return True


def check_running(node=None):
    """``rabbitmq-diagnostics check_running``: True when the app runs."""
    return _run(DIAGNOSTICS, ["check_running"], node=node, check=False)["retcode"] == 0


def check_local_alarms(node=None):
    """``rabbitmq-diagnostics check_local_alarms``: True when the node has no alarm."""
    return _run(DIAGNOSTICS, ["check_local_alarms"], node=node, check=False)["retcode"] == 0


# ------------------------------------------------------------------- queues
def list_queues(vhost="/", node=None):
    """
    Queues of ``vhost`` with type, leader, members, online members, message
    and consumer counts.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.list_queues vhost=airflow
    """
    return _ctl(["list_queues", "-p", vhost] + list(QUEUE_COLUMNS), node=node) or []


# ------------------------------------------------------------------- vhosts
def list_vhosts(node=None):
    """Virtual hosts: {name: default queue type or None}."""
    rows = _ctl(["list_vhosts", "name", "default_queue_type"], node=node) or []
    return {r["name"]: (None if r.get("default_queue_type") in (None, "undefined") else r["default_queue_type"])
            for r in rows}


def add_vhost(name, default_queue_type=None, node=None):
    """
    Create a virtual host, with the queue type that queues declared without
    ``x-queue-type`` get (``quorum`` for Celery's).

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.add_vhost airflow default_queue_type=quorum
    """
    args = ["add_vhost", name] + (["--default-queue-type", default_queue_type] if default_queue_type else [])
    _ctl(args, node=node, json_output=False)
    return True


# -------------------------------------------------------------------- users
def list_users(node=None):
    """Users: {name: [tags]}."""
    return {r["user"]: sorted(r.get("tags") or []) for r in (_ctl(["list_users"], node=node) or [])}


def add_user(name, password, node=None):
    """
    Create a user; the password goes on standard input.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.add_user airflow "$(cat /root/pw)"   # better: through a state and pillar
    """
    _ctl(["add_user", name], node=node, stdin=password, json_output=False)
    return True


def check_password(name, password, node=None):
    """True when ``password`` authenticates ``name`` (checked by the broker)."""
    ret = _run(RABBITMQCTL, ["authenticate_user", name], node=node, stdin=password, json_output=False, check=False)
    if ret["retcode"] in (0, EX_DATAERR):
        return ret["retcode"] == 0
    raise CommandExecutionError(f"rabbitmqctl authenticate_user {name} failed (exit {ret['retcode']}): "
                                f"{ret['stderr'].strip()}")


def change_password(name, password, node=None):
    """Set a user's password (on standard input)."""
    _ctl(["change_password", name], node=node, stdin=password, json_output=False)
    return True


def delete_user(name, node=None):
    """Delete a user (e.g. ``guest``); False when there was none."""
    if name not in list_users(node=node):
        return False
    _ctl(["delete_user", name], node=node, json_output=False)
    return True


def set_user_tags(name, tags, node=None):
    """Replace a user's tags (``administrator``, ``monitoring``...)."""
    _ctl(["set_user_tags", name] + list(tags), node=node, json_output=False)
    return True


def list_user_permissions(name, node=None):
    """{vhost: [configure, write, read]} of a user."""
    rows = _ctl(["list_user_permissions", name], node=node) or []
    return {r["vhost"]: [r["configure"], r["write"], r["read"]] for r in rows}


def set_permissions(name, vhost, configure=".*", write=".*", read=".*", node=None):
    """Grant a user configure/write/read patterns on a vhost."""
    _ctl(["set_permissions", "-p", vhost, name, configure, write, read], node=node, json_output=False)
    return True


# ----------------------------------------------------------------- policies
def list_policies(vhost="/", node=None):
    """{name: {pattern, apply_to, definition (dict), priority}} of a vhost."""
    rows = _ctl(["list_policies", "-p", vhost], node=node) or []
    return {
        r["name"]: {
            "pattern": r["pattern"],
            "apply_to": r["apply-to"],
            "definition": json.loads(r["definition"]) if isinstance(r["definition"], str) else r["definition"],
            "priority": int(r["priority"]),
        }
        for r in rows
    }


def set_policy(name, pattern, definition, vhost="/", apply_to="queues", priority=0, node=None):
    """
    Create or replace a policy.

    CLI Example:

    .. code-block:: bash

        salt-call rabbitmq_ha.set_policy quorum-limits '.*' '{"delivery-limit": 10}' vhost=airflow
    """
    if isinstance(definition, dict):
        definition = json.dumps(definition, sort_keys=True)
    _ctl(["set_policy", "-p", vhost, "--apply-to", apply_to, "--priority", str(priority), name, pattern, definition],
         node=node, json_output=False)
    return True
