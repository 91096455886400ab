"""Real Airflow 3 DAG processors see a DAG release switch (docs/dag-deploy.md).

Two `airflow dag-processor` processes of the pinned venv
(/var/cache/airflow-ha/pin3), as on two Airflow hosts: one real PostgreSQL
database, each processor its own AIRFLOW_HOME and its own DAG folder, a
symlink to release A (as `dag_release.switch` leaves it on each host). Both
links are switched to release B (one DAG file added, one removed) with
`dag_release.switch`; then, within a bound, EACH processor must have parsed
the added file (its own per-file log,
`<AIRFLOW_HOME>/logs/dag_processor/<UTC date>/dags-folder/<file>.log`, the
path the lab drill reads), the added DAG must be active in the `dag` table and
the removed one stale.

Why two processors: Airflow 3.x decides whether a DAG processor re-lists a
bundle from the bundle's ``last_refreshed`` in the shared ``dag_bundle`` table
(airflow/dag_processing/manager.py ``_refresh_dag_bundles``/``should_skip_refresh``):
with ``refresh_interval`` 30 the first processor to check after 30 s re-lists
and stamps the row, the others skip, so one processor can keep the file list
of its start for ever (the lab failure of 2026-12-02). The settings the states
render (``[dag_processor] refresh_interval = 0``, every processor re-lists at
each ``bundle_refresh_check_interval``) must pass; the settings from before
(``AIRFLOW_HA_SWITCH_SETTINGS=before``: refresh_interval 30) show the failure.
"""

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import _modules.dag_release as dag_release
from clusters.processes import as_postgres, scratch_postgres, stop_groups

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VENV = Path("/var/cache/airflow-ha/pin3")
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CHOSEN = os.environ.get("AIRFLOW_HA_SWITCH_SETTINGS", "rendered")
PROCESSORS = ("af1", "af2")
BOUND = float(os.environ.get("AIRFLOW_HA_SWITCH_BOUND", "90"))  # s from the switch

# what salt/airflow/files/airflow.cfg.jinja renders for Airflow 3 (airflow:dag_refresh_interval 30)
SETTINGS = {
    "rendered": {"REFRESH_INTERVAL": "0", "BUNDLE_REFRESH_CHECK_INTERVAL": "30"},
    "before": {"REFRESH_INTERVAL": "30", "BUNDLE_REFRESH_CHECK_INTERVAL": "5"},
}
PG_PORT = 15640 + list(SETTINGS).index(CHOSEN)
DAG = '''from airflow.sdk import DAG

with DAG("{dag_id}", schedule=None):
    pass
'''

if not (VENV / "bin" / "airflow").exists() or not (PG_BIN / "initdb").exists():
    pytest.skip("needs the Airflow 3 venv (make deps) and PostgreSQL 15", allow_module_level=True)


