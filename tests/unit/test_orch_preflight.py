"""orch.preflight and its place in orch.bringup, as the master renders them
(its own pillar, no minion's): the checks run on every minion after the
module sync and before anything changes, with the inventory's names, IPs and
roles and the minimums of pillar orch:preflight."""

import yaml

from tests.helpers.inventory import REPO
from tests.unit.test_orch_backup import args, render

DEFAULTS = yaml.safe_load((REPO / "salt/orch/defaults.yaml").read_text())["preflight"]


def test_preflight_alone_syncs_then_checks_every_minion():
    high = render("preflight", {})
    assert list(high) == ["orch-sync-modules", "orch-preflight"]
    check = args(high["orch-preflight"])
    assert check["fun"] == "salt.function" and check["name"] == "preflight.check" and check["tgt"] == "*"
    assert check["failhard"] is True and check["require"] == [{"salt": "orch-sync-modules"}]
    kwarg = check["kwarg"]
    assert kwarg["minimums"] == DEFAULTS["minimums"] and kwarg["require_resolvable"] is False
    assert kwarg["hosts"]["db1"] == {"ip": "10.83.0.11", "roles": ["etcd", "postgres", "rabbitmq", "ca"]}
    assert set(kwarg["hosts"]) == {"db1", "db2", "db3", "af1", "af2"}


def test_bringup_runs_the_preflight_before_anything_changes():
    high = render("bringup", {})
    ids = list(high)
    assert ids[:3] == ["orch-sync-modules", "orch-preflight", "orch-base"]
    assert args(high["orch-base"])["require"] == [{"salt": "orch-preflight"}]
    assert args(high["orch-preflight"])["kwarg"] == args(render("preflight", {})["orch-preflight"])["kwarg"]


def test_pillar_overrides_the_minimums():
    high = render("preflight", {"orch": {"preflight": {"minimums": {"postgres": {"memory_mb": 8192}},
                                                       "require_resolvable": True}}})
    kwarg = args(high["orch-preflight"])["kwarg"]
    assert kwarg["minimums"]["postgres"] == {"memory_mb": 8192, "disk_gb": DEFAULTS["minimums"]["postgres"]["disk_gb"]}
    assert kwarg["minimums"]["all"] == DEFAULTS["minimums"]["all"] and kwarg["require_resolvable"] is True
