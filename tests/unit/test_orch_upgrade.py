"""orch.airflow_upgrade as the master renders it (its own pillar, no
minion's): the refusals before anything changes (a missing or wrong pin
file, no backup host), the order of its steps (checks, backup, venvs,
migration, then one host at a time with its gates, the smoke DAG) and the
pillar each state step gets."""

import pytest
import yaml

from _modules.ha_inventory import read_inventory
from tests.helpers import master_jinja
from tests.helpers.inventory import REPO
from tests.unit.test_orch_backup import args, without_backup
from tests.unit.test_orch_reboot import chain_is_linear


def get_file_str(url):
    """cp.get_file_str over the repo's salt/ (the master's file_roots): False for a missing file."""
    path = REPO / "salt" / url[len("salt://"):]
    return path.read_text() if path.is_file() else False


def render(pillar=None, topology="compact", inventory=None, files=get_file_str):
    pillar = dict(pillar or {}, inventory=inventory or read_inventory(topology), tls={"enabled": True})

    def exception(message):
        raise RuntimeError(message)

    path = REPO / "salt" / "orch" / "airflow_upgrade.sls"
    out = master_jinja.render(path.read_text(), pillar, {"test.exception": exception, "cp.get_file_str": files},
                              sls="orch.airflow_upgrade", tmplpath=str(path))
    return yaml.safe_load(out)


def airflow_hosts(topology):
    """The Airflow hosts in orch/map.jinja's order: by role, then by name."""
    hosts = read_inventory(topology)["hosts"]
    roles = ["scheduler", "webserver", "dag_processor", "worker", "triggerer", "flower"]
    order = []
    for role in roles:
        order += [h for h in sorted(hosts) if role in hosts[h]["roles"] and h not in order]
    return order


@pytest.mark.parametrize("topology", ["compact", "full"])
def test_checks_then_backup_venvs_migration_then_host_by_host(topology):
    high = render(topology=topology)
    ids = list(high)
    chain_is_linear(high)
    assert ids[:2] == ["orch-upgrade-plan", "orch-upgrade-minions-up"]
    first_change = ids.index("orch-upgrade-modules-synced")
    checks = ids[2:first_change]
    assert checks[-2:] == ["orch-upgrade-precheck-airflow", "orch-upgrade-precheck-workers"]
    assert all(args(high[k])["name"] == "ha_cluster.check" for k in checks[:-2]) and checks[:-2]
    assert ids[first_change:first_change + 4] == ["orch-upgrade-modules-synced", "orch-upgrade-backup",
                                                  "orch-upgrade-venvs", "orch-upgrade-db-migrated"]
    hosts = airflow_hosts(topology)
    switched = [args(high[k])["tgt"] for k in ids if k.startswith("orch-upgrade-switch-")]
    assert switched == hosts
    # each host: its switch, then its gates, before the next host's switch
    for host, after in zip(hosts, hosts[1:] + [None]):
        start = ids.index(f"orch-upgrade-switch-{host}")
        end = ids.index(f"orch-upgrade-switch-{after}") if after else ids.index("orch-upgrade-smoke-dag")
        assert ids[end - 1] == f"orch-upgrade-healthy-{host}"
        assert all(k.endswith("-" + host) for k in ids[start:end])
    assert ids[-1] == "orch-upgrade-smoke-dag"
    assert all(args(s).get("failhard") for k, s in high.items() if k != "orch-upgrade-plan")
    assert sorted(args(high["orch-upgrade-venvs"])["tgt"].split(",")) == sorted(hosts)


def test_pillar_of_each_state_step_and_what_runs_where():
    high = render()
    venvs, migrate = args(high["orch-upgrade-venvs"]), args(high["orch-upgrade-db-migrated"])
    release = {"version": "3.3.2", "requirements": "airflow-3.txt"}
    # built and migrated beside the running venv: the symlink stays
    assert venvs["sls"] == ["airflow.venv"] and venvs["pillar"] == {"airflow": dict(release, switch_venv=False)}
    assert migrate["sls"] == ["airflow.migrate"] and migrate["tgt"] == "af1"
    assert migrate["pillar"] == venvs["pillar"] and migrate["require"] == [{"salt": "orch-upgrade-venvs"}]
    switch = args(high["orch-upgrade-switch-af2"])
    assert switch["sls"] == ["airflow.venv_switch"] and switch["pillar"] == {"airflow": release}
    backup = args(high["orch-upgrade-backup"])
    assert backup["tgt"] == "af2" and backup["sls"] == ["backup.full"]
    assert backup["pillar"] == {"backup_annotation": {"airflow-upgrade": "3.3.2"}}
    assert [k for k in high if k.endswith("-af2")] == [
        "orch-upgrade-switch-af2", "orch-upgrade-jobs-af2", "orch-upgrade-worker-af2", "orch-upgrade-healthy-af2"]
    assert args(high["orch-upgrade-minions-up"])["tgt"] == "af1,af2"
    assert args(high["orch-upgrade-smoke-dag"])["name"] == "airflow_ha.smoke_test"
    assert "Airflow 3.3.2 (salt://airflow/files/airflow-3.txt)" in args(high["orch-upgrade-plan"])["name"]


def test_the_previous_release_is_a_pillar_away():
    high = render({"airflow": {"version": "3.3.1", "requirements": "airflow-3.3.1.txt"}})
    assert args(high["orch-upgrade-venvs"])["pillar"]["airflow"]["requirements"] == "airflow-3.3.1.txt"
    assert args(high["orch-upgrade-backup"])["pillar"] == {"backup_annotation": {"airflow-upgrade": "3.3.1"}}


@pytest.mark.parametrize("pillar, reason", [
    ({"airflow": {"version": "3.3.9", "requirements": "airflow-3.3.9.txt"}},
     "the pin file salt://airflow/files/airflow-3.3.9.txt (pillar airflow:requirements) is missing on the master: "
     "run tools/pin_airflow.sh 3 3.3.9"),
    ({"airflow": {"version": "3.3.1"}},
     "the pin file salt://airflow/files/airflow-3.txt pins no apache-airflow==3.3.1 (pillar airflow:version)"),
])
def test_refuses_a_missing_or_wrong_pin_file_before_anything_changes(pillar, reason):
    high = render(pillar)
    assert list(high) == ["orch-upgrade-refused"]
    refused = args(high["orch-upgrade-refused"])
    assert refused["fun"] == "test.fail_without_changes" and refused["failhard"]
    assert reason in refused["name"] and "nothing changed" in refused["name"]


def test_without_a_backup_host_it_refuses_unless_told_to_skip_the_backup():
    high = render(inventory=without_backup("compact"))
    assert list(high) == ["orch-upgrade-refused"]
    assert "skip_backup" in args(high["orch-upgrade-refused"])["name"]
    high = render({"skip_backup": True}, inventory=without_backup("compact"))
    assert "orch-upgrade-backup" not in high and "no backup (skip_backup)" in args(high["orch-upgrade-plan"])["name"]
    assert args(high["orch-upgrade-venvs"])["require"] == [{"salt": "orch-upgrade-modules-synced"}]
