"""The arithmetic of make bench, without I/O (tests/unit/test_bench.py): the
median and spread of N runs, the side-by-side table of the lab and the
single-host Airflow with their ratio, the figures of a fan-out or a writer
across a failure, and the shape of the JSON file.

The per-run figures themselves (tasks/s, chain gaps, queued-to-start waits)
come from tools/lab/drill_throughput.py, the same code the drills use; its
nearest-rank ``percentile`` is the one used here."""

import statistics
from datetime import datetime

import drill_partition
import drill_throughput

percentile = drill_throughput.percentile  # nearest rank: p95 of 19 chain gaps is a real gap, not a blend
SCHEMA = 1

# (key, label, unit, how to read it from one run {"fanout": ..., "chain": ...}, digits)
FIGURES = [
    ("fanout_tasks_per_s", "fan-out throughput", "tasks/s", lambda r: r["fanout"]["tasks_per_s"], 2),
    ("chain_gap_p50_s", "chain latency p50 (end to next start)", "s", lambda r: r["chain"]["gap_p50_s"], 2),
    ("chain_gap_p95_s", "chain latency p95", "s", lambda r: r["chain"]["gap_p95_s"], 2),
    ("fanout_wait_p50_s", "fan-out queued-to-start p50", "s", lambda r: r["fanout"]["wait_p50_s"], 2),
    ("fanout_wall_s", "fan-out wall time (trigger to done)", "s", lambda r: r["fanout"]["wall_s"], 1),
]
# a fan-out's throughput is back once RESUMED_STARTS tasks start within RESUMED_WINDOW_S (1 task/s, a third of
# the lab's healthy rate): the longest stall alone missed a second one, when a lone start split the outage
# (leader kill of 2026-12-04: two starts at 29 s, the rest from 57 s)
RESUMED_WINDOW_S = 10
RESUMED_STARTS = 10
RESUMED_FIGURE = ("fanout_resumed_s",
                  f"fan-out: throughput back ({RESUMED_STARTS} starts in {RESUMED_WINDOW_S} s) after", "s", 1)
# figures across a failure: (key, label, unit, digits)
FAILURE_FIGURES = {
    "leader_kill": [
        ("writer_acknowledged", "writer: commits acknowledged", "", 0),
        ("writer_lost", "writer: acknowledged commits lost", "", 0),
        ("writer_gap_s", "writer: longest write gap", "s", 1),
        ("fanout_stall_s", "fan-out: longest time no task started", "s", 1),
        RESUMED_FIGURE,
        ("fanout_lost", "fan-out: tasks that never succeeded", "", 0),
        ("fanout_run_twice", "fan-out: tasks run twice", "", 0),
    ],
    "broker_stop": [
        ("fanout_stall_s", "fan-out: longest time no task started", "s", 1),
        RESUMED_FIGURE,
        ("fanout_lost", "fan-out: tasks that never succeeded", "", 0),
        ("fanout_run_twice", "fan-out: tasks run twice", "", 0),
        ("fanout_tasks_per_s", "fan-out throughput across it", "tasks/s", 2),
    ],
}
FAILURE_TITLES = {"leader_kill": "Patroni leader's host killed (lxc-stop -k)",
                  "broker_stop": "RabbitMQ node leading the Celery queue stopped"}


def summarize(values):
    """Median, min and max of the runs' values (None: a run that gave no figure, left out)."""
    kept = [v for v in values if v is not None]
    if not kept:
        return {"median": None, "min": None, "max": None, "values": list(values)}
    return {"median": statistics.median(kept), "min": min(kept), "max": max(kept), "values": list(values)}


def summaries(runs, figures=FIGURES):
    """{key: summarize(...)} of every figure over the runs."""
    return {key: summarize([get(run) for run in runs]) for key, _label, _unit, get, _digits in figures}


def failure_summaries(runs, name):
    return {key: summarize([run.get(key) for run in runs]) for key, *_ in FAILURE_FIGURES[name]}


def ratio(lab, single):
    """lab / single host; None when either is missing or the single-host figure is 0."""
    if lab is None or single is None or single == 0:
        return None
    return lab / single


def cell(summary, digits):
    """'median (min-max)'; a single run shows its value alone."""
    if not summary or summary["median"] is None:
        return "-"
    text = f"{summary['median']:.{digits}f}"
    if len([v for v in summary["values"] if v is not None]) > 1:
        text += f" ({summary['min']:.{digits}f}-{summary['max']:.{digits}f})"
    return text


def comparison(lab, single):
    """Rows of the side-by-side table: each figure's medians on the lab and the single host, and their ratio.
    ``lab`` / ``single``: summaries() of each side, or None when that side did not run."""
    rows = []
    for key, label, unit, _get, digits in FIGURES:
        a = (lab or {}).get(key, {}).get("median")
        b = (single or {}).get(key, {}).get("median")
        rows.append({"figure": key, "label": f"{label} ({unit})", "digits": digits, "lab": a, "single_host": b,
                     "ratio": ratio(a, b)})
    return rows


