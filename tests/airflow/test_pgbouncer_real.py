"""The real PgBouncer (Debian 12's 1.18) and its exporter, configured from the
files the states render (airflow.pgbouncer, airflow.config and
monitoring.exporters of af1 with pillar airflow:pgbouncer:enabled and
tls:enabled; paths and ports moved into a work directory), in front of a
scratch PostgreSQL 15 that accepts the airflow role over TLS only, with the
SCRAM verifier the postgres state sets (airflow_ha.scram_sha_256;
tests/render/test_pgbouncer_render.py shows the state and the auth file agree).

Proved: a client logs in with the password through PgBouncer while PgBouncer's
files hold only the verifier (root:postgres 0640), a wrong password is refused;
40 clients share a pool of 5 server connections (transaction pooling); the
server connections are TLS (pg_stat_ssl) and verify-full refuses a server of
another CA; the admin console answers SHOW POOLS to PgBouncer's own Unix user;
the exporter reports the waiting clients."""

import grp
import json
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import _modules.airflow_ha as airflow_ha
from clusters import state_render
from tests.helpers.ldap_server import make_server_cert, secrets_of
from clusters.processes import PG_BIN, as_postgres, stop_groups

pytestmark = [pytest.mark.integration]

PGBOUNCER = Path("/usr/sbin/pgbouncer")
EXPORTER = Path("/usr/bin/prometheus-pgbouncer-exporter")
SYSTEM_PYTHON = "/usr/bin/python3"  # python3-psycopg2 (requirements/apt-test.txt), as Airflow's psycopg2 uses libpq
PG_PORT, PGB_PORT, PGB_ROGUE_PORT, EXPORTER_PORT = 55493, 56432, 56433, 59127
POOL_SIZE, CLIENTS = 5, 40

# A client of Airflow's URL (env DB_URL, never on a command line): `login`, or `fanout N SECONDS`: N connections
# opened together, each a transaction of pg_sleep(SECONDS), then, once EVERY connection has had its first (they
# stay open meanwhile, as Airflow's pooled connections do), a second one. Only transaction pooling gets past that
# wait with fewer server connections than clients: in session mode the first clients would keep theirs. The
# backend PIDs it saw are PgBouncer's server connections.
CLIENT = r"""
import json, os, sys, threading, time
import psycopg2
url = os.environ["DB_URL"].replace("postgresql+psycopg2://", "postgresql://", 1)
if sys.argv[1] == "login":
    try:
        conn = psycopg2.connect(url)
        cur = conn.cursor()
        cur.execute("SELECT current_user, current_database()")
        print(json.dumps(cur.fetchone()))
        conn.commit()  # the server connection goes back to PgBouncer's pool, idle
        conn.close()
    except psycopg2.Error as exc:
        print(str(exc).strip())
        sys.exit(3)
    sys.exit(0)
n, sleep = int(sys.argv[2]), float(sys.argv[3])
connected, first_done, lock = threading.Barrier(n), threading.Barrier(n), threading.Lock()
done, errors, pids = [], [], set()
def transaction(conn):
    with conn:  # one transaction, committed at the end of the block
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), pg_sleep(%s)", (sleep,))
            with lock:
                pids.add(cur.fetchone()[0])
def client(i):
    try:
        conn = psycopg2.connect(url)
        connected.wait(timeout=120)
        transaction(conn)
        first_done.wait(timeout=60)
        transaction(conn)
        conn.close()
        done.append(i)
    except Exception as exc:
        errors.append(repr(exc))
start = time.monotonic()
threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"done": len(done), "errors": errors[:5], "server_pids": len(pids),
                  "seconds": round(time.monotonic() - start, 1)}))
"""


def missing():
    for path in (PGBOUNCER, EXPORTER, PG_BIN / "initdb"):
        if not path.exists():
            return f"{path} is missing: `make deps` (requirements/apt-test.txt: pgbouncer, prometheus-pgbouncer-exporter)"
    return None


@pytest.fixture(scope="module")
def workdir(workdir):
    """tests/airflow/conftest.py's, once the programs are here."""
    reason = missing()
    if reason:
        pytest.skip(reason)
    return workdir


@pytest.fixture(scope="module")
def pki(pki):
    """tests/airflow/conftest.py's test CA and a foreign one, with a server certificate for PostgreSQL."""
    make_server_cert(pki, "test-ca", "postgres")  # names 127.0.0.1 (IP SAN)
    for f in pki.iterdir():
        f.chmod(0o644)
    return pki


