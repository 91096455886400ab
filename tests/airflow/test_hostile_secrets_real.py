"""A real Airflow 3 (the pinned venv) on passwords full of special characters
(issue 17): the airflow states of af1 compiled with
tests/helpers/hostile_secrets.py's secrets (`%@:/#'"$\\`, spaces inside and
at both ends...), their env files written as the states write them, and a
scratch PostgreSQL whose airflow role has the hostile password, set as the
postgres state sets it (Salt's SCRAM verifier, scram-sha-256 logins).

`airflow db check` connects with the environment a shell gets sourcing the
env file (salt/airflow/migrate.sls) and, in Airflow's own Python, with the
one systemd's EnvironmentFile gives (_utils/ha_env.py, as airflow_ha.db_check
runs it): the metadata DB and the Celery result backend log in, Airflow reads
the broker URL's password, the secret key and the JWT secret exactly, and
Flower its user:password. libpq logs the superuser in from the pgpass file
Patroni writes (its escaping of ':' and '\\')."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import _modules.airflow_ha as airflow_ha
from clusters import state_render
from clusters.processes import PG_BIN, as_postgres, scratch_dir, scratch_postgres
from tests.helpers.inventory import pinned_airflow
from tests.helpers.ldap_server import compile_states, secrets_of, write_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PG_PORT = 15670
VENV = Path(os.environ.get("AIRFLOW_HA_PIN3", "/var/cache/airflow-ha/pin3"))
PATRONI = Path("/var/cache/airflow-ha/patroni/bin/python")

if not (VENV / "bin" / "airflow").exists() or not (PG_BIN / "initdb").exists():
    pytest.skip("needs the Airflow 3 venv (make deps) and PostgreSQL 15", allow_module_level=True)

# in the venv's Python, with the environment systemd gives the units
PROBE = r"""
import json, os
from airflow.configuration import conf
from airflow.utils.db import check
check()  # what `airflow db check` runs: SELECT 1 through Airflow's engine
import sqlalchemy
backend = conf.get("celery", "result_backend")
with sqlalchemy.create_engine(backend.removeprefix("db+")).connect() as c:  # as Celery's database backend
    c.execute(sqlalchemy.text("SELECT 1"))
from airflow.providers.celery.executors.celery_executor_utils import app
broker = app.connection_for_write()
from flower.command import apply_env_options
from flower.options import options
apply_env_options()
print(json.dumps({"broker_password": broker.password, "broker_user": broker.userid,
                  "secret_key": conf.get("api", "secret_key"), "jwt_secret": conf.get("api_auth", "jwt_secret"),
                  "flower": options.basic_auth}))
"""


@pytest.fixture(scope="module")
def workdir():
    with scratch_dir("airflow-hostile-") as path:
        yield path


@pytest.fixture(scope="module")
def states(workdir, hostile_salt_env, tmp_path_factory):
    home = workdir / "home"
    pillar = {"airflow": {"version": pinned_airflow(3), "home": str(home), "venv": str(VENV), "venv_dir": str(VENV),
                          "env_file": str(home / "airflow.env"), "dags_folder": str(workdir / "dags"),
                          "db_port": PG_PORT}}
    overrides = {"airflow": {**state_render.loopback_db(PG_PORT), "rabbit_hosts": ["127.0.0.1:1", "127.0.0.2:1"],
                             "statsd_host": "127.0.0.1"}}
    return compile_states("af1", ["airflow.migrate", "airflow.flower"], pillar, overrides, hostile_salt_env,
                          tmp_path_factory)


def sql_literal(value):
    return "'" + value.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def postgres(workdir, hostile_salt_env):
    """A scratch PostgreSQL, scram-sha-256 over TCP; the airflow role and the superuser with the hostile
    passwords, stored as Salt's postgres_user.present stores them (its SCRAM verifier, never the password)."""
    from salt.modules import postgres as salt_postgres

    secrets = secrets_of(hostile_salt_env)
    with scratch_postgres(workdir / "pg", PG_PORT, PG_BIN, auth_host="scram-sha-256") as data:
        verifier = {user: salt_postgres._maybe_encrypt_password(user, password, "scram-sha-256")
                    for user, password in (("airflow", secrets["postgres"]["airflow_password"]),
                                           ("postgres", secrets["postgres"]["superuser_password"]))}
        sql = "".join(f"ALTER ROLE {user} PASSWORD {sql_literal(verifier[user])};\n" for user in verifier)
        # on standard input: no password (nor verifier) on a command line
        as_postgres("psql", "-h", data, "-p", PG_PORT, "-d", "postgres", "-Xq", "-v", "ON_ERROR_STOP=1", "-f", "-",
                    input=sql)
        yield data


def test_airflow_logs_in_with_hostile_passwords(workdir, states, postgres, hostile_salt_env):
    started = time.monotonic()
    secrets = secrets_of(hostile_salt_env)
    home = workdir / "home"
    (home / "logs").mkdir(parents=True)
    write_files(states, ["airflow-cfg", "airflow-celery-config", "airflow-env", "airflow-flower-env"])
    env_file, flower_file = (states[s]["args"]["name"] for s in ("airflow-env", "airflow-flower-env"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "FLOWER"))}

    # the shell's reading: migrate.sls sources the env file
    proc = subprocess.run(["bash", "-c", f"set -a; . {env_file}; exec {VENV}/bin/airflow db check"], env=base,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Connection successful" in proc.stdout + proc.stderr

    # systemd's reading (EnvironmentFile; airflow_ha.db_check) in Airflow's own Python
    env = dict(base, **airflow_ha._read_env_file(env_file), **airflow_ha._read_env_file(flower_file))
    proc = subprocess.run([VENV / "bin" / "python", "-c", PROBE], env=env, capture_output=True, text=True,
                          timeout=300, cwd=home)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen == {"broker_password": secrets["rabbitmq"]["airflow_password"], "broker_user": "airflow",
                    "secret_key": secrets["airflow"]["secret_key"], "jwt_secret": secrets["airflow"]["jwt_secret"],
                    "flower": ["admin:" + secrets["airflow"]["flower_password"]]}

    # a wrong password is refused: the checks above could fail
    wrong = dict(env, AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=airflow_ha.db_url(
        "airflow", secrets["postgres"]["airflow_password"].strip(), "127.0.0.1", PG_PORT, "airflow"))
    proc = subprocess.run([VENV / "bin" / "airflow", "db", "check"], env=wrong, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0 and "password authentication failed" in proc.stdout + proc.stderr

    # Patroni's pgpass (its own writer: ':' and '\' escaped) read by libpq
    if PATRONI.exists():
        record = {"host": "127.0.0.1", "port": PG_PORT, "user": "postgres",
                  "password": secrets["postgres"]["superuser_password"]}
        content = subprocess.run([PATRONI, "-c", "import json, sys; from patroni.postgresql.config import "
                                  "ConfigHandler as C; print(C._pgpass_content(json.load(sys.stdin)), end='')"],
                                 input=json.dumps(record), capture_output=True, text=True, check=True).stdout
        pgpass = workdir / "pgpass"
        pgpass.write_text(content)
        pgpass.chmod(0o600)
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", "postgres", "-d", "postgres",
                               "-w", "-XAtc", "SELECT current_user"], env=dict(base, PGPASSFILE=str(pgpass)),
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and proc.stdout.strip() == "postgres", proc.stderr
    print(f"\nFIGURE hostile passwords, real Airflow checks: {time.monotonic() - started:.1f} s")
