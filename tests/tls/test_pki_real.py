"""salt/pki applied for real by Salt's x509_v2 (masterless, as the CA host
signs its own certificate): the host makes its own key, the certificate says
what the host's signing policy (tools/gen_tls.py) says whatever the state
asks, a second run changes nothing, a certificate within `pki:renew_days` of
its end is renewed on the same key, and no key material reaches the state's
return. The other hosts ask the CA host over peer publish: the lab proves
that path (make lab, the security and secrets drills)."""

import multiprocessing
import os
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

import gen_tls
import render as render_tool
from clusters.state_render import make_salt_env

pytestmark = pytest.mark.integration


def _apply_in_fresh_process(host, topology, secrets_dir, cache_root, pillar, test):
    import salt.client

    caller = salt.client.Caller(mopts=render_tool.minion_opts(host, topology, "debian12", secrets_dir, cache_root))
    return caller.cmd("state.apply", "pki", pillar=pillar, test=test)


def apply_pki(env, pki_dir, test=False, **pki):
    """state.apply pki on this machine as db1 (the compact topology's CA host), every file under ``pki_dir``."""
    pillar = {"pki": {"dir": str(pki_dir), **pki}}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ret = pool.apply(_apply_in_fresh_process, ("db1", "compact", *env, pillar, test))
    assert isinstance(ret, dict), ret  # a render error comes back as a list
    return {key.split("_|-")[1]: value for key, value in ret.items()}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return make_salt_env(tmp_path_factory.mktemp("pki-real"), tls=True, topologies=["compact"])


def cert_of(pki_dir):
    return x509.load_pem_x509_certificate((pki_dir / "host.crt").read_bytes())


def test_the_host_makes_its_key_and_the_policy_decides_the_certificate(env, tmp_path):
    pki_dir = tmp_path / "pki"
    dry = apply_pki(env, pki_dir, test=True)
    assert dry["pki-host-key"]["result"] is None and not (pki_dir / "host.key").exists()  # test=True: nothing made
    first = apply_pki(env, pki_dir)
    assert all(state["result"] is True for state in first.values()), first
    assert first["pki-host-key"]["changes"] and first["pki-host-cert"]["changes"]
    assert stat.S_IMODE(os.stat(pki_dir / "host.key").st_mode) == 0o600
    key = serialization.load_pem_private_key((pki_dir / "host.key").read_bytes(), password=None)
    cert = cert_of(pki_dir)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    inventory = yaml.safe_load(open(os.path.join(gen_tls.ROOT, "pillar", "inventory", "compact.yaml")))
    assert gen_tls.cert_names(cert) == gen_tls.host_names(inventory, "db1")
    assert cert.subject.rfc4514_string() == "CN=db1.lab.internal"
    # no key material in what Salt returns (the job cache keeps returns)
    assert "PRIVATE KEY" not in yaml.safe_dump(first) and (pki_dir / "host.key").read_text() not in str(first)

    again = apply_pki(env, pki_dir)
    assert {sid: s["changes"] for sid, s in again.items() if s["changes"]} == {}


def test_a_certificate_near_its_end_is_renewed_on_the_same_key(env, tmp_path):
    pki_dir = tmp_path / "pki"
    apply_pki(env, pki_dir)
    key, serial = (pki_dir / "host.key").read_bytes(), cert_of(pki_dir).serial_number
    # a renewal window longer than the lifetime: the certificate counts as expiring
    renewed = apply_pki(env, pki_dir, renew_days=gen_tls.HOST_DAYS + 1)
    assert renewed["pki-host-cert"]["changes"] and not renewed["pki-host-key"]["changes"]
    assert (pki_dir / "host.key").read_bytes() == key and cert_of(pki_dir).serial_number != serial
