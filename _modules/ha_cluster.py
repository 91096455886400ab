"""
The health of the cluster's quorum services as one list of problems, and
the steps of a rolling reboot (``orch.rolling_reboot``): its plan (which
hosts, in which order, the Salt master's own host last), move the Patroni
leader off a host, reboot it, know it came back.

Each check runs where its tool is: Patroni's on a PostgreSQL member
(``patroni.cluster_status``), RabbitMQ's on a RabbitMQ node
(``rabbitmq_ha.health_problems``), etcd's on any host holding a client
certificate of the cluster CA (each member's ``/health``, through the shared
HTTP client). The orchestrate names the members the inventory expects.

CLI Example:

.. code-block:: bash

    salt-call ha_cluster.health postgres='[db1, db2, db3]' etcd='[https://10.83.0.11:2379]'
    salt-call ha_cluster.reboot
"""

import json
import logging
from collections.abc import Hashable, Mapping, Sequence
import os
import socket
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "ha_cluster"
log = logging.getLogger(__name__)

PATRONI_HEALTHY = {"running", "streaming"}
REBOOT_STATE = "/var/lib/airflow-ha/reboot.json"
REBOOT_UNIT = "airflow-ha-reboot"


def __virtual__():
    return __virtualname__


def _host():
    return (globals().get("__grains__") or {}).get("id") or socket.gethostname()


def _http(name):
    """A function of the shared HTTP client ``_utils/ha_http.py`` (``__utils__`` on a minion, else imported)."""
    utils = globals().get("__utils__") or {}
    if f"ha_http.{name}" in utils:
        return utils[f"ha_http.{name}"]
    from _utils import ha_http

    return getattr(ha_http, name)


def _list(value):
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value)


# ------------------------------------------------------------------ checks
def patroni_problems(members, max_lag_mb=16, status=None):
    """
    Why the Patroni cluster is not healthy (empty: healthy): no running
    leader, an expected member missing or not running/streaming, a replica
    lagging over ``max_lag_mb`` or of unknown lag.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.patroni_problems '[db1, db2, db3]'
    """
    status = status or __salt__["patroni.cluster_status"]()
    problems = []
    if not status.get("leader"):
        problems.append("Patroni: no running leader")
    by_name = {m["name"]: m for m in status.get("members") or []}
    for name in _list(members):
        member = by_name.get(name)
        if member is None:
            problems.append(f"Patroni: member {name} is not in the cluster")
        elif member["state"] not in PATRONI_HEALTHY:
            problems.append(f"Patroni: member {name} is {member['state'] or 'in no state'}")
        elif member["role"] != "leader" and (member["lag_mb"] is None or member["lag_mb"] > float(max_lag_mb)):
            lag = "unknown" if member["lag_mb"] is None else f"{member['lag_mb']} MB"
            problems.append(f"Patroni: replica {name} lags {lag} (over {max_lag_mb} MB)")
    return problems


def rabbitmq_problems(nodes):
    """
    Why the RabbitMQ cluster is not healthy (empty: healthy): an expected
    node not a member or not running, a partition, an alarm
    (``rabbitmq_ha.health_problems``).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.rabbitmq_problems '[rabbit@db1, rabbit@db2, rabbit@db3]'
    """
    return [f"RabbitMQ: {p}" for p in __salt__["rabbitmq_ha.health_problems"](_list(nodes))]


def etcd_problems(endpoints, ca_file=None, cert_file=None, key_file=None, timeout=5):
    """
    Why the etcd cluster is not healthy (empty: healthy): a member whose
    ``/health`` is not true (unreachable, or it sees no leader: no quorum).
    ``endpoints``: each member's client URL; over https the client
    certificate (``cert_file``/``key_file``) of the cluster CA (``ca_file``).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.etcd_problems '[https://10.83.0.11:2379]' ca_file=/etc/airflow-ha/pki/ca.crt \\
            cert_file=/etc/airflow-ha/pki/host.crt key_file=/etc/airflow-ha/pki/etcd.key
    """
    problems = []
    for url in _list(endpoints):
        url = url.rstrip("/")
        try:
            context = _http("ssl_context")(url, ca_file, cert_file, key_file)
            answer = _http("request")("GET", url + "/health", timeout=timeout, context=context,
                                      label=f"etcd member {url}")
        except (CommandExecutionError, OSError, ValueError) as exc:
            problems.append(f"etcd: {exc}")
            continue
        healthy = isinstance(answer, dict) and str(answer.get("health")).lower() == "true"
        if not healthy:
            problems.append(f"etcd: member {url} is not healthy: {answer}")
    return problems


