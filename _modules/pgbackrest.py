#!/usr/bin/python3
"""
Drive pgBackRest: the backups, WAL archive and point-in-time recovery of the
Patroni cluster (salt/backup). Reads are ``pgbackrest --output=json info``;
every command runs as the PostgreSQL OS user (``runas``), with the settings
of ``/etc/pgbackrest/pgbackrest.conf``: the repository passphrase stays in
that file (0640 root:postgres) and never reaches a command line or a log.

The same file is the metrics writer of the backup timers: run as a script
(``/usr/local/sbin/airflow-ha-backup-metrics``, without Salt) it writes the
``airflow_ha_backup_*`` series into node_exporter's textfile directory.

CLI Example:

.. code-block:: bash

    salt-call pgbackrest.info stanza=airflow-ha
    salt-call pgbackrest.check stanza=airflow-ha
    salt-call pgbackrest.backup stanza=airflow-ha type=diff
    salt-call pgbackrest.restore_preflight stanza=airflow-ha target_time='2026-12-02 03:00:00+00' confirm=restore
"""

import datetime
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

try:
    from salt.exceptions import CommandExecutionError
except ImportError:  # run as a script by the backup timers, where Salt may not be importable

    class CommandExecutionError(Exception):
        pass


__virtualname__ = "pgbackrest"

BINARY = "pgbackrest"
DEFAULT_CONFIG = "/etc/pgbackrest/pgbackrest.conf"
DEFAULT_USER = "postgres"
# pgBackRest's `info` status codes (0: ok) and what they mean for an operator
STATUS_OK = 0
CONFIRM_WORD = "restore"
METRIC_PREFIX = "airflow_ha_backup"


def __virtual__():
    if not shutil.which(BINARY):
        return (False, "pgbackrest is not on PATH (the backup state installs the pgbackrest package)")
    return __virtualname__


# ------------------------------------------------------------------ running pgbackrest


def command(args, stanza=None, config=None):
    """The argument list of one pgbackrest call (no secret is ever part of it)."""
    cmd = [BINARY, f"--config={config or DEFAULT_CONFIG}"]
    if stanza:
        cmd.append(f"--stanza={stanza}")
    return cmd + list(args)


