"""LDAP login on the 2.x line: the real slapd of test_auth_ldap.py (the
fixtures of tests/airflow/conftest.py) and the real Airflow 2 webserver app
(Flask, FAB provider 1.x) from the pinned 2.x venv, with the files the states
write.

The airflow states of af1 are compiled with pillar airflow: {major: 2, ...}
and airflow:auth:ldap pointing at that slapd; airflow.cfg, the env file,
webserver_config.py and the break-glass admin script are written as the
states write them, `airflow db migrate` and the break-glass admin run as
their states run them (a scratch PostgreSQL, as the Airflow 3 test). Then ONE
process of the 2.x venv builds the webserver's Flask app (airflow.www.app,
what `airflow webserver` serves) and logs in through FAB's login form (GET
/login/ for the CSRF token, POST /login/) and the REST API's basic auth, with
Flask's test client: no server, no gunicorn.

Checked: ada (airflow-admins) logs in with the Admin role; refused: nora (in
no mapped group), a wrong password, dave (disabled); the break-glass admin
logs in with its DB password, not with a directory password; the REST API's
basic auth (airflow_ha's calls on 2.x) goes the same way; the audit log
(table `log`) holds the logins and refusals; the app runs the security
manager of webserver_config.py ([webserver] config_file) and the session
settings of the pillar.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

import _modules.airflow_ha as airflow_ha
from tests.helpers.inventory import REPO, pinned_airflow
from tests.helpers.ldap_server import compile_states, run_cmd_state, secrets_of, slapd_missing, write_files
from clusters import state_render

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# slapd and PostgreSQL on LDAP_PORT and PG_PORT: the fixtures of tests/airflow/conftest.py
LDAP_PORT, PG_PORT, API_PORT = 16380, 15660, 18120
# the pinned 2.x venv (tools/install-deps.sh); AIRFLOW_HA_PIN2 names another (a copy with new pins)
VENV = Path(os.environ.get("AIRFLOW_HA_PIN2", "/var/cache/airflow-ha/pin2"))
URL = f"http://127.0.0.1:{API_PORT}"

if slapd_missing():
    pytest.skip(slapd_missing(), allow_module_level=True)
if not any((VENV / "lib").glob("python3*/site-packages/ldap/__init__.py")):
    pytest.skip(f"{VENV} lacks python-ldap: make deps installs requirements/airflow-2.txt into it",
                allow_module_level=True)

# Run by the 2.x venv's python with the env file's environment; the attempts
# (user, password, how) come on stdin, never on a command line.
APP_SCRIPT = r'''
import base64, json, re, sys, time
from datetime import timedelta

attempts = json.load(sys.stdin)
started = time.monotonic()
from airflow.www.app import create_app

app = create_app()
build = time.monotonic() - started
sm = app.appbuilder.sm
out = {"build_seconds": round(build, 1), "security_manager": type(sm).__name__, "auth_type": sm.auth_type,
       "cookie_secure": app.config["SESSION_COOKIE_SECURE"], "cookie_samesite": app.config["SESSION_COOKIE_SAMESITE"],
       "lifetime_minutes": app.config["PERMANENT_SESSION_LIFETIME"] / timedelta(minutes=1), "attempts": []}
for n, (user, password, how) in enumerate(attempts, 1):
    # a browser of its own: no session of another attempt, and its own address
    # (FAB limits login POSTs to 5 per 40 s per client address, [fab] auth_rate_limit)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"127.0.1.{n}"
    started = time.monotonic()
    post = None
    if how == "form":
        page = client.get("/login/")
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
        post = client.post("/login/", data={"username": user, "password": password, "csrf_token": token}).status_code
        # logged in: the home page; else FAB's redirect back to the login form
        status = client.get("/home").status_code
    else:
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        status = client.get("/api/v1/dags?limit=1", headers={"Authorization": "Basic " + auth}).status_code
    seconds = time.monotonic() - started
    with app.app_context():
        found = sm.find_user(username=user)
        roles = sorted(r.name for r in found.roles) if found else None
    out["attempts"].append({"user": user, "how": how, "post": post, "status": status, "roles": roles,
                            "seconds": seconds})
from sqlalchemy import text
from airflow.settings import engine

with engine.connect() as db:
    out["log"] = [list(r) for r in db.execute(text(
        "SELECT event, owner, extra FROM log WHERE event LIKE 'login%' ORDER BY id"))]
print("RESULT " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def airflow_states(workdir, pki, ldap_states, salt_env, tmp_path_factory):
    home = workdir / "home"
    version = pinned_airflow(2)
    pillar = {"airflow": {
        "major": 2, "version": version, "requirements": "airflow-2.txt",
        "home": str(home), "venv": str(VENV), "venv_dir": str(VENV), "env_file": str(home / "airflow.env"),
        "dags_folder": str(workdir / "dags"), "db_port": PG_PORT, "api_port": API_PORT,
        "auth": {"ldap": {"server": f"ldaps://127.0.0.1:{LDAP_PORT}", "ca_file": str(pki / "test-ca.crt")},
                 # not the defaults: the app must show what the pillar says
                 "session_lifetime_minutes": 30, "session_cookie_samesite": "Strict"},
    }}
    overrides = {"airflow": {**state_render.loopback_db(PG_PORT), "rabbit_hosts": ["127.0.0.1:1"],
                             "api_url": URL, "statsd_host": "127.0.0.1"}}
    return compile_states("af1", ["airflow.migrate", "airflow.webserver"], pillar, overrides, salt_env,
                          tmp_path_factory)


@pytest.fixture(scope="module")
def logins(workdir, airflow_states, slapd, postgres, salt_env):
    """The Flask app's answers to the login attempts below and the audit log after them."""
    states, home = airflow_states, workdir / "home"
    (workdir / "dags").mkdir()
    (home / "logs").mkdir(parents=True)
    write_files(states, ["airflow-cfg", "airflow-celery-config", "airflow-env", "airflow-admin-password",
                         "airflow-webserver-config", "airflow-admin-script"])
    # the search account's password (contents_pillar of the state): the directory's seed is of the TLS env
    bind_file = Path(states["airflow-ldap-bind-password"]["args"]["name"])
    bind_file.write_text(slapd[1]["ldap"]["bind_password"])
    bind_file.chmod(0o600)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env = dict(base_env, **airflow_ha._read_env_file(states["airflow-env"]["args"]["name"]))
    started = time.monotonic()
    assert run_cmd_state(states, "airflow-db-migrated", base_env)
    assert run_cmd_state(states, "airflow-admin-user", base_env)
    prepared = time.monotonic() - started
    pw, admin_pw = slapd[1]["ldap"]["seed_password"], secrets_of(salt_env)["airflow"]["admin_password"]
    attempts = [("ada", pw, "form"), ("nora", pw, "form"), ("vera", pw + "x", "form"), ("dave", pw, "form"),
                ("admin", admin_pw, "form"), ("admin", pw, "form"),
                ("ada", pw, "basic"), ("nora", pw, "basic"), ("admin", admin_pw, "basic")]
    started = time.monotonic()
    proc = subprocess.run([VENV / "bin" / "python", "-c", APP_SCRIPT], input=json.dumps(attempts), env=env,
                          cwd=home, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("RESULT "))[7:])
    print(f"\nFIGURE Airflow 2 LDAP test: db migrate + break-glass admin {prepared:.0f} s, one app process "
          f"{time.monotonic() - started:.0f} s (create_app {result['build_seconds']} s)")
    return result


