"""Task logs outlive their worker (issue 22, drill 2; docs/logs.md):

    .venv/bin/python tools/lab/drill.py task_logs

Runs the smoke DAG, whose task prints its run id, and finds the worker host
that ran it. Before anything fails, that host's task log file and the copy
beside the same path on every other api-server host (``<path>.copy``:
rsyslog, salt/logs) must be the same bytes.
Then the worker host dies (its container killed, as the leader drill does),
and the task's log is read through the REST API on the VIP, served by an
api-server on another host: it must hold the task's line with the run id.
The host is started again and the drill waits for its units.

Prints ``FIGURE drill task_logs: ...`` with the copy's delay and the time
from the kill to the log read through the surviving api-server.
"""

import shlex
import subprocess
import time
import urllib.parse

import yaml

import drill as d

DAG, TASK = "airflow_ha_smoke", "report_host"
LOGS = "/opt/airflow/logs"
COPY = yaml.safe_load((d.REPO / "salt" / "logs" / "defaults.yaml").read_text())["task_logs"]["copy_suffix"]


def log_path(dag_id, run_id, task_id, try_number):
    """The file below base_log_folder of a try (Airflow's default log_filename_template, no map index)."""
    return f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/attempt={try_number}.log"


def file_digest(host, path):
    """sha256 and size of ``path`` on ``host``, or None when it is missing."""
    proc = d.run(host, f"test -f {shlex.quote(path)} && sha256sum {shlex.quote(path)} && stat -c %s "
                       f"{shlex.quote(path)}", check=False)
    if proc.returncode:
        return None
    lines = proc.stdout.split("\n")
    return lines[0].split()[0], int(lines[1])


def task_log_text(inv, dag_id, run_id, task_id, try_number):
    """The events of a try's log as the REST API serves them (Airflow 3), joined one per line."""
    airflow_ha, api = d.airflow_api(inv)
    auth = airflow_ha._auth(api["url"], "admin", api["password"], 3, api["ca_file"])
    quote = lambda s: urllib.parse.quote(s, safe="")  # noqa: E731
    path = (f"/api/v2/dags/{quote(dag_id)}/dagRuns/{quote(run_id)}/taskInstances/{quote(task_id)}/logs/"
            f"{try_number}?full_content=true")
    data = airflow_ha._api("GET", api["url"], path, auth, ca_file=api["ca_file"])
    content = data.get("content", []) if isinstance(data, dict) else []
    return "\n".join(item.get("event", "") if isinstance(item, dict) else str(item) for item in content)


def units_settled(host):
    """No start job left on ``host`` and no airflow-* unit failed or still starting (the lab's containers
    always have a failed unit or two of hardware services, so not ``is-system-running``)."""
    proc = d.run(host, "systemctl list-jobs --no-legend; systemctl list-units 'airflow-*' --no-legend --plain "
                       "--state=failed,activating,deactivating,reloading", check=False)
    return proc.returncode == 0 and proc.stdout.strip() == ""


def first_answer(call, timeout, what):
    """``call()``'s first non-empty answer within ``timeout`` s (the VIP may still be moving to a survivor);
    the last error, if it never answers."""
    deadline, error = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            answer = call()
            if answer:
                return answer
        except Exception as exc:  # noqa: BLE001  (HTTP 5xx and resets while HAProxy marks the host down)
            error = exc
        time.sleep(1)
    raise TimeoutError(f"{what}: no answer within {timeout} s (last error: {error})")


def drill_task_logs(inv):
    run_ = d.smoke(inv)
    assert run_["state"] == "success", run_
    airflow_ha, api = d.airflow_api(inv)
    run_id = run_["run_id"]
    ti = airflow_ha.dag_run(DAG, run_id, **api)["tasks"][TASK]
    worker = ti["hostname"].split(".")[0]
    rel = log_path(DAG, run_id, TASK, ti["try_number"])
    marker = f"for run {run_id}"
    others = [h for h in d.roles(inv, "webserver") if h != worker]
    assert others, f"no api-server host besides {worker}: nothing could serve its logs once it is gone"
    original = file_digest(worker, f"{LOGS}/{rel}")
    assert original, f"{worker}: no task log {LOGS}/{rel}"

    def copies_equal():
        return all(file_digest(h, f"{LOGS}/{rel}{COPY}") == original for h in others)

    copy_delay = d.wait(copies_equal, 60, f"the copies of {rel} on {others} equal to {worker}'s")
    subprocess.run(["lxc-stop", "-k", "-n", d.container(worker)], check=True)  # the worker host dies
    killed = time.monotonic()
    try:
        d.wait(lambda: d.ui_healthy(inv), 120, "the API on the VIP without " + worker)
        text = first_answer(lambda: task_log_text(inv, DAG, run_id, TASK, ti["try_number"]), 120,
                            f"the log of {TASK} through the API")
        read_after = time.monotonic() - killed
        assert marker in text, f"the log of {rel}, served without {worker}, lacks {marker!r}: {text[-500:]!r}"
    finally:
        subprocess.run(["lxc-start", "-n", d.container(worker)], check=True)
    d.wait(lambda: d.running(worker), 60, f"{worker} back")
    d.wait(lambda: units_settled(worker), 300, f"the start jobs of {worker} done, its Airflow units active")
    if worker in d.roles(inv, "webserver"):  # its api-server takes ~50 s to listen after its unit started
        health = f"http://127.0.0.1:{d.port('webserver', 'api-server')}/api/v2/monitor/health"
        d.wait(lambda: d.run(worker, f"curl -sf -o /dev/null -m 5 {health}", check=False).returncode == 0, 300,
               f"the api-server of {worker} answering")
    print(f"FIGURE drill task_logs: {TASK} ran on {worker}; its log copied to {', '.join(others)} within "
          f"{copy_delay:.1f} s (same sha256, {original[1]} bytes); {worker} killed, the log read through the VIP "
          f"{read_after:.0f} s later, its run id line in it", flush=True)
    return {"worker": worker, "copied_to": others, "copy_delay_s": copy_delay, "read_after_s": read_after,
            "read": marker in text, "bytes": original[1]}
