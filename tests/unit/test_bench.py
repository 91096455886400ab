"""The pure parts of make bench (tools/bench/bench_figures.py): the percentile
the figures use, the median and spread of runs, the side-by-side table and its
ratio, the stall of a fan-out from its task start times, the figures across a
failure, and the shape of the JSON file."""

import json
import sys

import pytest

from tests.helpers.inventory import REPO

sys.path[:0] = [str(REPO / "tools" / "lab"), str(REPO / "tools" / "bench")]
import bench  # noqa: E402
import bench_chart  # noqa: E402
import bench_figures as figures  # noqa: E402


def run(tasks_per_s, p50, p95, wait=0.5, wall=60.0, starts=(0.0, 1.0)):
    return {"fanout": {"tasks_per_s": tasks_per_s, "wait_p50_s": wait, "wall_s": wall, "tasks": len(starts),
                       "starts_s": list(starts)},
            "chain": {"gap_p50_s": p50, "gap_p95_s": p95}}


def test_percentiles_are_nearest_rank_as_the_drills_compute_them():
    gaps = [0.1 * i for i in range(1, 20)]  # the 19 gaps of the 20-task chain
    assert figures.percentile(gaps, 0.5) == pytest.approx(1.0)
    assert figures.percentile(gaps, 0.95) == pytest.approx(1.8)  # a real gap, not a blend of two
    assert figures.percentile([3, 1, 2], 0.5) == 2
    assert figures.percentile([], 0.5) is None


def test_summary_is_the_median_and_spread_of_the_runs():
    s = figures.summarize([4.0, 2.0, 9.0])
    assert (s["median"], s["min"], s["max"]) == (4.0, 2.0, 9.0)
    assert s["values"] == [4.0, 2.0, 9.0]
    assert figures.summarize([1.0, None, 3.0])["median"] == 2.0  # a run without the figure is left out
    assert figures.summarize([None])["median"] is None
    summary = figures.summaries([run(4.0, 0.5, 1.1), run(5.0, 0.4, 1.0), run(3.0, 0.7, 1.5)])
    assert summary["fanout_tasks_per_s"]["median"] == 4.0
    assert summary["chain_gap_p50_s"]["median"] == 0.5
    assert summary["chain_gap_p95_s"]["max"] == 1.5


def test_ratio_is_lab_over_single_host_and_missing_when_a_side_is():
    assert figures.ratio(6.0, 2.0) == 3.0
    assert figures.ratio(0.5, 2.0) == 0.25
    assert figures.ratio(None, 2.0) is None
    assert figures.ratio(2.0, None) is None
    assert figures.ratio(2.0, 0) is None


def test_side_by_side_table_shows_medians_spread_and_ratio():
    lab = figures.summaries([run(4.0, 0.5, 1.2), run(5.0, 0.6, 1.1), run(3.8, 0.4, 1.0)])
    single = figures.summaries([run(2.0, 0.25, 0.3), run(2.5, 0.2, 0.4), run(1.5, 0.3, 0.5)])
    text = figures.table(lab, single)
    lines = text.splitlines()
    assert lines[0].split() == ["figure", "lab", "single", "host", "lab", "/", "single"]
    throughput = next(line for line in lines if line.startswith("fan-out throughput"))
    assert "4.00 (3.80-5.00)" in throughput and "2.00 (1.50-2.50)" in throughput
    assert throughput.endswith("2.00x")
    p50 = next(line for line in lines if line.startswith("chain latency p50"))
    assert p50.endswith("2.00x")  # 0.5 s on the lab against 0.25 s
    rows = {r["figure"]: r for r in figures.comparison(lab, single)}
    assert rows["chain_gap_p95_s"]["ratio"] == pytest.approx(1.1 / 0.4)


def test_table_of_one_side_has_no_ratio_and_one_run_no_spread():
    single = figures.summaries([run(2.0, 0.25, 0.3)])
    text = figures.table(None, single)
    throughput = next(line for line in text.splitlines() if line.startswith("fan-out throughput"))
    cells = throughput.split("  ")
    assert [c.strip() for c in cells if c.strip()][1:] == ["-", "2.00", "-"]


def test_stall_is_the_longest_time_without_a_task_start():
    assert figures.stall([10.0, 10.5, 11.0, 31.0, 31.2]) == (20.0, 11.0)
    assert figures.stall([31.2, 10.0, 31.0, 10.5, 11.0]) == (20.0, 11.0)  # order does not matter
    assert figures.stall([5.0]) == (0.0, None)
    assert figures.stall([]) == (0.0, None)


