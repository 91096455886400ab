"""The chart of make bench (matplotlib, PNG): tasks started over time.

The first panel puts the fan-out of the lab and of the single host side by
side (every run, the median one drawn bold; x from the run's first task
start). Then one panel per failure run: x from the moment of the failure
(the kill or the stop, the red line), the recovery events as dashed lines and
the longest stall, the time with no task starting, shaded: a flat stretch is
the cluster not starting work."""

from bench_figures import FAILURE_TITLES

COLOURS = {"lab": "tab:blue", "single_host": "tab:orange"}
SIDES = {"lab": "lab", "single_host": "single host"}


def median_run(runs):
    """The run whose fan-out throughput is the median one (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["fanout"]["tasks_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def _steps(ax, starts, **style):
    """The count of tasks started, a step at each start."""
    ax.step(starts, range(1, len(starts) + 1), where="post", **style)


def draw(doc, path):
    """Write the chart of the bench document ``doc`` (bench_figures.document) to ``path``; returns ``path``,
    or None when nothing was measured."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file
    import matplotlib.pyplot as plt

    sides = [s for s in SIDES if doc.get(s) and doc[s].get("runs")]
    failures = [(name, i, run) for name, result in (doc.get("failures") or {}).items()
                for i, run in enumerate(result["runs"]) if run.get("starts_s")]
    count = (1 if sides else 0) + len(failures)
    if not count:
        return None
    fig, axes = plt.subplots(count, 1, figsize=(10, 3.4 * count), squeeze=False)
    axes = [a[0] for a in axes]
    if sides:
        ax = axes.pop(0)
        for side in sides:
            runs = doc[side]["runs"]
            middle = median_run(runs)
            for run in runs:
                bold = run is middle
                label = (f"{SIDES[side]}: {run['fanout']['tasks_per_s']:.1f} tasks/s (median of {len(runs)})"
                         if bold else None)
                _steps(ax, run["fanout"]["starts_s"], color=COLOURS[side], lw=2 if bold else 0.8,
                       alpha=1 if bold else 0.4, label=label)
        n = doc[sides[0]]["runs"][0]["fanout"]["tasks"]
        ax.set_title(f"fan-out of {n} tasks, no failure: tasks started")
        ax.set_xlabel("seconds from the first task start")
        ax.set_ylabel("tasks started")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    for ax, (name, i, run) in zip(axes, failures):
        _steps(ax, run["starts_s"], color=COLOURS["lab"], lw=1.5)
        ax.axvline(0, color="tab:red", lw=1.5, label="failure")
        for n, (event, at) in enumerate(sorted(run.get("events_s", {}).items(), key=lambda e: e[1])):
            ax.axvline(at, color=f"C{n + 2}", ls="--", lw=1, label=f"{event} ({at:.0f} s)")
        if run.get("fanout_stall_from_s") is not None:
            start = run["fanout_stall_from_s"]
            ax.axvspan(start, start + run["fanout_stall_s"], color="tab:red", alpha=0.12,
                       label=f"longest stall {run['fanout_stall_s']:.1f} s")
        if run.get("fanout_resumed_s") is not None:
            ax.axvline(run["fanout_resumed_s"], color="black", ls=":", lw=1.5,
                       label=f"throughput back ({run['fanout_resumed_s']:.0f} s)")
        ax.set_title(f"{FAILURE_TITLES[name]} (lab, run {i + 1}): lost {run['fanout_lost']}, "
                     f"run twice {run['fanout_run_twice']}")
        ax.set_xlabel("seconds from the failure")
        ax.set_ylabel("tasks started")
        ax.legend(loc="lower right", fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
