"""The pgbackrest execution module against the real pgBackRest (Debian 12's
2.45) and a real PostgreSQL 15 on a Unix socket of its own: an encrypted
repository, stanza-create, check, a full backup, rows written before and
after a noted time T, a point-in-time recovery to T into a new data
directory, and the restore check of orch.backup_verify (verify_restore).
Runs as the postgres OS user, as on the members and the repository host."""

import os
import pwd
import shutil
import tempfile
import time

import pytest

from clusters.processes import as_postgres

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BIN = "/usr/lib/postgresql/15/bin"
STANZA = "airflow-ha-test"
PORT, RESTORE_PORT, VERIFY_PORT = 55433, 55434, 55435
PASSPHRASE = "test-only-passphrase-0123456789abcdef"


def psql(sock, port, sql, db="postgres"):
    return as_postgres(f"{BIN}/psql", "-X", "-At", "-h", sock, "-p", str(port), "-d", db, "-v", "ON_ERROR_STOP=1",
                       "-c", sql).stdout.strip()


@pytest.fixture(scope="module")
def pg():
    """A PostgreSQL archiving into an encrypted local pgBackRest repository; stopped and removed afterwards."""
    if not shutil.which("pgbackrest") or not os.path.exists(f"{BIN}/initdb"):
        pytest.skip("pgbackrest or PostgreSQL 15 missing: make deps (requirements/apt-test.txt)")
    work = tempfile.mkdtemp(prefix="airflow-ha-pgbackrest-", dir="/var/tmp")
    pw = pwd.getpwnam("postgres")
    for sub in ("repo", "log", "lock", "spool"):
        os.makedirs(os.path.join(work, sub))
    config = os.path.join(work, "pgbackrest.conf")
    data = os.path.join(work, "data")
    with open(config, "w") as f:
        f.write(f"""[global]
repo1-path={work}/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass={PASSPHRASE}
repo1-retention-full=2
repo1-retention-diff=6
compress-type=zst
log-path={work}/log
lock-path={work}/lock
spool-path={work}/spool
log-level-console=warn
log-level-file=detail
start-fast=y
archive-timeout=60

[{STANZA}]
pg1-path={data}
pg1-port={PORT}
pg1-socket-path={work}
""")
    for root, dirs, files in os.walk(work):
        for name in [root] + [os.path.join(root, x) for x in dirs + files]:
            os.chown(name, pw.pw_uid, pw.pw_gid)
    os.chown(config, 0, pw.pw_gid)
    os.chmod(config, 0o640)
    os.chmod(work, 0o700)
    as_postgres(f"{BIN}/initdb", "-D", data, "--data-checksums", "-A", "peer", "-E", "UTF8")
    with open(os.path.join(data, "postgresql.auto.conf"), "a") as f:
        f.write(f"""listen_addresses = ''
port = {PORT}
unix_socket_directories = '{work}'
archive_mode = on
archive_command = 'pgbackrest --config={config} --stanza={STANZA} archive-push %p'
archive_timeout = 60
wal_level = replica
""")
    as_postgres(f"{BIN}/pg_ctl", "start", "-D", data, "-w", "-l", os.path.join(work, "pg.log"))
    try:
        yield {"work": work, "config": config, "data": data}
    finally:
        for d in (data, os.path.join(work, "restored"), os.path.join(work, "verify", "data")):
            if os.path.exists(os.path.join(d, "postmaster.pid")):
                as_postgres(f"{BIN}/pg_ctl", "stop", "-D", d, "-m", "immediate", "-w", check=False)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def pgbr(loaders):
    return loaders.modules.pgbackrest


def test_virtual_refuses_without_the_binary(monkeypatch):
    import _modules.pgbackrest as mod

    monkeypatch.setattr(mod.shutil, "which", lambda name: None)
    ok, reason = mod.__virtual__()
    assert ok is False and "pgbackrest" in reason


def test_stanza_create_check_and_full_backup(pgbr, pg):
    cfg = pg["config"]
    assert pgbr.stanza_exists(STANZA, config=cfg) is False
    pgbr.stanza_create(STANZA, config=cfg)
    assert pgbr.stanza_exists(STANZA, config=cfg) is True
    pgbr.stanza_create(STANZA, config=cfg)  # again: pgBackRest accepts an existing, matching stanza
    assert pgbr.check(STANZA, config=cfg) is True
    assert pgbr.has_backup(STANZA, config=cfg) is False
    new = pgbr.backup(STANZA, type="full", config=cfg)
    assert new["type"] == "full" and new["stop"] >= new["start"] and new["size"] > 0
    status = pgbr.status(STANZA, config=cfg)
    assert status["ok"] and [b["label"] for b in status["backups"]] == [new["label"]]
    # the repository is encrypted: no plain PostgreSQL file name content in the manifest
    manifest = next(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(pg["work"], "repo", "backup"))
                    for f in fs if f == "backup.manifest")
    assert b"pg_data" not in open(manifest, "rb").read()


