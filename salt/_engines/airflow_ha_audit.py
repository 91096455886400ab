"""Every Salt job on the system log of the master, and so on the log host
(rsyslog forwards it: salt/logs): who ran what, on which targets, with what
result, one line per event, tag ``salt-audit``, facility authpriv.

- ``job new``: the user, the function, the target and the minions it reached;
- ``job ret``: per minion, success and retcode, and for a state run the count
  of states, changed and failed;
- ``run new`` / ``run ret``: runner jobs (``state.orchestrate``) likewise;
- ``key``: a minion key accepted, rejected or deleted.

No secret goes into a line: a keyword argument's value is written only for
keys in SAFE_KWARGS (``pillar=`` overrides, passwords, anything else: ``***``),
and positional arguments only for the functions in SHOWN_ARGS (SLS names,
grain names); another function's positional arguments (a ``cmd.run``
command line may hold a password) are written as their count. Returns are
never written, only their counts.

Master configuration (docs/logs.md)::

    engines_dirs: [/srv/airflow-ha/salt/_engines]
    engines:
      - airflow_ha_audit: {}

CLI Example (what it writes, on the log host):

.. code-block:: bash

    grep 'job new' /var/log/remote/<master>/salt-audit.log
"""

import json
import logging
import logging.handlers
import re

import salt.utils.event

__virtualname__ = "airflow_ha_audit"

log = logging.getLogger(__name__)

# keyword arguments whose values say what was run and hold no secret
SAFE_KWARGS = {"saltenv", "pillarenv", "test", "queue", "concurrent", "exclude", "mods", "sls", "tgt",
               "tgt_type", "timeout", "orchestration_jid", "batch", "ssh", "name"}
# functions whose positional arguments are names (SLS, grains, modules), not data
SHOWN_ARGS = re.compile(r"^(state\.(apply|sls|highstate|sls_id|show_sls|single|orchestrate|orch)|"
                        r"runner\.state\.(orchestrate|orch)|saltutil\.|test\.|sys\.|grains\.(get|item|items)|"
                        r"x509\.sign_remote_certificate|jobs\.)")
# polled by the CLI while it waits for a job: noise
SKIPPED = {"saltutil.find_job", "runner.jobs.lookup_jid"}
MAX_ARG = 200


def __virtual__():
    return __virtualname__


def _kwargs(data):
    return {key: (value if key in SAFE_KWARGS and not isinstance(value, (dict, list)) else "***")
            for key, value in sorted(data.items()) if not key.startswith("__")}


def describe_args(fun, args):
    """The arguments of ``fun`` as the audit line shows them (the module docstring)."""
    shown, positional = {}, []
    for arg in args or []:
        if isinstance(arg, dict):
            shown.update(_kwargs(arg))
        elif isinstance(arg, str) and re.match(r"^\w+=", arg):
            key, _, value = arg.partition("=")
            shown.update(_kwargs({key: value}))
        else:
            positional.append(arg)
    if positional:
        if SHOWN_ARGS.match(fun or ""):
            shown["args"] = [str(a)[:MAX_ARG] for a in positional]
        else:
            shown["args"] = f"{len(positional)} not shown"
    return shown


def summarize_return(ret):
    """Counts of a state run's return (``{state id: {result, changes}}``, or an orchestrate's
    ``{data: {master: {...}}}``); {} for any other return."""
    if isinstance(ret, dict) and isinstance(ret.get("data"), dict):
        inner = [v for v in ret["data"].values() if isinstance(v, dict)]
        ret = {k: v for part in inner for k, v in part.items()}
    if not isinstance(ret, dict) or not ret or not all(isinstance(v, dict) and "result" in v for v in ret.values()):
        return {}
    return {"states": len(ret), "changed": sum(bool(v.get("changes")) for v in ret.values()),
            "failed": sum(v.get("result") is False for v in ret.values())}


def describe(tag, data):
    """One audit line (a string) for a master event, or None for an event that is not audited."""
    parts = tag.split("/")
    if tag == "salt/key":
        return _line("key", act=data.get("act"), minion=data.get("id"), result=data.get("result"))
    if len(parts) < 4 or parts[0] != "salt" or parts[1] not in ("job", "run"):
        return None
    kind, jid, what = parts[1], parts[2], parts[3]
    fun = data.get("fun") or ""
    if fun in SKIPPED:
        return None
    if kind == "job" and what == "new":
        return _line("job new", jid=jid, user=data.get("user"), fun=fun, tgt=data.get("tgt"),
                     tgt_type=data.get("tgt_type"), minions=data.get("minions"),
                     **describe_args(fun, data.get("arg")))
    if kind == "job" and what == "ret" and len(parts) > 4:
        return _line("job ret", jid=jid, minion=data.get("id"), fun=fun, success=data.get("success"),
                     retcode=data.get("retcode"), **summarize_return(data.get("return")))
    if kind == "run" and what == "new":
        return _line("run new", jid=jid, user=data.get("user"), fun=fun,
                     **describe_args(fun, data.get("fun_args")))
    if kind == "run" and what == "ret":
        ret = data.get("return")
        return _line("run ret", jid=jid, user=data.get("user"), fun=fun, success=data.get("success"),
                     retcode=ret.get("retcode") if isinstance(ret, dict) else None, **summarize_return(ret))
    return None


def _line(event, **fields):
    return f"{event} " + json.dumps({k: v for k, v in fields.items() if v is not None}, sort_keys=True, default=str)


def _handler(address, facility):
    handler = logging.handlers.SysLogHandler(address=address,
                                             facility=logging.handlers.SysLogHandler.facility_names[facility])
    handler.ident = "salt-audit: "
    handler.append_nul = False  # one message per datagram: rsyslog would keep a trailing NUL
    return handler


def start(address="/dev/log", facility="authpriv"):
    """The engine: every master event through :func:`describe` onto syslog at ``address``."""
    handler = _handler(address, facility)
    with salt.utils.event.get_event("master", sock_dir=__opts__["sock_dir"], opts=__opts__,
                                    listen=True) as bus:
        while True:
            event = bus.get_event(full=True)
            if not event:
                continue
            try:
                line = describe(event["tag"], event["data"])
            except Exception:  # pylint: disable=broad-except  # an odd event must not stop the audit
                log.exception("airflow_ha_audit: cannot describe event %s", event.get("tag"))
                line = _line("unreadable", tag=event.get("tag"))
            if line:
                handler.emit(logging.LogRecord("salt-audit", logging.INFO, __file__, 0, line, None, None))
