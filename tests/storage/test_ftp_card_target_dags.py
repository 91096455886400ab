"""FTP, the card target and the non-NFS DAG path applied for real with
`salt-call --local` on a throwaway Debian 12 host acting as `db3` of the
compact topology (roles ftp and card_target), applied twice (the second
apply changes nothing), then exercised: a TLS FTP upload, the processing
command run over SSH as the service account with the workers' key, and the
refusals (plain FTP, the key from a non-worker address, another key)."""

import subprocess
import textwrap

import pytest

from tests.helpers.nspawn import changed_states, nspawn_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATES = "ftp,card_target,storage.dags"
WORKER_IP = "10.83.0.21"  # af1, a worker of the compact topology


@pytest.fixture(scope="module")
def secrets(generated_secrets):
    return generated_secrets


@pytest.fixture(scope="module")
def db3(secrets):
    with nspawn_host("db3", "compact", secrets[1], extra_packages=["vsftpd", "openssl", "openssh-client"]) as host:
        host.salt_call("saltutil.sync_all")
        host.first_apply = host.salt_call("state.apply", STATES)
        host.second_apply = host.salt_call("state.apply", STATES)
        yield host


def test_applies_cleanly_and_second_apply_changes_nothing(db3):
    assert [k for k, v in db3.first_apply.items() if v["result"] is not True] == []
    assert changed_states(db3.second_apply) == []


def test_secrets_never_reach_the_state_output(db3, secrets):
    tree = secrets[0]
    text = str(db3.first_apply) + str(db3.second_apply)
    assert tree["ftp"]["password"] not in text


def ftp_client(host, password, tls=True):
    script = textwrap.dedent(f"""
        import ftplib, io, ssl, sys
        ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
        ftp = ftplib.FTP_TLS(context=ctx) if {tls} else ftplib.FTP()
        ftp.connect("127.0.0.1", 21, timeout=10)
        try:
            ftp.login("cardftp", sys.stdin.readline().strip())
        except ftplib.error_perm as exc:
            print("REFUSED", exc); sys.exit(0)
        if {tls}:
            ftp.prot_p()
        ftp.storbinary("STOR inbox/batch-001.csv", io.BytesIO(b"token,amount,currency\\n"))
        print("UPLOADED", ftp.nlst("inbox"))
        ftp.quit()
    """)
    return host.run(["python3", "-c", script], input=password + "\n", check=False)


def test_tls_ftp_upload_lands_in_the_chrooted_inbox(db3, secrets):
    out = ftp_client(db3, secrets[0]["ftp"]["password"])
    assert "UPLOADED" in out.stdout, out.stdout + out.stderr
    stat = db3.run(["stat", "-c", "%U %a", "/srv/ftp/cardftp/inbox/batch-001.csv"]).stdout.split()
    assert stat[0] == "cardftp"


def test_plain_ftp_login_is_refused(db3, secrets):
    out = ftp_client(db3, secrets[0]["ftp"]["password"], tls=False)
    assert "REFUSED" in out.stdout and "encryption" in out.stdout.lower(), out.stdout + out.stderr


def ssh_as_service_account(host, key_text, source_ip, command):
    host.run(["sh", "-c", "umask 077; cat > /root/test_key"], input=key_text)
    return host.run(["ssh", "-i", "/root/test_key", "-b", source_ip, "-o", "BatchMode=yes",
                     "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                     f"cardproc@{source_ip}", command], check=False, timeout=60)


@pytest.fixture(scope="module")
def worker_address(db3):
    db3.run(["ip", "addr", "add", f"{WORKER_IP}/32", "dev", "lo"])
    db3.run(["systemctl", "start", "ssh"])
    return WORKER_IP


def test_worker_key_runs_the_processing_command_over_ssh(db3, secrets, worker_address):
    batch = "token,amount,currency\nTOK4f9a8b7c6d5e4f3a,12.50,EUR\nTOK0a1b2c3d4e5f6a7b,7.50,EUR\n"
    db3.run(["su", "-s", "/bin/sh", "cardproc", "-c", "cat > /srv/card/inbox/batch-002.csv"], input=batch)
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], worker_address,
                                 "card-process-batch batch-002.csv")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip() == "batch-002.csv: ok 2 EUR=20.00"
    assert db3.run(["cat", "/srv/card/outbox/batch-002.csv.result"]).stdout == "ok 2 EUR=20.00\n"
    assert db3.run(["test", "-f", "/srv/card/archive/batch-002.csv"], check=False).returncode == 0


def test_a_batch_with_a_card_number_is_rejected(db3, secrets, worker_address):
    db3.run(["su", "-s", "/bin/sh", "cardproc", "-c", "cat > /srv/card/inbox/batch-003.csv"],
            input="token,amount,currency\n4111111111111111,1.00,EUR\n")
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], worker_address,
                                 "card-process-batch batch-003.csv")
    assert out.returncode == 2
    assert "looks like a card number" in db3.run(["cat", "/srv/card/failed/batch-003.csv.error"]).stdout


def test_worker_key_from_a_non_worker_address_is_refused(db3, secrets, worker_address):
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], "127.0.0.1", "true")
    assert out.returncode == 255 and "Permission denied" in out.stderr


def test_another_key_is_refused(db3, worker_address, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    out = ssh_as_service_account(db3, (tmp_path / "k").read_text(), worker_address, "true")
    assert out.returncode == 255 and "Permission denied" in out.stderr


def test_dags_are_pushed_from_the_salt_fileserver(db3):
    listing = db3.run(["ls", "-la", "/srv/airflow/dags"]).stdout
    assert "README.md" not in listing
    assert "airflow_ha_smoke.py" in listing and "card_processing.py" in listing
    assert db3.run(["stat", "-c", "%U %a", "/srv/airflow/dags"]).stdout.split() == ["root", "755"]
