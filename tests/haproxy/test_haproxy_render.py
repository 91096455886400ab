"""haproxy.cfg and keepalived.conf rendered from the states' own templates and
contexts (hosts of both topologies, both OS families), checked by the
programs themselves (`haproxy -c`, `keepalived -t`), and the render-time
refusals of bad pillar."""

import ipaddress
import json
import os
import re
import shutil
import subprocess

import pytest

from tests.helpers.inventory import REPO, copy_inventory

DEB, EL = "debian12", "rocky9"
# name -> (host, topology, sls, state_id, os, pillar override, inventory override)
JOBS = {
    "haproxy_af1_deb": ("af1", "compact", "haproxy", "haproxy-config", DEB, None, None),
    "haproxy_af1_el": ("af1", "compact", "haproxy", "haproxy-config", EL, None, None),
    "haproxy_airflow2": ("airflow", "full", "haproxy", "haproxy-config", DEB, {"airflow": {"major": 2}}, None),
    "haproxy_slow_checks": ("af1", "compact", "haproxy", "haproxy-config", DEB,
                          {"haproxy": {"check": {"inter": "2s", "fastinter": "1s", "downinter": ""}}}, None),
    "haproxy_service": ("haproxy2", "full", "haproxy", "haproxy-running", DEB, None, None),
    "keepalived_af1_deb": ("af1", "compact", "haproxy", "keepalived-config", DEB, None, None),
    "keepalived_af2_el": ("af2", "compact", "haproxy", "keepalived-config", EL, None, None),
    "keepalived_airflow": ("airflow", "full", "haproxy", "keepalived-config", DEB, None, None),
    "keepalived_ftp_nfs": ("ftp", "full", "keepalived", "keepalived-config", DEB, None, None),
    "keepalived_nfs2_nfs": ("nfs2", "full", "keepalived", "keepalived-config", DEB, None, None),
    "keepalived_nfs2_script": ("nfs2", "full", "keepalived", "keepalived-track-script-nfs", DEB, None, None),
    "keepalived_service": ("af1", "compact", "keepalived", "keepalived-running", DEB, None, None),
    "keepalived_overrides": ("af2", "compact", "haproxy", "keepalived-config", DEB,
                             {"keepalived": {"interface": "bond0", "nopreempt": False,
                                             "vips": {"main": {"priorities": {"af2": 200}}}}}, None),
    # SELinux (RedHat only): base enforcing, ftp booleans, keepalived scripts where they run unconfined
    "selinux_base_el": ("ftp", "full", "base", "base-selinux-mode", EL, None, None),
    "selinux_base_deb": ("ftp", "full", "base", "base-common-packages", DEB, None, None),
    "selinux_ftp_el": ("ftp", "full", "ftp", "ftp-vsftpd-running", EL, None, None),
    "selinux_ftp_deb": ("ftp", "full", "ftp", "ftp-vsftpd-running", DEB, None, None),
    "selinux_keepalived_script_el": ("af2", "compact", "keepalived", "keepalived-track-script-haproxy", EL, None, None),
    "bad_airflow_major": ("af1", "compact", "haproxy", "haproxy-config", DEB, {"airflow": {"major": 4}}, None),
    "bad_vip_without_vrid": ("af1", "compact", "haproxy", "keepalived-config", DEB, None, "extra_vip"),
    "bad_vrid_shared": ("af1", "compact", "haproxy", "keepalived-config", DEB,
                        {"keepalived": {"vips": {"main": {"virtual_router_id": 52}}}}, "nfs_vip"),
}


