"""Fixtures of the access-control tests (test_auth_ldap.py: Airflow 3,
test_auth_ldap_airflow2.py: the 2.x line): a work directory, a test CA, a real
slapd seeded by the ldap states (tests/helpers/ldap_server.py) and a scratch
PostgreSQL. Module scope: each module gets its own, on the ports its
LDAP_PORT and PG_PORT name, so the two may run at once. The other modules of
tests/airflow define their own `workdir` and `postgres`."""

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers.ldap_server import Slapd, compile_states, make_ca, make_server_cert, run_cmd_state, secrets_of, \
    write_files
from clusters.processes import PG_BIN, as_postgres, scratch_dir


@pytest.fixture(scope="module")
def workdir(request):
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    with scratch_dir(f"airflow-{name}-") as path:
        yield path


@pytest.fixture(scope="module")
def pki(workdir):
    path = workdir / "pki"
    path.mkdir()
    make_ca(path, "test-ca")
    make_server_cert(path, "test-ca", "slapd")
    make_ca(path, "other-ca")
    make_server_cert(path, "other-ca", "rogue")
    for f in path.iterdir():
        f.chmod(0o644)
    return path


@pytest.fixture(scope="module")
def ldap_states(request, workdir, pki, tls_salt_env, tmp_path_factory):
    d = workdir / "ldap"
    pillar = {"ldap": {
        "port": request.module.LDAP_PORT, "config": str(d / "slapd.conf"), "data_dir": str(d / "data"),
        "run_dir": str(d / "run"), "ldapi_socket": str(d / "run" / "ldapi"), "key": str(d / "slapd.key"),
        "seed_file": str(d / "seed.ldif"), "admin_password_file": str(d / "admin.pw"),
    }}
    # the lab's certificates name the lab's addresses: the test CA's, for 127.0.0.1
    overrides = {"ldap": {"tls": {"enabled": True, "ca_file": str(pki / "test-ca.crt"),
                                  "cert": str(pki / "slapd.crt")}}}
    return compile_states("db3", ["ldap"], pillar, overrides, tls_salt_env, tmp_path_factory)


@pytest.fixture(scope="module")
def slapd(request, workdir, pki, ldap_states, tls_salt_env):
    """(Slapd, the secrets of the directory's seed)"""
    states, d = ldap_states, workdir / "ldap"
    secrets = secrets_of(tls_salt_env)
    for sub in ("data", "run"):
        (d / sub).mkdir(parents=True)
    shutil.copy(pki / "slapd.key", d / "slapd.key")
    write_files(states, ["ldap-admin-password", "ldap-seed-file"])
    root_pw = Path(states["ldap-root-password-file"]["args"]["name"])
    root_pw.write_text(secrets["ldap"]["admin_password"])
    root_pw.chmod(0o600)
    write_files(states, ["ldap-config"])
    for path in [d, *d.rglob("*")]:
        shutil.chown(path, "openldap", "openldap")
    (d / "slapd.key").chmod(0o600)
    conf = states["ldap-config"]["args"]
    # the state's check_cmd
    check = subprocess.run([*shlex.split(conf["check_cmd"]), conf["name"]], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    server = Slapd(states, d, states["ldap-seeded"]["args"]["name"].split(" -H ")[1].split()[0],
                   request.module.LDAP_PORT)
    try:
        server.start()
        assert run_cmd_state(states, "ldap-seeded")
        assert run_cmd_state(states, "ldap-seeded") is False  # idempotent
        yield server, secrets
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres(request, workdir, salt_env):
    """A scratch PostgreSQL with the airflow role and DB of the rendered env file's URL."""
    data, port = workdir / "pg", request.module.PG_PORT
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres(PG_BIN / "initdb", "-D", data, "--auth-host=scram-sha-256", "-U", "postgres", "--auth-local=peer")
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-w", "-l", data / "log", "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")
    password = secrets_of(salt_env)["postgres"]["airflow_password"].replace("'", "''")
    for statement in (f"CREATE ROLE airflow LOGIN PASSWORD '{password}'", "CREATE DATABASE airflow OWNER airflow"):
        as_postgres("psql", "-h", data, "-p", port, "-d", "postgres", "-Xqc", statement)
    yield data
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop")
