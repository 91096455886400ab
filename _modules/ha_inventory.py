"""
Check and query the cluster inventory: the single source of truth for hosts,
IPs, roles and VIPs (pillar ``inventory``), the port map (pillar ``ports``)
and the secrets every role needs (pillar ``secrets``).

Every state tree render calls :py:func:`load`, so a bad inventory or a missing
secret fails the highstate and the orchestrate at render time, before any
state runs, with one message per problem naming the pillar key and the fix.

CLI Example:

.. code-block:: bash

    salt-call ha_inventory.validate
    salt-call ha_inventory.hosts role=etcd
    salt-call ha_inventory.firewall_rules
"""

import ipaddress
import re

from salt.exceptions import CommandExecutionError

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

# role -> secrets (colon paths under pillar ``secrets``) it cannot run without.
REQUIRED_SECRETS = {
    "postgres": (
        "postgres:superuser_password",
        "postgres:replication_password",
        "postgres:rewind_password",
        "postgres:airflow_password",
        "patroni:restapi_password",
    ),
    "rabbitmq": (
        "rabbitmq:erlang_cookie",
        "rabbitmq:admin_password",
        "rabbitmq:airflow_password",
    ),
    "scheduler": (
        "airflow:fernet_key",
        "airflow:secret_key",
        "airflow:jwt_secret",
        "airflow:admin_password",
    ),
    "haproxy": ("haproxy:stats_password", "keepalived:auth_pass"),
    "nfs": ("keepalived:auth_pass",),
    "ftp": ("ftp:password",),
    "card_target": ("card:ssh_private_key", "card:ssh_public_key"),
    "monitoring": ("grafana:admin_password",),
}
# Passwords the seeds ship; refusing them keeps an example out of production.
KNOWN_DEFAULT_PASSWORDS = {"airflow_pass", "postgres", "111", "guest", "admin", "changeme", "password"}
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
SECRETS_FIX = "run `make secrets` (tools/gen_secrets.py) or set it in your secrets pillar"
# With pillar tls:enabled, what every host needs: the CA (shared secrets file)
# and its own key and certificate (tls/<host>.sls, given to that minion only).
# TLS is on unless pillar tls:enabled says otherwise (the default of
# salt/pki/defaults.yaml `enabled`, which a test keeps equal to this).
TLS_ENABLED_DEFAULT = True
REQUIRED_TLS_SHARED = ("ca_cert",)
REQUIRED_TLS_HOST = ("cert", "key")
TLS_FIX = ("run `make secrets` (tools/gen_secrets.py issues the CA and tls/<host>.sls for every inventory host; "
           "pillar/top.sls gives each host its own file) or set it in this host's pillar")


def __virtual__():
    return __virtualname__


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
        valid[name] = host
    return valid


def _check_roles(hosts, errors):
    members = {role: sorted(n for n, h in hosts.items() if role in (h.get("roles") or [])) for role in KNOWN_ROLES}
    for role in REQUIRED_ROLES:
        if not members[role]:
            errors.append(
                f"inventory:hosts: role {role!r} ({KNOWN_ROLES[role]}) has no host: add {role!r} to the roles of at least one host"
            )
    for role in QUORUM_ROLES:
        count = len(members[role])
        if count and (count < 3 or count % 2 == 0):
            errors.append(
                f"inventory:hosts: role {role!r} has {count} hosts ({', '.join(members[role])}); "
                f"a {role} cluster needs an odd number of members, at least 3: add or remove one host's {role!r} role"
            )
    return members


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
        for role in [rule.get("role")] + list(rule.get("from_roles") or []):
            if role != "all" and role not in KNOWN_ROLES:
                errors.append(f"{key} ({rule.get('purpose', rule.get('port'))}): unknown role {role!r}: use one of all, {', '.join(KNOWN_ROLES)}")
        if "tls" in rule and not isinstance(rule["tls"], bool):
            errors.append(f"{key}:tls must be true or false (the entry holds only with / without tls:enabled)")
        for net in rule.get("from_networks") or []:
            try:
                if net != "admin":
                    ipaddress.ip_network(net, strict=False)
            except ValueError:
                errors.append(f"{key}:from_networks: {net!r} is not a CIDR network nor 'admin': fix the entry")


def _check_secrets(secrets, members, errors):
    missing_reported = set()
    for role, paths in REQUIRED_SECRETS.items():
        if not members.get(role):
            continue
        for path in paths:
            value = _get(secrets or {}, path)
            if path in missing_reported:
                continue
            if value in (None, ""):
                missing_reported.add(path)
                errors.append(f"secrets:{path} is missing (needed by role {role!r}): {SECRETS_FIX}")
            elif str(value) in KNOWN_DEFAULT_PASSWORDS:
                missing_reported.add(path)
                errors.append(f"secrets:{path} is a well-known default password: {SECRETS_FIX}")
    auth_pass = _get(secrets or {}, "keepalived:auth_pass")
    if auth_pass and len(str(auth_pass)) > 8:
        errors.append("secrets:keepalived:auth_pass is longer than 8 characters (VRRP truncates it): use at most 8")
    cookie = _get(secrets or {}, "rabbitmq:erlang_cookie")
    if cookie and not re.match(r"^[A-Za-z0-9]{20,255}$", str(cookie)):
        errors.append("secrets:rabbitmq:erlang_cookie must be 20-255 letters or digits: " + SECRETS_FIX)
    fernet = _get(secrets or {}, "airflow:fernet_key")
    if fernet and not re.match(r"^[A-Za-z0-9_-]{43}=$", str(fernet)):
        errors.append("secrets:airflow:fernet_key is not a Fernet key (44 url-safe base64 characters): " + SECRETS_FIX)


