"""Autoscaling drill on the running lab (issue 20, docs/operations.md#autoscaling):
a burst of tasks starts a standby worker through the whole chain, and the idle
queues stop it again.

    .venv/bin/python tools/lab/drill.py autoscale

The compact lab has no spare host, so the drill makes the last worker host a
standby (``standby: true`` in the lab's inventory) for its length, with the
alert windows shortened by a pillar override of the monitoring highstate
(ALERT_WINDOWS); the end puts both back by highstate, also when a step fails.

1. The highstate makes the host's worker a standby (disabled at boot, its
   running state left to the autoscaling), Prometheus probes it (job
   airflow_standby_worker) and Alertmanager routes the autoscale alerts to
   salt-api's webhook on the Salt master's host; orch.autoscale down, run by
   hand, drains and stops it.
2. A fan-out of BURST_TASKS: the Celery queues back up on the one running
   worker, CeleryBacklogHigh fires, Alertmanager calls the webhook, the
   reactor checks the token and runs orch.autoscale up, which starts the
   standby worker, which takes tasks.
3. After the fan-out, the queues are idle: CeleryBacklogIdle fires, and
   orch.autoscale down drains and stops the standby worker.

Figures: from the burst to the alert, to the standby worker started, to its
first task; from the burst's end to the worker stopped. Every task succeeds
once.
"""

import threading
import time

import drill
import drill_throughput
import inventory as lab_inventory
from drill import roles, run

# the one running worker (8 slots) gets through about 100 of them before the standby's first task (~65 s):
# enough backlog to outlast the alert window and leave the standby a share (docs/operations.md#autoscaling)
BURST_TASKS = 200
# seconds in each task (airflow_ha_burst): trivial tasks drain as fast as the schedulers queue them, and the
# fan-out DAG's per-DAG cap (16) keeps the broker's queue short
BURST_TASK_SLEEP = 5
# the drill's alert windows (salt/monitoring/defaults.yaml autoscale: 50 messages for 2m up, 10m idle down)
ALERT_WINDOWS = {"backlog_high": 20, "backlog_for": "30s", "idle_for": "30s"}
HIGHSTATE_TIMEOUT = 900


def _master(inv):
    return next(iter(inv["hosts"]))


def _highstate(inv, hosts, pillar=None):
    """A highstate of ``hosts`` through the master; raises on a failed state."""
    import json

    arg = f" pillar='{json.dumps(pillar)}'" if pillar else ""
    proc = run(_master(inv), f"salt --out=json --static -t {HIGHSTATE_TIMEOUT} -L {','.join(hosts)} "
               f"state.highstate{arg}", check=False, timeout=HIGHSTATE_TIMEOUT + 60)
    result = json.loads(proc.stdout or "{}")
    failed = [f"{host}: {state.get('comment', '')[:300]}" for host, states in result.items()
              for state in (states.values() if isinstance(states, dict) else [{"result": False, "comment": str(states)}])
              if state.get("result") is False]
    if proc.returncode or failed or set(result) != set(hosts):
        raise RuntimeError(f"highstate of {hosts} failed: {failed or proc.stderr[-500:] or sorted(result)}")


def _orchestrate_autoscale(inv, action):
    import json

    proc = run(_master(inv), "salt-run --out=json state.orchestrate orch.autoscale pillar='"
               + json.dumps({"action": action}) + "'", check=False, timeout=HIGHSTATE_TIMEOUT)
    if proc.returncode:
        raise RuntimeError(f"orch.autoscale {action} failed: {proc.stdout[-1500:]}")


def _set_standby(host, standby):
    inv = lab_inventory.load("compact")
    if standby:
        inv["hosts"][host]["standby"] = True
    else:
        inv["hosts"][host].pop("standby", None)
    lab_inventory.save(inv)


def _worker_active(host):
    return run(host, "systemctl is-active airflow-worker", check=False).stdout.strip() == "active"


