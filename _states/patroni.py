"""
States for a Patroni cluster: wait for health (orchestrate steps), and keep
the dynamic configuration in the DCS as pillar says (compare and set).

.. code-block:: yaml

    postgres-cluster-healthy:
      patroni.cluster_healthy:
        - members: 3
        - timeout: 300

    postgres-dcs-config:
      patroni.config_applied:
        - settings:
            loop_wait: 10
            postgresql:
              parameters:
                max_connections: 300
"""

import time

from salt.exceptions import CommandExecutionError, SaltInvocationError

# what the execution module raises (patronictl failed, REST API unreachable,
# no config): the state fails with the message instead of letting it escape
FAILURES = (CommandExecutionError, SaltInvocationError)

__virtualname__ = "patroni"


def __virtual__():
    if "patroni.cluster_status" not in __salt__:
        return (False, "the patroni execution module is not available")
    return __virtualname__


def cluster_healthy(name, members=3, max_lag_mb=16, timeout=300, interval=3, config=None):
    """
    Wait until the cluster has a running leader, ``members`` running members
    and every replica within ``max_lag_mb``; fail after ``timeout`` seconds
    naming what is wrong. Changes nothing.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    deadline = time.monotonic() + timeout
    problems = ["not checked"]
    while True:
        try:
            status = __salt__["patroni.cluster_status"](config=config)
            problems = __salt__["patroni.health_problems"](status, members, max_lag_mb)
        except Exception as exc:  # an unreachable DCS or REST API is a problem to wait out
            status, problems = None, [str(exc)]
        if not problems:
            ret.update(result=True, comment=f"Patroni cluster healthy: leader {status['leader']}, "
                                            f"{status['running']} members running")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"Patroni cluster not healthy yet ({'; '.join(problems)}); "
                                            f"would wait up to {timeout} s")
            return ret
        if time.monotonic() >= deadline:
            ret["comment"] = f"Patroni cluster not healthy after {timeout} s: {'; '.join(problems)}"
            return ret
        time.sleep(interval)


def _diff(current, desired, prefix=""):
    """Keys of ``desired`` whose value differs in ``current``: {dotted key: {old, new}}."""
    changes = {}
    for key, new in desired.items():
        old = (current or {}).get(key)
        path = f"{prefix}{key}"
        if isinstance(new, dict) and isinstance(old, dict):
            changes.update(_diff(old, new, path + "."))
        elif isinstance(new, dict) or isinstance(old, dict):
            if old != new:
                changes[path] = {"old": old, "new": new}
        elif str(old) != str(new):
            changes[path] = {"old": old, "new": new}
    return changes


def config_applied(name, settings, config=None):
    """
    Make the dynamic configuration in the DCS contain ``settings``: only the
    differing keys are sent (PATCH /config), and the diff is the state's
    changes. Values compare as strings, as PostgreSQL parameters do.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        return _config_applied(ret, settings, config)
    except FAILURES as exc:
        ret.update(result=False, changes={}, comment=f"Patroni dynamic configuration not applied: {exc}")
        return ret


def _config_applied(ret, settings, config):
    current = __salt__["patroni.show_config"](config=config)
    changes = _diff(current, settings)
    if not changes:
        ret.update(result=True, comment="Patroni dynamic configuration already as wanted")
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes=changes,
                   comment=f"would change {len(changes)} key(s) of the Patroni dynamic configuration")
        return ret
    __salt__["patroni.edit_config"](settings, config=config)
    after = _diff(__salt__["patroni.show_config"](config=config), settings)
    if after:
        ret["comment"] = f"Patroni dynamic configuration still differs after PATCH: {sorted(after)}"
        return ret
    ret.update(result=True, changes=changes, comment=f"changed {len(changes)} key(s) of the Patroni dynamic configuration")
    return ret