def _local_address():
    """(interface, address, prefix) of this machine's first non-loopback IPv4 address, or None."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        for addr in link.get("addr_info") or []:
            if link.get("ifname") != "lo" and addr.get("prefixlen", 32) <= 28:
                return link["ifname"], addr["local"], addr["prefixlen"]
    return None


def _inventory(kind):
    inv = copy_inventory("compact")
    if kind == "this_machine":
        # the compact topology moved into this machine's subnet, af1 on this machine's address
        _, address, prefix = _local_address()
        net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
        free = (str(ip) for ip in net.hosts() if str(ip) != address)
        inv["network"] = str(net)
        for name, host in inv["hosts"].items():
            host["ip"] = address if name == "af1" else next(free)
        inv["vips"]["main"]["ip"] = next(free)
    elif kind == "extra_vip":
        inv["vips"]["api"] = {"ip": "10.83.0.101", "hostname": "api-vip", "role": "haproxy"}
    elif kind == "nfs_vip":
        inv["vips"]["nfs"] = {"ip": "10.83.0.102", "hostname": "nfs-vip", "role": "haproxy"}
    return inv


@pytest.fixture(scope="module")
def rendered(compile_many):
    jobs = dict(JOBS)
    if _local_address():
        # a fallback no machine has: the interface must come from the grains
        jobs["keepalived_this_machine"] = ("af1", "compact", "keepalived", "keepalived-config", DEB,
                                           {"keepalived": {"fallback_interface": "fallback9"}}, "this_machine")
    specs = [(h, t, sls, sid, os_name, pillar, _inventory(inv) if inv else None)
             for h, t, sls, sid, os_name, pillar, inv in jobs.values()]
    return dict(zip(jobs, compile_many(specs)))


def ok(rendered, name):
    result = rendered[name]
    assert "errors" not in result, result["errors"]
    return result


def sections(text):
    """haproxy.cfg -> {section header: [its lines]} (comments and blank lines left out)."""
    out, current = {}, None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            current = line.strip()
            out[current] = []
        else:
            out[current].append(line.strip())
    return out


# ------------------------------------------------------------------ haproxy


def test_haproxy_cfg_routes_each_frontend_to_the_right_hosts(rendered, render_secrets):
    cfg = sections(ok(rendered, "haproxy_af1_deb")["text"])
    assert {"listen postgres_rw", "listen postgres_ro", "listen airflow", "listen flower", "listen stats"} <= set(cfg)
    db = ["server db1 10.83.0.11:5432 check port 8008", "server db2 10.83.0.12:5432 check port 8008",
          "server db3 10.83.0.13:5432 check port 8008"]
    rw, ro = cfg["listen postgres_rw"], cfg["listen postgres_ro"]
    assert "bind *:5000" in rw and "mode tcp" in rw
    assert "option httpchk GET '/primary'" in rw and "http-check expect status 200" in rw
    assert "default-server inter 3s downinter 1s fall 3 rise 2 on-marked-down shutdown-sessions" in rw
    assert [line for line in rw if line.startswith("server ")] == db
    assert "bind *:6000" in ro and "option httpchk GET '/replica?lag=16MB'" in ro
    assert "default-server inter 3s downinter 1s fall 3 rise 2 on-marked-down shutdown-sessions" in ro
    assert [line for line in ro if line.startswith("server ")] == db
    web = cfg["listen airflow"]
    assert "bind *:80" in web and "mode http" in web
    assert "option httpchk GET '/api/v2/monitor/health'" in web and "http-check expect status 200" in web
    assert [line for line in web if line.startswith("server ")] == ["server af1 10.83.0.21:8080 check",
                                                                    "server af2 10.83.0.22:8080 check"]
    # a restarting api-server that refuses a connection before it is marked down: the request goes to the other
    assert "retries 3" in web and "option redispatch 1" in web
    flower = cfg["listen flower"]
    assert "bind *:5555" in flower
    assert [line for line in flower if line.startswith("server ")] == ["server af1 10.83.0.21:5556 check"]
    stats = cfg["listen stats"]
    assert "bind *:7000" in stats
    assert "http-request use-service prometheus-exporter if { path /metrics }" in stats
    assert f"stats auth 'stats:{render_secrets['haproxy']['stats_password']}'" in stats
    # the Patroni REST API password is not needed: its GET health endpoints are open
    assert render_secrets["patroni"]["restapi_password"] not in ok(rendered, "haproxy_af1_deb")["text"]


def test_haproxy_cfg_of_the_full_topology_and_airflow_2_health_check(rendered):
    cfg = sections(ok(rendered, "haproxy_airflow2")["text"])
    web = cfg["listen airflow"]
    assert "option httpchk GET '/health'" in web
    assert [line for line in web if line.startswith("server ")] == ["server airflow 192.168.83.129:8080 check",
                                                                    "server haproxy2 192.168.83.154:8080 check"]
    assert [line for line in cfg["listen postgres_rw"] if line.startswith("server ")] == [
        "server sql1 192.168.83.148:5432 check port 8008", "server sql2 192.168.83.147:5432 check port 8008",
        "server sql3 192.168.83.149:5432 check port 8008"]


def test_haproxy_os_families_differ_in_log_target_stats_socket_and_selinux(rendered):
    deb, el = ok(rendered, "haproxy_af1_deb")["text"], ok(rendered, "haproxy_af1_el")["text"]
    assert "log /dev/log local0" in deb and "stats socket '/run/haproxy/admin.sock'" in deb
    assert "log 127.0.0.1 local2" in el and "stats socket '/var/lib/haproxy/stats'" in el
    assert "haproxy-selinux-haproxy_connect_any" in ok(rendered, "haproxy_af1_el")["ids"]
    assert not any("selinux" in i for i in ok(rendered, "haproxy_af1_deb")["ids"])
    strip = re.compile(r"^\s*(log /dev/log|log 127\.0\.0\.1|stats socket).*$", re.M)
    assert strip.sub("", deb) == strip.sub("", el)


def test_haproxy_config_state_keeps_the_password_private_and_is_validated(rendered):
    res = ok(rendered, "haproxy_af1_deb")
    args = res["args"]
    assert args["fun"] == "file.managed" and args["name"] == "/etc/haproxy/haproxy.cfg"
    assert (args["user"], args["group"], args["mode"]) == ("root", "haproxy", "0640")
    assert args["show_changes"] is False
    assert args["check_cmd"] == "haproxy -c -f"
    service = ok(rendered, "haproxy_service")["args"]
    assert service["fun"] == "service.running" and service["reload"] is True
    assert {"file": "haproxy-config"} in service["watch"]
    # the load-balancer tier brings keepalived along
    assert {"keepalived-config", "keepalived-running"} <= set(res["ids"])


def test_check_intervals_come_from_pillar(rendered):
    cfg = sections(ok(rendered, "haproxy_slow_checks")["text"])
    line = "default-server inter 2s fastinter 1s fall 3 rise 2 on-marked-down shutdown-sessions"
    assert line in cfg["listen postgres_rw"] and line in cfg["listen postgres_ro"]


def test_unknown_airflow_major_fails_the_render_naming_the_keys(rendered):
    errors = rendered["bad_airflow_major"]["errors"]
    assert "pillar airflow:major is 4" in errors and "haproxy:airflow_health_paths:4" in errors


@pytest.mark.integration
@pytest.mark.parametrize("name", ["haproxy_af1_deb", "haproxy_af1_el", "haproxy_airflow2"])
def test_haproxy_accepts_the_rendered_config(rendered, name, tmp_path):
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(ok(rendered, name)["text"])
    proc = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stdout + proc.stderr


@pytest.mark.integration
def test_stats_password_is_quoted_for_haproxy_whatever_it_holds(rendered, tmp_path):
    """HAProxy expands $VAR and backslashes inside double quotes: the template
    single-quotes; a password with every special character still logs in."""
    import base64
    import time
    import urllib.request

    from clusters.haproxy import free_port
    from clusters.templates import render_template

    ctx = ok(rendered, "haproxy_af1_deb")["args"]["context"]["haproxy"]
    password = " a'b$HOME\\c\"d e#f:g%40@/,;% "  # hostile_secrets' specials too
    ctx.update(bind_address="127.0.0.1", frontends={k: free_port() for k in ctx["frontends"]},
               stats_socket=str(tmp_path / "admin.sock"), log="stderr format raw local0", stats_password=password)
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(render_template("haproxy/files/haproxy.cfg.jinja", {"haproxy": ctx}))
    proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{ctx['frontends']['stats']}/;csv")
        req.add_header("Authorization", "Basic " + base64.b64encode(f"stats:{password}".encode()).decode())
        for _ in range(50):
            try:
                with urllib.request.urlopen(req, timeout=5) as resp:
                    assert resp.status == 200 and "postgres_rw" in resp.read().decode()
                    break
            except ConnectionRefusedError:
                time.sleep(0.1)
            except urllib.error.URLError as exc:
                if not isinstance(exc.reason, ConnectionRefusedError):
                    raise
                time.sleep(0.1)
        else:
            pytest.fail("haproxy did not listen")
    finally:
        proc.terminate()
        proc.wait(10)


# --------------------------------------------------------------- keepalived


def instances(text):
    """keepalived.conf -> {instance name: its body}."""
    return dict(re.findall(r"^vrrp_instance (\S+) \{\n(.*?)^\}", text, re.M | re.S))


def test_main_vip_priorities_follow_the_inventory_order_with_unicast_peers(rendered, render_secrets):
    af1, af2 = ok(rendered, "keepalived_af1_deb")["text"], ok(rendered, "keepalived_af2_el")["text"]
    (name1, body1), = instances(af1).items()
    (name2, body2), = instances(af2).items()
    assert name1 == name2 == "VI_main"
    assert "priority 150" in body1 and "priority 100" in body2
    for body, me, peer in ((body1, "10.83.0.21", "10.83.0.22"), (body2, "10.83.0.22", "10.83.0.21")):
        assert "state BACKUP" in body and "nopreempt" in body and "virtual_router_id 51" in body
        assert f"unicast_src_ip {me}" in body and re.search(r"unicast_peer \{\s+" + re.escape(peer) + r"\s+\}", body)
        assert re.search(r"virtual_ipaddress \{\s+10\.83\.0\.100/24 dev \"\S+\"\s+\}", body)
        assert re.search(r"track_script \{\s+chk_haproxy\s+chk_database\s+\}", body)
        assert f'auth_pass "{render_secrets["keepalived"]["auth_pass"]}"' in body
    assert 'script "/usr/local/sbin/keepalived-check-haproxy"' in af1 and \
        'script "/usr/libexec/keepalived/keepalived-check-haproxy"' in af2  # Debian, RedHat
    assert "enable_script_security" in af1
    # the database track script gets every Patroni member's REST API (https, the cluster CA)
    for text, path in ((af1, "/usr/local/sbin"), (af2, "/usr/libexec/keepalived")):
        script = re.search(r'script "(' + re.escape(path) + r'/keepalived-check-database [^"]+)"', text).group(1)
        args = script.split()[1:]
        # https verified against the cluster CA when the render has TLS on, plain http when off
        scheme = "https" if args[0] == "--cacert" else "http"
        if scheme == "https":
            assert args[:2] == ["--cacert", "/etc/airflow-ha/pki/ca.crt"]
            args = args[2:]
        assert args == [f"{scheme}://10.83.0.1{n}:8008/liveness" for n in (1, 2, 3)]


def test_database_track_script_follows_the_members_reachability(tmp_path):
    """The real script against a real HTTP server: healthy while one member answers, failing when none does."""
    import http.server
    import socket
    import threading

    script = REPO / "salt" / "keepalived" / "files" / "check-database.sh"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead = closed.getsockname()[1]
    closed.close()
    urls = [f"http://127.0.0.1:{dead}/liveness", f"http://127.0.0.1:{server.server_address[1]}/"]
    try:
        assert subprocess.run([str(script), *urls], timeout=10).returncode == 0
    finally:
        server.shutdown()
        server.server_close()
    assert subprocess.run([str(script), *urls], timeout=10).returncode != 0
    # a member whose certificate is not of the given CA does not count
    assert subprocess.run([str(script), "--cacert", str(tmp_path / "none.crt"), urls[1].replace("http:", "https:")],
                          timeout=10).returncode != 0
    assert subprocess.run([str(script)], timeout=10).returncode != 0


def test_nfs_vip_on_the_nfs_hosts_only_tracking_the_nfs_server(rendered):
    ftp, nfs2 = ok(rendered, "keepalived_ftp_nfs")["text"], ok(rendered, "keepalived_nfs2_nfs")["text"]
    assert list(instances(ftp)) == list(instances(nfs2)) == ["VI_nfs"]
    assert "priority 150" in instances(ftp)["VI_nfs"] and "priority 100" in instances(nfs2)["VI_nfs"]
    assert "virtual_router_id 52" in ftp and "192.168.83.220/24" in ftp
    assert "unicast_peer {\n        192.168.83.150\n    }" in ftp
    assert 'script "/usr/local/sbin/keepalived-check-nfs"' in ftp and "chk_haproxy" not in ftp
    script = ok(rendered, "keepalived_nfs2_script")["args"]
    assert script["name"] == "/usr/local/sbin/keepalived-check-nfs" and script["mode"] == "0755"
    # the haproxy host `airflow` of the full topology holds the main VIP, not the NFS one
    airflow = ok(rendered, "keepalived_airflow")["text"]
    assert list(instances(airflow)) == ["VI_main"] and "192.168.83.210/24" in airflow
    assert "unicast_peer {\n        192.168.83.154\n    }" in airflow


def test_keepalived_pillar_overrides_interface_priority_and_preemption(rendered):
    body = instances(ok(rendered, "keepalived_overrides")["text"])["VI_main"]
    assert "priority 200" in body and "nopreempt" not in body
    assert 'interface "bond0"' in body and 'dev "bond0"' in body


def test_keepalived_config_state_is_private_validated_and_reloaded(rendered):
    args = ok(rendered, "keepalived_af1_deb")["args"]
    assert args["name"] == "/etc/keepalived/keepalived.conf"
    assert (args["user"], args["mode"], args["show_changes"]) == ("root", "0600", False)
    assert args["check_cmd"] == "keepalived -t -f"
    service = ok(rendered, "keepalived_service")["args"]
    assert service["reload"] is True and {"file": "keepalived-config"} in service["watch"]


def test_vip_without_router_id_or_with_a_shared_one_fails_the_render(rendered):
    assert "keepalived:vips:api:virtual_router_id" in rendered["bad_vip_without_vrid"]["errors"]
    assert "virtual_router_id 52 is also the id of VIP" in rendered["bad_vrid_shared"]["errors"]


def test_vip_interface_is_the_one_holding_the_hosts_address(rendered):
    """Grains ip4_interfaces of this machine, with af1 given this machine's address."""
    if "keepalived_this_machine" not in rendered:
        pytest.skip("no non-loopback IPv4 address on this machine")
    iface, address, _ = _local_address()
    body = instances(ok(rendered, "keepalived_this_machine")["text"])["VI_main"]
    assert f'interface "{iface}"' in body and f"unicast_src_ip {address}" in body
    assert "fallback9" not in body


