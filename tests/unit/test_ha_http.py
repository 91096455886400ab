"""The shared HTTP client (_utils/ha_http.py) of airflow_ha and patroni:
JSON in and out, failures as CommandExecutionError with the label, and the
modules reaching it through Salt's __utils__ as a minion loads them."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

from _utils import ha_http


@pytest.fixture
def server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            seen.append((self.command, self.path, self.headers.get("Authorization"),
                         self.rfile.read(length).decode() if length else None))
            code, body = {"/ok": (200, '{"ok": true}'), "/text": (200, "plain"), "/empty": (204, ""),
                          "/denied": (403, "no way")}.get(self.path, (404, "missing"))
            self.send_response(code)
            self.end_headers()
            self.wfile.write(body.encode())

        do_GET = do_POST = do_PATCH = _answer

    httpd = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


def test_json_text_and_empty_answers(server):
    base, seen = server
    assert ha_http.request("PATCH", base + "/ok", body={"a": 1}, headers={"Authorization": "Basic x"}) == {"ok": True}
    assert seen[-1] == ("PATCH", "/ok", "Basic x", json.dumps({"a": 1}))
    assert ha_http.request("GET", base + "/text") == "plain"
    assert ha_http.request("GET", base + "/empty") is None


def test_http_error_and_unreachable_raise_with_the_label(server):
    base, _ = server
    with pytest.raises(CommandExecutionError, match=r"^Patroni REST API GET /denied: HTTP 403 no way"):
        ha_http.request("GET", base + "/denied", label="Patroni REST API GET /denied")
    with pytest.raises(CommandExecutionError, match="unreachable"):
        ha_http.request("GET", "http://127.0.0.1:9/", timeout=2)


def test_ssl_context_only_for_https():
    assert ha_http.ssl_context("http://h") is None
    ctx = ha_http.ssl_context("HTTPS://h")
    assert ctx.verify_mode.name == "CERT_REQUIRED" and ctx.check_hostname


def test_minion_loader_gives_the_modules_the_shared_client(loaders):
    """As a minion loads them (utils_dirs = the synced _utils): __utils__ holds ha_http."""
    assert "ha_http.request" in loaders.utils
    assert Path(loaders.utils["ha_http.request"].__code__.co_filename).resolve() == \
        Path(ha_http.__file__).resolve()


def test_salt_tree_ships_the_utils_for_sync_all():
    """saltutil.sync_all syncs salt://_utils: the link into the repo's _utils."""
    root = Path(__file__).resolve().parents[2]
    assert (root / "salt" / "_utils" / "ha_http.py").resolve() == (root / "_utils" / "ha_http.py").resolve()

