"""Unit tests of _modules/airflow_ha.py (no Airflow needed)."""

import base64
import http.server
import json
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
def configure_loader_modules():
    return {airflow_ha: {}}


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
        if self.command == "GET" and self.path == run_path + "/taskInstances":
            return self._reply(200, {"task_instances": [
                {"task_id": "report_host", "state": "success", "hostname": "af1", "try_number": 1,
                 "queued_when": "2026-11-23T08:00:02+00:00", "start_date": "2026-11-23T08:00:03+00:00",
                 "end_date": "2026-11-23T08:00:04+00:00", "pid": 42}], "total_entries": 1})
        return self._reply(404, {"title": "Not Found", "path": self.path})

    do_GET = do_POST = do_PATCH = _handle


@pytest.fixture(params=[2, 3])
def fake_airflow(request):
    handler = type("Handler", (FakeAirflow,), {"major": request.param, "requests": []})
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

    from tests.helpers import tls_material

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
