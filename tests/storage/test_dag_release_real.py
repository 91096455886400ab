"""dag_release for real: the validation in the pinned Airflow venv
(/var/cache/airflow-ha/pin3, tools/install-deps.sh) against good and broken
DAG sets, and the stage + atomic switch on a temp dir with readers running
through the DAG folder link during repeated switches, then a rollback."""

import json
import os
import shutil
import sys
import sysconfig
import threading
from pathlib import Path

import pytest
from salt.exceptions import CommandExecutionError

import _modules.dag_release as dag_release

REPO = Path(__file__).resolve().parents[2]
PIN3 = Path("/var/cache/airflow-ha/pin3")
needs_pin = pytest.mark.skipif(not (PIN3 / "bin" / "python").exists(), reason="no pinned Airflow venv at " + str(PIN3))

CARD_SETTINGS = {"ftp_conn_id": "card_ftp", "target_conn_id": "card_target_ssh", "ftp_inbox": "inbox",
                 "ftp_outbox": "outbox", "ftp_ca_file": "/etc/airflow-ha/pki/ca.crt", "target_base": "/srv/card",
                 "target_script": "/usr/local/bin/card-process-batch", "suffix": ".csv", "schedule_seconds": 60,
                 "queue": "card"}

CYCLE = '''import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("cyclic", start_date=datetime.datetime(2026, 1, 1), schedule=None):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
'''

SMALL = '''import datetime
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG({dag_id!r}, start_date=datetime.datetime(2026, 1, 1), schedule=None):
    EmptyOperator(task_id="t")
'''


@pytest.fixture
def env_file(tmp_path):
    """The Airflow env file as the airflow state writes it, with what the card DAG reads at parse time."""
    path = tmp_path / "airflow.env"
    path.write_text(f"AIRFLOW_VAR_CARD_PROCESSING='{json.dumps(CARD_SETTINGS)}'\n")
    return str(path)