def render(header, rows):
    """A plain-text table: ``header`` and ``rows`` are lists of strings, the first column left-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for n, row in enumerate([header, *rows]):
        lines.append("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def table(lab, single):
    """The side-by-side table (median, spread min-max over the runs, and lab / single host)."""
    rows = []
    for row in comparison(lab, single):
        digits = row["digits"]
        rows.append([row["label"], cell((lab or {}).get(row["figure"]), digits),
                     cell((single or {}).get(row["figure"]), digits),
                     "-" if row["ratio"] is None else f"{row['ratio']:.2f}x"])
    return render(["figure", "lab", "single host", "lab / single"], rows)


def failure_table(failures):
    """One block per failure scenario that ran: each figure's median and spread."""
    blocks = []
    for name, result in failures.items():
        rows = [[f"{label}{f' ({unit})' if unit else ''}", cell(result["summary"].get(key), digits)]
                for key, label, unit, digits in FAILURE_FIGURES[name]]
        blocks.append(f"{FAILURE_TITLES[name]} ({len(result['runs'])} run(s))\n"
                      + render(["figure", "lab"], rows))
    return "\n\n".join(blocks)


PGBOUNCER_ROWS = (("idle", "idle (median)"), ("peak", "peak through the fan-out"),
                  ("median_busy", "median through the fan-out"), ("tasks_per_s", "fan-out throughput (tasks/s)"))


def pgbouncer_table(pgbouncer):
    """Server connections without and with PgBouncer (bench_pgbouncer.measure()'s result)."""
    without, with_ = pgbouncer.get("without") or {}, pgbouncer.get("with") or {}
    rows = [[label, str(without.get(key, "-")), str(with_.get(key, "-"))] for key, label in PGBOUNCER_ROWS]
    return render(["figure", "without PgBouncer", "with PgBouncer"], rows)


def stall(starts):
    """(seconds, at): the longest interval with no task starting between the first and the last start, and
    when it began; (0.0, None) with fewer than two starts."""
    ordered = sorted(starts)
    if len(ordered) < 2:
        return 0.0, None
    gap, at = max((b - a, a) for a, b in zip(ordered, ordered[1:]))
    return gap, at


def resumed(starts, origin):
    """Seconds from ``origin`` to the first start after it that opens a window of RESUMED_WINDOW_S with at least
    RESUMED_STARTS starts; None when there is none (too few tasks left after the failure)."""
    after = sorted(s for s in starts if s >= origin)
    for first, last in zip(after, after[RESUMED_STARTS - 1:]):
        if last < first + RESUMED_WINDOW_S:
            return first - origin
    return None


def ts(text):
    """Epoch seconds of an ISO time of the REST API (None stays None)."""
    return drill_throughput._ts(text) if text else None


def fanout_across(tis, counts, n, origin):
    """The figures of a fan-out that ran across a failure, from its task instances (REST API) and the
    executions log counts ({(task_id, map_index): executions}, drill_throughput.executions). ``origin``:
    the failure's epoch time; the start times are kept relative to it for the chart."""
    work = [ti for ti in tis if ti["task_id"] == "work"]
    starts = sorted(ts(ti["start_date"]) for ti in work if ti.get("start_date"))
    ends = [ts(ti["end_date"]) for ti in work if ti.get("end_date")]
    succeeded = len({ti["map_index"] for ti in work if ti["state"] == "success"})
    recorded = {k for k in counts if k[0] == "work"}
    # a failure before any task started: the wait from the failure to the first start is a stall too (the
    # lab's leader kill came before the fan-out's first start: 82 s that the gaps between starts missed)
    gap, at = stall(starts if any(s <= origin for s in starts) else [origin, *starts])
    return {"tasks": n, "succeeded": succeeded, "fanout_lost": n - succeeded,
            "fanout_run_twice": len([k for k in recorded if counts[k] > 1]),
            "fanout_unrecorded": n - len(recorded),
            "fanout_stall_s": round(gap, 2),
            "fanout_stall_from_s": round(at - origin, 2) if at is not None else None,
            "fanout_resumed_s": round(back, 2) if (back := resumed(starts, origin)) is not None else None,
            # drill_throughput.fanout's arithmetic: n tasks over the first start to the last end
            "fanout_tasks_per_s": n / max(max(ends) - min(starts), 1e-3) if ends and starts else None,
            "starts_s": [round(s - origin, 2) for s in starts]}


def writer_across(acked, present, since, until):
    """The continuous writer's figures across a failure (drill_partition's Writer): ``acked`` [(id, epoch)],
    ``present`` the ids in the table afterwards, the longest write gap from ``since`` (the failure) to
    ``until`` (the writer's stop), as the partition drills count it."""
    ids = {i for i, _ in acked}
    return {"writer_acknowledged": len(ids), "writer_lost": len(ids - set(present)),
            "writer_gap_s": round(drill_partition.longest_gap([a for a in acked if a[1] >= since], since, until), 2)}


def document(started, finished, argv, lab=None, single=None, failures=None, chart=None, errors=(), pgbouncer=None):
    """The JSON file's content. ``lab`` / ``single``: {"runs": [...], "summary": summaries(...), ...} of each
    side, or None when it did not run; ``failures``: {scenario: {"runs": [...], "summary": ...}} or None;
    ``pgbouncer``: bench_pgbouncer.measure()'s {"without", "with", ...} or None."""
    return {
        "schema": SCHEMA,
        "started": datetime.fromtimestamp(started).astimezone().isoformat(timespec="seconds"),
        "seconds": round(finished - started, 1),
        "argv": list(argv),
        "lab": lab,
        "single_host": single,
        "comparison": [{k: v for k, v in row.items() if k != "digits"} for row in
                       comparison((lab or {}).get("summary"), (single or {}).get("summary"))],
        "failures": failures,
        "pgbouncer": pgbouncer,
        "chart": chart,
        "errors": list(errors),
    }
