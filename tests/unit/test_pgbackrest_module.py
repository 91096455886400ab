"""The pgbackrest module's parsing and decisions with pgbackrest stubbed
(`pgbackrest --output=json info` of 2.45), and patroni.remove_cluster's
answers to patronictl. The real program: tests/postgres/test_pgbackrest.py."""

import datetime
import json
import os

import pytest
from salt.exceptions import CommandExecutionError

import _modules.patroni as patroni
import _modules.pgbackrest as pgbackrest

INFO = [{
    "name": "airflow-ha",
    "status": {"code": 0, "message": "ok", "lock": {"backup": {"held": False}}},
    "cipher": "aes-256-cbc",
    "archive": [{"id": "15-1", "min": "000000010000000000000003", "max": "00000002000000000000000A"}],
    "backup": [
        {"label": "20261201-011500F_20261202-011500D", "type": "diff", "error": False,
         "timestamp": {"start": 1764638100, "stop": 1764638130},
         "info": {"size": 50000000, "delta": 2000000, "repository": {"size": 9000000, "delta": 400000}},
         "archive": {"start": "000000020000000000000008", "stop": "000000020000000000000008"}},
        {"label": "20261201-011500F", "type": "full", "error": False,
         "timestamp": {"start": 1764551700, "stop": 1764551760},
         "info": {"size": 48000000, "delta": 48000000, "repository": {"size": 8800000, "delta": 8800000}},
         "archive": {"start": "000000010000000000000005", "stop": "000000010000000000000005"}},
    ],
}]


@pytest.fixture
def configure_loader_modules():
    return {pgbackrest: {"__salt__": {}}, patroni: {"__salt__": {}, "__grains__": {"id": "db1"}}}


