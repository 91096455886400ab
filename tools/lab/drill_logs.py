"""Central logs drill on the running lab (issue 22): nothing logged while the
log host is down is lost, and what arrives is root-only.

    .venv/bin/python tools/lab/drill.py logs

0. the log volume figure: how fast each host's files on the log host grow
   over a minute of the lab as it is, per hour;
1. rsyslog stopped on the log host(s) (role logs; its socket too);
2. on every other host K messages ``logger -t airflow-ha-drill`` and one
   authpriv event (``logger -p authpriv.notice``, as sshd and sudo log), and a
   Salt job from the master (``test.echo``): the audit engine's ``job new``
   line and one ``job ret`` line per minion (salt/_engines/airflow_ha_audit.py);
   a run of the smoke DAG (conf ``{"drill": marker}``), waited for: Airflow's
   audit row ``trigger_dag_run`` with the marker (PostgreSQL's log through
   Patroni's journal) and the task's log line with the run id
   (airflow-task.log); an SSH login to the card target from a worker host
   with the workers' key (sshd's ``Accepted publickey ... port P`` line, P the
   client's port it echoes back). In the compact lab the card target is the
   log host itself: its sshd line is read from the journal once rsyslog is
   back (imjournal, salt/logs);
3. rsyslog started again after the outage; within 120 s every message must be
   in /var/log/remote/<host>/airflow-ha-drill.log on a log host (<host> the
   inventory name: the receiver names a sender by its address);
4. a second batch, sent while the log host is up, each message carrying its
   send time: the delivery delay is the log host's receive time (the first
   field of each line) minus that; p95 over all of them;
5. everything under /var/log/remote: directories 0700, files 0600, root;
6. the PAN scan (salt/logs/files/airflow-ha-pan-scan.py, installed by the
   logs state): one sender logs a public test card number (``logger -t
   pan-drill-<run>``); once it is in /var/log/remote/<host>/pan-drill-<run>.log
   the scan on each log host must report it there, masked, and exit 1 (the
   check can fail); that file deleted, a second scan of the whole remote dir
   must find nothing (exit 0).

Prints ``FIGURE drill logs: sent S received R across a log host outage of T s;
delivery delay p95 X s with the log host up`` and ``FIGURE drill logs PAN
scan: N files, M lines on the log host: 0 PAN-like numbers ...``, and raises
AssertionError when R != S, a mode is wrong, the planted number is not found
or anything else is (naming the masked findings). About 1-2 minutes.
"""

import json
import re
import shlex
import time
import uuid
from datetime import datetime
from pathlib import Path

import yaml

from drill import airflow_api, roles, run
from drill_throughput import percentile

REPO = Path(__file__).resolve().parents[2]
TAG = "airflow-ha-drill"
K = 20           # messages per host during the outage
UP_BATCH = 20    # messages per host with the log host up (the delay figure)
OUTAGE_S = 20    # how long the log host stays down after the last message was logged
ARRIVAL_TIMEOUT = 120
VOLUME_S = 60    # the idle window the log volume figure is measured over
DEFAULTS = yaml.safe_load((REPO / "salt" / "logs" / "defaults.yaml").read_text())
REMOTE_DIR = DEFAULTS["remote_dir"]
PAN_SCAN = DEFAULTS["pan_scan_script"]
# a public test card number (Visa's, in every payment provider's docs): never printed whole by the drill
TEST_PAN = "4111111111111111"
PAN_ARRIVAL_TIMEOUT = 60
PAN_SCAN_TIMEOUT = 900  # every file under the remote dir, .gz copies too
STOP = "systemctl stop syslog.socket 2>/dev/null; systemctl stop rsyslog.service"
START = "systemctl start rsyslog.service"
# the tag as forwarded (RFC 5424: the app name alone; legacy syslog: ``tag[pid]:``)
LINE = re.compile(r"^(\S+) \S+ (\S+) " + re.escape(TAG) + r"(?:\[\d+\])?:? drill (\S+) (\S+) (\S+) (\d+)(?: sent=([\d.]+))?")


def emit_script(run_id, phase, host, count, auth=False):
    """bash: ``count`` tagged messages (each with its send time), and one authpriv event."""
    script = (f'for i in $(seq 1 {count}); do logger -t {TAG} "drill {run_id} {phase} {host} $i sent=$(date +%s.%N)"; '
              f"done")
    if auth:
        script += f'; logger -p authpriv.notice -t {TAG} "drill {run_id} {phase}-auth {host} 0"'
    return script