def _check_tls(tls, errors, host_material=True):
    """With tls:enabled (the default when pillar ``tls`` does not set it), the
    CA and (on a minion: the master has no host key) this host's key and cert.
    ``tls`` None: not checked (the caller has no pillar)."""
    if tls is None:
        return
    if not isinstance(tls, dict):
        errors.append(f"tls must be a mapping (enabled, ca_cert, cert, key), not {type(tls).__name__}: {TLS_FIX}")
        return
    if str(tls.get("enabled", TLS_ENABLED_DEFAULT)).lower() not in ("true", "1", "yes", "on"):
        return
    needed = REQUIRED_TLS_SHARED + (REQUIRED_TLS_HOST if host_material else ())
    for key in needed:
        value = tls.get(key)
        if not value:
            errors.append(f"tls:{key} is missing (tls:enabled is {'true' if 'enabled' in tls else 'true by default'}): "
                          f"{TLS_FIX}")
        elif "-----BEGIN " not in str(value):
            errors.append(f"tls:{key} is not PEM: {TLS_FIX}")


def find_errors(inventory, secrets=None, ports=None, check_secrets=True, tls=None, tls_host_material=True):
    """
    All problems of an inventory, port map and secrets, as a list of messages
    (empty when valid). Each message names the pillar key and the fix.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.find_errors "$(cat inventory.json)"
    """
    errors = []
    if not isinstance(inventory, dict) or not inventory:
        return ["inventory is missing: pillar must load pillar/inventory/<topology>.yaml (see pillar/inventory.sls)"]
    hosts = _check_hosts(inventory, errors)
    members = _check_roles(hosts, errors)
    _check_vips(inventory, hosts, members, errors)
    _check_dags(inventory, members, errors)
    _check_ports(ports, errors)
    if check_secrets:
        _check_secrets(secrets, members, errors)
        _check_tls(tls, errors, tls_host_material)
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
        )
    members = {role: [n for n in hosts if role in hosts[n]["roles"]] for role in KNOWN_ROLES}
    return dict(inventory, hosts=hosts, roles=members, vips=dict(inventory.get("vips") or {}))


def port_applies(rule, tls=False):
    """Whether a port-map entry holds: entries with ``tls: true``/``false`` only with/without TLS."""
    return "tls" not in rule or bool(rule["tls"]) == bool(tls)


def rules_for_host(inventory, ports, name, admin_networks=None, tls=False):
    """
    Firewall rules for host ``name``: its roles' ports with the source IPs of
    the roles allowed in; ``admin`` in ``from_networks`` stands for
    ``admin_networks`` (the inventory network when empty). ``tls``: whether
    pillar tls:enabled is on (see :py:func:`port_applies`).
    """
    inv = normalize(inventory)
    admin = list(admin_networks or [inventory["network"]])
    host = inv["hosts"][name]
    all_ips = sorted(h["ip"] for h in inv["hosts"].values())
    rules = []
    for rule in ports or []:
        if rule["role"] != "all" and rule["role"] not in host["roles"] or not port_applies(rule, tls):
            continue
        sources = set()
        for role in rule.get("from_roles") or []:
            sources.update(all_ips if role == "all" else (inv["hosts"][n]["ip"] for n in inv["roles"].get(role, [])))
        for net in rule.get("from_networks") or []:
            sources.update(admin if net == "admin" else [net])
        if not sources:
            continue
        ordered = sorted(sources, key=_ip_sort_key)
        rules.append(
            {
                "port": str(rule["port"]),
                "proto": rule.get("proto", "tcp"),
                "sources": ordered,
                "sources_v4": [s for s in ordered if ":" not in s],
                "sources_v6": [s for s in ordered if ":" in s],
                "purpose": rule.get("purpose", ""),
            }
        )
    return rules


def _ip_sort_key(value):
    net = ipaddress.ip_network(value, strict=False)
    return (net.version, int(net.network_address), net.prefixlen)


# ------------------------------------------------------- salt-facing functions


def _pillar_inventory():
    return __pillar__.get("inventory")


def validate(check_secrets=True):
    """
    Raise a ``CommandExecutionError`` listing every problem of the pillar
    inventory, port map and secrets; return True when all is well.

    CLI Example:

    .. code-block:: bash

        salt-call ha_inventory.validate
    """
    errors = find_errors(_pillar_inventory(), __pillar__.get("secrets"), __pillar__.get("ports"), check_secrets,
                         __pillar__.get("tls") or {}, tls_host_material=__opts__.get("__role") != "master")
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
    return rules_for_host(_pillar_inventory(), __pillar__.get("ports"), name, admin_networks, tls)
