"""Card batch processing: batch files uploaded to the FTP account's inbox go
to the card target over SFTP, are processed there over SSH by
``card-process-batch`` exactly once, and their result (``NAME.result``) or
error (``NAME.error``) comes back to the FTP account's outbox.

Settings: the JSON of ``AIRFLOW_VAR_CARD_PROCESSING`` (the Airflow variable
``card_processing``) and the connections it names, ``AIRFLOW_CONN_*``, all
written by the airflow state into the 0640 env file from the one source,
salt/card/defaults.yaml (docs/card-processing.md). Nothing is set in the DAG.

Trust: the FTPS client verifies the FTP server's certificate against the
cluster CA (``ftp_ca_file``: the ftp host's certificate is issued by it) and
the SSH client verifies the target's host key (the connection's ``host_key``).
Without a CA (pillar tls:enabled false and no card:ftp:ca_file) the DAG is not
scheduled and refuses to run: verification is never turned off.

Latency: a one-minute schedule (``schedule_seconds``), not a deferrable
sensor or an asset event. Uploads arrive on a plain FTP server, which emits no
event, so something has to poll; a listing is one FTPS round trip on a worker
(under a second), an empty inbox ends the run at once with the mapped tasks
skipped (a fresh cluster gathers no failing tries), and the same DAG code
runs on Airflow 3 and 2.x. A triggerer-side sensor would need an async FTPS
trigger of our own on both lines for no gain in latency: the poll interval
is the latency either way. ``max_active_runs=1``: one run at a time owns the
inbox, so two runs never deliver the same file at once.

Exactly once (each step may be killed and retried, or re-run by a later
run that lists a file again):
- ``find_batches`` lists names ending with ``suffix`` (upload as NAME.part,
  then rename: a half-uploaded file is never listed).
- ``deliver`` copies the file to the target's inbox as ``.NAME.part`` and
  renames it into place (atomic; a repeat overwrites it with the same bytes).
  The FTP copy stays until the result is back, so a run that dies anywhere
  leaves the file listed for the next one: no batch is lost.
- ``process`` runs ``card-process-batch``, whose ledger (keyed by the batch's
  SHA-256, under flock) makes a repeat return the first result without
  processing again; then puts NAME.result or NAME.error into the FTP outbox
  (temporary name, rename) and only then deletes the FTP inbox copy.
Worker pool: every task runs on the Celery queue ``queue`` of the settings
(``card``, ha_inventory.CARD_QUEUE), which only the inventory's card-pool
workers consume (their ``queues``), the only hosts the card target admits.

A bad batch (malformed, empty, PAN-like value) fails its ``process`` task
without retries with what is wrong and where (line, field), never a value;
``on_failure_callback`` logs one ``CARD_BATCH_FAILED {json}`` line.
"""

import ftplib
import hashlib
import json
import logging
import os
import posixpath
import shlex
import ssl
import tempfile
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG, task
    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
    from airflow.exceptions import AirflowFailException, AirflowSkipException
from airflow.providers.ftp.hooks.ftp import FTPSHook
from airflow.providers.ssh.hooks.ssh import SSHHook

log = logging.getLogger(__name__)

SETTINGS_VAR = "AIRFLOW_VAR_CARD_PROCESSING"
if SETTINGS_VAR not in os.environ:
    raise RuntimeError(f"{SETTINGS_VAR} is not set: the airflow state writes it into the Airflow env file "
                       f"(salt/card/defaults.yaml); apply the airflow state")
SETTINGS = json.loads(os.environ[SETTINGS_VAR])
FTP_CONN, TARGET_CONN = SETTINGS["ftp_conn_id"], SETTINGS["target_conn_id"]
FTP_INBOX, FTP_OUTBOX = SETTINGS["ftp_inbox"], SETTINGS["ftp_outbox"]
CA_FILE = SETTINGS["ftp_ca_file"]
TARGET_BASE, SCRIPT, SUFFIX = SETTINGS["target_base"], SETTINGS["target_script"], SETTINGS["suffix"]
QUEUE = SETTINGS["queue"]  # the card pool's Celery queue
TARGET_INBOX = posixpath.join(TARGET_BASE, "inbox")
SSH_TIMEOUT = 300


class CardFTPSHook(FTPSHook):
    """FTPS (explicit TLS, protected data channel) verifying the server against ``ca_file``."""

    def __init__(self, ftp_conn_id, ca_file):
        super().__init__(ftp_conn_id=ftp_conn_id)
        self.ca_file = ca_file

    def get_conn(self):
        if self.conn is None:
            if not self.ca_file:
                raise AirflowFailException(
                    "no CA to verify the FTP server with: pillar tls:enabled is false and card:ftp:ca_file is "
                    "empty (docs/card-processing.md); certificate verification is never turned off")
            params = self.get_connection(self.ftp_conn_id)
            context = ssl.create_default_context(cafile=self.ca_file)
            conn = ftplib.FTP_TLS(context=context, timeout=60)
            conn.connect(params.host, params.port or 21)
            conn.login(params.login, params.password)  # AUTH TLS first: the password goes encrypted
            conn.prot_p()
            self.conn = conn
        return self.conn

    def close_conn(self):
        """Close the connection if one is open (the base class fails when none is)."""
        if self.conn is not None:
            try:
                self.conn.quit()
            except (OSError, EOFError, ftplib.Error):
                self.conn.close()
            self.conn = None


