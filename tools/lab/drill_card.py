"""The card-processing drill on the running lab (make lab first): N generated
batches uploaded to the ftp role's account over FTPS (CA-verified, from a
worker host, which the port map admits to the FTP server), processed by the
card_processing DAG while the Celery worker running a `process` task is
killed and the Patroni leader's host is killed; then every batch must be
processed exactly once: a result for each in the FTP outbox, each in the
target's archive and ledger once, per-currency totals equal to the input.

    .venv/bin/python tools/lab/drill_card.py [--batches 50] [--records 1000] [--quiet]

The lead wires `drill_card(inv)` into tools/lab/drill.py. Prints
`FIGURE drill card: ...` (batches/min, records/s, upload-to-result latency
p50/p95). No secret is put on a command line: the upload script reads the
FTP password from the worker's Airflow env file (AIRFLOW_CONN_CARD_FTP).
"""

import decimal
import inspect
import json
import math
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CURRENCIES = ("EUR", "USD", "GBP", "CHF")


# ------------------------------------------------------------ pure parts (unit-tested)


def generate_batch(seed, index, records):
    """Batch ``index`` of a drill (CSV text): unique tokens without long digit runs (never PAN-like),
    deterministic amounts and currencies, so this machine knows the totals the target must find."""
    letters = "".join(chr(65 + (seed // 26 ** i) % 26) for i in range(6))
    rows = ["token,amount,currency"]
    for n in range(records):
        cents = (seed * 7919 + index * 104729 + n * 31) % 100000 + 1
        rows.append(f"TK{letters}{index:04d}X{n:06d},{cents // 100}.{cents % 100:02d},"
                    f"{CURRENCIES[(n + index) % len(CURRENCIES)]}")
    return "\n".join(rows) + "\n"


def batch_totals(texts):
    """(records, {currency: Decimal total}) of CSV batch texts."""
    totals, records = {}, 0
    for text in texts:
        for row in text.splitlines()[1:]:
            _, amount, currency = row.split(",")
            totals[currency] = totals.get(currency, decimal.Decimal(0)) + decimal.Decimal(amount)
            records += 1
    return records, totals


def ledger_totals(records):
    """(records, {currency: Decimal total}) of card-process-batch ledger records."""
    totals, count = {}, 0
    for rec in records:
        count += rec["records"]
        for currency, total in rec["totals"].items():
            totals[currency] = totals.get(currency, decimal.Decimal(0)) + decimal.Decimal(total)
    return count, totals


def percentile(values, p):
    """Nearest-rank percentile ``p`` (0-100] of ``values``."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def figures(uploaded, finished, records_per_batch):
    """Throughput and latency from {name: upload time} and {name: result time} (epoch seconds)."""
    names = sorted(finished)
    latencies = [finished[n] - uploaded[n] for n in names]
    span = max(finished.values()) - min(uploaded.values())
    return {
        "batches": len(names),
        "batches_per_min": len(names) / span * 60 if span > 0 else float("inf"),
        "records_per_s": len(names) * records_per_batch / span if span > 0 else float("inf"),
        "latency_p50_s": percentile(latencies, 50),
        "latency_p95_s": percentile(latencies, 95),
        "span_s": span,
    }


def verdict(names, results, archived, ledger, expected_totals):
    """lost / twice / wrong counts and the totals check of one drill (pure, from what was read)."""
    by_name = {}
    for rec in ledger:
        by_name.setdefault(rec["name"], []).append(rec)
    lost = sorted(n for n in names if n not in results or not results[n].startswith("ok "))
    twice = sorted(n for n, recs in by_name.items() if len(recs) > 1)
    unarchived = sorted(n for n in names if n not in archived)
    unledgered = sorted(n for n in names if n not in by_name)
    wrong = sorted(n for n in names if n in results and n in by_name and results[n] != by_name[n][0]["result"])
    _, totals = ledger_totals(rec for recs in by_name.values() for rec in recs)
    return {"lost": lost, "twice": twice, "unarchived": unarchived, "unledgered": unledgered, "wrong": wrong,
            "totals_equal": totals == expected_totals, "totals": {c: str(t) for c, t in sorted(totals.items())}}


# ------------------------------------------------------------ on the lab

# Runs on a worker host: reads the FTPS connection and the card settings from the Airflow env file (never
# from a command line), generates the batches with generate_batch, uploads each as NAME.part then renames it
# (the DAG lists only finished names), retrying a batch whose connection broke (its host may be killed);
# prints {name: upload-finished epoch} as JSON.
UPLOAD = r"""set -a; . /etc/default/airflow; set +a
/opt/airflow/venv/bin/python - "$@" <<'PY'
import ftplib, io, json, os, ssl, sys, time, urllib.parse
GENERATE
settings = json.loads(os.environ["AIRFLOW_VAR_CARD_PROCESSING"])
conn = urllib.parse.urlsplit(os.environ["AIRFLOW_CONN_" + settings["ftp_conn_id"].upper()])
context = ssl.create_default_context(cafile=settings["ftp_ca_file"])
seed, count, records, tag = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
CURRENCIES = CURRENCY_LIST
done, ftp = {}, None
for index in range(count):
    name = f"{tag}-{index:04d}.csv"
    data = generate_batch(seed, index, records).encode()
    for attempt in range(60):
        try:
            if ftp is None:
                ftp = ftplib.FTP_TLS(context=context, timeout=20)
                ftp.connect(conn.hostname, conn.port or 21)
                ftp.login(urllib.parse.unquote(conn.username), urllib.parse.unquote(conn.password))
                ftp.prot_p()
            part = f"{settings['ftp_inbox']}/{name}.part"
            ftp.storbinary(f"STOR {part}", io.BytesIO(data))
            ftp.rename(part, f"{settings['ftp_inbox']}/{name}")
            done[name] = time.time()
            break
        except (OSError, EOFError, ftplib.Error) as exc:
            print(f"{name}: upload attempt {attempt + 1}: {type(exc).__name__}", file=sys.stderr)
            ftp = None
            time.sleep(2)
    else:
        sys.exit(f"{name}: not uploaded")
ftp.quit()
print(json.dumps(done))
PY"""

# Runs on the ftp host: {name: mtime} of results/errors in the outbox and names still in the inbox.
FTP_STATE = r"""python3 - <<'PY'
import json, os
root, tag = ROOT, TAG
out = {}
for folder in ("INBOX", "OUTBOX"):
    path = os.path.join(root, folder)
    out[folder] = {n: os.stat(os.path.join(path, n)).st_mtime for n in os.listdir(path) if n.startswith(tag)}
results = {}
for n in out["OUTBOX"]:
    if n.endswith(".result") or n.endswith(".error"):
        with open(os.path.join(root, "OUTBOX", n)) as f:
            results[n] = f.read().strip()
print(json.dumps({"inbox": sorted(out["INBOX"]), "outbox": out["OUTBOX"], "results": results}))
PY"""

# Runs on the card target: the ledger records and archive names of this drill.
TARGET_STATE = r"""python3 - <<'PY'
import glob, json, os
base, tag = BASE, TAG
ledger = [json.load(open(p)) for p in glob.glob(os.path.join(base, "ledger", "*.json"))]
print(json.dumps({"ledger": [r for r in ledger if r["name"].startswith(tag)],
                  "archive": sorted(n for n in os.listdir(os.path.join(base, "archive")) if n.startswith(tag))}))
PY"""


def card_settings():
    """The card workflow's settings (salt/card/defaults.yaml: the lab sets no pillar `card`)."""
    import yaml

    return yaml.safe_load((REPO / "salt" / "card" / "defaults.yaml").read_text())


def upload_script():
    source = inspect.getsource(generate_batch)
    return UPLOAD.replace("GENERATE", source).replace("CURRENCY_LIST", repr(CURRENCIES))


def ftp_state(d, host, settings, tag):
    home = f"{settings['ftp']['root']}/{settings['ftp']['user']}"
    script = (FTP_STATE.replace("ROOT", repr(home)).replace("TAG", repr(tag))
              .replace('"INBOX"', repr(settings["ftp"]["inbox"])).replace('"OUTBOX"', repr(settings["ftp"]["outbox"])))
    return json.loads(d.run(host, script, timeout=60).stdout)


def target_state(d, host, settings, tag):
    script = TARGET_STATE.replace("BASE", repr(settings["target"]["base"])).replace("TAG", repr(tag))
    return json.loads(d.run(host, script, timeout=60).stdout)


def _api(d, inv):
    airflow_ha, api = d.airflow_api(inv)
    major = api.get("major", 3)
    auth = airflow_ha._auth(api["url"], "admin", api["password"], major, api["ca_file"])
    prefix = airflow_ha._prefix(major)

    def call(method, path, body=None):
        return airflow_ha._api(method, api["url"], prefix + path, auth, body=body, ca_file=api["ca_file"])

    return call


def running_process_host(call):
    """The host of a worker running a `process` task of card_processing now, or None."""
    tis = call("GET", "/dags/card_processing/dagRuns/~/taskInstances?state=running")["task_instances"]
    hosts = [ti["hostname"].split(".")[0] for ti in tis if ti["task_id"] == "process" and ti.get("hostname")]
    return hosts[0] if hosts else None


def drill_card(inv, batches=50, records=1000, kills=True, label="quiet lab"):
    """Upload ``batches`` batches of ``records`` records, optionally kill a worker running `process` and the
    Patroni leader's host while they flow, check exactly once; print and return the figures."""
    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill as d

    settings = card_settings()
    ftp_host, target = d.roles(inv, "ftp")[0], d.roles(inv, "card_target")[0]
    client = d.roles(inv, "worker")[0]
    call = _api(d, inv)
    call("PATCH", "/dags/card_processing", {"is_paused": False})
    seed = int(time.time())
    tag = f"drill{seed}{'k' if kills else 'q'}"
    names = [f"{tag}-{i:04d}.csv" for i in range(batches)]
    expected_records, expected_totals = batch_totals(generate_batch(seed, i, records) for i in range(batches))

    uploaded = {}

    def do_upload():
        proc = subprocess.run(["lxc-attach", "-n", d.container(client), "--", "bash", "-c", upload_script(),
                               "upload", str(seed), str(batches), str(records), tag],
                              capture_output=True, text=True, timeout=1800)
        if proc.returncode:
            raise RuntimeError(f"upload from {client} exited {proc.returncode}: {proc.stderr[-1000:]}")
        uploaded.update(json.loads(proc.stdout.strip().splitlines()[-1]))

    started = time.monotonic()
    uploader = threading.Thread(target=do_upload)
    uploader.start()
    killed = {}
    if kills:
        # the Celery worker running a `process` task, mid-task
        d.wait(lambda: running_process_host(call), 600, "a process task running on a worker")
        worker = running_process_host(call)
        d.run(worker, "systemctl kill --signal=SIGKILL airflow-worker; systemctl stop airflow-worker")
        killed["worker"] = worker
        time.sleep(5)
        d.run(worker, "systemctl start airflow-worker")
        # the Patroni leader's host, while batches still flow
        members = d.roles(inv, "postgres")
        leader = d.patroni_leader(inv, members[0])
        subprocess.run(["lxc-stop", "-k", "-n", d.container(leader)], check=True)
        killed["leader"] = leader
        time.sleep(10)
        subprocess.run(["lxc-start", "-n", d.container(leader)], check=True)
        d.wait(lambda: d.running(leader), 120, f"{leader} back")
    uploader.join()
    if not uploaded:
        raise RuntimeError("the upload did not finish")

    def finished():
        try:
            state = ftp_state(d, ftp_host, settings, tag)
        except (RuntimeError, subprocess.TimeoutExpired):
            return None  # the ftp host is coming back
        outbox = state["outbox"]
        done = all(n + ".result" in outbox or n + ".error" in outbox for n in names) and not state["inbox"]
        return state if done else None

    try:
        d.wait(finished, 1800, f"a result or an error for each of the {batches} batches")
    except TimeoutError:
        pass  # counted as lost below
    state = ftp_state(d, ftp_host, settings, tag)
    tstate = target_state(d, target, settings, tag)
    results = {n[: -len(".result")]: v for n, v in state["results"].items() if n.endswith(".result")}
    check = verdict(names, results, set(tstate["archive"]), tstate["ledger"], expected_totals)
    done_at = {n[: -len(".result")]: t for n, t in state["outbox"].items() if n.endswith(".result")}
    figs = figures(uploaded, {n: t for n, t in done_at.items() if n in uploaded}, records)
    figs.update(kills=killed, lost=len(check["lost"]), twice=len(check["twice"]), totals_equal=check["totals_equal"],
                elapsed_s=time.monotonic() - started, expected_records=expected_records)
    what = (f"killed airflow-worker on {killed['worker']} during a process task and the Patroni leader's host "
            f"{killed['leader']}" if kills else label)
    print(f"FIGURE drill card: {what}; {batches} batches x {records} records: "
          f"{figs['batches_per_min']:.1f} batches/min, {figs['records_per_s']:.0f} records/s, upload-to-result "
          f"latency p50 {figs['latency_p50_s']:.1f} s p95 {figs['latency_p95_s']:.1f} s; lost {figs['lost']}, "
          f"processed twice {figs['twice']}, archive {len(tstate['archive'])}, ledger {len(tstate['ledger'])}, "
          f"per-currency totals equal to the input: {check['totals_equal']}", flush=True)
    problems = {k: v for k, v in check.items() if k in ("lost", "twice", "unarchived", "unledgered", "wrong") and v}
    assert not problems and check["totals_equal"], f"card drill: {problems} totals {check['totals']}"
    return figs


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--quiet", action="store_true", help="no kills")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tools" / "lab"))
    import drill as d

    drill_card(d.inventory(), args.batches, args.records, kills=not args.quiet)


if __name__ == "__main__":
    main()
