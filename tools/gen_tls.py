"""The cluster CA and what it signs for each host (called by tools/gen_secrets.py,
i.e. `make secrets`).

Runs where the secrets are made (the Salt master or the admin's machine), so
the CA private key never reaches a minion other than the CA host: it stays in
``--ca-dir`` (0700, key 0600; keep it outside every pillar root on a master).
No host key is made here: each host makes its own (salt/pki, x509_v2
``private_key_managed``) and asks the CA host for a certificate over Salt's
peer publish (``x509.sign_remote_certificate``). Writes:

- ``<out-dir>/tls/ca.sls``: the x509_v2 signing policy of every host
  (``airflow_ha_<host>``), 0600. pillar/top.sls gives it to the host of role
  ``ca`` only. A policy is bound to its minion id and fixes everything the
  certificate says, whatever the request asks.
- the CA certificate, returned for the shared secrets pillar: gen_secrets.py
  puts it at ``tls:ca_cert``.

Host certificates (EC P-256, 2 years, server and client use) name the host's
short name, FQDN (inventory ``domain``), IP and ``localhost``/127.0.0.1
(Patroni and the checks of the states connect to the local member through
loopback); hosts of the role of a VIP also get the VIP's IP and hostname (and
FQDN). So do the hosts behind a VIP's TCP pass-through (``THROUGH_VIPS``):
PostgreSQL members are reached through HAProxy on the main VIP (port 5000),
TLS ends on the member itself, so Airflow's ``sslmode=verify-full`` to the VIP
checks the member's certificate against the VIP's IP or name.
``issue_host_cert`` signs here directly: the tests' throwaway clusters use it.
"""

import datetime
import ipaddress
import os
import stat
import sys

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from _modules.ha_inventory import (read_inventory, signing_policy_name,  # noqa: E402  (the one loader)
                                   topologies as all_topologies)

CA_DAYS = 3650
HOST_DAYS = 730
LOOPBACK_NAMES = ("localhost",)
LOOPBACK_IPS = ("127.0.0.1",)
# VIP name -> roles whose hosts a client reaches through that VIP with TLS
# passed through (HAProxy in TCP mode): their certificates name the VIP too
THROUGH_VIPS = {"main": ("postgres",)}


# ------------------------------------------------------------------ files


def write_private(path, data):
    """Write ``data`` (bytes or str) to ``path`` mode 0600 in a 0700 directory, atomically. A directory
    made earlier with a wider mode becomes 0700 (unless it is not ours or shared, sticky like /tmp)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o700, exist_ok=True)
    st = os.stat(directory)
    if st.st_uid == os.getuid() and not st.st_mode & stat.S_ISVTX and stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(directory, 0o700)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data.encode() if isinstance(data, str) else data)
    os.chmod(path + ".tmp", 0o600)
    os.replace(path + ".tmp", path)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------- keys


def new_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    # PKCS#8, unencrypted: read as-is by PostgreSQL, etcd (Go) and Python's ssl
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


# --------------------------------------------------------------------- CA


def create_ca(name="airflow-ha cluster CA"):
    key = new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def load_or_create_ca(ca_dir, force=False):
    """The CA (key, cert) kept in ``ca_dir``; made on first use or with ``force``. Returns (key, cert, created)."""
    key_path, cert_path = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt")
    if not force and os.path.exists(key_path) and os.path.exists(cert_path):
        key = serialization.load_pem_private_key(_read(key_path), password=None)
        return key, x509.load_pem_x509_certificate(_read(cert_path)), False
    key, cert = create_ca()
    write_private(key_path, key_pem(key))
    write_private(cert_path, cert_pem(cert))
    os.chmod(cert_path, 0o644)
    return key, cert, True


# ------------------------------------------------------------------ hosts


def host_names(inventory, name):
    """(DNS names, IPs) a host's certificate must carry, sorted."""
    host = inventory["hosts"][name]
    domain = inventory.get("domain")
    dns = {name, *LOOPBACK_NAMES}
    if domain:
        dns.add(f"{name}.{domain}")
    ips = {str(host["ip"]), *LOOPBACK_IPS}
    roles = set(host.get("roles") or [])
    for vip_name, vip in (inventory.get("vips") or {}).items():
        if vip.get("role") in roles or roles & set(THROUGH_VIPS.get(vip_name, ())):
            ips.add(str(vip["ip"]))
            if vip.get("hostname"):
                dns.add(vip["hostname"])
                if domain:
                    dns.add(f"{vip['hostname']}.{domain}")
    return sorted(dns), sorted(ips, key=lambda ip: ipaddress.ip_address(ip).packed)


