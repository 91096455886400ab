"""Day-2 housekeeping as the states render it (issue 20): `airflow db clean`
on the first scheduler only, task-log retention on every Airflow host,
journald's size drop-in on every host, the per-component systemd limits."""

import pytest


def test_db_clean_runs_on_the_first_scheduler_only_with_no_secret_on_its_command_line(compiled_sls):
    first = compiled_sls("af1", "compact", "airflow.housekeeping")
    unit = first["airflow-db-clean-service"]["contents"]
    lines = unit.splitlines()
    assert "EnvironmentFile=/etc/default/airflow" in lines and "User=airflow" in lines
    # the script computes the cut-off at run time; the DB URL comes from the env file
    assert "ExecStart=/opt/airflow/bin/airflow-ha-db-clean /opt/airflow/venv 90" in lines
    assert first["airflow-db-clean-script"]["source"] == "salt://airflow/files/airflow-ha-db-clean"
    timer = first["airflow-db-clean-timer"]["contents"].splitlines()
    assert "OnCalendar=*-*-* 03:30:00" in timer and "Persistent=true" in timer
    assert first["airflow-db-clean-timer-running"]["fun"] == "service.running"
    # the other scheduler: no timer (removed if it had one)
    second = compiled_sls("af2", "compact", "airflow.housekeeping")
    assert "airflow-db-clean-service" not in second
    assert second["airflow-db-clean-timer-dead"]["fun"] == "service.dead"
    assert second["airflow-db-clean-units-absent"]["names"] == ["/etc/systemd/system/airflow-db-clean.timer",
                                                                "/etc/systemd/system/airflow-db-clean.service"]
    for compiled in (first, second):
        cleanup = compiled["airflow-task-log-cleanup-service"]["contents"].splitlines()
        assert "ExecStart=/usr/bin/find /opt/airflow/logs -mindepth 1 -type f -mtime +30 -delete" in cleanup
        assert compiled["airflow-task-log-cleanup-timer-running"]["fun"] == "service.running"


def test_the_db_clean_script_cuts_off_at_run_time(tmp_path):
    import subprocess

    from tests.helpers.inventory import REPO

    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "airflow").write_text('#!/bin/sh\necho "$@"\n')
    (venv / "bin" / "airflow").chmod(0o755)
    script = REPO / "salt/airflow/files/airflow-ha-db-clean"
    out = subprocess.run([script, venv, "7"], capture_output=True, text=True, check=True).stdout.splitlines()
    expected = subprocess.run(["date", "-u", "-d", "-7 days", "+%Y-%m-%d"], capture_output=True, text=True).stdout
    assert out[-1].startswith(f"db clean --clean-before-timestamp {expected.strip()}T")
    assert out[-1].endswith("+00:00 --skip-archive --yes")
    bad = subprocess.run([script, venv, "7; id"], capture_output=True, text=True)
    assert bad.returncode == 2 and "DAYS must be whole days" in bad.stderr


def test_journald_is_capped_on_every_host_and_restarted_on_change_only(compiled_sls):
    compiled = compiled_sls("db1", "compact", "base.journald")
    dropin = compiled["base-journald-dropin"]
    assert dropin["name"] == "/etc/systemd/journald.conf.d/airflow-ha.conf"
    assert "SystemMaxUse=500M" in dropin["contents"].splitlines()
    running = compiled["base-journald-running"]
    assert running["name"] == "systemd-journald" and running["watch"] == [{"file": "base-journald-dropin"}]


@pytest.mark.parametrize("name", ["worker", "scheduler"])
def test_component_units_carry_the_limits(render_state_file, name):
    unit = render_state_file("af1", "compact", f"airflow.{name}", f"airflow-{name}-unit").splitlines()
    assert "MemoryMax=infinity" in unit and "LimitNOFILE=65536" in unit and "TasksMax=4096" in unit
    # a component's own limits win over the common ones
    own = render_state_file("af1", "compact", f"airflow.{name}", f"airflow-{name}-unit",
                            limits={"memory_max": "1G", "tasks_max": 512, "nofile": 4096}).splitlines()
    assert "MemoryMax=1G" in own and "LimitNOFILE=4096" in own
