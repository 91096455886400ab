"""
Checks of a host before the bring-up changes anything (``orch.preflight``,
the first step of ``orch.bringup``): each minion examines itself and returns
the problems it finds, each naming what was found and the fix.

- the clock is synchronized (``timedatectl``, else ``chronyc``); in a
  container the host keeps the clock, so no time daemon there is no problem
- free disk, RAM and CPUs against the largest minimums of the host's roles
- every inventory name resolves to its inventory IP here
- each of the host's roles' ports is free, or held by the service that
  should hold it (a second bring-up passes)
- the minion id is a host of the inventory

Inventory and port map are this minion's pillar (what its states use) unless
given; minimums come from the orchestrate (pillar ``orch:preflight``, the
defaults of ``salt/orch/defaults.yaml``).
"""

import fnmatch
import logging
import os
import re
import socket

from salt.exceptions import CommandExecutionError

__virtualname__ = "preflight"
log = logging.getLogger(__name__)

# The systemd units that may hold a port of each role (glob patterns of unit
# names; ``kernel``: a socket of no process, e.g. nfsd; ``init.scope``: a
# socket systemd itself holds for socket activation, e.g. epmd.socket).
# Every unit the role areas start for the role's ports is here.
_PGBOUNCER_UNITS = ("pgbouncer.service", "prometheus-pgbouncer-exporter.service", "pgbouncer_exporter.service")
ROLE_UNITS = {
    "all": ["ssh.service", "sshd.service", "prometheus-node-exporter.service", "node_exporter.service",
            "salt-master.service", "salt-minion.service", "salt-*.service"],
    "etcd": ["etcd.service"],
    "postgres": ["patroni.service", "prometheus-postgres-exporter.service", "postgres_exporter.service",
                 "pgbackrest.service"],
    "backup": ["pgbackrest.service"],
    "rabbitmq": ["rabbitmq-server.service", "epmd.service", "epmd.socket", "init.scope"],
    "haproxy": ["haproxy.service", "keepalived.service"],
    # every Airflow host: PgBouncer and its exporter (pillar airflow:pgbouncer)
    "webserver": ["airflow-webserver.service", *_PGBOUNCER_UNITS],
    "scheduler": ["airflow-scheduler.service", *_PGBOUNCER_UNITS],
    "dag_processor": ["airflow-dag-processor.service", *_PGBOUNCER_UNITS],
    "worker": ["airflow-worker.service", *_PGBOUNCER_UNITS],
    "triggerer": ["airflow-triggerer.service", *_PGBOUNCER_UNITS],
    "flower": ["airflow-flower.service", *_PGBOUNCER_UNITS],
    "nfs": ["nfs-server.service", "kernel"],
    "ftp": ["vsftpd.service"],
    "card_target": [],
    "ldap": ["slapd.service"],
    "logs": ["rsyslog.service", "syslog.socket"],
    "monitoring": ["prometheus.service", "prometheus-alertmanager.service", "alertmanager.service",
                   "grafana-server.service", "prometheus-blackbox-exporter.service", "blackbox_exporter.service",
                   "prometheus-statsd-exporter.service", "statsd_exporter.service"],
}
CONTAINER_VIRTUAL = ("container", "LXC", "lxc", "systemd-nspawn", "docker", "Docker")
DISK_PATHS = ("/var", "/opt")
_USER = re.compile(r'\("([^"]*)",pid=(\d+)')


def __virtual__():
    if not os.path.isdir("/proc/self"):
        return False, "preflight: needs Linux (/proc)"
    return __virtualname__


# ------------------------------------------------------------- what is here
def _run(cmd):
    return __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, output_loglevel="quiet")


def _which(name):
    for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        if os.access(os.path.join(folder, name), os.X_OK):
            return os.path.join(folder, name)
    return None


def _in_container():
    """Whether this host is a container (LXC, nspawn, docker): its grains, else systemd-detect-virt."""
    grains = globals().get("__grains__") or {}
    if grains.get("virtual") in CONTAINER_VIRTUAL or grains.get("virtual_subtype") in CONTAINER_VIRTUAL:
        return True
    if os.path.exists("/run/systemd/container") or os.path.exists("/.dockerenv"):
        return True
    if _which("systemd-detect-virt"):
        return _run(["systemd-detect-virt", "--container"])["retcode"] == 0
    return False