def parse(text, run_id):
    """[(host dir, phase, sender, number, sent epoch or None, received epoch)] of this run's lines."""
    found = []
    for line in text.splitlines():
        line = line.split(":", 1)[1] if line.startswith("/") else line  # grep -H's file name
        m = LINE.match(line)
        if not m or m.group(3) != run_id:
            continue
        received = datetime.fromisoformat(m.group(1)).timestamp()
        sent = float(m.group(7)) if m.group(7) else None
        found.append((m.group(2), m.group(4), m.group(5), int(m.group(6)), sent, received))
    return found


def arrived(inv, run_id):
    """Every line of this run in the log hosts' airflow-ha-drill.log files."""
    found = []
    for server in roles(inv, "logs"):
        out = run(server, f"grep -hF 'drill {run_id} ' {REMOTE_DIR}/*/{TAG}.log 2>/dev/null; true", check=False)
        found += parse(out.stdout, run_id)
    return found


def delivered(found, phase, senders):
    """Distinct (sender, phase, number) of ``phase`` filed under the sender's own directory."""
    return {(s, p, n) for d, p, s, n, _, _ in found if p.startswith(phase) and s == d and s in senders}


def modes_problems(inv):
    problems = []
    for server in roles(inv, "logs"):
        out = run(server, f"find {REMOTE_DIR} -printf '%m %u %g %y %p\\n'").stdout
        for line in out.splitlines():
            mode, user, group, kind, path = line.split(" ", 4)
            want = "700" if kind == "d" else "600"
            if (mode, user, group) != (want, "root", "root"):
                problems.append(f"{server}:{path} is {mode} {user}:{group}, want {want} root:root")
    return problems


def salt_job(master, marker):
    """A Salt job from the master (``test.echo MARKER`` to every minion; test.* arguments are in its audit
    line): the minions that answered."""
    out = run(master, f"salt '*' test.echo {marker} --out=json --static", timeout=300, check=False).stdout
    answered = json.loads(out[out.index("{"):]) if "{" in out else {}
    return sorted(m for m, echo in answered.items() if echo == marker)


def salt_audit_arrived(inv, master, marker):
    """(job new lines, job ret minions) of the job that echoed ``marker``, in the log hosts' file of the
    master's salt-audit tag (salt/_engines/airflow_ha_audit.py)."""
    new, rets = 0, set()
    for server in roles(inv, "logs"):
        text = run(server, f"cat {REMOTE_DIR}/{master}/salt-audit.log 2>/dev/null; true", check=False).stdout
        jids = set()
        for line in text.splitlines():
            if " job new {" in line and marker in line:
                new += 1
                jids.add(json.loads(line.split(" job new ", 1)[1])["jid"])
        for line in text.splitlines():
            if " job ret {" in line:
                ret = json.loads(line.split(" job ret ", 1)[1])
                if ret["jid"] in jids:
                    rets.add(ret["minion"])
    return new, rets


def log_volume(inv, seconds=VOLUME_S):
    """Bytes per hour each host's logs grow on the log hosts, over ``seconds`` of the lab as it is (idle)."""
    def sizes():
        total = {}
        for server in roles(inv, "logs"):
            out = run(server, f"cd {REMOTE_DIR} && du -sb --apparent-size -- */", check=False).stdout
            for line in out.splitlines():
                size, host = line.split(None, 1)
                total[host.rstrip("/")] = total.get(host.rstrip("/"), 0) + int(size)
        return total
    before = sizes()
    time.sleep(seconds)
    after = sizes()
    return {host: (after[host] - before.get(host, 0)) * 3600 / seconds for host in sorted(after)}


def card_target_login(inv):
    """An SSH login to the card target as the card DAG's account, with the workers' key, from a worker host of
    the card pool (the only ones it admits): (card target host, sshd's line for it). The client's source port,
    echoed back, names the session."""
    from _modules.ha_inventory import CARD_QUEUE, queue_members

    worker, target = queue_members(inv)[CARD_QUEUE][0], roles(inv, "card_target")[0]
    card = yaml.safe_load((REPO / "salt" / "card" / "defaults.yaml").read_text())["target"]
    ip = inv["hosts"][target]["ip"]
    out = run(worker, f"runuser -u airflow -- ssh -i /opt/airflow/.ssh/card_target -o BatchMode=yes "
                      f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
                      f"{card['user']}@{ip} 'echo $SSH_CLIENT'").stdout.split()
    return target, f"Accepted publickey for {card['user']} from {out[0]} port {out[1]} "


def events_arrived(inv, events):
    """{name: found} of ``events``: {name: (host, program, texts)}, found when one line of
    <remote_dir>/<host>/<program>.log on a log host holds every one of the fixed ``texts`` (host "*": any)."""
    found = {}
    for name, (host, program, texts) in events.items():
        host = "*" if host == "*" else shlex.quote(host)
        script = f"grep -hF -- {shlex.quote(texts[0])} {REMOTE_DIR}/{host}/{shlex.quote(program)}.log 2>/dev/null"
        script += "".join(f" | grep -F -- {shlex.quote(text)}" for text in texts[1:]) + " | grep -q ."
        found[name] = any(run(server, script, check=False).returncode == 0 for server in roles(inv, "logs"))
    return found