def stub(stdout="", retcode=0, stderr=""):
    calls = []

    def run_all(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return {"retcode": retcode, "stdout": stdout, "stderr": stderr}

    pgbackrest.__salt__["cmd.run_all"] = run_all
    return calls


def test_summary_sorts_backups_and_reads_sizes():
    summary = pgbackrest.summarize(pgbackrest.stanza_of(INFO, "airflow-ha"))
    assert summary["ok"] and [b["type"] for b in summary["backups"]] == ["full", "diff"]
    assert summary["backups"][0]["duration_s"] == 60 and summary["backups"][1]["repo_size"] == 400000
    assert summary["wal_max"] == "00000002000000000000000A"


def test_unknown_stanza_names_the_pillar_key():
    with pytest.raises(CommandExecutionError, match="backup:stanza"):
        pgbackrest.stanza_of(INFO, "other")


def test_info_runs_as_postgres_without_any_secret_on_the_command_line():
    calls = stub(json.dumps(INFO))
    assert pgbackrest.status("airflow-ha")["backups"][-1]["label"] == "20261201-011500F_20261202-011500D"
    cmd, kwargs = calls[0]
    assert cmd == ["pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=airflow-ha", "--output=json",
                   "info"]
    assert kwargs["runas"] == "postgres" and kwargs["python_shell"] is False and kwargs["output_loglevel"] == "quiet"


def test_failure_raises_with_pgbackrests_message():
    stub(retcode=82, stderr="ERROR: [082]: WAL segment 000000010000000000000009 was not archived before the timeout")
    with pytest.raises(CommandExecutionError, match="exit 82.*not archived"):
        pgbackrest.check("airflow-ha")


def test_restore_arguments_of_a_point_in_time_recovery():
    calls = stub()
    pgbackrest.restore("airflow-ha", target_time="2026-12-02 03:00:00+00")
    assert calls[0][0][3:] == ["--type=time", "--target=2026-12-02 03:00:00+00:00", "--target-action=promote",
                               "--delta", "restore"]


@pytest.mark.parametrize("text, expected", [
    ("2026-12-02 03:00:00+00", "2026-12-02T03:00:00+00:00"),
    ("2026-12-02T03:00:00.123456+01:00", "2026-12-02T03:00:00.123456+01:00"),
    ("2026-12-02 03:00:00Z", "2026-12-02T03:00:00+00:00"),
    (int(datetime.datetime(2026, 12, 2, 3, tzinfo=datetime.timezone.utc).timestamp()), "2026-12-02T03:00:00+00:00"),
])
def test_target_times(text, expected):
    assert pgbackrest.parse_time(text).isoformat() == expected


@pytest.mark.parametrize("text, message", [("2026-12-02 03:00:00", "no time zone"), ("yesterday", "not a time")])
def test_bad_target_times(text, message):
    with pytest.raises(CommandExecutionError, match=message):
        pgbackrest.parse_time(text)


def test_target_window():
    summary = pgbackrest.summarize(INFO[0])
    now = 1764700000
    at = lambda s: datetime.datetime.fromtimestamp(s, datetime.timezone.utc)  # noqa: E731
    assert pgbackrest.target_problems(summary, at(1764600000), now) == []
    assert "before the end of the oldest backup" in pgbackrest.target_problems(summary, at(1764551700), now)[0]
    assert "in the future" in pgbackrest.target_problems(summary, at(now + 60), now)[0]
    broken = dict(summary, ok=False, status="missing stanza path", status_code=1)
    assert "missing stanza path" in pgbackrest.target_problems(broken, at(1764600000), now)[0]
    empty = dict(summary, backups=[])
    assert "no successful backup" in pgbackrest.target_problems(empty, at(1764600000), now)[0]


def test_preflight_refuses_without_the_confirmation_word_before_asking_pgbackrest():
    calls = stub(json.dumps(INFO))
    with pytest.raises(CommandExecutionError, match="confirm: restore"):
        pgbackrest.restore_preflight("airflow-ha", "2026-12-02 03:00:00+00", confirm="yes")
    assert calls == []


def test_metrics_carry_the_series_the_alert_rules_read():
    text = pgbackrest.metrics_text(pgbackrest.summarize(INFO[0]), free_bytes=10, fs_size_bytes=100, now=1)
    assert 'airflow_ha_backup_last_success_timestamp_seconds{stanza="airflow-ha"} 1764638130' in text
    by_type = "airflow_ha_backup_last_success_by_type_timestamp_seconds"
    assert by_type + '{stanza="airflow-ha",type="full"} 1764551760' in text
    assert 'airflow_ha_backup_repository_free_bytes{stanza="airflow-ha"} 10' in text
    assert 'airflow_ha_backup_repository_filesystem_size_bytes{stanza="airflow-ha"} 100' in text
    assert "airflow_ha_backup_stanza_ok" in text and text.endswith("\n")


def test_the_rules_use_the_series_the_module_writes():
    from tests.helpers.inventory import REPO

    rules = (REPO / "salt" / "monitoring" / "files" / "alert_rules.yml.jinja").read_text()
    text = pgbackrest.metrics_text(pgbackrest.summarize(INFO[0]), free_bytes=10, fs_size_bytes=100, now=1)
    for series in ("airflow_ha_backup_last_success_timestamp_seconds", "airflow_ha_backup_repository_free_bytes",
                   "airflow_ha_backup_repository_filesystem_size_bytes"):
        assert series in rules and f"{series}{{" in text


def test_remove_cluster_answers_both_confirmations(tmp_path):
    config = tmp_path / "patroni.yml"
    config.write_text("scope: airflow-ha\n")
    calls = []

    def run_all(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return {"retcode": 0, "stdout": "[]" if "list" in cmd else "", "stderr": ""}

    patroni.__salt__["cmd.run_all"] = run_all
    assert patroni.remove_cluster(config=str(config)) is True
    cmd, kwargs = calls[-1]
    assert cmd == ["patronictl", "-c", str(config), "remove", "airflow-ha"]
    assert kwargs["stdin"] == "airflow-ha\nYes I am aware\n"


def test_remove_cluster_refuses_while_a_member_runs(tmp_path):
    config = tmp_path / "patroni.yml"
    config.write_text("scope: airflow-ha\n")
    rows = [{"Member": "db1", "Host": "10.0.0.1", "Role": "Leader", "State": "running", "TL": 3}]
    patroni.__salt__["cmd.run_all"] = lambda cmd, **kw: {"retcode": 0, "stdout": json.dumps(rows), "stderr": ""}
    with pytest.raises(CommandExecutionError, match="still running: db1"):
        patroni.remove_cluster(config=str(config))


def test_member_paths_come_from_the_patroni_config(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("postgresql:\n  data_dir: /var/lib/pgsql/16/patroni\n  bin_dir: /usr/pgsql-16/bin\n"
                      "  connect_address: 10.0.0.1:5433\n")
    assert pgbackrest.patroni_paths(str(config)) == ("/var/lib/pgsql/16/patroni", "/usr/pgsql-16/bin", 5433)


def test_wipe_data_dir_deletes_a_stopped_members_directory_only(tmp_path):
    data = tmp_path / "data"
    (data / "base").mkdir(parents=True)
    config = tmp_path / "config.yml"
    config.write_text(f"postgresql:\n  data_dir: {data}\n  listen: 127.0.0.1:5432\n")
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n")  # a live process: refused
    with pytest.raises(CommandExecutionError, match="still runs"):
        pgbackrest.wipe_data_dir(str(config))
    (data / "postmaster.pid").write_text("999999999\n")  # a stale pid file
    assert pgbackrest.wipe_data_dir(str(config)) == str(data) and not data.exists()
    config.write_text("postgresql:\n  data_dir: /var/lib\n")
    with pytest.raises(CommandExecutionError, match="refusing"):
        pgbackrest.wipe_data_dir(str(config))


def test_the_newest_postgresql_binaries_are_found(monkeypatch):
    dirs = {"/usr/lib/postgresql/*/bin": ["/usr/lib/postgresql/13/bin", "/usr/lib/postgresql/15/bin"],
            "/usr/pgsql-*/bin": []}
    monkeypatch.setattr(pgbackrest.glob, "glob", lambda pattern: dirs[pattern])
    monkeypatch.setattr(pgbackrest.os.path, "exists", lambda path: True)
    assert pgbackrest.find_bin_dir() == "/usr/lib/postgresql/15/bin"


def test_backup_carries_its_annotation_and_has_backup_finds_it():
    """orch.airflow_upgrade's backup: --annotation airflow-upgrade=<version>, found again by that pair."""
    annotated = json.loads(json.dumps(INFO))
    annotated[0]["backup"][1]["annotation"] = {"airflow-upgrade": "3.3.2"}
    stub(json.dumps(annotated))
    assert pgbackrest.has_backup("airflow-ha", annotation={"airflow-upgrade": "3.3.2"}) is True
    assert pgbackrest.has_backup("airflow-ha", annotation={"airflow-upgrade": "3.3.3"}) is False
    assert pgbackrest.has_backup("airflow-ha") is True
    assert pgbackrest.status("airflow-ha")["backups"][0]["annotation"] == {"airflow-upgrade": "3.3.2"}
    calls = stub(json.dumps(INFO))
    with pytest.raises(CommandExecutionError, match="without a new backup"):
        pgbackrest.backup("airflow-ha", annotation={"airflow-upgrade": "3.3.2"})
    backup_cmd = next(cmd for cmd, _ in calls if "backup" in cmd)
    assert "--annotation=airflow-upgrade=3.3.2" in backup_cmd and backup_cmd.index("--type=full") < \
        backup_cmd.index("backup")
    with pytest.raises(CommandExecutionError, match="give a mapping"):
        pgbackrest.backup("airflow-ha", annotation="airflow-upgrade=3.3.2")
