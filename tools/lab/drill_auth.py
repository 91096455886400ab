"""Access-control drill on the running lab (issue 26, docs/access-control.md):
every login goes through the VIP (HAProxy, https with TLS) to the api-servers'
FAB auth manager and the ldap role's slapd.

    .venv/bin/python tools/lab/drill.py auth

- each seeded directory user (salt/ldap/defaults.yaml ldap:seed, password
  secrets:ldap:seed_password) logs in through POST /auth/token; the user in no
  mapped group, the disabled user and a wrong password are refused (401);
- the roles hold: every role reads the smoke DAG, Viewer gets 403 on a trigger
  and on pausing it, Op triggers it, User may not create a connection (Op may,
  and deletes it again);
- the break-glass admin (FAB user in the DB, secrets:airflow:admin_password)
  logs in;
- Flower through the VIP answers 401 without credentials, 200 with them;
- the HTTPS frontend sends Strict-Transport-Security;
- a headless Chromium renders the login page (screenshot under .lab/) and its
  DOM holds a login form and no "Simple auth manager" text.

- Airflow's audit log (REST API /eventLogs, as the break-glass admin) holds
  each login and refused login of the drill, with the user, and each 403 of
  the role checks (event permission_denied: the api-server's audit plugin,
  salt/airflow/files/airflow_ha_audit.py), with the user, method and path.
- RabbitMQ's changes (issue 22): a throwaway user made, granted nothing and
  deleted with rabbitmqctl on a RabbitMQ host; RabbitMQ's three lines for it
  reach the log host (salt/logs tails RabbitMQ's log).

FIGURE lines: the login round trip through the VIP (median and max over every
login), Flower's answer without credentials, the login page check, the audit
rows, and the time the auth layer adds to a highstate (the ldap role's render
and no-change apply, the auth states of one api-server host).
"""

import base64
import json
import shutil
import ssl
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime

import yaml

import drill as lab  # noqa: E402  (tools/lab/drill.py: api_base, port, REPO)

ROLES_OF_GROUPS = None  # filled from ldap:seed


def _context(ca_file):
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


def http(method, url, ca_file, body=None, headers=None, timeout=30):
    """(status, headers, JSON or text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, headers=dict(headers or {}),
                                 data=json.dumps(body).encode() if body is not None else None)
    if body is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_context(ca_file)) as resp:
            status, hdrs, text = resp.status, dict(resp.headers), resp.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        status, hdrs, text = exc.code, dict(exc.headers), exc.read().decode(errors="replace")
    try:
        return status, hdrs, json.loads(text)
    except ValueError:
        return status, hdrs, text


def seed_users():
    """The lab's seed: {uid: (roles, disabled)} from salt/ldap/defaults.yaml."""
    seed = yaml.safe_load((lab.REPO / "salt" / "ldap" / "defaults.yaml").read_text())["seed"]
    users = {}
    for user in seed["users"]:
        roles = sorted({seed["groups"][g] for g in user.get("groups") or [] if g in seed["groups"]})
        users[user["uid"]] = (roles, bool(user.get("disabled")))
    return users


def secrets():
    return yaml.safe_load((lab.REPO / ".secrets" / "airflow_ha_secrets.sls").read_text())["secrets"]


def login(base, ca_file, username, password):
    started = time.monotonic()
    status, _, body = http("POST", f"{base}/auth/token", ca_file, {"username": username, "password": password})
    elapsed = time.monotonic() - started
    return status, (body.get("access_token") if isinstance(body, dict) else None), elapsed


def check(condition, what, failures):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise RuntimeError("no headless Chromium on this machine: apt-get install chromium")


def login_page(base, ca_file, failures, out=None):
    """Screenshot and DOM of the login page in a headless Chromium; the DOM must
    hold a login form and no trace of the simple auth manager."""
    browser = chromium()
    out = out or lab.REPO / ".lab"
    out.mkdir(exist_ok=True)
    shot = out / "auth-login.png"
    url = f"{base}/auth/login/"
    # the cluster CA is not in Chromium's store here: the certificate was verified above (urllib, CA file)
    common = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
              "--window-size=1280,900", "--virtual-time-budget=8000"]
    started = time.monotonic()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    seconds = time.monotonic() - started
    lowered = dom.lower()
    check("simple auth manager" not in lowered, "login page: no 'Simple auth manager' text", failures)
    check('name="password"' in lowered or "type=\"password\"" in lowered, "login page: a password field", failures)
    check(shot.exists() and shot.stat().st_size > 0, f"login page screenshot {shot}", failures)
    return {"screenshot": str(shot), "dom_bytes": len(dom), "seconds": round(seconds, 1)}


