"""The dag_release execution module with stubbed __salt__ (the Salt fileserver,
the REST API): versions, staging, the atomic switch, history, rollback
targets, pruning, and the wait for the DAG processors. Files in tmp dirs."""

import os
from unittest.mock import MagicMock

import pytest
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha
import _modules.dag_release as dag_release

GOOD = {"a.py": "print('a')\n", "sub/b.py": "B = 1\n", "README.md": "doc\n", "tests/test_a.py": "def test(): pass\n"}


@pytest.fixture
def configure_loader_modules():
    return {dag_release: {"__salt__": {}}, airflow_ha: {"__salt__": {}, "__pillar__": {}}}


def write_set(path, files):
    for rel, text in files.items():
        target = path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return str(path)


def test_version_is_the_content_of_what_is_deployed(tmp_path):
    one = write_set(tmp_path / "one", GOOD)
    two = write_set(tmp_path / "two", dict(GOOD, **{"README.md": "other doc\n", "tests/test_a.py": "x = 2\n"}))
    (tmp_path / "two" / "__pycache__").mkdir()
    (tmp_path / "two" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert dag_release.release_files(one) == ["a.py", "sub/b.py"]
    assert dag_release.content_hash(one) == dag_release.content_hash(two)
    three = write_set(tmp_path / "three", dict(GOOD, **{"a.py": "print('A')\n"}))
    assert dag_release.content_hash(three) != dag_release.content_hash(one)
    assert dag_release.VERSION_RE.match(dag_release.content_hash(one))


def test_fetch_from_the_salt_fileserver_takes_only_what_is_there(tmp_path):
    cache = tmp_path / "cache"
    write_set(cache, {"dags/a.py": "A\n", "dags/sub/b.py": "B\n"})
    listing = ["dags/a.py", "dags/sub/b.py", "dagsother/x.py"]
    dag_release.__salt__.update({
        "cp.list_master": MagicMock(return_value=listing),
        "cp.cache_file": MagicMock(side_effect=lambda url, saltenv: str(cache / url[len("salt://"):]))})
    dest = tmp_path / "incoming"
    dag_release.fetch("salt://dags", str(dest))
    assert sorted(dag_release.release_files(str(dest))) == ["a.py", "sub/b.py"]
    dag_release.__salt__["cp.list_master"].assert_called_once_with(saltenv="base", prefix="dags/")


def test_fetch_refuses_an_unpinned_git_rev_and_a_relative_source(tmp_path):
    with pytest.raises(CommandExecutionError, match="full commit id"):
        dag_release.fetch("https://git.example.com/dags.git", str(tmp_path / "g"), git_rev="main")
    with pytest.raises(CommandExecutionError, match="use salt://PATH"):
        dag_release.fetch("dags", str(tmp_path / "r"))


def test_stage_twice_is_one_release_and_no_change(tmp_path):
    src = write_set(tmp_path / "src", GOOD)
    releases = str(tmp_path / "releases")
    first = dag_release.stage(src, releases_dir=releases)
    second = dag_release.stage(src, releases_dir=releases)
    assert first["changed"] and not second["changed"] and first["version"] == second["version"]
    assert sorted(os.listdir(releases)) == [".staged", first["version"]]  # no scratch left behind
    assert dag_release.release_files(first["path"]) == ["a.py", "sub/b.py"]  # tests/ and README.md not deployed
    assert dag_release.staged(releases) == first["version"]
    assert oct(os.stat(os.path.join(first["path"], "a.py")).st_mode & 0o777) == "0o644"


def test_switch_history_previous_and_rollback(tmp_path):
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    v1 = dag_release.stage(write_set(tmp_path / "s1", GOOD), releases_dir=releases)["version"]
    v2 = dag_release.stage(write_set(tmp_path / "s2", dict(GOOD, **{"c.py": "C\n"})), releases_dir=releases)["version"]
    assert dag_release.switch(v1, link=link, releases_dir=releases) == {"version": v1, "previous": None,
                                                                         "changed": True}
    assert dag_release.switch("staged", link=link, releases_dir=releases)["version"] == v2
    assert dag_release.switch(v2, link=link, releases_dir=releases)["changed"] is False
    assert dag_release.current(link) == v2 and sorted(os.listdir(link)) == [".release.json", "a.py", "c.py", "sub"]
    assert dag_release.previous(releases, link) == v1
    assert dag_release.switch("previous", link=link, releases_dir=releases)["version"] == v1
    assert dag_release.current(link) == v1 and dag_release.previous(releases, link) == v2
    assert not [n for n in os.listdir(tmp_path) if ".tmp-" in n]


def test_resolve_refuses_a_release_that_is_not_here(tmp_path):
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    with pytest.raises(CommandExecutionError, match="no previous DAG release"):
        dag_release.resolve("previous", releases, link)
    with pytest.raises(CommandExecutionError, match="not staged on this host"):
        dag_release.resolve("0123456789abcdef", releases, link)
    with pytest.raises(CommandExecutionError, match="not a release version"):
        dag_release.resolve("../etc", releases, link)


def test_switch_moves_a_plain_dag_folder_aside(tmp_path):
    releases, link = str(tmp_path / "releases"), tmp_path / "dags"
    write_set(link, {"old.py": "O\n"})
    v1 = dag_release.stage(write_set(tmp_path / "s1", GOOD), releases_dir=releases)["version"]
    dag_release.switch(v1, link=str(link), releases_dir=releases)
    assert link.is_symlink() and (tmp_path / "dags.pre-release" / "old.py").exists()


def test_switch_inside_the_releases_parent_is_relative(tmp_path):
    """The NFS export: `current` -> releases/<version>, resolved under each client's mount."""
    export = tmp_path / "export"
    releases, link = str(export / "releases"), str(export / "current")
    v1 = dag_release.stage(write_set(tmp_path / "s1", GOOD), releases_dir=releases)["version"]
    dag_release.switch(v1, link=link, releases_dir=releases)
    assert os.readlink(link) == f"releases/{v1}"
    client = tmp_path / "mount"
    os.symlink(export, client)
    folder = tmp_path / "dags"
    os.symlink(client / "current", folder)
    assert dag_release.current(str(folder)) == v1


def test_prune_keeps_the_newest_and_never_the_current_or_previous(tmp_path):
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    versions = []
    for n in range(5):
        v = dag_release.stage(write_set(tmp_path / f"s{n}", dict(GOOD, **{"n.py": f"N = {n}\n"})),
                              releases_dir=releases)["version"]
        os.utime(os.path.join(releases, v), (1000 + n, 1000 + n))
        versions.append(v)
    dag_release.switch(versions[0], link=link, releases_dir=releases)
    dag_release.switch(versions[1], link=link, releases_dir=releases)
    removed = dag_release.prune(keep=2, releases_dir=releases, link=link)
    left = {r["version"] for r in dag_release.list_(releases, link)}
    assert versions[1] in left and versions[0] in left and versions[4] in left  # current, previous, staged
    assert set(removed) == set(versions) - left and removed
    with pytest.raises(CommandExecutionError, match="at least 2"):
        dag_release.prune(keep=1, releases_dir=releases, link=link)


def test_validate_needs_the_venv(tmp_path):
    with pytest.raises(CommandExecutionError, match="no Airflow venv"):
        dag_release.validate(str(tmp_path), venv=str(tmp_path / "novenv"))


DAG = {"dag_id": "smoke", "is_stale": False, "last_parsed_time": "2026-12-01T10:00:10+00:00"}
SINCE = 1_796_119_205.0  # 2026-12-01T10:00:05Z


def test_parse_report():
    assert dag_release._parse_report([DAG], [], {"smoke"}, SINCE) == []
    assert dag_release._parse_report([], [], {"smoke"}, SINCE) == ["smoke not parsed yet"]
    old = dict(DAG, last_parsed_time="2026-12-01T10:00:00Z")
    assert dag_release._parse_report([old], [], {"smoke"}, SINCE) == ["smoke last parsed before the switch"]
    assert dag_release._parse_report([DAG, {"dag_id": "gone", "is_stale": False}], [], {"smoke"}, SINCE,
                                    gone={"gone"}) == ["gone still active (its file is gone)"]
    err = {"filename": "/srv/airflow/dags/bad.py", "stack_trace": "Traceback\nImportError: nope"}
    assert dag_release._parse_report([DAG], [err], {"smoke"}, SINCE) == [
        "import error in /srv/airflow/dags/bad.py: ImportError: nope"]


def staged_and_switched(tmp_path, dags):
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    out = dag_release.stage(write_set(tmp_path / "s1", GOOD), releases_dir=releases,
                            validation={"dags": {d: "a.py" for d in dags}})
    dag_release.switch(out["version"], link=link, releases_dir=releases)
    return out["version"], releases, link


def test_wait_parsed_returns_once_every_dag_is_parsed_after_the_switch(tmp_path):
    version, releases, link = staged_and_switched(tmp_path, ["smoke"])
    answers = iter([[], [dict(DAG, last_parsed_time="2999-01-01T00:00:00Z")]])
    dag_release.__salt__.update({"airflow_ha.dags": MagicMock(side_effect=lambda **kw: next(answers)),
                                 "airflow_ha.import_errors": MagicMock(return_value=[])})
    out = dag_release.wait_parsed(version, url="http://x", releases_dir=releases, link=link, timeout=10, interval=0)
    assert out["version"] == version and out["dags"] == ["smoke"]
    assert dag_release.__salt__["airflow_ha.dags"].call_count == 2


def test_wait_parsed_fails_naming_the_import_error(tmp_path):
    version, releases, link = staged_and_switched(tmp_path, ["smoke"])
    err = {"filename": "/srv/airflow/dags/bad.py", "stack_trace": "SyntaxError: invalid syntax"}
    dag_release.__salt__.update({
        "airflow_ha.dags": MagicMock(return_value=[dict(DAG, last_parsed_time="2999-01-01T00:00:00Z")]),
        "airflow_ha.import_errors": MagicMock(return_value=[err])})
    with pytest.raises(CommandExecutionError, match=r"not parsed within 0 s: import error in .*bad.py"):
        dag_release.wait_parsed(version, url="http://x", releases_dir=releases, link=link, timeout=0, interval=0)


def test_wait_parsed_refuses_a_release_without_a_validation_record(tmp_path):
    releases, link = str(tmp_path / "releases"), str(tmp_path / "dags")
    version = dag_release.stage(write_set(tmp_path / "s1", GOOD), releases_dir=releases)["version"]
    dag_release.switch(version, link=link, releases_dir=releases)
    with pytest.raises(CommandExecutionError, match="no record of its DAG ids"):
        dag_release.wait_parsed(version, url="http://x", releases_dir=releases, link=link, timeout=0)


def test_api_dags_and_import_errors_page_through_the_api(monkeypatch):
    calls = []

    def api(method, url, path, auth=None, body=None, timeout=None, ca_file=None):
        calls.append(path)
        if path.startswith("/api/v2/dags"):
            rows = [{"dag_id": "smoke", "is_stale": False, "last_parsed_time": "t", "extra": 1}]
            return {"dags": rows if "offset=0" in path else [], "total_entries": 1}
        return {"import_errors": [{"filename": "f.py", "stack_trace": "E", "import_error_id": 3}],
                "total_entries": 1}

    monkeypatch.setattr(airflow_ha, "_api", api)
    monkeypatch.setattr(airflow_ha, "api_token", lambda *a, **k: "jwt")
    assert airflow_ha.dags(password="p")[0]["dag_id"] == "smoke"
    assert "exclude_stale=false" in calls[0]
    assert airflow_ha.import_errors(password="p") == [
        {"filename": "f.py", "bundle_name": None, "timestamp": None, "stack_trace": "E"}]
