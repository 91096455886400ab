"""The sync_cost drill's pure parts: the host it benchmarks from and how it reads pgbench."""

import sys

import pytest
import yaml

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill  # noqa: E402
import drill_sync_cost  # noqa: E402

PGBENCH_OUT = """transaction type: <builtin: simple update>
number of transactions actually processed: 5321
number of failed transactions: 0 (0.000%)
latency average = 15.031 ms
initial connection time = 40.123 ms
tps = 266.104 (without initial connection time)
"""


def compact():
    return yaml.safe_load((REPO / "pillar" / "inventory" / "compact.yaml").read_text())


def test_the_bench_runs_from_the_member_the_port_map_lets_reach_the_leader_port():
    assert drill_sync_cost.bench_host(compact()) == "db3"  # db3 also has the monitoring role


def test_no_member_allowed_to_reach_the_leader_port_is_an_error():
    inv = compact()
    inv["hosts"]["db3"]["roles"].remove("monitoring")
    with pytest.raises(RuntimeError, match="no PostgreSQL member may reach HAProxy's leader port"):
        drill_sync_cost.bench_host(inv)


def test_pgbench_figures_are_read_and_missing_ones_fail(monkeypatch):
    class Proc:
        stdout = PGBENCH_OUT

    monkeypatch.setattr(drill_sync_cost, "run", lambda *a, **k: Proc)
    assert drill_sync_cost.pgbench("db3", "") == {"tps": 266.104, "latency_ms": 15.031, "failed": 0}
    Proc.stdout = "pgbench: error: connection to server failed"
    with pytest.raises(RuntimeError, match="no figures"):
        drill_sync_cost.pgbench("db3", "")


def test_sync_cost_runs_in_all_before_the_failure_drills():
    assert drill.DRILLS.index("sync_cost") < drill.DRILLS.index("partition")
