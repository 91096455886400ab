"""`airflow db clean` for real, as airflow-db-clean.service runs it (issue 20):
the pinned Airflow 3 venv (/var/cache/airflow-ha/pin3), a real PostgreSQL
with the migrated schema, the script salt/airflow/files/airflow-ha-db-clean
with the environment the unit's EnvironmentFile gives (the DB URL never on
its command line): event-log rows older than the retention go, newer stay."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import _modules.airflow_ha as airflow_ha
from clusters.processes import as_postgres, scratch_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("AIRFLOW_HA_PIN3", "/var/cache/airflow-ha/pin3"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 15650
SCRIPT = REPO / "salt/airflow/files/airflow-ha-db-clean"

if not (VENV / "bin" / "airflow").exists() or not (PG_BIN / "initdb").exists():
    pytest.skip("needs the Airflow 3 venv (make deps) and PostgreSQL 15", allow_module_level=True)


@pytest.fixture
def postgres():
    work = Path(tempfile.mkdtemp(prefix="airflow-db-clean-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        with scratch_postgres(work / "pg", PG_PORT, PG_BIN) as data:
            yield work, data
    finally:
        shutil.rmtree(work, ignore_errors=True)


def psql(data, sql):
    return as_postgres("psql", "-h", data, "-p", PG_PORT, "-d", "airflow", "-XAtc", sql).stdout.strip()


def test_db_clean_service_command_deletes_only_rows_past_the_retention(postgres):
    work, data = postgres
    home = work / "home"
    (home / "logs").mkdir(parents=True)
    # the env file as salt/airflow/files/airflow.env.jinja writes it (single-quoted values)
    env_file = work / "airflow.env"
    env_file.write_text(f"AIRFLOW_HOME='{home}'\n"
                        f"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN='postgresql+psycopg2://airflow@127.0.0.1:{PG_PORT}/airflow'\n"
                        "AIRFLOW__CORE__LOAD_EXAMPLES='False'\nAIRFLOW__API_AUTH__JWT_SECRET='test-only'\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env = dict(base, **airflow_ha._read_env_file(str(env_file)))
    subprocess.run(["nice", "-n", "19", VENV / "bin" / "airflow", "db", "migrate"], env=env, check=True,
                   capture_output=True, timeout=900)
    psql(data, "INSERT INTO log (dttm, event) VALUES (now() - interval '100 days', 'hk-old'), "
               "(now() - interval '80 days', 'hk-kept'), (now(), 'hk-new')")
    # ExecStart of airflow-db-clean.service: the script, the venv, the days; nothing secret
    argv = [str(SCRIPT), str(VENV), "90"]
    proc = subprocess.run(["nice", "-n", "19", *argv], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "airflow db clean: rows older than" in proc.stdout and "(90 days), not archived" in proc.stdout
    assert not any("postgresql" in a for a in argv)
    events = set(psql(data, "SELECT event FROM log WHERE event LIKE 'hk-%'").split())
    assert events == {"hk-kept", "hk-new"}
    # --skip-archive: no _airflow_deleted__ archive table left behind
    assert psql(data, "SELECT count(*) FROM pg_tables WHERE tablename LIKE '_airflow_deleted%'") == "0"
    # again: nothing more to clean, still success
    again = subprocess.run(["nice", "-n", "19", *argv], env=env, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-2000:]
