"""The orchestrates' steps as Salt runs them on one host: storage.dag_release
applied for real (masterless, host af1 of the compact topology, faked grains)
with its pillar `dag_release:step`, the releases and the DAG folder in a temp
dir, the set fetched from this checkout's Salt fileserver (salt://dags), the
validation in the pinned Airflow venv. validate -> stage -> switch; the same
again reports zero changes; a broken set fails at validate; rollback checks
and switches back."""

import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from tests.helpers.state_render import salt_env  # noqa: F401  (fixture)

from clusters.templates import REPO

import render as render_tool

PIN3 = Path("/var/cache/airflow-ha/pin3")
# lab_covered: the lab's dags drill (orch.deploy_dags and orch.rollback_dags: refused set, deploy, again, rollback)
pytestmark = [pytest.mark.integration, pytest.mark.lab_covered,
              pytest.mark.skipif(not (PIN3 / "bin" / "python").exists(), reason=f"no pinned Airflow venv at {PIN3}")]
CARD = {"ftp_conn_id": "card_ftp", "target_conn_id": "card_target_ssh", "ftp_inbox": "inbox", "ftp_outbox": "outbox",
        "ftp_ca_file": "/etc/airflow-ha/pki/ca.crt", "target_base": "/srv/card", "target_script": "/bin/true",
        "suffix": ".csv", "schedule_seconds": 60, "queue": "card"}


def apply_in_fresh_process(pillar, secrets_dir, cache_root):
    import salt.client

    opts = render_tool.minion_opts("af1", "compact", "debian12", secrets_dir, cache_root)
    return salt.client.Caller(mopts=opts).cmd("state.sls", "storage.dag_release", pillar=pillar)


@pytest.fixture
def apply(salt_env, tmp_path):  # noqa: F811
    env_file = tmp_path / "airflow.env"
    env_file.write_text(f"AIRFLOW_VAR_CARD_PROCESSING='{json.dumps(CARD)}'\n")
    base = {"storage": {"dags": {"folder": str(tmp_path / "dags")}, "releases": {"dir": str(tmp_path / "releases")}},
            "airflow": {"venv": str(PIN3), "env_file": str(env_file), "user": "root"}}
    ctx = multiprocessing.get_context("spawn")

    def run(step, **extra):
        pillar = dict(base, dag_release=dict({"step": step}, **extra))
        with ctx.Pool(1) as pool:
            ret = pool.apply(apply_in_fresh_process, (pillar, *salt_env))
        assert isinstance(ret, dict), ret
        return list(ret.values())[0]

    return run


def test_deploy_steps_then_the_same_set_again_changes_nothing_and_rollback(apply, tmp_path):
    link, releases = tmp_path / "dags", tmp_path / "releases"
    validated = apply("validate")
    assert validated["result"] is True and validated["changes"] == {}, validated["comment"]
    assert "card_processing" in validated["comment"] or "DAGs in" in validated["comment"]
    staged = apply("stage")
    assert staged["result"] is True and list(staged["changes"]) == ["staged"], staged
    version = staged["changes"]["staged"]
    switched = apply("switch", release="staged")
    assert switched["result"] is True and switched["changes"]["release"] == {"old": None, "new": version}
    assert link.is_symlink() and (link / "airflow_ha_smoke.py").exists() and not (link / "README.md").exists()
    assert json.loads((releases / version / ".release.json").read_text())["dags"]  # the validation's DAG ids

    # the same set again: zero changes at every step
    for step, extra in (("validate", {}), ("stage", {}), ("switch", {"release": "staged"})):
        again = apply(step, **extra)
        assert again["result"] is True and again["changes"] == {}, (step, again)

    # another set (a directory source): refused when broken, nothing staged or switched
    broken = tmp_path / "broken"
    shutil.copytree(REPO / "salt" / "dags", broken)
    (broken / "bad.py").write_text("import datetime\nimport no_such_module_here\n")
    refused = apply("validate", source=str(broken))
    assert refused["result"] is False and "bad.py:2: ModuleNotFoundError" in refused["comment"], refused["comment"]
    assert sorted(p.name for p in releases.iterdir() if not p.name.startswith(".")) == [version]

    # a good one is staged and switched; then the rollback checks and goes back
    (broken / "bad.py").write_text("X = 1\n")
    assert apply("validate", source=str(broken))["result"] is True
    second = apply("stage", source=str(broken))["changes"]["staged"]
    assert apply("switch", release="staged")["changes"]["release"] == {"old": version, "new": second}
    assert (link / "bad.py").exists()
    available = apply("available", release="previous")
    assert available["result"] is True and version in available["comment"]
    assert apply("switch", release="previous")["changes"]["release"] == {"old": second, "new": version}
    assert not (link / "bad.py").exists()
    missing = apply("available", release="0123456789abcdef")
    assert missing["result"] is False and "not staged on this host" in missing["comment"]