def test_point_in_time_recovery_to_t_keeps_rows_before_and_none_after(pgbr, pg):
    cfg, sock = pg["config"], pg["work"]
    psql(sock, PORT, "CREATE TABLE drill (id int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    psql(sock, PORT, "INSERT INTO drill (id) SELECT generate_series(1, 100)")
    time.sleep(1.5)
    target = psql(sock, PORT, "SELECT clock_timestamp()")
    time.sleep(1.5)
    psql(sock, PORT, "INSERT INTO drill (id) SELECT generate_series(101, 200)")
    psql(sock, PORT, "DELETE FROM drill WHERE id <= 50")  # the accident
    preflight = pgbr.restore_preflight(STANZA, target, confirm="restore", config=cfg)
    assert preflight["wal_flushed"] is True  # check switched and archived the WAL holding T
    restored = os.path.join(pg["work"], "restored")
    took = pgbr.restore(STANZA, target_time=target, pg_path=restored, delta=False, config=cfg)
    assert took >= 0
    elapsed = pgbr.recover_standalone(restored, BIN, RESTORE_PORT, socket_dir=sock, keep_running=True)
    try:
        ids = psql(sock, RESTORE_PORT, "SELECT min(id), max(id), count(*) FROM drill")
        assert ids == "1|100|100", ids
        assert psql(sock, RESTORE_PORT, "SELECT pg_is_in_recovery()") == "f"
        # the recovery settings pgBackRest wrote are gone from postgresql.auto.conf
        auto = open(os.path.join(restored, "postgresql.auto.conf")).read()
        assert "recovery_target_time" not in auto and "restore_command" not in auto
    finally:
        as_postgres(f"{BIN}/pg_ctl", "stop", "-D", restored, "-m", "fast", "-w", check=False)
    assert elapsed >= 0


def test_preflight_refuses_without_confirmation_outside_the_window_and_without_a_zone(pgbr, pg):
    from salt.exceptions import CommandExecutionError

    cfg = pg["config"]
    with pytest.raises(CommandExecutionError, match="confirm: restore"):
        pgbr.restore_preflight(STANZA, "2030-01-01 00:00:00+00", confirm=None, config=cfg)
    with pytest.raises(CommandExecutionError, match="before the end of the oldest backup"):
        pgbr.restore_preflight(STANZA, "2000-01-01 00:00:00+00", confirm="restore", config=cfg, flush=False)
    with pytest.raises(CommandExecutionError, match="in the future"):
        pgbr.restore_preflight(STANZA, "2999-01-01 00:00:00+00", confirm="restore", config=cfg, flush=False)
    with pytest.raises(CommandExecutionError, match="no time zone"):
        pgbr.restore_preflight(STANZA, "2026-01-01 00:00:00", confirm="restore", config=cfg, flush=False)


def test_diff_backup_verify_restore_and_metrics(pgbr, pg, tmp_path):
    cfg = pg["config"]
    diff = pgbr.backup(STANZA, type="diff", config=cfg)
    assert diff["type"] == "diff"
    verify_dir = os.path.join(pg["work"], "verify")
    os.makedirs(verify_dir)
    pw = pwd.getpwnam("postgres")
    os.chown(verify_dir, pw.pw_uid, pw.pw_gid)
    out = pgbr.verify_restore(STANZA, BIN, scratch_dir=verify_dir, port=VERIFY_PORT, pg_hosts=1,
                              query="SELECT count(*) FROM drill", config=cfg)
    assert out["backup"] == diff["label"] and int(out["answer"]) == 150  # every WAL to the end of the archive
    assert not os.path.exists(os.path.join(verify_dir, "data"))  # removed afterwards
    prom = tmp_path / "airflow_ha_backup.prom"
    pgbr.write_metrics(STANZA, str(prom), repo_path=os.path.join(pg["work"], "repo"), config=cfg)
    text = prom.read_text()
    assert f'airflow_ha_backup_last_success_timestamp_seconds{{stanza="{STANZA}"}} {diff["stop"]}' in text
    assert "airflow_ha_backup_repository_free_bytes" in text and "airflow_ha_backup_count" in text
    assert PASSPHRASE not in text


def test_a_failing_command_raises_with_pgbackrests_message(pgbr, pg):
    from salt.exceptions import CommandExecutionError

    with pytest.raises(CommandExecutionError, match="stanza-create|check") as exc:
        pgbr.check("no-such-stanza", config=pg["config"])
    assert PASSPHRASE not in str(exc.value)