def attempt(logins, user, how="form", index=0):
    return [a for a in logins["attempts"] if a["user"] == user and a["how"] == how][index]


def test_rendered_for_the_2x_line(airflow_states):
    cfg = airflow_states["airflow-cfg"]["text"]
    home = Path(airflow_states["airflow-cfg"]["args"]["name"]).parent
    webserver = cfg.split("\n[webserver]\n")[1].split("\n[")[0]
    assert f"config_file = {home}/webserver_config.py" in webserver
    assert "cookie_samesite = Strict" in webserver and "session_lifetime_minutes = 30" in webserver
    assert "auth_manager = " not in cfg  # Airflow 2.11's default is FAB's
    wsc = airflow_states["airflow-webserver-config"]["text"]
    assert "AUTH_TYPE = AUTH_LDAP" in wsc and f'"ldaps://127.0.0.1:{LDAP_PORT}"' in wsc
    assert "session = self.get_session" in wsc  # providers-fab 1.x
    assert '"cn=airflow-admins,ou=groups,dc=lab,dc=internal": ["Admin"]' in wsc
    bind = airflow_states["airflow-ldap-bind-password"]["args"]
    assert bind["mode"] == "0600" and bind["show_changes"] is False and "contents_pillar" in bind
    # the webserver restarts on a new search account's password, as the api-server does
    assert {"file": "airflow-ldap-bind-password"} in airflow_states["airflow-webserver-running"]["args"]["watch"]
    assert airflow_states["airflow-webserver-unit"]["args"]["context"]["args"] == f"webserver --port {API_PORT}"