@pytest.fixture(scope="module")
def states(workdir, pki, tls_salt_env, tmp_path_factory):
    """af1's states with PgBouncer on and TLS, its files moved into the work directory; the pool of
    POOL_SIZE server connections and no reserve, the server the scratch PostgreSQL (verified against the
    test CA: the cluster CA's certificates name the lab's addresses)."""
    d = workdir / "pgbouncer"
    (d / "run").mkdir(parents=True)
    shutil.chown(d / "run", "postgres", "postgres")
    (d / "run").chmod(0o700)
    root = tmp_path_factory.mktemp("pgbouncer-pillar")
    (root / "lab.sls").write_text(yaml.safe_dump({"airflow": {"pgbouncer": {
        "enabled": True, "port": PGB_PORT, "default_pool_size": POOL_SIZE, "reserve_pool_size": 0,
        "config": str(d / "pgbouncer.ini"), "auth_file": str(d / "userlist.txt"), "socket_dir": str(d / "run")}}}))
    overrides = {"pgbouncer": {"server_host": "127.0.0.1", "server_port": PG_PORT,
                               "server_tls": {"sslmode": "verify-full", "ca_file": str(pki / "test-ca.crt")}},
                 "exporter": {"host": "127.0.0.1", "port": EXPORTER_PORT}}
    compiled = state_render.host_states("af1", "compact", ["airflow.config", "monitoring.exporters"], root, overrides,
                                        tls_salt_env)
    # /etc/airflow-ha/ and /usr/local/sbin/ on a real host
    compiled["monitoring-exporter-pgbouncer-config"]["args"]["name"] = str(d / "exporter.conf")
    compiled["monitoring-exporter-pgbouncer-compat"]["args"]["name"] = str(d / "exporter-compat")
    for state_id in ("airflow-pgbouncer-config", "airflow-pgbouncer-auth-file", "monitoring-exporter-pgbouncer-config",
                     "monitoring-exporter-pgbouncer-compat"):
        state = compiled[state_id]
        path = Path(state["args"]["name"])
        path.write_text(state["text"] if state["text"].endswith("\n") else state["text"] + "\n")
        # as Salt writes it: owner, group and mode of the state
        shutil.chown(path, state["args"].get("user", "root"), state["args"].get("group", "root"))
        path.chmod(int(str(state["args"]["mode"]), 8))
    return compiled


@pytest.fixture(scope="module")
def postgres(workdir, pki, tls_salt_env):
    """PostgreSQL 15 on 127.0.0.1:PG_PORT: TLS with the test CA's certificate, the airflow role over
    hostssl only (scram-sha-256), its password the verifier of the postgres state."""
    data = workdir / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres(PG_BIN / "initdb", "-D", data, "-U", "postgres", "--auth-local=peer", "--auth-host=scram-sha-256")
    for name, mode in (("postgres.crt", 0o644), ("postgres.key", 0o600)):
        shutil.copy(pki / name, data / name)
        shutil.chown(data / name, "postgres", "postgres")
        (data / name).chmod(mode)
    (data / "pg_hba.conf").write_text("local all postgres peer\n"
                                      "hostssl all all 127.0.0.1/32 scram-sha-256\n"
                                      "host all all 127.0.0.1/32 reject\n")
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-w", "-l", data / "log", "-o",
                f"-p {PG_PORT} -k {data} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=postgres.crt "
                f"-c ssl_key_file=postgres.key -c max_connections=60", "start")
    verifier = airflow_ha.scram_sha_256(secrets_of(tls_salt_env)["postgres"]["airflow_password"], "airflow")
    for sql in (f"CREATE ROLE airflow LOGIN PASSWORD '{verifier}'", "CREATE DATABASE airflow OWNER airflow"):
        as_postgres("psql", "-h", data, "-p", PG_PORT, "-d", "postgres", "-Xqc", sql)
    yield data
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop")


def wait_port(port, proc, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc.poll() is not None:
            raise AssertionError(f"exited: {Path(log).read_text()[-2000:]}")
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}: {Path(log).read_text()[-2000:]}")


