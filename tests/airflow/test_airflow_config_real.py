"""Real Airflow (the pinned 3.x venv) reads the airflow.cfg our template renders.

The venv is the one tools/pin_airflow.sh builds under /var/cache/airflow-ha/
(cold build about 2-3 minutes); the test is skipped when it is absent.
"""

import os
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

import _modules.airflow_ha as airflow_ha

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = Path("/var/cache/airflow-ha/pin3/bin/airflow")

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not AIRFLOW.exists(), reason="run tools/pin_airflow.sh 3 3.3.2 first")]


def _settings(tmp_path):
    area = REPO / "salt" / "airflow"
    settings = yaml.safe_load((area / "defaults.yaml").read_text())
    settings.update(yaml.safe_load((area / "osfamilymap.yaml").read_text())["Debian"])
    settings.update(home=str(tmp_path), dags_folder=str(tmp_path / "dags"), api_port=48080,
                    log_server_port=48793, flower_port=48555, scheduler_health_port=48974,
                    api_url="http://127.0.0.1:48080")
    airflow_ha.check_settings(settings)
    return settings


def _get(tmp_path, env, section, key):
    return subprocess.run([str(AIRFLOW), "config", "get-value", section, key], env=env, check=True,
                          capture_output=True, text=True, timeout=120).stdout.strip().splitlines()[-1]


def test_real_airflow_reads_rendered_config(tmp_path):
    settings = _settings(tmp_path)
    template = (REPO / "salt/airflow/files/airflow.cfg.jinja").read_text()
    (tmp_path / "airflow.cfg").write_text(jinja2.Template(template).render(airflow=settings))
    conn = airflow_ha.db_url("airflow", "s3cr/t@x", "127.0.0.1", 45432, "airflow")
    broker = airflow_ha.broker_url("airflow", "p:w", ["127.0.0.1", "127.0.0.2"], 45672, "airflow")
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=conn,
               AIRFLOW__CELERY__BROKER_URL=broker)
    assert _get(tmp_path, env, "core", "executor") == "CeleryExecutor"
    assert _get(tmp_path, env, "core", "execution_api_server_url") == "http://127.0.0.1:48080/execution/"
    assert _get(tmp_path, env, "logging", "worker_log_server_port") == "48793"
    assert _get(tmp_path, env, "metrics", "statsd_on") == "True"
    assert _get(tmp_path, env, "database", "sql_alchemy_conn") == conn
    assert _get(tmp_path, env, "celery", "broker_url") == broker
