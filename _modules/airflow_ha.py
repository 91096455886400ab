"""
Helpers of the Airflow roles: connection URLs built from the inventory, checks
of pillar ``airflow`` and a health report of the local Airflow components.

URLs are built here (not in Jinja) so passwords are quoted correctly and the
logic is unit-testable.
"""

import base64
import hashlib
import hmac
import logging
import re
import urllib.parse

from salt.exceptions import CommandExecutionError

__virtualname__ = "airflow_ha"
log = logging.getLogger(__name__)

SUPPORTED_MAJORS = (2, 3)


def __virtual__():
    return __virtualname__


def _util(module, name):
    """A function of a shared ``_utils/<module>.py``: Salt's ``__utils__`` on a
    minion (synced by ``saltutil.sync_all``), else imported (a checkout's tools
    and tests import this module as ``_modules.<name>``)."""
    utils = globals().get("__utils__") or {}
    if f"{module}.{name}" in utils:
        return utils[f"{module}.{name}"]
    import importlib

    return getattr(importlib.import_module(f"_utils.{module}"), name)


def _http(name):
    """A function of the shared HTTP client ``_utils/ha_http.py``."""
    return _util("ha_http", name)


def db_url(user, password, host, port, dbname, scheme="postgresql+psycopg2", sslmode=None, sslrootcert=None,
           options=None):
    """
    SQLAlchemy URL of the metadata DB (also the Celery result backend with
    ``scheme=db+postgresql``). With ``sslmode`` (e.g. ``verify-full``) and
    ``sslrootcert`` (the cluster CA), libpq's TLS parameters are added as the
    URL's query: verify-full checks the server certificate against ``host``
    (an IP matches the certificate's IP SANs, libpq >= 14). ``options``:
    further libpq parameters for the query (pillar ``airflow:db_options``:
    connect_timeout, keepalives, tcp_user_timeout).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.db_url airflow PASS 10.0.0.100 5000 airflow
        salt-call airflow_ha.db_url airflow PASS 10.0.0.100 5000 airflow sslmode=verify-full \
            sslrootcert=/etc/airflow-ha/pki/ca.crt
    """
    if not password:
        raise CommandExecutionError("secrets:postgres:airflow_password is empty: run tools/gen_secrets.py")
    url = "{}://{}:{}@{}:{}/{}".format(
        scheme, urllib.parse.quote(str(user), safe=""), urllib.parse.quote(str(password), safe=""),
        host, int(port), dbname)
    if sslmode and str(sslmode).startswith("verify") and not sslrootcert:
        raise CommandExecutionError("sslmode={} needs sslrootcert (the cluster CA file)".format(sslmode))
    query = {k: str(v) for k, v in (("sslmode", sslmode), ("sslrootcert", sslrootcert)) if v}
    query.update({str(k): str(v) for k, v in (options or {}).items() if v is not None})
    if query:
        url += "?" + urllib.parse.urlencode(query, safe="/", quote_via=urllib.parse.quote)
    return url


def broker_url(user, password, hosts, port, vhost, scheme="amqp"):
    """
    Celery broker URL listing every RabbitMQ host (Kombu fails over between
    them in order), separated by ``;``. A host given as ``host:port`` keeps
    its own port. ``scheme`` ``amqps`` with TLS: the hosts must be names or
    IPs that the RabbitMQ certificates carry (the inventory IPs are).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.broker_url airflow PASS '[10.0.0.1, 10.0.0.2]' 5672 airflow
        salt-call airflow_ha.broker_url airflow PASS '[10.0.0.1, 10.0.0.2]' 5671 airflow scheme=amqps
    """
    if scheme not in ("amqp", "amqps"):
        raise CommandExecutionError(f"broker URL scheme {scheme!r}: use amqp or amqps")
    if not hosts:
        raise CommandExecutionError("no host has the rabbitmq role in inventory:hosts: add one")
    if not password:
        raise CommandExecutionError("secrets:rabbitmq:airflow_password is empty: run tools/gen_secrets.py")
    cred = "{}:{}".format(urllib.parse.quote(str(user), safe=""), urllib.parse.quote(str(password), safe=""))
    vh = urllib.parse.quote(str(vhost), safe="")
    addresses = [str(h) if ":" in str(h) else "{}:{}".format(h, int(port)) for h in hosts]
    return ";".join("{}://{}@{}/{}".format(scheme, cred, address, vh) for address in addresses)


def public_url(host, port, tls=False):
    """
    The URL of the UI/API on the main VIP: ``https`` with TLS (HAProxy
    terminates it with the haproxy hosts' certificate, which names the VIP).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.public_url 10.0.0.100 443 tls=True
    """
    return "{}://{}:{}".format("https" if tls else "http", host, int(port))


def ssl_context(url, ca_file=None):
    """
    The TLS context of a request to ``url``: None for http; for https one
    that verifies the server's certificate and name against ``ca_file`` (the
    cluster CA, /etc/airflow-ha/pki/ca.crt) or, without it, the system's CAs
    (the shared HTTP client, ``_utils/ha_http.py``).
    """
    return _http("ssl_context")(url, ca_file)


def check_settings(settings):
    """
    Fail the render on bad pillar ``airflow`` with the key and the fix.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.check_settings '{"major": 3, "version": "3.3.2"}'
    """
    errors = []
    try:
        major = int(settings.get("major"))
    except (TypeError, ValueError):
        major = None
    if major not in SUPPORTED_MAJORS:
        errors.append("pillar airflow:major must be 2 or 3, got {!r}".format(settings.get("major")))
    version = str(settings.get("version", ""))
    if major and not version.startswith("{}.".format(major)):
        errors.append("pillar airflow:version {!r} does not match airflow:major {}: set both".format(version, major))
    requirements = str(settings.get("requirements") or "")
    # the current release's pins (airflow-<major>.txt) or a release's own (airflow-<version>.txt, e.g. the
    # previous one for orch.airflow_upgrade)
    if major and requirements.startswith("airflow-") and requirements not in (
            "airflow-{}.txt".format(major), "airflow-{}.txt".format(version)):
        errors.append("pillar airflow:requirements {!r} is not the pinned file of airflow:major {} or of "
                      "airflow:version {}: set airflow-{}.txt or airflow-{}.txt".format(
                          requirements, major, version, major, version))
    for key in ("api_port", "log_server_port", "trigger_log_server_port", "flower_port", "scheduler_health_port", "db_port", "amqp_port"):
        try:
            if not 0 < int(settings.get(key)) < 65536:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("pillar airflow:{} must be a TCP port number, got {!r}".format(key, settings.get(key)))
    for key in ("amqps_port", "public_tls_port"):  # the ports with tls:enabled, checked when set
        if key not in settings:
            continue
        try:
            if not 0 < int(settings[key]) < 65536:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("pillar airflow:{} must be a TCP port number, got {!r}".format(key, settings[key]))
    try:
        if int(settings.get("worker_concurrency")) < 1:
            raise ValueError
    except (TypeError, ValueError):
        errors.append("pillar airflow:worker_concurrency must be a positive integer")
    for key in ("task_heartbeat_timeout", "orphaned_tasks_check_interval", "celery_operation_timeout"):
        try:
            if int(settings.get(key)) < 1:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("pillar airflow:{} must be a positive number of seconds, got {!r}".format(
                key, settings.get(key)))
    errors += _execution_api_retry_errors(settings)
    if "dag_refresh_interval" in settings:  # checked when set (defaults.yaml sets it)
        try:
            if int(settings["dag_refresh_interval"]) < 1:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("pillar airflow:dag_refresh_interval must be a positive number of seconds, got {!r}".format(
                settings["dag_refresh_interval"]))
    errors += limits_errors(settings.get("limits"))
    errors += housekeeping_errors(settings.get("housekeeping"))
    errors += worker_autoscale_errors(settings.get("worker_autoscale"))
    if errors:
        raise CommandExecutionError("; ".join(errors))
    return True


def _execution_api_retry_errors(settings):
    """The Task SDK's retry budget ([workers] execution_api_*), checked when set."""
    errors = []
    waits = {}
    for key in ("execution_api_retries", "execution_api_retry_wait_min", "execution_api_retry_wait_max"):
        if key not in settings:
            continue
        try:
            waits[key] = float(settings[key])
            if waits[key] <= 0 or (key == "execution_api_retries" and waits[key] != int(waits[key])):
                raise ValueError
        except (TypeError, ValueError):
            what = "a positive whole number" if key == "execution_api_retries" else "a positive number of seconds"
            errors.append("pillar airflow:{} must be {}, got {!r}".format(key, what, settings[key]))
    low, high = waits.get("execution_api_retry_wait_min"), waits.get("execution_api_retry_wait_max")
    if low is not None and high is not None and low > high:
        errors.append("pillar airflow:execution_api_retry_wait_min ({:g}) is above "
                      "airflow:execution_api_retry_wait_max ({:g}): lower the min or raise the max".format(low, high))
    return errors


