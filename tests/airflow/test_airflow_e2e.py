"""Airflow end to end on this machine, for each supported line: Airflow 3 and
the 2.x line (pillar airflow:major / version / requirements).

The states of one Airflow host (af1 of the compact topology) are compiled with
a pillar `airflow` that moves directories, ports and the venv onto this
machine and selects the line; their files (airflow.cfg, the env file, the
Celery settings, the admin password file, webserver_config.py and the admin
script of the FAB auth manager) are written as the states would, with only the addresses
the inventory decides (DB VIP, RabbitMQ hosts, API URL, statsd) moved onto
loopback. The venv is the one built from the pinned requirements of the line;
a real PostgreSQL and a real RabbitMQ node (vhost and user made by the
rabbitmq_ha states) back it. The commands of the migrate states run as Salt
runs them (`unless` first): `airflow db migrate`, and the admin user of the
FAB auth manager (the break-glass admin, which logs in without the
directory). Then every component runs with the arguments of its
systemd unit (api-server or webserver, scheduler, DAG processor, triggerer,
Celery worker); the shipped smoke DAG is triggered through the REST API of the
line (/api/v2 with a JWT, /api/v1 with basic auth) and must succeed on the
worker. Prints the migration time, the scheduling latency and the task rate
of one worker for each line."""

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import _modules.airflow_ha as airflow_ha
from tests.helpers.inventory import REPO, pinned_airflow
from clusters.processes import as_postgres, scratch_dir, stop_groups
from clusters.rabbitmq import RabbitCluster
from clusters import state_render

PG_BIN = Path("/usr/lib/postgresql/15/bin")
# SLS of each component -> the name of its unit (airflow-<name>-unit)
COMPONENTS = {"webserver": "webserver", "scheduler": "scheduler", "dag_processor": "dag-processor",
              "triggerer": "triggerer", "worker": "worker"}
HOST, TOPOLOGY = "af1", "compact"


@dataclass(frozen=True)
class Line:
    major: int
    pg_port: int
    rabbit_base: int
    api_port: int
    log_server_port: int
    scheduler_health_port: int

    @property
    def requirements(self):
        return f"airflow-{self.major}.txt"

    @property
    def version(self):
        return pinned_airflow(self.major)

    @property
    def venv(self):
        # AIRFLOW_HA_PIN<major> names another venv (a copy with new pins, before make deps rebuilds)
        return Path(os.environ.get(f"AIRFLOW_HA_PIN{self.major}", f"/var/cache/airflow-ha/pin{self.major}"))

    @property
    def url(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def api_prefix(self):
        return "/api/v2" if self.major >= 3 else "/api/v1"


# own ports per line: both can run in one session
LINES = {
    3: Line(3, pg_port=15600, rabbit_base=42000, api_port=18080, log_server_port=18793, scheduler_health_port=18974),
    2: Line(2, pg_port=15610, rabbit_base=42100, api_port=18090, log_server_port=18794, scheduler_health_port=18975),
}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


# Airflow 3's components run from the same states on the lab (tests/lab: the bring-up's smoke DAG and every drill):
# its loopback run here is lab_covered; the 2.x line runs nowhere else
@pytest.fixture(scope="module", params=[
    pytest.param(line, id=f"airflow{major}",
                 marks=[pytest.mark.skipif(not (line.venv / "bin" / "airflow").exists(),
                                           reason="make deps builds the Airflow venvs")]
                 + ([pytest.mark.lab_covered] if major >= 3 else []))
    for major, line in LINES.items()])
def line(request):
    return request.param


@pytest.fixture(scope="module")
def workdir(line):
    with scratch_dir(f"airflow{line.major}-ha-e2e-") as path:
        yield path


@pytest.fixture(scope="module")
def render_secrets(salt_env):
    """The secrets pillar the rendered files were made from."""
    with open(os.path.join(salt_env[0], "airflow_ha_secrets.sls")) as f:
        return yaml.safe_load(f)["secrets"]


@pytest.fixture(scope="module")
def postgres(line, workdir, render_secrets):
    data = workdir / "pg"
    data.mkdir()
    shutil.chown(data, "postgres", "postgres")
    as_postgres(PG_BIN / "initdb", "-D", data, "--auth-host=scram-sha-256", "-U", "postgres",
                "--auth-local=peer")
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-w", "-l", data / "log", "-o",
                f"-p {line.pg_port} -k {data} -c listen_addresses=127.0.0.1", "start")
    sql = ("CREATE ROLE airflow LOGIN PASSWORD '{}'; CREATE DATABASE airflow OWNER airflow;"
           .format(render_secrets["postgres"]["airflow_password"].replace("'", "''")))
    for statement in sql.split("; "):
        as_postgres("psql", "-h", data, "-p", line.pg_port, "-d", "postgres", "-Xqc", statement)
    yield
    as_postgres(PG_BIN / "pg_ctl", "-D", data, "-m", "fast", "stop")