def _local_interface():
    found = _local_address()
    if not found:
        pytest.skip("no non-loopback interface with an IPv4 address for keepalived -t")
    return found[0]


@pytest.mark.integration
@pytest.mark.parametrize("name", ["keepalived_af1_deb", "keepalived_airflow", "keepalived_ftp_nfs"])
def test_keepalived_accepts_the_rendered_config(rendered, name, tmp_path):
    """`keepalived -t` checks interfaces and track scripts too: the VIP's
    interface becomes one of this machine's, the NFS track script a copy of
    the state's track scripts copies (in a root-only directory, as script
    security wants)."""
    text = ok(rendered, name)["text"]
    iface = _local_interface()
    text = re.sub(r'(interface|dev) "[^"]+"', rf'\1 "{iface}"', text)
    for check in ("nfs", "haproxy", "database"):
        script = tmp_path / f"keepalived-check-{check}"
        shutil.copy(REPO / "salt" / "keepalived" / "files" / f"check-{check}.sh", script)
        os.chmod(script, 0o755)
        text = text.replace(f"/usr/local/sbin/keepalived-check-{check}", str(script))
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    proc = subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # and it refuses a broken one
    conf.write_text(text.replace("virtual_router_id", "virtual_router_idx"))
    assert subprocess.run(["keepalived", "-t", "-f", str(conf)], capture_output=True, timeout=30).returncode != 0


def test_selinux_stays_enforcing_on_redhat_with_the_booleans_the_roles_need(rendered):
    assert ok(rendered, "selinux_base_el")["args"]["name"] == "enforcing"
    assert "base-selinux-mode" not in ok(rendered, "selinux_base_deb")["ids"]
    el_ids, deb_ids = ok(rendered, "selinux_ftp_el")["ids"], ok(rendered, "selinux_ftp_deb")["ids"]
    assert {"ftp-selinux-ftpd_full_access", "ftp-selinux-ftpd_use_passive_mode"} <= set(el_ids)
    assert not any("selinux" in i for i in deb_ids)
    script = ok(rendered, "selinux_keepalived_script_el")["args"]["name"]
    assert script == "/usr/libexec/keepalived/keepalived-check-haproxy"
    assert f'script "{script}"' in ok(rendered, "keepalived_af2_el")["text"]