# ------------------------------------------------ worker pools (issue 20)
AUTOSCALE_KEYS = ("min", "max")


def worker_autoscale_errors(autoscale):
    """What is wrong with pillar ``airflow:worker_autoscale`` (empty or unset: off; else ``{min: N, max: M}``,
    whole numbers from 1, min <= max), each problem naming the key and the fix."""
    if autoscale in (None, {}, False):
        return []
    fix = "give {min: 2, max: 8} (Celery's --autoscale MAX,MIN: worker processes between them), or {} for a fixed " \
          "airflow:worker_concurrency"
    if not isinstance(autoscale, dict):
        return [f"pillar airflow:worker_autoscale is {autoscale!r}: {fix}"]
    errors = [f"pillar airflow:worker_autoscale:{key} is unknown: {fix}" for key in autoscale
              if key not in AUTOSCALE_KEYS]
    values = {}
    for key in AUTOSCALE_KEYS:
        value = autoscale.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            errors.append(f"pillar airflow:worker_autoscale:{key} is {value!r}: give a whole number from 1 ({fix})")
        else:
            values[key] = value
    if len(values) == 2 and values["min"] > values["max"]:
        errors.append(f"pillar airflow:worker_autoscale:min {values['min']} is above max {values['max']}: "
                      f"give min <= max")
    return errors


def worker_processes(settings):
    """The most task processes the worker of pillar ``airflow`` ``settings`` runs: ``worker_autoscale:max``
    when autoscaling, else ``worker_concurrency``."""
    autoscale = settings.get("worker_autoscale")
    return int(autoscale["max"]) if autoscale else int(settings["worker_concurrency"])


def worker_args(queues, autoscale=None):
    """
    The arguments of the Celery worker unit (after ``airflow``): ``celery
    worker -q <queues, comma-joined>`` (the host's inventory ``queues``,
    ``ha_inventory.queues``), and with pillar ``airflow:worker_autoscale``
    ``--autoscale MAX,MIN``; without it the process count is airflow.cfg's
    ``[celery] worker_concurrency``. Raises on no queue or an autoscale
    setting the render must refuse.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.worker_args '[default, card]' '{min: 2, max: 8}'
    """
    queues = list(queues or [])
    if not queues:  # the names themselves: checked with the inventory (ha_inventory.QUEUE_RE)
        raise CommandExecutionError("this worker host serves no queue: it is no worker host of the inventory "
                                    "(inventory:hosts:<name>:roles, queues)")
    errors = worker_autoscale_errors(autoscale)
    if errors:
        raise CommandExecutionError("; ".join(errors))
    args = f"celery worker -q {','.join(queues)}"
    if autoscale:
        args += f" --autoscale {int(autoscale['max'])},{int(autoscale['min'])}"
    return args


# ------------------------------------------------ limits, housekeeping (issue 20)
COMPONENTS = ("scheduler", "webserver", "dag_processor", "triggerer", "worker", "flower")
LIMIT_KEYS = ("memory_max", "tasks_max", "nofile")
_MEMORY = re.compile(r"^(infinity|[1-9][0-9]*[KMGT]?|[1-9][0-9]?%|100%)$")
_COUNT = re.compile(r"^(infinity|[1-9][0-9]*)$")
_CALENDAR = re.compile(r"^[A-Za-z0-9*:/.,~ -]+$")


def _limit_errors(values, where):
    errors = []
    for key, value in (values or {}).items():
        text = str(value)
        if key not in LIMIT_KEYS:
            errors.append(f"pillar {where}:{key} is unknown: use {', '.join(LIMIT_KEYS)}")
        elif key == "memory_max" and not _MEMORY.match(text):
            errors.append(f"pillar {where}:memory_max is {value!r}: give infinity, a size like 512M or 2G, "
                          f"or a percentage of RAM like 75%")
        elif key != "memory_max" and not _COUNT.match(text):
            errors.append(f"pillar {where}:{key} is {value!r}: give a positive whole number or infinity")
    return errors


def limits_errors(limits):
    """What is wrong with pillar ``airflow:limits`` (each problem names its key and the fix)."""
    if limits is None:
        return []
    if not isinstance(limits, dict):
        return [f"pillar airflow:limits is {limits!r}: give a mapping (memory_max, tasks_max, nofile, and per "
                f"component {', '.join(COMPONENTS)})"]
    errors = _limit_errors({k: v for k, v in limits.items() if k not in COMPONENTS}, "airflow:limits")
    for component in COMPONENTS:
        own = limits.get(component)
        if own is None:
            continue
        if not isinstance(own, dict):
            errors.append(f"pillar airflow:limits:{component} is {own!r}: give a mapping like {{memory_max: 2G}}")
            continue
        errors += _limit_errors(own, f"airflow:limits:{component}")
    return errors


def unit_limits(limits, component):
    """
    The systemd limits of one component's unit (``dag-processor`` or
    ``dag_processor``): pillar ``airflow:limits``' own values, its
    ``<component>`` mapping over them.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.unit_limits '{memory_max: infinity, nofile: 65536, worker: {memory_max: 2G}}' worker
    """
    component = component.replace("-", "_")
    merged = {k: v for k, v in (limits or {}).items() if k in LIMIT_KEYS}
    merged.update((limits or {}).get(component) or {})
    return merged


def housekeeping_errors(housekeeping):
    """What is wrong with pillar ``airflow:housekeeping`` (each problem names its key and the fix)."""
    if housekeeping is None:
        return []
    if not isinstance(housekeeping, dict):
        return [f"pillar airflow:housekeeping is {housekeeping!r}: give a mapping (db_clean_days, task_log_days, ...)"]
    errors = []
    for key in ("db_clean_days", "task_log_days"):
        value = housekeeping.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
            errors.append(f"pillar airflow:housekeeping:{key} is {value!r}: give whole days from 1 to 3650")
    for key in ("db_clean_schedule", "task_log_schedule"):
        value = housekeeping.get(key)
        if not isinstance(value, str) or not _CALENDAR.match(value):
            errors.append(f"pillar airflow:housekeeping:{key} is {value!r}: give a systemd OnCalendar expression "
                          f"like '*-*-* 03:30:00' or daily")
    return errors


# ------------------------------------------------------------ PgBouncer (issue 19)
PGBOUNCER_POOL_MODES = ("transaction", "session")
SCRAM_ITERATIONS = 4096  # PostgreSQL's default (scram_iterations, PostgreSQL 16)
# server connections of the cluster kept for everything but the Airflow hosts'
# PgBouncers: Patroni, replication and rewind, the exporters, pgBackRest,
# `airflow db migrate` (direct), an operator's psql
PGBOUNCER_SERVER_HEADROOM = 30
# processes per role holding an Airflow SQLAlchemy pool (sqlalchemy_pool_size +
# sqlalchemy_max_overflow client connections each): the api-server runs
# [api] workers = 1 process (Airflow 3), the 2.x webserver 4 gunicorn workers
_POOLED_PROCESSES = {"scheduler": 1, "dag_processor": 1, "triggerer": 1}


def scram_sha_256(password, user=""):
    """
    The SCRAM-SHA-256 verifier (PostgreSQL's pg_authid format,
    ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``) of a
    password. The salt is derived from the password and ``user`` (HMAC-SHA256),
    so the same pillar gives the same verifier on every host: the postgres
    state sets it as the role's password and PgBouncer's auth_file holds it,
    which lets PgBouncer log in to the server with the client's SCRAM keys
    (the verifiers must be identical, salt and iterations included), and a
    second apply changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.scram_sha_256 's3cret' user=airflow
    """
    if not password:
        raise CommandExecutionError("secrets:postgres:airflow_password is empty: run tools/gen_secrets.py")
    from salt.ext.saslprep import saslprep

    try:
        prepared = saslprep(str(password))
    except ValueError:  # PostgreSQL uses the raw bytes of a password SASLprep refuses
        prepared = str(password)
    secret = prepared.encode()
    salt = hmac.new(str(password).encode(), ("airflow-ha-scram:" + str(user)).encode(), hashlib.sha256).digest()[:16]
    salted = hashlib.pbkdf2_hmac("sha256", secret, salt, SCRAM_ITERATIONS)
    stored_key = hashlib.sha256(hmac.new(salted, b"Client Key", hashlib.sha256).digest()).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _int_setting(settings, key, minimum, errors, maximum=None, what="a whole number"):
    value = settings.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum and value > maximum):
        bound = f"from {minimum}" + (f" to {maximum}" if maximum else "")
        errors.append(f"pillar airflow:pgbouncer:{key} is {value!r}: give {what} {bound}")
        return None
    return value


