"""A real 3-member etcd + Patroni + PostgreSQL cluster on loopback, configured
from the states' own templates (salt/etcd/files/etcd.env.jinja and
salt/postgres/files/patroni.yml.jinja) and contexts, with only addresses,
ports and directories moved onto this machine.

    with PatroniCluster(etcd_ctx, patroni_ctx, workdir) as cluster:
        cluster.configs["db1"]         # patroni.yml of member db1 (for patronictl -c / the salt module)
        cluster.kill("db1")            # SIGKILL Patroni and its PostgreSQL: the host "dies"
        cluster.stop_member("db1")     # SIGTERM to Patroni only, as `systemctl stop patroni`
        cluster.start_member("db1")    # bring it back (it rejoins, rewinding if needed)
        cluster.psql("db2", "select 1")  # as the postgres superuser over the member's socket

Ports: etcd clients 12379/12381/12383, peers 12380/12382/12384; PostgreSQL
15432-15434; Patroni REST API 18008-18010 (base_port shifts them all).

When the contexts come from a pillar with tls:enabled (the patroni context's
`tls.enabled`), the cluster gets its own throwaway CA (tools/gen_tls.py) and
one certificate per member naming it, localhost and 127.0.0.1; etcd then runs
https with client-cert-auth, Patroni and PostgreSQL with the templates' TLS
settings, and `cluster.pki` holds the paths (ca, cert[name], key[name],
pg_key[name]); `cluster.ssl_context(client_cert=True)` verifies against the CA.
"""

import copy
import json
import os
import pwd
import signal
import ssl
import subprocess
import time

from clusters.base import Cluster
from clusters.templates import render_template

MEMBERS = ("db1", "db2", "db3")


