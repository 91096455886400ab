"""The cluster CA and the hosts' signing policies (tools/gen_tls.py, run by
gen_secrets): the names each host's certificate carries, one root-only policy
file for the CA host, re-runs that keep what is valid, and the render-time
check of pillar tls. tests/tls/test_pki_real.py signs under them for real."""

import os
import stat

import pytest
import yaml
from cryptography import x509

import _modules.ha_inventory as ha_inventory
import gen_secrets
import gen_tls
from tests.helpers.inventory import copy_inventory, load_inventory, load_ports


def policies(out_dir):
    data = yaml.safe_load(open(gen_tls.policies_path(str(out_dir))))
    assert set(data) == {"x509_signing_policies"}
    return data["x509_signing_policies"]


def san(policy):
    """(DNS names, IPs) of a policy's subjectAltName, in host_names' order."""
    parts = [p.strip() for p in policy["subjectAltName"].split(",")]
    return [p[4:] for p in parts if p.startswith("DNS:")], [p[3:] for p in parts if p.startswith("IP:")]


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def issued(tmp_path):
    ca_pem, outcomes, removed = gen_tls.generate([load_inventory("compact")], str(tmp_path))
    assert removed == []
    return tmp_path, ca_pem, outcomes


def test_one_root_only_policy_file_for_the_ca_host_and_no_key_but_the_ca_s(issued):
    out, ca_pem, outcomes = issued
    hosts = sorted(load_inventory("compact")["hosts"])
    assert outcomes == {h: "policy" for h in hosts}
    assert os.listdir(out / "tls") == ["ca.sls"] and mode(out / "tls" / "ca.sls") == 0o600
    assert mode(out / "tls") == 0o700 and mode(out / "ca") == 0o700 and mode(out / "ca" / "ca.key") == 0o600
    text = open(out / "tls" / "ca.sls").read()
    assert "PRIVATE KEY" not in text and "BEGIN" not in text  # paths, not material
    assert sorted(policies(out)) == [f"airflow_ha_{h}" for h in hosts]
    for h in hosts:
        policy = policies(out)[f"airflow_ha_{h}"]
        assert policy["minions"] == h  # no other minion may ask under it
        assert policy["signing_private_key"] == str(out / "ca" / "ca.key")
        assert policy["signing_cert"] == str(out / "ca" / "ca.crt")
    assert "BEGIN CERTIFICATE" in ca_pem


def test_a_policy_names_the_host_and_its_vips(issued):
    out, _, _ = issued
    db1 = policies(out)["airflow_ha_db1"]
    # a PostgreSQL member is reached through HAProxy on the main VIP (TLS passed through): it names the VIP too
    assert san(db1) == (["airflow-vip", "airflow-vip.lab.internal", "db1", "db1.lab.internal", "localhost"],
                        ["10.83.0.11", "10.83.0.100", "127.0.0.1"])
    assert db1["CN"] == "db1.lab.internal" and db1["days_valid"] == gen_tls.HOST_DAYS
    assert db1["basicConstraints"] == "critical, CA:false" and db1["extendedKeyUsage"] == "serverAuth, clientAuth"
    # a host of the VIP's role (haproxy) also answers for the VIP
    dns, ips = san(policies(out)["airflow_ha_af1"])
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
    ca = x509.load_pem_x509_certificate(open(out / "ca" / "ca.crt", "rb").read())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True


def test_rerun_keeps_everything_force_makes_a_new_ca(issued):
    out, ca_pem, _ = issued
    before = open(out / "tls" / "ca.sls").read()
    ca_again, _, _ = gen_tls.generate([load_inventory("compact")], str(out))
    assert ca_again == ca_pem and open(out / "tls" / "ca.sls").read() == before
    ca_new, _, _ = gen_tls.generate([load_inventory("compact")], str(out), force=True)
    assert ca_new != ca_pem


def test_the_ca_directory_as_the_ca_host_sees_it_is_kept_across_runs(issued):
    out, _, _ = issued
    gen_tls.generate([load_inventory("compact")], str(out), ca_host_dir="/srv/airflow-ha/.secrets/ca/")
    assert policies(out)["airflow_ha_db2"]["signing_private_key"] == "/srv/airflow-ha/.secrets/ca/ca.key"
    gen_tls.generate([load_inventory("compact")], str(out))  # e.g. the add_worker drill's run
    assert policies(out)["airflow_ha_db2"]["signing_cert"] == "/srv/airflow-ha/.secrets/ca/ca.crt"


def test_changed_names_change_only_that_policy(issued):
    out, _, _ = issued
    before = policies(out)
    inv = copy_inventory("compact")
    inv["hosts"]["db2"]["ip"] = "10.83.0.42"
    gen_tls.generate([inv], str(out))
    after = policies(out)
    assert "10.83.0.42" in san(after["airflow_ha_db2"])[1] and after["airflow_ha_db1"] == before["airflow_ha_db1"]


def test_a_host_key_file_of_the_former_layout_is_removed(issued):
    out, _, _ = issued
    gen_tls.write_private(str(out / "tls" / "db3.sls"), "tls: {key: '-----BEGIN PRIVATE KEY-----'}\n")
    _, _, removed = gen_tls.generate([load_inventory("compact")], str(out))
    assert removed == [str(out / "tls" / "db3.sls")] and os.listdir(out / "tls") == ["ca.sls"]