def pgbouncer_client_estimate(roles, major=3, worker_concurrency=8, pool_size=5, max_overflow=10):
    """
    The most client connections the Airflow components of a host with
    ``roles`` open to its PgBouncer: each process with an Airflow SQLAlchemy
    pool up to ``pool_size + max_overflow`` ([database] sql_alchemy_pool_size,
    sql_alchemy_max_overflow), each Celery worker process one for the result
    backend and one for its task (the 2.x line's task runner, NullPool), Flower
    two (the result backend).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.pgbouncer_client_estimate '[scheduler, worker]' worker_concurrency=8
    """
    roles = set(roles or ())
    pooled = sum(n for role, n in _POOLED_PROCESSES.items() if role in roles)
    if "webserver" in roles:
        pooled += 1 if int(major) >= 3 else 4
    total = pooled * (int(pool_size) + int(max_overflow))
    if "worker" in roles:
        total += 2 * int(worker_concurrency)
    if "flower" in roles:
        total += 2
    return total


def pgbouncer_settings(settings, roles=(), major=3, worker_concurrency=8, airflow_hosts=1, max_connections=None):
    """
    Pillar ``airflow:pgbouncer`` checked (the render fails naming the key and
    the fix) and completed: ``max_db_connections`` (the server connections of
    this host's PgBouncer: pool plus reserve) and ``client_estimate`` (see
    :py:func:`pgbouncer_client_estimate`). With ``enabled``, the sum over the
    ``airflow_hosts`` must leave PGBOUNCER_SERVER_HEADROOM of PostgreSQL's
    ``max_connections``, and this host's estimate must fit ``max_client_conn``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.pgbouncer_settings '{enabled: true, port: 6432, ...}' '[scheduler]'
    """
    if not isinstance(settings, dict):
        raise CommandExecutionError(f"pillar airflow:pgbouncer is {settings!r}: give a mapping (enabled, port, "
                                    f"pool_mode, default_pool_size, ...; docs/roles.md)")
    errors = []
    if not isinstance(settings.get("enabled"), bool):
        errors.append(f"pillar airflow:pgbouncer:enabled is {settings.get('enabled')!r}: give true or false")
    _int_setting(settings, "port", 1, errors, 65535, "a TCP port number")
    if settings.get("pool_mode") not in PGBOUNCER_POOL_MODES:
        errors.append(f"pillar airflow:pgbouncer:pool_mode is {settings.get('pool_mode')!r}: use transaction or "
                      f"session (statement mode breaks Airflow's multi-statement transactions)")
    pool = _int_setting(settings, "default_pool_size", 1, errors)
    reserve = _int_setting(settings, "reserve_pool_size", 0, errors)
    _int_setting(settings, "max_client_conn", 1, errors)
    _int_setting(settings, "query_wait_timeout", 0, errors, what="whole seconds")
    _int_setting(settings, "server_login_retry", 1, errors, what="whole seconds")
    size = _int_setting(settings, "sqlalchemy_pool_size", 1, errors)
    overflow = _int_setting(settings, "sqlalchemy_max_overflow", 0, errors)
    timeout = settings.get("reserve_pool_timeout")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        errors.append(f"pillar airflow:pgbouncer:reserve_pool_timeout is {timeout!r}: give seconds from 0")
    if errors:
        raise CommandExecutionError("; ".join(errors))
    out = dict(settings, max_db_connections=pool + reserve,
               client_estimate=pgbouncer_client_estimate(roles, major, worker_concurrency, size, overflow))
    if settings["enabled"]:
        if max_connections is not None and int(airflow_hosts) * (pool + reserve) > int(max_connections) - \
                PGBOUNCER_SERVER_HEADROOM:
            errors.append(
                f"pillar airflow:pgbouncer:default_pool_size {pool} + reserve_pool_size {reserve} on each of the "
                f"{airflow_hosts} Airflow hosts is {int(airflow_hosts) * (pool + reserve)} server connections, over "
                f"PostgreSQL's max_connections {max_connections} less {PGBOUNCER_SERVER_HEADROOM} kept for Patroni, "
                f"backups and direct sessions: lower them or raise postgres:dcs:postgresql:parameters:max_connections")
        if out["client_estimate"] > settings["max_client_conn"]:
            errors.append(
                f"pillar airflow:pgbouncer:max_client_conn {settings['max_client_conn']} is under the "
                f"{out['client_estimate']} client connections this host's Airflow components may open "
                f"(sqlalchemy_pool_size {size} + sqlalchemy_max_overflow {overflow} per pooled process, the Celery "
                f"worker's processes): raise max_client_conn or lower sqlalchemy_pool_size/sqlalchemy_max_overflow")
    if errors:
        raise CommandExecutionError("; ".join(errors))
    return out


# ------------------------------------------------- access control (issue 26)
AIRFLOW_ROLES = ("Admin", "Op", "User", "Viewer")
AUTH_MANAGERS = ("fab", "simple")
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
_DN_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]*$")


def ssha(password, label=""):
    """
    The ``{SSHA}`` hash of a directory password (slapd's rootpw, the seeded
    users' userPassword). The salt is derived from the password and ``label``
    (HMAC-SHA256), so the same pillar gives the same hash: a second apply
    changes nothing.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.ssha 's3cret' label=rootpw
    """
    if not password:
        raise CommandExecutionError("an empty directory password: run tools/gen_secrets.py")
    password = str(password).encode()
    salt = hmac.new(password, ("airflow-ha-ssha:" + str(label)).encode(), hashlib.sha256).digest()[:8]
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode()


def _dn_value(value, key, errors):
    if not isinstance(value, str) or not _DN_VALUE.match(value):
        errors.append(f"pillar {key} {value!r} is not a plain name (letters, digits, space, '.', '_', '-'): rename it")
        return False
    return True


def ldap_layout(settings, domain="", ips=(), tls_enabled=True):
    """
    The DNs and URIs of the ldap role (salt/ldap) from its settings (pillar
    ``ldap`` merged with its defaults): ``suffix`` (from the inventory
    ``domain`` when empty), ``admin_dn``, ``bind_dn``, the OU DNs, ``groups``
    (seeded group cn -> {dn, role}), ``roles_mapping`` (group DN -> [role]),
    ``servers`` (``ldaps://<ip>:<port>`` of every ldap host, ``ips``). Fails
    on bad pillar naming the key and the fix.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.ldap_layout '{"suffix": "", "port": 636, ...}' lab.internal '["10.83.0.13"]'
    """
    errors = []
    suffix = str(settings.get("suffix") or "")
    if not suffix:
        labels = [label for label in str(domain or "").split(".") if label]
        if not labels:
            errors.append("pillar ldap:suffix is empty and the inventory has no domain: set ldap:suffix "
                          "(e.g. dc=example,dc=com)")
        suffix = ",".join(f"dc={label}" for label in labels)
    elif not re.match(r"^([A-Za-z]+=[^,=]+)(,[A-Za-z]+=[^,=]+)*$", suffix):
        errors.append(f"pillar ldap:suffix {suffix!r} is not a DN: set e.g. dc=example,dc=com")
    try:
        port = int(settings.get("port"))
        if not 0 < port < 65536:
            raise ValueError
    except (TypeError, ValueError):
        errors.append(f"pillar ldap:port must be a TCP port number, got {settings.get('port')!r}")
        port = 636
    for key in ("admin_cn", "bind_cn", "people_ou", "groups_ou", "services_ou"):
        _dn_value(settings.get(key), f"ldap:{key}", errors)
    seed = settings.get("seed") or {}
    seed_groups = seed.get("groups") or {}
    if not isinstance(seed_groups, dict):
        errors.append("pillar ldap:seed:groups must map a group name to an Airflow role")
        seed_groups = {}
    groups_dn = f"ou={settings.get('groups_ou')},{suffix}"
    groups, mapping = {}, {}
    for name, role in sorted(seed_groups.items()):
        if not _dn_value(name, f"ldap:seed:groups:{name}", errors):
            continue
        if role not in AIRFLOW_ROLES:
            errors.append(f"pillar ldap:seed:groups:{name} maps to {role!r}, not an Airflow role: "
                          f"use one of {', '.join(AIRFLOW_ROLES)}")
            continue
        dn = f"cn={name},{groups_dn}"
        groups[name] = {"dn": dn, "role": role}
        mapping[dn] = [role]
    users = seed.get("users") or []
    uids = set()
    for i, user in enumerate(users if isinstance(users, list) else []):
        uid = (user or {}).get("uid")
        if not _dn_value(uid, f"ldap:seed:users:{i}:uid", errors):
            continue
        if uid in uids:
            errors.append(f"pillar ldap:seed:users lists uid {uid!r} twice: keep one entry")
        uids.add(uid)
        for group in user.get("groups") or []:
            if group not in seed_groups:
                errors.append(f"pillar ldap:seed:users:{i} ({uid}) is in group {group!r}, which "
                              f"ldap:seed:groups lacks: add the group or fix the name")
    if not isinstance(users, list):
        errors.append("pillar ldap:seed:users must be a list of {uid, name, groups}")
    if errors:
        raise CommandExecutionError("; ".join(errors))
    return {
        "suffix": suffix,
        "mail_domain": ".".join(part.split("=", 1)[1] for part in suffix.split(",")),
        "admin_dn": f"cn={settings.get('admin_cn')},{suffix}",
        "bind_dn": f"cn={settings.get('bind_cn')},ou={settings.get('services_ou')},{suffix}",
        "people_dn": f"ou={settings.get('people_ou')},{suffix}",
        "groups_dn": groups_dn,
        "services_dn": f"ou={settings.get('services_ou')},{suffix}",
        "groups": groups,
        "roles_mapping": mapping,
        "servers": [f"ldaps://{ip}:{port}" for ip in ips],
        "tls_fix": None if tls_enabled else (
            "the ldap role serves LDAPS only (the host's certificate of the cluster CA): "
            "set pillar tls:enabled true or take the ldap role off the inventory's hosts"),
        "ldapi_uri": "ldapi://" + urllib.parse.quote(str(settings.get("ldapi_socket") or ""), safe=""),
    }