class PatroniCluster(Cluster):
    def __init__(self, etcd_context, patroni_context, workdir, offset=0):
        self.etcd_context = etcd_context["etcd"]
        self.patroni_context = patroni_context["patroni"]
        self.workdir = str(workdir)
        self.offset = offset
        self.etcd_procs, self.patroni_procs, self.configs = {}, {}, {}
        self.postgres = pwd.getpwnam("postgres")
        self.tls = bool((self.patroni_context.get("tls") or {}).get("enabled"))
        self.scheme = "https" if self.tls else "http"
        self.pki = {}
        # extra environment of a member's Patroni (and so of its PostgreSQL: archive_command, restore_command)
        self.member_env = {}

    def ports(self, i):
        return {"client": 12379 + 2 * i + self.offset, "peer": 12380 + 2 * i + self.offset,
                "pg": 15432 + i + self.offset, "rest": 18008 + i + self.offset}

    def member_dir(self, name):
        return os.path.join(self.workdir, name)

    # ------------------------------------------------------------------ pki
    def issue_pki(self):
        """A CA and per member a certificate, an etcd key (this user's) and a PostgreSQL key (postgres', 0600).
        Each certificate carries the names tools/gen_tls.py gives that host of the compact topology (its
        names and IP, loopback, and the main VIP's IP and names: clients reach PostgreSQL through it)."""
        import gen_tls
        from _modules.ha_inventory import read_inventory

        inventory = read_inventory("compact")

        pki_dir = os.path.join(self.workdir, "pki")
        os.makedirs(pki_dir, mode=0o755, exist_ok=True)
        ca_key, ca_cert = gen_tls.create_ca("airflow-ha test CA")
        self.pki = {"ca": self._write(pki_dir, "ca.crt", gen_tls.cert_pem(ca_cert), 0o644),
                    "cert": {}, "key": {}, "pg_key": {}}
        for name in MEMBERS:
            key = gen_tls.new_key()
            dns, ips = gen_tls.host_names(inventory, name)
            cert = gen_tls.issue_host_cert(ca_key, ca_cert, key, name, dns, ips)
            self.pki["cert"][name] = self._write(pki_dir, f"{name}.crt", gen_tls.cert_pem(cert), 0o644)
            self.pki["key"][name] = self._write(pki_dir, f"{name}.key", gen_tls.key_pem(key), 0o600)
            pg_key = self._write(pki_dir, f"{name}.postgres.key", gen_tls.key_pem(key), 0o600)
            os.chown(pg_key, self.postgres.pw_uid, self.postgres.pw_gid)
            self.pki["pg_key"][name] = pg_key

    @staticmethod
    def _write(directory, filename, data, mode):
        path = os.path.join(directory, filename)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def ssl_context(self, client_cert=True, member="db1"):
        """Verifies servers against the cluster CA; presents ``member``'s certificate when ``client_cert``."""
        context = ssl.create_default_context(cafile=self.pki["ca"])
        if client_cert:
            context.load_cert_chain(self.pki["cert"][member], self.pki["key"][member])
        return context

    def _tls_paths(self, ctx_tls, name, key):
        return dict(ctx_tls, ca_file=self.pki["ca"], cert_file=self.pki["cert"][name], key_file=key)

    # ----------------------------------------------------------------- etcd
    def etcd_url(self, i, path=""):
        return f"{self.scheme}://127.0.0.1:{self.ports(i)['client']}{path}"

    def start_etcd(self):
        scheme = self.scheme
        peers = ",".join(f"{n}={scheme}://127.0.0.1:{self.ports(i)['peer']}" for i, n in enumerate(MEMBERS))
        for i, name in enumerate(MEMBERS):
            p = self.ports(i)
            ctx = dict(copy.deepcopy(self.etcd_context), name=name, initial_cluster=peers,
                       data_dir=os.path.join(self.member_dir(name), "etcd"),
                       peer_url=f"{scheme}://127.0.0.1:{p['peer']}", client_url=f"{scheme}://127.0.0.1:{p['client']}",
                       listen_client_urls=f"{scheme}://127.0.0.1:{p['client']}")
            if self.tls:
                ctx["tls"] = self._tls_paths(ctx["tls"], name, self.pki["key"][name])
            env_text = render_template("etcd/files/etcd.env.jinja", {"etcd": ctx})
            env = dict(os.environ)
            env.update(line.split("=", 1) for line in env_text.splitlines() if line and not line.startswith("#"))
            os.makedirs(self.member_dir(name), exist_ok=True)
            log = open(os.path.join(self.member_dir(name), "etcd.log"), "w")
            self.etcd_procs[name] = subprocess.Popen(["etcd"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                     start_new_session=True)
        endpoint = self.etcd_url(0, "/health")
        context = self.ssl_context() if self.tls else None
        self._wait(lambda: '"health":"true"' in _http_get(endpoint, context), 60, "etcd quorum")

    # -------------------------------------------------------------- patroni
    def member_config(self, i, name):
        p = self.ports(i)
        ctx = copy.deepcopy(self.patroni_context)
        mdir = self.member_dir(name)
        ctx.update(
            name=name,
            restapi=dict(ctx["restapi"], listen=f"127.0.0.1:{p['rest']}", connect_address=f"127.0.0.1:{p['rest']}"),
            etcd3_hosts=[f"127.0.0.1:{self.ports(j)['client']}" for j in range(len(MEMBERS))],
            listen=f"127.0.0.1:{p['pg']}", connect_address=f"127.0.0.1:{p['pg']}",
            data_dir=os.path.join(mdir, "data"), pgpass=os.path.join(mdir, "pgpass"),
            socket_dir=mdir, replication_sources=["127.0.0.1"], client_sources=["127.0.0.1"],
        )
        if self.tls:
            ctx["tls"] = self._tls_paths(ctx["tls"], name, self.pki["pg_key"][name])
        return render_template("postgres/files/patroni.yml.jinja", {"patroni": ctx})

    def start_member(self, name):
        i = MEMBERS.index(name)
        mdir = self.member_dir(name)
        os.makedirs(mdir, exist_ok=True)
        config = os.path.join(mdir, "patroni.yml")
        with open(config, "w") as f:
            f.write(self.member_config(i, name))
        os.chmod(config, 0o600)
        for path in (mdir, config):
            os.chown(path, self.postgres.pw_uid, self.postgres.pw_gid)
        os.chmod(mdir, 0o700)
        self.configs[name] = config
        log = open(os.path.join(mdir, "patroni.log"), "a")
        self.patroni_procs[name] = subprocess.Popen(
            ["runuser", "-u", "postgres", "--", "patroni", config], stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=mdir, env=dict(os.environ, **self.member_env.get(name, {})))

    def kill(self, name):
        """SIGKILL the member's Patroni and PostgreSQL at once, as a host crash would."""
        proc = self.patroni_procs.pop(name)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self._kill_postmaster(name)

    def stop_member(self, name, timeout=90):
        """Stop the member's Patroni as `systemctl stop patroni` does (SIGTERM to Patroni only): it shuts
        PostgreSQL down and leaves the DCS."""
        proc = self.patroni_procs.pop(name)
        # to Patroni itself: runuser, its parent, would SIGKILL it 2 s after passing a SIGTERM on
        with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
            for child in f.read().split():
                os.kill(int(child), signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            self._kill_postmaster(name)

    def _kill_postmaster(self, name):
        """PostgreSQL daemonizes under Patroni: find the postmaster by its data dir."""
        pidfile = os.path.join(self.member_dir(name), "data", "postmaster.pid")
        if os.path.exists(pidfile):
            with open(pidfile) as f:
                pid = int(f.readline())
            try:
                os.killpg(os.getpgid(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    def psql(self, name, sql, check=True):
        p = self.ports(MEMBERS.index(name))
        proc = subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-h", self.member_dir(name), "-p",
                               str(p["pg"]), "-d", "postgres", "-XAtqc", sql], capture_output=True, text=True,
                              timeout=30)
        if check and proc.returncode:
            raise RuntimeError(f"psql on {name}: {proc.stderr.strip()}")
        return proc.stdout.strip() if not proc.returncode else None

    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        if self.tls:
            self.issue_pki()
        self.start_etcd()
        for name in MEMBERS:
            self.start_member(name)
        return self

    def stop(self):
        for name in list(self.patroni_procs):
            proc = self.patroni_procs.pop(name)
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for name in MEMBERS:
            self._kill_postmaster(name)
        for proc in self.etcd_procs.values():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        self.etcd_procs.clear()

    @staticmethod
    def _wait(check, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if check():
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"timed out waiting for {what}")


def _http_get(url, context=None):
    import urllib.request

    with urllib.request.urlopen(url, timeout=3, context=context) as resp:
        return resp.read().decode()
