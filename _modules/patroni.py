"""
Drive a Patroni cluster: ``patronictl -f json`` for reads and cluster
operations, Patroni's REST API for the dynamic configuration. Credentials stay
in the Patroni config file (root/postgres-readable): nothing secret is passed on
a command line. When the config has ``restapi.certfile`` (pillar tls:enabled),
the REST API is called over https, verified against the config's CA.

Understands both Patroni 3.x output (``Lag in MB``, role ``Leader``/``Replica``,
older ``master``) and 4.1+ output (``Receive Lag``/``Replay Lag``, state
``streaming``, ``primary``).

CLI Example:

.. code-block:: bash

    salt-call patroni.cluster_status
    salt-call patroni.switchover candidate=sql2
"""

import base64
import json
import os
import time

import salt.utils.path
import salt.utils.yaml
from salt.exceptions import CommandExecutionError

__virtualname__ = "patroni"

DEFAULT_CONFIGS = ("/etc/patroni/config.yml", "/etc/patroni/patroni.yml")
LEADER_WORDS = {"leader", "master", "primary"}
HEALTHY_STATES = {"running", "streaming"}
LAG_COLUMNS = ("Lag in MB", "Receive Lag", "Replay Lag")


def __virtual__():
    if not salt.utils.path.which("patronictl"):
        return (False, "patronictl is not on PATH (the postgres state installs Patroni from requirements/patroni.txt)")
    return __virtualname__


def _http(name):
    """A function of the shared HTTP client ``_utils/ha_http.py``: Salt's
    ``__utils__`` on a minion (synced by ``saltutil.sync_all``), else imported
    (a checkout's tools and tests import this module as ``_modules.<name>``)."""
    utils = globals().get("__utils__") or {}
    if f"ha_http.{name}" in utils:
        return utils[f"ha_http.{name}"]
    from _utils import ha_http

    return getattr(ha_http, name)


def _config(config):
    if config:
        return config
    for path in DEFAULT_CONFIGS:
        if os.path.exists(path):
            return path
    raise CommandExecutionError(f"no Patroni config found at {' or '.join(DEFAULT_CONFIGS)}: pass config=PATH")


def _patronictl(args, config=None):
    cmd = ["patronictl", "-c", _config(config)] + list(args)
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="quiet")
    if ret["retcode"] != 0:
        raise CommandExecutionError(
            f"patronictl {' '.join(args)} failed (exit {ret['retcode']}): {(ret['stderr'] or ret['stdout']).strip()}"
        )
    return ret["stdout"]


def _read_config(config=None):
    with open(_config(config)) as f:
        return salt.utils.yaml.safe_load(f)


def _lag_mb(row):
    """The largest lag the row reports, in MB; None when unknown (e.g. a stopped member)."""
    values = []
    for column in LAG_COLUMNS:
        value = row.get(column)
        if isinstance(value, (int, float)):
            values.append(value)
        elif isinstance(value, str) and value.strip().replace(".", "", 1).isdigit():
            values.append(float(value))
    return max(values) if values else None


def normalize_member(row):
    """One row of ``patronictl list -f json`` in a version-independent shape."""
    role = str(row.get("Role", "")).strip().lower()
    if role in LEADER_WORDS:
        role = "leader"
    elif role in ("standby leader", "standby_leader"):
        role = "standby_leader"
    elif role in ("sync standby", "sync_standby"):
        role = "sync_standby"
    else:
        role = role.replace(" ", "_") or "unknown"
    lag = None if role == "leader" else _lag_mb(row)
    return {
        "name": row.get("Member"),
        "host": row.get("Host"),
        "role": role,
        "state": str(row.get("State", "")).strip().lower(),
        "timeline": row.get("TL"),
        "lag_mb": lag,
    }


def summarize(members):
    """Cluster status from normalized members."""
    leaders = [m["name"] for m in members if m["role"] == "leader" and m["state"] in HEALTHY_STATES]
    lags = [m["lag_mb"] for m in members if m["role"] != "leader" and m["lag_mb"] is not None]
    return {
        "leader": leaders[0] if len(leaders) == 1 else None,
        "members": members,
        "running": sum(1 for m in members if m["state"] in HEALTHY_STATES),
        "replicas": sorted(m["name"] for m in members if m["role"] != "leader" and m["state"] in HEALTHY_STATES),
        "max_lag_mb": max(lags) if lags else None,
    }


def members(config=None):
    """
    The members of the cluster: name, host, role (leader, replica,
    sync_standby, standby_leader), state, timeline and lag in MB.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.members
    """
    out = _patronictl(["list", "-f", "json"], config)
    try:
        rows = json.loads(out or "[]")
    except ValueError as exc:
        raise CommandExecutionError(f"patronictl list gave no JSON: {exc}: {out[:200]}")
    return [normalize_member(r) for r in rows]


def cluster_status(config=None):
    """
    Leader, members, running count, healthy replicas and the largest lag.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.cluster_status
    """
    return summarize(members(config))


def leader(config=None):
    """
    The name of the running leader, or None.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.leader
    """
    return cluster_status(config)["leader"]


def is_leader(name=None, config=None):
    """
    True when ``name`` (this minion's id by default) is the running leader;
    False also when Patroni cannot be asked (not configured or not running
    here), so leader-only states skip on such a host.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.is_leader
    """
    try:
        return leader(config) == (name or __grains__["id"])
    except CommandExecutionError:
        return False


