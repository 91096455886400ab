"""The audit trigger script (salt/airflow/files/airflow_ha_audit_trigger.py) for real: the pinned
Airflow 3 venv's python against a scratch PostgreSQL 15 with a table ``log`` shaped as Airflow's, the
DB URL in the environment as the env file gives it. --check reports the missing trigger, the script
makes it, a second run and --check find nothing to do, and each inserted row lands on the server log
as one ``airflow_ha_audit`` JSON line (what the journal hands to rsyslog and the log host)."""

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from clusters.processes import as_postgres, scratch_postgres

pytestmark = [pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("AIRFLOW_HA_PIN3", "/var/cache/airflow-ha/pin3"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_PORT = 15660
SCRIPT = REPO / "salt/airflow/files/airflow_ha_audit_trigger.py"
# the columns of Airflow 3's table log that the audit reads
LOG_TABLE = """CREATE TABLE log (id serial PRIMARY KEY, dttm timestamptz, dag_id varchar(250), task_id varchar(250),
    map_index integer, event varchar(60), logical_date timestamptz, run_id varchar(250), owner varchar(500),
    owner_display_name varchar(500), extra text, try_number integer)"""

if not (VENV / "bin" / "python").exists() or not (PG_BIN / "initdb").exists():
    pytest.skip("needs the Airflow 3 venv (make deps) and PostgreSQL 15", allow_module_level=True)


@pytest.fixture(scope="module")
def postgres():
    work = Path(tempfile.mkdtemp(prefix="airflow-audit-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        with scratch_postgres(work / "pg", PG_PORT, PG_BIN) as data:
            psql(data, LOG_TABLE, user="airflow")
            yield data
    finally:
        shutil.rmtree(work, ignore_errors=True)


def psql(data, sql, user="postgres"):
    return as_postgres("psql", "-h", "127.0.0.1" if user == "airflow" else data, "-p", PG_PORT, "-U", user,
                       "-d", "airflow", "-XAtc", sql).stdout.strip()


def script(*args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"postgresql+psycopg2://airflow@127.0.0.1:{PG_PORT}/airflow"
    return subprocess.run([VENV / "bin" / "python", SCRIPT, *args], env=env, capture_output=True, text=True,
                          timeout=120)


def audit_lines(data):
    lines = (data / "log").read_text().splitlines()
    return [json.loads(line.split("airflow_ha_audit ", 1)[1]) for line in lines if "LOG:  airflow_ha_audit " in line]


def test_the_trigger_puts_each_audit_row_on_the_server_log(postgres):
    data = postgres
    assert script("--check").returncode == 1  # nothing yet
    made = script()
    assert made.returncode == 0, made.stderr
    assert "trigger airflow_ha_audit" in made.stdout
    assert script("--check").returncode == 0
    again = script()
    assert again.returncode == 0 and again.stdout == ""  # idempotent: nothing to do
    psql(data, "INSERT INTO log (dttm, event, owner, dag_id, extra) VALUES "
               "(now(), 'permission_denied', 'vera', 'airflow_ha_smoke', 'POST /api/v2/dags/x/dagRuns\n2nd line')",
         user="airflow")
    for _ in range(50):  # the server log is written asynchronously by the logger
        rows = audit_lines(data)
        if rows:
            break
        time.sleep(0.1)
    assert len(rows) == 1, rows
    assert rows[0]["event"] == "permission_denied" and rows[0]["owner"] == "vera"
    assert rows[0]["extra"] == "POST /api/v2/dags/x/dagRuns\n2nd line"  # one log line: the newline escaped
    assert "." in rows[0]["dttm"]  # sub-second time
    # a changed function body (an older version of the script) is put back
    psql(data, "CREATE OR REPLACE FUNCTION airflow_ha_audit_log() RETURNS trigger LANGUAGE plpgsql AS "
               "$$BEGIN RETURN NULL; END$$", user="airflow")
    assert script("--check").returncode == 1
    assert script().returncode == 0 and script("--check").returncode == 0
