"""Process helpers of the programs the tests and the single-host bench run: a
command as the postgres user, a scratch PostgreSQL, and stopping the process
groups they started."""

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextlib.contextmanager
def scratch_dir(prefix):
    """A directory under /var/tmp, removed afterwards; 0755, so that PostgreSQL (user postgres) reaches
    what is below it."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_postgres(*cmd, check=True, **kwargs):
    """``cmd`` run as the postgres user (runuser), output captured as text."""
    return subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)], capture_output=True, text=True,
                          check=check, **kwargs)


def stop_groups(procs, timeout=60):
    """SIGTERM to each process group of ``procs`` (Popen objects started with
    start_new_session), wait up to ``timeout`` s each, then SIGKILL whatever
    is left of the group (gunicorn or Celery children)."""
    for proc in procs:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@contextlib.contextmanager
def scratch_postgres(data, port, pg_bin=PG_BIN, auth_host="trust"):
    """A throwaway PostgreSQL in ``data`` (created here) on 127.0.0.1:``port``, its socket in ``data``,
    with a role and database ``airflow`` (``auth_host`` over TCP: trust, or scram-sha-256 once the caller
    gives the roles passwords); stopped on exit."""
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres(pg_bin / "initdb", "-D", data, "-U", "postgres", "--auth-local=peer", f"--auth-host={auth_host}")
    as_postgres(pg_bin / "pg_ctl", "-D", data, "-w", "-l", data / "log", "-o",
                f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start")
    try:
        for sql in ("CREATE ROLE airflow LOGIN", "CREATE DATABASE airflow OWNER airflow"):
            as_postgres("psql", "-h", data, "-p", port, "-d", "postgres", "-Xqc", sql)
        yield data
    finally:
        as_postgres(pg_bin / "pg_ctl", "-D", data, "-m", "fast", "stop")
