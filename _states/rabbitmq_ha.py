"""
States for a RabbitMQ cluster through the ``rabbitmq_ha`` execution module:
membership (``joined``), health for orchestrate steps (``cluster_healthy``),
and the cluster-wide objects Airflow needs (vhost, users, policy). Passwords
never appear in changes or comments. All honour ``test=True``.

.. code-block:: yaml

    rabbitmq-joined:
      rabbitmq_ha.joined:
        - name: rabbit@mq1

    rabbitmq-cluster-healthy:
      rabbitmq_ha.cluster_healthy:
        - nodes: [rabbit@mq1, rabbit@mq2, rabbit@mq3]
        - timeout: 300

    rabbitmq-airflow-user:
      rabbitmq_ha.user_present:
        - name: airflow
        - password: {{ pillar.secrets.rabbitmq.airflow_password | json }}
        - permissions:
            airflow: ['.*', '.*', '.*']
"""

import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

# what the execution module raises for a failed rabbitmqctl or a bad argument:
# the state fails with the message instead of letting it escape
FAILURES = (CommandExecutionError, SaltInvocationError)

__virtualname__ = "rabbitmq_ha"


def __virtual__():
    if "rabbitmq_ha.cluster_status" not in __salt__:
        return (False, "the rabbitmq_ha execution module is not available")
    return __virtualname__


def _ret(name):
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def _failed(ret, exc):
    """``ret`` failed with the execution module's message. Nothing is claimed
    as changed (a user whose update failed half way is compared again on the
    next run)."""
    ret.update(result=False, changes={}, comment=f"{ret['name']}: {exc}")
    return ret


def joined(name, node=None, timeout=300):
    """
    Make ``node`` (default: the local node) a member of the cluster of the
    seed node ``name``. A member already (however it got there: classic
    config peer discovery or an earlier join) is left alone. With
    ``test=True`` it asks once and waits for nothing.
    """
    ret = _ret(name)
    would = {"result": None, "changes": {"joined": name},
             "comment": f"would stop the app, join the cluster of {name} and start the app again"}
    try:
        if __opts__["test"]:
            try:
                member = __salt__["rabbitmq_ha.is_member"](name, node=node)
            except FAILURES as exc:  # not booted yet: the real run would wait for it
                ret.update(would, comment=f"{node or 'the local node'} does not answer yet ({exc}); would wait up to "
                                          f"{timeout} s for it, then join the cluster of {name} unless a member")
                return ret
            if member:
                ret.update(result=True, comment=f"already clustered with {name}")
            else:
                ret.update(would)
            return ret
        __salt__["rabbitmq_ha.await_startup"](timeout=timeout, node=node)
        if __salt__["rabbitmq_ha.is_member"](name, node=node):
            ret.update(result=True, comment=f"already clustered with {name}")
            return ret
        __salt__["rabbitmq_ha.join"](name, node=node, timeout=timeout)
    except FAILURES as exc:
        ret["comment"] = str(exc)
        return ret
    ret.update(result=True, changes={"joined": name}, comment=f"joined the cluster of {name}")
    return ret


def cluster_healthy(name, nodes, timeout=300, interval=3, node=None):
    """
    Wait until every node of ``nodes`` is a running member, with no
    partition and no alarm; fail after ``timeout`` seconds naming what is
    wrong. Changes nothing.
    """
    ret = _ret(name)
    deadline = time.monotonic() + timeout
    while True:
        try:
            problems = __salt__["rabbitmq_ha.health_problems"](nodes, node=node)
        except FAILURES as exc:  # the local node still booting is a problem to wait out
            problems = [str(exc)]
        if not problems:
            ret.update(result=True, comment=f"RabbitMQ cluster healthy: {len(nodes)} nodes running, "
                                            "no partition, no alarm")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"RabbitMQ cluster not healthy yet ({'; '.join(problems)}); "
                                            f"would wait up to {timeout} s")
            return ret
        if time.monotonic() >= deadline:
            ret["comment"] = f"RabbitMQ cluster not healthy after {timeout} s: {'; '.join(problems)}"
            return ret
        time.sleep(interval)


def vhost_present(name, default_queue_type=None, node=None):
    """A virtual host; ``default_queue_type`` is set at creation."""
    ret = _ret(name)
    try:
        return _vhost_present(ret, name, default_queue_type, node)
    except FAILURES as exc:
        return _failed(ret, exc)