def test_gen_secrets_puts_the_ca_in_the_shared_file_and_the_policies_beside_it(tmp_path):
    out = tmp_path / "secrets" / "airflow_ha_secrets.sls"
    assert gen_secrets.main(["--out", str(out), "--topology", "compact"]) == 0
    shared = yaml.safe_load(open(out))
    assert set(shared["tls"]) == {"ca_cert"} and "BEGIN CERTIFICATE" in shared["tls"]["ca_cert"]
    assert "BEGIN PRIVATE KEY" not in open(out).read()  # no TLS key in the file every host gets
    assert sorted(policies(tmp_path / "secrets")) == [f"airflow_ha_{h}" for h in sorted(load_inventory("compact")["hosts"])]
    before = open(out).read()
    gen_secrets.main(["--out", str(out), "--topology", "compact"])
    assert open(out).read() == before


def test_a_host_added_to_an_inventory_file_gets_its_policy_and_the_others_keep_theirs(tmp_path):
    out = tmp_path / "secrets" / "airflow_ha_secrets.sls"
    gen_secrets.main(["--out", str(out), "--topology", "compact"])
    db1 = policies(tmp_path / "secrets")["airflow_ha_db1"]
    lab = yaml.safe_load(open(gen_tls.os.path.join(gen_tls.ROOT, "pillar", "inventory", "compact.yaml")))
    lab["hosts"]["worker1"] = {"ip": "10.83.0.23", "roles": ["worker"]}
    (tmp_path / "lab.yaml").write_text(yaml.safe_dump(lab))
    gen_secrets.main(["--out", str(out), "--topology", "compact", "--inventory", str(tmp_path / "lab.yaml")])
    assert "10.83.0.23" in san(policies(tmp_path / "secrets")["airflow_ha_worker1"])[1]
    assert policies(tmp_path / "secrets")["airflow_ha_db1"] == db1


def test_the_policy_lifetime_and_the_state_s_agree():
    from tests.helpers.inventory import REPO

    defaults = yaml.safe_load(open(REPO / "salt" / "pki" / "defaults.yaml"))
    assert defaults["days_valid"] == gen_tls.HOST_DAYS and 0 < defaults["renew_days"] < gen_tls.HOST_DAYS


# ------------------------------------------------- render-time check of pillar tls


def tls_errors(tls, inventory=None):
    secrets = {}
    gen_secrets.fill(secrets)
    return ha_inventory.find_errors(inventory or load_inventory("compact"), secrets, load_ports(), tls=tls)


def test_tls_off_needs_no_material():
    assert tls_errors({"enabled": False}) == [] and tls_errors({"enabled": "false"}) == []


def test_tls_is_on_by_default_and_a_pillar_without_tls_names_the_missing_ca():
    import yaml as _yaml

    from tests.helpers.inventory import REPO

    defaults = _yaml.safe_load(open(REPO / "salt" / "pki" / "defaults.yaml"))
    assert defaults["enabled"] is True and ha_inventory.TLS_ENABLED_DEFAULT is True  # the two defaults agree
    errors = tls_errors({})  # what validate passes when the pillar has no `tls` at all
    assert [e.split(" ")[0] for e in errors] == ["tls:ca_cert"]
    assert all("true by default" in e and "make secrets" in e for e in errors)
    assert tls_errors({"ca_cert": "-----BEGIN CERTIFICATE-----\n"}) == []
    assert tls_errors({"ca_cert": "not pem"})[0].startswith("tls:ca_cert is not PEM")


def test_tls_on_needs_exactly_one_ca_host():
    ca = {"enabled": True, "ca_cert": "-----BEGIN CERTIFICATE-----\n"}
    none = copy_inventory("compact")
    none["hosts"]["db1"]["roles"].remove("ca")
    errors = tls_errors(ca, none)
    assert errors == [e for e in errors if e.startswith("inventory:hosts: role 'ca' has 0 hosts (none)")] and errors
    assert "give 'ca' to that one host" in errors[0]
    two = copy_inventory("compact")
    two["hosts"]["db2"]["roles"].append("ca")
    assert tls_errors(ca, two)[0].startswith("inventory:hosts: role 'ca' has 2 hosts (db1, db2)")
    assert tls_errors({"enabled": False}, none) == []  # without TLS there is nothing to sign


def test_the_ca_host_needs_a_policy_for_every_host(issued):
    out, _, _ = issued
    inventory = load_inventory("compact")
    assert ha_inventory.signing_policy_errors(inventory, policies(out)) == []
    partial = {k: v for k, v in policies(out).items() if k != "airflow_ha_af2"}
    errors = ha_inventory.signing_policy_errors(inventory, partial)
    assert errors == ["x509_signing_policies:airflow_ha_af2 is missing on the CA host: the CA cannot sign af2's "
                      "certificate: run `make secrets` (tools/gen_secrets.py writes tls/ca.sls), refresh the pillar"]
    assert len(ha_inventory.signing_policy_errors(inventory, None)) == len(inventory["hosts"])


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
