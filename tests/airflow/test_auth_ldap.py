"""Access control end to end (issue 26): a real OpenLDAP slapd and a real
Airflow 3 api-server with the FAB auth manager, both from the states.

The ldap state of db3 (compact) is compiled with its paths moved into a work
directory (the fixtures of tests/airflow/conftest.py); its slapd.conf (checked
by `slaptest` as the state's check_cmd does) and seed are written as the
state writes them, slapd runs as the openldap user on 127.0.0.1 (LDAPS
only, a test CA made with openssl: the cluster CA's certificates name the
lab's addresses), and the seed command runs as Salt runs it (`unless` first,
twice: idempotent). The airflow states of af1 are compiled with pillar
airflow:auth:ldap pointing at that slapd; airflow.cfg, the env file,
webserver_config.py and the break-glass admin script are written as the
states write them, `airflow db migrate` and the break-glass admin run as
their states run them, then the api-server.

Checked through POST /auth/token (FAB) and the REST API: every seeded role's
user logs in, Viewer gets 403 on trigger and on pause, Op triggers, User may
not edit connections; refused: a wrong password, the user in no mapped group,
the disabled user, a user deleted from the directory, and every login while
the directory presents a certificate of another CA; the break-glass admin
logs in without the directory. Prints the login time and what Airflow's audit
log (table `log`) records of logins and refusals.
"""

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import _modules.airflow_ha as airflow_ha
from tests.helpers.inventory import REPO, pinned_airflow
from tests.helpers.ldap_server import bash, compile_states, run_cmd_state, secrets_of, slapd_missing, write_files
from clusters import state_render
from clusters.processes import stop_groups

# lab_covered: the lab's auth drill (every role, the refusals, the audit log, Flower, the login page);
# make test-loopback keeps the deleted user and the directory of another CA
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.lab_covered]

# slapd and PostgreSQL on LDAP_PORT and PG_PORT: the fixtures of tests/airflow/conftest.py
LDAP_PORT, PG_PORT, API_PORT, FLOWER_PORT = 16360, 15630, 18100, 18105
# the pinned venv (tools/install-deps.sh); AIRFLOW_HA_PIN3 names another (a copy with new pins)
VENV = Path(os.environ.get("AIRFLOW_HA_PIN3", "/var/cache/airflow-ha/pin3"))
URL = f"http://127.0.0.1:{API_PORT}"


def _fab_installed():
    return any((VENV / "lib").glob("python3*/site-packages/airflow/providers/fab/auth_manager"))


if slapd_missing():
    pytest.skip(slapd_missing(), allow_module_level=True)
if not _fab_installed():
    pytest.skip(f"{VENV} lacks apache-airflow-providers-fab: make deps rebuilds it from requirements/airflow-3.txt",
                allow_module_level=True)


# ------------------------------------------------------------------- Airflow
@pytest.fixture(scope="module")
def airflow_states(workdir, pki, ldap_states, salt_env, tmp_path_factory):
    home = workdir / "home"
    version = pinned_airflow(3)
    pillar = {"airflow": {
        "version": version, "home": str(home), "venv": str(VENV), "venv_dir": str(VENV), "env_file": str(home / "airflow.env"),
        "dags_folder": str(workdir / "dags"), "db_port": PG_PORT, "api_port": API_PORT, "flower_port": FLOWER_PORT,
        "auth": {"ldap": {"server": f"ldaps://127.0.0.1:{LDAP_PORT}", "ca_file": str(pki / "test-ca.crt")},
                 "session_lifetime_minutes": 30},
    }}
    overrides = {"airflow": {**state_render.loopback_db(PG_PORT), "rabbit_hosts": ["127.0.0.1:1"],
                             "api_url": URL, "statsd_host": "127.0.0.1"}}
    return compile_states("af1", ["airflow.migrate", "airflow.webserver", "airflow.flower"], pillar, overrides, salt_env,
                          tmp_path_factory)


