"""The single-host Airflow of make bench: the pinned Airflow 3 venv
(/var/cache/airflow-ha/pin3, make deps; AIRFLOW_HA_PIN3 names another), the
LocalExecutor, a scratch PostgreSQL 15 (Debian's initdb/pg_ctl as the postgres
user, on a free loopback port), all in one temp directory under /var/tmp.

    with LocalAirflow(parallelism=16) as local, pointed_at(local) as inv:
        drill_throughput.measure(inv, "single host")

It runs `airflow db migrate`, then the scheduler, the DAG processor and the
api-server (Airflow 3's simple auth manager: one admin user, its password
written to the passwords file before the start, so nothing is generated or
printed); the DAG folder holds salt/dags/airflow_ha_bench.py only. Leaving the
``with`` block, an exception or Ctrl-C included, stops every process group and
PostgreSQL and removes the directory.

``pointed_at`` aims tools/lab/drill_throughput.py at it: the fan-out and chain
are measured by the drills' own code, with the REST API here and the
executions log under this AIRFLOW_HOME in place of the lab's VIP and workers."""

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import _modules.airflow_ha as airflow_ha
import drill_throughput
from clusters.processes import PG_BIN, scratch_postgres, stop_groups
from clusters.base import Cluster
from clusters.haproxy import free_port

REPO = Path(__file__).resolve().parents[2]
BENCH_DAG = REPO / "salt" / "dags" / "airflow_ha_bench.py"
PINNED = REPO / "requirements" / "airflow-3.txt"
DAG_IDS = ("airflow_ha_fanout", "airflow_ha_chain")


def venv():
    return Path(os.environ.get("AIRFLOW_HA_PIN3", "/var/cache/airflow-ha/pin3"))


def pinned_version():
    """The apache-airflow version requirements/airflow-3.txt pins (what tests.helpers.inventory.pinned_airflow
    reads; the tools do not import the tests)."""
    return re.search(r"^apache-airflow==(\S+)$", PINNED.read_text(), re.M).group(1)


def problems():
    """Why the single-host Airflow cannot start here (empty: it can)."""
    found = []
    if not (venv() / "bin" / "airflow").exists():
        found.append(f"no Airflow venv at {venv()} (make deps builds it)")
    elif (venv() / ".requirements").exists() and (venv() / ".requirements").read_text() != PINNED.read_text():
        found.append(f"{venv()} is not {PINNED.relative_to(REPO)} (make deps updates it)")
    if not (PG_BIN / "initdb").exists():
        found.append(f"no PostgreSQL 15 at {PG_BIN} (make deps installs it)")
    if os.geteuid() != 0:
        found.append("run as root (PostgreSQL runs as the postgres user)")
    return found


