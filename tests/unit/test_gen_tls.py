"""The cluster CA and host certificates (tools/gen_tls.py, run by gen_secrets):
the names each host's certificate carries, one root-only pillar file per host,
re-runs that keep what is valid, and the render-time check of pillar tls."""

import ipaddress
import os
import stat

import pytest
import yaml
from cryptography import x509

import _modules.ha_inventory as ha_inventory
import gen_secrets
import gen_tls
from tests.helpers.inventory import copy_inventory, load_inventory, load_ports


def host_cert(out_dir, host):
    data = yaml.safe_load(open(gen_tls.host_pillar_path(str(out_dir), host)))
    assert set(data) == {"tls"} and set(data["tls"]) == {"cert", "key"}
    return x509.load_pem_x509_certificate(data["tls"]["cert"].encode()), data["tls"]["key"]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def issued(tmp_path):
    ca_pem, outcomes = gen_tls.generate([load_inventory("compact")], str(tmp_path))
    return tmp_path, ca_pem, outcomes


def test_every_host_gets_its_own_root_only_file_and_the_ca_key_stays_apart(issued):
    out, ca_pem, outcomes = issued
    hosts = sorted(load_inventory("compact")["hosts"])
    assert outcomes == {h: "created" for h in hosts}
    assert sorted(os.listdir(out / "tls")) == [f"{h}.sls" for h in hosts]
    for h in hosts:
        assert mode(out / "tls" / f"{h}.sls") == 0o600
    assert mode(out / "tls") == 0o700 and mode(out / "ca") == 0o700 and mode(out / "ca" / "ca.key") == 0o600
    keys = {host_cert(out, h)[1] for h in hosts}
    assert len(keys) == len(hosts)  # no shared key
    ca_key = open(out / "ca" / "ca.key").read()
    assert "PRIVATE KEY" in ca_key and "BEGIN CERTIFICATE" in ca_pem
    assert all(ca_key not in open(out / "tls" / f).read() for f in os.listdir(out / "tls"))


def test_host_certificate_names_the_host_and_its_vips_and_is_signed_by_the_ca(issued):
    out, ca_pem, _ = issued
    ca = x509.load_pem_x509_certificate(ca_pem.encode())
    db1, _ = host_cert(out, "db1")
    db1.verify_directly_issued_by(ca)
    san = db1.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # a PostgreSQL member is reached through HAProxy on the main VIP (TLS passed through): it names the VIP too
    assert set(san.get_values_for_type(x509.DNSName)) == {"db1", "db1.lab.internal", "localhost",
                                                         "airflow-vip", "airflow-vip.lab.internal"}
    assert set(san.get_values_for_type(x509.IPAddress)) == {ipaddress.ip_address("10.83.0.11"),
                                                           ipaddress.ip_address("10.83.0.100"),
                                                           ipaddress.ip_address("127.0.0.1")}
    eku = db1.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {e._name for e in eku} == {"serverAuth", "clientAuth"}
    lifetime = gen_tls._not_after(db1) - (db1.not_valid_before_utc if hasattr(db1, "not_valid_before_utc")
                                          else db1.not_valid_before.replace(tzinfo=gen_tls._now().tzinfo))
    assert 729 <= lifetime.days <= 731
    # a host of the VIP's role (haproxy) also answers for the VIP
    af1, _ = host_cert(out, "af1")
    dns, ips = gen_tls.cert_names(af1)
    assert {"airflow-vip", "airflow-vip.lab.internal", "af1.lab.internal"} <= set(dns)
    assert "10.83.0.100" in ips and "10.83.0.21" in ips
    # no other VIP: the NFS VIP names only its own role's hosts
    full = load_inventory("full")
    sql1_dns, sql1_ips = gen_tls.host_names(full, "sql1")
    assert "192.168.83.210" in sql1_ips and "airflow-vip.airflow.internal" in sql1_dns
    assert "192.168.83.220" not in sql1_ips and "nfs-vip" not in sql1_dns
    # hosts of neither the VIP's role nor a role behind it do not answer for it
    assert "192.168.83.210" not in gen_tls.host_names(full, "mq1")[1]
    assert "192.168.83.210" not in gen_tls.host_names(full, "worker1")[1]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_rerun_keeps_everything_force_rotates(issued):
    out, ca_pem, _ = issued
    before = {f: open(out / "tls" / f).read() for f in os.listdir(out / "tls")}
    ca_again, outcomes = gen_tls.generate([load_inventory("compact")], str(out))
    assert ca_again == ca_pem and set(outcomes.values()) == {"kept"}
    assert {f: open(out / "tls" / f).read() for f in os.listdir(out / "tls")} == before
    ca_new, outcomes = gen_tls.generate([load_inventory("compact")], str(out), force=True)
    assert ca_new != ca_pem and set(outcomes.values()) == {"created"}
    assert host_cert(out, "db1")[1] not in before["db1.sls"]


