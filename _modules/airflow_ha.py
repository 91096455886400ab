"""
Helpers of the Airflow roles: connection URLs built from the inventory, checks
of pillar ``airflow`` and a health report of the local Airflow components.

URLs are built here (not in Jinja) so passwords are quoted correctly and the
logic is unit-testable.
"""

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

from salt.exceptions import CommandExecutionError

__virtualname__ = "airflow_ha"

SUPPORTED_MAJORS = (2, 3)


def __virtual__():
    return __virtualname__


def db_url(user, password, host, port, dbname, scheme="postgresql+psycopg2", sslmode=None, sslrootcert=None):
    """
    SQLAlchemy URL of the metadata DB (also the Celery result backend with
    ``scheme=db+postgresql``). With ``sslmode`` (e.g. ``verify-full``) and
    ``sslrootcert`` (the cluster CA), libpq's TLS parameters are added as the
    URL's query: verify-full checks the server certificate against ``host``
    (an IP matches the certificate's IP SANs, libpq >= 14).

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
    cluster CA, /etc/airflow-ha/pki/ca.crt) or, without it, the system's CAs.
    """
    if not str(url).lower().startswith("https://"):
        return None
    return ssl.create_default_context(cafile=ca_file or None)


def _urlopen(req, timeout, ca_file=None):
    url = req.full_url if isinstance(req, urllib.request.Request) else req
    # nosec: the cluster's own endpoints; https verified against the cluster CA
    return urllib.request.urlopen(req, timeout=timeout, context=ssl_context(url, ca_file))


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
    if major and requirements.startswith("airflow-") and requirements != "airflow-{}.txt".format(major):
        errors.append("pillar airflow:requirements {!r} is not the pinned file of airflow:major {}: "
                      "set airflow-{}.txt".format(requirements, major, major))
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
    if errors:
        raise CommandExecutionError("; ".join(errors))
    return True


def _get_json(url, timeout, ca_file=None):
    with _urlopen(url, timeout, ca_file) as resp:
        return json.loads(resp.read().decode())


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
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommandExecutionError("Airflow health endpoint {} unreachable: {}".format(url + path, exc))
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


def _api(method, url, path, auth=None, body=None, timeout=10, ca_file=None):
    """One REST call; ``auth`` is the whole Authorization header value."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth:
        req.add_header("Authorization", auth)
    try:
        with _urlopen(req, timeout, ca_file) as resp:
            text = resp.read().decode()
    except urllib.error.HTTPError as exc:
        raise CommandExecutionError(f"{method} {path} on {url}: HTTP {exc.code} {exc.read().decode()[:300]}")
    except (urllib.error.URLError, OSError) as exc:
        raise CommandExecutionError(f"{method} {path} on {url}: {exc}")
    return json.loads(text) if text else None


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
    base = (f"{_prefix(major)}/dags/{urllib.parse.quote(dag_id, safe='')}"
            f"/dagRuns/{urllib.parse.quote(run_id, safe='')}")
    run = _api("GET", url, base, auth, ca_file=ca_file)
    tis = _api("GET", url, base + "/taskInstances", auth, ca_file=ca_file)["task_instances"]
    keys = ("state", "hostname", "queued_when", "start_date", "end_date", "try_number")
    queued_at = run.get("queued_at") if int(major) >= 3 else run.get("logical_date")
    return {"state": run["state"], "queued_at": queued_at, "start_date": run.get("start_date"),
            "tasks": {ti["task_id"]: {k: ti.get(k) for k in keys} for ti in tis}}


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
        run = dag_run(dag_id, run_id, url, username, password, major, ca_file)
        if run["state"] == "success":
            return run
        if run["state"] == "failed":
            raise CommandExecutionError(f"DAG run {dag_id} {run_id} failed: tasks {run['tasks']}")
        if time.monotonic() >= deadline:
            raise CommandExecutionError(f"DAG run {dag_id} {run_id} still {run['state']} after {timeout} s: "
                                        f"tasks {run['tasks']}")
        time.sleep(interval)


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


# ------------------------------------------------------------- Airflow CLI
DEFAULT_VENV = "/opt/airflow/venv"
DEFAULT_ENV_FILE = "/etc/default/airflow"
JOB_TYPES = {"scheduler": "SchedulerJob", "triggerer": "TriggererJob", "dag_processor": "DagProcessorJob"}


def _read_env_file(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key] = value[1:-1] if len(value) > 1 and value[0] == value[-1] == "'" else value
    return env


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
