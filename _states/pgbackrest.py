"""
States for pgBackRest's repository (salt/backup/stanza.sls): the stanza
exists and `pgbackrest check` passes; the repository holds a backup.

.. code-block:: yaml

    backup-stanza-ready:
      pgbackrest.stanza_ready:
        - name: airflow-ha

    backup-first-full:
      pgbackrest.backup_present:
        - name: airflow-ha
        - type: full
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

FAILURES = (CommandExecutionError, SaltInvocationError)

__virtualname__ = "pgbackrest"


def __virtual__():
    if "pgbackrest.info" not in __salt__:
        return (False, "the pgbackrest execution module is not available (pgbackrest not installed)")
    return __virtualname__


def stanza_ready(name, config=None, check=True):
    """
    The stanza ``name`` exists in the repository (``stanza-create`` when it does not) and, with ``check``,
    ``pgbackrest check`` passes (every member answers, archiving works). A stanza already there and a
    passing check change nothing. In test mode nothing is created or checked (check switches the WAL).
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        exists = __salt__["pgbackrest.stanza_exists"](name, config=config)
        if not exists:
            if __opts__["test"]:
                ret.update(result=None, changes={"stanza": {"old": None, "new": name}},
                           comment=f"stanza {name} would be created (stanza-create), then checked")
                return ret
            __salt__["pgbackrest.stanza_create"](name, config=config)
            ret["changes"] = {"stanza": {"old": None, "new": name}}
        if __opts__["test"]:
            ret.update(result=None if ret["changes"] else True,
                       comment=f"stanza {name} exists; pgbackrest check not run in test mode")
            return ret
        if check:
            __salt__["pgbackrest.check"](name, config=config)
    except FAILURES as exc:
        ret["comment"] = str(exc)
        return ret
    ret.update(result=True, comment=f"stanza {name} {'created' if ret['changes'] else 'exists'}"
                                    f"{', pgbackrest check passed' if check else ''}")
    return ret


def backup_present(name, type="full", config=None, annotation=None):  # noqa: A002 - pgBackRest's word
    """
    The stanza ``name`` holds at least one successful backup; takes one of ``type`` when it holds none.
    With ``annotation`` (a mapping, e.g. ``{"airflow-upgrade": "3.3.2"}``): a backup carrying those
    pairs, taken with them when there is none (orch.airflow_upgrade's backup before its migration).
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    which = f"a backup annotated {annotation}" if annotation else "a backup"
    extra = {"annotation": annotation} if annotation else {}
    try:
        if __salt__["pgbackrest.has_backup"](name, config=config, **extra):
            ret.update(result=True, comment=f"stanza {name} holds {which}")
            return ret
        if __opts__["test"]:
            ret.update(result=None, changes={"backup": {"old": None, "new": type}},
                       comment=f"stanza {name} holds no {which[2:]}: a {type} backup would be taken")
            return ret
        new = __salt__["pgbackrest.backup"](name, type=type, config=config, **extra)
    except FAILURES as exc:
        ret["comment"] = str(exc)
        return ret
    ret.update(result=True, changes={"backup": {"old": None, "new": new["label"]}},
               comment=f"{type} backup {new['label']} taken in {new['duration_s']} s")
    return ret