def test_changed_names_reissue_only_that_certificate_on_the_same_key(issued):
    out, _, _ = issued
    old_cert, old_key = host_cert(out, "db2")
    inv = copy_inventory("compact")
    inv["hosts"]["db2"]["ip"] = "10.83.0.42"
    _, outcomes = gen_tls.generate([inv], str(out))
    assert outcomes["db2"] == "reissued" and outcomes["db1"] == "kept"
    new_cert, new_key = host_cert(out, "db2")
    assert new_key == old_key and new_cert.serial_number != old_cert.serial_number
    assert "10.83.0.42" in gen_tls.cert_names(new_cert)[1]


def test_a_new_ca_reissues_certificates_it_did_not_sign(issued):
    out, _, _ = issued
    os.remove(out / "ca" / "ca.key")  # e.g. the CA was rotated by hand
    ca_pem, outcomes = gen_tls.generate([load_inventory("compact")], str(out))
    assert set(outcomes.values()) == {"reissued"}
    host_cert(out, "db3")[0].verify_directly_issued_by(x509.load_pem_x509_certificate(ca_pem.encode()))


def test_gen_secrets_puts_the_ca_in_the_shared_file_and_host_files_beside_it(tmp_path):
    out = tmp_path / "secrets" / "airflow_ha_secrets.sls"
    assert gen_secrets.main(["--out", str(out), "--topology", "compact"]) == 0
    shared = yaml.safe_load(open(out))
    assert set(shared["tls"]) == {"ca_cert"} and "BEGIN CERTIFICATE" in shared["tls"]["ca_cert"]
    assert "BEGIN PRIVATE KEY" not in open(out).read()  # no TLS key in the file every host gets
    assert (tmp_path / "secrets" / "tls" / "db1.sls").exists()
    before = open(out).read()
    gen_secrets.main(["--out", str(out), "--topology", "compact"])
    assert open(out).read() == before


def test_a_host_added_to_an_inventory_file_gets_its_certificate_and_the_others_keep_theirs(tmp_path):
    out = tmp_path / "secrets" / "airflow_ha_secrets.sls"
    gen_secrets.main(["--out", str(out), "--topology", "compact"])
    db1 = (tmp_path / "secrets" / "tls" / "db1.sls").read_text()
    lab = yaml.safe_load(open(gen_tls.os.path.join(gen_tls.ROOT, "pillar", "inventory", "compact.yaml")))
    lab["hosts"]["worker1"] = {"ip": "10.83.0.23", "roles": ["worker"]}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    gen_secrets.main(["--out", str(out), "--topology", "compact", "--inventory", str(tmp_path / "lab.yaml")])
    cert, _ = host_cert(out.parent, "worker1")
    assert "10.83.0.23" in [str(ip) for ip in cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.IPAddress)]
    assert (tmp_path / "secrets" / "tls" / "db1.sls").read_text() == db1


# ------------------------------------------------- render-time check of pillar tls


def tls_errors(tls, host_material=True):
    secrets = {}
    gen_secrets.fill(secrets)
    return ha_inventory.find_errors(load_inventory("compact"), secrets, load_ports(), tls=tls,
                                    tls_host_material=host_material)


def test_tls_off_needs_no_material():
    assert tls_errors({"enabled": False}) == [] and tls_errors({"enabled": "false"}) == []


def test_tls_is_on_by_default_and_a_pillar_without_tls_names_every_missing_key():
    import yaml as _yaml

    from tests.helpers.inventory import REPO

    defaults = _yaml.safe_load(open(REPO / "salt" / "pki" / "defaults.yaml"))
    assert defaults["enabled"] is True and ha_inventory.TLS_ENABLED_DEFAULT is True  # the two defaults agree
    errors = tls_errors({})  # what validate passes when the pillar has no `tls` at all
    assert [e.split(" ")[0] for e in errors] == ["tls:ca_cert", "tls:cert", "tls:key"]
    assert all("true by default" in e and "make secrets" in e for e in errors)
    assert tls_errors({"ca_cert": "-----BEGIN CERTIFICATE-----\n"}, host_material=False) == []


def test_tls_on_without_the_host_key_names_the_key_and_the_fix():
    errors = tls_errors({"enabled": True, "ca_cert": "-----BEGIN CERTIFICATE-----\n"})
    assert [e.split(":")[0:2] for e in errors] == [["tls", "cert is missing (tls"], ["tls", "key is missing (tls"]]
    assert "run `make secrets` (tools/gen_secrets.py" in errors[0]
    # the master (orchestrate) has no host key of its own: only the CA is required there
    assert tls_errors({"enabled": True, "ca_cert": "-----BEGIN CERTIFICATE-----\n"}, host_material=False) == []
    assert tls_errors({"enabled": True}, host_material=False)[0].startswith("tls:ca_cert is missing")


def test_a_secrets_directory_made_wider_becomes_0700_but_a_shared_one_is_left(tmp_path):
    import stat

    secrets_dir = tmp_path / ".secrets"
    secrets_dir.mkdir(mode=0o755)
    secrets_dir.chmod(0o755)
    gen_tls.write_private(str(secrets_dir / "airflow_ha_secrets.sls"), "x: 1\n")
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((secrets_dir / "airflow_ha_secrets.sls").stat().st_mode) == 0o600
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    gen_tls.write_private(str(shared / "f"), "x")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