def start(cmd, log, env=None):
    return subprocess.Popen(["runuser", "-u", "postgres", "--", *map(str, cmd)], env=env, stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def pgbouncer(workdir, states, postgres):
    ini = states["airflow-pgbouncer-config"]["args"]["name"]
    log = workdir / "pgbouncer.log"
    proc = start([PGBOUNCER, ini], log)
    try:
        wait_port(PGB_PORT, proc, log)
        yield proc
    finally:
        stop_groups([proc])


def env_url(states, key="AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"):
    return dict(re.findall(r"^(\w+)='(.*)'$", states["airflow-env"]["text"], re.M))[key]


def client(url, *args, timeout=120):
    return subprocess.run([SYSTEM_PYTHON, "-c", CLIENT, *args], env={"DB_URL": url, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=timeout)


def admin(workdir, command):
    """PgBouncer's admin console over its socket as its own Unix user (no password): rows as dicts."""
    proc = as_postgres("psql", "-h", workdir / "pgbouncer" / "run", "-p", PGB_PORT, "-U", "pgbouncer", "-d",
                       "pgbouncer", "-XA", "-F", "|", "-P", "footer=off", "-c", command, check=False)
    assert proc.returncode == 0, proc.stderr
    header, *rows = proc.stdout.strip().splitlines()
    return [dict(zip(header.split("|"), row.split("|"))) for row in rows]


def server_backends(postgres):
    """(backends of the airflow role, those of them over TLS) on the PostgreSQL server."""
    out = as_postgres("psql", "-h", postgres, "-p", PG_PORT, "-d", "postgres", "-XAtc",
                      "SELECT count(*), count(*) FILTER (WHERE s.ssl) FROM pg_stat_activity a "
                      "JOIN pg_stat_ssl s USING (pid) WHERE a.usename = 'airflow' AND a.backend_type = 'client backend'",
                      check=False).stdout.strip()
    total, tls = out.split("|")
    return int(total), int(tls)


def test_the_auth_file_holds_the_verifier_only_and_no_file_of_pgbouncer_a_password(states, tls_salt_env):
    password = secrets_of(tls_salt_env)["postgres"]["airflow_password"]
    auth = Path(states["airflow-pgbouncer-auth-file"]["args"]["name"])
    st = auth.stat()
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o640, 0, grp.getgrnam("postgres").gr_gid)
    assert auth.read_text().strip() == f'"airflow" "{airflow_ha.scram_sha_256(password, "airflow")}"'
    for path in auth.parent.glob("*"):
        if path.is_file():
            assert password not in path.read_text(), path
    # the components' URL is this PgBouncer, plain on loopback
    assert env_url(states).split("@", 1)[1].startswith(f"127.0.0.1:{PGB_PORT}/airflow?sslmode=disable")


def test_a_client_logs_in_with_the_password_through_pgbouncer_a_wrong_one_is_refused(pgbouncer, states, postgres):
    url = env_url(states)
    ok = client(url, "login")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout) == ["airflow", "airflow"]
    # PgBouncer logged in to the server as airflow (no password of its own: the client's SCRAM keys), over
    # TLS, and keeps that connection in its pool after the client left
    total, tls = server_backends(postgres)
    assert total == 1 and tls == 1, (total, tls)
    scheme, rest = url.split("://", 1)
    user, rest = rest.split(":", 1)
    wrong = f"{scheme}://{user}:not-the-password-{os.getpid()}@{rest.split('@', 1)[1]}"
    refused = client(wrong, "login")
    assert refused.returncode == 3 and "authentication failed" in refused.stdout, refused.stdout + refused.stderr


