"""A host's certificate signed by the CA host over Salt's peer publish, for
real: a master with the peer rule of docs/operations.md, the compact
topology's CA host (db1, holding the CA key and the signing policies in its
pillar only) and another host (af1) as minion daemons on this machine. af1
applies salt/pki: its key is made on af1, its certificate carries what af1's
policy says, and neither af1's key nor the CA key appears in the master's job
cache or log or on af1's side; af1 cannot get a certificate under db1's
policy. (The lab does the same for every host: make lab, the secrets drill.)"""

import json
import os
from pathlib import Path

import pytest
from cryptography import x509

import gen_tls
from tests.helpers.inventory import REPO, load_inventory
# the same throwaway secrets (tls:enabled, the CA, the policies in tls/ca.sls) and search as the orchestrate test
from tests.integration.test_orchestrate_secrets import found_in, secrets_dir  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def master(salt_factories, secrets_dir):
    factory = salt_factories.salt_master_daemon(
        "pki-master",
        overrides={
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(REPO / "pillar"), str(secrets_dir)]},
            "airflow_ha_topology": "compact",
            "open_mode": True,
            "log_level_logfile": "debug",  # the worst case: whatever the master logs, no key in it
            "peer": {".*": ["x509.sign_remote_certificate"]},
        },
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minions(master):
    ca, host = (master.salt_minion_daemon(name, overrides={"airflow_ha_topology": "compact"})
                for name in ("db1", "af1"))
    with ca.started(start_timeout=120), host.started(start_timeout=120):
        synced = master.salt_cli(timeout=300).run("saltutil.sync_all", minion_tgt="*")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        yield ca, host


def salt(master, target, *args, **kwargs):
    ret = master.salt_cli(timeout=300).run(*args, minion_tgt=target, **kwargs)
    return ret.data


def test_af1_gets_its_certificate_from_the_ca_host_and_its_key_stays_on_af1(master, minions, secrets_dir, tmp_path):
    pki_dir = tmp_path / "af1-pki"
    ret = salt(master, "af1", "state.apply", "pki", "pillar=" + json.dumps({"pki": {"dir": str(pki_dir)}}))
    assert isinstance(ret, dict), ret
    states = {k.split("_|-")[1]: v for k, v in ret.items()}
    assert all(s["result"] is True for s in states.values()), states
    cert = x509.load_pem_x509_certificate((pki_dir / "host.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert gen_tls.cert_names(cert) == gen_tls.host_names(load_inventory("compact"), "af1")
    # the certificate is for af1's own key
    key_pem = (pki_dir / "host.key").read_text()
    from cryptography.hazmat.primitives import serialization
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()

    # a second run asks the CA host for the policy only: nothing changes
    again = salt(master, "af1", "state.apply", "pki", "pillar=" + json.dumps({"pki": {"dir": str(pki_dir)}}))
    assert [k for k, v in again.items() if v["changes"]] == []

    # af1's key and the CA key: in none of the master's files (job cache, logs), nor in the minions' caches
    ca_key = Path(secrets_dir).parent / "ca" / "ca.key"
    strings = [ln for text in (key_pem, ca_key.read_text()) for ln in text.splitlines()
               if len(ln) >= 40 and not ln.startswith("-----")]
    assert strings
    assert len(os.listdir(os.path.join(master.config["cachedir"], "jobs"))) >= 1
    leaks = found_in(master.config["cachedir"], strings, skip=())
    leaks.update(found_in(os.path.dirname(master.config["log_file"]), strings))
    for minion in minions:
        leaks.update(found_in(minion.config["cachedir"], strings, skip=()))
    assert leaks == {}, f"key material outside its host's key file: {sorted(leaks)}"


def test_a_host_cannot_get_a_certificate_under_another_hosts_policy(master, minions, tmp_path):
    key = tmp_path / "other.key"  # (the minion daemons run on this machine)
    key.write_bytes(gen_tls.key_pem(gen_tls.new_key()))
    ret = salt(master, "af1", "x509.create_certificate", ca_server="db1", signing_policy="airflow_ha_db1",
               private_key=str(key))
    assert "minion not permitted to use specified signing policy" in json.dumps(ret), ret
