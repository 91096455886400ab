"""
States of the Airflow hosts' versioned virtualenvs (execution module
``airflow_ha``, docs/operations.md "Airflow upgrade"). ``orch.airflow_upgrade``
applies ``airflow.venv_switch`` to one host at a time:

.. code-block:: yaml

    airflow-venv-switched:
      airflow_ha.venv_switched:
        - name: /opt/airflow/venv
        - target: /opt/airflow/venv-3.3.2
        - units: [airflow-scheduler, airflow-worker]
        - drain: True
        - drain_timeout: 600
"""

from salt.exceptions import CommandExecutionError, SaltInvocationError

FAILURES = (CommandExecutionError, SaltInvocationError)

__virtualname__ = "airflow_ha"


def __virtual__():
    if "airflow_ha.switch_venv" not in __salt__:
        return (False, "the airflow_ha execution module is not available")
    return __virtualname__


def venv_switched(name, target, units=(), only_running=(), drain=False, drain_timeout=600):
    """
    The venv symlink ``name`` points at ``target``; when it does not, this
    host's worker is drained (``drain``), its running ``units`` stopped, the
    symlink switched and the units started (``airflow_ha.switch_venv``). A
    symlink already there changes nothing: no drain, no restart. In test
    mode nothing is drained, stopped or switched.
    """
    ret = {"name": name, "result": False, "changes": {}, "comment": ""}
    try:
        current = __salt__["airflow_ha.current_venv"](name)
        if current == target:
            ret.update(result=True, comment=f"{name} points at {target}")
            return ret
        if __opts__["test"]:
            ret.update(result=None, changes={"venv": {"old": current, "new": target}},
                       comment=f"{name} would point at {target} (now {current}): "
                               + ("worker drained, " if drain else "")
                               + f"{', '.join(units) or 'no unit'} stopped and started")
            return ret
        out = __salt__["airflow_ha.switch_venv"](target, link=name, units=list(units),
                                                 only_running=list(only_running), drain=drain,
                                                 drain_timeout=drain_timeout)
    except FAILURES as exc:
        ret["comment"] = str(exc)
        return ret
    ret.update(result=True, comment=out["comment"])
    if out.get("changed"):
        ret["changes"] = {"venv": {"old": out.get("old"), "new": out.get("new")},
                          "restarted": out.get("started", [])}
    return ret