def auth_settings(auth, major, ldap=None, ca_file=None):
    """
    Airflow's access control from pillar ``airflow:auth`` (docs/access-control.md),
    the empty LDAP settings filled in from the inventory's ldap role (``ldap``:
    ``ldap_layout`` of salt/ldap, or None without an ldap host) and ``ca_file``
    (the cluster CA with pillar tls:enabled; neither: the system's CA store). Returns the settings with ``manager_class`` and
    ``warning`` (the simple auth manager). Fails on bad pillar naming the key
    and the fix: an unknown manager, an Airflow role that does not exist,
    a server that is not ldaps://, an unset directory.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.auth_settings '{"manager": "fab", "ldap": {...}, "roles_mapping": {}}' 3
    """
    errors = []
    auth = dict(auth or {})
    manager = auth.get("manager") or "fab"
    if manager not in AUTH_MANAGERS:
        errors.append(f"pillar airflow:auth:manager {manager!r} is unknown: use fab (the default) or simple")
    if int(major) < 3 and manager == "simple":
        errors.append("pillar airflow:auth:manager simple needs Airflow 3: the 2.x line has FAB only, "
                      "remove the key")
    ldap_conf = dict(auth.get("ldap") or {})
    ldap = ldap or {}
    if not ldap_conf.get("server"):
        ldap_conf["server"] = " ".join(ldap.get("servers") or [])
    if not ldap_conf.get("ca_file"):
        ldap_conf["ca_file"] = ca_file or ""
    if not ldap_conf.get("bind_dn"):
        ldap_conf["bind_dn"] = ldap.get("bind_dn", "")
    if not ldap_conf.get("search_base"):
        ldap_conf["search_base"] = ldap.get("people_dn", "")
    mapping = auth.get("roles_mapping") or ldap.get("roles_mapping") or {}
    if not isinstance(mapping, dict):
        errors.append("pillar airflow:auth:roles_mapping must map a group DN to a list of Airflow roles")
        mapping = {}
    clean = {}
    for dn, roles in sorted(mapping.items()):
        roles = [roles] if isinstance(roles, str) else list(roles or [])
        unknown = [r for r in roles if r not in AIRFLOW_ROLES]
        if unknown or not roles:
            errors.append(f"pillar airflow:auth:roles_mapping:{dn} maps to {unknown or roles!r}: "
                          f"use one or more of {', '.join(AIRFLOW_ROLES)}")
        if "=" not in str(dn):
            errors.append(f"pillar airflow:auth:roles_mapping key {dn!r} is not a group DN (cn=...,ou=...)")
        clean[str(dn)] = roles
    if manager == "fab":  # both lines: FAB's AUTH_LDAP (webserver_config.py)
        servers = str(ldap_conf["server"]).split()
        if not servers:
            errors.append("pillar airflow:auth:ldap:server is empty and no host has the ldap role: set "
                          "airflow:auth:ldap:server (ldaps://host:636) or give a host the ldap role")
        for uri in servers:
            if not uri.startswith("ldaps://"):
                errors.append(f"pillar airflow:auth:ldap:server {uri!r} is not ldaps://: the bind password "
                              f"and the users' passwords must not cross the network in clear")
        for key in ("bind_dn", "search_base"):  # ca_file empty: the system's CA store
            if not ldap_conf.get(key):
                errors.append(f"pillar airflow:auth:ldap:{key} is empty: set it (no ldap host to take it from)")
        if not clean:
            errors.append("pillar airflow:auth:roles_mapping is empty: map at least one group DN to an Airflow role")
    try:
        if int(auth.get("session_lifetime_minutes")) < 1:
            raise ValueError
    except (TypeError, ValueError):
        errors.append("pillar airflow:auth:session_lifetime_minutes must be a positive number of minutes, "
                      f"got {auth.get('session_lifetime_minutes')!r}")
    if auth.get("session_cookie_samesite") not in ("Lax", "Strict"):
        errors.append("pillar airflow:auth:session_cookie_samesite must be Lax or Strict, "
                      f"got {auth.get('session_cookie_samesite')!r}")
    if errors:
        raise CommandExecutionError("; ".join(errors))
    warning = None
    if manager == "simple":
        warning = ("airflow:auth:manager is simple: Airflow 3's simple auth manager (users in a file, no "
                   "directory, no roles: every user is admin). Remove the key to use FAB with LDAP.")
        log.warning(warning)
    return dict(auth, manager=manager, ldap=ldap_conf, roles_mapping=clean, warning=warning,
                manager_class=SIMPLE_AUTH_MANAGER if manager == "simple" else FAB_AUTH_MANAGER)


def _get_json(url, timeout, ca_file=None):
    return _http("request")("GET", url, timeout=timeout, context=ssl_context(url, ca_file))


def health(url="http://127.0.0.1:8080", major=3, timeout=5, ca_file=None):
    """
    Health of the Airflow components as the api-server (Airflow 3,
    ``/api/v2/monitor/health``) or webserver (Airflow 2, ``/health``) reports
    it: ``{"healthy": bool, "components": {name: status}}``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.health url=http://127.0.0.1:8080 major=3
        salt-call airflow_ha.health url=https://10.0.0.100:443 ca_file=/etc/airflow-ha/pki/ca.crt

    ``ca_file``: the CA an https ``url`` is verified against (here and in
    every function below that takes a ``url``).
    """
    path = "/api/v2/monitor/health" if int(major) >= 3 else "/health"
    try:
        data = _get_json(url.rstrip("/") + path, timeout, ca_file)
    except (CommandExecutionError, ValueError) as exc:
        raise CommandExecutionError("Airflow health endpoint {} unreachable: {}".format(url + path, exc))
    if not isinstance(data, dict):
        raise CommandExecutionError("Airflow health endpoint {} answered no JSON: {!r}".format(url + path, data))
    components = {name: (info or {}).get("status") for name, info in data.items() if isinstance(info, dict)}
    return {"healthy": bool(components) and all(s == "healthy" for s in components.values()),
            "components": components}


# ------------------------------------------ REST API (Airflow 3 /api/v2, 2.x /api/v1)
def _admin_password(password):
    password = password or __pillar__.get("secrets", {}).get("airflow", {}).get("admin_password")
    if not password:
        raise CommandExecutionError("secrets:airflow:admin_password is empty: run tools/gen_secrets.py")
    return password


def _prefix(major):
    return "/api/v2" if int(major) >= 3 else "/api/v1"


# seconds one REST call may take: an api-server behind the VIP of a small
# cluster that is still starting its other components answers slowly
API_TIMEOUT = 30


def _api(method, url, path, auth=None, body=None, timeout=API_TIMEOUT, ca_file=None):
    """One REST call; ``auth`` is the whole Authorization header value."""
    return _http("request")(method, url.rstrip("/") + path, body=body,
                                        headers={"Authorization": auth} if auth else None, timeout=timeout,
                                        context=ssl_context(url, ca_file), label=f"{method} {path} on {url}")