@pytest.fixture(scope="module")
def broker(line, workdir, state_file_context, render_secrets, minion_opts):
    from saltfactories.utils.functional import Loaders

    ctx = state_file_context("db1", "compact", "rabbitmq", "rabbitmq-config")
    cluster = RabbitCluster(ctx, render_secrets["rabbitmq"]["erlang_cookie"], workdir / "rabbit",
                            base_port=line.rabbit_base)
    cluster.started_at = time.monotonic()
    cluster.start(peer_discovery=False, count=1)
    try:
        loaders = Loaders(minion_opts)
        node = cluster.nodes[0]
        assert loaders.modules.rabbitmq_ha.await_startup(timeout=120, node=node)
        st = loaders.states.rabbitmq_ha
        assert st.vhost_present(name="airflow", default_queue_type="quorum", node=node).result is True
        ret = st.user_present(name="airflow", password=render_secrets["rabbitmq"]["airflow_password"],
                              permissions={"airflow": [".*", ".*", ".*"]}, node=node)
        assert ret.result is True, ret.comment
        yield cluster
    finally:
        cluster.stop()


# ------------------------------------------------ the states of one host
@pytest.fixture(scope="module")
def host_states(line, workdir, salt_env, tmp_path_factory):
    home, dags = workdir / "home", workdir / "dags"
    pillar_root = tmp_path_factory.mktemp(f"airflow{line.major}-pillar")
    # site.sls is the place of the pillar `airflow` of a site
    (pillar_root / "site.sls").write_text(yaml.safe_dump({"airflow": {
        "major": line.major, "version": line.version, "requirements": line.requirements,
        "home": str(home), "venv": str(line.venv), "venv_dir": str(line.venv), "env_file": str(home / "airflow.env"),
        "dags_folder": str(dags), "db_port": line.pg_port, "api_port": line.api_port,
        "log_server_port": line.log_server_port, "scheduler_health_port": line.scheduler_health_port,
        "worker_concurrency": 4,
    }}))
    # what map.jinja takes from the inventory, moved onto loopback
    overrides = {**state_render.loopback_db(line.pg_port), "rabbit_hosts": [f"127.0.0.1:{line.rabbit_base}"],
                 "api_url": line.url, "statsd_host": "127.0.0.1"}
    sls = ["airflow.migrate", *(f"airflow.{c}" for c in COMPONENTS)]
    return state_render.host_states(HOST, TOPOLOGY, sls, pillar_root, {"airflow": overrides}, salt_env)