PAN_FINDING = re.compile(r"^(.+):(\d+): PAN-like number (\d{6}…\d{4}) \((\w+)\)$")
PAN_SUMMARY = re.compile(r"^scanned (\d+) files, (\d+) lines: (\d+) PAN-like numbers$")


def masked(pan):
    """The scan's masking (first 6, last 4 digits)."""
    return f"{pan[:6]}…{pan[-4:]}"


def parse_pan_scan(stdout):
    """{files, lines, found, findings: [(path, line number, masked number, scheme, the line as printed)]} of
    airflow-ha-pan-scan's output; ValueError without its summary line (the scan did not finish)."""
    findings, summary = [], None
    for line in stdout.splitlines():
        if m := PAN_FINDING.match(line):
            findings.append((m.group(1), int(m.group(2)), m.group(3), m.group(4), line))
        elif m := PAN_SUMMARY.match(line):
            summary = m
    if summary is None:
        raise ValueError(f"no summary line in the PAN scan's output: {stdout[-500:]!r}")
    files, lines, found = (int(g) for g in summary.groups())
    if found != len(findings):
        raise ValueError(f"the PAN scan counts {found} findings but printed {len(findings)}")
    return {"files": files, "lines": lines, "found": found, "findings": findings}


def planted_problems(rc, scan, planted_path, pan=TEST_PAN):
    """What is wrong with the scan that must report the planted number in ``planted_path``, and only it."""
    problems = []
    planted = [f for f in scan["findings"] if f[0] == planted_path]
    if not planted:
        problems.append(f"the PAN scan did not report the planted test number in {planted_path}")
    problems += [f"the PAN scan reported {f[4]!r}, not the planted {masked(pan)} (Visa)" for f in planted
                 if (f[2], f[3]) != (masked(pan), "Visa")]
    problems += [f"PAN-like number outside the planted file: {f[4]}" for f in scan["findings"]
                 if f[0] != planted_path]
    if rc != 1:
        problems.append(f"the PAN scan exited {rc} with a finding, not 1")
    return problems


def clean_problems(rc, scan):
    """What is wrong with the scan that must find nothing (the planted file deleted)."""
    problems = [f"PAN-like number on the log host: {f[4]}" for f in scan["findings"]]
    if rc != 0 and not problems:
        problems.append(f"the PAN scan exited {rc} with no finding, not 0 (a file it could not read?)")
    return problems


def pan_scan(server):
    """(exit status, parsed output) of the installed scan over the log host's remote dir."""
    proc = run(server, f"{PAN_SCAN} {REMOTE_DIR}", check=False, timeout=PAN_SCAN_TIMEOUT)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{server}: {PAN_SCAN} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc.returncode, parse_pan_scan(proc.stdout)


def drill_pan_scan(servers, sender, run_id):
    """Plant the test number through ``sender``'s log, find it with the scan on every log host, delete it,
    scan again: {files, lines, found} of the second scans, summed over the log hosts."""
    tag = f"pan-drill-{run_id}"
    planted_path = f"{REMOTE_DIR}/{sender}/{tag}.log"
    # the number in two halves: whole only in the logged line, never in a command line or an error of run()
    half = len(TEST_PAN) // 2
    run(sender, f'a={TEST_PAN[:half]}; b={TEST_PAN[half:]}; logger -t {tag} "drill {run_id} card $a$b in a log line"')
    try:
        for server in servers:
            deadline = time.monotonic() + PAN_ARRIVAL_TIMEOUT
            while run(server, f"test -s {planted_path}", check=False).returncode:
                assert time.monotonic() < deadline, \
                    f"{server}: {planted_path} not there {PAN_ARRIVAL_TIMEOUT} s after the test number was logged"
                time.sleep(1)
            rc, scan = pan_scan(server)
            problems = planted_problems(rc, scan, planted_path)
            assert not problems, f"{server}: " + "; ".join(problems)
    finally:
        for server in servers:
            run(server, f"rm -f {planted_path}", check=False)
    totals = {"files": 0, "lines": 0, "found": 0}
    for server in servers:
        rc, scan = pan_scan(server)
        problems = clean_problems(rc, scan)
        assert not problems, f"{server}: " + "; ".join(problems)
        for key in totals:
            totals[key] += scan[key]
    return totals


