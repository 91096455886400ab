"""Throwaway Debian 12 hosts for applying states for real: systemd-nspawn
containers booted (systemd as PID 1) from a cached debootstrap rootfs, with
the repo and this venv bind-mounted read-only so `salt-call --local` runs
inside without installing anything. Each container has a private network
namespace, so its firewall never touches this machine's."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

from tests.helpers.inventory import REPO

ROOTFS_CACHE = "/var/cache/airflow-ha/rootfs-base"


def base_packages():
    """The Debian packages of the base role, baked into the rootfs so applies need no network."""
    with open(REPO / "salt" / "base" / "osfamilymap.yaml") as f:
        return yaml.safe_load(f)["Debian"]["packages"]


def ensure_rootfs(extra_packages=()):
    """The cached rootfs with the base role's packages (and ``extra_packages``), built once."""
    packages = base_packages() + sorted(extra_packages)
    path = ROOTFS_CACHE + ("-" + "-".join(sorted(extra_packages)) if extra_packages else "")
    subprocess.run([str(REPO / "tools" / "build-rootfs.sh"), path, ",".join(packages)], check=True)
    return path


def _descendant_systemd(nspawn_pid, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run(["ps", "-o", "pid=,ppid=,comm=", "-e"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            pid, ppid, comm = line.split(None, 2)
            if int(ppid) == nspawn_pid and comm.strip() == "systemd":
                return int(pid)
        time.sleep(0.2)
    raise RuntimeError("the container's systemd did not start")


class NspawnHost:
    def __init__(self, name, workdir, minion_id, topology, secrets_file, extra_packages=(), binds=(),
                 extra_pillar=None):
        self.extra_pillar = extra_pillar
        self.extra_packages = tuple(extra_packages)
        self.extra_binds = tuple(binds)
        self.name = name
        self.root = os.path.join(workdir, name)
        self.minion_id = minion_id
        self.topology = topology
        self.secrets_file = secrets_file
        self.proc = None
        self.pid = None

    def start(self):
        # cp -a keeps /dev's device nodes as nodes (copytree would read /dev/zero forever)
        subprocess.run(["cp", "-a", ensure_rootfs(self.extra_packages), self.root], check=True)
        os.makedirs(f"{self.root}/etc/salt", exist_ok=True)
        os.makedirs(f"{self.root}/srv/secrets", mode=0o700, exist_ok=True)
        shutil.copy(self.secrets_file, f"{self.root}/srv/secrets/airflow_ha_secrets.sls")
        os.chmod(f"{self.root}/srv/secrets/airflow_ha_secrets.sls", 0o600)
        if self.extra_pillar:  # pillar/top.sls gives every host `lab` (the lab's own settings)
            with open(f"{self.root}/srv/secrets/lab.sls", "w") as f:
                yaml.safe_dump(self.extra_pillar, f)
        with open(f"{self.root}/etc/salt/minion", "w") as f:
            yaml.safe_dump(
                {
                    "id": self.minion_id,
                    "file_client": "local",
                    "file_roots": {"base": ["/srv/airflow-ha/salt"]},
                    "pillar_roots": {"base": ["/srv/airflow-ha/pillar", "/srv/secrets"]},
                    "airflow_ha_topology": self.topology,
                },
                f,
            )
        binds = {str(REPO): "/srv/airflow-ha", sys.prefix: sys.prefix, sys.base_prefix: sys.base_prefix}
        binds.update({path: path for path in self.extra_binds})
        cmd = ["systemd-nspawn", "-D", self.root, "--register=no", "--keep-unit", "-b", "--private-network",
               f"--machine={self.name}", f"--hostname={self.minion_id}"]
        cmd += [f"--bind-ro={src}:{dst}" for src, dst in binds.items()]
        self.log = open(f"{self.root}.console.log", "w")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.pid = _descendant_systemd(self.proc.pid)
        deadline = time.time() + 60
        while time.time() < deadline:
            state = self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
            if state in ("running", "degraded"):
                return self
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: systemd did not finish booting")

    def run(self, argv, check=True, timeout=600, input=None):
        proc = subprocess.run(["nsenter", "-t", str(self.pid), "-a", *argv], capture_output=True, text=True, input=input,
                              timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONWARNINGS": "ignore"})
        if check and proc.returncode:
            raise RuntimeError(f"{self.name}: {argv} exited {proc.returncode}: {proc.stderr[-2000:]}")
        return proc

    def salt_call(self, *args):
        """Run salt-call inside; return its parsed JSON `local` value."""
        salt_call = os.path.join(sys.prefix, "bin", "salt-call")
        proc = self.run([salt_call, "--local", "--out=json", "--log-level=quiet", *args], check=False)
        try:
            return json.loads(proc.stdout)["local"]
        except (ValueError, KeyError):
            raise RuntimeError(f"{self.name}: salt-call {args} gave no JSON: {proc.stdout[-2000:]} {proc.stderr[-2000:]}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nspawn powers the container off
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def nspawn_host(minion_id, topology, secrets_file, name=None, extra_packages=(), binds=(), extra_pillar=None):
    """A booted container acting as inventory host ``minion_id``; packages the
    states would install must be in ``extra_packages`` (the container has no network);
    ``binds``: more paths of this machine mounted read-only at the same place;
    ``extra_pillar``: pillar beside the secrets (as lab.sls), e.g. a signing policy."""
    with tempfile.TemporaryDirectory(prefix="airflow-ha-nspawn-", dir="/var/tmp") as workdir:
        host = NspawnHost(name or f"t-{minion_id}-{os.getpid()}", workdir, minion_id, topology, secrets_file,
                          extra_packages, binds, extra_pillar)
        try:
            yield host.start()
        finally:
            host.stop()


def changed_states(ret):
    """IDs of states that reported changes (or failed) in a state.apply JSON return."""
    if not isinstance(ret, dict):
        raise AssertionError(f"state run did not compile: {ret}")
    return sorted(v.get("__id__", k) for k, v in ret.items() if v.get("changes") or v.get("result") is not True)
