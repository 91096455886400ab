"""make bench: what the HA cluster costs and what it buys, in figures.

    make bench                                          # everything (the lab must be up: make lab)
    .venv/bin/python tools/bench/bench.py --single-only # the single-host Airflow only, no lab needed
    .venv/bin/python tools/bench/bench.py --lab-only --no-failures
    .venv/bin/python tools/bench/bench.py --runs 5 --update-docs
    make bench BENCH_ARGS=--single-only                 # options through make

A figure tool, not a test: it prints figures and fails only when it cannot
measure them. Three parts, run one after the other (they share this
machine's cores: never at once):

1. The single-host Airflow (``--single-only`` runs this part alone): the
   pinned Airflow 3 venv (/var/cache/airflow-ha/pin3, make deps) with the
   LocalExecutor on a scratch PostgreSQL 15, scheduler, DAG processor and
   api-server, all in a temp directory under /var/tmp that is removed at the
   end, on failure and on Ctrl-C too (tools/bench/bench_single.py). Its
   parallelism is the lab's Celery worker slots (worker hosts x
   airflow:worker_concurrency of salt/airflow/defaults.yaml: 2 x 8 = 16 in
   the compact topology), so both run as many tasks at once; it prints what
   it used.
2. The lab, healthy (``--lab-only`` skips part 1): the same DAGs through the
   VIP, as the throughput drill runs them (tools/lab/drill.py throughput).
3. The lab under failure (``--no-failures`` skips it): the partition drills'
   continuous writer and a fan-out across a kill of the Patroni leader's
   host, and a fan-out across a stop of the RabbitMQ node leading the Celery
   queue (tools/bench/bench_lab.py says what each measures).
4. PgBouncer (``--no-pgbouncer`` skips it): PostgreSQL's server connections
   at a fan-out's peak, as the lab runs (no PgBouncer), then with PgBouncer
   switched on by a highstate, then switched off again
   (tools/bench/bench_pgbouncer.py; about 10 minutes).

The DAGs are salt/dags/airflow_ha_bench.py's: ``airflow_ha_fanout`` (``--n``
mapped trivial tasks, 200 by default) and ``airflow_ha_chain`` (20 tasks one
after the other). The figures are tools/lab/drill_throughput.py's, on both
sides: fan-out throughput = tasks / (last task end - first task start);
chain latency = the gap from one task's end to the next one's start, p50
and p95 (nearest rank) over the 19 gaps; queued-to-start wait p50; tasks run
twice from the executions log every task appends to. Under failure: the
stall = the longest time no fan-out task started; tasks lost = tasks that
never succeeded; the writer's acknowledged commits, those lost, and the
longest time between two acknowledged commits.

Each figure is the median of ``--runs`` runs (3; one warm-up fan-out before
them is not counted) or ``--failure-runs`` (1) for the failures; the table
shows median (min-max) and lab / single host:

    figure                        lab                 single host       lab / single
    ----------------------------  ------------------  ----------------  ------------
    fan-out throughput (tasks/s)  <median (min-max)>  1.26 (0.95-1.30)  <ratio>x
    ...

Output: the tables on stdout; .lab/bench/bench-<time>.json and latest.json
(schema: bench_figures.document), the chart .lab/bench/bench-<time>.png and
latest.png: tasks started over time, healthy and across each failure. With
``--update-docs`` the chart is copied to docs/images/bench.png. (make
lab-destroy removes .lab: keep what you want from it.)

Exit status: 0; 1 when a part failed (the JSON still holds the others and
the error); 2 when a part cannot run here: without a running lab (no
container, a container stopped, the API through the VIP not healthy) the lab
part stops before anything starts, saying what is missing; 130 on Ctrl-C.
"""

import argparse
import json
import shutil
import signal
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tools"), str(REPO / "tools" / "lab"), str(REPO / "tools" / "bench")]

import drill  # noqa: E402  (tools/lab/drill.py)
import drill_throughput  # noqa: E402
import bench_chart  # noqa: E402
import bench_figures  # noqa: E402
import bench_lab  # noqa: E402
import bench_measure  # noqa: E402
import bench_pgbouncer  # noqa: E402
import bench_single  # noqa: E402

OUT = REPO / ".lab" / "bench"
DOCS_IMAGE = REPO / "docs" / "images" / "bench.png"
WARMUP_N = 20


class CannotRun(RuntimeError):
    pass


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--single-only", action="store_true", help="the single-host Airflow only (no lab needed)")
    only.add_argument("--lab-only", action="store_true", help="the lab only")
    parser.add_argument("--no-failures", action="store_true", help="skip the failure runs on the lab")
    parser.add_argument("--no-pgbouncer", action="store_true", help="skip the PgBouncer part on the lab")
    parser.add_argument("--runs", type=int, default=3, help="runs of the fan-out and chain on each side (3)")
    parser.add_argument("--failure-runs", type=int, default=1, help="runs of each failure (1)")
    parser.add_argument("--n", type=int, default=bench_measure.MEASURE_N, help="fan-out size (200)")
    parser.add_argument("--broker-hold", type=int, default=bench_lab.BROKER_HOLD_S,
                        help="seconds the RabbitMQ node stays stopped (30)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON and PNG go (.lab/bench)")
    parser.add_argument("--update-docs", action="store_true", help="copy the chart to docs/images/bench.png")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.failure_runs < 1 or args.n < 1:
        parser.error("--runs, --failure-runs and --n must be at least 1")
    return args


def measure(inv, side, runs, n):
    """One warm-up fan-out, then ``runs`` runs of the fan-out and the chain: {"runs", "summary"}."""
    started = time.monotonic()
    drill_throughput.fanout(inv, n=WARMUP_N)
    print(f"{side}: warm-up fan-out of {WARMUP_N} done in {time.monotonic() - started:.0f} s (not counted)",
          flush=True)
    done = [bench_measure.one_run(inv, f"bench {side} {i}/{runs}", n) for i in range(1, runs + 1)]
    return {"runs": done, "summary": bench_figures.summaries(done)}