def health(postgres=None, rabbitmq=None, etcd=None, max_lag_mb=16, ca_file=None, cert_file=None, key_file=None):
    """
    The health of the services asked for, checked from this host:
    ``{"healthy": bool, "problems": [...]}``. ``postgres``: the Patroni
    members expected; ``rabbitmq``: the RabbitMQ nodes (``rabbit@<host>``);
    ``etcd``: the members' client URLs (TLS files as ``etcd_problems``). A
    check that cannot run (tool missing, Patroni not answering) is a problem.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.health postgres='[db1, db2, db3]' rabbitmq='[rabbit@db1, rabbit@db2, rabbit@db3]'
    """
    checks = []
    if _list(postgres):
        checks.append(("Patroni", lambda: patroni_problems(postgres, max_lag_mb)))
    if _list(rabbitmq):
        checks.append(("RabbitMQ", lambda: rabbitmq_problems(rabbitmq)))
    if _list(etcd):
        checks.append(("etcd", lambda: etcd_problems(etcd, ca_file, cert_file, key_file)))
    problems = []
    for name, check in checks:
        try:
            problems += check()
        except (CommandExecutionError, KeyError) as exc:
            # KeyError: the execution module is not loaded here (its tool is missing)
            problems.append(f"{name}: cannot check from {_host()}: {exc}")
    return {"healthy": not problems, "problems": problems}


def check(postgres=None, rabbitmq=None, etcd=None, max_lag_mb=16, ca_file=None, cert_file=None, key_file=None):
    """
    ``health``, raising with every problem unless healthy: the precondition
    of a rolling reboot (nothing waited for).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.check postgres='[db1, db2, db3]'
    """
    report = health(postgres, rabbitmq, etcd, max_lag_mb, ca_file, cert_file, key_file)
    if report["problems"]:
        raise CommandExecutionError(f"cluster not healthy (seen from {_host()}): " + "; ".join(report["problems"]))
    return report


def wait_healthy(postgres=None, rabbitmq=None, etcd=None, max_lag_mb=16, ca_file=None, cert_file=None,
                 key_file=None, timeout=600, interval=5):
    """
    Wait until ``health`` has no problem; raise with the last problems after
    ``timeout`` seconds. Returns the report and the seconds waited.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.wait_healthy postgres='[db1, db2, db3]' timeout=600
    """
    started = time.monotonic()
    while True:
        report = health(postgres, rabbitmq, etcd, max_lag_mb, ca_file, cert_file, key_file)
        waited = round(time.monotonic() - started, 1)
        if report["healthy"]:
            return dict(report, waited_s=waited)
        if waited > float(timeout):
            raise CommandExecutionError(f"cluster not healthy after {timeout} s (seen from {_host()}): "
                                        + "; ".join(report["problems"]))
        time.sleep(float(interval))


def wait_units(units, timeout=300, interval=5):
    """
    Wait until every systemd unit of ``units`` is active; raise naming the
    host and the others after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.wait_units '[haproxy, keepalived]'
    """
    units = _list(units)
    started = time.monotonic()
    while True:
        inactive = [u for u in units if __salt__["cmd.run_all"](["systemctl", "is-active", "--quiet", u],
                                                                python_shell=False, ignore_retcode=True,
                                                                output_loglevel="quiet")["retcode"]]
        waited = round(time.monotonic() - started, 1)
        if not inactive:
            return {"units": units, "waited_s": waited}
        if waited > float(timeout):
            raise CommandExecutionError(f"{_host()}: {', '.join(inactive)} not active after {timeout} s "
                                        "(systemctl status; journalctl -u <unit>)")
        time.sleep(float(interval))


# ------------------------------------------------------------------ Patroni
def move_patroni_leader(member=None, max_lag_mb=16, wait=60):
    """
    When ``member`` (this minion by default) is the Patroni leader, switch
    over to a healthy replica (the synchronous standby first, then the
    least lagging; ``patroni.switchover``) and wait until it leads; nothing
    when ``member`` is no leader. Raises when no replica is fit or the
    switchover did not take.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.move_patroni_leader
    """
    member = member or _host()
    status = __salt__["patroni.cluster_status"]()
    leader = status.get("leader")
    if leader != member:
        return {"moved": False, "leader": leader}
    fit = [m for m in status.get("members") or [] if m["name"] != member and m["role"] != "leader"
           and m["state"] in PATRONI_HEALTHY and m["lag_mb"] is not None and m["lag_mb"] <= float(max_lag_mb)]
    if not fit:
        raise CommandExecutionError(f"{member} is the Patroni leader and no replica is fit to take over "
                                    f"(running, within {max_lag_mb} MB): {status.get('members')}")
    fit.sort(key=lambda m: (m["role"] != "sync_standby", m["lag_mb"], m["name"]))
    candidate = fit[0]["name"]
    started = time.monotonic()
    new = __salt__["patroni.switchover"](candidate=candidate, current_leader=member, wait=wait)
    if new != candidate:
        raise CommandExecutionError(f"switchover from {member} to {candidate} did not take within {wait} s "
                                    f"(leader now: {new})")
    return {"moved": True, "from": member, "to": candidate, "seconds": round(time.monotonic() - started, 1)}


# ------------------------------------------------------------------- plan


