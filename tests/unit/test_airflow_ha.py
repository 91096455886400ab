"""Unit tests of _modules/airflow_ha.py (no Airflow needed)."""

import base64
import http.server
import json
import re
import threading
import urllib.parse

import pytest
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha

GOOD = {"major": 3, "version": "3.3.2", "api_port": 8080, "log_server_port": 8793, "trigger_log_server_port": 8794, "flower_port": 5555,
        "scheduler_health_port": 8974, "db_port": 5000, "amqp_port": 5672, "worker_concurrency": 8,
        "task_heartbeat_timeout": 120, "orphaned_tasks_check_interval": 60,
        "celery_operation_timeout": 10}


@pytest.fixture
def configure_loader_modules(http_utils):
    return {airflow_ha: {"__utils__": http_utils}}


def test_db_url_quotes_password():
    url = airflow_ha.db_url("airflow", "p@ss/w:rd", "10.0.0.100", 5000, "airflow")
    assert url == "postgresql+psycopg2://airflow:p%40ss%2Fw%3Ard@10.0.0.100:5000/airflow"


def test_result_backend_scheme():
    assert airflow_ha.db_url("a", "b", "h", "5000", "d", "db+postgresql").startswith("db+postgresql://a:b@h:5000/d")


def test_db_url_with_tls_verifies_the_server_against_the_ca():
    url = airflow_ha.db_url("airflow", "p@ss", "10.0.0.100", 5000, "airflow", sslmode="verify-full",
                            sslrootcert="/etc/airflow-ha/pki/ca.crt")
    assert url == ("postgresql+psycopg2://airflow:p%40ss@10.0.0.100:5000/airflow"
                   "?sslmode=verify-full&sslrootcert=/etc/airflow-ha/pki/ca.crt")
    # SQLAlchemy hands the query to libpq as connect arguments, unquoted
    backend = airflow_ha.db_url("a", "b", "h", 5000, "d", "db+postgresql", "verify-full", "/ca dir/ca&.crt")
    assert backend.startswith("db+postgresql://a:b@h:5000/d?")
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(backend).query)) == {
        "sslmode": "verify-full", "sslrootcert": "/ca dir/ca&.crt"}
    with pytest.raises(CommandExecutionError, match="sslrootcert"):
        airflow_ha.db_url("a", "b", "h", 5000, "d", sslmode="verify-full")


def test_db_url_carries_the_libpq_options_that_bound_a_dead_session():
    options = {"connect_timeout": 10, "keepalives": 1, "tcp_user_timeout": 10000, "unset": None}
    url = airflow_ha.db_url("a", "b", "h", 5000, "d", sslmode="verify-full", sslrootcert="/ca.crt", options=options)
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)) == {
        "sslmode": "verify-full", "sslrootcert": "/ca.crt", "connect_timeout": "10", "keepalives": "1",
        "tcp_user_timeout": "10000"}


def test_broker_url_lists_all_hosts():
    url = airflow_ha.broker_url("airflow", "x", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], 5672, "airflow")
    assert url.split(";") == ["amqp://airflow:x@10.0.0.%d:5672/airflow" % i for i in (1, 2, 3)]


def test_broker_url_over_tls_uses_amqps_and_the_port_given():
    url = airflow_ha.broker_url("airflow", "x", ["10.0.0.1", "10.0.0.2:6671"], 5671, "airflow", scheme="amqps")
    assert url.split(";") == ["amqps://airflow:x@10.0.0.1:5671/airflow", "amqps://airflow:x@10.0.0.2:6671/airflow"]
    with pytest.raises(CommandExecutionError, match="amqp or amqps"):
        airflow_ha.broker_url("airflow", "x", ["h"], 5671, "airflow", scheme="https")


def test_public_url_is_https_with_tls():
    assert airflow_ha.public_url("10.0.0.100", 80) == "http://10.0.0.100:80"
    assert airflow_ha.public_url("10.0.0.100", "443", tls=True) == "https://10.0.0.100:443"


@pytest.mark.parametrize("func,args", [
    (airflow_ha.broker_url, ("a", "x", [], 5672, "v")),
    (airflow_ha.broker_url, ("a", "", ["h"], 5672, "v")),
    (airflow_ha.db_url, ("a", "", "h", 5000, "d")),
])
def test_urls_refuse_missing_inputs(func, args):
    with pytest.raises(CommandExecutionError):
        func(*args)


def test_check_settings_ok():
    assert airflow_ha.check_settings(GOOD) is True


@pytest.mark.parametrize("key,value,words", [
    ("major", 4, "airflow:major"),
    ("version", "2.11.0", "airflow:version"),
    ("api_port", "http", "airflow:api_port"),
    ("worker_concurrency", 0, "airflow:worker_concurrency"),
    ("task_heartbeat_timeout", "soon", "airflow:task_heartbeat_timeout"),
    ("orphaned_tasks_check_interval", 0, "airflow:orphaned_tasks_check_interval"),
])
def test_check_settings_names_key(key, value, words):
    with pytest.raises(CommandExecutionError, match=words):
        airflow_ha.check_settings(dict(GOOD, **{key: value}))


