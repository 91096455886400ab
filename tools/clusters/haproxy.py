"""HAProxy in front of a loopback Patroni cluster (clusters.patroni),
shared by tests/haproxy and tools/drill_haproxy_switchover.py.

    ctx = lb_context(state_context["haproxy"], cluster, tmp)   # the state's context, moved onto loopback
    cfg.write_text(<haproxy.cfg.jinja rendered with haproxy=ctx>)
    lb = LoadBalancer(cfg, ctx, cluster, tmp / "haproxy.log")  # haproxy -db
    lb.up("postgres_rw"); lb.psql("postgres_ro", "select 1"); lb.session("postgres_rw")
    figures = switchover_drill(lb, cluster, old_leader, candidate, do_switchover)
"""

import base64
import copy
import csv
import io
import os
import select
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

from clusters.patroni import MEMBERS


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except OSError:  # HAProxy not listening yet
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def lb_context(state_ctx, cluster, tmp):
    """The haproxy state's context with the PostgreSQL backends moved onto the
    cluster's members (PostgreSQL and REST API ports), every frontend on a free
    loopback port, the Airflow/Flower backends on closed ports (down); with
    TLS the checks verify against the cluster's CA."""
    ctx = copy.deepcopy(state_ctx)
    pg_servers = {s["name"]: s for s in ctx["postgres_servers"]}
    assert sorted(pg_servers) == list(MEMBERS), sorted(pg_servers)
    for i, name in enumerate(MEMBERS):
        p = cluster.ports(i)
        pg_servers[name].update(address="127.0.0.1", port=p["pg"], check_port=p["rest"])
        if pg_servers[name].get("check_tls"):  # https checks: against the cluster's own CA
            pg_servers[name]["check_tls"] = dict(pg_servers[name]["check_tls"], ca_file=cluster.pki["ca"])
    for server in ctx["webserver_servers"] + ctx["flower_servers"]:
        server.update(address="127.0.0.1", port=free_port(), check_port=0)
    ctx.update(bind_address="127.0.0.1", frontends={name: free_port() for name in ctx["frontends"]},
               stats_socket=os.path.join(str(tmp), "admin.sock"),
               log="stderr format raw local0")  # into haproxy.log: no syslog socket in the chroot here
    return ctx


class LoadBalancer:
    """haproxy -db running a config rendered from ``ctx``; its stats page (CSV) and psql through it."""

    def __init__(self, cfg_path, ctx, cluster, log_path):
        self.ports = ctx["frontends"]
        self.stats_auth = f"{ctx['stats_user']}:{ctx['stats_password']}"
        self.password = cluster.superuser_password
        self.pg_port_of = {cluster.ports(i)["pg"]: name for i, name in enumerate(MEMBERS)}
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", str(cfg_path)], stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.log.close()

    def http(self, path, auth=True):
        req = urllib.request.Request(f"http://127.0.0.1:{self.ports['stats']}{path}")
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(self.stats_auth.encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""

    def states(self):
        """{(proxy, server): 'UP'|'DOWN'|...} from the stats page's CSV."""
        status, body = self.http("/;csv")
        assert status == 200, status
        rows = csv.DictReader(io.StringIO(body.lstrip("# ")))
        return {(r["pxname"], r["svname"]): r["status"].split()[0] for r in rows
                if r["svname"] not in ("FRONTEND", "BACKEND")}

    def up(self, proxy):
        return sorted(s for (p, s), st in self.states().items() if p == proxy and st == "UP")

    def settled(self):
        """One leader behind the read/write port, two replicas behind the read-only one."""
        return len(self.up("postgres_rw")) == 1 and len(self.up("postgres_ro")) == 2

    def psql(self, frontend, sql, timeout=15):
        """One statement over a new connection through HAProxy; stdout, or None on error."""
        env = dict(os.environ, PGPASSWORD=self.password, PGCONNECT_TIMEOUT="10")
        proc = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.ports[frontend]), "-U", "postgres",
                               "-d", "postgres", "-XAtqc", sql], capture_output=True, text=True, env=env,
                              timeout=timeout)
        return proc.stdout.strip() if proc.returncode == 0 else None

    def where(self, frontend):
        """(in recovery?, member) of a new connection through ``frontend``."""
        recovery, port = self.psql(frontend, "select pg_is_in_recovery(), inet_server_port()").split("|")
        return recovery == "t", self.pg_port_of[int(port)]

    def session(self, frontend):
        return Session(self.ports[frontend], self.password)


def start_lb(ctx, cluster, render, tmp):
    """A real HAProxy from the state's template rendered with ``ctx``, after `haproxy -c` accepts it.
    Returns (the LoadBalancer, the config text)."""
    cfg = tmp / "haproxy.cfg"
    cfg.write_text(render("af1", "compact", "haproxy", "haproxy-config", haproxy=ctx))
    check = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    return LoadBalancer(cfg, ctx, cluster, tmp / "haproxy.log"), cfg.read_text()


class Session:
    """A psql session kept open through HAProxy (psql exits 2 when its connection is lost)."""

    def __init__(self, port, password):
        env = dict(os.environ, PGPASSWORD=password)
        self.proc = subprocess.Popen(["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                                      "-XAtq"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)

    def query(self, sql, timeout=10):
        """The first line of the result, or None when the connection is gone."""
        try:
            self.proc.stdin.write(sql + ";\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            return None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        return line.strip() or None

    def lost(self, timeout=10):
        """True when the server side is gone: the next statement makes psql exit 2."""
        if self.query("select 1", timeout) == "1":
            return False
        return self.proc.wait(timeout) == 2 and "connection to server was lost" in self.proc.stderr.read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def switchover_drill(lb, old_leader, candidate, do_switchover, bound=60):
    """Write through the read/write port every ~0.1 s from 1 s before ``do_switchover()``
    until a write commits on ``candidate``. Returns the figures: seconds from the
    request to that write, the write outage (last write on the old leader to the
    first on the new), writes refused, and the member of every committed write in order."""
    log, stop = [], threading.Event()

    def writer():
        while not stop.is_set():
            t = time.monotonic()
            out = lb.psql("postgres_rw", "insert into lb_drill default values returning inet_server_port()")
            log.append((t, time.monotonic(), lb.pg_port_of.get(int(out)) if out else None))
            time.sleep(0.1)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1)
    requested = time.monotonic()
    try:
        do_switchover()
        wait_for(lambda: any(member == candidate for _, _, member in log), bound,
                 f"a write on the new leader {candidate} through the read/write port", interval=0.2)
    finally:
        stop.set()
        thread.join(30)
    first_new = min(end for _, end, member in log if member == candidate)
    last_old = max((end for _, end, member in log if member == old_leader and end < first_new), default=requested)
    return {"to_write": first_new - requested, "outage": first_new - last_old,
            "refused": sum(1 for *_, member in log if member is None),
            "members": [member for *_, member in log if member]}
