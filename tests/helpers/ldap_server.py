"""A real OpenLDAP slapd from the ldap state's files, and running states the
way Salt does, for the access-control tests (tests/airflow/conftest.py holds
their fixtures, tests/airflow/test_auth_ldap*.py use them).

The ldap state of db3 (compact) is compiled with its paths moved into a work
directory; its slapd.conf (checked by `slaptest` as the state's check_cmd
does) and seed are written as the state writes them, slapd runs as the
openldap user on 127.0.0.1 (LDAPS only, a test CA made with openssl: the
cluster CA's certificates name the lab's addresses), and the seed command
runs as Salt runs it (`unless` first)."""

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import yaml

from clusters import state_render

SLAPD = Path("/usr/sbin/slapd")


def slapd_missing():
    """Why a real slapd cannot run here, or None."""
    if not (SLAPD.exists() and shutil.which("ldapadd")):
        return "slapd and ldap-utils (requirements/apt-test.txt) are not installed"
    return None


# ------------------------------------------------------------ compiling states
def compile_states(host, sls, pillar, overrides, env, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"{host}-pillar")
    (root / "site.sls").write_text(yaml.safe_dump(pillar))
    return state_render.host_states(host, "compact", sls, root, overrides, env)


def write_files(states, ids, owner=None):
    for state_id in ids:
        args, text = states[state_id]["args"], states[state_id]["text"]
        assert states[state_id]["fun"] == "file.managed" and text is not None, state_id
        path = Path(args["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text if text.endswith("\n") else text + "\n")
        path.chmod(int(str(args.get("mode", "0644")), 8))
        if owner:
            shutil.chown(path, *owner)


def bash(command, env=None, timeout=300):
    return subprocess.run(["/bin/bash", "-c", command], env=env, capture_output=True, text=True, timeout=timeout)


def run_cmd_state(states, state_id, env=None):
    """A cmd.run state as Salt runs it (`unless` first); returns whether it ran."""
    args = states[state_id]["args"]
    assert states[state_id]["fun"] == "cmd.run", state_id
    if args.get("unless") and bash(args["unless"], env).returncode == 0:
        return False
    proc = bash(args["name"], env)
    assert proc.returncode == 0, f"{state_id}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    return True


def secrets_of(env):
    with open(os.path.join(env[0], "airflow_ha_secrets.sls")) as f:
        return yaml.safe_load(f)["secrets"]


# --------------------------------------------------------------- TLS material
def openssl(*args):
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(path, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", path / f"{name}.key", "-out", path / f"{name}.crt")


def make_server_cert(path, ca, name):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", path / f"{name}.key",
            "-out", path / f"{name}.csr")
    (path / f"{name}.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", path / f"{name}.csr", "-CA", path / f"{ca}.crt", "-CAkey", path / f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", path / f"{name}.ext", "-out", path / f"{name}.crt")


# ---------------------------------------------------------------------- slapd
class Slapd:
    def __init__(self, states, ldap_dir, ldapi, port):
        self.states, self.dir, self.ldapi, self.port = states, ldap_dir, ldapi, port
        self.conf = Path(states["ldap-config"]["args"]["name"])
        self.proc = None

    def start(self, cert=None, key=None):
        conf = self.conf
        if cert:  # the same server presenting a certificate of another CA
            conf = self.dir / "slapd-rogue.conf"
            text = self.conf.read_text()
            text = "\n".join(f"TLSCertificateFile {cert}" if line.startswith("TLSCertificateFile ") else
                             f"TLSCertificateKeyFile {key}" if line.startswith("TLSCertificateKeyFile ") else line
                             for line in text.splitlines())
            conf.write_text(text + "\n")
            shutil.chown(conf, "openldap", "openldap")
        self.proc = subprocess.Popen(
            [SLAPD, "-d", "stats", "-f", conf, "-u", "openldap", "-g", "openldap",
             "-h", f"ldaps://127.0.0.1:{self.port}/ {self.ldapi}"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "slapd.log", "a"), start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            # any LDAP answer (anonymous binds are refused); 255: cannot contact the server
            if bash(f"ldapsearch -LLL -x -H {self.ldapi} -s base -b '' namingContexts").returncode != 255:
                return
            if self.proc.poll() is not None:
                raise AssertionError("slapd exited: " + (self.dir / "slapd.log").read_text()[-2000:])
            time.sleep(0.3)
        self.stop()
        raise AssertionError("slapd did not start: " + (self.dir / "slapd.log").read_text()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None
