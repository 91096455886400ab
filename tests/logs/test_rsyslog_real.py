"""The central log host with the real rsyslog (issue 22): a receiver and
senders, rsyslogd processes on loopback in a work directory, configured with
what the logs states write (logs-receiver-config and logs-forward-config
rendered with the states' own context, paths and names moved into the work
directory), with throwaway CAs and certificates from tools/gen_tls.py.

Checked: a sender's message lands in <remote_dir>/<host>/<program>.log (the
host named by its source address; directories 0700, files 0600); a sender
whose certificate another CA issued, and one of the right CA whose name is no
inventory host's, are refused; with the receiver stopped, N messages logged
arrive all once it is back, also when the sender itself restarted in between
(the disk-assisted queue, saved on shutdown)."""

import fnmatch
import os
import pwd
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import gen_tls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RSYSLOGD = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
GTLS = list(Path("/usr/lib").glob("*/rsyslog/lmnsd_gtls.so")) + list(Path("/usr/lib64").glob("rsyslog/lmnsd_gtls.so"))
if not (os.path.exists(RSYSLOGD) and GTLS and shutil.which("logger")):
    pytest.skip("rsyslog and rsyslog-gnutls (requirements/apt-test.txt) are not installed", allow_module_level=True)

PORT = 16514
RECEIVER = {"name": "logs1", "ip": "127.0.0.1", "fqdn": "logs1.test"}
SENDER = "sender1"  # the inventory name of 127.0.0.1 in the receiver's map
N = 50


