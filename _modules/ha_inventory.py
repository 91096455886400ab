"""
Check and query the cluster inventory: the single source of truth for hosts,
IPs, roles and VIPs (pillar ``inventory``), the port map (pillar ``ports``)
and the secrets each host's roles need (pillar ``secrets``, filtered per host
by the map of pillar ``role_secrets``).

Every state tree render calls :py:func:`load`, so a bad inventory or a missing
secret fails the highstate and the orchestrate at render time, before any
state runs, with one message per problem naming the pillar key and the fix.

CLI Example:

.. code-block:: bash

    salt-call ha_inventory.validate
    salt-call ha_inventory.hosts role=etcd
    salt-call ha_inventory.firewall_rules
    salt-call ha_inventory.queue_hosts card
"""

import ipaddress
import os
import re
from collections.abc import Hashable

import yaml

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # a Python without Salt (the Vagrantfile's python3) uses the plain functions only
    class CommandExecutionError(Exception):
        """Salt's, where Salt is not installed (only the Salt-facing functions raise it)."""

__virtualname__ = "ha_inventory"

# role -> what it is; the SLS that implements it is given by ROLE_STATES.
KNOWN_ROLES = {
    "etcd": "etcd member (DCS for Patroni)",
    "postgres": "PostgreSQL managed by Patroni",
    "rabbitmq": "RabbitMQ cluster node",
    "haproxy": "HAProxy + keepalived (main VIP)",
    "scheduler": "Airflow scheduler",
    "webserver": "Airflow webserver (2.x) / api-server (3.x)",
    "dag_processor": "Airflow standalone DAG processor",
    "worker": "Airflow Celery worker",
    "flower": "Celery Flower",
    "triggerer": "Airflow triggerer",
    "nfs": "NFS DAG storage (primary/standby, NFS VIP)",
    "ftp": "vsftpd server",
    "card_target": "card-processing target host",
    "monitoring": "Prometheus, Alertmanager, Grafana",
    "backup": "pgBackRest repository (backups, WAL archive; not a PostgreSQL member)",
    "ldap": "OpenLDAP directory (slapd, LDAPS) of the Airflow logins",
    "logs": "central log host (rsyslog over mutually authenticated TLS: every host's syslog and journal)",
    "ca": "the cluster CA: holds the CA key and signs each host's certificate request under its signing policy",
}
REQUIRED_ROLES = (
    "etcd",
    "postgres",
    "rabbitmq",
    "haproxy",
    "scheduler",
    "webserver",
    "dag_processor",
    "worker",
)
# Consensus clusters: an even member count buys no extra fault tolerance and
# risks split votes; fewer than 3 cannot lose a member.
QUORUM_ROLES = ("etcd", "postgres", "rabbitmq")

# Which secrets each role's hosts hold and need: pillar/role_secrets.yaml, the
# one map (read_role_secrets; on a minion pillar ``role_secrets``), which the
# pillar filter (pillar/role_secrets.sls), the render's checks and
# tools/gen_secrets.py all read.
ROLE_SECRETS_FILE = "role_secrets.yaml"
# Passwords the seeds ship and the packages' well-known ones (compared without
# regard to case); refusing them keeps an example out of production.
KNOWN_DEFAULT_PASSWORDS = {"airflow_pass", "postgres", "111", "guest", "admin", "changeme", "password", "airflow",
                           "secret", "rabbitmq", "root", "letmein", "123456", "12345678", "grafana", "haproxy",
                           "changeit", "default", "test", "qwerty", "prom-operator"}
# Shortest value a required secret may have (tools/gen_secrets.py makes 32 or
# more); the VRRP password is at most 8 (keepalived truncates it), so 8 there.
MIN_SECRET_LENGTH = 16
# The JWT secret signs with HS512 (Airflow's choice for a shared secret), whose
# key should be the hash's 64 bytes (RFC 7518 3.2; PyJWT warns at every token).
MIN_SECRET_LENGTHS = {"keepalived:auth_pass": 8, "airflow:jwt_secret": 64}
# Secrets that are not passwords but keys of a known shape (checked by their
# shape, not by length) and public halves that may repeat elsewhere.
SSH_PRIVATE_KEYS = ("card:ssh_private_key", "card:host_private_key", "pgbackrest:ssh_private_key")
SSH_PUBLIC_KEYS = ("card:ssh_public_key", "card:host_public_key", "pgbackrest:ssh_public_key")
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Worker pools (issue 20): a worker host's inventory key ``queues`` lists the
# Celery queues its worker consumes (`airflow celery worker -q`); without it,
# [DEFAULT_QUEUE]. DEFAULT_QUEUE is what airflow.cfg's [operators]
# default_queue says (salt/airflow/map.jinja writes it from here): the queue of
# every task that names none. REQUIRED_QUEUES: the queues some task of the
# shipped DAGs uses (salt/dags/; a test keeps them in step), each of which
# some worker host must serve, or its tasks would wait queued for ever.
DEFAULT_QUEUE = "default"
CARD_QUEUE = "card"
REQUIRED_QUEUES = {
    DEFAULT_QUEUE: "every task that names no queue ([operators] default_queue)",
    CARD_QUEUE: "the card_processing DAG's tasks (salt/dags/card_processing.py), the only workers the card target admits",
}
QUEUE_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
# Autoscaling on queue depth (issue 20): a worker host with ``standby: true``
# is provisioned but its Celery worker unit is left stopped by the highstate;
# Alertmanager's webhook (salt-api) and the reactor salt/reactor/autoscale.sls
# start it on a backlog (alert CeleryBacklogHigh, label autoscale: up) and
# drain and stop it when idle (CeleryBacklogIdle, autoscale: down), through
# orch.autoscale (pillar ``action``). AUTOSCALE_TOKEN_FILE: the webhook's
# shared secret (pillar secrets:autoscale:webhook_token) on the master's host
# (role ca), root 0600, which the reactor compares the request's bearer token with.
AUTOSCALE_ALERTS = {"CeleryBacklogHigh": "up", "CeleryBacklogIdle": "down"}
AUTOSCALE_HOOK = "airflow-ha/autoscale"
AUTOSCALE_TAG = "salt/netapi/hook/" + AUTOSCALE_HOOK
AUTOSCALE_TOKEN_FILE = "/etc/salt/airflow-ha/autoscale-webhook.token"
SECRETS_FIX = "run `make secrets` (tools/gen_secrets.py) or set it in your secrets pillar"
# With pillar tls:enabled, what every host needs from pillar: the CA certificate
# (shared secrets file); each host makes its own key and asks the CA host
# (role ca) for its certificate (salt/pki).
# TLS is on unless pillar tls:enabled says otherwise (the default of
# salt/pki/defaults.yaml `enabled`, which a test keeps equal to this).
TLS_ENABLED_DEFAULT = True
REQUIRED_TLS_SHARED = ("ca_cert",)
TLS_FIX = ("run `make secrets` (tools/gen_secrets.py makes the CA and the hosts' signing policies, tls/ca.sls) "
           "or set it in pillar")
# x509_v2 signing policy of a host's certificate (tools/gen_tls.py writes them, salt/pki requests under them)
SIGNING_POLICY_PREFIX = "airflow_ha_"


def __virtual__():
    return __virtualname__


