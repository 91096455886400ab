"""The Celery settings we ship make the real Celery (the pinned Airflow venv's)
retry a result store through a database outage instead of failing the task
"outside body" after 3 immediate tries (issue 19: such a failed store cost a
fan-out 213 s across a leader-host kill)."""

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration]

PIN3 = Path("/var/cache/airflow-ha/pin3/bin/python")

PROBE = r"""
import importlib, json, sys
from celery import Celery
from celery.exceptions import BackendStoreError
sys.path.insert(0, sys.argv[1])
ha = importlib.import_module("airflow_ha_celery")
app = Celery("probe", broker="memory://", backend="db+postgresql+psycopg2://u:p@127.0.0.1:9/none?connect_timeout=1")
app.conf.update(ha.HA_SETTINGS)
app.conf.database_create_tables_at_setup = False  # the backend is made while the database is down
backend = app.backend
# a running worker made its tables long before the outage (else every try first retries create_all)
backend.session_manager.prepared = True
sleeps, tries = [], []
backend._sleep = sleeps.append
inner = type(backend)._store_result
def counted(*args, **kwargs):
    tries.append(1)
    return inner(*args, **kwargs)
backend._store_result = counted.__get__(backend)
try:
    backend.store_result("probe-task", None, "STARTED")
    outcome = "stored"
except BackendStoreError:
    outcome = "gave up"
print(json.dumps({"outcome": outcome, "sleeps_ms": [round(s * 1000) for s in sleeps], "stores": len(tries)}))
"""


@pytest.mark.skipif(not PIN3.exists(), reason="make deps first (the pinned Airflow 3 venv)")
def test_real_celery_retries_a_result_store_through_a_database_outage(render_state_file, tmp_path):
    import json

    (tmp_path / "airflow_ha_celery.py").write_text(
        render_state_file("af1", "compact", "airflow.worker", "airflow-celery-config"))
    out = subprocess.run([str(PIN3), "-c", PROBE, str(tmp_path)], capture_output=True, text=True, timeout=120,
                         check=True).stdout
    probe = json.loads(out.splitlines()[-1])
    # 20 retries (result_backend_max_retries), each after a jittered sleep capped at 2, 4, 8, then 10 s
    assert probe["outcome"] == "gave up"
    assert len(probe["sleeps_ms"]) == 20
    caps = [min(10000, 1000 * 2 ** n) for n in range(1, 21)]
    assert all(0 <= s <= cap for s, cap in zip(probe["sleeps_ms"], caps))
    # each attempt is the database backend's own 3 immediate tries
    assert probe["stores"] == 21
