"""Housekeeping drill on the running lab (issue 20, docs/operations.md):

    .venv/bin/python tools/lab/drill.py housekeeping

- `airflow db clean` (airflow-db-clean.service) started once on the first
  scheduler, the one host that has it (no other scheduler has the unit), and
  it ends with Result=success;
- on every Airflow host the task-log cleanup (airflow-task-log-cleanup.service)
  deletes a log file older than airflow:housekeeping:task_log_days, keeps a
  new one, and ends with Result=success;
- `salt-run state.orchestrate orch.preflight` on the master passes on the
  running cluster (a second bring-up's first step: every port held by its
  own service).

Prints a FIGURE line with what ran and how long it took.
"""

import time

import yaml

from drill import REPO, roles, run

AIRFLOW_ROLES = ("scheduler", "webserver", "dag_processor", "worker", "triggerer", "flower")
LOGS = "/opt/airflow/logs"
PROBE = f"{LOGS}/drill-housekeeping"


def airflow_hosts(inv):
    return sorted({h for role in AIRFLOW_ROLES for h in roles(inv, role)})


def task_log_days():
    """pillar airflow:housekeeping:task_log_days as the lab has it (defaults, then the lab's pillar)."""
    days = yaml.safe_load((REPO / "salt/airflow/defaults.yaml").read_text())["housekeeping"]["task_log_days"]
    lab = REPO / ".lab" / "pillar" / "lab.sls"
    if lab.exists():
        days = (((yaml.safe_load(lab.read_text()) or {}).get("airflow") or {}).get("housekeeping") or {}).get(
            "task_log_days", days)
    return int(days)


def run_oneshot(host, unit, timeout):
    """systemctl start of a oneshot unit (returns when it has run): (Result, seconds, the journal's tail)."""
    started = time.monotonic()
    proc = run(host, f"systemctl start {unit}", check=False, timeout=timeout)
    seconds = time.monotonic() - started
    result = run(host, f"systemctl show -p Result --value {unit}", check=False).stdout.strip()
    journal = ""
    if proc.returncode or result != "success":
        journal = run(host, f"journalctl -u {unit} -n 30 --no-pager", check=False).stdout
        journal += proc.stderr
    return result, seconds, journal


def minion_errors(data):
    """The minions' error returns in an orchestrate's JSON (preflight.check raises with each problem)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and ("preflight of " in node or node.startswith("ERROR")):
            found.append(node)

    walk(data)
    return found


def drill_housekeeping(inv):
    import drill_dags

    schedulers = sorted(roles(inv, "scheduler"))
    clean_host = schedulers[0]
    has_unit = [h for h in schedulers
                if run(h, "systemctl cat airflow-db-clean.service >/dev/null 2>&1", check=False).returncode == 0]
    assert has_unit == [clean_host], (f"airflow-db-clean.service must be on the first scheduler {clean_host} "
                                      f"only, it is on {has_unit}")
    result, clean_s, journal = run_oneshot(clean_host, "airflow-db-clean.service", timeout=3600)
    assert result == "success", f"airflow-db-clean.service on {clean_host}: Result={result}\n{journal[-3000:]}"

    days = task_log_days()
    cleanup = {}
    for host in airflow_hosts(inv):
        run(host, f"install -d -o airflow -g airflow {PROBE} && "
                  f"runuser -u airflow -- touch -d '{days + 2} days ago' {PROBE}/old.log && "
                  f"runuser -u airflow -- touch {PROBE}/new.log")
        result, seconds, journal = run_oneshot(host, "airflow-task-log-cleanup.service", timeout=900)
        left = run(host, f"ls {PROBE}", check=False).stdout.split()
        run(host, f"rm -rf {PROBE}", check=False)
        assert result == "success", f"airflow-task-log-cleanup.service on {host}: Result={result}\n{journal[-3000:]}"
        assert left == ["new.log"], f"{host}: after the task-log cleanup {PROBE} holds {left}, want only new.log"
        cleanup[host] = round(seconds, 1)

    master = next(iter(inv["hosts"]))
    ok, preflight_s, data = drill_dags.orchestrate(master, "orch.preflight")
    assert ok, (f"orch.preflight on the running lab failed: {drill_dags.failed_states(data)}; "
                f"the hosts' problems: {minion_errors(data) or str(data)[-3000:]}")

    print(f"FIGURE drill housekeeping: airflow db clean on {clean_host} (the one host with the timer) "
          f"Result=success in {clean_s:.1f} s; task-log cleanup ({days} days) on {len(cleanup)} hosts "
          f"{', '.join(f'{h} {s} s' for h, s in cleanup.items())}, old file deleted and new kept; "
          f"orch.preflight on the running cluster passed in {preflight_s:.0f} s", flush=True)
    return {"db_clean_host": clean_host, "db_clean_s": clean_s, "task_log_cleanup_s": cleanup,
            "preflight_s": preflight_s}
