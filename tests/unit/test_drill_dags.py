"""The pure parts of the DAG deployment drill (tools/lab/drill_dags.py): reading an orchestrate's JSON
return (failed states, minion states that changed something), the release hosts, and the DAG sets it writes
into the master's file root (salt://dags-drill/NAME)."""

import sys

import pytest

from tests.helpers.inventory import REPO, load_inventory

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_dags  # noqa: E402

STEP = "salt_|-orch-dags-switched_|-orch-dags-switched_|-state"


def orchestrate_return(minion_changes, result=True):
    ret = {"af1": {"dag_release_|-storage-dag-release-switched_|-/srv/airflow/dags_|-switched": {
        "result": result, "changes": minion_changes, "comment": "c"}}}
    step = {"result": result, "comment": "", "changes": {"out": "highstate", "ret": ret} if minion_changes else {}}
    return {"data": {"db1_master": {STEP: step}}, "retcode": 0 if result else 1}


def test_changed_and_failed_states_of_an_orchestrate_return():
    changed = orchestrate_return({"release": {"old": "a" * 16, "new": "b" * 16}})
    assert drill_dags.changed_states(changed) == ["af1 dag_release_|-storage-dag-release-switched_|-/srv/airflow/dags_|-switched"]
    assert drill_dags.changed_states(orchestrate_return({})) == []
    failed = orchestrate_return({}, result=False)
    assert drill_dags.failed_states(failed) == [f"{STEP}: "]


def test_release_hosts_by_distribution():
    compact = load_inventory("compact")
    assert drill_dags.release_hosts(compact) == ["af1", "af2"]
    full = load_inventory("full")
    assert drill_dags.release_hosts(full) == [h for h, spec in full["hosts"].items() if "nfs" in spec["roles"]]


def test_the_drill_sets_are_written_under_the_lab_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(drill_dags, "DRILL_DIR", REPO / "salt" / "dags-drill-test")
    try:
        url = drill_dags.dag_set("good", {f"{drill_dags.ADDED_DAG}.py": drill_dags.ADDED})
        assert url == "salt://dags-drill-test/good"
        local = REPO / "salt" / "dags-drill-test" / "good"
        assert (local / "airflow_ha_smoke.py").exists() and (local / f"{drill_dags.ADDED_DAG}.py").exists()
    finally:
        import shutil
        shutil.rmtree(REPO / "salt" / "dags-drill-test", ignore_errors=True)