def write_files(states, ids):
    for state_id in ids:
        args, text = states[state_id]["args"], states[state_id]["text"]
        assert states[state_id]["fun"] == "file.managed" and text is not None, state_id
        path = Path(args["name"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(int(str(args.get("mode", "0644")), 8))


def run_cmd_state(states, state_id, env):
    """A cmd.run state as Salt runs it (bash, `unless` first); returns
    (ran, seconds). The secrets come from the env file the command sources."""
    args = states[state_id]["args"]
    assert states[state_id]["fun"] == "cmd.run" and args["shell"] == "/bin/bash", state_id

    def bash(command):
        return subprocess.run(["/bin/bash", "-c", command], env=env, capture_output=True, text=True, timeout=600)

    if args.get("unless") and bash(args["unless"]).returncode == 0:
        return False, 0.0
    started = time.monotonic()
    proc = bash(args["name"])
    assert proc.returncode == 0, f"{state_id}: {proc.stdout[-1500:]} {proc.stderr[-1500:]}"
    return True, time.monotonic() - started


@pytest.fixture(scope="module")
def airflow(line, workdir, host_states, postgres, broker):
    states = host_states
    home, dags = workdir / "home", workdir / "dags"
    dags.mkdir()
    for dag in (REPO / "salt" / "dags").glob("*.py"):
        shutil.copy(dag, dags)
    (home / "logs").mkdir(parents=True)
    files = ["airflow-cfg", "airflow-celery-config", "airflow-env", "airflow-admin-password",
             "airflow-webserver-config", "airflow-admin-script"]  # FAB on both lines
    write_files(states, files)
    # the directory's search account (contents_pillar, both lines): no directory
    # here, the break-glass admin below never asks it
    bind = Path(states["airflow-ldap-bind-password"]["args"]["name"])
    bind.write_text("unused")
    bind.chmod(0o600)
    env_file = Path(states["airflow-env"]["args"]["name"])
    # base environment of the commands; the env file adds the rest (as systemd's EnvironmentFile)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env = dict(base_env, **airflow_ha._read_env_file(env_file))
    assert env["AIRFLOW_HOME"] == str(home)

    ran, seconds = run_cmd_state(states, "airflow-db-migrated", base_env)
    assert ran
    print(f"\nFIGURE airflow {line.version} db migrate (empty DB): {seconds:.1f} s")
    assert run_cmd_state(states, "airflow-db-migrated", base_env) == (False, 0.0)  # idempotent
    # the admin user of the FAB auth manager (the break-glass admin of both lines)
    assert run_cmd_state(states, "airflow-admin-user", base_env)[0]
    assert run_cmd_state(states, "airflow-admin-user", base_env) == (False, 0.0)

    procs = {}
    try:
        for name in COMPONENTS.values():
            args = shlex.split(states[f"airflow-{name}-unit"]["args"]["context"]["args"])
            with open(home / f"{name}.log", "w") as log:
                procs[name] = subprocess.Popen([line.venv / "bin" / "airflow", *args], env=env, cwd=home,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        yield home, env_file, procs
    finally:
        stop_groups(procs.values())


def wait_for(check, timeout, what, procs, home):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead:
            tails = {n: (home / f"{n}.log").read_text()[-1500:] for n in dead}
            raise AssertionError(f"Airflow components exited: {tails}")
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(2)
    raise AssertionError(f"timed out waiting for {what}: {last}")


def test_rendered_for_the_line(line, host_states):
    cfg = host_states["airflow-cfg"]["text"]
    unit_args = host_states["airflow-webserver-unit"]["args"]["context"]["args"]
    if line.major >= 3:
        assert unit_args == f"api-server --port {line.api_port} --proxy-headers"
        assert "execution_api_server_url" in cfg and "[webserver]" not in cfg
        assert "auth_manager = airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager" in cfg
    else:
        assert unit_args == f"webserver --port {line.api_port}"
        assert "standalone_dag_processor = True" in cfg and "execution_api" not in cfg
        assert "AIRFLOW__WEBSERVER__SECRET_KEY=" in host_states["airflow-env"]["text"]
    # FAB on both lines: the admin user made from the 0600 password file, never on the command line
    admin = host_states["airflow-admin-user"]["args"]
    password = json.loads(host_states["airflow-admin-password"]["text"])["admin"]
    assert password not in admin["name"] and password not in admin["unless"]
    assert host_states["airflow-admin-password"]["args"]["mode"] == "0600"
    assert host_states["airflow-dag-processor-unit"]["args"]["context"]["args"] == "dag-processor"


def test_components_report_healthy_and_the_smoke_dag_runs_on_a_celery_worker(line, airflow, loaders,
                                                                             render_secrets):
    home, env_file, procs = airflow
    url, major = line.url, line.major
    mod = loaders.modules.airflow_ha

    def healthy():
        report = mod.health(url=url, major=major)
        # the DAG processor and triggerer report too
        return report if report["healthy"] and {"scheduler", "dag_processor", "triggerer"} <= set(
            report["components"]) else None

    report = wait_for(healthy, 300, "all components healthy", procs, home)
    assert set(report["components"].values()) == {"healthy"}

    password = render_secrets["airflow"]["admin_password"]
    token = mod.api_token(url=url, password=password, major=major)
    # Airflow 2 answers a failed basic auth with 403 (the anonymous Public role of its FAB auth manager)
    with pytest.raises(Exception, match="HTTP 401" if major >= 3 else "HTTP 403"):
        mod.api_token(url=url, password=password + "x", major=major)
    auth = f"Bearer {token}" if major >= 3 else f"Basic {token}"

    def get(path):
        req = urllib.request.Request(f"{url}{line.api_prefix}{path}", headers={"Authorization": auth})
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    wait_for(lambda: get("/dags/airflow_ha_smoke"), 180, "the smoke DAG to be parsed", procs, home)
    errors = get("/importErrors")
    assert errors["total_entries"] == 0, errors  # card_processing.py imports too

    venv = str(line.venv)
    assert mod.version(venv=venv) == line.version
    assert mod.db_check(venv=venv, env_file=str(env_file)) is True
    for component in ("scheduler", "triggerer", "dag_processor"):
        assert mod.jobs_check(component, venv=venv, env_file=str(env_file)) is True, component
    assert mod.jobs_check("scheduler", hostname="no-such-host", venv=venv, env_file=str(env_file)) is False

    run_id = mod.trigger_dag("airflow_ha_smoke", url=url, password=password, major=major)
    run = mod.wait_dag_run("airflow_ha_smoke", run_id, timeout=240, url=url, password=password, major=major)
    task = run["tasks"]["report_host"]
    assert task["state"] == "success" and task["hostname"]

    # throughput: N runs back to back on one worker (concurrency 4)
    n, started = 20, time.monotonic()
    run_ids = [mod.trigger_dag("airflow_ha_smoke", url=url, password=password, major=major) for _ in range(n)]
    runs = [mod.wait_dag_run("airflow_ha_smoke", r, timeout=600, url=url, password=password, major=major)
            for r in run_ids]
    elapsed = time.monotonic() - started
    latencies = sorted(_seconds(r["tasks"]["report_host"]["start_date"]) - _seconds(r["queued_at"]) for r in runs)
    print(f"\nFIGURE airflow {line.version} scheduling latency (run queued -> task start): "
          f"median {latencies[n // 2]:.1f} s, max {latencies[-1]:.1f} s over {n} runs; "
          f"{n / elapsed * 60:.1f} tasks/min on one worker (concurrency 4, 2 cores shared with every component)")


def _seconds(iso):
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
