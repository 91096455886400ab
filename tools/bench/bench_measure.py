"""Measured runs of the bench DAGs (salt/dags/airflow_ha_bench.py) through the
drills' own code, tools/lab/drill_throughput.py: on the lab as the drills run
them, or on the single-host Airflow once bench_single.pointed_at() aims that
code there. Adds what the bench needs beyond the drills' figures: the fan-out's
task start times (the chart) and a fan-out running in the background while a
failure is injected."""

import inspect
import threading
import time
import urllib.parse

import drill_throughput
from bench_figures import fanout_across, ts

FANOUT, CHAIN = "airflow_ha_fanout", "airflow_ha_chain"
# the fan-out size drill_throughput.measure runs (its fanout()'s default): read, not repeated
MEASURE_N = inspect.signature(drill_throughput.fanout).parameters["n"].default


def task_instances(inv, dag_id, run_id):
    airflow_ha, api = drill_throughput.airflow_api(inv)
    return airflow_ha.task_instances(dag_id, run_id, **api)


def work_starts(inv, run_id):
    """Start times (epoch) of the fan-out's mapped tasks, from the REST API."""
    return sorted(ts(ti["start_date"]) for ti in task_instances(inv, FANOUT, run_id)
                  if ti["task_id"] == "work" and ti.get("start_date"))


def one_run(inv, label, n=MEASURE_N):
    """Fan-out of ``n`` tasks and the 20-task chain once, as the throughput drill measures them (its FIGURE
    line printed); plus the fan-out's start times relative to its first start."""
    if n == MEASURE_N:
        result = drill_throughput.measure(inv, label)
    else:  # measure() runs the default size only
        result = {"fanout": drill_throughput.fanout(inv, n=n), "chain": drill_throughput.chain(inv)}
        print(f"FIGURE throughput {label}: fan-out {n} tasks at {result['fanout']['tasks_per_s']:.1f} tasks/s; "
              f"chain gap p50 {result['chain']['gap_p50_s']:.2f} s p95 {result['chain']['gap_p95_s']:.2f} s",
              flush=True)
    starts = work_starts(inv, result["fanout"]["run_id"])
    result["fanout"]["starts_s"] = [round(s - starts[0], 2) for s in starts]
    return result


def latest_run_id(inv, dag_id):
    """The newest run of ``dag_id`` (REST API): the fan-out's run when fanout() raised before returning it."""
    airflow_ha, api = drill_throughput.airflow_api(inv)
    auth = airflow_ha._auth(api["url"], "admin", api["password"], 3, api["ca_file"])
    path = f"/api/v2/dags/{urllib.parse.quote(dag_id, safe='')}/dagRuns?order_by=-run_after&limit=1"
    runs = airflow_ha._api("GET", api["url"], path, auth, ca_file=api["ca_file"])["dag_runs"]
    return runs[0]["dag_run_id"] if runs else None


def ended(inv, run_id):
    """True once the fan-out's run is over (success or failed)."""
    airflow_ha, api = drill_throughput.airflow_api(inv)
    return airflow_ha.dag_run(FANOUT, run_id, **api)["state"] in ("success", "failed")


def through_outage(ask, timeout, interval=2):
    """The first truthy answer of ``ask()``. While the database fails over the API answers 5xx or not at all,
    which says nothing about the run; the run's own outcome is what the figures count."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = ask()
            if answer:
                return answer
            problem = "no answer yet"
        except Exception as exc:  # noqa: BLE001 - an API in the failure's outage
            problem = str(exc)[:300]
        if time.monotonic() >= deadline:
            raise TimeoutError(f"still {problem} after {timeout} s")
        time.sleep(interval)


class BackgroundFanout:
    """drill_throughput.fanout() in a thread, so that a failure can be injected while it runs; a fan-out
    that fails (tasks lost) is a figure here, not the end of the bench."""

    def __init__(self, inv, n):
        self.inv, self.n = inv, n
        self.result = self.error = None
        # daemon: Ctrl-C ends the bench without waiting for the fan-out
        self.thread = threading.Thread(target=self._run, name="bench-fanout", daemon=True)

    def _run(self):
        try:
            self.result = drill_throughput.fanout(self.inv, n=self.n)
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            self.error = exc

    def start(self):
        self.triggered = time.time()
        self.thread.start()
        return self

    def finish(self, timeout, origin):
        """Wait for the fan-out; its figures across the failure at ``origin`` (epoch)."""
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the fan-out across the failure did not end within {timeout} s")
        if self.result:
            run_id = self.result["run_id"]
        else:  # the drills' wait gave up on an answer of the API in the failure: the run goes on regardless
            run_id = through_outage(lambda: latest_run_id(self.inv, FANOUT), timeout)
            through_outage(lambda: ended(self.inv, run_id), timeout)
        figures = fanout_across(task_instances(self.inv, FANOUT, run_id),
                                drill_throughput.executions(self.inv, run_id), self.n, origin)
        figures.update(run_id=run_id, error=str(self.error)[:500] if self.error else None,
                       triggered_s=round(self.triggered - origin, 2))
        return figures