@pytest.mark.parametrize("key,value,words", [
    ("execution_api_retries", 2.5, "airflow:execution_api_retries must be a positive whole number"),
    ("execution_api_retries", 0, "airflow:execution_api_retries"),
    ("execution_api_retry_wait_min", "soon", "airflow:execution_api_retry_wait_min"),
    ("execution_api_retry_wait_max", -1, "airflow:execution_api_retry_wait_max"),
])
def test_check_settings_checks_the_execution_api_retries(key, value, words):
    with pytest.raises(CommandExecutionError, match=words):
        airflow_ha.check_settings(dict(GOOD, **{key: value}))


def test_check_settings_refuses_a_retry_wait_min_above_its_max():
    budget = dict(GOOD, execution_api_retries=20, execution_api_retry_wait_min=5, execution_api_retry_wait_max=10)
    assert airflow_ha.check_settings(budget) is True
    with pytest.raises(CommandExecutionError, match="wait_min .12. is above airflow:execution_api_retry_wait_max"):
        airflow_ha.check_settings(dict(budget, execution_api_retry_wait_min=12))


def test_health_parses_airflow3(monkeypatch):
    data = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"},
            "triggerer": {"status": "unhealthy"}, "dag_processor": {"status": "healthy"}}
    monkeypatch.setattr(airflow_ha, "_get_json", lambda url, timeout, ca_file=None: data)
    out = airflow_ha.health(major=3)
    assert out["healthy"] is False and out["components"]["triggerer"] == "unhealthy"
    data["triggerer"]["status"] = "healthy"
    assert airflow_ha.health(major=3)["healthy"] is True


def test_health_unreachable_raises():
    with pytest.raises(CommandExecutionError, match="unreachable"):
        airflow_ha.health(url="http://127.0.0.1:48999", timeout=1)


def test_conn_uri_quotes_every_part():
    import _modules.airflow_ha as airflow_ha

    uri = airflow_ha.conn_uri("ftp", "ftp1", 21, "card ftp", "p/ss@:w#rd", extra={"key_file": "/a b/k"})
    assert uri == "ftp://card%20ftp:p%2Fss%40%3Aw%23rd@ftp1:21?key_file=%2Fa+b%2Fk"


@pytest.mark.parametrize("key", ["amqps_port", "public_tls_port"])
def test_check_settings_checks_the_tls_ports(key):
    assert airflow_ha.check_settings(dict(GOOD, **{key: 5671})) is True
    for bad in ("tls", 0, 70000):
        with pytest.raises(CommandExecutionError, match=f"airflow:{key} must be a TCP port"):
            airflow_ha.check_settings(dict(GOOD, **{key: bad}))


def test_check_settings_requirements_match_major():
    assert airflow_ha.check_settings(dict(GOOD, requirements="airflow-3.txt")) is True
    two = dict(GOOD, major=2, version="2.11.2", requirements="airflow-2.txt")
    assert airflow_ha.check_settings(two) is True
    with pytest.raises(CommandExecutionError, match="airflow:requirements"):
        airflow_ha.check_settings(dict(two, requirements="airflow-3.txt"))


def test_health_parses_airflow2(monkeypatch):
    seen = []
    data = {"metadatabase": {"status": "healthy"},
            "scheduler": {"status": "healthy", "latest_scheduler_heartbeat": "2026-11-23T08:00:00+00:00"},
            "triggerer": {"status": "healthy", "latest_triggerer_heartbeat": None},
            "dag_processor": {"status": None, "latest_dag_processor_heartbeat": None}}
    monkeypatch.setattr(airflow_ha, "_get_json", lambda url, timeout, ca_file=None: seen.append(url) or data)
    out = airflow_ha.health(url="http://h:8080/", major=2)
    assert seen == ["http://h:8080/health"]
    # a standalone DAG processor that never ran reports no status: not healthy
    assert out["healthy"] is False and out["components"]["dag_processor"] is None
    data["dag_processor"]["status"] = "healthy"
    assert airflow_ha.health(url="http://h:8080", major=2)["healthy"] is True


# ------------------------------------------------ REST API against a fake server
RUN_ID = "manual__2026-11-23T08:00:00.123456+00:00"