# ------------------------------------------- plain functions (no Salt needed)
# The tools and tests of a checkout import this module (``_modules.ha_inventory``)
# and read the inventory, the port map and the TLS switch through these
# functions, as pillar/inventory.sls and pillar/ports.sls give them to Salt.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def inventory_file(topology, root=None):
    """pillar/inventory/<topology>.yaml of the checkout ``root`` (default: this module's)."""
    return os.path.join(root or REPO_ROOT, "pillar", "inventory", f"{topology}.yaml")


def topologies(root=None):
    """The topology names of pillar/inventory, sorted."""
    inv_dir = os.path.dirname(inventory_file("x", root))
    return sorted(f[:-5] for f in os.listdir(inv_dir) if f.endswith(".yaml"))


def read_inventory(topology="full", path=None, root=None):
    """
    The inventory as pillar gets it (pillar/inventory.sls imports the same
    file): ``path`` if given, else pillar/inventory/<topology>.yaml. The one
    loader of the tools (render, roster, gen_tls, the lab) and the tests.
    """
    with open(path or inventory_file(topology, root)) as f:
        return yaml.safe_load(f) or {}


def read_ports(root=None):
    """The port map of pillar/ports.sls (plain YAML: ``ports`` of that file)."""
    with open(os.path.join(root or REPO_ROOT, "pillar", "ports.sls")) as f:
        return (yaml.safe_load(f) or {})["ports"]


def read_role_secrets(root=None):
    """pillar/role_secrets.yaml of the checkout ``root``: which secrets each role's hosts hold (the map
    pillar/role_secrets.sls filters the secrets file with and gives every minion as pillar ``role_secrets``)."""
    with open(os.path.join(root or REPO_ROOT, "pillar", ROLE_SECRETS_FILE)) as f:
        return yaml.safe_load(f) or {}


def _needs(role_secrets):
    needs = role_secrets.get("needs") if isinstance(role_secrets, dict) else None
    return [n for n in needs if isinstance(n, dict)] if isinstance(needs, list) else []


def _roles_of(entry):
    roles = entry.get("roles") if isinstance(entry, dict) else None
    return list(roles) if isinstance(roles, list) else []


def _present_roles(inventory):
    return {role for entry in ((inventory or {}).get("hosts") or {}).values() for role in _roles_of(entry)}


def _select_secrets(role_secrets, held, present, optional):
    """``{path: role}`` of the map's entries that a role in ``held`` reads (each path with the first such
    role of its entry), those tied to a role ``with_role`` only when ``present`` has it, the ``optional``
    ones only when asked."""
    found = {}
    for need in _needs(role_secrets):
        roles = [role for role in need.get("roles") or [] if role in held]
        if not roles or (need.get("with_role") and need["with_role"] not in present) \
                or (need.get("optional") and not optional):
            continue
        for path in need.get("secrets") or []:
            found.setdefault(path, roles[0])
    return found


def host_secrets(inventory, host, role_secrets, optional=False):
    """
    ``{path: role}``: the secrets (colon paths under pillar ``secrets``) that
    host ``host`` of ``inventory`` holds by the map ``role_secrets``, each
    with the first of its roles that reads it; the site's own ``optional``
    ones too when asked. The same selection as pillar/role_secrets.sls, which
    gives the host these keys of the secrets file and no other (a test keeps
    the two equal). Nothing for a name the inventory lacks: the master's own
    id, whose orchestrate reads no secret.
    """
    mine = _roles_of(((inventory or {}).get("hosts") or {}).get(host))
    return _select_secrets(role_secrets, mine, _present_roles(inventory), optional)


def cluster_secrets(inventory, role_secrets):
    """``{path: role}``: the secrets some host of ``inventory`` needs (what its secrets file must hold: the
    union of :py:func:`host_secrets` over its hosts), each with the first role of the map that reads it."""
    present = _present_roles(inventory)
    return _select_secrets(role_secrets, present, present, optional=False)


def map_secrets(role_secrets, optional=False):
    """Every secret the map names (the ``optional`` ones only when asked), in the map's order: what
    `make secrets` makes, whatever the topology."""
    found = {}
    for need in _needs(role_secrets):
        if optional or not need.get("optional"):
            found.update(dict.fromkeys(need.get("secrets") or []))
    return list(found)


def tls_on(tls):
    """
    The TLS switch: pillar ``tls:enabled`` (``tls`` is pillar ``tls``),
    TLS_ENABLED_DEFAULT when unset or when ``tls`` is no mapping, read exactly
    as Salt's ``to_bool`` Jinja filter reads it (strings yes/1/true, integers
    > 0, a float false). Everything that asks whether TLS is on calls this
    (salt/pki/map.jinja through :py:func:`tls_enabled`, the validation,
    tools/lab) or, where custom modules do not load (salt/orch/map.jinja
    renders on the master), reads it with ``to_bool`` the same way; a test
    renders both.
    """
    value = tls.get("enabled", TLS_ENABLED_DEFAULT) if isinstance(tls, dict) else TLS_ENABLED_DEFAULT
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() in ("yes", "1", "true")
    if isinstance(value, int):
        return value > 0
    # to_bool's rest: a collection is true when not empty, any other value (a float) false
    return not isinstance(value, Hashable) and len(value) > 0


# ---------------------------------------------------------------- pure checks


def _get(data, path):
    for part in path.split(":"):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _network_of(inventory, name, host):
    """The host's subnet: its own ``network``/``prefix`` or the inventory's."""
    ip = host.get("ip")
    prefix = host.get("prefix")
    if prefix is not None:
        return ipaddress.ip_interface(f"{ip}/{prefix}").network
    return ipaddress.ip_network(inventory.get("network"), strict=False)


def _check_hosts(inventory, errors):
    hosts = inventory.get("hosts")
    if not isinstance(hosts, dict) or not hosts:
        errors.append("inventory:hosts is empty or missing: list every host with its ip and roles")
        return {}
    network = inventory.get("network")
    try:
        ipaddress.ip_network(network, strict=False)
    except (TypeError, ValueError):
        errors.append(f"inventory:network {network!r} is not a CIDR network: set it, e.g. 192.168.83.0/24")
        network = None
    seen_ips, seen_names, valid = {}, {}, {}
    for name, host in hosts.items():
        key = f"inventory:hosts:{name}"
        if not HOSTNAME_RE.match(str(name)):
            errors.append(f"{key}: {name!r} is not a valid lower-case hostname: rename the host")
        if str(name).lower() in seen_names:
            errors.append(f"{key}: hostname duplicates {seen_names[str(name).lower()]!r}: give each host its own name")
        seen_names[str(name).lower()] = name
        if not isinstance(host, dict):
            errors.append(f"{key} must be a mapping with ip and roles")
            continue
        try:
            ip = ipaddress.ip_address(host.get("ip"))
        except (TypeError, ValueError):
            errors.append(f"{key}:ip {host.get('ip')!r} is not an IP address: set the host's address")
            continue
        if str(ip) in seen_ips:
            errors.append(
                f"{key}:ip {ip} is also the address of {seen_ips[str(ip)]!r}: give each host its own address"
            )
        seen_ips[str(ip)] = name
        roles = host.get("roles")
        if not isinstance(roles, list):
            errors.append(f"{key}:roles must be a list of roles (may be empty): known roles are {', '.join(KNOWN_ROLES)}")
            roles = []
        for role in roles:
            if role not in KNOWN_ROLES:
                errors.append(
                    f"{key}:roles: unknown role {role!r}: use one of {', '.join(KNOWN_ROLES)}"
                )
        if network is not None:
            subnet = _network_of(inventory, name, host)
            if ip not in subnet:
                errors.append(f"{key}:ip {ip} is outside inventory:network {subnet}: fix the address or set the host's prefix")
            else:
                _check_address(f"{key}:ip", ip, subnet, errors, "the host's")
        valid[name] = host
    return valid