def drill_logs(inv):
    servers = roles(inv, "logs")
    assert servers, "no host of the inventory has the logs role"
    senders = [h for h in inv["hosts"] if h not in servers]
    assert senders, "every host is a log host: nothing to send from"
    run_id = uuid.uuid4().hex[:10]
    master = next(iter(inv["hosts"]))
    assert master not in servers, "the master is a log host: its Salt audit lines would not be forwarded"

    volume = log_volume(inv)
    print("FIGURE drill logs: log volume on the idle lab per host per hour: "
          + ", ".join(f"{host} {size / 1e6:.1f} MB" for host, size in volume.items()), flush=True)

    airflow_ha, api = airflow_api(inv)
    marker = f"drill-{run_id}"
    down = time.monotonic()
    for server in servers:
        run(server, STOP)
    try:
        for host in senders:
            run(host, emit_script(run_id, "outage", host, K, auth=True))
        # a Salt job meanwhile: its audit lines wait in the master's queue like any other line
        answered = salt_job(master, marker)
        # a DAG run (Airflow's audit row, through the DB leader's log, and its task's log) and an SSH login to
        # the card target (in the compact lab the log host itself: its own journal, read again once rsyslog is back)
        dag_run_id = airflow_ha.trigger_dag("airflow_ha_smoke", conf={"drill": marker}, **api)
        dag_run = airflow_ha.wait_dag_run("airflow_ha_smoke", dag_run_id, timeout=180, **api)
        card_target, login_line = card_target_login(inv)
        time.sleep(OUTAGE_S)
    finally:
        for server in servers:
            run(server, START)
    outage = time.monotonic() - down
    assert answered, f"the Salt job during the outage ran on no minion (test.echo {marker})"
    worker = dag_run["tasks"]["report_host"]["hostname"].split(".")[0]
    # Airflow's audit row comes through the PostgreSQL leader's log (any member's: the leader may have moved)
    events = {"DAG run audit row": ("*", "patroni", [marker, '"event": "trigger_dag_run"']),
              "task log line": (worker, "airflow-task", [f"for run {dag_run_id}"]),
              "card target SSH login": (card_target, "sshd", [login_line])}
    # the messages, the job's new line, a ret per minion, the events
    sent = len(senders) * (K + 1) + 1 + len(answered) + len(events)
    deadline = time.monotonic() + ARRIVAL_TIMEOUT
    while True:
        new, rets = salt_audit_arrived(inv, master, marker)
        seen = events_arrived(inv, events)
        received = (len(delivered(arrived(inv, run_id), "outage", senders)) + min(new, 1)
                    + len(rets & set(answered)) + sum(seen.values()))
        if received >= sent or time.monotonic() > deadline:
            break
        time.sleep(2)

    for host in senders:
        run(host, emit_script(run_id, "up", host, UP_BATCH))
    deadline = time.monotonic() + 60
    while len(delivered(found := arrived(inv, run_id), "up", senders)) < len(senders) * UP_BATCH \
            and time.monotonic() < deadline:
        time.sleep(1)
    delays = [max(0.0, rcv - snt) for d, p, s, n, snt, rcv in found if p == "up" and s == d and snt is not None]
    p95 = percentile(delays, 0.95)
    print(f"FIGURE drill logs: sent {sent} received {received} across a log host outage of {outage:.0f} s "
          f"(Salt job test.echo {marker}: its audit line and {len(rets & set(answered))} of {len(answered)} returns "
          f"among them; DAG run {dag_run_id} {dag_run['state']} on {worker}: "
          + ", ".join(f"{name} {'arrived' if ok else 'MISSING'}" for name, ok in seen.items())
          + f"); delivery delay p95 {p95 if p95 is None else round(p95, 2)} s with the log host up")
    assert received == sent, (f"{sent - received} of {sent} messages logged while the log host was down never "
                              f"arrived (run {run_id}; events {seen})")
    assert len(delays) == len(senders) * UP_BATCH, \
        f"{len(senders) * UP_BATCH - len(delays)} messages sent with the log host up never arrived (run {run_id})"
    problems = modes_problems(inv)
    assert not problems, "; ".join(problems)

    pan = drill_pan_scan(servers, senders[0], run_id)
    print(f"FIGURE drill logs PAN scan: {pan['files']} files, {pan['lines']} lines on the log host: "
          f"{pan['found']} PAN-like numbers (the planted test PAN found and removed)", flush=True)
    return {"sent": sent, "received": received, "outage_s": round(outage, 1), "delay_p95_s": p95,
            "events": seen, "volume_bytes_per_hour": volume,
            "pan_files": pan["files"], "pan_lines": pan["lines"], "pan_found": pan["found"]}


if __name__ == "__main__":
    import drill as _lab

    drill_logs(_lab.inventory())
