"""A real 3-node RabbitMQ cluster on loopback, configured from the state's own
template (salt/rabbitmq/files/rabbitmq.conf.jinja) and context, with only node
names, ports and directories moved onto this machine.

    with RabbitCluster(rabbitmq_ctx, cookie, workdir) as cluster:
        cluster.nodes                  # ['rmq1@localhost', 'rmq2@localhost', 'rmq3@localhost']
        cluster.amqp_address(0)        # '127.0.0.1:41000'
        cluster.stop_node(2); cluster.start_node(2)

Every node runs as the rabbitmq user with HOME /var/lib/rabbitmq, so the
packaged CLI (which runs as that user) shares their Erlang cookie: the cookie
file there is replaced for the run and restored afterwards.

Ports of node i: AMQP 41000+10i, management +1, Prometheus +2, distribution +3,
AMQPS +4, management over https +5. With ``tls`` (paths ``ca_file``,
``cert_file``, ``key_file``) the state's TLS settings are rendered with these
files instead of /etc/airflow-ha/pki (the context must come from a TLS pillar).
"""

import copy
import os
import pwd
import shutil
import subprocess
import time

from clusters.base import Cluster
from clusters.templates import render_template

NAMES = ("rmq1", "rmq2", "rmq3")
COOKIE = "/var/lib/rabbitmq/.erlang.cookie"


class RabbitCluster(Cluster):
    def __init__(self, rabbitmq_context, cookie, workdir, base_port=41000, tls=None):
        self.context = copy.deepcopy(rabbitmq_context["rabbitmq"])
        if tls:
            self.context["tls"] = dict(self.context["tls"], **tls)
        self.cookie = cookie
        self.workdir = str(workdir)
        self.base_port = base_port
        self.nodes = [f"{n}@localhost" for n in NAMES]
        self.procs = {}
        self.user = pwd.getpwnam("rabbitmq")
        self._saved_cookie = None

    def ports(self, i):
        base = self.base_port + 10 * i
        return {"amqp": base, "management": base + 1, "prometheus": base + 2, "dist": base + 3, "amqps": base + 4,
                "management_tls": base + 5}

    def amqp_address(self, i):
        return f"127.0.0.1:{self.ports(i)['amqp']}"

    def node_dir(self, i):
        return os.path.join(self.workdir, NAMES[i])

    def config(self, i, peer_discovery=True):
        ctx = copy.deepcopy(self.context)
        ports = self.ports(i)
        ctx.update(amqp_port=ports["amqp"], management_port=ports["management"],
                   prometheus_port=ports["prometheus"], amqps_port=ports["amqps"],
                   management_tls_port=ports["management_tls"], node=self.nodes[i],
                   nodes=self.nodes if peer_discovery else [self.nodes[i]])
        return render_template("rabbitmq/files/rabbitmq.conf.jinja", {"rabbitmq": ctx})

    def start_node(self, i, peer_discovery=True):
        ndir = self.node_dir(i)
        os.makedirs(ndir, exist_ok=True)
        with open(os.path.join(ndir, "rabbitmq.conf"), "w") as f:
            f.write(self.config(i, peer_discovery))
        with open(os.path.join(ndir, "enabled_plugins"), "w") as f:
            f.write("[" + ",".join(self.context["plugins"]) + "].")
        for root, dirs, files in os.walk(ndir):
            for path in [root] + [os.path.join(root, x) for x in files]:
                os.chown(path, self.user.pw_uid, self.user.pw_gid)
        env = dict(os.environ, HOME=self.user.pw_dir, RABBITMQ_NODENAME=self.nodes[i],
                   RABBITMQ_DIST_PORT=str(self.ports(i)["dist"]),
                   RABBITMQ_CONFIG_FILE=os.path.join(ndir, "rabbitmq.conf"),
                   RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(ndir, "enabled_plugins"),
                   RABBITMQ_MNESIA_BASE=os.path.join(ndir, "mnesia"), RABBITMQ_LOG_BASE=os.path.join(ndir, "log"),
                   RABBITMQ_PID_FILE=os.path.join(ndir, "pid"))
        log = open(os.path.join(ndir, "server.log"), "a")
        self.procs[i] = subprocess.Popen(
            ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}", "--init-groups",
             "/usr/lib/rabbitmq/bin/rabbitmq-server"],
            env=env, cwd=ndir, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def ctl(self, i, *args, check=True):
        proc = subprocess.run(["rabbitmqctl", "-n", self.nodes[i], *args], capture_output=True, text=True,
                              timeout=120)
        if check and proc.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} on {self.nodes[i]}: {proc.stderr.strip()}")
        return proc

    def stop_node(self, i):
        """Stop the whole node (Erlang VM), as a host shutdown would."""
        self.ctl(i, "stop", check=False)
        proc = self.procs.pop(i, None)
        if proc:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()

    def wipe_node(self, i):
        """Forget the node's data, as a rebuilt host would."""
        shutil.rmtree(os.path.join(self.node_dir(i), "mnesia"), ignore_errors=True)

    def start(self, peer_discovery=True, count=len(NAMES)):
        self.started_at = time.monotonic()
        os.makedirs(self.workdir, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        if os.path.exists(COOKIE):
            with open(COOKIE) as f:
                self._saved_cookie = f.read()
            os.chmod(COOKIE, 0o600)
        with open(COOKIE, "w") as f:
            f.write(self.cookie)
        os.chown(COOKIE, self.user.pw_uid, self.user.pw_gid)
        os.chmod(COOKIE, 0o400)
        for i in range(count):
            self.start_node(i, peer_discovery)
        return self

    def stop(self):
        for i in list(self.procs):
            self.stop_node(i)
        if self._saved_cookie is not None:
            os.chmod(COOKIE, 0o600)
            with open(COOKIE, "w") as f:
                f.write(self._saved_cookie)
            os.chmod(COOKIE, 0o400)

    @staticmethod
    def wait(check, timeout, what, interval=0.5):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if check():
                return
            time.sleep(interval)
        raise TimeoutError(f"timed out waiting for {what}")
