"""Point-in-time recovery drill on the running lab: pgBackRest on the host of
role `backup` (compact: af2), orch.backup_verify and orch.restore.

    .venv/bin/python tools/lab/drill.py restore

1. A differential backup by the repository host's own unit
   (airflow-ha-backup-diff.service, as its timer runs it; pgBackRest makes it a
   full one when the repository has none): it proves the timers' backup finds
   the leader after the earlier drills' failovers, and it puts the newest
   backup just before T, so that the verify and the restore replay minutes of
   WAL, not the whole lab run's. No full backup: make lab's bring-up took it.
2. orch.backup_verify: the latest backup (that one, on top of the full)
   restored into a scratch directory of the repository host and queried by a
   throwaway PostgreSQL.
3. orch.restore without `confirm` must refuse, changing nothing.
4. Through the VIP (HAProxy :5000, Airflow's own DB URL, from an Airflow host)
   rows of phase `before` are committed, the database's clock is read as T,
   rows of phase `after` are committed and half of the `before` rows deleted
   (the accident a restore undoes).
5. orch.restore to T on the master, timed. Afterwards every `before` row must
   be there (the deleted ones back), no `after` row, the cluster healthy on
   every member, writes through the VIP, and orch.restore's last step, the
   smoke DAG, must have succeeded (not run a second time here).

Prints `FIGURE drill restore: ...` with the drill's own duration, the backup's
duration and size, the verify and restore times and the data-loss window
(rows committed before T that are missing: must be 0). Not measured on a lab
yet; estimated 4-6 minutes on the compact lab, most of it orch.restore.
"""

import importlib
import json
import re
import shlex
import time

import drill
import drill_partition
from drill import roles, run, wait

TABLE = "lab_restore"
ROWS = 200

# rows through HAProxy's leader port with Airflow's own DB URL (never printed); ids chosen here
SQL = r"""set -a; . /etc/default/airflow; set +a
/opt/airflow/venv/bin/python - <<'PY'
import json, os, sqlalchemy
url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 5})
out = {}
with engine.begin() as c:
    c.exec_driver_sql("CREATE TABLE IF NOT EXISTS %(table)s (id bigint PRIMARY KEY, phase text, "
                      "at timestamptz DEFAULT clock_timestamp())")
%(body)s
print(json.dumps(out))
PY"""

INSERT = """for i in range(%(first)d, %(first)d + %(count)d):
    with engine.begin() as c:
        c.exec_driver_sql("INSERT INTO %(table)s (id, phase) VALUES (%%s, %%s)", (i, "%(phase)s"))
out["last_commit"] = i"""
NOW = """with engine.begin() as c:
    out["now"] = c.exec_driver_sql(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'").scalar()"""
# only this run's rows (ids from ``base`` on): an earlier run stopped between its `after` rows and its
# restore leaves `after` rows committed before this run's T
DELETE_HALF = """with engine.begin() as c:
    out["deleted"] = c.exec_driver_sql("DELETE FROM %(table)s WHERE phase = 'before' AND mod(id, 2) = 0 "
                                       "AND id >= %(base)d").rowcount"""
PRESENT = """with engine.begin() as c:
    out["rows"] = {p: [r[0] for r in c.exec_driver_sql(
        "SELECT id FROM %(table)s WHERE phase = %%s AND id >= %(base)d ORDER BY id", (p,))]
                   for p in ("before", "after")}"""


def sql(host, body, timeout=300, base=0):
    """One Python run against the database through the VIP, on the Airflow host ``host``; its JSON answer."""
    text = SQL % {"table": TABLE, "body": body % {"table": TABLE, "base": base}}
    out = run(host, text, timeout=timeout).stdout.strip().splitlines()
    return json.loads(out[-1])


def insert(host, phase, first, count=ROWS):
    return sql(host, INSERT.replace("%(first)d", str(first)).replace("%(count)d", str(count))
               .replace("%(phase)s", phase))


def pgbackrest_on(host):
    """The project's pgbackrest module, its commands run in ``host``'s container as the user it asks for."""
    module = importlib.import_module("_modules.pgbackrest")

    def run_all(cmd, runas=None, timeout=None, **_kwargs):
        script = shlex.join(cmd)
        if runas:
            script = f"runuser -u {shlex.quote(runas)} -- {script}"
        proc = run(host, script, check=False, timeout=timeout or 7200)
        return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    module.__salt__ = {"cmd.run_all": run_all}
    return module


def orchestrate(master, sls, pillar=None, timeout=3600):
    """``salt-run state.orchestrate`` on the master: (succeeded, seconds, its whole output)."""
    cmd = f"salt-run state.orchestrate {sls}"
    if pillar is not None:
        cmd += " pillar=" + shlex.quote(json.dumps(pillar))
    started = time.monotonic()
    proc = run(master, cmd, check=False, timeout=timeout)
    took = time.monotonic() - started
    ok = proc.returncode == 0 and bool(re.search(r"Failed:\s+0\n", proc.stdout))
    return ok, took, proc.stdout + proc.stderr


def step_block(out, step_id):
    """The highstate outputter's block of orchestrate step ``step_id`` (up to the next step), or ''."""
    start = out.rfind(f"ID: {step_id}\n")
    if start < 0:
        return ""
    end = out.find("\n----------\n          ID: ", start)
    return out[start:end if end > 0 else len(out)]