def address_problem(ip, subnet):
    """
    Why ``ip`` (an ipaddress address inside ``subnet``) cannot be a host's or
    a VIP's address there, or None: loopback, multicast, unspecified (or
    0.0.0.0/8), link-local, reserved, or the subnet's network or broadcast
    address (IPv6: its Subnet-Router anycast address; a /31 or /32, /127 or
    /128 has neither). A plain function.
    """
    kinds = (("is_loopback", "a loopback address"), ("is_multicast", "a multicast address"),
             ("is_unspecified", "the unspecified address"), ("is_link_local", "a link-local address"),
             ("is_reserved", "a reserved address"))
    for attribute, what in kinds:
        if getattr(ip, attribute):
            return f"is {what}"
    if ip.version == 4 and ip in ipaddress.ip_network("0.0.0.0/8"):
        return "is in 0.0.0.0/8 (\"this network\", a source address only)"
    if subnet.num_addresses > 2:
        if ip == subnet.network_address:
            return f"is the network address of {subnet}"
        if ip.version == 4 and ip == subnet.broadcast_address:
            return f"is the broadcast address of {subnet}"
    return None


def _check_address(key, ip, subnet, errors, what):
    """An error naming ``key`` when ``ip`` cannot be ``what`` ("the host's", "an unused") address on ``subnet``."""
    problem = address_problem(ip, subnet)
    if problem:
        last = subnet.broadcast_address - 1 if ip.version == 4 else subnet.broadcast_address
        usable = f", from {subnet.network_address + 1} to {last}" if subnet.num_addresses > 2 else ""
        errors.append(f"{key} {ip} {problem}: set {what} address on its network ({subnet}{usable})")


def _check_roles(hosts, errors):
    members = {role: sorted(n for n, h in hosts.items() if role in (h.get("roles") or [])) for role in KNOWN_ROLES}
    for role in REQUIRED_ROLES:
        if not members[role]:
            errors.append(
                f"inventory:hosts: role {role!r} ({KNOWN_ROLES[role]}) has no host: add {role!r} to the roles of at least one host"
            )
    if len(members["backup"]) > 1:
        errors.append(
            f"inventory:hosts: role 'backup' has {len(members['backup'])} hosts ({', '.join(members['backup'])}); "
            "pgBackRest's repository is one host: keep 'backup' on one of them")
    for name in sorted(set(members["backup"]) & set(members["postgres"])):
        errors.append(
            f"inventory:hosts:{name}:roles: a host cannot be both 'backup' and 'postgres': the repository on a "
            "member would be lost with it; give 'backup' to a host without 'postgres'")
    for role in QUORUM_ROLES:
        count = len(members[role])
        if count and (count < 3 or count % 2 == 0):
            errors.append(
                f"inventory:hosts: role {role!r} has {count} hosts ({', '.join(members[role])}); "
                f"a {role} cluster needs an odd number of members, at least 3: add or remove one host's {role!r} role"
            )
    return members


def host_queues(entry):
    """
    The Celery queues an inventory host entry's worker consumes: its
    ``queues``, else ``[DEFAULT_QUEUE]``; ``[]`` for a host without role
    ``worker``. A plain function (the entry as validated).
    """
    if "worker" not in _roles_of(entry):
        return []
    queues = entry.get("queues")
    return list(queues) if isinstance(queues, list) and queues else [DEFAULT_QUEUE]


def queue_members(inventory):
    """``{queue: sorted worker host names serving it}`` of ``inventory`` (each required queue listed, maybe
    empty). A plain function."""
    members = {queue: [] for queue in REQUIRED_QUEUES}
    for name, entry in sorted(((inventory or {}).get("hosts") or {}).items()):
        for queue in host_queues(entry):
            members.setdefault(queue, []).append(name)
    return members


def _check_queues(hosts, members, errors):
    """Each host's ``queues`` (worker pools): a non-empty list of queue names, on worker hosts only; every
    queue of REQUIRED_QUEUES served by at least one worker host."""
    fix = "e.g. queues: [default, card]; leave it out for [default]"
    bad = False
    for name, host in hosts.items():
        if "queues" not in host:
            continue
        key = f"inventory:hosts:{name}:queues"
        queues = host["queues"]
        if "worker" not in (host.get("roles") or []):
            errors.append(f"{key} is set but {name} has no role 'worker' (only a Celery worker consumes queues): "
                          f"remove {name}'s queues or give it the worker role")
            bad = True
            continue
        if not isinstance(queues, list) or not queues:
            errors.append(f"{key} is {queues!r}: give a non-empty list of Celery queue names ({fix})")
            bad = True
            continue
        for queue in queues:
            if not isinstance(queue, str) or not QUEUE_RE.match(queue):
                errors.append(f"{key}: {queue!r} is not a queue name: use lower-case letters, digits, '_' and '-', "
                              f"beginning with a letter ({QUEUE_RE.pattern})")
                bad = True
            elif queues.count(queue) > 1:
                errors.append(f"{key} lists {queue!r} {queues.count(queue)} times: list each queue once")
                bad = True
                break
    if bad or not members.get("worker"):
        return
    served = queue_members({"hosts": hosts})
    for queue, what in REQUIRED_QUEUES.items():
        if not served.get(queue):
            errors.append(f"inventory:hosts: queue {queue!r} ({what}) is served by no worker host: add {queue!r} to "
                          f"inventory:hosts:<name>:queues of at least one worker host "
                          f"({', '.join(members['worker'])}), e.g. queues: [{DEFAULT_QUEUE}, {CARD_QUEUE}]")


def _check_standby(hosts, members, errors):
    """``standby``: true or false, on worker hosts only; every required queue served by a host that is no
    standby (a stopped standby worker serves nothing until the backlog starts it)."""
    bad = False
    for name, host in hosts.items():
        if "standby" not in host:
            continue
        key = f"inventory:hosts:{name}:standby"
        if not isinstance(host["standby"], bool):
            errors.append(f"{key} is {host['standby']!r}: use true (the highstate leaves its Celery worker stopped, "
                          f"the autoscaling starts it on a backlog) or false, or leave it out")
            bad = True
        elif host["standby"] and "worker" not in (host.get("roles") or []):
            errors.append(f"{key} is true but {name} has no role 'worker' (only a Celery worker is started on a "
                          f"backlog): remove {name}'s standby or give it the worker role")
            bad = True
    if bad or not members.get("worker"):
        return
    active = {n: h for n, h in hosts.items() if h.get("standby") is not True}
    served = queue_members({"hosts": active})
    for queue, what in REQUIRED_QUEUES.items():
        if not served.get(queue) and queue_members({"hosts": hosts}).get(queue):
            only = ", ".join(queue_members({"hosts": hosts})[queue])
            errors.append(f"inventory:hosts: queue {queue!r} ({what}) is served only by standby hosts ({only}), "
                          f"whose workers are stopped until a backlog: set inventory:hosts:<name>:standby false on "
                          f"one of them, or add {queue!r} to the queues of a worker host that is no standby")


def standby_members(inventory):
    """Sorted names of the worker hosts of ``inventory`` with ``standby: true`` (their Celery worker left
    stopped by the highstate, started and stopped by the autoscaling). A plain function."""
    return sorted(n for n, h in ((inventory or {}).get("hosts") or {}).items()
                  if isinstance(h, dict) and h.get("standby") is True and "worker" in _roles_of(h))


