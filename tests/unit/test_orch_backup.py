"""orch.restore and orch.backup_verify as the master renders them (Salt's
Jinja, the topology in the master's own pillar, no minion's): the refusals
before anything stops, and the order of a point-in-time recovery."""

import pytest
import yaml

from _modules.ha_inventory import read_inventory
from tests.helpers import master_jinja
from tests.helpers.inventory import REPO


def render(sls, pillar, topology="compact", inventory=None, grains=None):
    # the master's own pillar: what every host gets (inventory, tls) plus the orchestrate's pillar
    pillar = dict(pillar, inventory=inventory or read_inventory(topology), tls={"enabled": True})

    def exception(message):
        raise RuntimeError(message)

    path = REPO / "salt" / "orch" / f"{sls}.sls"
    out = master_jinja.render(path.read_text(), pillar, {"test.exception": exception}, grains=grains,
                              sls=f"orch.{sls}", tmplpath=str(path))
    return yaml.safe_load(out)


def args(state):
    (fun, items), = state.items()
    merged = {"fun": fun}
    for item in items:
        merged.update(item)
    return merged


@pytest.mark.parametrize("pillar, reason", [
    ({"target_time": "2026-12-02 03:00:00+00"}, "confirm with pillar confirm: restore"),
    ({"target_time": "2026-12-02 03:00:00+00", "confirm": "yes"}, "confirm with pillar confirm: restore"),
    ({"confirm": "restore"}, "pillar target_time is missing"),
    ({"target_time": "2026-12-02 03:00:00+00", "confirm": "restore", "restore_member": "af1"}, "not a postgres member"),
])
def test_restore_refuses_before_anything_stops(pillar, reason):
    high = render("restore", pillar)
    assert list(high) == ["orch-restore-refused"]
    refused = args(high["orch-restore-refused"])
    assert refused["fun"] == "test.fail_without_changes" and reason in refused["name"] and refused["failhard"]


def test_restore_order():
    high = render("restore", {"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"})
    assert list(high) == [
        "orch-restore-preflight", "orch-restore-airflow-stopped", "orch-restore-patroni-stopped",
        "orch-restore-removed-from-dcs", "orch-restore-replicas-wiped", "orch-restore-pgbackrest-restore",
        "orch-restore-recovered", "orch-restore-leader-started", "orch-restore-leader-running",
        "orch-restore-replicas-started", "orch-restore-postgres-healthy", "orch-restore-archiving-checked",
        "orch-restore-airflow-started", "orch-restore-smoke-dag"]
    pre = args(high["orch-restore-preflight"])
    assert pre["tgt"] == "af2" and pre["kwarg"]["confirm"] == "restore"
    assert pre["name"] == "pgbackrest.restore_preflight"
    assert args(high["orch-restore-airflow-stopped"])["tgt"] == "af1,af2"
    assert args(high["orch-restore-patroni-stopped"])["tgt"] == "db1,db2,db3"
    assert args(high["orch-restore-replicas-wiped"])["tgt"] == "db2,db3"
    restore = args(high["orch-restore-pgbackrest-restore"])
    assert restore["tgt"] == "db1" and restore["kwarg"]["target_time"] == "2026-12-02 03:00:00+00"
    assert all(args(s)["failhard"] for s in high.values())


def test_backup_verify_runs_on_the_repository_host():
    verify = args(render("backup_verify", {})["orch-backup-verify"])
    assert verify["tgt"] == "af2" and verify["name"] == "pgbackrest.verify_restore"
    assert verify["kwarg"]["port"] == 5499 and verify["kwarg"]["pg_hosts"] == 3
    full = args(render("backup_verify", {}, "full")["orch-backup-verify"])
    assert full["tgt"] == "monitor1"


def without_backup(topology):
    """The topology with no host of role backup (a cluster without pgBackRest)."""
    inventory = read_inventory(topology)
    for host in inventory["hosts"].values():
        host["roles"] = [r for r in host["roles"] if r != "backup"]
    return inventory


@pytest.mark.parametrize("topology", ["compact", "full"])
def test_bringup_without_a_backup_host_leaves_the_backup_steps_out(topology):
    with_backup = render("bringup", {}, topology)
    assert {"orch-backup", "orch-backup-stanza"} <= set(with_backup)
    assert args(with_backup["orch-postgres"])["require"] == [{"salt": "orch-backup"}]
    high = render("bringup", {}, inventory=without_backup(topology))
    assert not [step for step in high if "backup" in step], list(high)
    assert list(high)[:6] == ["orch-sync-modules", "orch-preflight", "orch-base", "orch-logs", "orch-etcd",
                              "orch-postgres"]
    # the chain of requisites closes over the left-out steps
    assert args(high["orch-postgres"])["require"] == [{"salt": "orch-etcd"}]
    assert args(high["orch-haproxy"])["require"] == [{"salt": "orch-postgres"}]
    # after the migrate, the DAG release steps (issue 23), then highstate, parsed, the smoke DAG
    assert args(high["orch-dags-validated"])["require"] == [{"salt": "orch-airflow-db-migrated"}]
    assert args(high["orch-highstate"])["require"] == [{"salt": "orch-dags-switched"}]
    assert args(high["orch-dags-parsed"])["require"] == [{"salt": "orch-highstate"}]
    assert args(high["orch-smoke-dag"])["require"] == [{"salt": "orch-dags-parsed"}]


def test_backup_orchestrates_without_a_backup_host_refuse_naming_the_role():
    inventory = without_backup("compact")
    verify = render("backup_verify", {}, inventory=inventory)
    assert list(verify) == ["orch-backup-verify-refused"]
    assert "backup role" in args(verify["orch-backup-verify-refused"])["name"]
    restore = render("restore", {"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"}, inventory=inventory)
    assert list(restore) == ["orch-restore-refused"]
    assert "no minion has the backup role" in args(restore["orch-restore-refused"])["name"]