# ----------------------------------------------------------------- material
def write_identity(directory, ca, name):
    """key + certificate of ``name`` (and 127.0.0.1) issued by ``ca`` (key, cert) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key = gen_tls.new_key()
    cert = gen_tls.issue_host_cert(ca[0], ca[1], key, name, [name], ["127.0.0.1"])
    (directory / "host.key").write_bytes(gen_tls.key_pem(key))
    (directory / "host.key").chmod(0o600)
    (directory / "host.crt").write_bytes(gen_tls.cert_pem(cert))
    return {"ca_file": str(directory.parent / "ca.crt"), "cert_file": str(directory / "host.crt"),
            "key_file": str(directory / "host.key")}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("rsyslog")


@pytest.fixture(scope="module")
def pki(work):
    """The cluster CA (with the receiver's, the sender's and a stranger's identity) and another CA."""
    ids = {}
    for ca_name, members in (("cluster", ("logs1.test", "sender1.test", "stranger.test")), ("other", ("sender1.test",))):
        ca = gen_tls.create_ca(f"{ca_name} test CA")
        (work / ca_name).mkdir()
        (work / ca_name / "ca.crt").write_bytes(gen_tls.cert_pem(ca[1]))
        for name in members:
            ids[(ca_name, name)] = write_identity(work / ca_name / name, ca, name)
    # every identity trusts the cluster CA (a sender of the other CA still checks the receiver)
    for ident in ids.values():
        ident["ca_file"] = str(work / "cluster" / "ca.crt")
    return ids


@pytest.fixture(scope="module")
def templates(tls_state_file_context, tls_render_state_file, work, pki):
    """(receiver config, {identity: sender config}) rendered from the states' templates."""
    base = tls_state_file_context("db3", "compact", "logs", "logs-receiver-config")["logs"]
    receiver_ctx = dict(base, port=PORT, remote_dir=str(work / "remote"), peers=["logs1.test", "sender1.test"],
                        sources={"127.0.0.1": SENDER}, tls=pki[("cluster", "logs1.test")])
    receiver = tls_render_state_file("db3", "compact", "logs", "logs-receiver-config", logs=receiver_ctx)
    senders = {}
    for ident in (("cluster", "sender1.test"), ("other", "sender1.test"), ("cluster", "stranger.test")):
        spool = work / "spool" / "-".join(ident)
        # read_journal off: a test sender must not read this machine's journal (the lab's do, imjournal)
        ctx = dict(base, port=PORT, servers=[RECEIVER], spool_dir=str(spool), tls=pki[ident], read_journal=False,
                   forward=dict(base["forward"], resume_interval=1))
        senders[ident] = (tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config", logs=ctx),
                          spool)
    return receiver, senders


class Rsyslogd:
    """One rsyslogd (-n) with the main config ``head`` + the rendered drop-in."""

    def __init__(self, directory, head, dropin):
        self.dir = Path(directory)
        (self.dir / "work").mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "rsyslog.conf"
        self.conf.write_text(f'global(workDirectory="{self.dir / "work"}")\n{head}\n{dropin}\n')
        check = subprocess.run([RSYSLOGD, "-N1", "-f", str(self.conf)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stderr + check.stdout
        self.proc = None

    def start(self):
        log = open(self.dir / "rsyslogd.out", "ab")
        self.proc = subprocess.Popen(["nice", "-n", "10", RSYSLOGD, "-n", "-f", str(self.conf),
                                      "-i", str(self.dir / "rsyslogd.pid")], stdout=log, stderr=log)
        time.sleep(1)
        assert self.proc.poll() is None, (self.dir / "rsyslogd.out").read_text()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def receiver(work, templates):
    daemon = Rsyslogd(work / "receiver", "", templates[0])
    daemon.start()
    yield daemon
    daemon.stop()


def sender_daemon(work, templates, ident):
    dropin, spool = templates[1][ident]
    spool.mkdir(parents=True, exist_ok=True)
    directory = work / ("sender-" + "-".join(ident))
    sock = directory / "log.sock"
    head = (f'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{sock}" CreatePath="on" RateLimit.Interval="0")')
    daemon = Rsyslogd(directory, head, dropin)
    daemon.sock = sock
    daemon.spool = spool
    return daemon


@pytest.fixture(scope="module")
def sender(work, templates, receiver):
    daemon = sender_daemon(work, templates, ("cluster", "sender1.test"))
    daemon.start()
    yield daemon
    daemon.stop()


def log(daemon, tag, text, priority="user.notice"):
    subprocess.run(["logger", "-u", str(daemon.sock), "-p", priority, "-t", tag, text], check=True, timeout=10)


def remote_lines(work, program):
    path = work / "remote" / SENDER / f"{program}.log"
    return path.read_text().splitlines() if path.exists() else []


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


# -------------------------------------------------------------------- tests
def test_a_message_lands_in_the_host_and_program_file_root_only(work, sender):
    log(sender, "airflow-ha-test", "hello central log host")
    log(sender, "sshd", "Accepted publickey for admin (authpriv)", priority="authpriv.notice")
    assert wait_for(lambda: any("hello central log host" in line for line in remote_lines(work, "airflow-ha-test")),
                    30), list((work / "remote").rglob("*"))
    assert wait_for(lambda: any("Accepted publickey" in line for line in remote_lines(work, "sshd")), 30)
    line = next(line for line in remote_lines(work, "airflow-ha-test") if "hello" in line)
    assert f" {SENDER} airflow-ha-test" in line, line
    host_dir, path = work / "remote" / SENDER, work / "remote" / SENDER / "airflow-ha-test.log"
    assert stat.S_IMODE(host_dir.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_uid == 0 == host_dir.stat().st_uid


@pytest.mark.parametrize("ident, reason", [
    (("other", "sender1.test"), "certificate invalid: signer not found"),
    (("cluster", "stranger.test"), "peer name not authorized"),
], ids=["certificate-of-another-ca", "name-of-no-inventory-host"])
def test_a_sender_the_receiver_does_not_admit_is_refused(work, templates, receiver, sender, ident, reason):
    intruder = sender_daemon(work, templates, ident)
    intruder.start()
    try:
        marker = f"intruder {'-'.join(ident)} {time.time()}"
        log(intruder, "intruder", marker)
        log(sender, "airflow-ha-test", f"after {marker}")  # the admitted sender still gets through
        assert wait_for(lambda: any(f"after {marker}" in line for line in remote_lines(work, "airflow-ha-test")), 30)
        time.sleep(5)
        received = [p for p in (work / "remote").rglob("*.log") if marker in p.read_text().replace("after " + marker, "")]
        assert not received, received
        # rsyslogd -n reports its own errors on stderr: the refusal, for this reason
        assert reason in (receiver.dir / "rsyslogd.out").read_text()
    finally:
        intruder.stop()


def test_messages_logged_while_the_receiver_is_down_all_arrive(work, templates, receiver, sender):
    receiver.stop()
    try:
        for i in range(N):
            log(sender, "airflow-ha-queue", f"while down #{i}")
        time.sleep(3)
    finally:
        receiver.start()
    assert wait_for(lambda: len([x for x in remote_lines(work, "airflow-ha-queue") if "while down #" in x]) == N, 60)
    numbers = sorted(int(x.rsplit("#", 1)[1]) for x in remote_lines(work, "airflow-ha-queue") if "while down #" in x)
    assert numbers == list(range(N))


def test_the_queue_survives_a_restart_of_the_sender_while_the_receiver_is_down(work, templates, receiver, sender):
    receiver.stop()
    try:
        for i in range(N):
            log(sender, "airflow-ha-disk", f"spooled #{i}")
        time.sleep(2)
        sender.stop()
        spooled = list(sender.spool.glob("airflow-ha-forward-logs1*"))
        assert spooled, f"nothing saved in {sender.spool} on shutdown"
        sender.start()
        time.sleep(2)
    finally:
        receiver.start()
    assert wait_for(lambda: len([x for x in remote_lines(work, "airflow-ha-disk") if "spooled #" in x]) == N, 60), \
        remote_lines(work, "airflow-ha-disk")


# ------------------------------------------------------- task log copies
TASK_PORT = 16515
TASK_LOG = "dag_id=card_batches/run_id=manual__2026-12-03T18:00:00.123456+00:00/task_id=process/attempt=1.log"
MAPPED_LOG = "dag_id=fan_out/run_id=scheduled__2026-12-03T00:00:00+00:00/task_id=work/map_index=7/attempt=2.log"


@pytest.fixture(scope="module")
def task_copies(tls_state_file_context, tls_render_state_file, work, pki, receiver):
    """A worker host's rsyslog tailing its task log folder (logs-forward-config) and an api-server
    host's rsyslog writing the copies (logs-task-log-copies-config), both as the states render them."""
    tasks, copies = work / "worker-logs", work / "api-server-logs"
    tasks.mkdir()
    base = tls_state_file_context("af2", "compact", "logs.task_log_copies", "logs-task-log-copies-config")["logs"]
    user = base["task_logs"]["user"] if _user_exists(base["task_logs"]["user"]) else "root"
    receiver_ctx = dict(base, tls=pki[("cluster", "logs1.test")],
                        task_logs=dict(base["task_logs"], port=TASK_PORT, dir=str(copies), user=user,
                                       senders=["sender1.test"]))
    api_server = Rsyslogd(work / "task-receiver", "",
                          tls_render_state_file("af2", "compact", "logs.task_log_copies",
                                                "logs-task-log-copies-config", logs=receiver_ctx))
    spool = work / "spool" / "task-sender"
    spool.mkdir(parents=True)
    sender_ctx = dict(base, port=PORT, servers=[RECEIVER], spool_dir=str(spool), tls=pki[("cluster", "sender1.test")],
                      tails_rabbitmq=False, read_journal=False, forward=dict(base["forward"], resume_interval=1),
                      task_logs=dict(base["task_logs"], tail=True, port=TASK_PORT, dir=str(tasks),
                                     copies_to=[RECEIVER]))
    dropin = tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config", logs=sender_ctx)
    worker = Rsyslogd(work / "task-sender", 'module(load="imuxsock" SysSock.Use="off")', dropin)
    api_server.start()
    worker.start()
    yield tasks, copies, api_server, worker
    worker.stop()
    api_server.stop()


def _user_exists(name):
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _write_lines(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)  # after rsyslog started: imfile must find new folders
    with open(path, "a") as fh:
        for line in lines:
            fh.write(line + "\n")
            fh.flush()


def test_task_log_lines_are_copied_to_the_same_path_on_the_api_server(work, task_copies):
    tasks, copies, _, _ = task_copies
    lines = [f'{{"timestamp": "2026-12-03T18:00:0{i}.123456Z", "level": "info", "event": "batch line {i}"}}'
             for i in range(5)]
    long_line = '{"event": "' + "x" * 6000 + '"}'  # a traceback-sized line, under rsyslog's 8 KiB message size
    _write_lines(tasks / TASK_LOG, lines + [long_line])
    _write_lines(tasks / MAPPED_LOG, ['{"event": "mapped index 7"}'])
    copy, mapped = copies / (TASK_LOG + ".copy"), copies / (MAPPED_LOG + ".copy")
    assert wait_for(lambda: copy.exists() and len(copy.read_text().splitlines()) == 6, 30), \
        sorted(str(p) for p in copies.rglob("*"))
    assert copy.read_text() == (tasks / TASK_LOG).read_text()  # byte for byte, line order kept
    # the copy's name is not one the senders tail: had a host both roles, it would not be sent on again
    assert not fnmatch.fnmatch(copy.name, "attempt=*.log")
    assert wait_for(lambda: mapped.exists() and mapped.read_text() == '{"event": "mapped index 7"}\n', 30)
    assert stat.S_IMODE(copy.stat().st_mode) == 0o640 and stat.S_IMODE(copy.parent.stat().st_mode) == 0o750
    # the log host keeps them too, each led by its path
    assert wait_for(lambda: any(f"{TASK_LOG} " in x and "batch line 4" in x
                                for x in remote_lines(work, "airflow-task")), 30)


def test_the_api_server_writes_no_path_outside_airflows_log_template(work, pki, task_copies):
    """A sender of the cluster (its certificate admitted) cannot make the receiver write elsewhere."""
    _, copies, api_server, _ = task_copies
    ident = pki[("cluster", "sender1.test")]
    escape = work / "escaped.log"
    paths = ["../escaped.log", "dag_id=a/run_id=b/task_id=c/../../../../escaped.log", "dag_id=a/evil.log",
             "dag_id=a/run_id=b/task_id=c/attempt=1.log.sh"]
    frames = "".join(f"<134>1 2026-12-03T18:00:00.000000+00:00 sender1 airflow-task - - - {p} forged {i}\n"
                     for i, p in enumerate(paths))
    good = "dag_id=a/run_id=b/task_id=c/attempt=1.log"
    frames += f"<134>1 2026-12-03T18:00:00.000000+00:00 sender1 airflow-task - - - {good} admitted\n"
    subprocess.run(["openssl", "s_client", "-quiet", "-no_ign_eof", "-connect", f"127.0.0.1:{TASK_PORT}", "-CAfile",
                    ident["ca_file"], "-cert", ident["cert_file"], "-key", ident["key_file"]],
                   input=frames.encode(), capture_output=True, timeout=30)
    assert wait_for(lambda: (copies / (good + ".copy")).exists(), 30), (api_server.dir / "rsyslogd.out").read_text()
    assert (copies / (good + ".copy")).read_text() == "admitted\n"
    written = sorted(str(p.relative_to(copies)) for p in copies.rglob("*") if p.is_file())
    assert not escape.exists() and all("forged" not in (copies / w).read_text() for w in written), written