def _vhost_present(ret, name, default_queue_type=None, node=None):
    vhosts = __salt__["rabbitmq_ha.list_vhosts"](node=node)
    if name in vhosts:
        current = vhosts[name]
        if default_queue_type and current != default_queue_type:
            ret["comment"] = (f"vhost {name} exists with default queue type {current}, not {default_queue_type}: "
                              "the type is set at creation; delete and recreate the vhost (its queues go with it)")
            return ret
        ret.update(result=True, comment=f"vhost {name} present")
        return ret
    ret["changes"] = {"vhost": name, "default_queue_type": default_queue_type}
    if __opts__["test"]:
        ret.update(result=None, comment=f"would create vhost {name}")
        return ret
    __salt__["rabbitmq_ha.add_vhost"](name, default_queue_type=default_queue_type, node=node)
    ret.update(result=True, comment=f"created vhost {name}")
    return ret


def user_present(name, password, tags=(), permissions=None, node=None):
    """
    A user with this password (checked by the broker, so a changed pillar
    password is applied), these tags and ``permissions``
    ({vhost: [configure, write, read]}). The password is never shown.
    """
    ret = _ret(name)
    try:
        return _user_present(ret, name, password, tags, permissions, node)
    except FAILURES as exc:
        return _failed(ret, exc)


def _user_present(ret, name, password, tags=(), permissions=None, node=None):
    if not password:
        ret["comment"] = f"no password for RabbitMQ user {name}: set it in the secrets pillar"
        return ret
    users = __salt__["rabbitmq_ha.list_users"](node=node)
    changes = {}
    if name not in users:
        changes["user"] = "created"
    elif not __salt__["rabbitmq_ha.check_password"](name, password, node=node):
        changes["password"] = "changed"
    if sorted(tags) != users.get(name, []):
        changes["tags"] = {"old": users.get(name, []), "new": sorted(tags)}
    current_perms = __salt__["rabbitmq_ha.list_user_permissions"](name, node=node) if name in users else {}
    for vhost, perms in (permissions or {}).items():
        if list(perms) != current_perms.get(vhost):
            changes.setdefault("permissions", {})[vhost] = {"old": current_perms.get(vhost), "new": list(perms)}
    if not changes:
        ret.update(result=True, comment=f"user {name} as wanted")
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"would update user {name}")
        return ret
    if "user" in changes:
        __salt__["rabbitmq_ha.add_user"](name, password, node=node)
    elif "password" in changes:
        __salt__["rabbitmq_ha.change_password"](name, password, node=node)
    if "tags" in changes:
        __salt__["rabbitmq_ha.set_user_tags"](name, sorted(tags), node=node)
    for vhost, perm in changes.get("permissions", {}).items():
        __salt__["rabbitmq_ha.set_permissions"](name, vhost, *perm["new"], node=node)
    ret.update(result=True, changes=changes, comment=f"updated user {name}")
    return ret


def user_absent(name, node=None):
    """No such user (``guest`` ships with the package)."""
    ret = _ret(name)
    try:
        return _user_absent(ret, name, node)
    except FAILURES as exc:
        return _failed(ret, exc)


def _user_absent(ret, name, node=None):
    if name not in __salt__["rabbitmq_ha.list_users"](node=node):
        ret.update(result=True, comment=f"user {name} absent")
        return ret
    ret["changes"] = {"user": "deleted"}
    if __opts__["test"]:
        ret.update(result=None, comment=f"would delete user {name}")
        return ret
    __salt__["rabbitmq_ha.delete_user"](name, node=node)
    ret.update(result=True, comment=f"deleted user {name}")
    return ret


def policy_present(name, pattern, definition, vhost="/", apply_to="queues", priority=0, node=None):
    """A policy with exactly this pattern, definition, target and priority."""
    ret = _ret(name)
    try:
        return _policy_present(ret, name, pattern, definition, vhost, apply_to, priority, node)
    except FAILURES as exc:
        return _failed(ret, exc)


def _policy_present(ret, name, pattern, definition, vhost="/", apply_to="queues", priority=0, node=None):
    wanted = {"pattern": pattern, "apply_to": apply_to, "definition": dict(definition), "priority": int(priority)}
    current = __salt__["rabbitmq_ha.list_policies"](vhost=vhost, node=node).get(name)
    if current == wanted:
        ret.update(result=True, comment=f"policy {name} on vhost {vhost} as wanted")
        return ret
    ret["changes"] = {"old": current, "new": wanted}
    if __opts__["test"]:
        ret.update(result=None, comment=f"would set policy {name} on vhost {vhost}")
        return ret
    __salt__["rabbitmq_ha.set_policy"](name, pattern, wanted["definition"], vhost=vhost, apply_to=apply_to,
                                       priority=priority, node=node)
    ret.update(result=True, comment=f"set policy {name} on vhost {vhost}")
    return ret

