"""TLS of the web tier (pillar tls:enabled): haproxy.cfg, HAProxy's PEM and
the firewall as the states render them, then a real HAProxy serving the
rendered UI/API frontend (443, 80 redirecting) and Flower (5555) in front of
a tiny http backend, with a certificate of a throwaway CA (tools/gen_tls.py).

Not under tests/haproxy: that area's real-cluster tests belong to other runs."""

import copy
import http.client
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from cryptography import x509

from clusters import tls_material
from clusters.templates import render_template

PKI = "/etc/airflow-ha/pki"


# ------------------------------------------------------------------ render
def test_haproxy_without_tls_serves_plain_http(render_state_file):
    cfg = render_state_file("af1", "compact", "haproxy", "haproxy-config")
    assert " ssl " not in cfg and ":443" not in cfg
    assert "http-request set-header X-Forwarded-Proto http" in cfg


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_haproxy_with_tls_serves_https_and_redirects_http(tls_render_state_file, os_name):
    cfg = tls_render_state_file("af2", "compact", "haproxy", "haproxy-config", os_name=os_name).splitlines()
    lines = [line.strip() for line in cfg]
    pem = f"ssl crt '{PKI}/haproxy.pem' ssl-min-ver TLSv1.2"
    assert "bind *:80" in lines and f"bind *:443 {pem}" in lines
    assert f"bind *:5555 {pem}" in lines
    assert "http-request redirect scheme https code 301 unless { ssl_fc }" in lines
    assert "http-request set-header X-Forwarded-Proto https" in lines
    assert "bind *:7000" in lines  # stats and /metrics stay http (monitoring and admin networks only)


def test_haproxy_pem_is_the_hosts_certificate_then_its_key(tls_compiled_sls, tls_render_state_file, tmp_path):
    """The PEM's template reads the host's own certificate and key files (salt/pki made them) when the state
    runs: no key in the state's arguments. Rendered here with throwaway files in their place."""
    states = tls_compiled_sls("af1", "compact", "haproxy")
    pem = states["haproxy-tls-pem"]
    assert (pem["name"], pem["user"], pem["mode"], pem["show_changes"]) == (f"{PKI}/haproxy.pem", "root", "0600", False)
    assert pem["source"] == "salt://haproxy/files/tls.pem.jinja" and "contents" not in pem
    assert pem["context"]["pki"] == {"host_cert": f"{PKI}/host.crt", "host_key": f"{PKI}/host.key"}
    assert {"x509": "pki-host-key"} in pem["require"] and {"x509": "pki-host-cert"} in pem["require"]
    assert {"file": "haproxy-config"} in pem["require_in"] and {"service": "haproxy-running"} in pem["watch_in"]
    assert "PRIVATE KEY" not in str(states)
    material = tls_material.issue(tmp_path, "af1", dns=("af1", "airflow-vip"), ips=("10.83.0.21", "10.83.0.100"))
    text = tls_render_state_file("af1", "compact", "haproxy", "haproxy-tls-pem",
                                 pki={"host_cert": material["cert"], "host_key": material["key"]})
    cert = x509.load_pem_x509_certificate(text.encode())
    assert cert == x509.load_pem_x509_certificate(open(material["cert"], "rb").read())
    assert text[text.index("-----BEGIN PRIVATE KEY"):].strip() == open(material["key"]).read().strip()
    # a dry run on a new host, before salt/pki made them: an empty file would be written, no error
    assert tls_render_state_file("af1", "compact", "haproxy", "haproxy-tls-pem",
                                 pki={"host_cert": str(tmp_path / "none.crt"), "host_key": str(tmp_path / "none.key")}
                                 ).strip() == ""


def _ports(rules):
    return {r["port"] for r in rules}


def test_firewall_follows_tls(state_file_context, tls_state_file_context):
    plain = state_file_context("db1", "compact", "base", "base-firewall-nftables-config")["rules"]
    tls = tls_state_file_context("db1", "compact", "base", "base-firewall-nftables-config")["rules"]
    assert {"5672", "15672"} <= _ports(plain) and not {"5671", "15671"} & _ports(plain)
    assert {"5671", "15671", "15692"} <= _ports(tls) and not {"5672", "15672"} & _ports(tls)
    web = tls_state_file_context("af1", "compact", "base", "base-firewall-nftables-config")["rules"]
    assert {"80", "443", "5555", "7000"} <= _ports(web)
    assert "443" not in _ports(state_file_context("af1", "compact", "base", "base-firewall-nftables-config")["rules"])