def audit_rows(inv, token, since):
    """Airflow's audit log since ``since`` (epoch), read with ``token``: {(event, owner): [extra]}."""
    rows = {}
    for row in lab.audit_log(inv, since, f"Bearer {token}"):
        rows.setdefault((row["event"], row["owner"]), []).append(row.get("extra") or "")
    return rows


def audit_on_log_host(inv, since):
    """{(event, owner)} of Airflow's audit rows since ``since`` (epoch) as they reached the log host(s):
    PostgreSQL's server log lines ``airflow_ha_audit {row as JSON}`` (the trigger of
    salt/airflow/files/airflow_ha_audit_trigger.py), forwarded by rsyslog (salt/logs)."""
    found = set()
    for host in lab.roles(inv, "logs"):
        out = lab.run(host, "grep -rhF 'airflow_ha_audit {' /var/log/remote/ 2>/dev/null; exit 0", timeout=120).stdout
        for line in out.splitlines():
            try:
                row = json.loads(line.split("airflow_ha_audit ", 1)[1])
            except (IndexError, ValueError):
                continue
            when = row.get("dttm") or ""
            if when and datetime.fromisoformat(when).timestamp() >= since - 1:
                found.add((row.get("event"), row.get("owner")))
    return found


# what RabbitMQ 3.10+ logs (rabbit_auth_backend_internal) for a user made, granted and deleted
RABBITMQ_CHANGES = ("Created user '{user}'", "Successfully set permissions for '{user}' in virtual host '/'",
                    "Deleted user '{user}'")


def rabbitmq_changes_on_log_host(inv, timeout=60):
    """A throwaway RabbitMQ user made (its password on rabbitmqctl's standard input, never on a command line),
    granted nothing on '/', deleted, on the first RabbitMQ host: ({line: found on the log host}, that host)."""
    host, user = lab.roles(inv, "rabbitmq")[0], f"drill-{int(time.time())}"
    lab.run(host, f"head -c 18 /dev/urandom | base64 | rabbitmqctl add_user {user} >/dev/null && "
                  f"rabbitmqctl set_permissions -p / {user} '^$' '^$' '^$' >/dev/null && "
                  f"rabbitmqctl delete_user {user} >/dev/null")
    wanted = [line.format(user=user) for line in RABBITMQ_CHANGES]
    found, started = {}, time.monotonic()
    while time.monotonic() - started < timeout:
        text = "".join(lab.run(logs, f"cat /var/log/remote/{host}/rabbitmq.log 2>/dev/null; exit 0").stdout
                       for logs in lab.roles(inv, "logs"))
        found = {line: line in text for line in wanted}
        if all(found.values()):
            break
        time.sleep(2)
    return found, host


def salt_durations(master, target, sls):
    """(wall seconds of `salt TARGET state.apply SLS`, sum of its states' own durations in s, states changed)."""
    started = time.monotonic()
    proc = lab.run(master, f"salt {target} state.apply {sls} --out=json --static", timeout=600)
    wall = time.monotonic() - started
    states = json.loads(proc.stdout)[target]
    return wall, sum(s.get("duration", 0) for s in states.values()) / 1000, sum(bool(s["changes"]) for s in
                                                                               states.values())