def single_host(args, slots):
    found = bench_single.problems()
    if found:
        raise CannotRun("the single-host Airflow cannot run here: " + "; ".join(found))
    parallelism = min(slots["slots"], slots["parallelism"])
    print(f"single host: Airflow {bench_single.pinned_version()} ({bench_single.venv()}), LocalExecutor, "
          f"parallelism {parallelism} = the lab's worker slots ({slots['workers']} workers x worker_concurrency "
          f"{slots['worker_concurrency']}; its schedulers' parallelism {slots['parallelism']}), scratch "
          f"PostgreSQL 15; starting (db migrate, scheduler, DAG processor, api-server)", flush=True)
    with bench_single.LocalAirflow(parallelism) as local, bench_single.pointed_at(local) as inv:
        print(f"single host: up at {local.url} (db migrate {local.timings['db_migrate_s']} s, components ready "
              f"{local.timings['ready_s']} s, the execution API's first answer "
              f"{local.timings['execution_api_first_call_s']} s), work directory {local.workdir}", flush=True)
        result = measure(inv, "single host", args.runs, args.n)
        result.update(settings=local.settings(), timings=dict(local.timings))
    return result


def lab_healthy(inv, args, slots):
    print(f"lab: {len(inv['hosts'])} hosts, {slots['workers']} workers x worker_concurrency "
          f"{slots['worker_concurrency']} = {slots['slots']} worker slots, API {drill.api_base(inv)[0]}", flush=True)
    result = measure(inv, "lab", args.runs, args.n)
    result["settings"] = dict(slots, hosts=sorted(inv["hosts"]))
    return result


def lab_failures(inv, args, errors):
    """Each scenario ``--failure-runs`` times; one that fails is reported and the next one still runs."""
    results = {}
    for name, scenario in bench_lab.SCENARIOS.items():
        extra = {"hold": args.broker_hold} if name == "broker_stop" else {}
        runs = []
        for _ in range(args.failure_runs):
            try:
                runs.append(scenario(inv, args.n, **extra))
            except Exception as exc:  # noqa: BLE001 - written with the figures
                traceback.print_exc()
                errors.append(f"failures {name}: {type(exc).__name__}: {exc}")
        if runs:
            results[name] = {"runs": runs, "summary": bench_figures.failure_summaries(runs, name)}
    return results


def sigterm_as_interrupt(*_):
    raise KeyboardInterrupt  # so that every `with` and `finally` stops what it started


def write_outputs(doc, out, update_docs):
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    png = out / f"bench-{stamp}.png"
    try:
        if bench_chart.draw(doc, png):
            doc["chart"] = str(png)
            shutil.copy(png, out / "latest.png")
    except Exception as exc:  # noqa: BLE001 - the figures matter more than their picture
        doc["errors"].append(f"chart: {exc}")
    text = json.dumps(doc, indent=1, default=str) + "\n"
    (out / f"bench-{stamp}.json").write_text(text)
    (out / "latest.json").write_text(text)
    print(f"\nwritten: {out / f'bench-{stamp}.json'} (and latest.json)"
          + (f", chart {png} (and latest.png)" if doc["chart"] else ", no chart"))
    if update_docs and doc["chart"]:
        DOCS_IMAGE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(png, DOCS_IMAGE)
        print(f"copied the chart to {DOCS_IMAGE.relative_to(REPO)}")


def main(argv=None):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, sigterm_as_interrupt)
    started = time.time()
    parts, errors = {}, []
    try:
        # the lab first answers, or nothing runs: a missing lab is known before the single host's minutes
        inv = None if args.single_only else bench_lab.connect()
        slots = bench_lab.worker_slots(inv or drill.inventory())
        steps = []
        if not args.lab_only:
            steps.append(("single_host", lambda: single_host(args, slots)))
        if not args.single_only:
            steps.append(("lab", lambda: lab_healthy(inv, args, slots)))
            if not args.no_failures:
                steps.append(("failures", lambda: lab_failures(inv, args, errors)))
            if not args.no_pgbouncer:
                steps.append(("pgbouncer", lambda: bench_pgbouncer.measure(inv, args.n)))
        for name, step in steps:
            try:
                parts[name] = step()
            except (CannotRun, bench_lab.LabNotUp):
                raise
            except Exception as exc:  # noqa: BLE001 - the other parts still run and are written
                traceback.print_exc()
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
    except (CannotRun, bench_lab.LabNotUp) as exc:
        print(f"make bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("make bench: interrupted; what it started is stopped, nothing written", file=sys.stderr)
        return 130
    doc = bench_figures.document(started, time.time(), sys.argv[1:] if argv is None else argv,
                                 lab=parts.get("lab"), single=parts.get("single_host"),
                                 failures=parts.get("failures"), errors=errors, pgbouncer=parts.get("pgbouncer"))
    print("\nLatency and throughput (median (min-max) of "
          f"{args.runs} run(s); fan-out of {args.n} tasks, chain of 20)")
    print(bench_figures.table((doc["lab"] or {}).get("summary"), (doc["single_host"] or {}).get("summary")))
    if doc["failures"]:
        print("\nUnder failure (lab)")
        print(bench_figures.failure_table(doc["failures"]))
    if doc["pgbouncer"]:
        print("\nPostgreSQL server connections of role airflow (lab), through a fan-out")
        print(bench_figures.pgbouncer_table(doc["pgbouncer"]))
    write_outputs(doc, args.out, args.update_docs)
    for error in errors:
        print(f"make bench: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