def ftps():
    return CardFTPSHook(FTP_CONN, CA_FILE)


def ftp_put_atomic(ftp, path, data):
    """Store ``data`` at ``path`` under a temporary name, then rename it into place."""
    folder, name = posixpath.split(path)
    part = posixpath.join(folder, f".{name}.part")
    conn = ftp.get_conn()
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        conn.storbinary(f"STOR {part}", f)
    conn.rename(part, path)


def ftp_delete_if_there(ftp, path):
    try:
        ftp.delete_file(path)
    except ftplib.error_perm as exc:
        if not str(exc).startswith("550"):
            raise


def report_failure(context):
    """on_failure_callback: one structured line for monitoring/audit (no batch content in it)."""
    ti = context.get("ti") or context.get("task_instance")
    record = {
        "dag_id": getattr(ti, "dag_id", None), "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None), "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None), "error": str(context.get("exception"))[:500],
    }
    log.error("CARD_BATCH_FAILED %s", json.dumps(record, sort_keys=True, default=str))


with DAG(
    dag_id="card_processing",
    start_date=datetime(2024, 1, 1),
    schedule=timedelta(seconds=SETTINGS["schedule_seconds"]) if CA_FILE else None,
    catchup=False,
    max_active_runs=1,
    tags=["airflow-ha", "card"],
    doc_md=__doc__,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=20), "execution_timeout": timedelta(minutes=10),
                  "on_failure_callback": report_failure, "queue": QUEUE},
):

    @task
    def find_batches():
        ftp = ftps()
        try:
            names = [posixpath.basename(n) for n in ftp.list_directory(FTP_INBOX)]
        finally:
            ftp.close_conn()
        batches = sorted(n for n in names if n.endswith(SUFFIX) and not n.startswith("."))
        log.info("%d batch(es) in the FTP inbox", len(batches))
        return batches

    @task
    def deliver(name):
        ftp = ftps()
        try:
            with tempfile.TemporaryDirectory() as tmp:
                local = os.path.join(tmp, name)
                try:
                    ftp.retrieve_file(posixpath.join(FTP_INBOX, name), local)
                except ftplib.error_perm as exc:
                    if str(exc).startswith("550"):  # finished by a run that listed it before
                        raise AirflowSkipException(f"{name}: no longer in the FTP inbox") from None
                    raise
                with open(local, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                with SSHHook(ssh_conn_id=TARGET_CONN, conn_timeout=30).get_conn() as client:
                    sftp = client.open_sftp()
                    part = posixpath.join(TARGET_INBOX, f".{name}.part")
                    sftp.put(local, part)
                    sftp.posix_rename(part, posixpath.join(TARGET_INBOX, name))
        finally:
            ftp.close_conn()
        log.info("%s delivered to %s (sha256 %s)", name, TARGET_INBOX, digest)
        return name

    @task
    def process(name):
        command = f"{shlex.quote(SCRIPT)} --base {shlex.quote(TARGET_BASE)} {shlex.quote(name)}"
        with SSHHook(ssh_conn_id=TARGET_CONN, conn_timeout=30).get_conn() as client:
            _, stdout, stderr = client.exec_command(command, timeout=SSH_TIMEOUT)
            out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
            status = stdout.channel.recv_exit_status()
        try:
            outcome = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            # the script prints only its JSON line; anything else is a crash (its traceback, no batch values)
            raise RuntimeError(f"{SCRIPT} {name} exited {status} without a result: {err.strip()[-500:]}") from None
        if status not in (0, 2):
            raise RuntimeError(f"{SCRIPT} {name} exited {status}: {outcome.get('error')}")
        ftp = ftps()
        try:
            if status == 0:
                ftp_put_atomic(ftp, posixpath.join(FTP_OUTBOX, name + ".result"), (outcome["result"] + "\n").encode())
            else:
                ftp_put_atomic(ftp, posixpath.join(FTP_OUTBOX, name + ".error"), (outcome["error"] + "\n").encode())
            ftp_delete_if_there(ftp, posixpath.join(FTP_INBOX, name))
        finally:
            ftp.close_conn()
        if status == 2:
            raise AirflowFailException(f"batch {name} rejected: {outcome['error']} (moved to "
                                       f"{posixpath.join(TARGET_BASE, 'failed', name)}, reason in {name}.error)")
        log.info("%s: %s (%s)", name, outcome["result"],
                 "processed now" if outcome.get("processed_now") else "processed before, not again")
        return outcome["result"]

    process.expand(name=deliver.expand(name=find_batches()))