def auth_layer_cost(inv):
    """What the auth layer adds to a highstate: the ldap role (render and a no-change apply) and, on one
    api-server host, the auth states of airflow.config and airflow.webserver (their own durations)."""
    master = next(iter(inv["hosts"]))
    ldap_host, api_host = lab.roles(inv, "ldap")[0], lab.roles(inv, "webserver")[0]
    started = time.monotonic()
    lab.run(master, f"salt {ldap_host} state.show_sls ldap --out=json --static >/dev/null", timeout=600)
    render = time.monotonic() - started
    wall, own, changed = salt_durations(master, ldap_host, "ldap")
    proc = lab.run(master, f"salt {api_host} state.apply airflow.webserver --out=json --static", timeout=900)
    auth_ids = ("airflow-webserver-config", "airflow-ldap-bind-password", "airflow-audit-plugin")
    auth_own = sum(s.get("duration", 0) for s in json.loads(proc.stdout)[api_host].values()
                   if s.get("__id__") in auth_ids) / 1000
    print(f"FIGURE drill auth: the auth layer in a highstate: ldap role on {ldap_host} rendered in {render:.1f} s, "
          f"applied in {wall:.1f} s ({own:.2f} s in its states, {changed} changed); the auth states on "
          f"{api_host} {auth_own:.2f} s", flush=True)
    return {"ldap_render_s": render, "ldap_apply_s": wall, "ldap_states_s": own, "ldap_changed": changed,
            "airflow_auth_states_s": auth_own}