def _run_all(cmd, runas=None, timeout=None):
    """``cmd.run_all`` on a minion; a plain subprocess when run as a script (no Salt loader)."""
    salt_funcs = globals().get("__salt__") or {}
    if "cmd.run_all" in salt_funcs:
        kwargs = {"python_shell": False, "ignore_retcode": True, "output_loglevel": "quiet"}
        if runas:
            kwargs["runas"] = runas
        if timeout:
            kwargs["timeout"] = timeout
        return salt_funcs["cmd.run_all"](cmd, **kwargs)
    if runas and os.geteuid() == 0 and runas != "root":
        cmd = ["runuser", "-u", runas, "--"] + list(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def _pgbackrest(args, stanza=None, config=None, runas=DEFAULT_USER, timeout=None):
    cmd = command(args, stanza, config)
    ret = _run_all(cmd, runas=runas, timeout=timeout)
    if ret["retcode"] != 0:
        detail = (ret.get("stderr") or ret.get("stdout") or "").strip()
        raise CommandExecutionError(
            f"pgbackrest {' '.join(cmd[2:])} failed (exit {ret['retcode']}): {detail[-1500:]}")
    return ret.get("stdout") or ""


# ------------------------------------------------------------------ plain functions (no Salt needed)


def stanza_of(info_json, stanza):
    """The entry of ``stanza`` in ``pgbackrest --output=json info`` (a list), or raise naming the stanza."""
    for entry in info_json or []:
        if entry.get("name") == stanza:
            return entry
    raise CommandExecutionError(
        f"stanza {stanza!r} is not in the repository: run the backup state (stanza-create) or check backup:stanza")


def summarize(entry):
    """One stanza of ``info`` in a short shape: status, the backups (oldest first) and the WAL range."""
    backups = []
    for b in entry.get("backup") or []:
        ts = b.get("timestamp") or {}
        info = b.get("info") or {}
        repo = info.get("repository") or {}
        backups.append({
            "label": b.get("label"),
            "type": b.get("type"),
            "start": ts.get("start"),
            "stop": ts.get("stop"),
            "duration_s": (ts.get("stop") or 0) - (ts.get("start") or 0),
            "size": info.get("size"),
            "repo_size": repo.get("delta") if b.get("type") != "full" else repo.get("size"),
            "repo_total_size": repo.get("size"),
            "wal_start": (b.get("archive") or {}).get("start"),
            "wal_stop": (b.get("archive") or {}).get("stop"),
            "error": bool(b.get("error")),
            # pgBackRest >= 2.41: the backup's --annotation pairs (JSON info always shows them)
            "annotation": b.get("annotation") or {},
        })
    backups.sort(key=lambda b: b["stop"] or 0)
    status = entry.get("status") or {}
    archives = entry.get("archive") or []
    return {
        "stanza": entry.get("name"),
        "status_code": status.get("code"),
        "status": status.get("message"),
        "ok": status.get("code") == STATUS_OK,
        "backups": backups,
        "wal_min": min((a.get("min") for a in archives if a.get("min")), default=None),
        "wal_max": max((a.get("max") for a in archives if a.get("max")), default=None),
    }


def parse_time(value):
    """A target time (ISO 8601 / PostgreSQL timestamptz text, or epoch seconds) as an aware datetime.
    A time without zone is refused: PostgreSQL would read it in the server's zone."""
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    # PostgreSQL prints +00 (no minutes): fromisoformat of Python 3.11 reads it, older ones need +00:00
    if len(text) > 3 and text[-3] in "+-" and text[-2:].isdigit() and ":" not in text[-6:]:
        text += ":00"
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise CommandExecutionError(
            f"target_time {value!r} is not a time: give ISO 8601 with a zone, e.g. 2026-12-02 03:00:00+00") from None
    if parsed.tzinfo is None:
        raise CommandExecutionError(
            f"target_time {value!r} has no time zone: add one (e.g. +00), PostgreSQL would read it in its own zone")
    return parsed


def recovery_window(summary, now=None):
    """(earliest, latest) epoch seconds a point-in-time recovery can reach: from the end of the oldest
    successful backup to now (the WAL archive continues it up to the last archived segment)."""
    good = [b for b in summary["backups"] if not b["error"] and b["stop"]]
    if not good:
        return None, None
    return good[0]["stop"], now if now is not None else time.time()


def target_problems(summary, target, now=None):
    """Why ``target`` (a datetime) cannot be recovered to from this stanza (empty: it can)."""
    problems = []
    if not summary["ok"]:
        problems.append(f"stanza {summary['stanza']}: {summary['status']} (code {summary['status_code']})")
    earliest, latest = recovery_window(summary, now)
    if earliest is None:
        problems.append(f"stanza {summary['stanza']} has no successful backup to restore from")
        return problems
    ts = target.timestamp()

    def fmt(seconds):
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S+00")

    if ts < earliest:
        problems.append(f"target_time {fmt(ts)} is before the end of the oldest backup ({fmt(earliest)}): "
                        f"the backups cover {fmt(earliest)} .. now")
    if ts > latest:
        problems.append(f"target_time {fmt(ts)} is in the future (now {fmt(latest)})")
    return problems


def metrics_text(summary, free_bytes=None, fs_size_bytes=None, now=None):
    """The Prometheus text of one stanza: the last successful backup (per type and overall), its duration
    and size, the backup count, the stanza's status, and the repository file system's free and total bytes."""
    name = summary["stanza"]
    lines = []

    def metric(metric_name, help_text, samples, kind="gauge"):
        lines.append(f"# HELP {METRIC_PREFIX}_{metric_name} {help_text}")
        lines.append(f"# TYPE {METRIC_PREFIX}_{metric_name} {kind}")
        for labels, value in samples:
            label_text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            lines.append(f"{METRIC_PREFIX}_{metric_name}{{{label_text}}} {value}")

    good = [b for b in summary["backups"] if not b["error"] and b["stop"]]
    if good:
        last = good[-1]
        metric("last_success_timestamp_seconds", "End of the newest successful backup (any type).",
               [({"stanza": name}, last["stop"])])
        per_type = {}
        for b in good:
            per_type[b["type"]] = b
        metric("last_success_by_type_timestamp_seconds", "End of the newest successful backup of each type.",
               [({"stanza": name, "type": t}, b["stop"]) for t, b in sorted(per_type.items())])
        metric("last_duration_seconds", "Duration of the newest successful backup.",
               [({"stanza": name, "type": last["type"]}, last["duration_s"])])
        metric("last_size_bytes", "Database size of the newest successful backup.",
               [({"stanza": name, "type": last["type"]}, last["size"] or 0)])
        metric("last_repository_bytes", "Repository bytes the newest successful backup added.",
               [({"stanza": name, "type": last["type"]}, last["repo_size"] or 0)])
    metric("count", "Successful backups held in the repository.", [({"stanza": name}, len(good))])
    metric("stanza_ok", "1 when pgbackrest info reports the stanza ok.", [({"stanza": name}, int(summary["ok"]))])
    if free_bytes is not None:
        metric("repository_free_bytes", "Free bytes of the repository's file system.",
               [({"stanza": name}, free_bytes)])
    if fs_size_bytes is not None:
        metric("repository_filesystem_size_bytes", "Size of the repository's file system.",
               [({"stanza": name}, fs_size_bytes)])
    metric("metrics_timestamp_seconds", "When these metrics were written.",
           [({"stanza": name}, int(now if now is not None else time.time()))])
    return "\n".join(lines) + "\n"


def write_atomically(path, text, mode=0o644):
    """``text`` into ``path`` by a rename (node_exporter never reads half a file)."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".backup-metrics.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ------------------------------------------------------------------ salt-facing functions


def info(stanza=None, config=None, runas=DEFAULT_USER):
    """
    ``pgbackrest --output=json info``: every stanza, or ``stanza`` only, as pgBackRest gives it.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.info stanza=airflow-ha
    """
    out = _pgbackrest(["--output=json", "info"], stanza, config, runas)
    try:
        return json.loads(out or "[]")
    except ValueError as exc:
        raise CommandExecutionError(f"pgbackrest info gave no JSON: {exc}: {out[:200]}") from None


def status(stanza, config=None, runas=DEFAULT_USER):
    """
    The stanza's status, its backups (oldest first: label, type, start, stop, sizes) and WAL range.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.status airflow-ha
    """
    return summarize(stanza_of(info(stanza, config, runas), stanza))


def stanza_exists(stanza, config=None, runas=DEFAULT_USER):
    """
    True when the repository has ``stanza`` (created; status ok or only missing backups).

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.stanza_exists airflow-ha
    """
    try:
        entry = stanza_of(info(stanza, config, runas), stanza)
    except CommandExecutionError:
        return False
    # 1: missing stanza path; 3: missing stanza data
    return (entry.get("status") or {}).get("code") not in (1, 3)


def _annotated(backup, annotation):
    """True when ``backup`` (a summary) carries every key/value pair of ``annotation``."""
    have = backup.get("annotation") or {}
    return all(str(have.get(str(k))) == str(v) for k, v in (annotation or {}).items())


def has_backup(stanza, config=None, runas=DEFAULT_USER, annotation=None):
    """
    True when the stanza holds at least one successful backup (with
    ``annotation``, a mapping: one carrying each of its pairs, e.g.
    ``{"airflow-upgrade": "3.3.2"}``, the backup orch.airflow_upgrade takes).

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.has_backup airflow-ha
        salt-call pgbackrest.has_backup airflow-ha annotation='{"airflow-upgrade": "3.3.2"}'
    """
    try:
        return any(not b["error"] and _annotated(b, annotation) for b in status(stanza, config, runas)["backups"])
    except CommandExecutionError:
        return False


def stanza_create(stanza, config=None, runas=DEFAULT_USER, timeout=600):
    """
    Create the stanza in the repository (pgBackRest: idempotent when it exists and matches the cluster).

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.stanza_create airflow-ha
    """
    return _pgbackrest(["stanza-create"], stanza, config, runas, timeout).strip()


def check(stanza, config=None, runas=DEFAULT_USER, timeout=600):
    """
    ``pgbackrest check``: the repository and every member answer, and a WAL switch reaches the archive
    (so archiving works); raises with pgBackRest's message otherwise.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.check airflow-ha
    """
    _pgbackrest(["check"], stanza, config, runas, timeout)
    return True


def backup(stanza, type="full", config=None, runas=DEFAULT_USER, timeout=6 * 3600,  # noqa: A002 - pgBackRest's word
           annotation=None):
    """
    One backup (``type`` full, diff or incr) from the repository host; returns the new backup's summary
    (label, type, start, stop, duration_s, size, repo_size). ``annotation``: key/value pairs the backup
    carries (``--annotation``, pgBackRest >= 2.41).

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.backup airflow-ha type=diff
        salt-call pgbackrest.backup airflow-ha annotation='{"airflow-upgrade": "3.3.2"}'
    """
    if type not in ("full", "diff", "incr"):
        raise CommandExecutionError(f"backup type {type!r}: use full, diff or incr")
    if annotation is not None and not isinstance(annotation, dict):
        raise CommandExecutionError(f"annotation {annotation!r}: give a mapping of key: value")
    before = {b["label"] for b in status(stanza, config, runas)["backups"]} if stanza_exists(stanza, config, runas) \
        else set()
    notes = [f"--annotation={k}={v}" for k, v in sorted((annotation or {}).items())]
    _pgbackrest([f"--type={type}", *notes, "backup"], stanza, config, runas, timeout)
    new = [b for b in status(stanza, config, runas)["backups"] if b["label"] not in before]
    if not new:
        raise CommandExecutionError(f"pgbackrest backup ended without a new backup in stanza {stanza}")
    return new[-1]


def restore(stanza, target_time=None, target_action="promote", delta=True, pg_path=None, set_label=None,
            extra_args=None, config=None, runas=DEFAULT_USER, timeout=6 * 3600):
    """
    ``pgbackrest restore`` into ``pg_path`` (default: pg1-path of the config): the latest backup and all
    archived WAL, or with ``target_time`` a point-in-time recovery (``--type=time``) ending with
    ``target_action`` (promote). PostgreSQL must be stopped there. Returns the seconds it took.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.restore airflow-ha target_time='2026-12-02 03:00:00+00'
    """
    args = []
    if target_time is not None:
        target = parse_time(target_time)
        args += ["--type=time", f"--target={target.isoformat(sep=' ')}", f"--target-action={target_action}"]
    if delta:
        args.append("--delta")
    if pg_path:
        args.append(f"--pg1-path={pg_path}")
    if set_label:
        args.append(f"--set={set_label}")
    args += list(extra_args or [])
    started = time.monotonic()
    _pgbackrest(args + ["restore"], stanza, config, runas, timeout)
    return round(time.monotonic() - started, 1)


def restore_preflight(stanza, target_time, confirm=None, config=None, runas=DEFAULT_USER, flush=True):
    """
    Everything a point-in-time recovery of the cluster needs, checked before anything stops: the
    confirmation word (``confirm=restore``), a readable repository with the stanza ok, ``target_time``
    inside the backups' range. With ``flush``, ``pgbackrest check`` then switches the leader's WAL so the
    archive holds every commit up to now (skipped, and said so, when the cluster cannot answer). Raises
    naming the problem; returns the target, the window and whether the WAL was flushed.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.restore_preflight airflow-ha '2026-12-02 03:00:00+00' confirm=restore
    """
    if confirm != CONFIRM_WORD:
        raise CommandExecutionError(
            f"refusing to restore: a point-in-time recovery stops Airflow and replaces the whole database; "
            f"pass pillar confirm: {CONFIRM_WORD} to confirm (given: {confirm!r})")
    target = parse_time(target_time)
    summary = status(stanza, config, runas)  # raises when the repository cannot be read
    problems = target_problems(summary, target)
    if problems:
        raise CommandExecutionError("refusing to restore: " + "; ".join(problems))
    flushed, flush_error = False, None
    if flush:
        try:
            flushed = check(stanza, config, runas)
        except CommandExecutionError as exc:
            flush_error = str(exc)[:500]
    earliest, latest = recovery_window(summary)
    return {"target_time": target.isoformat(sep=" "), "earliest": earliest, "latest": latest,
            "backups": len(summary["backups"]), "wal_flushed": flushed, "flush_error": flush_error}


def _pg_ctl(bin_dir, args, runas, timeout=None):
    cmd = [os.path.join(bin_dir, "pg_ctl")] + list(args)
    ret = _run_all(cmd, runas=runas, timeout=timeout)
    return ret


def _psql(bin_dir, socket_dir, port, sql, runas, database="postgres"):
    cmd = [os.path.join(bin_dir, "psql"), "-X", "-At", "-h", socket_dir, "-p", str(port), "-d", database,
           "-v", "ON_ERROR_STOP=1", "-c", sql]
    ret = _run_all(cmd, runas=runas, timeout=60)
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"psql {sql!r} failed: {(ret.get('stderr') or '').strip()[-500:]}")
    return (ret.get("stdout") or "").strip()


PATRONI_CONFIGS = ("/etc/patroni/config.yml", "/etc/patroni/patroni.yml")
BIN_DIR_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin")


def find_bin_dir():
    """PostgreSQL's binaries on this host: the newest version of Debian's or PGDG's layout."""
    found = [d for pattern in BIN_DIR_GLOBS for d in glob.glob(pattern) if os.path.exists(os.path.join(d, "pg_ctl"))]
    if not found:
        raise CommandExecutionError(f"no PostgreSQL binaries (pg_ctl) in {' or '.join(BIN_DIR_GLOBS)}: pass bin_dir")

    def version(path):
        digits = re.findall(r"\d+", path)
        return int(digits[0]) if digits else 0

    return max(found, key=version)


def patroni_paths(patroni_config=None):
    """(data_dir, bin_dir, port) of this member from its Patroni config (Debian's or RedHat's path)."""
    import yaml

    paths = [patroni_config] if patroni_config else [p for p in PATRONI_CONFIGS if os.path.exists(p)]
    if not paths or not os.path.exists(paths[0]):
        raise CommandExecutionError(f"no Patroni config at {patroni_config or ' or '.join(PATRONI_CONFIGS)}")
    with open(paths[0]) as f:
        pg = (yaml.safe_load(f) or {}).get("postgresql") or {}
    port = int(str(pg.get("connect_address") or pg.get("listen") or ":5432").rsplit(":", 1)[1])
    return pg.get("data_dir"), pg.get("bin_dir"), port


def wipe_data_dir(patroni_config=None):
    """
    Delete this member's data directory (from its Patroni config) so that Patroni clones it again from the
    leader: orch.restore's replicas. Refuses while a PostgreSQL runs on it. Returns the path.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.wipe_data_dir
    """
    data_dir, _, _ = patroni_paths(patroni_config)
    if not data_dir or data_dir.rstrip("/") in ("", "/", "/var", "/var/lib"):
        raise CommandExecutionError(f"refusing to delete data directory {data_dir!r}")
    pidfile = os.path.join(data_dir, "postmaster.pid")
    if os.path.exists(pidfile):
        with open(pidfile) as f:
            pid = int((f.readline() or "0").strip() or 0)
        if pid and os.path.exists(f"/proc/{pid}"):
            raise CommandExecutionError(f"PostgreSQL (pid {pid}) still runs on {data_dir}: stop Patroni first")
    shutil.rmtree(data_dir, ignore_errors=True)
    if os.path.exists(data_dir):
        raise CommandExecutionError(f"could not delete {data_dir}")
    return data_dir


RECOVERY_SETTINGS = ("restore_command", "recovery_target_time", "recovery_target_action", "recovery_target",
                     "recovery_target_lsn", "recovery_target_name", "recovery_target_xid", "recovery_target_timeline")


def recover_standalone(data_dir=None, bin_dir=None, port=None, socket_dir="/var/run/postgresql", runas=DEFAULT_USER,
                       timeout=3600, options=(), keep_running=False, patroni_config=None):
    """
    Start PostgreSQL by itself (``pg_ctl``, no TCP listener: ``listen_addresses=''``) on a data directory
    pgBackRest restored, wait until recovery reached its target and promoted, reset the recovery settings
    pgBackRest left in postgresql.auto.conf (a later standby of that data directory would stop at the old
    target), and stop it cleanly unless ``keep_running``. Raises with the server log's end when recovery
    fails (e.g. the WAL ends before the target). Returns the seconds recovery took. ``data_dir``,
    ``bin_dir`` and ``port`` default to the member's Patroni config.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.recover_standalone
        salt-call pgbackrest.recover_standalone /var/lib/postgresql/15/patroni /usr/lib/postgresql/15/bin 5432
    """
    if data_dir is None or bin_dir is None or port is None:
        conf_data, conf_bin, conf_port = patroni_paths(patroni_config)
        data_dir, bin_dir, port = data_dir or conf_data, bin_dir or conf_bin, port or conf_port
    log = os.path.join(data_dir, "airflow-ha-recovery.log")
    # the configuration files of the data directory, whichever member's Patroni wrote its postgresql.conf
    opts = " ".join(["-c listen_addresses=''", f"-c port={int(port)}", f"-c unix_socket_directories={socket_dir}",
                     f"-c hba_file={data_dir}/pg_hba.conf", f"-c ident_file={data_dir}/pg_ident.conf", *options])
    started = time.monotonic()
    ret = _pg_ctl(bin_dir, ["start", "-D", data_dir, "-w", "-t", str(int(timeout)), "-l", log, "-o", opts], runas,
                  timeout=timeout + 30)

    def log_tail():
        try:
            with open(log) as f:
                return f.read()[-1500:]
        except OSError:
            return "(no log)"

    if ret["retcode"] != 0:
        raise CommandExecutionError(f"PostgreSQL did not start on the restored {data_dir}: {log_tail()}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if _psql(bin_dir, socket_dir, port, "SELECT pg_is_in_recovery()", runas) == "f":
                    break
            except CommandExecutionError:
                if _pg_ctl(bin_dir, ["status", "-D", data_dir], runas)["retcode"] != 0:
                    raise CommandExecutionError(f"recovery of {data_dir} failed: {log_tail()}") from None
            if time.monotonic() > deadline:
                raise CommandExecutionError(f"recovery of {data_dir} not done after {timeout} s: {log_tail()}")
            time.sleep(1)
        elapsed = round(time.monotonic() - started, 1)
        for setting in RECOVERY_SETTINGS:
            _psql(bin_dir, socket_dir, port, f"ALTER SYSTEM RESET {setting}", runas)
    except BaseException:
        _pg_ctl(bin_dir, ["stop", "-D", data_dir, "-m", "immediate", "-w"], runas)
        raise
    if not keep_running:
        stop = _pg_ctl(bin_dir, ["stop", "-D", data_dir, "-m", "fast", "-w", "-t", "300"], runas)
        if stop["retcode"] != 0:
            raise CommandExecutionError(f"PostgreSQL on {data_dir} did not stop: {stop.get('stderr')}")
    return elapsed


def verify_restore(stanza, bin_dir=None, scratch_dir="/var/lib/pgbackrest-verify", port=5499, database="postgres",
                   query="SELECT count(*) FROM pg_catalog.pg_class", pg_hosts=3, config=None, runas=DEFAULT_USER,
                   timeout=3600):
    """
    Prove the latest backup restores: restore it and replay the WAL to the end of the archive into
    ``scratch_dir`` on this host, start a throwaway PostgreSQL there on ``port`` (Unix socket in the
    scratch directory only, no TLS, no archiving), run ``query`` in ``database``, stop it and delete the
    directory, whatever happened. Returns the backup restored, the query's answer and the timings.
    ``bin_dir``: PostgreSQL's binaries (default: the newest installed).

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.verify_restore airflow-ha database=airflow
    """
    bin_dir = bin_dir or find_bin_dir()
    summary = status(stanza, config, runas)
    good = [b for b in summary["backups"] if not b["error"]]
    if not good:
        raise CommandExecutionError(f"stanza {stanza} has no successful backup to verify")
    data_dir = os.path.join(scratch_dir, "data")
    socket_dir = scratch_dir
    ret = _run_all(["rm", "-rf", data_dir], runas=runas)
    if ret["retcode"] != 0:
        raise CommandExecutionError(f"cannot clear {data_dir}: {ret.get('stderr')}")
    # the repository host's config names the members as pg1..pgN hosts: restore here instead
    resets = [f"--reset-pg{i}-host" for i in range(1, int(pg_hosts) + 1)]
    try:
        restore_s = restore(stanza, pg_path=data_dir, delta=False, extra_args=resets + ["--archive-mode=off"],
                            config=config, runas=runas, timeout=timeout)
        # Patroni's postgresql.conf names the members' files: point them into the scratch directory
        options = ["-c ssl=off", "-c archive_mode=off", "-c logging_collector=off", "-c hot_standby=on"]
        recovery_s = recover_standalone(data_dir, bin_dir, port, socket_dir, runas, timeout, options,
                                        keep_running=True)
        answer = _psql(bin_dir, socket_dir, port, query, runas, database)
    finally:
        _pg_ctl(bin_dir, ["stop", "-D", data_dir, "-m", "immediate", "-w"], runas)
        _run_all(["rm", "-rf", data_dir], runas=runas)
    last = good[-1]
    return {"backup": last["label"], "type": last["type"], "backup_stop": last["stop"], "restore_s": restore_s,
            "recovery_s": recovery_s, "database": database, "answer": answer}


def write_metrics(stanza, path, repo_path=None, config=None, runas=DEFAULT_USER):
    """
    Write the stanza's ``airflow_ha_backup_*`` series (see :py:func:`metrics_text`) into ``path`` (a
    ``.prom`` file of node_exporter's textfile directory), with the free space of ``repo_path``.

    CLI Example:

    .. code-block:: bash

        salt-call pgbackrest.write_metrics airflow-ha /var/lib/prometheus/node-exporter/airflow_ha_backup.prom
    """
    summary = status(stanza, config, runas)
    free = size = None
    if repo_path:
        st = os.statvfs(repo_path)
        free, size = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    write_atomically(path, metrics_text(summary, free, size))
    return path


def main(argv=None):
    """The backup timers' metrics writer: ``airflow-ha-backup-metrics STANZA PROM_FILE REPO_PATH [CONFIG]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) not in (3, 4):
        print(main.__doc__, file=sys.stderr)
        return 2
    stanza, path, repo_path = argv[:3]
    config = argv[3] if len(argv) == 4 else None
    try:
        write_metrics(stanza, path, repo_path, config)
    except CommandExecutionError as exc:
        print(f"airflow-ha-backup-metrics: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
