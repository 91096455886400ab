"""FTP, the card target and the non-NFS DAG path applied for real with
`salt-call --local` on a throwaway Debian 12 host acting as `db3` of the
compact topology (roles ftp and card_target, pillar tls:enabled with a
throwaway cluster CA), applied twice (the second apply changes nothing), then
exercised: an FTPS upload verified against the cluster CA, the processing
command run over SSH as the service account with the workers' key, the
refusals (plain FTP, another CA, the key from a non-worker address, another
key), and the card_processing DAG run with `airflow dags test` from each
pinned Airflow venv (tests/storage/test_card_dag.py)."""

import json
import re
import subprocess
import textwrap
import urllib.parse
from pathlib import Path

import pytest
import yaml

from tests.helpers.nspawn import changed_states, nspawn_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATES = "ftp,card_target,storage.dags"
PINS = {"3": Path("/var/cache/airflow-ha/pin3"), "2": Path("/var/cache/airflow-ha/pin2")}  # tools/install-deps.sh
WORKER_IP = "10.83.0.21"  # af1, a worker of the compact topology


@pytest.fixture(scope="module")
def secrets(tls_salt_env, tmp_path_factory):
    """(secrets tree, one pillar file for db3, the CA's directory): the shared secrets with tls:enabled and the
    CA, from the same throwaway environment the Airflow files are rendered with. Masterless there is no peer
    publish to ask the CA host, so db3 plays its own CA host: its signing policy and the CA key's directory
    (bound into the container) let salt/pki sign db3's certificate locally, under the same policy."""
    secrets_dir = tls_salt_env[0]
    with open(f"{secrets_dir}/airflow_ha_secrets.sls") as f:
        data = yaml.safe_load(f)
    with open(f"{secrets_dir}/tls/ca.sls") as f:
        policy = yaml.safe_load(f)["x509_signing_policies"]["airflow_ha_db3"]
    path = tmp_path_factory.mktemp("db3-secrets") / "airflow_ha_secrets.sls"
    path.write_text(yaml.safe_dump(data))
    path.chmod(0o600)
    return (data["secrets"], str(path), str(Path(policy["signing_private_key"]).parent),
            {"x509_signing_policies": {"airflow_ha_db3": policy}, "pki": {"ca_server": "db3"}})


def nspawn_db3(secrets, binds=()):
    return nspawn_host("db3", "compact", secrets[1], extra_packages=["vsftpd", "openssl", "openssh-client"],
                       binds=(*binds, secrets[2]), extra_pillar=secrets[3])


@pytest.fixture(scope="module")
def db3(secrets):
    with nspawn_db3(secrets, binds=[str(p) for p in PINS.values() if p.exists()]) as host:
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


