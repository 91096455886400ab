"""Day-2 drill on the running lab (issue 20, docs/operations.md): the rolling
restart and a rolling reboot while short DAG runs go on.

    .venv/bin/python tools/lab/drill.py day2

1. A stream: the smoke DAG triggered every STREAM_EVERY_S seconds through the
   VIP, from before the first orchestrate until after the last. A trigger the
   API refuses in the moment (an api-server going down behind HAProxy) is
   counted, not retried: every run that was created must succeed.
2. ``salt-run state.orchestrate orch.airflow_rolling_restart`` on the master:
   host by host, the worker drained, the components restarted, the host's
   jobs, its worker and the API through the VIP waited for.
3. ``salt-run state.orchestrate orch.rolling_reboot`` with pillar ``hosts``:
   one Airflow host and one database host that is not the master's (the
   Patroni leader when it is such a host, so the switchover runs). Each host
   is rebooted, comes back on a new boot, and the whole cluster is healthy
   before the next.

Figures: each orchestrate's seconds, the stream's runs, failed tries (a task
instance whose try_number passed 1) and failed runs, refused triggers, and
the longest scheduling gap (the longest time between two consecutive task
starts of the stream while the orchestrates ran).
"""

import time

import drill
import drill_dags
from drill import airflow_api, roles
from drill_throughput import _ts
from repeating import Repeating

STREAM_EVERY_S = 5
STREAM_DAG = "airflow_ha_smoke"
FINISH_TIMEOUT_S = 600


class Stream(Repeating):
    """The smoke DAG triggered every STREAM_EVERY_S s in a thread for as long as the ``with`` block runs."""

    every = STREAM_EVERY_S

    def __init__(self, inv):
        super().__init__("day2-stream")
        self.inv, self.run_ids, self.refused = inv, [], []
        self.airflow_ha, self.api = airflow_api(inv)

    def step(self):
        try:
            self.run_ids.append(self.airflow_ha.trigger_dag(STREAM_DAG, conf={"drill": "day2"}, **self.api))
        except Exception as exc:  # noqa: BLE001 - a figure: the API refused in the moment
            self.refused.append(f"{time.strftime('%H:%M:%S')} {str(exc)[:160]}")


def outcome(inv, run_ids):
    """Wait for every run; (failed runs, failed tries, task start times)."""
    airflow_ha, api = airflow_api(inv)
    failed_runs, failed_tries, starts = [], [], []
    for run_id in run_ids:
        try:
            airflow_ha.wait_dag_run(STREAM_DAG, run_id, timeout=FINISH_TIMEOUT_S, interval=2, **api)
        except Exception as exc:  # noqa: BLE001 - a failed run is the drill's finding
            failed_runs.append(f"{run_id}: {str(exc)[:200]}")
        for ti in airflow_ha.task_instances(STREAM_DAG, run_id, **api):
            if (ti.get("try_number") or 1) > 1:
                failed_tries.append(f"{run_id} {ti['task_id']} try {ti['try_number']} on {ti.get('hostname')}")
            if ti.get("start_date"):
                starts.append(_ts(ti["start_date"]))
    return failed_runs, failed_tries, sorted(starts)


def reboot_hosts(inv, master):
    """One Airflow host that is not the master's, and one database host that is not either (the Patroni
    leader when it is such a host)."""
    airflow = [h for h in roles(inv, "worker") if h != master]
    members = [h for h in roles(inv, "postgres") if h != master]
    leader = drill.patroni_leader(inv, roles(inv, "postgres")[0])
    database = leader if leader in members else members[0]
    return [airflow[-1], database], leader


def drill_day2(inv):
    master = next(iter(inv["hosts"]))
    hosts, leader = reboot_hosts(inv, master)
    figures = {"reboot_hosts": hosts, "leader_before": leader}
    started = time.time()
    with Stream(inv) as stream:
        time.sleep(STREAM_EVERY_S * 2)
        ok, seconds, data = drill_dags.orchestrate(master, "orch.airflow_rolling_restart")
        assert ok, f"orch.airflow_rolling_restart failed: {drill_dags.failed_states(data) or data}"
        figures["rolling_restart_s"] = round(seconds)
        ok, seconds, data = drill_dags.orchestrate(master, "orch.rolling_reboot", {"hosts": hosts})
        assert ok, f"orch.rolling_reboot {hosts} failed: {drill_dags.failed_states(data) or data}"
        figures["rolling_reboot_s"] = round(seconds)
        time.sleep(STREAM_EVERY_S * 2)
    ended = time.time()
    failed_runs, failed_tries, starts = outcome(inv, stream.run_ids)
    window = [s for s in starts if started <= s <= ended + FINISH_TIMEOUT_S]
    gap = max((b - a for a, b in zip(window, window[1:])), default=None)
    figures.update(runs=len(stream.run_ids), failed_runs=failed_runs, failed_tries=failed_tries,
                   refused_triggers=stream.refused, longest_scheduling_gap_s=round(gap, 1) if gap else None,
                   leader_after=drill.patroni_leader(inv, roles(inv, "postgres")[0]))
    print(f"FIGURE drill day2: orch.airflow_rolling_restart {figures['rolling_restart_s']} s, orch.rolling_reboot "
          f"of {'+'.join(hosts)} {figures['rolling_reboot_s']} s (Patroni leader {leader} -> "
          f"{figures['leader_after']}); a smoke run every {STREAM_EVERY_S} s: {len(stream.run_ids)} runs, "
          f"{len(failed_runs)} failed, {len(failed_tries)} failed tries, {len(stream.refused)} triggers refused, "
          f"longest scheduling gap {figures['longest_scheduling_gap_s']} s", flush=True)
    return figures
