"""The versioned virtualenvs as the states render them (orch.airflow_upgrade):
the venv of airflow:version at /opt/airflow/venv-<version>, the older
layout's directory adopted, the symlink every unit runs through (and
watches), `airflow db migrate` from the versioned venv, a host's switch with
its own units; with airflow:switch_venv false no symlink at all."""

import pytest

from clusters.state_render import compiler


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_the_venv_is_versioned_and_the_symlink_follows_it(compiled_sls, os_name):
    states = compiled_sls("af1", "compact", "airflow.worker", os_name)
    venv, installed = states["airflow-venv"], states["airflow-installed"]
    python = "/usr/bin/python3" if os_name == "debian12" else "/usr/bin/python3.11"
    assert venv["name"] == f"{python} -m venv /opt/airflow/venv-3.3.2"
    assert venv["creates"] == "/opt/airflow/venv-3.3.2/bin/pip"
    assert {"module": "airflow-venv-adopted"} in venv["require"]
    assert installed["name"].startswith("/opt/airflow/venv-3.3.2/bin/python -m pip install --no-deps ")
    assert " -r /opt/airflow/requirements-3.3.2.txt && cp /opt/airflow/requirements-3.3.2.txt " \
           "/opt/airflow/venv-3.3.2/.airflow_ha_requirements" in installed["name"]
    assert "grep -qx 'Version: 3.3.2' && cmp -s /opt/airflow/requirements-3.3.2.txt" in installed["unless"]
    assert states["airflow-requirements"]["source"] == "salt://airflow/files/airflow-3.txt"
    adopted = states["airflow-venv-adopted"]
    assert adopted["fun"] == "module.run"
    assert adopted["onlyif"] == "test -d /opt/airflow/venv && test ! -L /opt/airflow/venv"
    link = states["airflow-venv-current"]
    assert link["fun"] == "file.symlink" and link["name"] == "/opt/airflow/venv"
    assert link["target"] == "/opt/airflow/venv-3.3.2" and link["atomic"] is True and "force" not in link
    assert {"file": "airflow-venv-current"} in states["airflow-worker-running"]["watch"]
    assert states["airflow-requirements-unversioned-absent"]["name"] == "/opt/airflow/requirements.txt"
    for state_id, state in states.items():
        if state["fun"] == "cmd.run":
            assert {"unless", "onlyif", "creates", "onchanges"} & set(state), state_id


def test_migrate_runs_the_versioned_venvs_airflow(compiled_sls):
    states = compiled_sls("af1", "compact", "airflow.migrate")
    assert "/opt/airflow/venv-3.3.2/bin/airflow db migrate" in states["airflow-db-migrated"]["name"]
    assert "/opt/airflow/venv-3.3.2/bin/airflow db check-migrations" in states["airflow-db-migrated"]["unless"]


@pytest.mark.parametrize("host, units, drain", [
    ("af1", ["airflow-scheduler", "airflow-webserver", "airflow-dag-processor", "airflow-triggerer",
             "airflow-worker", "airflow-flower"], True),
])
def test_a_hosts_switch_names_its_own_units(compiled_sls, host, units, drain):
    switched = compiled_sls(host, "compact", "airflow.venv_switch")["airflow-venv-switched"]
    assert switched["fun"] == "airflow_ha.venv_switched" and switched["name"] == "/opt/airflow/venv"
    assert switched["target"] == "/opt/airflow/venv-3.3.2" and switched["drain"] is drain
    assert sorted(switched["units"]) == sorted(units) and switched["only_running"] == []
    assert switched["drain_timeout"] == 600
    # the very units the host's component states install (a wrong name once stopped the lab's rollout)
    unit_files = set()
    for component in ("scheduler", "webserver", "dag_processor", "triggerer", "worker", "flower"):
        unit_files |= {state["name"].rsplit("/", 1)[-1].removesuffix(".service")
                       for sid, state in compiled_sls(host, "compact", f"airflow.{component}").items()
                       if sid.endswith("-unit") and state["name"].endswith(".service")}
    assert set(switched["units"]) <= unit_files, set(switched["units"]) - unit_files


def test_without_switch_venv_the_states_build_beside_and_link_nothing(salt_env, tmp_path):
    (tmp_path / "site.sls").write_text("airflow: {switch_venv: false, version: '3.3.1', "
                                       "requirements: airflow-3.3.1.txt}\n")
    states = compiler(salt_env, (tmp_path,))("af1", "compact", "airflow.migrate")
    assert "airflow-venv-current" not in states
    assert states["airflow-venv"]["creates"] == "/opt/airflow/venv-3.3.1/bin/pip"
    assert states["airflow-requirements"]["source"] == "salt://airflow/files/airflow-3.3.1.txt"
    assert "/opt/airflow/venv-3.3.1/bin/airflow db migrate" in states["airflow-db-migrated"]["name"]