@pytest.fixture(scope="module")
def api_server(workdir, airflow_states, slapd, postgres, salt_env):
    states, home = airflow_states, workdir / "home"
    (workdir / "dags").mkdir()
    for dag in (REPO / "salt" / "dags").glob("*.py"):
        shutil.copy(dag, workdir / "dags")
    (home / "logs").mkdir(parents=True)
    write_files(states, ["airflow-cfg", "airflow-celery-config", "airflow-env", "airflow-admin-password",
                         "airflow-webserver-config", "airflow-admin-script", "airflow-audit-plugin"])
    # the search account's password (contents_pillar of the state): the directory's seed is of the TLS env
    bind_file = Path(states["airflow-ldap-bind-password"]["args"]["name"])
    bind_file.write_text(slapd[1]["ldap"]["bind_password"])
    bind_file.chmod(0o600)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env = dict(base_env, **airflow_ha._read_env_file(states["airflow-env"]["args"]["name"]))
    assert run_cmd_state(states, "airflow-db-migrated", base_env)
    assert run_cmd_state(states, "airflow-admin-user", base_env)
    assert run_cmd_state(states, "airflow-admin-user", base_env) is False  # idempotent
    # the DAGs into the DB without a DAG processor
    proc = subprocess.run([VENV / "bin" / "airflow", "dags", "reserialize"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = shlex.split(states["airflow-webserver-unit"]["args"]["context"]["args"])
    with open(home / "api-server.log", "w") as log:
        server = subprocess.Popen([VENV / "bin" / "airflow", *args], env=env, cwd=home, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"{URL}/api/v2/monitor/health", timeout=5).read()
                break
            except Exception:
                assert time.monotonic() < deadline, (home / "api-server.log").read_text()[-3000:]
                time.sleep(2)
        yield {"env": env, "home": home, "states": states, "admin_password": secrets_of(salt_env)["airflow"][
            "admin_password"]}
    finally:
        stop_groups([server])


def call(method, path, token=None, body=None):
    """(status, JSON or text) of one call to the api-server."""
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(URL + path, method=method, headers=headers,
                                 data=json.dumps(body).encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def login(username, password):
    status, body = call("POST", "/auth/token", body={"username": username, "password": password})
    return status, (body.get("access_token") if isinstance(body, dict) else None)


# ---------------------------------------------------------------------- tests
def test_rendered_config(airflow_states, ldap_states):
    cfg = airflow_states["airflow-cfg"]["text"]
    assert "auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager" in cfg
    assert "simple_auth_manager" not in cfg and "session_lifetime_minutes = 30" in cfg
    wsc = airflow_states["airflow-webserver-config"]["text"]
    assert "AUTH_TYPE = AUTH_LDAP" in wsc and f'"ldaps://127.0.0.1:{LDAP_PORT}"' in wsc
    assert "AUTH_ROLES_SYNC_AT_LOGIN = True" in wsc and 'AUTH_USER_REGISTRATION_ROLE = "Public"' in wsc
    assert '"cn=airflow-viewers,ou=groups,dc=lab,dc=internal": ["Viewer"]' in wsc
    bind = airflow_states["airflow-ldap-bind-password"]["args"]
    assert bind["mode"] == "0600" and bind["show_changes"] is False and "contents_pillar" in bind
    # secrets on no command line
    seed = ldap_states["ldap-seeded"]["args"]
    assert "-y " in seed["name"] and "-w " not in seed["name"] and "-w " not in seed["unless"]
    assert "{SSHA}" in ldap_states["ldap-seed-file"]["text"] and ldap_states["ldap-seed-file"]["args"]["mode"] == "0600"


def test_ldap_roles_and_refusals(api_server, slapd):
    server, secrets = slapd
    pw = secrets["ldap"]["seed_password"]
    tokens, times = {}, []
    for user in ("ada", "otto", "uma", "vera"):
        started = time.monotonic()
        status, token = login(user, pw)
        times.append(time.monotonic() - started)
        assert status == 201 and token, f"{user}: {status}"
        tokens[user] = token
    print(f"\nFIGURE FAB LDAP login (POST /auth/token, ldaps, search + bind + role sync): "
          f"median {sorted(times)[len(times) // 2] * 1000:.0f} ms over {len(times)} users")

    # roles: what each may do
    dag = "airflow_ha_smoke"
    for user in tokens:
        status, _ = call("GET", f"/api/v2/dags/{dag}", tokens[user])
        assert status == 200, f"{user} cannot read the DAG: {status}"
    status, body = call("POST", f"/api/v2/dags/{dag}/dagRuns", tokens["vera"], {"logical_date": None})
    assert status == 403, (status, body)
    status, body = call("PATCH", f"/api/v2/dags/{dag}", tokens["vera"], {"is_paused": False})
    assert status == 403, (status, body)
    status, body = call("POST", f"/api/v2/dags/{dag}/dagRuns", tokens["otto"], {"logical_date": None})
    assert status == 200, (status, body)
    status, body = call("PATCH", f"/api/v2/dags/{dag}", tokens["otto"], {"is_paused": True})
    assert status == 200, (status, body)
    conn = {"connection_id": "auth_test", "conn_type": "http", "host": "example.invalid"}
    status, body = call("POST", "/api/v2/connections", tokens["uma"], conn)
    assert status == 403, (status, body)
    status, body = call("POST", "/api/v2/connections", tokens["otto"], conn)
    assert status == 201, (status, body)
    status, body = call("PATCH", "/api/v2/connections/auth_test", tokens["uma"], conn)
    assert status == 403, (status, body)

    # refused: wrong password, no mapped group, disabled, unknown
    assert login("vera", pw + "x")[0] == 401
    assert login("nora", pw)[0] == 401
    assert login("dave", pw)[0] == 401
    assert login("nobody", pw)[0] == 401
    # the break-glass admin: a DB user, never looked up in the directory
    assert login("admin", api_server["admin_password"])[0] == 201
    assert login("admin", pw)[0] == 401


def test_deleted_user_is_refused(api_server, slapd):
    server, secrets = slapd
    pw = secrets["ldap"]["seed_password"]
    assert login("uma", pw)[0] == 201
    states = server.states
    ldapi = server.ldapi
    admin_dn = "cn=admin,dc=lab,dc=internal"
    root_pw = states["ldap-root-password-file"]["args"]["name"]
    proc = bash(f"ldapdelete -x -H {ldapi} -D '{admin_dn}' -y {root_pw} uid=uma,ou=people,dc=lab,dc=internal")
    assert proc.returncode == 0, proc.stderr
    assert login("uma", pw)[0] == 401


def test_directory_with_a_certificate_of_another_ca_is_refused(api_server, slapd, pki):
    server, secrets = slapd
    pw = secrets["ldap"]["seed_password"]
    server.stop()
    server.start(cert=pki / "rogue.crt", key=pki / "rogue.key")
    try:
        # slapd answers, with a certificate the api-server must not trust
        bash(f"LDAPTLS_CACERT={pki}/other-ca.crt ldapsearch -x -H ldaps://127.0.0.1:{LDAP_PORT} "
                    f"-D cn=airflow-bind,ou=services,dc=lab,dc=internal -y /dev/stdin -s base -b '' "
                    f"</dev/null; true")
        assert login("ada", pw)[0] == 401
        assert login("otto", pw)[0] == 401
        # the break-glass admin still logs in (the DB)
        assert login("admin", api_server["admin_password"])[0] == 201
    finally:
        server.stop()
        server.start()
    assert login("ada", pw)[0] == 201


def test_audit_log(api_server):
    """Airflow's audit log (table `log`) after the tests above: the actions
    (Airflow records them), the logins and refused logins (the security
    manager of webserver_config.py records them) and every 403 with its user,
    method and path (the api-server's plugin airflow_ha_audit.py records them;
    Airflow does not)."""
    script = ("import json, os, sqlalchemy\n"
              "e = sqlalchemy.create_engine(os.environ['AIRFLOW__DATABASE__SQL_ALCHEMY_CONN'])\n"
              "with e.connect() as db:\n"
              "    rows = db.execute(sqlalchemy.text('SELECT event, owner, count(*) FROM log "
              "GROUP BY event, owner ORDER BY event, owner')).all()\n"
              "    denied = db.execute(sqlalchemy.text(\"SELECT owner, extra FROM log "
              "WHERE event = 'permission_denied'\")).all()\n"
              "print(json.dumps([[list(r) for r in rows], [list(r) for r in denied]]))\n")
    proc = subprocess.run([VENV / "bin" / "python", "-c", script], env=api_server["env"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows, denied = json.loads(proc.stdout.strip().splitlines()[-1])
    print("\nFIGURE audit log (table log) events after the auth test: "
          + "; ".join(f"{event} by {owner}: {n}" for event, owner, n in rows))
    events = {(event, owner) for event, owner, _ in rows}
    assert ("trigger_dag_run", "otto") in events, rows  # the Op's trigger, with its user
    # the logins and refusals (webserver_config.py's security manager writes them; FAB does not)
    for user in ("ada", "otto", "uma", "vera", "admin"):
        assert ("login", user) in events, (user, rows)
    for user in ("vera", "nora", "dave", "nobody", "admin", "uma"):
        assert ("login_failed", user) in events, (user, rows)
    # the 403s of test_ldap_roles_and_refusals, each with its user and request
    denied = {(owner, extra) for owner, extra in denied}
    for owner, request in (("vera", "POST /api/v2/dags/airflow_ha_smoke/dagRuns"),
                           ("vera", "PATCH /api/v2/dags/airflow_ha_smoke"), ("uma", "POST /api/v2/connections")):
        assert (owner, request) in denied, (owner, request, denied)


def test_flower_requires_a_login(api_server, airflow_states):
    """Flower with its unit's arguments and env files: the login comes from
    FLOWER_BASIC_AUTH (its own env file), not the command line; HAProxy's
    health check path answers without it."""
    states, home = airflow_states, api_server["home"]
    write_files(states, ["airflow-flower-env"])
    flower_env = airflow_ha._read_env_file(states["airflow-flower-env"]["args"]["name"])
    user, password = flower_env["FLOWER_BASIC_AUTH"].split(":", 1)
    unit = states["airflow-flower-unit"]["args"]["context"]
    assert password not in unit["args"] and states["airflow-flower-env"]["args"]["show_changes"] is False
    assert unit["env_files"] == [states["airflow-flower-env"]["args"]["name"]]
    env = dict(api_server["env"], **flower_env)
    with open(home / "flower.log", "w") as log:
        proc = subprocess.Popen([VENV / "bin" / "airflow", *shlex.split(unit["args"])], env=env, cwd=home,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{FLOWER_PORT}"

    def get(path, auth=None):
        req = urllib.request.Request(url + path)
        if auth:
            import base64

            req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (home / "flower.log").read_text()[-2000:]
            try:
                status = get("/healthcheck")
                break
            except OSError:
                assert time.monotonic() < deadline, (home / "flower.log").read_text()[-2000:]
                time.sleep(1)
        assert status == 200  # HAProxy's health check (haproxy:flower_health_path)
        assert get("/") == 401
        assert get("/api/workers") == 401
        assert get("/", f"{user}:{password}x") == 401
        assert get("/", f"{user}:{password}") == 200
    finally:
        stop_groups([proc], timeout=30)


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no headless Chromium")
def test_the_login_page_is_fabs(api_server, tmp_path):
    """The drill's login-page check (tools/lab/drill_auth.py) against this
    api-server: FAB's login form, no simple auth manager."""
    import sys

    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill_auth

    failures = []
    page = drill_auth.login_page(URL, None, failures, out=tmp_path)
    assert not failures, (failures, page)
    print(f"\nFIGURE login page rendered by headless Chromium in {page['seconds']} s ({page['dom_bytes']} bytes of DOM)")