def _bearer(headers):
    """The bearer token of an HTTP request's ``headers`` (any case of the name), or None."""
    for name, value in (headers or {}).items() if isinstance(headers, dict) else ():
        if str(name).lower() == "authorization" and isinstance(value, str):
            kind, _, token = value.strip().partition(" ")
            if kind.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def autoscale_request(data, token):
    """
    What the autoscale webhook's event ``data`` (salt-api's rest_cherrypy
    ``/hook``: ``headers``, ``post`` the parsed body) asks for:
    ``{"action": "up"|"down"|None, "reason": str, "alerts": [names]}``.
    An action only when the request carries ``Authorization: Bearer
    <token>`` (compared in constant time; ``token`` the shared secret, None
    or empty refuses everything) and its body is an Alertmanager webhook
    payload (version 4) of a firing group whose firing alerts are all ours
    (AUTOSCALE_ALERTS) with a matching ``autoscale`` label, of one action.
    A resolved notification, another alert, a mix of up and down: no action,
    the reason says why. A plain function: the reactor calls it on the master.
    """
    import hmac

    def refuse(reason):
        return {"action": None, "reason": reason, "alerts": []}

    data = data if isinstance(data, dict) else {}
    given = _bearer(data.get("headers"))
    if not token or not str(token).strip():
        return refuse(f"no webhook token on the master ({AUTOSCALE_TOKEN_FILE}, from pillar "
                      "secrets:autoscale:webhook_token): run the highstate of the ca host")
    if given is None:
        return refuse("the request has no 'Authorization: Bearer' header")
    if not hmac.compare_digest(given.encode(), str(token).strip().encode()):
        return refuse("the request's bearer token is not the webhook token")
    post = data.get("post")
    if not isinstance(post, dict) or str(post.get("version")) != "4" or not isinstance(post.get("alerts"), list):
        return refuse("the body is not an Alertmanager webhook payload (version 4 with alerts)")
    if post.get("status") != "firing":
        return refuse(f"the alert group is {post.get('status')!r}, not firing: nothing to do")
    firing = [a for a in post["alerts"] if isinstance(a, dict) and a.get("status") == "firing"]
    if not firing:
        return refuse("no alert of the payload is firing")
    actions, names = set(), []
    for alert in firing:
        labels = alert.get("labels") if isinstance(alert.get("labels"), dict) else {}
        name, wanted = labels.get("alertname"), AUTOSCALE_ALERTS.get(labels.get("alertname"))
        if wanted is None or labels.get("autoscale") != wanted:
            return refuse(f"alert {name!r} (autoscale={labels.get('autoscale')!r}) is not an autoscale alert "
                          f"({', '.join(f'{k} autoscale={v}' for k, v in AUTOSCALE_ALERTS.items())})")
        actions.add(wanted)
        names.append(name)
    if len(actions) != 1:
        return refuse(f"the payload asks for both {' and '.join(sorted(actions))}: nothing done")
    action = actions.pop()
    return {"action": action, "reason": f"{', '.join(sorted(set(names)))} firing: scale {action}",
            "alerts": sorted(set(names))}


def _check_vips(inventory, hosts, members, errors):
    vips = inventory.get("vips") or {}
    if "main" not in vips:
        errors.append("inventory:vips:main is missing: set the main VIP (ip, hostname, role: haproxy)")
    host_ips = {str(h.get("ip")): n for n, h in hosts.items()}
    seen = {}
    for vname, vip in vips.items():
        key = f"inventory:vips:{vname}"
        if not isinstance(vip, dict):
            errors.append(f"{key} must be a mapping with ip, hostname and role")
            continue
        try:
            ip = ipaddress.ip_address(vip.get("ip"))
        except (TypeError, ValueError):
            errors.append(f"{key}:ip {vip.get('ip')!r} is not an IP address: set the VIP's address")
            continue
        if str(ip) in host_ips:
            errors.append(f"{key}:ip {ip} is the address of host {host_ips[str(ip)]!r}: a VIP needs an unused address")
        if str(ip) in seen:
            errors.append(f"{key}:ip {ip} is also inventory:vips:{seen[str(ip)]}: give each VIP its own address")
        seen[str(ip)] = vname
        role = vip.get("role")
        if role not in KNOWN_ROLES:
            errors.append(f"{key}:role {role!r} is not a known role: name the role whose hosts hold the VIP")
            continue
        if not members[role]:
            errors.append(f"{key}:role {role!r} has no host: add {role!r} to at least one host or remove the VIP")
            continue
        for subnet in sorted({_network_of(inventory, n, hosts[n]) for n in members[role]}, key=str):
            if ip in subnet:
                _check_address(f"{key}:ip", ip, subnet, errors, "an unused")
        outside = [n for n in members[role] if ip not in _network_of(inventory, n, hosts[n])]
        if len(outside) == len(members[role]) or not any(ip in _network_of(inventory, n, h) for n, h in hosts.items()):
            errors.append(
                f"{key}:ip {ip} is inside no host's subnet: pick an address in the subnet of the {role!r} hosts"
            )
        elif outside:
            errors.append(
                f"{key}:ip {ip} is outside the subnet of {', '.join(outside)} ({role!r} hosts): "
                "keepalived can only move a VIP between hosts of one subnet"
            )
    names = {str(n).lower() for n in hosts}
    for vname, vip in vips.items():
        if isinstance(vip, dict) and str(vip.get("hostname", "")).lower() in names:
            errors.append(
                f"inventory:vips:{vname}:hostname {vip.get('hostname')!r} is also a host's name: give the VIP its own name"
            )


DAG_DISTRIBUTIONS = ("nfs", "salt", "git")


def _check_dags(inventory, members, errors):
    method = (inventory.get("dags") or {}).get("distribution")
    if method is None:
        return
    if method not in DAG_DISTRIBUTIONS:
        errors.append(f"inventory:dags:distribution {method!r} is unknown: use one of {', '.join(DAG_DISTRIBUTIONS)}")
    elif method == "nfs" and (not members["nfs"] or "nfs" not in (inventory.get("vips") or {})):
        errors.append("inventory:dags:distribution is 'nfs' but there is no nfs host or inventory:vips:nfs: "
                      "add them, or distribute DAGs with 'salt' or 'git'")


def _check_ports(ports, errors):
    for i, rule in enumerate(ports or []):
        key = f"ports:{i}"
        if not isinstance(rule, dict):
            errors.append(f"{key} must be a mapping (role, port, proto, from_roles)")
            continue
        for role in [rule.get("role")] + list(rule.get("from_roles") or []) + list(rule.get("except_roles") or []):
            if role != "all" and role not in KNOWN_ROLES:
                errors.append(f"{key} ({rule.get('purpose', rule.get('port'))}): unknown role {role!r}: use one of all, {', '.join(KNOWN_ROLES)}")
        for queue in rule.get("from_queues") or []:
            if not isinstance(queue, str) or not QUEUE_RE.match(queue):
                errors.append(f"{key}:from_queues: {queue!r} is not a queue name ({QUEUE_RE.pattern}): fix the entry")
        if "tls" in rule and not isinstance(rule["tls"], bool):
            errors.append(f"{key}:tls must be true or false (the entry holds only with / without tls:enabled)")
        for net in rule.get("from_networks") or []:
            try:
                if net != "admin":
                    ipaddress.ip_network(net, strict=False)
            except ValueError:
                errors.append(f"{key}:from_networks: {net!r} is not a CIDR network nor 'admin': fix the entry")