class FakeAirflow(http.server.BaseHTTPRequestHandler):
    """Answers like Airflow 2 (/api/v1, basic auth) or 3 (/auth/token, /api/v2, Bearer)."""

    major = 2
    requests = []
    variables = {}

    def log_message(self, *args):
        pass

    def _reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
        if self.major >= 3 and self.path == "/auth/token":
            ok = body == {"username": "admin", "password": "s3cr:t"}
            return self._reply(201, {"access_token": "jwt"}) if ok else self._reply(401, {"detail": "no"})
        expected = "Bearer jwt" if self.major >= 3 else "Basic " + base64.b64encode(b"admin:s3cr:t").decode()
        if self.headers.get("Authorization") != expected:
            # Airflow 2's FAB auth manager falls back to the anonymous Public role: 403
            return self._reply(401 if self.major >= 3 else 403, {"title": "Unauthorized"})
        prefix = "/api/v2" if self.major >= 3 else "/api/v1"
        run_path = f"{prefix}/dags/airflow_ha_smoke/dagRuns/{urllib.parse.quote(RUN_ID, safe='')}"
        if self.path.startswith(f"{prefix}/variables"):
            key = urllib.parse.unquote(self.path.rsplit("/", 1)[-1]) if self.path != f"{prefix}/variables" else None
            if self.command == "GET" and key in self.variables:
                return self._reply(200, {"key": key, "value": self.variables[key]})
            if self.command == "POST" and key is None and body["key"] not in self.variables:
                self.variables[body["key"]] = body["value"]
                return self._reply(201, body)
            if self.command == "PATCH" and key in self.variables and body["key"] == key:
                self.variables[key] = body["value"]
                return self._reply(200, body)
            return self._reply(404 if self.command != "POST" else 409, {"title": "no"})
        if self.command == "GET" and self.path == f"{prefix}/dags?limit=1":
            return self._reply(200, {"dags": [], "total_entries": 0})
        if self.command == "PATCH" and self.path == f"{prefix}/dags/airflow_ha_smoke":
            return self._reply(200, {"dag_id": "airflow_ha_smoke", "is_paused": False})
        if self.command == "POST" and self.path == f"{prefix}/dags/airflow_ha_smoke/dagRuns":
            return self._reply(200, {"dag_run_id": RUN_ID, "state": "queued"})
        if self.command == "GET" and self.path == run_path:
            run = {"dag_run_id": RUN_ID, "state": "success", "logical_date": "2026-11-23T08:00:00.123456+00:00",
                   "start_date": "2026-11-23T08:00:01+00:00"}
            if self.major >= 3:
                run.update(logical_date=None, queued_at="2026-11-23T08:00:00.5+00:00")
            return self._reply(200, run)
        if self.command == "GET" and self.path.startswith(run_path + "/taskInstances?"):
            # 250 mapped task instances, served a page at a time like the real API
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            limit, offset = int(query["limit"][0]), int(query["offset"][0])
            rows = [{"task_id": "work", "map_index": i, "state": "success", "try_number": 1, "duration": 0.1}
                    for i in range(250)][offset:offset + min(limit, 100)]
            return self._reply(200, {"task_instances": rows, "total_entries": 250})
        if self.command == "GET" and self.path == run_path + "/taskInstances":
            return self._reply(200, {"task_instances": [
                {"task_id": "report_host", "state": "success", "hostname": "af1", "try_number": 1,
                 "queued_when": "2026-11-23T08:00:02+00:00", "start_date": "2026-11-23T08:00:03+00:00",
                 "end_date": "2026-11-23T08:00:04+00:00", "pid": 42}], "total_entries": 1})
        return self._reply(404, {"title": "Not Found", "path": self.path})

    do_GET = do_POST = do_PATCH = _handle


@pytest.fixture(params=[2, 3])
def fake_airflow(request):
    handler = type("Handler", (FakeAirflow,), {"major": request.param, "requests": [], "variables": {}})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield request.param, f"http://127.0.0.1:{server.server_address[1]}", handler.requests
    server.shutdown()
    server.server_close()


def test_api_token_checks_credentials(fake_airflow):
    major, url, requests = fake_airflow
    token = airflow_ha.api_token(url, password="s3cr:t", major=major)
    if major >= 3:
        assert token == "jwt"
    else:
        # no token in Airflow 2: the basic credentials, once the API accepted them
        assert base64.b64decode(token) == b"admin:s3cr:t"
        assert requests[-1][:2] == ("GET", "/api/v1/dags?limit=1")
    with pytest.raises(CommandExecutionError, match="HTTP 401" if major >= 3 else "HTTP 403.*wrong password"):
        airflow_ha.api_token(url, password="wrong", major=major)


def test_trigger_and_wait_use_the_api_of_the_line(fake_airflow):
    major, url, requests = fake_airflow
    run_id = airflow_ha.trigger_dag("airflow_ha_smoke", url, password="s3cr:t", major=major)
    assert run_id == RUN_ID
    prefix = "/api/v2" if major >= 3 else "/api/v1"
    calls = [(m, p, b) for m, p, a, b in requests if not p.startswith(("/auth/", f"{prefix}/dags?"))]
    body = {"logical_date": None, "conf": {}} if major >= 3 else {"conf": {}}
    assert calls == [("PATCH", f"{prefix}/dags/airflow_ha_smoke", {"is_paused": False}),
                     ("POST", f"{prefix}/dags/airflow_ha_smoke/dagRuns", body)]
    assert {a for m, p, a, b in requests if p.startswith(prefix)} == (
        {"Bearer jwt"} if major >= 3 else {"Basic " + base64.b64encode(b"admin:s3cr:t").decode()})

    run = airflow_ha.wait_dag_run("airflow_ha_smoke", run_id, timeout=5, url=url, password="s3cr:t", major=major)
    assert run["state"] == "success"
    assert run["tasks"]["report_host"] == {"state": "success", "hostname": "af1", "try_number": 1,
                                           "queued_when": "2026-11-23T08:00:02+00:00",
                                           "start_date": "2026-11-23T08:00:03+00:00",
                                           "end_date": "2026-11-23T08:00:04+00:00"}
    # Airflow 2 has no queued_at: an API-triggered run is queued at its logical date
    assert run["queued_at"] == ("2026-11-23T08:00:00.5+00:00" if major >= 3 else "2026-11-23T08:00:00.123456+00:00")