# ------------------------------------------------------------------ real HAProxy
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Backend(http.server.BaseHTTPRequestHandler):
    seen = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("X-Forwarded-Proto")))
        body = b'{"metadatabase": {"status": "healthy"}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def web_lb(tls_state_file_context, tmp_path_factory):
    """haproxy -db with the rendered config: the Airflow/Flower backends on a tiny http server."""
    tmp = tmp_path_factory.mktemp("web-tls")
    pki = tls_material.issue(str(tmp / "pki"))
    handler = type("Handler", (Backend,), {"seen": []})
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    ctx = copy.deepcopy(tls_state_file_context("af1", "compact", "haproxy", "haproxy-config")["haproxy"])
    for server in ctx["webserver_servers"] + ctx["flower_servers"]:
        server.update(address="127.0.0.1", port=backend.server_address[1], check_port=backend.server_address[1])
    for server in ctx["postgres_servers"]:  # not under test here: closed ports, plain checks
        server.update(address="127.0.0.1", port=free_port(), check_port=free_port())
        server.pop("check_tls", None)
    ctx.update(bind_address="127.0.0.1", frontends={name: free_port() for name in ctx["frontends"]},
               stats_socket=str(tmp / "admin.sock"), log="stderr format raw local0",
               check=dict(ctx["check"], inter="1s", rise=1))
    ctx["tls"]["pem"] = pki["pem"]
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(render_template("haproxy/files/haproxy.cfg.jinja", {"haproxy": ctx}))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    log = open(tmp / "haproxy.log", "w")
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    ports = ctx["frontends"]
    base = f"https://127.0.0.1:{ports['airflow_tls']}"
    context = ssl.create_default_context(cafile=pki["ca"])
    deadline = time.monotonic() + 30
    while True:  # listening, and the backend checked up
        try:
            with urllib.request.urlopen(base + "/api/v2/monitor/health", timeout=2, context=context) as resp:
                if resp.status == 200:
                    break
        except (OSError, urllib.error.URLError):
            pass
        assert time.monotonic() < deadline, (tmp / "haproxy.log").read_text()[-2000:]
        time.sleep(0.5)
    yield {"ports": ports, "pki": pki, "seen": handler.seen, "base": base}
    proc.terminate()
    proc.wait(10)
    backend.shutdown()
    log.close()




@pytest.mark.integration
@pytest.mark.slow
def test_https_with_the_cluster_ca_reaches_airflow_with_forwarded_proto(web_lb):
    context = ssl.create_default_context(cafile=web_lb["pki"]["ca"])
    with urllib.request.urlopen(web_lb["base"] + "/api/v2/monitor/health?probe=1", timeout=5,
                                context=context) as resp:
        assert resp.status == 200
    assert ("/api/v2/monitor/health?probe=1", "https") in web_lb["seen"]


@pytest.mark.integration
@pytest.mark.slow
def test_https_with_another_ca_fails(web_lb):
    for context in (ssl.create_default_context(cafile=web_lb["pki"]["other_ca"]), ssl.create_default_context()):
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            urllib.request.urlopen(web_lb["base"] + "/", timeout=5, context=context)


@pytest.mark.integration
@pytest.mark.slow
def test_http_redirects_to_https(web_lb):
    port = web_lb["ports"]["airflow"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/api/v2/monitor/health", headers={"Host": "airflow-vip"})
    resp = conn.getresponse()
    assert resp.status == 301
    assert resp.getheader("Location") == "https://airflow-vip/api/v2/monitor/health"
    conn.close()


@pytest.mark.integration
@pytest.mark.slow
def test_flower_over_https_and_stats_stay_http(web_lb):
    context = ssl.create_default_context(cafile=web_lb["pki"]["ca"])
    flower = f"https://127.0.0.1:{web_lb['ports']['flower']}/healthcheck"
    with urllib.request.urlopen(flower, timeout=5, context=context) as resp:
        assert resp.status == 200
    with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain http to a TLS port: dropped
        urllib.request.urlopen(f"http://127.0.0.1:{web_lb['ports']['flower']}/healthcheck", timeout=5)
    with urllib.request.urlopen(f"http://127.0.0.1:{web_lb['ports']['stats']}/metrics", timeout=5) as resp:
        assert resp.status == 200


@pytest.mark.integration
@pytest.mark.slow
def test_the_modules_smoke_path_verifies_https_through_haproxy(web_lb):
    import _modules.airflow_ha as airflow_ha

    report = airflow_ha.health(web_lb["base"], major=3, ca_file=web_lb["pki"]["ca"])
    assert report["components"] == {"metadatabase": "healthy"}
