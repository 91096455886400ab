"""The pure parts of the lab drills: percentiles, write gaps, the nftables cut."""

import sys

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_partition  # noqa: E402
import drill_throughput  # noqa: E402


def test_percentile_picks_the_nearest_rank():
    values = [5, 1, 4, 2, 3]
    assert drill_throughput.percentile(values, 0.5) == 3
    assert drill_throughput.percentile(values, 0.95) == 5
    assert drill_throughput.percentile([], 0.5) is None


def test_longest_gap_counts_from_the_cut_to_the_first_commit():
    acked = [(1, 100.0), (2, 100.1), (3, 130.0), (4, 130.2)]
    assert round(drill_partition.longest_gap(acked, 99.0), 1) == 29.9
    assert round(drill_partition.longest_gap([(1, 140.0)], 100.0), 1) == 40.0
    assert drill_partition.longest_gap([], 100.0) == 0.0
    # no acknowledgement after the cut: the gap runs to the writer's stop
    assert drill_partition.longest_gap([], 100.0, 135.0) == 35.0
    assert round(drill_partition.longest_gap([(1, 101.0)], 100.0, 140.0), 1) == 39.0


def test_a_cut_by_ports_drops_both_directions_of_those_ports_only(monkeypatch):
    scripts = []
    monkeypatch.setattr(drill_partition, "run", lambda host, script, **kw: scripts.append((host, script)))
    drill_partition.cut("db1", ["10.0.0.2", "10.0.0.3"], ports=[2379, 2380])
    host, script = scripts[0]
    assert host == "db1"
    assert "ip saddr { 10.0.0.2, 10.0.0.3 } tcp dport { 2379, 2380 } drop" in script
    assert "ip daddr { 10.0.0.2, 10.0.0.3 } tcp sport { 2379, 2380 } drop" in script
    drill_partition.cut("db1", ["10.0.0.2"])
    assert "add rule inet airflow_ha_drill input ip saddr { 10.0.0.2 } drop" in scripts[1][1]