def api_token(url="http://127.0.0.1:8080", username="admin", password=None, major=3, ca_file=None):
    """
    The credential of the REST API; the password comes from pillar
    ``secrets:airflow:admin_password`` unless given.

    Airflow 3: a JWT from ``POST /auth/token`` (sent as ``Bearer``); wrong
    credentials raise (HTTP 401).
    Airflow 2 (FAB auth manager, ``[api] auth_backends`` with basic auth):
    no tokens, so the base64 ``user:password`` sent as ``Basic``, returned
    once ``GET /api/v1/dags`` accepted it. Wrong credentials raise (HTTP 403:
    the FAB auth manager treats a failed login as the anonymous ``Public``
    role, which may not read DAGs).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.api_token url=http://10.83.0.100
    """
    if int(major) >= 3:
        body = {"username": username, "password": _admin_password(password)}
        return _api("POST", url, "/auth/token", body=body, ca_file=ca_file)["access_token"]
    token = base64.b64encode(f"{username}:{_admin_password(password)}".encode()).decode()
    try:
        _api("GET", url, "/api/v1/dags?limit=1", f"Basic {token}", ca_file=ca_file)
    except CommandExecutionError as exc:
        if "HTTP 401" in str(exc) or "HTTP 403" in str(exc):
            raise CommandExecutionError(f"{exc} (user {username}: wrong password, or no Admin role)")
        raise
    return token


def _auth(url, username, password, major, ca_file=None):
    scheme = "Bearer" if int(major) >= 3 else "Basic"
    return f"{scheme} {api_token(url, username, password, major, ca_file)}"


def trigger_dag(dag_id, url="http://127.0.0.1:8080", username="admin", password=None, conf=None, major=3,
                ca_file=None):
    """
    Unpause ``dag_id`` and start a run now; returns the run id.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.trigger_dag airflow_ha_smoke url=http://10.83.0.100
    """
    auth = _auth(url, username, password, major, ca_file)
    dag = f"{_prefix(major)}/dags/{urllib.parse.quote(dag_id, safe='')}"
    _api("PATCH", url, dag, auth, {"is_paused": False}, ca_file=ca_file)
    # Airflow 3 wants logical_date (null: none); Airflow 2 sets it to now when absent
    body = {"logical_date": None, "conf": conf or {}} if int(major) >= 3 else {"conf": conf or {}}
    return _api("POST", url, f"{dag}/dagRuns", auth, body, ca_file=ca_file)["dag_run_id"]


def _variable_path(key, major):
    return f"{_prefix(major)}/variables/{urllib.parse.quote(key, safe='')}"


def variable(key, url="http://127.0.0.1:8080", username="admin", password=None, major=3, ca_file=None):
    """
    The value of the Airflow Variable ``key`` through the REST API; None
    when there is no such Variable.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.variable airflow_ha_dag_release url=https://10.83.0.100:443
    """
    return _variable(key, url, _auth(url, username, password, major, ca_file), major, ca_file)


def _variable(key, url, auth, major, ca_file):
    try:
        return _api("GET", url, _variable_path(key, major), auth, ca_file=ca_file)["value"]
    except CommandExecutionError as exc:
        if " HTTP 404 " in str(exc):
            return None
        raise


def set_variable(key, value, description="", url="http://127.0.0.1:8080", username="admin", password=None,
                 major=3, ca_file=None):
    """
    Create or update the Airflow Variable ``key`` through the REST API (so
    Airflow's audit log records the change with the API user); returns the
    value it had before (None: it did not exist).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.set_variable airflow_ha_dag_release 0123456789abcdef url=https://10.83.0.100:443
    """
    auth = _auth(url, username, password, major, ca_file)
    old = _variable(key, url, auth, major, ca_file)
    body = {"key": key, "value": str(value), "description": description}
    if old is None:
        _api("POST", url, f"{_prefix(major)}/variables", auth, body, ca_file=ca_file)
    else:
        _api("PATCH", url, _variable_path(key, major), auth, body, ca_file=ca_file)
    return old


def _run_path(dag_id, run_id, major):
    return (f"{_prefix(major)}/dags/{urllib.parse.quote(dag_id, safe='')}"
            f"/dagRuns/{urllib.parse.quote(run_id, safe='')}")


def dag_run(dag_id, run_id, url="http://127.0.0.1:8080", username="admin", password=None, major=3, ca_file=None):
    """
    One DAG run with its task instances: ``{state, queued_at, start_date,
    tasks: {task_id: {state, hostname, queued_when, start_date, end_date,
    try_number}}}``. Airflow 2's API has no ``queued_at``: a run triggered
    through it is queued at its logical date, which stands in.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.dag_run airflow_ha_smoke manual__2026-11-23T08:00:00+00:00
    """
    auth = _auth(url, username, password, major, ca_file)
    base = _run_path(dag_id, run_id, major)
    run = _api("GET", url, base, auth, ca_file=ca_file)
    tis = _api("GET", url, base + "/taskInstances", auth, ca_file=ca_file)["task_instances"]
    keys = ("state", "hostname", "queued_when", "start_date", "end_date", "try_number")
    queued_at = run.get("queued_at") if int(major) >= 3 else run.get("logical_date")
    return {"state": run["state"], "queued_at": queued_at, "start_date": run.get("start_date"),
            "tasks": {ti["task_id"]: {k: ti.get(k) for k in keys} for ti in tis}}


def task_instances(dag_id, run_id, url="http://127.0.0.1:8080", username="admin", password=None, major=3,
                   ca_file=None, page=100):
    """
    Every task instance of a DAG run, mapped ones one by one (page by page:
    the API returns at most ``[api] maximum_page_limit``, 100 by default):
    ``[{task_id, map_index, state, hostname, queued_when, start_date,
    end_date, try_number, duration}]``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.task_instances airflow_ha_fanout manual__2026-11-23T08:00:00+00:00
    """
    auth = _auth(url, username, password, major, ca_file)
    base = _run_path(dag_id, run_id, major) + "/taskInstances"
    keys = ("task_id", "map_index", "state", "hostname", "queued_when", "start_date", "end_date", "try_number",
            "duration")
    found, offset = [], 0
    while True:
        batch = _api("GET", url, f"{base}?limit={int(page)}&offset={offset}", auth, ca_file=ca_file)
        rows = batch["task_instances"]
        found.extend({k: ti.get(k) for k in keys} for ti in rows)
        offset += len(rows)
        if not rows or offset >= batch.get("total_entries", 0):
            return found