def dag_set(tmp_path, name, extra=None):
    """salt/dags plus ``extra`` files."""
    path = tmp_path / name
    shutil.copytree(REPO / "salt" / "dags", path)
    for rel, text in (extra or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return str(path)


def refusal(path, env_file, venv=PIN3):
    with pytest.raises(CommandExecutionError) as info:
        dag_release.validate(path, venv=str(venv), env_file=env_file)
    return str(info.value)


@pytest.mark.integration
@needs_pin
def test_the_shipped_dag_set_is_valid(tmp_path, env_file):
    report = dag_release.validate(dag_set(tmp_path, "good"), venv=str(PIN3), env_file=env_file)
    assert set(report["dags"]) >= {"airflow_ha_smoke", "card_processing", "airflow_ha_drill"}
    assert report["tests"] == "none shipped"


@pytest.mark.integration
@needs_pin
def test_a_syntax_error_is_refused_naming_file_and_line(tmp_path, env_file):
    message = refusal(dag_set(tmp_path, "syntax", {"broken.py": "import os\n\ndef f(:\n    pass\n"}), env_file)
    assert "broken.py:3: SyntaxError" in message, message


@pytest.mark.integration
@needs_pin
def test_an_import_error_is_refused_naming_file_and_line(tmp_path, env_file):
    text = "import datetime\nfrom airflow.sdk import DAG\nimport no_such_module_anywhere\n"
    message = refusal(dag_set(tmp_path, "import", {"needs_module.py": text}), env_file)
    assert "needs_module.py:3: ModuleNotFoundError: No module named 'no_such_module_anywhere'" in message, message


@pytest.mark.integration
@needs_pin
def test_a_cycle_is_refused(tmp_path, env_file):
    message = refusal(dag_set(tmp_path, "cycle", {"cycle.py": CYCLE}), env_file)
    assert "cycle.py:5: AirflowDagCycleException: Cycle detected" in message, message


@pytest.mark.integration
@needs_pin
def test_a_duplicate_dag_id_is_refused(tmp_path, env_file):
    message = refusal(dag_set(tmp_path, "dup", {"zz_copy.py": SMALL.format(dag_id="airflow_ha_smoke")}), env_file)
    assert "zz_copy.py:5: AirflowDagDuplicatedIdException" in message and "airflow_ha_smoke" in message, message
    twice = SMALL.format(dag_id="x") + 'with DAG("x", start_date=datetime.datetime(2026, 1, 1), schedule=None):\n' \
        '    EmptyOperator(task_id="u")\n'
    message = refusal(dag_set(tmp_path, "dup1", {"twice.py": twice}), env_file)
    assert "twice.py:5: DAG id 'x' defined 2 times in this file" in message, message


@pytest.fixture
def venv_with_pytest(tmp_path):
    """The pinned venv's Python with this checkout's pytest after its own packages (the pin has none)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f"#!/bin/sh\nPYTHONPATH=\"${{PYTHONPATH:+$PYTHONPATH:}}{sysconfig.get_paths()['purelib']}\" "
                      f"exec {PIN3}/bin/python \"$@\"\n")
    python.chmod(0o755)
    return venv


@pytest.mark.integration
@needs_pin
@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the pin's Python is 3.11")
def test_the_sets_own_tests_run_and_a_failing_one_refuses(tmp_path, env_file, venv_with_pytest):
    test = ("import os\n\ndef test_smoke_dag_file_is_there():\n"
            "    assert os.path.exists(os.path.join(os.environ['AIRFLOW__CORE__DAGS_FOLDER'], 'airflow_ha_smoke.py'))\n")
    report = dag_release.validate(dag_set(tmp_path, "tested", {"tests/test_dags.py": test}),
                                  venv=str(venv_with_pytest), env_file=env_file)
    assert "1 passed" in report["tests"]
    failing = test + "\ndef test_fails():\n    assert 1 == 2\n"
    message = refusal(dag_set(tmp_path, "failing", {"tests/test_dags.py": failing}), env_file, venv_with_pytest)
    assert "its tests failed" in message and "test_dags.py::test_fails" in message, message
    message = refusal(dag_set(tmp_path, "nopytest", {"tests/test_dags.py": test}), env_file)
    assert "has no pytest" in message


def release_set(root, name, files):
    path = root / name
    path.mkdir()
    for n in range(files):
        (path / f"dag_{n:03d}.py").write_text(f"# release {name}\n" + f"X = '{name}'\n" * 200)
    return str(path)


def test_readers_never_see_a_mix_during_switches_and_rollback(tmp_path):
    """Two releases of different file sets; readers list and read through the link while it switches 400
    times: every listing is exactly one release's set, every file whole; a reader holding the folder open
    (as a directory fd) reads one release throughout. Then a rollback to the previous release."""
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    a = dag_release.stage(release_set(tmp_path, "A", 40), releases_dir=releases)["version"]
    b = dag_release.stage(release_set(tmp_path, "B", 41), releases_dir=releases)["version"]
    sets = {frozenset(dag_release.release_files(os.path.join(releases, v)) + [".release.json"]): v for v in (a, b)}
    dag_release.switch(a, link=link, releases_dir=releases)
    stop, seen, problems = threading.Event(), {a: 0, b: 0}, []

    def by_path():
        while not stop.is_set():
            names = frozenset(os.listdir(link))
            if names not in sets:
                problems.append(f"listing of {len(names)} files is no release's set")
            for name in sorted(names):
                if name.endswith(".py"):
                    try:
                        text = open(os.path.join(link, name)).read()
                    except FileNotFoundError:  # listed in one release, gone in the next: never half a file
                        continue
                    if len(text.splitlines()) != 201:
                        problems.append(f"{name}: a partial file")

    def by_fd():
        while not stop.is_set():
            fd = os.open(link, os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = frozenset(os.listdir(fd))
                owners = {open(n, opener=lambda p, f: os.open(p, f, dir_fd=fd)).readline()
                          for n in names if n.endswith(".py")}
            finally:
                os.close(fd)
            if names not in sets or len(owners) != 1:
                problems.append(f"one pass saw {sorted(owners)}")
            else:
                seen[sets[names]] += 1

    readers = [threading.Thread(target=f) for f in (by_path, by_path, by_fd)]
    for t in readers:
        t.start()
    try:
        for n in range(400):
            dag_release.switch(b if n % 2 == 0 else a, link=link, releases_dir=releases)
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert problems == [], problems[:5]
    assert seen[a] and seen[b], seen
    assert dag_release.current(link) == a
    # rollback: to the previous release, one rename
    assert dag_release.previous(releases, link) == b
    assert dag_release.switch("previous", link=link, releases_dir=releases)["version"] == b
    assert len([n for n in os.listdir(link) if n.endswith(".py")]) == 41
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


@pytest.mark.integration
@needs_pin
def test_the_dag_drill_sets_validate_as_the_drill_expects(tmp_path, env_file):
    """tools/lab/drill_dags.py's sets: the added DAG is valid, the broken file refused at its line 3."""
    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill_dags

    report = dag_release.validate(dag_set(tmp_path, "added", {f"{drill_dags.ADDED_DAG}.py": drill_dags.ADDED}),
                                  venv=str(PIN3), env_file=env_file)
    assert drill_dags.ADDED_DAG in report["dags"]
    message = refusal(dag_set(tmp_path, "broken", {drill_dags.BROKEN_FILE: drill_dags.BROKEN}), env_file)
    assert f"{drill_dags.BROKEN_FILE}:3: ModuleNotFoundError" in message, message