def test_the_app_runs_webserver_config(logins):
    assert logins["security_manager"] == "AirflowHaSecurityManager"
    assert logins["auth_type"] == 2  # flask_appbuilder.const.AUTH_LDAP
    # Airflow 2 sets these from [webserver] after reading webserver_config.py
    assert logins["cookie_samesite"] == "Strict" and logins["cookie_secure"] is False  # salt_env: TLS off
    assert logins["lifetime_minutes"] == 30


def test_ldap_logins_and_refusals(logins):
    # every form POST was answered by the login view (a redirect either way), not by CSRF or the rate limit
    assert {a["post"] for a in logins["attempts"] if a["how"] == "form"} == {302}, logins["attempts"]
    ada = attempt(logins, "ada")
    # the mapped group's role, and the registration role Public (no permission), as on Airflow 3
    assert ada["status"] == 200 and ada["roles"] == ["Admin", "Public"], ada
    print(f"\nFIGURE Airflow 2 login form with LDAP (ldaps, search + bind + role sync): {ada['seconds']:.2f} s")
    # nora: FAB registers it with the Public role only, and it is refused
    nora = attempt(logins, "nora")
    assert nora["status"] == 302 and nora["roles"] in (None, ["Public"]), nora
    assert attempt(logins, "vera")["status"] == 302  # wrong password
    dave = attempt(logins, "dave")
    assert dave["status"] == 302 and dave["roles"] is None, dave  # disabled: outside the search filter
    # the break-glass admin: its DB password, never the directory
    admin = attempt(logins, "admin")
    assert admin["status"] == 200 and "Admin" in admin["roles"], admin
    assert attempt(logins, "admin", index=1)["status"] == 302


def test_rest_api_basic_auth_goes_the_same_way(logins):
    assert attempt(logins, "ada", "basic")["status"] == 200
    assert attempt(logins, "admin", "basic")["status"] == 200  # airflow_ha's 2.x calls
    assert attempt(logins, "nora", "basic")["status"] in (401, 403)


def test_audit_log(logins, slapd):
    rows = logins["log"]
    print("\nFIGURE audit log (table log) of the Airflow 2 logins: "
          + "; ".join(f"{event} {owner} ({extra})" for event, owner, extra in rows))
    events = {(event, owner) for event, owner, _ in rows}
    for user in ("ada", "admin"):
        assert ("login", user) in events, (user, rows)
    for user in ("nora", "vera", "dave", "admin"):
        assert ("login_failed", user) in events, (user, rows)
    assert ("login", "nora") not in events and ("login", "dave") not in events
    extras = {owner: extra for event, owner, extra in rows if event == "login_failed"}
    assert "no group mapped" in extras["nora"] and "break-glass" in extras["admin"]
    assert slapd[1]["ldap"]["seed_password"] not in json.dumps(rows)  # never the password