def wait_dag_run(dag_id, run_id, timeout=300, url="http://127.0.0.1:8080", username="admin", password=None,
                 interval=2, major=3, ca_file=None):
    """
    Wait for a DAG run to end; return it (see ``dag_run``); raise when it
    failed or is still running after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.wait_dag_run airflow_ha_smoke RUN_ID timeout=600
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            run = dag_run(dag_id, run_id, url, username, password, major, ca_file)
        except CommandExecutionError as exc:
            # a poll that got no answer says nothing about the run (an api-server
            # restarting, the VIP moving): ask again until the deadline
            if " HTTP " in str(exc) or time.monotonic() >= deadline:
                raise
            log.warning("polling DAG run %s %s: %s", dag_id, run_id, exc)
            time.sleep(interval)
            continue
        if run["state"] == "success":
            return run
        if run["state"] == "failed":
            raise CommandExecutionError(f"DAG run {dag_id} {run_id} failed: tasks {run['tasks']}")
        if time.monotonic() >= deadline:
            raise CommandExecutionError(f"DAG run {dag_id} {run_id} still {run['state']} after {timeout} s: "
                                        f"tasks {run['tasks']}")
        time.sleep(interval)


def _pages(url, path, key, auth, ca_file, page=100):
    found, offset = [], 0
    sep = "&" if "?" in path else "?"
    while True:
        batch = _api("GET", url, f"{path}{sep}limit={int(page)}&offset={offset}", auth, ca_file=ca_file)
        rows = batch[key]
        found.extend(rows)
        offset += len(rows)
        if not rows or offset >= batch.get("total_entries", 0):
            return found


def dags(url="http://127.0.0.1:8080", username="admin", password=None, major=3, ca_file=None):
    """
    Every DAG the API knows, stale ones too (their files are gone): ``[{dag_id,
    is_stale, is_paused, last_parsed_time, fileloc, bundle_name,
    has_import_errors}]`` (Airflow 3; 2.x has no ``last_parsed_time`` and
    calls ``is_stale`` ``is_active`` inverted).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.dags url=https://10.83.0.100:443 ca_file=/etc/airflow-ha/pki/ca.crt
    """
    auth = _auth(url, username, password, major, ca_file)
    if int(major) >= 3:
        rows = _pages(url, "/api/v2/dags?exclude_stale=false", "dags", auth, ca_file)
    else:
        rows = _pages(url, "/api/v1/dags?only_active=false", "dags", auth, ca_file)
        for row in rows:
            row["is_stale"] = not row.get("is_active", True)
    keys = ("dag_id", "is_stale", "is_paused", "last_parsed_time", "fileloc", "bundle_name", "has_import_errors")
    return [{k: row.get(k) for k in keys} for row in rows]


def import_errors(url="http://127.0.0.1:8080", username="admin", password=None, major=3, ca_file=None):
    """
    The DAG processors' current import errors: ``[{filename, bundle_name,
    timestamp, stack_trace}]`` (``GET /api/v2/importErrors``).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.import_errors url=https://10.83.0.100:443 ca_file=/etc/airflow-ha/pki/ca.crt
    """
    auth = _auth(url, username, password, major, ca_file)
    rows = _pages(url, f"{_prefix(major)}/importErrors", "import_errors", auth, ca_file)
    keys = ("filename", "bundle_name", "timestamp", "stack_trace")
    return [{k: row.get(k) for k in keys} for row in rows]


def conn_uri(scheme, host, port, user, password=None, extra=None):
    """
    An Airflow connection URI (for ``AIRFLOW_CONN_*``) with user, password
    and extra parameters quoted, whatever characters they hold.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.conn_uri ssh card1 22 cardproc extra='{key_file: /opt/airflow/.ssh/card_target}'
    """
    cred = urllib.parse.quote(str(user), safe="")
    if password:
        cred += ":" + urllib.parse.quote(str(password), safe="")
    query = "?" + urllib.parse.urlencode(extra) if extra else ""
    return f"{scheme}://{cred}@{host}:{int(port)}{query}"


def env_quote(value):
    """
    ``value`` double-quoted for an env file (``_utils/ha_env.py``): read alike
    by systemd (``EnvironmentFile``) and by a shell sourcing it, whatever
    printable characters it holds. The states' env files quote every secret
    that is not URL-quoted with it.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.env_quote 'it"s $x'
    """
    try:
        return _util("ha_env", "quote")(value)
    except ValueError as exc:
        raise CommandExecutionError(str(exc))


# ------------------------------------------------------------- Airflow CLI
DEFAULT_VENV = "/opt/airflow/venv"
DEFAULT_ENV_FILE = "/etc/default/airflow"
JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag_processor": "DagProcessorJob"}


def _read_env_file(path):
    return _util("ha_env", "read_env_file")(path)


def _airflow(args, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    # the env file holds the DB URL and keys: passed as environment, never as arguments
    ret = __salt__["cmd.run_all"]([f"{venv}/bin/airflow", *args], env=_read_env_file(env_file), runas=runas,
                                  python_shell=False, ignore_retcode=True, output_loglevel="quiet")
    return ret


def version(venv=DEFAULT_VENV):
    """
    The Airflow version installed in ``venv``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.version
    """
    ret = __salt__["cmd.run_all"]([f"{venv}/bin/airflow", "version"], python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet")
    if ret["retcode"]:
        raise CommandExecutionError(f"airflow version failed: {ret['stderr'].strip()[-300:]}")
    return ret["stdout"].strip().splitlines()[-1]


def db_check(venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    True when the metadata DB answers (``airflow db check``) through the
    configured URL (HAProxy's leader port); raises with the error otherwise.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.db_check
    """
    ret = _airflow(["db", "check"], venv, env_file, runas)
    if ret["retcode"]:
        raise CommandExecutionError(f"airflow db check failed: {(ret['stderr'] or ret['stdout']).strip()[-300:]}")
    return True