def health_problems(status, members=3, max_lag_mb=16):
    """Why a cluster status is not healthy, as a list of reasons (empty: healthy)."""
    problems = []
    if not status["leader"]:
        problems.append("no running leader")
    if status["running"] < members:
        problems.append(f"{status['running']} of {members} members running")
    lagging = [m["name"] for m in status["members"] if m["role"] != "leader" and m["state"] in HEALTHY_STATES
               and (m["lag_mb"] is None or m["lag_mb"] > max_lag_mb)]
    if lagging:
        problems.append(f"replicas lagging over {max_lag_mb} MB or of unknown lag: {', '.join(lagging)}")
    return problems


def is_healthy(members=3, max_lag_mb=16, config=None):
    """
    True when there is one running leader, ``members`` running members and
    every replica within ``max_lag_mb`` of the leader.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.is_healthy members=3 max_lag_mb=16
    """
    return not health_problems(cluster_status(config), members, max_lag_mb)


def switchover(candidate=None, current_leader=None, config=None, wait=60):
    """
    Planned switchover to ``candidate`` (Patroni picks one when None); waits
    until it is done and returns the new leader.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.switchover candidate=sql2
    """
    current_leader = current_leader or leader(config)
    if not current_leader:
        raise CommandExecutionError("switchover needs a running leader: use patroni.failover")
    args = ["switchover", "--force", "--leader", current_leader]
    if candidate:
        args += ["--candidate", candidate]
    _patronictl(args, config)
    return _wait_for_leader(candidate, wait, config) if candidate else leader(config)


def failover(candidate, config=None, wait=60):
    """
    Unplanned failover to ``candidate`` (works without a healthy leader; in
    synchronous mode the candidate must be the synchronous standby). Returns
    the leader once ``candidate`` leads, or after ``wait`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.failover candidate=sql3
    """
    _patronictl(["failover", "--force", "--candidate", candidate], config)
    return _wait_for_leader(candidate, wait, config)


def _wait_for_leader(name, wait, config):
    """Patroni acts on a failover/switchover asynchronously: poll until ``name`` leads or ``wait`` s pass."""
    deadline = time.monotonic() + wait
    current = leader(config)
    while current != name and time.monotonic() < deadline:
        time.sleep(1)
        current = leader(config)
    return current


def _scope(config):
    return _read_config(config)["scope"]


def reinit(member, config=None):
    """
    Rebuild ``member`` from the leader (after a divergence pg_rewind could not fix).

    CLI Example:

    .. code-block:: bash

        salt-call patroni.reinit sql3
    """
    return _patronictl(["reinit", _scope(config), member, "--force", "--wait"], config).strip()


def restart(member=None, config=None):
    """
    Restart PostgreSQL on ``member`` (all members when None) through Patroni.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.restart sql2
    """
    args = ["restart", _scope(config)] + ([member] if member else []) + ["--force"]
    return _patronictl(args, config).strip()


def remove_cluster(config=None):
    """
    Remove the cluster's keys from the DCS (``patronictl remove``: the leader,
    the members, the initialize key, the dynamic configuration), so that a
    member started on a restored data directory adopts it as a new cluster.
    Refuses while any member runs. Answers patronictl's two confirmations.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.remove_cluster
    """
    running = [m["name"] for m in members(config) if m["state"] in HEALTHY_STATES or m["state"] == "starting"]
    if running:
        raise CommandExecutionError(f"refusing to remove the cluster from the DCS: members still running: "
                                    f"{', '.join(running)} (stop Patroni on every member first)")
    scope = _scope(config)
    cmd = ["patronictl", "-c", _config(config), "remove", scope]
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="quiet",
                                  stdin=f"{scope}\nYes I am aware\n")
    if ret["retcode"] != 0:
        raise CommandExecutionError(
            f"patronictl remove {scope} failed (exit {ret['retcode']}): {(ret['stderr'] or ret['stdout']).strip()[-500:]}")
    return True


def pause(config=None):
    """
    Put the cluster in maintenance mode (no automatic failover).

    CLI Example:

    .. code-block:: bash

        salt-call patroni.pause
    """
    return _patronictl(["pause", "--wait"], config).strip()


def resume(config=None):
    """
    Leave maintenance mode.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.resume
    """
    return _patronictl(["resume", "--wait"], config).strip()


def show_config(config=None):
    """
    The dynamic configuration stored in the DCS.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.show_config
    """
    return salt.utils.yaml.safe_load(_patronictl(["show-config"], config)) or {}


def _rest(method, path, body=None, config=None):
    """One call of the member's REST API through the shared HTTP client
    (``_utils/ha_http.py``): https when the REST API has a certificate,
    verified against the CA of the Patroni config (``ctl.cacert`` or
    ``restapi.cafile``, as patronictl does), with ``ctl``'s client
    certificate when set."""
    conf = _read_config(config)
    restapi, ctl = conf["restapi"], conf.get("ctl") or {}
    url = f"{'https' if restapi.get('certfile') else 'http'}://{restapi['connect_address']}{path}"
    context = _http("ssl_context")(url, ctl.get("cacert") or restapi.get("cafile"),
                                               ctl.get("certfile"), ctl.get("keyfile"))
    auth = restapi.get("authentication")
    headers = None
    if auth:
        token = base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
        headers = {"Authorization": f"Basic {token}"}
    return _http("request")(method, url, body=body, headers=headers, timeout=10, context=context,
                                        label=f"Patroni REST API {method} {path}")


def edit_config(settings, config=None):
    """
    Merge ``settings`` (a dict, e.g. ``{"loop_wait": 5}``) into the dynamic
    configuration through the REST API (PATCH /config); returns the result.

    CLI Example:

    .. code-block:: bash

        salt-call patroni.edit_config '{"maximum_lag_on_failover": 1048576}'
    """
    if isinstance(settings, str):
        settings = json.loads(settings)
    return _rest("PATCH", "/config", settings, config)
