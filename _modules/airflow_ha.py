"""
Helpers of the Airflow roles: connection URLs built from the inventory, checks
of pillar ``airflow`` and a health report of the local Airflow components.

URLs are built here (not in Jinja) so passwords are quoted correctly and the
logic is unit-testable.
"""

import json
import urllib.error
import urllib.parse
import urllib.request

from salt.exceptions import CommandExecutionError

__virtualname__ = "airflow_ha"

SUPPORTED_MAJORS = (2, 3)


def __virtual__():
    return __virtualname__


def db_url(user, password, host, port, dbname, scheme="postgresql+psycopg2"):
    """
    SQLAlchemy URL of the metadata DB (also the Celery result backend with
    ``scheme=db+postgresql``).

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.db_url airflow PASS 10.0.0.100 5000 airflow
    """
    if not password:
        raise CommandExecutionError("secrets:postgres:airflow_password is empty: run tools/gen_secrets.py")
    return "{}://{}:{}@{}:{}/{}".format(
        scheme, urllib.parse.quote(str(user), safe=""), urllib.parse.quote(str(password), safe=""),
        host, int(port), dbname)


def broker_url(user, password, hosts, port, vhost):
    """
    Celery broker URL listing every RabbitMQ host (Kombu fails over between
    them in order), separated by ``;``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.broker_url airflow PASS '[10.0.0.1, 10.0.0.2]' 5672 airflow
    """
    if not hosts:
        raise CommandExecutionError("no host has the rabbitmq role in inventory:hosts: add one")
    if not password:
        raise CommandExecutionError("secrets:rabbitmq:airflow_password is empty: run tools/gen_secrets.py")
    cred = "{}:{}".format(urllib.parse.quote(str(user), safe=""), urllib.parse.quote(str(password), safe=""))
    vh = urllib.parse.quote(str(vhost), safe="")
    return ";".join("amqp://{}@{}:{}/{}".format(cred, h, int(port), vh) for h in hosts)


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
    for key in ("api_port", "log_server_port", "flower_port", "scheduler_health_port", "db_port", "amqp_port"):
        try:
            if not 0 < int(settings.get(key)) < 65536:
                raise ValueError
        except (TypeError, ValueError):
            errors.append("pillar airflow:{} must be a TCP port number, got {!r}".format(key, settings.get(key)))
    try:
        if int(settings.get("worker_concurrency")) < 1:
            raise ValueError
    except (TypeError, ValueError):
        errors.append("pillar airflow:worker_concurrency must be a positive integer")
    if errors:
        raise CommandExecutionError("; ".join(errors))
    return True


def _get_json(url, timeout):
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # nosec: local health endpoints
        return json.loads(resp.read().decode())


def health(url="http://127.0.0.1:8080", major=3, timeout=5):
    """
    Health of the Airflow components as the api-server (Airflow 3,
    ``/api/v2/monitor/health``) or webserver (Airflow 2, ``/health``) reports
    it: ``{"healthy": bool, "components": {name: status}}``.

    CLI Example:

    .. code-block:: bash

        salt-call airflow_ha.health url=http://127.0.0.1:8080 major=3
    """
    path = "/api/v2/monitor/health" if int(major) >= 3 else "/health"
    try:
        data = _get_json(url.rstrip("/") + path, timeout)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommandExecutionError("Airflow health endpoint {} unreachable: {}".format(url + path, exc))
    components = {name: (info or {}).get("status") for name, info in data.items() if isinstance(info, dict)}
    return {"healthy": bool(components) and all(s == "healthy" for s in components.values()),
            "components": components}