def test_set_variable_creates_then_updates_and_returns_the_old_value(fake_airflow):
    major, url, requests = fake_airflow
    api = {"url": url, "password": "s3cr:t", "major": major}
    assert airflow_ha.variable("airflow_ha_dag_release", **api) is None
    assert airflow_ha.set_variable("airflow_ha_dag_release", "v1", **api) is None
    assert airflow_ha.variable("airflow_ha_dag_release", **api) == "v1"
    assert airflow_ha.set_variable("airflow_ha_dag_release", "v2", **api) == "v1"
    assert airflow_ha.variable("airflow_ha_dag_release", **api) == "v2"
    prefix = "/api/v2" if major >= 3 else "/api/v1"
    assert [(m, p) for m, p, a, b in requests if m != "GET" and p.startswith(prefix)] == [
        ("POST", f"{prefix}/variables"), ("PATCH", f"{prefix}/variables/airflow_ha_dag_release")]


def test_wait_dag_run_raises_on_failure(fake_airflow, monkeypatch):
    major, url, _ = fake_airflow
    monkeypatch.setattr(airflow_ha, "dag_run", lambda *a, **k: {"state": "failed", "tasks": {"t": {}}})
    with pytest.raises(CommandExecutionError, match="failed"):
        airflow_ha.wait_dag_run("d", "r", timeout=5, url=url, password="s3cr:t", major=major)


def test_smoke_test_runs_on_both_lines(fake_airflow, monkeypatch):
    major, url, _ = fake_airflow
    monkeypatch.setattr(airflow_ha, "wait_healthy", lambda *a, **k: {"healthy": True})
    out = airflow_ha.smoke_test(url=url, major=major, timeout=5, password="s3cr:t")
    assert out["state"] == "success" and out["tasks"] == {"report_host": {"state": "success", "hostname": "af1"}}


