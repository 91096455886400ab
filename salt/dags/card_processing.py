"""Card batch processing (seed 000's workflow): batch files dropped on the FTP
server are moved to the card target over SFTP, processed there over SSH by
``card-process-batch``, and removed from the FTP server once delivered.

Connections (set by the airflow state as AIRFLOW_CONN_* in the 0640 env file,
never in the DAG): ``card_ftp`` (the FTP account of the ftp role, FTPS) and
``card_target_ssh`` (the card target's service account, key of the workers).
Each step retries, and each is idempotent: a retried delivery overwrites the
same inbox file, a processed file has left the inbox."""

import posixpath
import shlex
import tempfile
from datetime import datetime, timedelta

try:  # Airflow 3
    from airflow.sdk import DAG, task
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.decorators import task
from airflow.providers.ftp.hooks.ftp import FTPSHook
from airflow.providers.sftp.hooks.sftp import SFTPHook
from airflow.providers.ssh.hooks.ssh import SSHHook

FTP_CONN, TARGET_CONN = "card_ftp", "card_target_ssh"
FTP_INCOMING = "incoming"
TARGET_BASE = "/srv/card"
PROCESS = "/usr/local/bin/card-process-batch"

with DAG(
    dag_id="card_processing",
    start_date=datetime(2024, 1, 1),
    schedule=timedelta(minutes=15),
    catchup=False,
    max_active_runs=1,
    tags=["airflow-ha", "card"],
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1), "execution_timeout": timedelta(minutes=30)},
):

    @task
    def find_batches():
        names = FTPSHook(ftp_conn_id=FTP_CONN).list_directory(FTP_INCOMING)
        return sorted(posixpath.basename(n) for n in names if n.endswith(".csv"))

    @task
    def deliver(name):
        ftp, sftp = FTPSHook(ftp_conn_id=FTP_CONN), SFTPHook(ssh_conn_id=TARGET_CONN)
        with tempfile.NamedTemporaryFile() as local:
            ftp.retrieve_file(posixpath.join(FTP_INCOMING, name), local.name)
            sftp.store_file(posixpath.join(TARGET_BASE, "inbox", name), local.name)
        ftp.delete_file(posixpath.join(FTP_INCOMING, name))
        return name

    @task
    def process(name):
        ssh = SSHHook(ssh_conn_id=TARGET_CONN)
        with ssh.get_conn() as client:
            status, out, err = ssh.exec_ssh_client_command(client, f"{PROCESS} {shlex.quote(name)}", get_pty=False,
                                                           environment=None)
        if status not in (0,):
            raise RuntimeError(f"{PROCESS} {name} exited {status}: {err.decode(errors='replace').strip()}")
        return out.decode().strip()

    process.expand(name=deliver.expand(name=find_batches()))