def ti(index, state, start, end):
    iso = "2026-01-01T00:00:{:06.3f}Z"
    return {"task_id": "work", "map_index": index, "state": state, "start_date": iso.format(start) if start else None,
            "end_date": iso.format(end) if end else None}


def test_fanout_across_a_failure_counts_stall_lost_and_twice():
    origin = figures.ts("2026-01-01T00:00:05Z")
    tis = [ti(0, "success", 1, 2), ti(1, "success", 2, 3), ti(2, "success", 30, 31), ti(3, "failed", 31, 32),
           {"task_id": "items", "map_index": -1, "state": "success", "start_date": None, "end_date": None}]
    counts = {("work", 0): 1, ("work", 1): 2, ("work", 2): 1, ("items", -1): 1}
    f = figures.fanout_across(tis, counts, 4, origin)
    assert f["fanout_stall_s"] == 28.0 and f["fanout_stall_from_s"] == -3.0
    assert f["fanout_lost"] == 1  # map index 3 never succeeded
    assert f["fanout_run_twice"] == 1  # map index 1 ran twice
    assert f["fanout_unrecorded"] == 1  # map index 3 left no execution line
    assert f["starts_s"] == [-4.0, -3.0, 25.0, 26.0]
    # a failure before the first start: the stall runs from the failure
    late = figures.fanout_across(tis, counts, 4, figures.ts("2026-01-01T00:00:00Z"))
    assert late["fanout_stall_s"] == 28.0 and late["fanout_stall_from_s"] == 2.0
    early = figures.fanout_across(tis, counts, 4, figures.ts("2025-12-31T23:59:00Z"))
    assert early["fanout_stall_s"] == 61.0 and early["fanout_stall_from_s"] == 0.0
    assert f["fanout_resumed_s"] is None  # 2 starts after the failure: never RESUMED_STARTS in a window
    # drill_throughput's arithmetic: n / (last end - first start)
    assert f["fanout_tasks_per_s"] == pytest.approx(4 / 31)


def test_throughput_is_back_at_the_first_window_of_enough_starts():
    window, enough = figures.RESUMED_WINDOW_S, figures.RESUMED_STARTS
    steady = [57.0 + i * (window / enough) * 0.9 for i in range(enough)]
    # a lone start at 29 s between two stalls is no recovery: the steady starts from 57 s are
    assert figures.resumed([-5.0, -1.0, 29.0, 29.3, *steady], 0.0) == 57.0
    assert figures.resumed([-5.0, 29.0, *steady[:-1]], 0.0) is None  # one start short of a window
    # starts that never stopped: back at the first start after the failure
    assert figures.resumed([i * 0.5 for i in range(-10, 40)], 0.0) == 0.0
    assert figures.resumed([], 0.0) is None


def test_writer_across_a_failure_counts_from_the_failure():
    acked = [(1, 100.0), (2, 100.02), (3, 131.0), (4, 131.02)]
    f = figures.writer_across(acked, present={1, 2, 3}, since=100.01, until=140.0)
    assert f == {"writer_acknowledged": 4, "writer_lost": 1, "writer_gap_s": 30.98}  # 100.02 to 131.0
    assert figures.writer_across([], set(), 100.0, 130.0)["writer_gap_s"] == 30.0  # nothing acknowledged at all
    # commits before the failure do not count for the gap (the writer ran long before it)
    assert figures.writer_across([(1, 50.0), (2, 100.5)], {1, 2}, 100.0, 101.0)["writer_gap_s"] == 0.5