def smoke_of(out):
    """orch.restore's smoke DAG step: (state, seconds) from its output (salt-run's highstate outputter,
    state_output changes: a salt.function step has changes, so its block is printed in full)."""
    block = step_block(out, "orch-restore-smoke-dag")
    if not re.search(r"Result:\s+True", block):
        return "not run" if not block else "failed", None
    state = re.search(r"\bstate:\s+(\w+)", block)
    seconds = re.search(r"\bseconds:\s+([\d.]+)", block)
    return (state.group(1) if state else "success"), (float(seconds.group(1)) if seconds else None)


def diff_backup(host, pgbr, stanza_name, timeout=1800):
    """The repository host's differential backup unit, as its timer starts it (User=postgres, its metrics
    after it): the summary of the backup it added (pgBackRest turns it into a full one when there is none)."""
    before = {b["label"] for b in pgbr.status(stanza_name)["backups"]}
    proc = run(host, "systemctl start airflow-ha-backup-diff.service", check=False, timeout=timeout)
    if proc.returncode:
        journal = run(host, "journalctl -u airflow-ha-backup-diff.service -n 30 --no-pager", check=False).stdout
        raise RuntimeError(f"{host}: airflow-ha-backup-diff.service failed: {proc.stderr.strip()}\n{journal}")
    new = [b for b in pgbr.status(stanza_name)["backups"] if b["label"] not in before]
    assert new and not new[-1]["error"], f"airflow-ha-backup-diff.service added no good backup: {new}"
    return new[-1]


def stanza():
    import yaml

    return yaml.safe_load((drill.REPO / "salt" / "backup" / "defaults.yaml").read_text())["stanza"]


def drill_restore(inv):
    started = time.monotonic()
    repos = roles(inv, "backup")
    assert repos, ("the lab's inventory has no host of role 'backup': add it to af2 in .lab/pillar/inventory/lab.yaml "
                   "(as pillar/inventory/compact.yaml has it), then `salt-run state.orchestrate orch.bringup`")
    repo = repos[0]
    members = roles(inv, "postgres")
    master = next(iter(inv["hosts"]))
    client = roles(inv, "scheduler")[0]
    name = stanza()
    pgbr = pgbackrest_on(repo)
    wait(lambda: not drill_partition.cluster_problems(inv, members[0]), 300, "a healthy cluster before the drill")

    # 1. the timers' differential backup, from whichever member leads after the earlier drills
    backup = diff_backup(repo, pgbr, name)

    # 2. the backup restores (throwaway PostgreSQL on the repository host)
    verified, verify_s, out = orchestrate(master, "orch.backup_verify")
    assert verified, f"orch.backup_verify failed:\n{out[-4000:]}"

    # 3. without the confirmation nothing happens
    refused, _, out = orchestrate(master, "orch.restore", {"target_time": "2030-01-01 00:00:00+00"}, timeout=300)
    assert not refused and "confirm: restore" in out, f"orch.restore without confirm did not refuse:\n{out[-4000:]}"
    assert drill.db_write(client) is not None, "the refused restore stopped the database"

    # 4. rows before T, T, rows after T, the accident
    base = int(time.time()) * 1000
    before = insert(client, "before", base)
    time.sleep(2)
    target = sql(client, NOW)["now"]
    time.sleep(2)
    insert(client, "after", base + ROWS)
    deleted = sql(client, DELETE_HALF, base=base)["deleted"]

    # 5. the point-in-time recovery; its last step is the smoke DAG through the VIP
    restored, restore_s, out = orchestrate(master, "orch.restore", {"target_time": target, "confirm": "restore"})
    assert restored, f"orch.restore to {target} failed:\n{out[-4000:]}"
    smoke, smoke_s = smoke_of(out)
    healthy = wait(lambda: not drill_partition.cluster_problems(inv, members[0]), 300, "a healthy cluster after")
    # the VIP follows the database tier (keepalived's track script): back once a member answers
    wait(lambda: drill.db_write(client) is not None, 180, "writes through the VIP after the restore")
    rows = sql(client, PRESENT, base=base)["rows"]
    expected = list(range(base, base + ROWS))
    missing = sorted(set(expected) - set(rows["before"]))
    took = time.monotonic() - started
    print(f"FIGURE drill restore: {took:.0f} s in all; {backup['type']} backup {backup['duration_s']} s "
          f"({(backup['size'] or 0) / 1e6:.0f} MB database, {(backup['repo_size'] or 0) / 1e6:.1f} MB added to the "
          f"repository); orch.backup_verify {verify_s:.0f} s; orch.restore to T={target} {restore_s:.0f} s "
          f"(healthy {healthy:.0f} s later); rows committed before T present {len(expected) - len(missing)}/"
          f"{len(expected)} ({deleted} deleted after T are back), after T present {len(rows['after'])} (expected 0); "
          f"data-loss window 0 rows before T lost = {len(missing)}; smoke DAG (orch.restore's last step) {smoke}"
          f"{f' in {smoke_s:.0f} s' if smoke_s is not None else ''}", flush=True)
    assert not missing, f"rows committed before T missing after the restore: {missing[:10]}..."
    assert not rows["after"], f"rows committed after T present after the restore: {rows['after'][:10]}..."
    assert smoke == "success", f"orch.restore's smoke DAG: {smoke}\n{step_block(out, 'orch-restore-smoke-dag')}"
    return {"drill_s": took, "backup_type": backup["type"], "backup_s": backup["duration_s"],
            "backup_size": backup["size"], "backup_repo_size": backup["repo_size"], "verify_s": verify_s,
            "restore_s": restore_s, "target_time": target, "before_lost": len(missing),
            "after_present": len(rows["after"]), "last_before_commit": before.get("last_commit"), "smoke": smoke,
            "smoke_s": smoke_s}