@pytest.fixture
def workdir():
    path = Path(tempfile.mkdtemp(prefix="airflow3-dag-switch-", dir="/var/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def postgres(workdir):
    with scratch_postgres(workdir / "pg", PG_PORT, PG_BIN) as data:
        yield f"postgresql+psycopg2://airflow@127.0.0.1:{PG_PORT}/airflow", data


def psql(pg, sql):
    return as_postgres("psql", "-h", pg[1], "-p", PG_PORT, "-d", "airflow", "-XAtc", sql).stdout.strip()


def dag_rows(pg):
    rows = psql(pg, "SELECT dag_id, is_stale FROM dag")
    return {r.split("|")[0]: r.split("|")[1] == "t" for r in rows.splitlines() if r}


def parse_logs(home, file_name):
    """The per-file logs this processor wrote for ``file_name`` (any date)."""
    return sorted((home / "logs" / "dag_processor").glob(f"*/dags-folder/{file_name}.log"))


def errors_of(log):
    """The error lines of a processor's log (an SQL statement in a message can be very long)."""
    text = log.read_text()
    rows = [r[:600] for r in text.splitlines() if "Error" in r or "Traceback" in r]
    return "\n".join(rows[-15:]) or text[-1500:]


def make_release(releases, files):
    tmp = releases / ".incoming"
    tmp.mkdir()
    for name, dag_id in files.items():
        (tmp / name).write_text(DAG.format(dag_id=dag_id))
    version = dag_release.content_hash(str(tmp))
    os.rename(tmp, releases / version)
    return version


def test_the_rendered_settings_are_the_ones_tested(tmp_path):
    from tests.airflow.test_airflow_config_real import _settings

    import jinja2

    template = (Path(__file__).parents[2] / "salt/airflow/files/airflow.cfg.jinja").read_text()
    cfg = jinja2.Template(template).render(airflow=_settings(tmp_path, 3))
    section = cfg.split("[dag_processor]", 1)[1].split("\n[", 1)[0]
    rendered = {k.strip().upper(): v.strip() for k, v in
                (line.split("=", 1) for line in section.splitlines() if "=" in line and not line.startswith("#"))}
    assert rendered == SETTINGS["rendered"]


@pytest.mark.lab_covered  # the lab's dags drill: each DAG processor host's own parse log of the added file
def test_each_dag_processor_sees_a_release_switch(workdir, postgres):
    settings = SETTINGS[CHOSEN]
    releases = workdir / "dag-releases"
    releases.mkdir()
    a = make_release(releases, {"switch_kept.py": "switch_kept", "switch_removed.py": "switch_removed"})
    b = make_release(releases, {"switch_kept.py": "switch_kept", "switch_added.py": "switch_added"})
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    homes, envs = {}, {}
    for host in PROCESSORS:
        home = homes[host] = workdir / host
        (home / "logs").mkdir(parents=True)
        link = str(home / "dags")
        dag_release.switch(a, link=link, releases_dir=str(releases))
        envs[host] = dict(base, AIRFLOW_HOME=str(home), AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=postgres[0],
                          AIRFLOW__CORE__DAGS_FOLDER=link, AIRFLOW__CORE__LOAD_EXAMPLES="False",
                          AIRFLOW__CORE__EXECUTOR="LocalExecutor", AIRFLOW__API_AUTH__JWT_SECRET="test-only",
                          AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="30",
                          AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
                          **{f"AIRFLOW__DAG_PROCESSOR__{k}": v for k, v in settings.items()})
    airflow = [str(VENV / "bin" / "airflow")]
    subprocess.run(["nice", "-n", "19", *airflow, "db", "migrate"], env=envs["af1"], check=True,
                   capture_output=True, timeout=900)
    procs = {}
    try:
        def start(host):
            with open(homes[host] / "dag-processor.log", "w") as log:
                procs[host] = subprocess.Popen(["nice", "-n", "19", *airflow, "dag-processor"], env=envs[host],
                                               cwd=homes[host], stdout=log, stderr=subprocess.STDOUT,
                                               start_new_session=True)

        def wait(check, timeout, what):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                dead = [h for h, p in procs.items() if p.poll() is not None]
                assert not dead, {h: errors_of(homes[h] / "dag-processor.log") for h in dead}
                if check():
                    return time.monotonic()
                time.sleep(1)
            tails = {h: (homes[h] / "dag-processor.log").read_text()[-1500:] for h in PROCESSORS}
            raise AssertionError(f"not within {timeout:.0f} s: {what}; DB dag rows {dag_rows(postgres)}; "
                                 f"processor logs {tails}")

        # release A parsed by both processors, started one after the other as on two hosts (two processors
        # writing the same brand-new DAG at once collide on dag_pkey and one exits: apache/airflow#66786)
        for host in PROCESSORS:
            start(host)
            wait(lambda: all(parse_logs(homes[host], f) for f in ("switch_kept.py", "switch_removed.py"))
                 and dag_rows(postgres) == {"switch_kept": False, "switch_removed": False},
                 600, f"release A parsed by the DAG processor of {host}")
        # a while on A (the processors' refresh timers run as on a lab in service), then the switch
        time.sleep(40)
        switched = time.monotonic()
        for host in PROCESSORS:
            assert dag_release.switch(b, link=str(homes[host] / "dags"), releases_dir=str(releases))["changed"]
        seen = {}

        def settled():
            for host in PROCESSORS:
                if host not in seen and parse_logs(homes[host], "switch_added.py"):
                    seen[host] = round(time.monotonic() - switched, 1)
            rows = dag_rows(postgres)
            if rows.get("switch_added") is False and "db_added" not in seen:
                seen["db_added"] = round(time.monotonic() - switched, 1)
            if rows.get("switch_removed") is True and "db_removed_stale" not in seen:
                seen["db_removed_stale"] = round(time.monotonic() - switched, 1)
            return all(k in seen for k in (*PROCESSORS, "db_added", "db_removed_stale")) and rows == {
                "switch_kept": False, "switch_added": False, "switch_removed": True}

        try:
            wait(settled, BOUND, "release B seen by every DAG processor (FIGURE line: which did)")
        finally:
            print(f"\nFIGURE dag release switch, settings {settings}: seconds from the switch {seen}")
        # the removed file: no processor parses it after the switch (no log written later than the switch + 5 s)
        time.sleep(35)
        late = [str(p) for h in PROCESSORS for p in parse_logs(homes[h], "switch_removed.py")
                if p.stat().st_mtime > time.time() - (time.monotonic() - switched) + 5]
        assert not late, f"a removed DAG file is still parsed after the switch: {late}"
        assert dag_rows(postgres) == {"switch_kept": False, "switch_added": False, "switch_removed": True}
    finally:
        stop_groups(procs.values())