def drill_auth(inv):
    base, ca_file = lab.api_base(inv)
    since = time.time()
    s = secrets()
    seed_password = s["ldap"]["seed_password"]
    failures, times, tokens, uid_of = [], [], {}, {}
    users = seed_users()

    # logins: every user with a role in, the others out
    for uid, (roles, disabled) in sorted(users.items()):
        status, token, elapsed = login(base, ca_file, uid, seed_password)
        if roles and not disabled:
            times.append(elapsed)
            check(status == 201 and token, f"{uid} ({','.join(roles)}) logs in through the VIP: {status}", failures)
            tokens[roles[0]] = token
            uid_of[roles[0]] = uid
        else:
            why = "disabled" if disabled else "in no mapped group"
            check(status == 401, f"{uid} ({why}) is refused: {status}", failures)
    status, _, _ = login(base, ca_file, next(iter(users)), seed_password + "x")
    check(status == 401, f"a wrong password is refused: {status}", failures)
    status, token, elapsed = login(base, ca_file, "admin", s["airflow"]["admin_password"])
    times.append(elapsed)
    check(status == 201 and token, f"the break-glass admin logs in: {status}", failures)
    # more round trips for the figure
    for _ in range(3):
        for uid, (roles, disabled) in sorted(users.items()):
            if roles and not disabled:
                times.append(login(base, ca_file, uid, seed_password)[2])

    # what each role may do
    dag = "airflow_ha_smoke"

    def api(method, path, role, body=None):
        return http(method, f"{base}/api/v2{path}", ca_file, body,
                    {"Authorization": f"Bearer {tokens[role]}"})[0]

    for role in ("Admin", "Op", "User", "Viewer"):
        if role in tokens:
            check(api("GET", f"/dags/{dag}", role) == 200, f"{role} reads the DAG", failures)
    if "Viewer" in tokens:
        check(api("POST", f"/dags/{dag}/dagRuns", "Viewer", {"logical_date": None}) == 403,
              "Viewer may not trigger (403)", failures)
        check(api("PATCH", f"/dags/{dag}", "Viewer", {"is_paused": True}) == 403,
              "Viewer may not pause (403)", failures)
    if "Op" in tokens:
        check(api("POST", f"/dags/{dag}/dagRuns", "Op", {"logical_date": None}) == 200, "Op triggers the DAG",
              failures)
    conn = {"connection_id": "drill_auth_probe", "conn_type": "http", "host": "example.invalid"}
    if "User" in tokens:
        check(api("POST", "/connections", "User", conn) == 403, "User may not create a connection (403)", failures)
    if "Op" in tokens:
        status = api("POST", "/connections", "Op", conn)
        check(status in (201, 409), f"Op creates a connection: {status}", failures)
        check(api("DELETE", "/connections/drill_auth_probe", "Op") == 204, "Op deletes it", failures)

    # HSTS on the https frontend
    if base.startswith("https"):
        _, headers, _ = http("GET", f"{base}/api/v2/monitor/health", ca_file)
        hsts = {k.lower(): v for k, v in headers.items()}.get("strict-transport-security", "")
        check(hsts.startswith("max-age="), f"HSTS header on the UI: {hsts!r}", failures)

    # Flower through the VIP
    vip = inv["vips"]["main"]["ip"]
    scheme = "https" if ca_file else "http"
    flower = f"{scheme}://{vip}:{lab.port('haproxy', 'Flower')}/"
    flower_anon = http("GET", flower, ca_file)[0]
    check(flower_anon == 401, f"Flower without credentials: {flower_anon}", failures)
    user = yaml.safe_load((lab.REPO / "salt" / "airflow" / "defaults.yaml").read_text())["flower_user"]
    auth = base64.b64encode(f"{user}:{s['airflow']['flower_password']}".encode()).decode()
    flower_ok = http("GET", flower, ca_file, headers={"Authorization": f"Basic {auth}"})[0]
    check(flower_ok == 200, f"Flower with its credentials: {flower_ok}", failures)

    page = login_page(base, ca_file, failures)

    # the audit log: every login and refusal above, and every 403, with its user
    rows = audit_rows(inv, tokens.get("Admin") or token, since)
    for uid, (roles, disabled) in sorted(users.items()):
        event = "login" if roles and not disabled else "login_failed"
        check((event, uid) in rows, f"audit log: {event} of {uid}", failures)
    check(("login", "admin") in rows, "audit log: login of the break-glass admin", failures)
    denied = {(role, what) for role, what in (("Viewer", "POST /api/v2/dags/airflow_ha_smoke/dagRuns"),
                                              ("Viewer", "PATCH /api/v2/dags/airflow_ha_smoke"),
                                              ("User", "POST /api/v2/connections")) if role in uid_of}
    for role, what in sorted(denied):
        got = rows.get(("permission_denied", uid_of[role]), [])
        check(what in got, f"audit log: permission_denied of {uid_of[role]} ({role}) for {what}: {got}", failures)
    denied_rows = sum(len(v) for (event, _), v in rows.items() if event == "permission_denied")
    # the same rows on the log host (the audit trail off the hosts that wrote it)
    wanted = {key for key in rows if key[0] in ("login", "login_failed", "permission_denied")}
    started, shipped = time.monotonic(), set()
    while time.monotonic() - started < 90:
        shipped = audit_on_log_host(inv, since)
        if wanted <= shipped:
            break
        time.sleep(5)
    missing = sorted(wanted - shipped, key=str)
    check(not missing, f"audit log on the log host: {len(wanted) - len(missing)} of {len(wanted)} (event, user) pairs"
          + (f", missing {missing}" if missing else ""), failures)
    print(f"FIGURE drill auth: audit trail on the log host ({', '.join(lab.roles(inv, 'logs'))}): "
          f"{len(wanted) - len(missing)} of {len(wanted)} (event, user) pairs of the drill, the Viewer's refused "
          f"trigger included: {('permission_denied', uid_of.get('Viewer')) in shipped}", flush=True)
    print(f"FIGURE drill auth: audit log since the drill began: "
          + ", ".join(f"{event} {len(v)}x by {owner}" for (event, owner), v in sorted(rows.items())
                      if event in ("login", "login_failed", "permission_denied")), flush=True)
    rabbit, rabbit_host = rabbitmq_changes_on_log_host(inv)
    check(all(rabbit.values()), f"RabbitMQ's user changes on {rabbit_host} on the log host: {rabbit}", failures)
    print(f"FIGURE drill auth: RabbitMQ user made, granted, deleted on {rabbit_host}: {sum(rabbit.values())} of "
          f"{len(rabbit)} lines on the log host", flush=True)
    cost = auth_layer_cost(inv)

    median, worst = statistics.median(times), max(times)
    print(f"FIGURE drill auth: login round trip through the VIP (POST /auth/token, FAB + LDAPS): median "
          f"{median * 1000:.0f} ms, max {worst * 1000:.0f} ms over {len(times)} logins")
    print(f"FIGURE drill auth: Flower without credentials -> {flower_anon}; login page rendered by headless "
          f"Chromium in {page['seconds']} s, no simple auth manager text: "
          f"{'yes' if not any('Simple auth' in f for f in failures) else 'NO'}")
    if failures:
        raise AssertionError(f"drill auth: {len(failures)} checks failed: {failures}")
    return {"login_median_ms": round(median * 1000), "login_max_ms": round(worst * 1000), "logins": len(times),
            "flower_without_credentials": flower_anon, "login_page": page, "permission_denied_rows": denied_rows,
            "audit_pairs_on_log_host": len(wanted) - len(missing), "audit_pairs": len(wanted), "auth_layer": cost,
            "rabbitmq_changes_on_log_host": sum(rabbit.values()), "rabbitmq_changes": len(rabbit)}