def _firing(inv, alertname):
    alerts = drill.prometheus_get(inv, 9090, "/api/v1/alerts")["data"]["alerts"]
    return any(a["labels"]["alertname"] == alertname and a["state"] == "firing" for a in alerts)


def _wait(condition, timeout, what, every=2):
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(every)
    raise TimeoutError(f"{what}: not within {timeout} s")


def drill_autoscale(inv):
    workers = roles(inv, "worker")
    standby = workers[-1]
    affected = sorted({standby, _master(inv), *roles(inv, "monitoring"), *roles(inv, "ca")})
    figures = {"standby": standby}
    _set_standby(standby, True)
    try:
        run(_master(inv), "salt '*' saltutil.refresh_pillar", timeout=120)
        _highstate(inv, affected, {"monitoring": {"autoscale": ALERT_WINDOWS}})
        # the highstate neither starts nor stops a standby worker: the autoscaling decides, here by hand
        _orchestrate_autoscale(inv, "down")
        assert not _worker_active(standby), f"{standby}'s worker still runs after orch.autoscale down"
        _wait(lambda: not _firing(inv, "CeleryBacklogIdle"), 120, "no scale-down pending before the burst")

        result = {}
        started = time.monotonic()
        fanout = threading.Thread(target=lambda: result.update(drill_throughput.fanout(
            inv, n=BURST_TASKS, timeout=1800, dag_id="airflow_ha_burst", sleep=BURST_TASK_SLEEP)))
        fanout.start()
        figures["alert_s"] = round(_wait(lambda: _firing(inv, "CeleryBacklogHigh"), 300,
                                         "CeleryBacklogHigh firing after the burst"), 1)
        figures["worker_started_s"] = round(figures["alert_s"] + _wait(
            lambda: _worker_active(standby), 300, f"{standby}'s standby worker started"), 1)
        fanout.join(1800)
        assert result, "the burst's fan-out did not finish"
        finished = time.monotonic()
        figures["burst_wall_s"] = round(finished - started, 1)
        assert result["run_twice"] == 0 and result["unrecorded"] == 0, result
        assert standby in result["hosts"], f"the standby {standby} took none of the burst's tasks: {result['hosts']}"
        figures["first_task_on_standby_s"] = round(_first_start_on(inv, result["run_id"], standby) - _start(
            inv, result["run_id"]), 1)
        figures["worker_stopped_after_burst_s"] = round(_wait(lambda: not _worker_active(standby), 600,
                                                              f"{standby}'s standby worker stopped when idle"), 1)
    finally:
        _set_standby(standby, False)
        run(_master(inv), "salt '*' saltutil.refresh_pillar", timeout=120)
        _highstate(inv, affected)
    assert _worker_active(standby), f"{standby}'s worker is not running again after the drill"
    print(f"FIGURE drill autoscale: {BURST_TASKS}-task burst ({BURST_TASK_SLEEP} s each) with {standby} standby (alert windows "
          f"{ALERT_WINDOWS}): CeleryBacklogHigh firing {figures['alert_s']} s after the burst, the standby "
          f"worker started at {figures['worker_started_s']} s, its first task at {figures['first_task_on_standby_s']} s;"
          f" the burst took {figures['burst_wall_s']} s, every task once; the standby worker stopped "
          f"{figures['worker_stopped_after_burst_s']} s after the burst", flush=True)
    return figures


def _task_instances(inv, run_id):
    airflow_ha, api = drill.airflow_api(inv)
    return [ti for ti in airflow_ha.task_instances("airflow_ha_burst", run_id, **api) if ti.get("start_date")]


def _start(inv, run_id):
    return min(drill_throughput._ts(ti["start_date"]) for ti in _task_instances(inv, run_id))


def _first_start_on(inv, run_id, host):
    return min(drill_throughput._ts(ti["start_date"]) for ti in _task_instances(inv, run_id)
               if (ti.get("hostname") or "").split(".")[0] == host)
