"""Real Airflow (the pinned venv of each line, 3.x and 2.x) reads the
airflow.cfg our template renders.

The venvs are the ones `make deps` (tools/install-deps.sh) builds under
/var/cache/airflow-ha/ (about a minute each); a line is skipped when its venv
is absent.
"""

import os
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

import _modules.airflow_ha as airflow_ha
from tests.helpers.inventory import REPO, pinned_airflow

pytestmark = [pytest.mark.integration]


def _version(major):
    return pinned_airflow(major)


def _airflow(major):
    # AIRFLOW_HA_PIN<major> names another venv (a copy with new pins, before make deps rebuilds)
    return Path(os.environ.get(f"AIRFLOW_HA_PIN{major}", f"/var/cache/airflow-ha/pin{major}")) / "bin" / "airflow"


def _settings(tmp_path, major):
    area = REPO / "salt" / "airflow"
    settings = yaml.safe_load((area / "defaults.yaml").read_text())
    settings.update(yaml.safe_load((area / "osfamilymap.yaml").read_text())["Debian"])
    settings.update(home=str(tmp_path), dags_folder=str(tmp_path / "dags"), api_port=48080,
                    log_server_port=48793, flower_port=48555, scheduler_health_port=48974,
                    api_url="http://127.0.0.1:48080", major=major, version=_version(major),
                    requirements=f"airflow-{major}.txt",
                    # tls:enabled is the default: the broker over amqps, the API's CA (salt/airflow/map.jinja)
                    tls={"enabled": True, "ca_file": str(tmp_path / "ca.crt")})
    airflow_ha.check_settings(settings)
    # access control as salt/airflow/map.jinja makes it: the lab's directory (the ldap role's defaults)
    ldap = dict(yaml.safe_load((REPO / "salt" / "ldap" / "defaults.yaml").read_text()), ldapi_socket="/run/ldapi")
    layout = airflow_ha.ldap_layout(ldap, "lab.internal", ["10.83.0.13"])
    settings.update(auth=airflow_ha.auth_settings(settings["auth"], major, layout, str(tmp_path / "ca.crt")),
                    fab=True, admin_passwords_file=str(tmp_path / "admin_passwords.json"))
    return settings


def _get(major, env, section, key):
    return subprocess.run([str(_airflow(major)), "config", "get-value", section, key], env=env, check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("major", [
    pytest.param(m, id=f"airflow{m}", marks=pytest.mark.skipif(not _airflow(m).exists(), reason="make deps first"))
    for m in (3, 2)])
def test_real_airflow_reads_rendered_config(tmp_path, major):
    settings = _settings(tmp_path, major)
    template = (REPO / "salt/airflow/files/airflow.cfg.jinja").read_text()
    (tmp_path / "airflow.cfg").write_text(jinja2.Template(template).render(airflow=settings))
    conn = airflow_ha.db_url("airflow", "s3cr/t@x", "127.0.0.1", 45432, "airflow")
    broker = airflow_ha.broker_url("airflow", "p:w", ["127.0.0.1", "127.0.0.2"], 45672, "airflow")
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=conn,
               AIRFLOW__CELERY__BROKER_URL=broker)
    assert _get(major, env, "core", "executor") == "CeleryExecutor"
    assert _get(major, env, "fab", "session_lifetime_minutes") == "60"
    assert _get(major, env, "fab", "cookie_secure") == "True"
    if major >= 3:
        assert _get(major, env, "core", "execution_api_server_url") == "http://127.0.0.1:48080/execution/"
        assert _get(major, env, "api", "port") == "48080"
        # every DAG processor re-lists the DAG folder every dag_refresh_interval (docs/dag-deploy.md)
        assert _get(major, env, "dag_processor", "refresh_interval") == "0"
        assert _get(major, env, "dag_processor", "bundle_refresh_check_interval") == str(
            settings["dag_refresh_interval"])
        assert _get(major, env, "core", "auth_manager") == \
            "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
        # the Task SDK's client, as a task's supervisor builds it, takes our retry budget (issue 19)
        budget = subprocess.run(
            [str(_airflow(major).with_name("python")), "-c",
             "from airflow.sdk.api import client as c; print(c.API_RETRIES, c.API_RETRY_WAIT_MIN, c.API_RETRY_WAIT_MAX)"],
            env=env, check=True, capture_output=True, text=True, timeout=120).stdout.split()
        assert budget == [str(settings["execution_api_retries"]), str(float(settings["execution_api_retry_wait_min"])),
                          str(float(settings["execution_api_retry_wait_max"]))]
    else:
        assert _get(major, env, "webserver", "web_server_port") == "48080"
        assert _get(major, env, "scheduler", "standalone_dag_processor") == "True"
        assert _get(major, env, "metrics", "timer_unit_consistency") == "True"
        # Airflow 2's webserver reads FAB's Flask settings and the session cookie's flags from [webserver]
        assert _get(major, env, "webserver", "config_file") == str(tmp_path / "webserver_config.py")
        assert _get(major, env, "webserver", "cookie_secure") == "True"
        # as written: Airflow 2 appends nothing, both backends import
        backends = _get(major, env, "api", "auth_backends").split(",")
        assert backends == ["airflow.providers.fab.auth_manager.api.auth.backend.basic_auth",
                            "airflow.api.auth.backend.session"]
    assert _get(major, env, "logging", "worker_log_server_port") == "48793"
    assert _get(major, env, "metrics", "statsd_on") == "True"
    assert _get(major, env, "database", "sql_alchemy_conn") == conn
    assert _get(major, env, "celery", "broker_url") == broker
    assert _get(major, env, "celery", "ssl_active") == "True"
    assert _get(major, env, "celery", "ssl_cacert") == str(tmp_path / "ca.crt")
