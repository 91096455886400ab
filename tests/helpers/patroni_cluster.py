"""A real 3-member etcd + Patroni + PostgreSQL cluster on loopback, configured
from the states' own templates (salt/etcd/files/etcd.env.jinja and
salt/postgres/files/patroni.yml.jinja) and contexts, with only addresses,
ports and directories moved onto this machine.

    with PatroniCluster(etcd_ctx, patroni_ctx, workdir) as cluster:
        cluster.configs["db1"]         # patroni.yml of member db1 (for patronictl -c / the salt module)
        cluster.kill("db1")            # SIGKILL Patroni and its PostgreSQL: the host "dies"
        cluster.start_member("db1")    # bring it back (it rejoins, rewinding if needed)
        cluster.psql("db2", "select 1")  # as the postgres superuser over the member's socket

Ports: etcd clients 12379/12381/12383, peers 12380/12382/12384; PostgreSQL
15432-15434; Patroni REST API 18008-18010 (base_port shifts them all).
"""

import copy
import json
import os
import pwd
import shutil
import signal
import subprocess
import time

import jinja2

from tests.helpers.inventory import REPO

MEMBERS = ("db1", "db2", "db3")


def render_template(relpath, context):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO / "salt")), keep_trailing_newline=True,
                             extensions=["jinja2.ext.do"])
    env.filters["json"] = json.dumps
    return env.get_template(relpath).render(**context)


class PatroniCluster:
    def __init__(self, etcd_context, patroni_context, workdir, offset=0):
        self.etcd_context = etcd_context["etcd"]
        self.patroni_context = patroni_context["patroni"]
        self.workdir = str(workdir)
        self.offset = offset
        self.etcd_procs, self.patroni_procs, self.configs = {}, {}, {}
        self.postgres = pwd.getpwnam("postgres")

    def ports(self, i):
        return {"client": 12379 + 2 * i + self.offset, "peer": 12380 + 2 * i + self.offset,
                "pg": 15432 + i + self.offset, "rest": 18008 + i + self.offset}

    def member_dir(self, name):
        return os.path.join(self.workdir, name)

    # ----------------------------------------------------------------- etcd
    def start_etcd(self):
        peers = ",".join(f"{n}=http://127.0.0.1:{self.ports(i)['peer']}" for i, n in enumerate(MEMBERS))
        for i, name in enumerate(MEMBERS):
            p = self.ports(i)
            ctx = dict(copy.deepcopy(self.etcd_context), name=name, initial_cluster=peers,
                       data_dir=os.path.join(self.member_dir(name), "etcd"),
                       peer_url=f"http://127.0.0.1:{p['peer']}", client_url=f"http://127.0.0.1:{p['client']}",
                       listen_client_urls=f"http://127.0.0.1:{p['client']}")
            env_text = render_template("etcd/files/etcd.env.jinja", {"etcd": ctx})
            env = dict(os.environ)
            env.update(line.split("=", 1) for line in env_text.splitlines() if line and not line.startswith("#"))
            os.makedirs(self.member_dir(name), exist_ok=True)
            log = open(os.path.join(self.member_dir(name), "etcd.log"), "w")
            self.etcd_procs[name] = subprocess.Popen(["etcd"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                     start_new_session=True)
        endpoint = f"http://127.0.0.1:{self.ports(0)['client']}/health"
        self._wait(lambda: '"health":"true"' in _http_get(endpoint), 60, "etcd quorum")

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
            start_new_session=True, cwd=mdir)

    def kill(self, name):
        """SIGKILL the member's Patroni and PostgreSQL at once, as a host crash would."""
        proc = self.patroni_procs.pop(name)
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

    def __enter__(self):
        try:
            return self.start()
        except Exception:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

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


def _http_get(url):
    import urllib.request

    with urllib.request.urlopen(url, timeout=3) as resp:
        return resp.read().decode()