def cert_names(cert):
    """(DNS names, IPs) of a certificate's subjectAltName, in host_names' order."""
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    dns = sorted(san.get_values_for_type(x509.DNSName))
    ips = sorted((str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
                 key=lambda ip: ipaddress.ip_address(ip).packed)
    return dns, ips


def issue_host_cert(ca_key, ca_cert, key, common_name, dns, ips):
    now = _now()
    san = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=HOST_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        # etcd peers and Patroni present the same certificate as server and as client
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _fqdn(name, dns):
    return next((d for d in dns if d.startswith(name + ".")), name)


def signing_policy(host, dns, ips, ca_host_dir):
    """x509_v2 signing policy of one host: what the CA signs for it, whatever the request asks (the policy's
    values win over the request's), and only for that minion id."""
    return {
        "minions": host,
        "signing_private_key": f"{ca_host_dir}/ca.key",
        "signing_cert": f"{ca_host_dir}/ca.crt",
        "CN": _fqdn(host, dns),
        "subjectAltName": ", ".join([f"DNS:{d}" for d in dns] + [f"IP:{i}" for i in ips]),
        "basicConstraints": "critical, CA:false",
        "keyUsage": "critical, digitalSignature",
        # etcd peers and Patroni present the same certificate as server and as client
        "extendedKeyUsage": "serverAuth, clientAuth",
        "subjectKeyIdentifier": "hash",
        "authorityKeyIdentifier": "keyid:always",
        "days_valid": HOST_DAYS,
    }


def policies_path(out_dir):
    return os.path.join(out_dir, "tls", "ca.sls")


def _recorded_ca_host_dir(path):
    """The CA directory an earlier run wrote into the policies (kept unless told otherwise)."""
    if not os.path.exists(path):
        return None
    policies = (yaml.safe_load(_read(path)) or {}).get("x509_signing_policies") or {}
    key = next((p.get("signing_private_key") for p in policies.values() if isinstance(p, dict)), None)
    return os.path.dirname(key) if key else None


def merged_inventories(inventories):
    """One {host: (dns, ips)} over several topologies (a host in two gets the names of both)."""
    names = {}
    for inv in inventories:
        for host in inv.get("hosts") or {}:
            dns, ips = host_names(inv, host)
            old_dns, old_ips = names.get(host, ([], []))
            names[host] = (sorted(set(dns) | set(old_dns)),
                           sorted(set(ips) | set(old_ips), key=lambda ip: ipaddress.ip_address(ip).packed))
    return names


def generate(inventories, out_dir, ca_dir=None, force=False, ca_host_dir=None):
    """The CA and the signing policies of every host (``tls/ca.sls``, for the CA host's pillar only).

    ``ca_host_dir``: where the CA host reads ``ca.key``/``ca.crt`` (default: what an earlier run recorded,
    else ``ca_dir`` itself, right when the secrets are made on the CA host). A host file of the former
    layout (``tls/<host>.sls``, a key made here) is removed: keys are now made on their hosts.
    Returns (CA certificate PEM, {host: 'policy'}, [removed files])."""
    ca_dir = os.path.abspath(ca_dir or os.path.join(out_dir, "ca"))
    _, ca_cert, _ = load_or_create_ca(ca_dir, force)
    path = policies_path(out_dir)
    ca_host_dir = (ca_host_dir or _recorded_ca_host_dir(path) or ca_dir).rstrip("/")
    names = merged_inventories(inventories)
    policies = {signing_policy_name(host): signing_policy(host, dns, ips, ca_host_dir)
                for host, (dns, ips) in sorted(names.items())}
    text = ("# Generated by tools/gen_tls.py: what the cluster CA signs for each host (x509_v2 signing\n"
            "# policies). pillar/top.sls gives it to the CA host only; no key is in it.\n"
            + yaml.safe_dump({"x509_signing_policies": policies}, default_flow_style=False, sort_keys=True))
    write_private(path, text)
    removed = []
    for host in sorted(names):
        old = os.path.join(out_dir, "tls", f"{host}.sls")
        if os.path.exists(old):
            os.remove(old)
            removed.append(old)
    return cert_pem(ca_cert).decode(), {host: "policy" for host in names}, removed


def load_topologies(topologies=None, inventory_files=()):
    """The topologies of pillar/inventory (default: all), plus inventory files kept elsewhere
    (a site's own, or the lab's copy that day-2 drills extend)."""
    return ([read_inventory(t) for t in topologies or all_topologies()]
            + [read_inventory(path=path) for path in inventory_files])