# ------------------------------------------------ the same API over https (HAProxy's :443 with the cluster CA)
@pytest.fixture
def https_fake_airflow(tmp_path):
    """FakeAirflow (Airflow 3) behind TLS, its certificate issued by a throwaway cluster CA (tools/gen_tls.py)."""
    import ssl

    from clusters import tls_material

    pki = tls_material.issue(str(tmp_path / "pki"))
    handler = type("Handler", (FakeAirflow,), {"major": 3, "requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", pki, handler.requests
    server.shutdown()
    server.server_close()


def test_https_api_is_verified_against_the_ca_file(https_fake_airflow):
    url, pki, requests = https_fake_airflow
    assert airflow_ha.api_token(url, password="s3cr:t", ca_file=pki["ca"]) == "jwt"
    run_id = airflow_ha.trigger_dag("airflow_ha_smoke", url, password="s3cr:t", ca_file=pki["ca"])
    run = airflow_ha.wait_dag_run("airflow_ha_smoke", run_id, timeout=5, url=url, password="s3cr:t",
                                  ca_file=pki["ca"])
    assert run["state"] == "success"
    # the system's CAs do not know the cluster CA, and another CA did not sign the server's certificate
    for ca_file in (None, pki["other_ca"]):
        with pytest.raises(CommandExecutionError, match="CERTIFICATE_VERIFY_FAILED"):
            airflow_ha.api_token(url, password="s3cr:t", ca_file=ca_file)


def test_https_health_and_smoke_test_pass_the_ca_file_on(https_fake_airflow, monkeypatch):
    url, pki, _ = https_fake_airflow
    seen = []
    monkeypatch.setattr(airflow_ha, "_get_json",
                        lambda u, timeout, ca_file=None: seen.append((u, ca_file)) or {"metadatabase": {"status": "healthy"}})
    out = airflow_ha.smoke_test(url=url, major=3, timeout=5, password="s3cr:t", ca_file=pki["ca"])
    assert out["state"] == "success"
    assert seen == [(url + "/api/v2/monitor/health", pki["ca"])]


def test_ssl_context_only_for_https(tmp_path):
    import ssl

    assert airflow_ha.ssl_context("http://h:80") is None
    ctx = airflow_ha.ssl_context("HTTPS://h:443")
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname is True


def test_task_instances_reads_every_page_of_a_mapped_run(fake_airflow):
    major, url, requests = fake_airflow
    tis = airflow_ha.task_instances("airflow_ha_smoke", RUN_ID, url=url, password="s3cr:t", major=major, page=100)
    assert [ti["map_index"] for ti in tis] == list(range(250))
    pages = [p for m, p, a, b in requests if "/taskInstances?" in p]
    assert len(pages) == 3 and pages[-1].endswith("limit=100&offset=200")


def test_wait_dag_run_polls_through_a_poll_without_answer_but_not_past_its_deadline(monkeypatch):
    answers = iter([CommandExecutionError("GET /x on https://vip: The read operation timed out"),
                    {"state": "running", "tasks": {}}, {"state": "success", "tasks": {}}])

    def dag_run(*args, **kwargs):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    warnings = []
    monkeypatch.setattr(airflow_ha.log, "warning", lambda *args: warnings.append(args))
    monkeypatch.setattr(airflow_ha, "dag_run", dag_run)
    assert airflow_ha.wait_dag_run("d", "r", timeout=5, interval=0)["state"] == "success"
    assert len(warnings) == 1  # the poll without answer is logged
    # an HTTP error is an answer: raised at once
    monkeypatch.setattr(airflow_ha, "dag_run", lambda *a, **k: (_ for _ in ()).throw(
        CommandExecutionError("GET /x on https://vip: HTTP 404 not found")))
    with pytest.raises(CommandExecutionError, match="HTTP 404"):
        airflow_ha.wait_dag_run("d", "r", timeout=5, interval=0)
    # no answer at all: raised once the deadline passed
    monkeypatch.setattr(airflow_ha, "dag_run", lambda *a, **k: (_ for _ in ()).throw(
        CommandExecutionError("GET /x on https://vip: timed out")))
    with pytest.raises(CommandExecutionError, match="timed out"):
        airflow_ha.wait_dag_run("d", "r", timeout=0.2, interval=0.05)


@pytest.mark.parametrize("value", [0, -5, "soon", None])
def test_check_settings_names_a_bad_dag_refresh_interval(value):
    with pytest.raises(CommandExecutionError, match="airflow:dag_refresh_interval must be a positive number"):
        airflow_ha.check_settings(dict(GOOD, dag_refresh_interval=value))
    assert airflow_ha.check_settings(dict(GOOD, dag_refresh_interval=30)) is True


# ------------------------------------------------------ access control (issue 26)
import yaml  # noqa: E402

from tests.helpers.inventory import REPO  # noqa: E402

LDAP_DEFAULTS = dict(yaml.safe_load((REPO / "salt" / "ldap" / "defaults.yaml").read_text()),
                     ldapi_socket="/var/run/slapd/ldapi")
AUTH_DEFAULTS = yaml.safe_load((REPO / "salt" / "airflow" / "defaults.yaml").read_text())["auth"]


def test_ldap_layout_from_the_inventory_domain():
    layout = airflow_ha.ldap_layout(LDAP_DEFAULTS, "lab.internal", ["10.83.0.13"])
    assert layout["suffix"] == "dc=lab,dc=internal"
    assert layout["bind_dn"] == "cn=airflow-bind,ou=services,dc=lab,dc=internal"
    assert layout["servers"] == ["ldaps://10.83.0.13:636"]
    assert layout["roles_mapping"]["cn=airflow-viewers,ou=groups,dc=lab,dc=internal"] == ["Viewer"]
    assert layout["ldapi_uri"] == "ldapi://%2Fvar%2Frun%2Fslapd%2Fldapi"
    assert layout["tls_fix"] is None
    assert "tls:enabled" in airflow_ha.ldap_layout(LDAP_DEFAULTS, "lab.internal", ["10.83.0.13"], False)["tls_fix"]


@pytest.mark.parametrize("change,words", [
    ({"seed": {"groups": {"ops": "Operator"}, "users": []}}, "ldap:seed:groups:ops maps to 'Operator'"),
    ({"seed": {"groups": {"ops": "Op"}, "users": [{"uid": "a", "groups": ["opz"]}]}}, "in group 'opz'"),
    ({"suffix": "example.com"}, "ldap:suffix 'example.com' is not a DN"),
    ({"port": "ldaps"}, "ldap:port must be a TCP port"),
])
def test_ldap_layout_names_the_bad_key(change, words):
    with pytest.raises(CommandExecutionError, match=words.replace("(", r"\(")):
        airflow_ha.ldap_layout(dict(LDAP_DEFAULTS, **change), "lab.internal", ["10.0.0.1"])


def test_auth_settings_fill_in_the_ldap_role():
    layout = airflow_ha.ldap_layout(LDAP_DEFAULTS, "lab.internal", ["10.83.0.13", "10.83.0.14"])
    auth = airflow_ha.auth_settings(AUTH_DEFAULTS, 3, layout, "/etc/airflow-ha/pki/ca.crt")
    assert auth["manager_class"] == airflow_ha.FAB_AUTH_MANAGER and auth["warning"] is None
    assert auth["ldap"]["server"] == "ldaps://10.83.0.13:636 ldaps://10.83.0.14:636"
    assert auth["ldap"]["ca_file"] == "/etc/airflow-ha/pki/ca.crt"
    assert auth["ldap"]["search_base"] == "ou=people,dc=lab,dc=internal"
    assert len(auth["roles_mapping"]) == 4


def test_auth_settings_simple_only_explicitly_and_warned(monkeypatch):
    import logging

    quiet = logging.getLogger("airflow_ha_test_quiet")
    quiet.propagate = False  # Salt's deferred log handler would print it after the run
    monkeypatch.setattr(airflow_ha, "log", quiet)
    auth = airflow_ha.auth_settings(dict(AUTH_DEFAULTS, manager="simple"), 3, None, None)
    assert auth["manager_class"] == airflow_ha.SIMPLE_AUTH_MANAGER and "simple auth manager" in auth["warning"]
    with pytest.raises(CommandExecutionError, match="needs Airflow 3"):
        airflow_ha.auth_settings(dict(AUTH_DEFAULTS, manager="simple"), 2, None, None)


@pytest.mark.parametrize("major", [3, 2])
@pytest.mark.parametrize("change,words", [
    ({"manager": "oauth"}, "airflow:auth:manager 'oauth' is unknown"),
    ({"roles_mapping": {"cn=x,ou=groups,dc=a": ["Operator"]}}, "roles_mapping:cn=x,ou=groups,dc=a maps to"),
    ({"roles_mapping": {"admins": ["Admin"]}}, "is not a group DN"),
    ({"ldap": dict(AUTH_DEFAULTS["ldap"], server="ldap://dir:389")}, "is not ldaps://"),
    ({"session_lifetime_minutes": 0}, "session_lifetime_minutes must be a positive"),
    ({"session_cookie_samesite": "None"}, "must be Lax or Strict"),
])
def test_auth_settings_name_the_bad_key(change, words, major):
    layout = airflow_ha.ldap_layout(LDAP_DEFAULTS, "lab.internal", ["10.83.0.13"])
    with pytest.raises(CommandExecutionError, match=words.replace("(", r"\(")):
        airflow_ha.auth_settings(dict(AUTH_DEFAULTS, **change), major, layout, "/ca.crt")


@pytest.mark.parametrize("major", [3, 2])
def test_auth_settings_without_a_directory_fails_on_both_lines(major):
    # the 2.x line logs in through the directory too (FAB's AUTH_LDAP)
    with pytest.raises(CommandExecutionError, match="airflow:auth:ldap:server is empty"):
        airflow_ha.auth_settings(AUTH_DEFAULTS, major, None, None)
    layout = airflow_ha.ldap_layout(LDAP_DEFAULTS, "lab.internal", ["10.83.0.13"])
    auth = airflow_ha.auth_settings(AUTH_DEFAULTS, major, layout, None)
    assert auth["manager_class"] == airflow_ha.FAB_AUTH_MANAGER and auth["ldap"]["server"] == "ldaps://10.83.0.13:636"


def test_ssha_is_stable_and_checks():
    import hashlib

    first = airflow_ha.ssha("s3cret", "rootpw")
    assert first == airflow_ha.ssha("s3cret", "rootpw") != airflow_ha.ssha("s3cret", "bind")
    raw = base64.b64decode(first[len("{SSHA}"):])
    digest, salt = raw[:20], raw[20:]
    assert hashlib.sha1(b"s3cret" + salt).digest() == digest
    with pytest.raises(CommandExecutionError):
        airflow_ha.ssha("")


def test_drill_auth_follows_secrets_and_runs_from_this_machine():
    """tools/lab/drill_auth.py: in `all` right after the secrets and logs drills; it reads the secrets and the
    seed here and goes through the VIP only; what it runs in a container is `salt` on the master (the auth
    layer's highstate cost) and a grep of the log host's received files (the audit trail there): nothing
    needs the repo on a minion (the Vagrantfile mounts it on the master only)."""
    import sys

    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill

    # the logs drills (issue 22) run between them: logs restarts rsyslog on the log host, task_logs kills a
    # worker host and waits until it is back, its api-server answering
    assert drill.DRILLS[drill.DRILLS.index("secrets") + 1:][:3] == ["logs", "task_logs", "auth"]
    source = (REPO / "tools" / "lab" / "drill_auth.py").read_text()
    for word in ("lxc-attach", "lxc_execute", "module_on(", "/srv/airflow-ha", "vagrant"):
        assert word not in source, word
    runs = re.findall(r"lab\.run\((\w+), f?\"(\S+)", source)
    # salt on the master; on the log hosts a grep of the audit trail and a read of RabbitMQ's lines; on a
    # RabbitMQ host the throwaway user's rabbitmqctl commands (its password from /dev/urandom on stdin)
    assert runs and all((host, cmd) in {("master", "salt"), ("host", "grep"), ("logs", "cat"), ("host", "head")}
                        for host, cmd in runs), runs
    assert "for host in lab.roles(inv, \"logs\")" in source  # the grep runs on the log hosts only


# ------------------------------------------------ limits, housekeeping (issue 20)
def test_defaults_limits_and_housekeeping_pass_and_components_override():
    import yaml
    from tests.helpers.inventory import REPO

    defaults = yaml.safe_load((REPO / "salt/airflow/defaults.yaml").read_text())
    assert airflow_ha.check_settings(defaults) is True
    limits = dict(defaults["limits"], worker={"memory_max": "2G"}, dag_processor={"nofile": 4096})
    assert airflow_ha.unit_limits(limits, "worker") == {"memory_max": "2G", "tasks_max": 4096, "nofile": 65536}
    assert airflow_ha.unit_limits(limits, "dag-processor") == {"memory_max": "infinity", "tasks_max": 4096,
                                                               "nofile": 4096}
    assert airflow_ha.unit_limits(limits, "scheduler") == {"memory_max": "infinity", "tasks_max": 4096,
                                                           "nofile": 65536}


@pytest.mark.parametrize("limits, message", [
    ({"memory_max": "lots"}, "pillar airflow:limits:memory_max is 'lots': give infinity, a size like 512M or 2G"),
    ({"worker": {"memory_max": "0"}}, "pillar airflow:limits:worker:memory_max is '0': give infinity, a size"),
    ({"nofile": -1}, "pillar airflow:limits:nofile is -1: give a positive whole number or infinity"),
    ({"scheduler": {"cpu": 2}}, "pillar airflow:limits:scheduler:cpu is unknown: use memory_max, tasks_max, nofile"),
    ({"flower": "1G"}, "pillar airflow:limits:flower is '1G': give a mapping like {memory_max: 2G}"),
    ("4G", "pillar airflow:limits is '4G': give a mapping"),
])
def test_bad_limits_name_the_key_and_the_fix(limits, message):
    with pytest.raises(CommandExecutionError, match=re.escape(message)):
        airflow_ha.check_settings(dict(GOOD, limits=limits))


@pytest.mark.parametrize("housekeeping, message", [
    ({"db_clean_days": 0}, "pillar airflow:housekeeping:db_clean_days is 0: give whole days from 1 to 3650"),
    ({"task_log_days": "30"}, "pillar airflow:housekeeping:task_log_days is '30': give whole days from 1 to 3650"),
    ({"db_clean_schedule": "03:30; rm -rf /"},
     "pillar airflow:housekeeping:db_clean_schedule is '03:30; rm -rf /': give a systemd OnCalendar expression"),
])
def test_bad_housekeeping_names_the_key_and_the_fix(housekeeping, message):
    good = {"db_clean_days": 90, "task_log_days": 30, "db_clean_schedule": "*-*-* 03:30:00",
            "task_log_schedule": "daily"}
    assert airflow_ha.check_settings(dict(GOOD, housekeeping=good)) is True
    with pytest.raises(CommandExecutionError, match=re.escape(message)):
        airflow_ha.check_settings(dict(GOOD, housekeeping=dict(good, **housekeeping)))


# ------------------------------------------------------------ PgBouncer (issue 19)
def pgbouncer_defaults(**changes):
    import yaml

    from tests.helpers.inventory import REPO

    settings = yaml.safe_load((REPO / "salt" / "airflow" / "defaults.yaml").read_text())["pgbouncer"]
    return dict(settings, **changes)


def test_scram_verifier_is_stable_per_user_and_what_postgres_computes_with_its_salt():
    from salt.modules.postgres import _scram_sha_256

    first = airflow_ha.scram_sha_256("s3cret-password-1", "airflow")
    assert first == airflow_ha.scram_sha_256("s3cret-password-1", "airflow")  # a second apply: no change
    assert first != airflow_ha.scram_sha_256("s3cret-password-1", "other")  # the user is in the salt
    m = re.match(r"^SCRAM-SHA-256\$4096:([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$", first)
    assert m and len(base64.b64decode(m.group(1))) == 16
    # Salt's own verifier (RFC 5802/7677, as PostgreSQL's scram-common.c) with the same salt: the same
    assert _scram_sha_256("s3cret-password-1", salt_bytes=base64.b64decode(m.group(1))) == first
    assert "s3cret" not in first
    with pytest.raises(CommandExecutionError, match="secrets:postgres:airflow_password is empty"):
        airflow_ha.scram_sha_256("", "airflow")


def test_pgbouncer_defaults_pass_and_derive_the_server_cap():
    out = airflow_ha.pgbouncer_settings(pgbouncer_defaults(enabled=True),
                                        ["scheduler", "webserver", "dag_processor", "worker", "flower", "triggerer"],
                                        3, 8, airflow_hosts=6, max_connections=300)
    assert out["max_db_connections"] == 15
    # 4 pooled processes x (5 + 10), 8 worker processes x 2, Flower 2
    assert out["client_estimate"] == 4 * 15 + 16 + 2 <= out["max_client_conn"]
    # off: nothing is cross-checked
    assert airflow_ha.pgbouncer_settings(pgbouncer_defaults(max_client_conn=1), ["scheduler"], max_connections=10)


@pytest.mark.parametrize("changes, message", [
    ({"enabled": "yes"}, "pillar airflow:pgbouncer:enabled is 'yes': give true or false"),
    ({"port": 70000}, "pillar airflow:pgbouncer:port is 70000: give a TCP port number from 1 to 65535"),
    ({"pool_mode": "statement"}, "pillar airflow:pgbouncer:pool_mode is 'statement': use transaction or session"),
    ({"default_pool_size": 0}, "pillar airflow:pgbouncer:default_pool_size is 0: give a whole number from 1"),
    ({"reserve_pool_size": -1}, "pillar airflow:pgbouncer:reserve_pool_size is -1: give a whole number from 0"),
    ({"reserve_pool_timeout": "soon"}, "pillar airflow:pgbouncer:reserve_pool_timeout is 'soon': give seconds"),
    ({"max_client_conn": True}, "pillar airflow:pgbouncer:max_client_conn is True: give a whole number from 1"),
    ({"sqlalchemy_pool_size": 0}, "pillar airflow:pgbouncer:sqlalchemy_pool_size is 0: give a whole number from 1"),
    ({"server_login_retry": "2s"}, "pillar airflow:pgbouncer:server_login_retry is '2s': give whole seconds from 1"),
])
def test_bad_pgbouncer_pillar_is_refused_naming_the_key(changes, message):
    with pytest.raises(CommandExecutionError) as err:
        airflow_ha.pgbouncer_settings(pgbouncer_defaults(**changes))
    assert message in str(err.value)


def test_pgbouncer_pools_must_fit_postgres_and_the_components_pools():
    with pytest.raises(CommandExecutionError, match=r"default_pool_size 41 \+ reserve_pool_size 5 on each of the 6 "
                                                    r"Airflow hosts is 276 server connections, over PostgreSQL's "
                                                    r"max_connections 300 less 30"):
        airflow_ha.pgbouncer_settings(pgbouncer_defaults(enabled=True, default_pool_size=41), ["worker"], 3, 8, 6, 300)
    assert airflow_ha.pgbouncer_settings(pgbouncer_defaults(enabled=True, default_pool_size=41), ["worker"], 3, 8, 5,
                                         300)
    # the 2.x webserver runs 4 gunicorn workers, each with its own pool
    with pytest.raises(CommandExecutionError, match=r"max_client_conn 50 is under the 60 client connections"):
        airflow_ha.pgbouncer_settings(pgbouncer_defaults(enabled=True, max_client_conn=50), ["webserver"], 2)
    assert airflow_ha.pgbouncer_client_estimate(["webserver"], 3) == 15
    assert airflow_ha.pgbouncer_client_estimate(["worker"], 3, worker_concurrency=16) == 32


# ------------------------------------------------ worker pools (issue 20)

def test_worker_args_consume_the_hosts_queues_with_a_fixed_concurrency_by_default():
    assert airflow_ha.worker_args(["default"]) == "celery worker -q default"
    assert airflow_ha.worker_args(["default", "card"], {}) == "celery worker -q default,card"
    # Celery's --autoscale MAX,MIN (the provider passes it on; without it [celery] worker_concurrency)
    assert airflow_ha.worker_args(["default", "card"], {"min": 2, "max": 8}) == \
        "celery worker -q default,card --autoscale 8,2"
    with pytest.raises(CommandExecutionError, match="serves no queue"):
        airflow_ha.worker_args([])


@pytest.mark.parametrize("autoscale, words", [
    ({"min": 9, "max": 8}, r"airflow:worker_autoscale:min 9 is above max 8: give min <= max"),
    ({"min": 0, "max": 8}, r"airflow:worker_autoscale:min is 0: give a whole number from 1"),
    ({"min": 2}, r"airflow:worker_autoscale:max is None: give a whole number from 1"),
    ({"min": 2, "max": "8"}, r"airflow:worker_autoscale:max is '8'"),
    ({"min": True, "max": 8}, r"airflow:worker_autoscale:min is True"),
    ({"min": 2, "max": 8, "step": 1}, r"airflow:worker_autoscale:step is unknown"),
    ("8,2", r"pillar airflow:worker_autoscale is '8,2': give \{min: 2, max: 8\}"),
])
def test_a_bad_worker_autoscale_fails_naming_the_key_and_the_fix(autoscale, words):
    with pytest.raises(CommandExecutionError, match=words):
        airflow_ha.check_settings(dict(GOOD, worker_autoscale=autoscale))
    with pytest.raises(CommandExecutionError, match=words):
        airflow_ha.worker_args(["default"], autoscale)


def test_worker_autoscale_off_or_good_passes_and_sizes_the_worker():
    for off in (None, {}, False):
        assert airflow_ha.check_settings(dict(GOOD, worker_autoscale=off)) is True
    assert airflow_ha.check_settings(dict(GOOD, worker_autoscale={"min": 2, "max": 2})) is True
    # PgBouncer's client estimate counts the most processes a worker runs
    assert airflow_ha.worker_processes(dict(GOOD, worker_concurrency=8, worker_autoscale={})) == 8
    assert airflow_ha.worker_processes(dict(GOOD, worker_concurrency=8, worker_autoscale={"min": 2, "max": 16})) == 16
