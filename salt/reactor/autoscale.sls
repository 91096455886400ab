#!py
"""
The autoscaling reactor (issue 20, docs/operations.md#autoscaling). The
master config maps salt-api's webhook event to it:

    reactor:
      - 'salt/netapi/hook/airflow-ha/autoscale':
        - salt://reactor/autoscale.sls

It runs in the master's reactor, as root, on the Salt master's host (role
ca). The webhook is open (rest_cherrypy ``webhook_disable_auth``: Alertmanager
cannot log in for Salt's expiring eauth tokens), so this checks each request
itself: its ``Authorization: Bearer`` token against the token file that
salt/autoscale wrote from the webhook token secret (constant
time), and the body, an Alertmanager payload of our firing alerts
(``ha_inventory.autoscale_request``, read from the state tree's _modules: the
master loads no custom module). Only then it runs orch.autoscale with pillar
``action`` (up or down), never the request's headers: no token reaches the
job cache. Anything else is refused, logged on the master with the reason.
"""

import importlib.util
import logging
import os

log = logging.getLogger("airflow_ha.autoscale")

MODULE = os.path.join("_modules", "ha_inventory.py")


def _ha_inventory():
    """_modules/ha_inventory.py of the master's state tree (file_roots), as a plain module."""
    for root in (__opts__.get("file_roots") or {}).get(saltenv or "base", []):
        path = os.path.join(root, MODULE)
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("airflow_ha_autoscale_inventory", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise RuntimeError(f"autoscale reactor: no {MODULE} in the master's file_roots")


def _token(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError as exc:
        log.error("autoscale reactor: cannot read the webhook token %s: %s", path, exc)
        return None


def reaction(inventory_module, event, token):
    """The reactor's return for ``event`` (the hook's data) and the shared ``token``: the orchestrate, or {}."""
    verdict = inventory_module.autoscale_request(event, token)
    if not verdict["action"]:
        log.warning("autoscale webhook refused: %s", verdict["reason"])
        return {}
    log.warning("autoscale webhook: %s: orch.autoscale action=%s", verdict["reason"], verdict["action"])
    return {
        "airflow-ha-autoscale-" + verdict["action"]: {
            "runner.state.orchestrate": [
                {"args": [{"mods": "orch.autoscale"},
                          {"pillar": {"action": verdict["action"], "alerts": verdict["alerts"]}}]},
            ],
        },
    }


def run():
    module = _ha_inventory()
    path = __opts__.get("airflow_ha_autoscale_token_file") or module.AUTOSCALE_TOKEN_FILE
    return reaction(module, data, _token(path))