class LocalAirflow(Cluster):
    """Scratch PostgreSQL + scheduler, DAG processor and api-server of the pinned venv."""

    def __init__(self, parallelism, start_timeout=900):
        self.parallelism, self.start_timeout = parallelism, start_timeout
        self.workdir = tempfile.mkdtemp(prefix="airflow-ha-bench-", dir="/var/tmp")
        os.chmod(self.workdir, 0o755)  # PostgreSQL runs as postgres below it
        self.home = Path(self.workdir) / "home"
        self.pg_port, self.api_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.password = secrets.token_urlsafe(18)
        self.procs = {}
        self.timings = {}
        self._postgres = contextlib.ExitStack()

    def __enter__(self):
        # Cluster.__enter__ stops on an Exception only, and keeps the directory: Ctrl-C during the start
        # (KeyboardInterrupt) must clean up as well
        try:
            return self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise

    @property
    def executions_log(self):
        return self.home / "drill" / "executions.log"  # what airflow_ha_bench.record_execution appends to

    def settings(self):
        """What this instance runs with, for the report."""
        return {"airflow": pinned_version(), "venv": str(venv()), "executor": "LocalExecutor",
                "parallelism": self.parallelism, "database": f"PostgreSQL 15 (scratch, 127.0.0.1:{self.pg_port})",
                "auth_manager": "simple", "components": sorted(self.procs) or ["scheduler", "dag-processor",
                                                                             "api-server"],
                "host": socket.gethostname(), "cores": os.cpu_count()}

    def environment(self):
        base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        return dict(
            base,
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.home / "dags"),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM=str(self.parallelism),
            AIRFLOW__CORE__AUTH_MANAGER=airflow_ha.SIMPLE_AUTH_MANAGER,
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"postgresql+psycopg2://airflow@127.0.0.1:{self.pg_port}/airflow",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_urlsafe(32),
            # the LocalExecutor's log server: a free port, not 8793 (anything else on this machine may hold it)
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
        )

    def start(self):
        (self.home / "dags").mkdir(parents=True)
        (self.home / "logs").mkdir()
        shutil.copy(BENCH_DAG, self.home / "dags")
        passwords = self.home / "passwords.json"
        passwords.write_text(json.dumps({"admin": self.password}) + "\n")
        passwords.chmod(0o600)
        self._postgres.enter_context(scratch_postgres(Path(self.workdir) / "pg", self.pg_port))
        env = self.environment()
        airflow = str(venv() / "bin" / "airflow")
        started = time.monotonic()
        proc = subprocess.run([airflow, "db", "migrate"], env=env, cwd=self.home, capture_output=True, text=True,
                              timeout=1800)
        if proc.returncode:
            raise RuntimeError(f"airflow db migrate exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
        self.timings["db_migrate_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        for name, args in (("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"]),
                           ("api-server", ["api-server"])):
            with open(self.home / f"{name}.log", "w") as log:
                self.procs[name] = subprocess.Popen([airflow, *args], env=env, cwd=self.home, stdout=log,
                                                    stderr=subprocess.STDOUT, start_new_session=True)
        self._wait(self._ready, self.start_timeout, "scheduler, DAG processor and both bench DAGs")
        self.timings["ready_s"] = round(time.monotonic() - started, 1)
        started = time.monotonic()
        self._wait(self._execution_api_answers, self.start_timeout, "the execution API")
        self.timings["execution_api_first_call_s"] = round(time.monotonic() - started, 1)
        return self

    def _execution_api_answers(self):
        # The api-server builds the execution API's versioned routes at its first request (34 s on 2 busy
        # cores): a task's first call would time out ([workers] execution_api_timeout, 5 s), fail and wait
        # for its retry (5 minutes). The lab's api-servers have long been past that: so is this one, before
        # anything is measured.
        with urllib.request.urlopen(f"{self.url}/execution/health", timeout=300) as resp:
            return json.loads(resp.read()).get("status") == "healthy"

    def _ready(self):
        report = airflow_ha.health(url=self.url)["components"]
        if any(report.get(c) != "healthy" for c in ("metadatabase", "scheduler", "dag_processor")):
            return False  # no triggerer here: the bench DAGs defer nothing
        found = {d["dag_id"] for d in airflow_ha.dags(url=self.url, password=self.password)}
        return set(DAG_IDS) <= found

    def _wait(self, check, timeout, what):
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                tails = {n: (self.home / f"{n}.log").read_text()[-1500:] for n in dead}
                raise RuntimeError(f"Airflow components exited: {tails}")
            try:
                if check():
                    return
            except Exception as exc:  # noqa: BLE001 - not up yet
                last = exc
            time.sleep(2)
        raise TimeoutError(f"single-host Airflow: {what} not ready within {timeout} s (last: {last})")

    def stop(self):
        stop_groups(list(self.procs.values()))
        self.procs.clear()
        self._postgres.close()

    def run(self, _host, script, check=True, timeout=120):
        """drill.run's contract, on this machine (the executions log is here, not in a container)."""
        proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode:
            raise RuntimeError(f"{script!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        return proc


@contextlib.contextmanager
def pointed_at(local):
    """drill_throughput's fanout/chain/measure aimed at ``local`` for the block; yields the inventory they take
    (this machine, the one worker). Its module globals are swapped and put back: drill_throughput takes no
    target argument (one there, the API and the executions reader, would make this swap go)."""
    airflow_ha.__pillar__ = getattr(airflow_ha, "__pillar__", {})
    swap = {"airflow_api": lambda _inv: (airflow_ha, {"url": local.url, "ca_file": None,
                                                      "password": local.password}),
            "run": local.run,
            "EXECUTIONS": str(local.executions_log)}
    saved = {name: getattr(drill_throughput, name) for name in swap}
    for name, value in swap.items():
        setattr(drill_throughput, name, value)
    try:
        yield {"hosts": {socket.gethostname(): {"ip": "127.0.0.1", "roles": ["worker"]}}}
    finally:
        for name, value in saved.items():
            setattr(drill_throughput, name, value)