def _mem_total_mib():
    """RAM in MiB: MemTotal, or the cgroup's memory.max when lower (a container's limit)."""
    total = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit() and (total is None or int(limit) < total):
            total = int(limit)
    except OSError:
        pass
    return (total or 0) // (1024 * 1024)


def _cpus():
    """CPUs this host may use: the affinity set, lowered by a cgroup cpu.max quota."""
    cpus = len(os.sched_getaffinity(0))
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()
        if quota != "max":
            cpus = min(cpus, max(1, -(-int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return cpus


def _existing(path):
    while not os.path.exists(path) and path not in ("/", ""):
        path = os.path.dirname(path)
    return path or "/"


def _free_gib(path):
    """(filesystem key, free GiB for unprivileged writers) of the filesystem holding ``path``."""
    path = _existing(path)
    st = os.statvfs(path)
    return os.stat(path).st_dev, st.f_bavail * st.f_frsize / 1024 ** 3


def _resolve(name):
    """The addresses ``name`` resolves to here (empty: it does not resolve)."""
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)})
    except (socket.gaierror, UnicodeError):
        return []


def _hosts_file(name, path="/etc/hosts"):
    """The addresses /etc/hosts gives ``name`` (the lines the base role does not remove)."""
    found = []
    try:
        with open(path) as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) > 1 and name in fields[1:]:
                    found.append(fields[0])
    except OSError:
        pass
    return found