def jobs_check(component, hostname=None, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    True when a live job of ``component`` (scheduler, triggerer,
    dag_processor) is in the metadata DB, on ``hostname`` if given
    (``airflow jobs check``); False when none is.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.jobs_check scheduler hostname=af1
    """
    if component not in JOB_TYPES:
        raise CommandExecutionError(f"unknown component {component!r}: one of {', '.join(JOB_TYPES)}")
    # several live jobs of one type are normal in HA: any of them will do
    args = ["jobs", "check", "--job-type", JOB_TYPES[component], "--allow-multiple", "--limit", "100"]
    args += ["--hostname", hostname] if hostname else []
    return _airflow(args, venv, env_file, runas)["retcode"] == 0


def wait_healthy(url="http://127.0.0.1:8080", major=3, timeout=300, interval=3, ca_file=None):
    """
    Wait until ``health`` reports every component healthy through ``url``
    (e.g. the VIP, so HAProxy has a healthy api-server behind it); raise
    naming the last problem after ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.wait_healthy url=http://10.83.0.100 timeout=300
    """
    import time

    started = time.monotonic()
    while True:
        try:
            report = health(url, major, ca_file=ca_file)
            problem = None if report["healthy"] else f"not healthy: {report['components']}"
        except CommandExecutionError as exc:
            problem = str(exc)
        if problem is None:
            return report
        if time.monotonic() - started > timeout:
            raise CommandExecutionError(f"Airflow at {url} not healthy after {timeout} s: {problem}")
        time.sleep(interval)


def smoke_test(dag_id="airflow_ha_smoke", url="http://127.0.0.1:8080", major=3, timeout=600, username="admin",
               password=None, ca_file=None):
    """
    Trigger ``dag_id`` and wait for its success: the last step of the
    orchestrated bring-up. Returns where each task ran and how long the run
    took; raises (stopping the orchestrate) when it fails or times out.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.smoke_test url=http://10.83.0.100
        salt-call airflow_ha.smoke_test url=https://10.83.0.100:443 ca_file=/etc/airflow-ha/pki/ca.crt
    """
    import time

    started = time.monotonic()
    # components started moments ago: wait for a healthy api-server (webserver) behind the VIP
    wait_healthy(url, major, timeout, ca_file=ca_file)
    run_id = trigger_dag(dag_id, url, username, password, major=major, ca_file=ca_file)
    run = wait_dag_run(dag_id, run_id, timeout, url, username, password, major=major, ca_file=ca_file)
    return {"dag_id": dag_id, "run_id": run_id, "state": run["state"], "seconds": round(time.monotonic() - started, 1),
            "tasks": {t: {"state": ti["state"], "hostname": ti["hostname"]} for t, ti in run["tasks"].items()}}


# ------------------------------------------------ gates of a host's components
def _host():
    """This minion's id (the host named in failures), its host name outside Salt."""
    import socket

    return (globals().get("__grains__") or {}).get("id") or socket.gethostname()


def airflow_hostname(venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    This host's name as Airflow records it in its jobs (``[core]
    hostname_callable``, by default ``airflow.utils.net.getfqdn``: the
    canonical name the resolver gives the host name, e.g. ``af1.lab.internal``),
    asked of the venv's own Airflow so it is the name the components use.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.airflow_hostname
    """
    ret = __salt__["cmd.run_all"](
        [f"{venv}/bin/python", "-c", "from airflow.utils.net import get_hostname; print(get_hostname())"],
        env=_read_env_file(env_file), runas=runas, python_shell=False, ignore_retcode=True, output_loglevel="quiet")
    lines = (ret["stdout"] or "").strip().splitlines()
    if ret["retcode"] or not lines:
        raise CommandExecutionError(f"Airflow's host name unknown on {_host()}: "
                                    f"{(ret['stderr'] or ret['stdout'] or '').strip()[-300:]}")
    return lines[-1].strip()


def _components(components):
    if isinstance(components, str):
        components = [c.strip() for c in components.split(",") if c.strip()]
    unknown = [c for c in components if c not in JOB_TYPES]
    if unknown:
        raise CommandExecutionError(f"unknown component {', '.join(unknown)}: one of {', '.join(JOB_TYPES)}")
    return list(components)


def wait_jobs(components, hostname=None, timeout=300, interval=5, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE,
              runas=None):
    """
    Wait until each of ``components`` (scheduler, triggerer, dag_processor;
    a list or comma-separated) has a live job on ``hostname`` (default: this
    host as Airflow names it, ``airflow_hostname``); raise naming the host and
    the components without one after ``timeout`` seconds. The gate of a host
    after its restart or reboot (``airflow jobs check`` has no worker type:
    ``wait_worker``).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.wait_jobs scheduler,triggerer,dag_processor timeout=300
    """
    import time

    components = _components(components)
    started = time.monotonic()
    hostname = hostname or airflow_hostname(venv, env_file, runas)
    missing = list(components)
    while True:
        missing = [c for c in missing if not jobs_check(c, hostname, venv, env_file, runas)]
        waited = round(time.monotonic() - started, 1)
        if not missing:
            return {"hostname": hostname, "components": components, "waited_s": waited}
        if waited > float(timeout):
            raise CommandExecutionError(f"{_host()} ({hostname}): no live {', '.join(missing)} job "
                                        f"after {timeout} s (airflow jobs check; journalctl -u airflow-<component>)")
        time.sleep(float(interval))


# ----------------------------------------------- Celery worker: remote control
# the Celery app of Airflow's CeleryExecutor (the provider's documented path):
# it reads the broker URL and TLS settings from Airflow's config, so from the
# env file passed as environment, never from a command line
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"
# celery's exit code when no node replied (EX_UNAVAILABLE)
CELERY_NO_REPLY = 69


def worker_nodename(hostname=None):
    """
    The Celery node name of the worker on ``hostname``: ``celery@<host>``
    (``airflow celery worker`` sets none, so Celery's default, the host name
    ``socket.gethostname()`` gives on the worker; this host by default).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.worker_nodename
    """
    import socket

    if hostname and "@" in hostname:
        return hostname
    return f"celery@{hostname or socket.gethostname()}"


def _celery(kind, command, node, args=(), timeout=10, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """``celery inspect|control COMMAND`` to ``node`` alone: its reply (None: it did not reply)."""
    import json

    cmd = [f"{venv}/bin/celery", "--app", CELERY_APP, "--quiet", kind, "--timeout", str(timeout),
           "--destination", node, "--json", command, *[str(a) for a in args]]
    ret = __salt__["cmd.run_all"](cmd, env=_read_env_file(env_file), runas=runas, python_shell=False,
                                  ignore_retcode=True, output_loglevel="quiet")
    if ret["retcode"] == CELERY_NO_REPLY:
        return None
    if ret["retcode"]:
        raise CommandExecutionError(f"celery {kind} {command} to {node} failed on {_host()} "
                                    f"(exit {ret['retcode']}): {(ret['stderr'] or ret['stdout']).strip()[-300:]}")
    replies = None
    for line in reversed((ret["stdout"] or "").strip().splitlines()):
        if line.strip().startswith(("{", "[")):
            try:
                replies = json.loads(line)
                break
            except ValueError:
                continue
    if replies is None:
        raise CommandExecutionError(f"celery {kind} {command} to {node} gave no JSON: {ret['stdout'][-200:]!r}")
    if isinstance(replies, list):  # control: one {node: reply} per node
        merged = {}
        for item in replies:
            merged.update(item or {})
        replies = merged
    return replies.get(node)


def worker_ping(hostname=None, timeout=10, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    True when the Celery worker on ``hostname`` (this host by default)
    answers ``celery inspect ping`` through the broker; False when it does
    not reply within ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.worker_ping
        salt-call airflow_ha.worker_ping af2
    """
    reply = _celery("inspect", "ping", worker_nodename(hostname), timeout=timeout, venv=venv, env_file=env_file,
                    runas=runas)
    return isinstance(reply, dict) and reply.get("ok") == "pong"


def worker_queues(hostname=None, timeout=10, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    The queues the worker on ``hostname`` consumes (``inspect
    active_queues``); None when it does not reply.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.worker_queues
    """
    reply = _celery("inspect", "active_queues", worker_nodename(hostname), timeout=timeout, venv=venv,
                    env_file=env_file, runas=runas)
    return None if reply is None else sorted(q["name"] for q in reply)


def _busy(node, timeout, venv, env_file, runas):
    """Ids of the tasks the worker runs or holds (active + reserved); None when it does not reply."""
    ids = set()
    for command in ("active", "reserved"):
        reply = _celery("inspect", command, node, timeout=timeout, venv=venv, env_file=env_file, runas=runas)
        if reply is None:
            return None
        ids.update(t.get("id") for t in reply)
    return ids


def _consumers(command, node, queues, timeout, venv, env_file, runas):
    for queue in queues:
        reply = _celery("control", command, node, [queue], timeout=timeout, venv=venv, env_file=env_file,
                        runas=runas)
        if reply is None or "error" in reply:
            raise CommandExecutionError(f"celery control {command} {queue} to {node} failed: "
                                        f"{reply.get('error') if reply else 'no reply'}")


def resume_worker(queues, hostname=None, timeout=10, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    Let the worker on ``hostname`` consume ``queues`` again (``control
    add_consumer``): undoes ``drain_worker`` without a restart.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.resume_worker '[default]'
    """
    if isinstance(queues, str):
        queues = [q.strip() for q in queues.split(",") if q.strip()]
    _consumers("add_consumer", worker_nodename(hostname), queues, timeout, venv, env_file, runas)
    return {"node": worker_nodename(hostname), "queues": list(queues)}


def drain_worker(hostname=None, timeout=600, interval=5, resume_on_timeout=True, venv=DEFAULT_VENV,
                 env_file=DEFAULT_ENV_FILE, runas=None):
    """
    Drain the Celery worker on ``hostname`` (this host by default) before a
    restart or reboot: it stops consuming every queue it consumes (``control
    cancel_consumer``; the other workers take new tasks), then this waits
    until it runs and holds no task (``inspect active`` and ``reserved``).
    Returns the node, its queues, the seconds waited and how many tasks
    finished meanwhile. After ``timeout`` seconds (pillar
    ``airflow:drain_timeout`` in the orchestrates) it raises naming the host;
    with ``resume_on_timeout`` the worker consumes its queues again first,
    so a stopped rollout leaves it as it was. A worker that does not reply
    (stopped) has nothing to drain. The broker URL comes from the env file
    (Airflow's config), never from a command line.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.drain_worker timeout=600
    """
    import time

    node = worker_nodename(hostname)
    started = time.monotonic()
    queues = worker_queues(node, venv=venv, env_file=env_file, runas=runas)
    if queues is None:
        log.warning("Celery worker %s does not reply: nothing to drain", node)
        return {"node": node, "replied": False, "queues": [], "waited_s": 0.0, "tasks_finished": 0}
    _consumers("cancel_consumer", node, queues, 10, venv, env_file, runas)
    seen, at_start = set(), None
    while True:
        busy = _busy(node, 10, venv, env_file, runas)
        if busy is None:  # it stopped replying: it runs nothing any more
            busy = set()
        at_start = len(busy) if at_start is None else at_start
        seen |= busy
        waited = round(time.monotonic() - started, 1)
        if not busy:
            return {"node": node, "replied": True, "queues": queues, "waited_s": waited,
                    "tasks_at_start": at_start, "tasks_finished": len(seen)}
        if waited > float(timeout):
            resumed = False
            if resume_on_timeout:
                try:
                    _consumers("add_consumer", node, queues, 10, venv, env_file, runas)
                    resumed = True
                except CommandExecutionError as exc:
                    log.error("%s", exc)
            raise CommandExecutionError(
                f"{_host()}: Celery worker {node} still runs {len(busy)} task(s) after {timeout} s "
                f"of draining ({', '.join(sorted(map(str, busy))[:5])}); "
                + ("it consumes its queues again" if resumed else
                   f"it consumes no queue: salt-call airflow_ha.resume_worker '{queues}' or restart airflow-worker")
                + " (raise pillar airflow:drain_timeout, or wait for the tasks)")
        time.sleep(float(interval))


# ----------------------------------------- standby workers (autoscaling, issue 20)
WORKER_UNIT = "airflow-worker"


def _standby_check():
    """This host's name; raises unless the inventory marks it ``standby: true`` (orch.autoscale acts on
    those only: stopping a worker the cluster relies on is never the autoscaling's to do)."""
    host = _host()
    standby = __salt__["ha_inventory.standby_hosts"]()
    if host not in standby:
        raise CommandExecutionError(
            f"{host} is no standby worker (inventory:hosts:{host}:standby is not true; standby hosts: "
            f"{', '.join(standby) or 'none'}): the autoscaling starts and stops standby workers only")
    return host


def standby_up(unit=WORKER_UNIT):
    """
    Scale up: start this standby host's Celery worker (``service.start
    airflow-worker``), unless it already runs: then nothing is done, and the
    comment says so. Refuses a host without inventory ``standby: true``.
    orch.autoscale (pillar action up) runs it on every standby host.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.standby_up
    """
    host = _standby_check()
    if __salt__["service.status"](unit):
        return {"host": host, "changed": False, "comment": f"{host}: {unit} already runs: nothing to do"}
    if not __salt__["service.start"](unit):
        raise CommandExecutionError(f"{host}: {unit} did not start: see journalctl -u {unit}")
    return {"host": host, "changed": True, "comment": f"{host}: {unit} started"}


def standby_down(unit=WORKER_UNIT, timeout=600, interval=5):
    """
    Scale down: drain this standby host's Celery worker
    (:py:func:`drain_worker`: it stops consuming, its running tasks finish;
    ``timeout``: pillar airflow:drain_timeout), then stop its unit
    (``service.stop airflow-worker``); nothing when it is already stopped
    (the comment says so). A drain past ``timeout`` raises and leaves the
    worker running and consuming again. Refuses a host without inventory
    ``standby: true``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.standby_down timeout=600
    """
    host = _standby_check()
    if not __salt__["service.status"](unit):
        return {"host": host, "changed": False, "comment": f"{host}: {unit} is already stopped: nothing to do"}
    drained = drain_worker(timeout=timeout, interval=interval)
    if not __salt__["service.stop"](unit):
        raise CommandExecutionError(f"{host}: {unit} did not stop after its drain: see journalctl -u {unit}")
    return {"host": host, "changed": True, "drained": drained,
            "comment": f"{host}: {unit} drained ({drained.get('tasks_finished', 0)} task(s) finished in "
                       f"{drained.get('waited_s', 0)} s) and stopped"}


def wait_worker(hostname=None, timeout=300, interval=5, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None):
    """
    Wait until the Celery worker on ``hostname`` (this host by default)
    answers ``inspect ping`` and consumes at least one queue: the gate of a
    worker host after its restart or reboot. Raises naming the host after
    ``timeout`` seconds.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.wait_worker timeout=300
    """
    import time

    node = worker_nodename(hostname)
    started = time.monotonic()
    while True:
        problem = None
        try:
            if not worker_ping(node, venv=venv, env_file=env_file, runas=runas):
                problem = "does not answer ping"
            else:
                queues = worker_queues(node, venv=venv, env_file=env_file, runas=runas)
                if not queues:
                    problem = "consumes no queue"
        except CommandExecutionError as exc:
            problem = str(exc)
        waited = round(time.monotonic() - started, 1)
        if problem is None:
            return {"node": node, "queues": queues, "waited_s": waited}
        if waited > float(timeout):
            raise CommandExecutionError(f"{_host()}: Celery worker {node} {problem} after {timeout} s "
                                        "(journalctl -u airflow-worker)")
        time.sleep(float(interval))


# ------------------------------------ versioned virtualenvs (orch.airflow_upgrade, issue 20)
# The venv of Airflow V is <home>/venv-V; <home>/venv (pillar airflow:venv, what every unit, script and
# template names) is a symlink to the current one, so a release installs beside the running one and each
# host switches (and restarts) when its turn comes.
def venv_version(venv):
    """
    The apache-airflow version installed in the virtualenv ``venv`` (its
    ``apache_airflow-*.dist-info``), None when it holds none. Read from the
    files: no Python of the venv is started.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.venv_version /opt/airflow/venv-3.3.2
    """
    import glob
    import os

    pattern = os.path.join(venv, "lib", "python*", "site-packages", "apache_airflow-*.dist-info")
    for info in sorted(glob.glob(pattern)):
        try:
            with open(os.path.join(info, "METADATA"), encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    if line.startswith("Version:"):
                        return line.split(":", 1)[1].strip()
                    if not line.strip():
                        break
        except OSError:
            pass
        return os.path.basename(info)[len("apache_airflow-"):-len(".dist-info")]
    return None


def current_venv(link=DEFAULT_VENV):
    """
    Where the venv symlink ``link`` points (the current versioned venv); None
    when it is missing or a real directory (the layout before versioned venvs).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.current_venv
    """
    import os

    return os.readlink(link) if os.path.islink(link) else None


def _symlink_atomically(target, link):
    """``link`` -> ``target``, replaced in one rename: no moment without it."""
    import os

    tmp = f"{link}.airflow-ha-{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def _rewrite_shebangs(venv, old):
    """The scripts of ``venv``/bin whose first line starts ``#!<old>/bin/`` start ``#!<venv>/bin/``:
    pip wrote the venv's path into them when it was installed at ``old``. Returns how many."""
    import os

    before, after = f"#!{old}/bin/".encode(), f"#!{venv}/bin/".encode()
    bindir, count = os.path.join(venv, "bin"), 0
    for name in sorted(os.listdir(bindir)):
        path = os.path.join(bindir, name)
        if os.path.islink(path) or not os.path.isfile(path):
            continue
        with open(path, "rb") as fh:
            data = fh.read()
        if not data.startswith(before):
            continue
        tmp = f"{path}.airflow-ha-tmp"
        with open(tmp, "wb") as fh:
            fh.write(after + data[len(before):])
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
        os.replace(tmp, path)
        count += 1
    return count


def adopt_venv(link=DEFAULT_VENV, home=None):
    """
    Move a virtualenv of the older layout (``link``, e.g. /opt/airflow/venv,
    a real directory) to ``<home>/venv-<its Airflow version>`` and put the
    symlink ``link`` -> it in its place (one rename, then the symlink: the
    running components keep running on the same files); its scripts'
    ``#!<link>/bin/python`` lines then name the new path. Nothing to do
    when ``link`` is a symlink already or missing. Raises naming the host
    when the directory holds no Airflow or the versioned path is taken.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.adopt_venv /opt/airflow/venv
    """
    import os

    host = _host()
    if os.path.islink(link) or not os.path.isdir(link):
        return {"host": host, "changed": False, "comment": f"{host}: {link} is no directory: nothing to adopt"}
    home = home or os.path.dirname(link.rstrip("/"))
    version = venv_version(link)
    if not version:
        raise CommandExecutionError(f"{host}: {link} is a directory without apache-airflow: move it away "
                                    "(or delete it) and apply airflow.install again, which builds the venv")
    dest = os.path.join(home, f"venv-{version}")
    if os.path.lexists(dest):
        raise CommandExecutionError(f"{host}: {link} (Airflow {version}) cannot move to {dest}: that path exists; "
                                    f"remove the one not in use (the units run {link}), then apply again")
    os.rename(link, dest)
    os.symlink(dest, link)
    scripts = _rewrite_shebangs(dest, link.rstrip("/"))
    return {"host": host, "changed": True, "version": version, "venv": dest, "scripts": scripts,
            "comment": f"{host}: {link} (Airflow {version}) moved to {dest}, {link} is a symlink to it"}


def _started(unit):
    """service.start of ``unit``, False instead of raising: one unit that does not start leaves the others
    to start."""
    try:
        return bool(__salt__["service.start"](unit))
    except CommandExecutionError as exc:
        log.error("%s did not start: %s", unit, exc)
        return False


def switch_venv(target, link=DEFAULT_VENV, units=(), only_running=(), drain=False, drain_timeout=600, interval=5):
    """
    One host's turn in a rolling upgrade (orch.airflow_upgrade): when the
    venv symlink ``link`` points elsewhere than ``target`` (a versioned
    venv, built before by the state airflow.venv), drain this host's Celery
    worker (with ``drain``, :py:func:`drain_worker`, ``drain_timeout``:
    pillar airflow:drain_timeout), stop those of ``units`` that run, point
    ``link`` at ``target`` (one atomic rename) and start ``units`` again
    (of ``only_running``, e.g. a standby worker, only those that ran).
    Nothing at all when ``link`` points at ``target`` already. A drain past
    its timeout raises with the worker consuming again and nothing switched;
    a unit that does not start raises naming the host and the way back.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.switch_venv /opt/airflow/venv-3.3.2 units='[airflow-scheduler, airflow-worker]' drain=True
    """
    import os

    host = _host()
    units = [units] if isinstance(units, str) else list(units or [])
    only_running = [only_running] if isinstance(only_running, str) else list(only_running or [])
    if not os.path.isfile(os.path.join(target, "bin", "airflow")):
        raise CommandExecutionError(f"{host}: {target} has no bin/airflow: build it first (state airflow.venv "
                                    "with pillar airflow:version and airflow:requirements)")
    if os.path.lexists(link) and not os.path.islink(link):
        raise CommandExecutionError(f"{host}: {link} is a directory, not the venv symlink: apply airflow.venv "
                                    "first (it moves it to venv-<version>)")
    current = current_venv(link)
    if current == target:
        return {"host": host, "changed": False, "venv": target,
                "comment": f"{host}: {link} points at {target} already: nothing to do"}
    drained = drain_worker(timeout=drain_timeout, interval=interval) if drain else None
    running = [u for u in units if __salt__["service.status"](u)]
    for unit in running:
        if not __salt__["service.stop"](unit):
            raise CommandExecutionError(f"{host}: {unit} did not stop (journalctl -u {unit}); {link} still "
                                        f"points at {current}")
    _symlink_atomically(target, link)
    started = [u for u in units if u not in only_running or u in running]
    failed = [u for u in started if not _started(u)]
    if failed:
        raise CommandExecutionError(
            f"{host}: {', '.join(failed)} did not start on {target} (journalctl -u {failed[0]}); to go back: "
            f"ln -sfn {current} {link} && systemctl start {' '.join(failed)}")
    return {"host": host, "changed": True, "old": current, "new": target, "stopped": running, "started": started,
            "drained": drained,
            "comment": f"{host}: {link} -> {target} (was {current}); {len(started)} unit(s) restarted"}