def reboot_plan(host_roles, quorum_roles, hosts=None, include_master=False, master_host="", host_ips=None,
                master_ips=()):
    """
    The hosts ``orch.rolling_reboot`` reboots, in order, as
    ``{'plan': [...], 'left_out': [...], 'master': NAME or '', 'errors': [...]}``
    (with errors nothing is rebooted). Rendered on the Salt master, which
    loads no custom module: the orchestrate calls this through
    ``salt/orch/module_call.py``; it reads nothing but its arguments.

    ``host_roles``: {inventory host: [roles]}; ``quorum_roles``: the roles
    whose members reboot last (etcd, PostgreSQL, RabbitMQ). ``hosts``
    (orchestrate pillar ``hosts``): None for every host, those without a
    quorum role first, then the quorum members, each group by name; else a
    list (or a comma-separated string) of inventory hosts, rebooted in that
    order ([]: none, the checks only). ``include_master``: with ``hosts``
    None, also reboot the Salt master's own host (else it is left out);
    a given list always includes it. Either way it goes last, since its
    reboot ends the run. That host is ``master_host`` (pillar
    ``master_host``, an inventory name) when given, else the first inventory
    host by name whose IP (``host_ips``: {host: ip}) is one of the master's
    own (``master_ips``, its ipv4 grain).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.reboot_plan '{af1: [scheduler], db1: [postgres]}' '[postgres]' hosts=db1,af1
    """
    errors = []
    master = str(master_host)
    if master and master not in host_roles:
        errors.append(f"orchestrate pillar master_host {json.dumps(master)} is no inventory host")
    if not master:
        master = next((host for host, ip in sorted((host_ips or {}).items())
                       if ip is not None and ip in (master_ips or [])), "")
    if isinstance(hosts, str):
        hosts = [h.strip() for h in hosts.split(",") if h.strip()]
    plan = []
    if hosts is None:
        quorum = {host for host, roles in host_roles.items() if set(roles or []) & set(quorum_roles)}
        plan = [h for h in sorted(host_roles) if h not in quorum] + sorted(quorum)
    elif isinstance(hosts, Sequence) and not isinstance(hosts, Mapping):
        for host in hosts:
            if not isinstance(host, Hashable) or host not in host_roles:
                errors.append(f"orchestrate pillar hosts: {json.dumps(host, sort_keys=True)} is no inventory host")
            elif host in plan:
                errors.append(f"orchestrate pillar hosts: {json.dumps(host)} is listed twice")
            else:
                plan.append(host)
        include_master = True
    else:
        errors.append(f"orchestrate pillar hosts is {json.dumps(hosts, sort_keys=True)}: "
                      "give a list of inventory hosts")
    left_out = []
    if master in plan:
        plan.remove(master)
        (plan if include_master else left_out).append(master)
    return {"plan": plan, "left_out": left_out, "master": master, "errors": errors}


# ------------------------------------------------------------------- reboot


def _read(path):
    with open(path) as f:
        return f.read()


def boot_marker():
    """
    What changes when this host boots: the kernel's boot id and the start
    time of PID 1 (a container shares its host's kernel, and so its boot id,
    but has its own init).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.boot_marker
    """
    boot_id = _read("/proc/sys/kernel/random/boot_id").strip()
    stat = _read("/proc/1/stat")
    # field 22 (starttime), counted after the command name in parentheses
    starttime = stat.rsplit(")", 1)[1].split()[19]
    return f"{boot_id}:{starttime}"


def reboot(delay=5, state_file=REBOOT_STATE):
    """
    Reboot this host in ``delay`` seconds (``systemd-run --on-active``:
    the job returns to the master first, and the reboot is systemd's, not
    a child of the minion), having noted its boot marker and the time in
    ``state_file`` for ``rebooted``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.reboot delay=5
    """
    delay = int(delay)
    os.makedirs(os.path.dirname(state_file), exist_ok=True)
    with open(state_file, "w") as f:
        json.dump({"marker": boot_marker(), "at": time.time()}, f)
    ret = __salt__["cmd.run_all"](["systemd-run", f"--unit={REBOOT_UNIT}", f"--on-active={delay}",
                                   "/bin/systemctl", "reboot"], python_shell=False, ignore_retcode=True)
    if ret["retcode"]:
        os.remove(state_file)
        raise CommandExecutionError(f"{_host()}: could not schedule the reboot: "
                                    f"{(ret['stderr'] or ret['stdout']).strip()[-300:]}")
    return {"host": _host(), "reboot_in_s": delay}


def rebooted(state_file=REBOOT_STATE, clear=False):
    """
    The host's reboot since ``reboot``: seconds since it was asked and the
    boot marker now; raises while the host has not rebooted yet (the
    orchestrate retries it until the host is back). ``clear``: forget the
    reboot (the last step of a host).

    CLI Example:

    .. code-block:: bash

        salt-call ha_cluster.rebooted
    """
    try:
        noted = json.loads(_read(state_file))
    except (OSError, ValueError) as exc:
        raise CommandExecutionError(f"{_host()}: no reboot noted ({state_file}: {exc}): run ha_cluster.reboot")
    marker = boot_marker()
    if marker == noted.get("marker"):
        raise CommandExecutionError(f"{_host()} has not rebooted yet (boot {marker})")
    seconds = round(time.time() - float(noted.get("at", 0)), 1)
    if clear:
        os.remove(state_file)
    return {"host": _host(), "rebooted": True, "seconds_since_reboot": seconds}