def _unit_of(pid):
    """The systemd unit (service, socket or scope) whose cgroup holds ``pid``; None when unknown."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            paths = [line.strip().split(":", 2)[-1] for line in f]
    except OSError:
        return None
    for path in paths:
        for part in reversed(path.split("/")):
            if part.endswith((".service", ".socket", ".scope")):
                return part
    return None


def _listeners():
    """{(port, proto): [(process, pid, unit)]} of the listening TCP and bound UDP sockets (``ss``)."""
    ret = _run(["ss", "-H", "-l", "-n", "-t", "-u", "-p"])
    if ret["retcode"]:
        raise CommandExecutionError(f"ss -Hlntup failed: {ret['stderr'].strip()[-300:]}: install iproute2")
    found = {}
    for line in ret["stdout"].splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] not in ("tcp", "udp"):
            continue
        local = fields[4]
        try:
            port = int(local.rsplit(":", 1)[1])
        except (IndexError, ValueError):
            continue
        holders = found.setdefault((port, fields[0]), [])
        users = _USER.findall(" ".join(fields[6:]))
        if not users:
            holders.append(("kernel", None, "kernel"))
        for process, pid in users:
            holders.append((process, int(pid), _unit_of(int(pid))))
    return found


# ------------------------------------------------------------------ checks
def check_clock():
    """
    Problems of the clock: not synchronized by NTP. In a container the host
    keeps the clock (no time daemon there is normal): nothing to report.

    CLI Example:

    .. code-block:: bash

        salt-call preflight.check_clock
    """
    if _in_container():
        return []
    fix = ("start a time daemon (`systemctl enable --now chrony`, the base role's; or systemd-timesyncd) "
           "and wait until it has synchronized")
    if _which("timedatectl"):
        ret = _run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        value = ret["stdout"].strip()
        if ret["retcode"] == 0 and value == "yes":
            return []
        if ret["retcode"] == 0 and value == "no":
            if _which("chronyc") and _chrony_synced():
                return []
            return [f"clock not synchronized (timedatectl NTPSynchronized=no): {fix}"]
    if _which("chronyc"):
        if _chrony_synced():
            return []
        return [f"clock not synchronized (chronyc tracking: no selected source): {fix}"]
    return [f"clock synchronization unknown (neither timedatectl nor chronyc answers): {fix}"]


def _chrony_synced():
    ret = _run(["chronyc", "-n", "tracking"])
    if ret["retcode"]:
        return False
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in ret["stdout"].splitlines() if ":" in line)}
    return fields.get("Leap status") == "Normal"


def _required(roles, minimums):
    """The largest minimum of each kind over ``all`` and ``roles``."""
    need = {}
    for role in ["all", *roles]:
        for kind, value in ((minimums or {}).get(role) or {}).items():
            need[kind] = max(need.get(kind, 0), float(value))
    return need


def check_resources(roles, minimums, disk_paths=DISK_PATHS):
    """
    Problems of RAM (``memory_mb``), CPUs (``cpus``) and free disk
    (``disk_gb`` on each filesystem of ``disk_paths``) against the largest
    minimum of ``roles`` (and ``all``) in ``minimums`` ({role: {kind: value}}).

    CLI Example:

    .. code-block:: bash

        salt-call preflight.check_resources '[postgres]' '{postgres: {memory_mb: 2048, cpus: 2, disk_gb: 20}}'
    """
    need = _required(roles, minimums)
    problems = []
    fix = "give the host more or lower pillar orch:preflight:minimums (production values: docs/operations.md)"
    if need.get("memory_mb"):
        have = _mem_total_mib()
        if have < need["memory_mb"]:
            problems.append(f"{have} MiB of RAM, roles {', '.join(roles)} need {need['memory_mb']:g} MiB: {fix}")
    if need.get("cpus"):
        have = _cpus()
        if have < need["cpus"]:
            problems.append(f"{have} CPUs, roles {', '.join(roles)} need {need['cpus']:g}: {fix}")
    if need.get("disk_gb"):
        seen = set()
        for path in disk_paths:
            dev, free = _free_gib(path)
            if dev in seen:
                continue
            seen.add(dev)
            if free < need["disk_gb"]:
                problems.append(f"{free:.1f} GiB free on the filesystem of {path}, roles {', '.join(roles)} need "
                                f"{need['disk_gb']:g} GiB: free space or {fix}")
    return problems


def check_names(hosts, minion_id=None, require_resolvable=False):
    """
    Problems of name resolution: an inventory name (``hosts``: {name: ip})
    that resolves here to other addresses than its inventory IP.

    Without ``require_resolvable`` (the default: the base role writes every
    inventory name into /etc/hosts, which the resolver reads before DNS), a
    name no resolver knows yet passes, and so does one only DNS answers
    differently (e.g. a lab bridge's dnsmasq); a line of /etc/hosts mapping
    it elsewhere does not (the base role adds lines, it removes none). With
    ``require_resolvable`` (sites whose DNS carries the names) each name must
    resolve to its inventory IP. The host's own name on loopback only
    (Debian's ``127.0.1.1 NAME``) passes: the base role adds its IP.

    CLI Example:

    .. code-block:: bash

        salt-call preflight.check_names '{db1: 10.83.0.11, db2: 10.83.0.12}'
    """
    problems = []
    for name, ip in sorted(hosts.items()):
        found = _resolve(name)
        if not found:
            if require_resolvable:
                problems.append(f"{name} does not resolve (inventory IP {ip}): add it to DNS or /etc/hosts")
            continue
        if ip in found:
            continue
        if name == minion_id and all(a.startswith("127.") or a == "::1" for a in found):
            continue
        stale = [a for a in _hosts_file(name) if a != ip]
        if stale:
            problems.append(f"{name} resolves to {', '.join(found)}, not its inventory IP {ip}: /etc/hosts maps it to "
                            f"{', '.join(stale)}: remove or fix that line (or the inventory)")
        elif require_resolvable:
            problems.append(f"{name} resolves to {', '.join(found)}, not its inventory IP {ip}: fix DNS or "
                            f"/etc/hosts (or the inventory)")
    return problems


def _ports_of(roles, ports, tls):
    """[(port, proto, role, purpose)] of the port map for ``roles`` (single ports; ranges and VRRP left out)."""
    out = []
    for rule in ports or []:
        if rule.get("role") not in ("all", *roles):
            continue
        if "tls" in rule and bool(rule["tls"]) != bool(tls):
            continue
        if rule.get("proto") not in ("tcp", "udp") or not str(rule.get("port")).isdigit():
            continue
        out.append((int(rule["port"]), rule["proto"], rule["role"], rule.get("purpose", "")))
    return out


def check_ports(roles, ports, tls=False):
    """
    Problems of the ports of ``roles`` in the port map ``ports`` (pillar
    ``ports`` as ``ha_inventory.port_map`` moves them; entries with ``tls``
    only with / without ``tls``): a port held by a process that is not one of
    the role's services (``ROLE_UNITS``). Free ports, and ports already held
    by their own service (a second bring-up), pass.

    CLI Example:

    .. code-block:: bash

        salt-call preflight.check_ports '[worker]' "$(salt-call --out=json pillar.get ports)"
    """
    wanted = _ports_of(roles, ports, tls)
    if not wanted:
        return []
    listening = _listeners()
    problems = []
    for port, proto, role, purpose in wanted:
        holders = listening.get((port, proto), [])
        allowed = ROLE_UNITS.get(role, []) + ROLE_UNITS["all"]
        if not holders or any(unit and any(fnmatch.fnmatch(unit, p) for p in allowed) for _, _, unit in holders):
            continue
        who = ", ".join(f"{proc} (pid {pid}, unit {unit or 'unknown'})" if pid else "the kernel"
                        for proc, pid, unit in holders)
        problems.append(f"port {port}/{proto} ({role}: {purpose}) is held by {who}, not by "
                        f"{' or '.join(ROLE_UNITS.get(role) or ['its service'])}: stop and disable that "
                        f"service (or move it to another port)")
    return problems


# ----------------------------------------------------------------- the run
def _pillar_hosts():
    inventory = __salt__["pillar.get"]("inventory", {}) or {}
    return {name: {"ip": (entry or {}).get("ip"), "roles": list((entry or {}).get("roles") or [])}
            for name, entry in (inventory.get("hosts") or {}).items()}


def problems(hosts=None, ports=None, minimums=None, tls=None, minion_id=None, require_resolvable=False,
             disk_paths=DISK_PATHS):
    """
    Every problem this host has before a bring-up (a list of strings; empty:
    ready). ``hosts`` ({name: {ip, roles}}), ``ports`` (the port map) and
    ``tls`` default to this minion's pillar; ``minimums`` ({role: {memory_mb,
    cpus, disk_gb}}) to none; ``minion_id`` to this minion's id.

    CLI Example:

    .. code-block:: bash

        salt-call preflight.problems
        salt-call preflight.problems minimums='{all: {memory_mb: 1024, cpus: 1, disk_gb: 2}}'
    """
    if hosts is None:
        hosts = _pillar_hosts()
    if ports is None:
        ports = __salt__["ha_inventory.port_map"](__salt__["pillar.get"]("ports", []), __pillar__)
    if tls is None:
        tls = __salt__["ha_inventory.tls_enabled"]()
    minion_id = minion_id or __grains__["id"]
    found = []
    if minion_id not in hosts:
        found.append(f"minion id {minion_id!r} is not a host of inventory:hosts ({', '.join(sorted(hosts))}): "
                     f"set /etc/salt/minion_id to its inventory name (and re-accept its key), or add the host")
        roles = []
    else:
        roles = hosts[minion_id].get("roles") or []
    for check in (check_clock,
                  lambda: check_resources(roles, minimums, disk_paths),
                  lambda: check_names({n: h.get("ip") for n, h in hosts.items()}, minion_id, require_resolvable),
                  lambda: check_ports(roles, ports, tls)):
        try:
            found += check()
        except CommandExecutionError as exc:
            found.append(str(exc))
    return found


def check(hosts=None, ports=None, minimums=None, tls=None, minion_id=None, require_resolvable=False,
          disk_paths=DISK_PATHS):
    """
    Raise (the orchestrate's step fails, naming this host) with every problem
    of :py:func:`problems`; True when there is none. The same arguments.

    CLI Example:

    .. code-block:: bash

        salt-call preflight.check
    """
    # named parameters, not **kwargs: a minion adds its __pub_* keys to a function that takes **kwargs
    found = problems(hosts=hosts, ports=ports, minimums=minimums, tls=tls, minion_id=minion_id,
                     require_resolvable=require_resolvable, disk_paths=disk_paths)
    if found:
        minion_id = minion_id or __grains__["id"]
        raise CommandExecutionError(f"preflight of {minion_id}: {len(found)} problem(s), nothing was changed:\n  - "
                                    + "\n  - ".join(f"{minion_id}: {p}" for p in found))
    return True