def _port_settings(rule, pillar):
    """{key: value} of the entry's ``keys`` that pillar sets."""
    found = {key: _get(pillar or {}, key) for key in rule.get("keys") or []}
    return {key: value for key, value in found.items() if value is not None}


def port_setting_errors(pillar, ports):
    """
    Pillar settings that name a port (port map ``keys``, e.g.
    ``etcd:client_port``) that the firewall or the scrape targets cannot
    follow: a ``scraped`` entry's port moved (the Prometheus targets stay on
    the map's port), or two settings of one entry set to different ports (the
    client would connect where the server does not listen). A setting left
    unset keeps its area's default (the map's port): pointing a client
    elsewhere on purpose (tests point Airflow straight at PostgreSQL) stays
    possible.
    """
    errors = []
    for rule in ports or []:
        if not isinstance(rule, dict):
            continue
        settings = _port_settings(rule, pillar)
        where = f"pillar/ports.sls: role {rule.get('role')}, port {rule.get('port')}"
        if rule.get("scraped"):
            for key, value in settings.items():
                if str(value) != str(rule.get("port")):
                    errors.append(
                        f"{key} {value} differs from the port map ({where}), which the Prometheus scrape targets "
                        f"follow: remove {key} from pillar (moving a scraped port needs ha_monitoring.EXPORTERS too)")
        elif len({str(v) for v in settings.values()}) > 1:
            given = ", ".join(f"{k} {v}" for k, v in settings.items())
            errors.append(f"{given}: the settings of one port ({where}) must agree: set all of "
                          f"{', '.join(rule['keys'])} to the same port")
    return errors


def port_map(ports, pillar):
    """The port map with each entry's port as pillar's ``keys`` settings move
    it (see :py:func:`port_setting_errors` for what is refused)."""
    out = []
    for rule in ports or []:
        settings = _port_settings(rule, pillar) if isinstance(rule, dict) else {}
        out.append(dict(rule, port=next(iter(settings.values()))) if settings else rule)
    return out