def test_json_document_shape():
    lab_runs = [run(4.0, 0.5, 1.2)]
    single_runs = [run(2.0, 0.25, 0.3), run(3.0, 0.3, 0.4)]
    failure_runs = [{"writer_acknowledged": 900, "writer_lost": 0, "writer_gap_s": 33.0, "fanout_stall_s": 35.0,
                     "fanout_lost": 0, "fanout_run_twice": 0, "starts_s": [-2.0, 40.0]}]
    doc = figures.document(
        1_700_000_000, 1_700_000_100.04, ["--runs", "1"],
        lab={"runs": lab_runs, "summary": figures.summaries(lab_runs)},
        single={"runs": single_runs, "summary": figures.summaries(single_runs), "settings": {"parallelism": 16}},
        failures={"leader_kill": {"runs": failure_runs,
                                  "summary": figures.failure_summaries(failure_runs, "leader_kill")}},
        errors=["failures broker_stop: TimeoutError"])
    assert json.loads(json.dumps(doc)) == doc  # plain JSON
    assert set(doc) == {"schema", "started", "seconds", "argv", "lab", "single_host", "comparison", "failures",
                        "pgbouncer", "chart", "errors"}
    assert doc["schema"] == figures.SCHEMA and doc["seconds"] == 100.0
    row = next(r for r in doc["comparison"] if r["figure"] == "fanout_tasks_per_s")
    assert row == {"figure": "fanout_tasks_per_s", "label": "fan-out throughput (tasks/s)", "lab": 4.0,
                   "single_host": 2.5, "ratio": 1.6}
    assert doc["failures"]["leader_kill"]["summary"]["writer_gap_s"]["median"] == 33.0
    assert doc["single_host"]["settings"]["parallelism"] == 16
    one_side = figures.document(0, 1, [], single={"runs": single_runs, "summary": figures.summaries(single_runs)})
    assert one_side["lab"] is None and one_side["failures"] is None
    assert all(r["lab"] is None and r["ratio"] is None for r in one_side["comparison"])


def test_failure_table_names_each_scenario_and_figure():
    runs = [{"fanout_stall_s": 12.0, "fanout_lost": 0, "fanout_run_twice": 0, "fanout_tasks_per_s": 3.0}]
    text = figures.failure_table({"broker_stop": {"runs": runs,
                                                  "summary": figures.failure_summaries(runs, "broker_stop")}})
    assert text.startswith(figures.FAILURE_TITLES["broker_stop"])
    assert "longest time no task started (s)" in text and "12.0" in text


def test_chart_draws_the_median_run_and_each_failure(tmp_path):
    runs = [run(4.0, 0.5, 1.2, starts=[0, 1, 2]), run(2.0, 0.5, 1.2, starts=[0, 2, 4]),
            run(3.0, 0.5, 1.2, starts=[0, 1.5, 3])]
    assert bench_chart.median_run(runs) is runs[2]
    assert bench_chart.median_run(runs[:2]) is runs[1]  # the lower middle of an even count
    failure = {"starts_s": [-3.0, -1.0, 20.0], "events_s": {"cluster whole": 25.0}, "fanout_stall_s": 21.0,
               "fanout_stall_from_s": -1.0, "fanout_lost": 0, "fanout_run_twice": 0}
    doc = figures.document(0, 1, [], single={"runs": runs, "summary": figures.summaries(runs)},
                           failures={"broker_stop": {"runs": [failure], "summary": {}}})
    path = bench_chart.draw(doc, tmp_path / "bench.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert bench_chart.draw(figures.document(0, 1, []), tmp_path / "none.png") is None


def test_options_exclude_each_other_and_default_to_three_cheap_runs():
    args = bench.parse_args([])
    assert (args.runs, args.failure_runs, args.n) == (3, 1, 200)
    assert not (args.single_only or args.lab_only or args.no_failures or args.update_docs)
    with pytest.raises(SystemExit):
        bench.parse_args(["--single-only", "--lab-only"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--runs", "0"])


def test_polling_through_an_outage_waits_for_an_answer_and_gives_up_at_the_deadline(monkeypatch):
    import bench_measure

    monkeypatch.setattr(bench_measure.time, "sleep", lambda s: None)
    answers = iter([RuntimeError("HTTP 500"), None, "run-1"])

    def ask():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert bench_measure.through_outage(ask, timeout=60) == "run-1"
    with pytest.raises(TimeoutError, match="HTTP 503"):
        bench_measure.through_outage(lambda: (_ for _ in ()).throw(RuntimeError("HTTP 503")), timeout=0)


def test_pgbouncer_table_and_connection_figures():
    import bench_pgbouncer

    with_ = bench_pgbouncer.connection_figures([3, 4, 4], [5, 12, 9, 30])
    assert with_ == {"idle": 4, "peak": 30, "median_busy": 10, "samples": 7}
    with pytest.raises(RuntimeError, match="no sample"):
        bench_pgbouncer.connection_figures([], [1])
    text = figures.pgbouncer_table({"without": dict(with_, tasks_per_s=2.4), "with": {"peak": 18}})
    peak = next(line for line in text.splitlines() if line.startswith("peak"))
    assert peak.split()[-2:] == ["30", "18"]
    assert bench_pgbouncer.pgbouncer_port() == 6432  # salt/airflow/defaults.yaml