def test_forty_clients_share_five_server_connections_over_tls_and_the_exporter_sees_them_wait(
        pgbouncer, states, postgres, workdir):
    log = workdir / "exporter.log"
    config = states["monitoring-exporter-pgbouncer-config"]["args"]["name"]
    # as the package's unit with our drop-in runs it: User=postgres, CONFIG, ExecStart the compatibility
    # wrapper (Debian 12's exporter 1.7 alone dies on PgBouncer 1.18's SHOW STATS)
    dropin = states["monitoring-exporter-pgbouncer-dropin"]["text"].splitlines()
    assert "ExecStart=/usr/bin/python3 /usr/local/sbin/airflow-ha-pgbouncer-exporter" in dropin
    compat = states["monitoring-exporter-pgbouncer-compat"]["args"]["name"]
    exporter = start(["/usr/bin/env", f"CONFIG={config}", "/usr/bin/python3", compat], log)
    seen = {"backends": 0, "tls": 0, "cl_waiting": 0, "exported_waiting": 0.0}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            total, tls = server_backends(postgres)
            seen["backends"], seen["tls"] = max(seen["backends"], total), max(seen["tls"], tls)
            pools = [p for p in admin(workdir, "SHOW POOLS") if p["database"] == "airflow"]
            seen["cl_waiting"] = max([seen["cl_waiting"]] + [int(p["cl_waiting"]) for p in pools])
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{EXPORTER_PORT}/metrics", timeout=5).read().decode()
                m = re.search(r'^pgbouncer_waiting_clients\{database="airflow",user="airflow"\} (\S+)$', text, re.M)
                if m:
                    seen["exported_waiting"] = max(seen["exported_waiting"], float(m.group(1)))
                    seen["exported"] = True
            except OSError:
                pass
            time.sleep(0.2)

    try:
        wait_port(EXPORTER_PORT, exporter, log)
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            fan = client(env_url(states), "fanout", str(CLIENTS), "0.4", timeout=180)
        finally:
            stop.set()
            watcher.join()
    finally:
        stop_groups([exporter])
    assert fan.returncode == 0, fan.stdout + fan.stderr
    result = json.loads(fan.stdout)
    print(f"FIGURE pgbouncer: {CLIENTS} clients x 2 transactions of 0.4 s on a pool of {POOL_SIZE}: "
          f"{result['seconds']} s, {result['server_pids']} server connections seen by the clients, at most "
          f"{seen['backends']} airflow backends on the server ({seen['tls']} over TLS), cl_waiting up to "
          f"{seen['cl_waiting']}, exporter pgbouncer_waiting_clients up to {seen['exported_waiting']:.0f}")
    assert result["done"] == CLIENTS and not result["errors"], result
    # transaction pooling: every client ran, never more than the pool's server connections
    assert 1 <= result["server_pids"] <= POOL_SIZE and 1 <= seen["backends"] <= POOL_SIZE, (result, seen)
    # 80 transactions of 0.4 s on 5 connections: at least 6.4 s (one connection each: under 1 s)
    assert result["seconds"] >= 2 * 0.4 * CLIENTS / POOL_SIZE * 0.9, result
    assert seen["tls"] == seen["backends"], seen  # pg_stat_ssl: every server connection is TLS
    assert seen["cl_waiting"] > 0, seen  # the admin console (SHOW POOLS) shows the queue
    assert seen.get("exported") and seen["exported_waiting"] > 0, seen  # what PgBouncerClientsWaiting reads


def test_verify_full_refuses_a_server_certificate_of_another_ca(pgbouncer, states, postgres, workdir, pki):
    """The same configuration with the other CA as server_tls_ca_file: the login to the server fails."""
    d = workdir / "rogue"
    (d / "run").mkdir(parents=True)
    shutil.chown(d / "run", "postgres", "postgres")
    text = states["airflow-pgbouncer-config"]["text"]
    text = re.sub(r"^server_tls_ca_file = .*$", f"server_tls_ca_file = {pki / 'other-ca.crt'}", text, flags=re.M)
    text = re.sub(r"^listen_port = .*$", f"listen_port = {PGB_ROGUE_PORT}", text, flags=re.M)
    text = re.sub(r"^unix_socket_dir = .*$", f"unix_socket_dir = {d / 'run'}", text, flags=re.M)
    assert f"server_tls_ca_file = {pki / 'other-ca.crt'}" in text and "server_tls_sslmode = verify-full" in text
    ini = d / "pgbouncer.ini"
    ini.write_text(text)
    ini.chmod(0o644)
    log = d / "pgbouncer.log"
    proc = start([PGBOUNCER, ini], log)
    try:
        wait_port(PGB_ROGUE_PORT, proc, log)
        refused = client(env_url(states).replace(f":{PGB_PORT}/", f":{PGB_ROGUE_PORT}/"), "login", timeout=60)
    finally:
        stop_groups([proc])
    assert refused.returncode == 3, refused.stdout + refused.stderr
    # PgBouncer retries the server login every server_login_retry; the client gives up at its connect_timeout
    assert "TLS handshake error: handshake failed: error:0A000086:SSL routines::certificate verify failed" in \
        log.read_text(), log.read_text()[-2000:]
    assert "SSL established" not in log.read_text()