def secret_problem(path, value):
    """
    What is wrong with the value of the required secret ``secrets:<path>``, or
    None when it is acceptable: missing or empty (blank), a well-known default
    (KNOWN_DEFAULT_PASSWORDS, any case), shorter than MIN_SECRET_LENGTH
    (MIN_SECRET_LENGTHS), one character repeated, or for SSH keys not of a
    key's shape. tools/gen_secrets.py replaces a value this refuses, so
    `make secrets` is always the fix. A plain function.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return "is missing or empty"
    if isinstance(value, (dict, list, bool)):
        return f"must be a string, not {type(value).__name__}"
    text = str(value)
    if path in SSH_PRIVATE_KEYS:
        return None if re.search(r"-----BEGIN [A-Z ]*PRIVATE KEY-----", text) else "is not an SSH private key (PEM)"
    if path in SSH_PUBLIC_KEYS:
        return None if re.match(r"^(ssh-|ecdsa-)\S+ [A-Za-z0-9+/=]{16,}", text.strip()) else \
            "is not an SSH public key (ssh-ed25519 AAAA...)"
    if text.strip().lower() in KNOWN_DEFAULT_PASSWORDS:
        return "is a well-known default password"
    minimum = MIN_SECRET_LENGTHS.get(path, MIN_SECRET_LENGTH)
    if len(text) < minimum:
        return f"is too short ({len(text)} characters, at least {minimum})"
    if len(set(text)) == 1:
        return "is one character repeated"
    return secret_character_problem(path, text) or weak_password_problem(path, text)


# ------------------------------------------ typed-in values (issue 17)
# What a secret may hold is what its consumers can carry. Each one escapes
# what its format allows (URLs quoted by airflow_ha.db_url/broker_url/conn_uri,
# YAML and JSON by `| json`, env files double-quoted by airflow_ha.env_quote,
# HAProxy's single quotes, pgpass by Patroni, SQL by Salt's postgres module,
# slapd/PAM/PgBouncer get hashes); these refuse only what a consumer cannot
# carry at all. Every password must be printable ASCII: the files it goes
# into are line-based, and systemd, JSON and HTTP basic auth each treat other
# characters their own way.
PRINTABLE_ASCII = re.compile(r"^[\x20-\x7e]*$")
_EDGE_SPACE = re.compile(r"^\s|\s$")


def _character_rules():
    """secret path -> [(pattern, why)]: what its consumer cannot carry, no escape existing."""
    rabbitmqctl = (_EDGE_SPACE, "begins or ends with a space, which rabbitmqctl strips from the password it reads "
                                "on standard input")
    # os.path.expandvars and expanduser run on every setting Airflow reads (env and airflow.cfg)
    airflow = (re.compile(r"\$|^~"), "holds '$' or begins with '~', which Airflow expands in every setting it reads "
                                     "($NAME, ${NAME}, ~user: no escape exists)")
    return {
        "rabbitmq:admin_password": [rabbitmqctl],
        "rabbitmq:airflow_password": [rabbitmqctl],
        "airflow:secret_key": [airflow],
        "airflow:jwt_secret": [airflow],
        # FLOWER_BASIC_AUTH is a list of user:password pairs, split on ','
        "airflow:flower_password": [(re.compile(","), "holds ',', on which Flower splits its user:password list")],
        # ${VAR} and $__env/file/vault{...}: Grafana's expanders; %(key)s: go-ini's values of other keys
        "grafana:admin_password": [(re.compile(r"\$(__\w+)?\{|%\([^)]*\)s"),
                                    "holds '${', '$__<name>{' or '%(<name>)s', which Grafana replaces in its settings "
                                    "(no escape exists)")],
        "pgbackrest:cipher_pass": [(_EDGE_SPACE, "begins or ends with a space, which pgBackRest's configuration "
                                                 "parser strips")],
        "keepalived:auth_pass": [(re.compile("[" + re.escape("".join(VRRP_UNQUOTABLE)) + "]"),
                                  "holds a space, a quote or one of # ! $ \\ { }, which keepalived.conf cannot quote")],
    }


def secret_character_problem(path, text):
    """
    What in the password ``secrets:<path>`` (a string) one of its consumers
    cannot carry, or None. A plain function; secret_problem calls it, so
    `make secrets` replaces such a value too.
    """
    if not PRINTABLE_ASCII.match(text):
        return ("holds a character other than printable ASCII (a newline, tab, control or non-ASCII character), "
                "which the line-based files and logins it goes into cannot carry")
    for pattern, why in _character_rules().get(path, ()):
        if pattern.search(text):
            return why
    return None


# Keyboard and counting runs (either direction, wrapping: 7890123...).
_RUNS = ("0123456789", "abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")


def _pattern_problem(text, minimum):
    """A repetition, a run or too few different characters, or None."""
    low = text.lower()
    if any(low == (low[:p] * len(low))[:len(low)] for p in range(1, len(low) // 2 + 1)):
        return "is a short sequence repeated"
    for run in _RUNS:
        for seq in (run, run[::-1]):
            if len(low) > 2 and low in seq * (len(low) // len(seq) + 2):
                return "is a run of consecutive characters (abcd..., 4321..., qwerty...)"
    fewest = min(5, minimum // 3 + 1)  # 8 random characters give fewer than 3 once in a billion
    if len(set(text)) < fewest:
        return f"uses only {len(set(text))} different characters"
    return None


def weak_password_problem(path, text):
    """
    What makes the password ``secrets:<path>`` obviously weak though long
    enough, or None: a short sequence repeated, a keyboard or counting run,
    too few different characters, or a well-known default
    (KNOWN_DEFAULT_PASSWORDS) with a few characters added. Never a value
    tools/gen_secrets.py makes (random, 8 to 64 characters). A plain function.
    """
    minimum = MIN_SECRET_LENGTHS.get(path, MIN_SECRET_LENGTH)
    problem = _pattern_problem(text, minimum)
    if problem:
        return problem
    rest = text.lower()
    for word in sorted(KNOWN_DEFAULT_PASSWORDS, key=len, reverse=True):
        rest = rest.replace(word, "")
    if rest != text.lower() and (len(rest) < minimum // 2 or _pattern_problem(rest, minimum)):
        return "is a well-known default password with a few characters added"
    return None


def _check_secrets(secrets, needed, errors):
    """Each secret of ``needed`` ({path: the role that reads it}) present and acceptable, no two alike; and
    the shape of those that have one, wherever given."""
    seen = {}
    for path, role in needed.items():
        value = _get(secrets or {}, path)
        problem = secret_problem(path, value)
        if problem == "is missing or empty":
            errors.append(f"secrets:{path} is missing (needed by role {role!r}): {SECRETS_FIX}")
        elif problem:
            errors.append(f"secrets:{path} {problem} (needed by role {role!r}): {SECRETS_FIX}")
        elif path not in SSH_PUBLIC_KEYS:
            if str(value) in seen:
                errors.append(f"secrets:{path} is the same value as secrets:{seen[str(value)]}: give each its "
                              f"own (delete one and run `make secrets`)")
            seen.setdefault(str(value), path)
    auth_pass = _get(secrets or {}, "keepalived:auth_pass")
    if auth_pass and len(str(auth_pass)) > 8:
        errors.append("secrets:keepalived:auth_pass is longer than 8 characters (VRRP truncates it): use at most 8")
    cookie = _get(secrets or {}, "rabbitmq:erlang_cookie")
    if cookie and not re.match(r"^[A-Za-z0-9]{20,255}$", str(cookie)):
        errors.append("secrets:rabbitmq:erlang_cookie must be 20-255 letters or digits: " + SECRETS_FIX)
    fernet = _get(secrets or {}, "airflow:fernet_key")
    if fernet and not re.match(r"^[A-Za-z0-9_-]{43}=$", str(fernet)):
        errors.append("secrets:airflow:fernet_key is not a Fernet key (44 url-safe base64 characters): " + SECRETS_FIX)


def _check_tls(tls, members, errors):
    """With tls:enabled (the default when pillar ``tls`` does not set it): the CA certificate, and one host of
    role ``ca`` (where the CA key is: it signs every host's certificate). ``tls`` None: not checked."""
    if tls is None:
        return
    if not isinstance(tls, dict):
        errors.append(f"tls must be a mapping (enabled, ca_cert), not {type(tls).__name__}: {TLS_FIX}")
        return
    if not tls_on(tls):
        return
    for key in REQUIRED_TLS_SHARED:
        value = tls.get(key)
        if not value:
            errors.append(f"tls:{key} is missing (tls:enabled is {'true' if 'enabled' in tls else 'true by default'}): "
                          f"{TLS_FIX}")
        elif "-----BEGIN " not in str(value):
            errors.append(f"tls:{key} is not PEM: {TLS_FIX}")
    cas = members.get("ca") or []
    if len(cas) != 1:
        errors.append(f"inventory:hosts: role 'ca' has {len(cas)} hosts ({', '.join(cas) or 'none'}); with tls:enabled "
                      "exactly one host holds the CA key and signs the others' certificates: give 'ca' to that one host "
                      "(the Salt master's own minion, or a CA minion)")


def signing_policy_name(host):
    """The x509_v2 signing policy under which ``host`` requests its certificate."""
    return SIGNING_POLICY_PREFIX + str(host)


def signing_policy_errors(inventory, policies):
    """On the CA host: a signing policy for every inventory host (pillar ``x509_signing_policies``, tls/ca.sls)."""
    policies = policies if isinstance(policies, dict) else {}
    return [f"x509_signing_policies:{signing_policy_name(name)} is missing on the CA host: the CA cannot sign "
            f"{name}'s certificate: run `make secrets` (tools/gen_secrets.py writes tls/ca.sls), refresh the pillar"
            for name in sorted((inventory or {}).get("hosts") or {}) if signing_policy_name(name) not in policies]


def find_errors(inventory, secrets=None, ports=None, check_secrets=True, tls=None, host=None, role_secrets=None):
    """
    All problems of an inventory, port map and secrets, as a list of messages
    (empty when valid). Each message names the pillar key and the fix. The
    secrets checked: those host ``host`` holds (:py:func:`host_secrets`: none
    for a name the inventory lacks), or without ``host`` those of every host
    (a whole secrets file); ``role_secrets``: the map (default the checkout's
    pillar/role_secrets.yaml).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.find_errors "$(cat inventory.json)"
    """
    errors = []
    if not isinstance(inventory, dict) or not inventory:
        return ["inventory is missing: pillar must load pillar/inventory/<topology>.yaml (see pillar/inventory.sls)"]
    hosts = _check_hosts(inventory, errors)
    members = _check_roles(hosts, errors)
    _check_queues(hosts, members, errors)
    _check_standby(hosts, members, errors)
    _check_vips(inventory, hosts, members, errors)
    _check_dags(inventory, members, errors)
    _check_ports(ports, errors)
    if check_secrets:
        role_secrets = read_role_secrets() if role_secrets is None else role_secrets
        valid = dict(inventory, hosts=hosts)
        _check_secrets(secrets, cluster_secrets(valid, role_secrets) if host is None
                       else host_secrets(valid, host, role_secrets), errors)
        _check_tls(tls, members, errors)
    return errors


def normalize(inventory):
    """The inventory with derived fields: per host name, fqdn, prefix, and per role its hosts."""
    domain = inventory.get("domain", "")
    hosts = {}
    for name, host in sorted(inventory["hosts"].items()):
        net = _network_of(inventory, name, host)
        hosts[name] = dict(
            host,
            name=name,
            fqdn=f"{name}.{domain}" if domain else name,
            prefix=net.prefixlen,
            roles=list(host.get("roles") or []),
            queues=host_queues(host),
            standby=host.get("standby") is True and "worker" in (host.get("roles") or []),
        )
    members = {role: [n for n in hosts if role in hosts[n]["roles"]] for role in KNOWN_ROLES}
    return dict(inventory, hosts=hosts, roles=members, queues=queue_members(inventory),
                standby=standby_members(inventory), vips=dict(inventory.get("vips") or {}))


def port_applies(rule, tls=False):
    """Whether a port-map entry holds: entries with ``tls: true``/``false`` only with/without TLS."""
    return "tls" not in rule or bool(rule["tls"]) == bool(tls)


def rules_for_host(inventory, ports, name, admin_networks=None, tls=False):
    """
    Firewall rules for host ``name``: its roles' ports with the source IPs of
    the roles allowed in (``from_roles``) and of the worker hosts serving the
    Celery queues of ``from_queues`` (a worker pool, e.g. ``[card]``);
    ``admin`` in ``from_networks`` stands for ``admin_networks`` (the
    inventory network when empty). An entry with ``except_roles`` does not
    hold on a host having one of them (another entry of that role says who
    may come in). Entries of one port and protocol make one rule (the union
    of their sources, their purposes joined). ``tls``: whether pillar
    tls:enabled is on (see :py:func:`port_applies`).
    """
    inv = normalize(inventory)
    admin = list(admin_networks or [inventory["network"]])
    host = inv["hosts"][name]
    all_ips = sorted(h["ip"] for h in inv["hosts"].values())
    rules, merged = [], {}  # entries of one port and protocol (e.g. ssh of several roles): one rule, their sources
    for rule in ports or []:
        if rule["role"] != "all" and rule["role"] not in host["roles"] or not port_applies(rule, tls):
            continue
        if set(rule.get("except_roles") or []) & set(host["roles"]):
            continue
        sources = set()
        for role in rule.get("from_roles") or []:
            sources.update(all_ips if role == "all" else (inv["hosts"][n]["ip"] for n in inv["roles"].get(role, [])))
        for queue in rule.get("from_queues") or []:
            sources.update(inv["hosts"][n]["ip"] for n in inv["queues"].get(queue, []))
        for net in rule.get("from_networks") or []:
            sources.update(admin if net == "admin" else [net])
        if not sources:
            continue
        key = (str(rule["port"]), rule.get("proto", "tcp"))
        if key not in merged:
            merged[key] = (set(), [])
        merged[key][0].update(sources)
        if rule.get("purpose", "") not in merged[key][1]:
            merged[key][1].append(rule.get("purpose", ""))
    for (port, proto), (sources, purposes) in merged.items():
        ordered = sorted(sources, key=_ip_sort_key)
        rules.append(
            {
                "port": port,
                "proto": proto,
                "sources": ordered,
                "sources_v4": [s for s in ordered if ":" not in s],
                "sources_v6": [s for s in ordered if ":" in s],
                "purpose": "; ".join(purposes),
            }
        )
    return rules


def _ip_sort_key(value):
    net = ipaddress.ip_network(value, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


# Characters keepalived.conf cannot quote in `auth_pass "..."`.
VRRP_UNQUOTABLE = (" ", '"', "'", "#", "!", "$", "\\", "{", "}")


def database_track_args(inventory, database):
    """The ``database`` track script's arguments: every Patroni member's /liveness URL (https with
    ``--cacert`` when ``database`` names a CA file); empty when the inventory has no postgres host."""
    ca_file = database.get("ca_file")
    args = ["--cacert", ca_file] if ca_file else []
    urls = [f"{'https' if ca_file else 'http'}://{inventory['hosts'][n]['ip']}:{int(database['port'])}/liveness"
            for n in inventory["roles"].get("postgres", [])]
    return args + urls if urls else []


def vrrp_instances(inventory, keepalived, host_name, interface, auth_pass="", database=None):
    """
    keepalived's VRRP instances of ``host_name``: one per VIP of the
    (normalized) ``inventory`` whose ``role`` is one of the host's roles, with
    its router id (``keepalived:vips:<vip>:virtual_router_id``, distinct over
    all VIPs), priority (``priority_max`` minus ``priority_step`` per position
    among the role's hosts, or ``vips:<vip>:priorities:<host>``, 1-254),
    unicast peers (the role's other hosts) and track script. Returns
    ``(instances, scripts)``; raises ``CommandExecutionError`` naming the
    pillar key to fix. A plain function: keepalived/map.jinja calls it
    through :py:func:`vrrp`.
    """
    host = inventory["hosts"][host_name]
    auth_pass = "" if auth_pass is None else str(auth_pass)
    for ch in VRRP_UNQUOTABLE:
        if ch in auth_pass:
            raise CommandExecutionError(
                f"secrets:keepalived:auth_pass holds {ch!r}, which keepalived.conf cannot quote: "
                "use letters and digits (make secrets)")
    vips_conf = keepalived.get("vips") or {}
    vrids = {}
    for vname in sorted(inventory.get("vips") or {}):
        vrid = (vips_conf.get(vname) or {}).get("virtual_router_id")
        try:
            vrid = int(vrid)
        except (TypeError, ValueError):
            vrid = 0
        if not 1 <= vrid <= 255:
            raise CommandExecutionError(
                f"inventory:vips:{vname} has no VRRP router id: set keepalived:vips:{vname}:virtual_router_id "
                "(1-255, unique on the network segment)")
        if vrid in vrids:
            raise CommandExecutionError(
                f"keepalived:vips:{vname}:virtual_router_id {vrid} is also the id of VIP {vrids[vrid]}: "
                "give each VIP its own")
        vrids[vrid] = vname
    instances, scripts = [], {}
    for vname, vip in sorted((inventory.get("vips") or {}).items()):
        if vip.get("role") not in host["roles"]:
            continue
        conf = vips_conf.get(vname) or {}
        members = inventory["roles"][vip["role"]]
        priority = int((conf.get("priorities") or {}).get(
            host_name, int(keepalived["priority_max"]) - members.index(host_name) * int(keepalived["priority_step"])))
        if not 1 <= priority <= 254:
            raise CommandExecutionError(
                f"keepalived priority of {host_name} for VIP {vname} is {priority} (role {vip['role']} has "
                f"{len(members)} hosts): set keepalived:priority_step or keepalived:vips:{vname}:priorities (1-254)")
        tracks = conf.get("track") or []
        tracks = [tracks] if isinstance(tracks, str) else list(tracks)
        track_names = []
        for track in tracks:
            if track not in (keepalived.get("track_scripts") or {}):
                raise CommandExecutionError(
                    f"keepalived:vips:{vname}:track {track} is not in keepalived:track_scripts")
            script = dict(keepalived["track_scripts"][track])
            if track == "database":
                # the members' REST API: left out where the inventory has none (or no port was given)
                args = database_track_args(inventory, database) if database else []
                if not args:
                    continue
                script["script"] = " ".join([script["script"], *args])
            scripts[track] = script
            track_names.append(f"chk_{track}")
        instances.append({
            "name": f"VI_{vname}",
            "vip": vname,
            "interface": conf.get("interface") or interface,
            "virtual_router_id": int(conf["virtual_router_id"]),
            "priority": priority,
            "advert_int": int(conf.get("advert_int", keepalived["advert_int"])),
            "nopreempt": conf.get("nopreempt", keepalived["nopreempt"]),
            "unicast_src_ip": host["ip"],
            "unicast_peers": [inventory["hosts"][n]["ip"] for n in members if n != host_name],
            "address": f"{vip['ip']}/{host['prefix']}",
            "track_scripts": track_names,
        })
    return instances, scripts


def interface_of(ip, ip4_interfaces):
    """The first interface (by name) of grains ``ip4_interfaces`` holding ``ip``, or None."""
    for iface, addrs in sorted((ip4_interfaces or {}).items()):
        if ip in (addrs or []):
            return iface
    return None


# ------------------------------------------------------- salt-facing functions


def _pillar_inventory():
    return __pillar__.get("inventory")


def tls_enabled():
    """
    Whether TLS is on for this minion: pillar ``tls:enabled`` read by
    :py:func:`tls_on` (salt/pki/map.jinja's ``enabled``).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.tls_enabled
    """
    return tls_on(__pillar__.get("tls"))


def ca_server():
    """
    The minion id of the CA host (the one host of inventory role ``ca``), None unless there is exactly one.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.ca_server
    """
    hosts = (_pillar_inventory() or {}).get("hosts") or {}
    cas = sorted(n for n, h in hosts.items() if isinstance(h, dict) and "ca" in (h.get("roles") or []))
    return cas[0] if len(cas) == 1 else None


def validate(check_secrets=True):
    """
    Raise a ``CommandExecutionError`` listing every problem of the pillar
    inventory, port map and secrets; return True when all is well. The
    secrets checked are this minion's: those its roles need (pillar
    ``role_secrets``, the map pillar/role_secrets.sls filtered its secrets
    with), none for the master's own id.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.validate
    """
    inventory = _pillar_inventory()
    role_secrets = __pillar__.get("role_secrets")
    errors = []
    if check_secrets and not isinstance(role_secrets, dict):
        errors.append("pillar role_secrets is missing: the master's pillar_roots must hold this version's "
                      "pillar/ (pillar/top.sls gives role_secrets.sls, the secrets of each host's roles, to every "
                      "minion)")
    # the id the master knows this minion by, which pillar/role_secrets.sls filtered its secrets for
    errors += find_errors(inventory, __pillar__.get("secrets"), __pillar__.get("ports"), check_secrets,
                          __pillar__.get("tls") or {}, host=__opts__.get("id") or __grains__.get("id"),
                          role_secrets=role_secrets if isinstance(role_secrets, dict) else {})
    # the CA host (never the master's orchestrate, whose pillar holds no policy) must be able to sign for all
    if (check_secrets and not errors and tls_enabled() and __opts__.get("__role") != "master"
            and (__opts__.get("id") or __grains__.get("id")) == ca_server()):
        errors += signing_policy_errors(inventory, __pillar__.get("x509_signing_policies"))
    errors += port_setting_errors(__pillar__, __pillar__.get("ports"))
    if errors:
        raise CommandExecutionError(
            "Invalid pillar, nothing was applied:\n  - " + "\n  - ".join(errors)
        )
    return True


def load(check_secrets=True):
    """
    The validated, normalized inventory (raises on any problem, see
    :py:func:`validate`). Called by every ``map.jinja``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.load
    """
    validate(check_secrets)
    inv = normalize(_pillar_inventory())
    if __grains__.get("id") not in inv["hosts"] and not __opts__.get("__role") == "master":
        raise CommandExecutionError(
            f"this minion's id {__grains__.get('id')!r} is not in inventory:hosts "
            f"(topology {inv.get('name')!r}): add the host or set the minion id to its inventory name"
        )
    return inv


def hosts(role=None):
    """
    Sorted host names, all or those with ``role``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.hosts role=rabbitmq
    """
    inv = normalize(_pillar_inventory())
    return list(inv["hosts"]) if role is None else inv["roles"].get(role, [])


def ips(*roles):
    """
    Sorted IPs of the hosts having any of ``roles``.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.ips worker
        salt-call ha_inventory.ips scheduler worker
    """
    inv = normalize(_pillar_inventory())
    names = {n for role in roles for n in inv["roles"].get(role, [])}
    return sorted((inv["hosts"][n]["ip"] for n in names), key=_ip_sort_key)


def queues(host=None):
    """
    The Celery queues the worker of ``host`` (this minion by default)
    consumes: its inventory ``queues``, else ``[default]``; ``[]`` when the
    host has no worker role. The worker unit's ``-q`` (salt/airflow/worker.sls).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.queues
        salt-call ha_inventory.queues af1
    """
    name = host or __grains__["id"]
    hosts = (_pillar_inventory() or {}).get("hosts") or {}
    if name not in hosts:
        raise CommandExecutionError(f"host {name!r} is not in inventory:hosts: add it or fix the minion id")
    return host_queues(hosts[name])


def queue_hosts(queue):
    """
    Sorted names of the worker hosts serving Celery queue ``queue`` (its
    worker pool); ``[]`` when none does.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.queue_hosts card
    """
    return queue_members(_pillar_inventory()).get(queue, [])


def queue_ips(queue):
    """
    Sorted IPs of the worker hosts serving Celery queue ``queue``: e.g. the
    card pool, the only workers the card target admits (salt/card_target).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.queue_ips card
    """
    inv = normalize(_pillar_inventory())
    return sorted((inv["hosts"][n]["ip"] for n in inv["queues"].get(queue, [])), key=_ip_sort_key)


def standby_hosts():
    """
    Sorted names of the worker hosts with inventory ``standby: true``: their
    Celery worker is installed but left stopped by the highstate, and
    orch.autoscale starts it on a backlog and drains and stops it when idle
    (docs/operations.md, Autoscaling).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.standby_hosts
    """
    return standby_members(_pillar_inventory())


def autoscale_token_file():
    """
    Where the autoscaling webhook's shared secret (pillar
    secrets:autoscale:webhook_token) lives on the Salt master's host (role
    ca), root 0600: salt/autoscale writes it, the reactor
    salt/reactor/autoscale.sls compares each request's bearer token with it.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.autoscale_token_file
    """
    return AUTOSCALE_TOKEN_FILE


def default_queue():
    """
    The queue of every task that names none (airflow.cfg ``[operators]
    default_queue``), which a worker without inventory ``queues`` serves.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.default_queue
    """
    return DEFAULT_QUEUE


def card_queue():
    """
    The Celery queue of the card_processing DAG's tasks (the card pool):
    salt/card/map.jinja hands it to the DAG, salt/card_target admits only the
    workers serving it.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.card_queue
    """
    return CARD_QUEUE


def host(name=None):
    """
    One host's entry (this minion's by default), with derived fields.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.host sql1
    """
    inv = normalize(_pillar_inventory())
    name = name or __grains__["id"]
    if name not in inv["hosts"]:
        raise CommandExecutionError(f"host {name!r} is not in inventory:hosts: add it or fix the minion id")
    return inv["hosts"][name]


def firewall_rules(name=None, admin_networks=None, tls=False):
    """
    The firewall rules of a host (this minion's by default) from the port map,
    ``admin_networks`` standing in for ``admin`` sources, ``tls`` whether TLS
    is on (salt/pki/map.jinja's ``enabled``).

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.firewall_rules
    """
    name = name or __grains__["id"]
    return rules_for_host(_pillar_inventory(), port_map(__pillar__.get("ports"), __pillar__), name, admin_networks, tls)


def vrrp(keepalived, name=None, database=None):
    """
    This host's (or ``name``'s) keepalived settings ``keepalived`` completed
    with ``router_id``, ``interface`` (pillar's, else the one holding the
    host's inventory IP, else ``fallback_interface``), ``instances``,
    ``scripts`` and ``auth_pass`` (pillar ``secrets:keepalived:auth_pass``).
    ``database``: ``{port, ca_file}`` of the Patroni REST API for the
    ``database`` track script. See :py:func:`vrrp_instances`;
    keepalived/map.jinja calls it.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.vrrp "{priority_max: 150, priority_step: 50, advert_int: 1, nopreempt: true, vips: {}}"
    """
    inv = load()
    name = name or __grains__["id"]
    interface = (keepalived.get("interface")
                 or interface_of(inv["hosts"][name]["ip"], __grains__.get("ip4_interfaces"))
                 or keepalived.get("fallback_interface"))
    auth_pass = (__pillar__.get("secrets") or {}).get("keepalived", {}).get("auth_pass", "")
    instances, scripts = vrrp_instances(inv, keepalived, name, interface, auth_pass, database)
    return dict(keepalived, router_id=name, interface=interface, instances=instances, scripts=scripts,
                auth_pass="" if auth_pass is None else str(auth_pass))