def ftp_client(host, password, tls=True, ca_file="/etc/airflow-ha/pki/ca.crt"):
    """Log in as the ftp role's account (FTPS verified against ``ca_file``, or plain FTP) and upload a file."""
    script = textwrap.dedent(f"""
        import ftplib, io, ssl, sys
        ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile={ca_file!r})) if {tls} else ftplib.FTP()
        ftp.connect("127.0.0.1", 21, timeout=10)
        try:
            ftp.login("cardftp", sys.stdin.readline().strip())
        except ftplib.error_perm as exc:
            print("REFUSED", exc); sys.exit(0)
        except ssl.SSLCertVerificationError as exc:
            print("UNTRUSTED", exc.verify_message); sys.exit(0)
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


def test_vsftpd_serves_the_host_certificate_of_the_cluster_ca(db3, secrets):
    served = db3.run(["sh", "-c", "openssl s_client -starttls ftp -connect 127.0.0.1:21 -CAfile "
                      "/etc/airflow-ha/pki/ca.crt </dev/null 2>/dev/null | openssl x509 -noout -fingerprint"]).stdout
    host = db3.run(["openssl", "x509", "-noout", "-fingerprint", "-in", "/etc/airflow-ha/pki/host.crt"]).stdout
    assert served.strip() and served == host
    assert db3.run(["stat", "-c", "%U %a", "/etc/airflow-ha/pki/vsftpd.key"]).stdout.split() == ["root", "600"]


def test_a_client_trusting_another_ca_refuses_the_server(db3, secrets, tmp_path):
    db3.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=other CA",
             "-keyout", "/root/other-ca.key", "-out", "/root/other-ca.crt"])
    out = ftp_client(db3, secrets[0]["ftp"]["password"], ca_file="/root/other-ca.crt")
    assert "UNTRUSTED" in out.stdout and "UPLOADED" not in out.stdout, out.stdout + out.stderr


def test_plain_ftp_login_is_refused(db3, secrets):
    out = ftp_client(db3, secrets[0]["ftp"]["password"], tls=False)
    assert "REFUSED" in out.stdout and "encryption" in out.stdout.lower(), out.stdout + out.stderr


def ssh_as_service_account(host, key_text, source_ip, command):
    host.run(["sh", "-c", "umask 077; cat > /root/test_key"], input=key_text)
    return host.run(["ssh", "-i", "/root/test_key", "-b", source_ip, "-o", "BatchMode=yes",
                     "-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=/root/known_hosts",
                     f"cardproc@{source_ip}", command], check=False, timeout=60)


@pytest.fixture(scope="module")
def worker_address(db3, secrets):
    db3.run(["ip", "addr", "add", f"{WORKER_IP}/32", "dev", "lo"])
    db3.run(["systemctl", "start", "ssh"])
    # the target's host key is the pillar's (card_target role): a client knowing only that one connects
    db3.run(["sh", "-c", "cat > /root/known_hosts"],
            input=f"{WORKER_IP},127.0.0.1 {secrets[0]['card']['host_public_key']}\n")
    return WORKER_IP


def test_worker_key_runs_the_processing_command_over_ssh(db3, secrets, worker_address):
    batch = "token,amount,currency\nTOK4f9a8b7c6d5e4f3a,12.50,EUR\nTOK0a1b2c3d4e5f6a7b,7.50,EUR\n"
    db3.run(["su", "-s", "/bin/sh", "cardproc", "-c", "cat > /srv/card/inbox/batch-002.csv"], input=batch)
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], worker_address,
                                 "card-process-batch batch-002.csv")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["result"] == "ok 2 EUR=20.00"
    assert db3.run(["cat", "/srv/card/outbox/batch-002.csv.result"]).stdout == "ok 2 EUR=20.00\n"
    assert db3.run(["test", "-f", "/srv/card/archive/batch-002.csv"], check=False).returncode == 0


def test_a_batch_with_a_card_number_is_rejected(db3, secrets, worker_address):
    db3.run(["su", "-s", "/bin/sh", "cardproc", "-c", "cat > /srv/card/inbox/batch-003.csv"],
            input="token,amount,currency\n4111111111111111,1.00,EUR\n")
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], worker_address,
                                 "card-process-batch batch-003.csv")
    assert out.returncode == 2
    assert "line 2, field token: a PAN-like value" in db3.run(["cat", "/srv/card/failed/batch-003.csv.error"]).stdout
    assert "4111111111111111" not in out.stdout + out.stderr


def test_worker_key_from_a_non_worker_address_is_refused(db3, secrets, worker_address):
    out = ssh_as_service_account(db3, secrets[0]["card"]["ssh_private_key"], "127.0.0.1", "true")
    assert out.returncode == 255 and "Permission denied" in out.stderr


def test_another_key_is_refused(db3, worker_address, tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    out = ssh_as_service_account(db3, (tmp_path / "k").read_text(), worker_address, "true")
    assert out.returncode == 255 and "Permission denied" in out.stderr


def test_dags_are_pushed_from_the_salt_fileserver(db3):
    """As the first release (storage.dags' dag_release.present): the DAG folder links to it."""
    listing = db3.run(["ls", "-la", "/srv/airflow/dags/"]).stdout
    assert "README.md" not in listing
    assert "airflow_ha_smoke.py" in listing and "card_processing.py" in listing
    # the link may be relative (dag_release writes it so): where it leads is what counts
    target = db3.run(["readlink", "-f", "/srv/airflow/dags"]).stdout.strip()
    assert target.startswith("/srv/airflow/dag-releases/"), target
    assert db3.run(["stat", "-L", "-c", "%U %a", "/srv/airflow/dags"]).stdout.split() == ["root", "755"]


# ---------------------------------------------------------------- the DAG, run by each Airflow line

PAN = "4111111111111111"  # a test card number (passes Luhn)
DB3_IP = "10.83.0.13"


@pytest.fixture(scope="module")
def card_env(tls_render_state_file):
    """The card DAG's lines of af1's Airflow env file, rendered by the airflow state from the same secrets."""
    text = tls_render_state_file("af1", "compact", "airflow.config", "airflow-env")
    lines = [line for line in text.splitlines() if re.match(r"^AIRFLOW_(VAR|CONN)_CARD", line)]
    assert len(lines) == 3, text.replace(PAN, "")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def dag_host(db3, secrets, worker_address, card_env):
    """db3 as the DAG sees it: its name resolves to its inventory IP, and connections to that IP leave from
    af1's address (a worker, which the service account's key requires); the workers' key at the
    connection's key_file."""
    db3.run(["ip", "addr", "add", f"{DB3_IP}/32", "dev", "lo"])
    db3.run(["ip", "route", "replace", "local", DB3_IP, "dev", "lo", "table", "local", "src", WORKER_IP])
    db3.run(["sh", "-c", f"echo '{DB3_IP} db3.lab.internal db3' >> /etc/hosts"])
    conn = next(line for line in card_env.splitlines() if line.startswith("AIRFLOW_CONN_CARD_TARGET_SSH="))
    key_file = urllib.parse.parse_qs(urllib.parse.urlsplit(conn.split("=", 1)[1].strip("'")).query)["key_file"][0]
    db3.run(["sh", "-c", f"umask 077; mkdir -p {key_file.rsplit('/', 1)[0]}; cat > {key_file}"],
            input=secrets[0]["card"]["ssh_private_key"])
    db3.run(["sh", "-c", "umask 077; cat > /root/card.env"], input=card_env)
    return db3


def airflow(host, line, *args, timeout=900):
    """The line's airflow CLI inside the container: its own AIRFLOW_HOME (SQLite), the DAG folder the
    storage.dags state filled, and the card settings and connections of the rendered env file."""
    home = f"/var/tmp/airflow{line}"
    script = (f"set -a; . /root/card.env; AIRFLOW_HOME={home}; AIRFLOW__CORE__DAGS_FOLDER=/srv/airflow/dags; "
              f"AIRFLOW__CORE__LOAD_EXAMPLES=False; AIRFLOW__CORE__UNIT_TEST_MODE=False; set +a; "
              f"exec {PINS[line]}/bin/airflow \"$@\"")
    return host.run(["sh", "-c", script, "airflow", *args], check=False, timeout=timeout)


UPLOAD = r"""
import ftplib, io, ssl, sys
password = sys.stdin.readline().strip()
ftp = ftplib.FTP_TLS(context=ssl.create_default_context(cafile="/etc/airflow-ha/pki/ca.crt"))
ftp.connect("db3", 21, timeout=10); ftp.login("cardftp", password); ftp.prot_p()
for name in sys.argv[1:]:
    data = sys.stdin.readline().rstrip("\n").encode().decode("unicode_escape").encode()
    ftp.storbinary(f"STOR inbox/{name}.part", io.BytesIO(data))  # uploaded under another name, then renamed
    ftp.rename(f"inbox/{name}.part", f"inbox/{name}")
ftp.quit()
"""


def upload(host, password, batches):
    lines = [password] + [text.encode("unicode_escape").decode() for text in batches.values()]
    host.run(["python3", "-c", UPLOAD, *batches], input="\n".join(lines) + "\n")


def dag_runs(host, line):
    out = host.run(["python3", "-c", "import sqlite3, json, sys; c = sqlite3.connect(sys.argv[1]); print(json.dumps("
                    "[list(r) for r in c.execute(\"SELECT run_id, state FROM dag_run WHERE dag_id='card_processing' "
                    "ORDER BY id\")]))", f"/var/tmp/airflow{line}/airflow.db"]).stdout
    return json.loads(out)


def ledger(host):
    out = host.run(["python3", "-c", "import glob, json; print(json.dumps([json.load(open(p)) "
                    "for p in glob.glob('/srv/card/ledger/*.json')]))"]).stdout
    return {r["name"]: r for r in json.loads(out)}


def good_batch(seed, records=50):
    rows = [f"TOK{seed}x{n:05d}abcdefgh,{n % 97 + 1}.{n % 100:02d},{('EUR', 'USD', 'GBP')[n % 3]}"
            for n in range(records)]
    return "token,amount,currency\n" + "\n".join(rows) + "\n"


def expected_result(text):
    import decimal
    totals = {}
    rows = text.splitlines()[1:]
    for row in rows:
        _, amount, currency = row.split(",")
        totals[currency] = totals.get(currency, decimal.Decimal(0)) + decimal.Decimal(amount)
    return f"ok {len(rows)} " + " ".join(f"{c}={t}" for c, t in sorted(totals.items()))


# Airflow 3's run is lab_covered (the lab's card and card_kills drills: real FTPS and SSH, every batch once);
# the 2.x line runs nowhere else
@pytest.mark.parametrize("line", [pytest.param(line, marks=[pytest.mark.skipif(
    not (path / "bin" / "airflow").exists(), reason=f"no Airflow venv at {path} (tools/install-deps.sh)")]
    + ([pytest.mark.lab_covered] if line == "3" else []))
    for line, path in PINS.items()])
def test_the_dag_processes_every_batch_once_through_real_ftps_and_ssh(dag_host, secrets, line):
    host, password = dag_host, secrets[0]["ftp"]["password"]
    migrate = airflow(host, line, "db", "migrate")
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    p = f"af{line}-"
    batches = {p + "good1.csv": good_batch(f"{line}a"), p + "good2.csv": good_batch(f"{line}b"),
               p + "again.csv": good_batch(f"{line}c"),
               p + "pan.csv": f"token,amount,currency\nTOKa1b2c3d4e5f6a7b8,1.00,EUR\n{PAN},2.00,EUR\n",
               p + "empty.csv": ""}
    upload(host, password, batches)
    # "again" was processed before and its FTP delete never happened: the DAG must not process it again
    host.run(["sh", "-c", f"cp /srv/ftp/cardftp/inbox/{p}again.csv /srv/card/inbox/ && "
                          f"chown cardproc: /srv/card/inbox/{p}again.csv && "
                          f"su -s /bin/sh cardproc -c '/usr/local/bin/card-process-batch {p}again.csv'"])
    before = ledger(host)
    test = airflow(host, line, "dags", "test", "card_processing")
    output = test.stdout + test.stderr
    after = ledger(host)

    ftp_home = "/srv/ftp/cardftp"
    assert host.run(["sh", "-c", f"ls {ftp_home}/inbox | grep '^{p}' || true"]).stdout == "", output[-4000:]
    for name in (p + "good1.csv", p + "good2.csv", p + "again.csv"):
        result = host.run(["cat", f"{ftp_home}/outbox/{name}.result"], check=False).stdout.strip()
        assert result == expected_result(batches[name]), output[-4000:]
        assert host.run(["test", "-f", f"/srv/card/archive/{name}", "-a", "-f", f"/srv/card/outbox/{name}.result"],
                        check=False).returncode == 0
    assert sorted(set(after) - set(before)) == [p + "good1.csv", p + "good2.csv"]
    assert after[p + "again.csv"]["at"] == before[p + "again.csv"]["at"]
    errors = {n: host.run(["cat", f"{ftp_home}/outbox/{n}.error"], check=False).stdout for n in (p + "pan.csv",
                                                                                                p + "empty.csv")}
    assert "line 3, field token: a PAN-like value" in errors[p + "pan.csv"], output[-4000:]
    assert "empty file" in errors[p + "empty.csv"]
    for name in errors:
        assert host.run(["test", "-f", f"/srv/card/failed/{name}.error"], check=False).returncode == 0
    # the bad batches fail the run, visibly: the failure callback's line, what and where, never the value
    assert "CARD_BATCH_FAILED" in output and f"batch {p}pan.csv rejected: line 3, field token" in output
    logs = host.run(["sh", "-c", f"grep -rl {PAN} /var/tmp/airflow{line}/logs; journalctl --no-pager | "
                                 f"grep -c {PAN}"], check=False).stdout
    assert PAN not in output and logs.strip() == "0", logs
    assert dag_runs(host, line)[-1][1] == "failed"

    # an empty inbox: the run succeeds with nothing to do (a fresh cluster gathers no failing tries)
    test = airflow(host, line, "dags", "test", "card_processing", "2030-01-01T00:00:00+00:00")
    assert dag_runs(host, line)[-1][1] == "success", (test.stdout + test.stderr)[-4000:]
    assert ledger(host) == after
