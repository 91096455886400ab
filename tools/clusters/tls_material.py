"""A throwaway cluster CA and one host certificate issued by tools/gen_tls.py,
written as files (what salt/pki installs on a host), plus a second CA that
signed nothing of ours (the "wrong CA" of negative tests).

    pki = issue(tmp_dir, owner="rabbitmq")
    pki["ca"], pki["cert"], pki["key"], pki["pem"] (cert + key), pki["other_ca"]
"""

import os
import pwd

import gen_tls


def _write(directory, name, data, mode, owner=None):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if owner:
        user = pwd.getpwnam(owner)
        os.chown(path, user.pw_uid, user.pw_gid)
    return path


def issue(directory, name="localhost", dns=("localhost",), ips=("127.0.0.1",), owner=None):
    """CA, host certificate/key (key owned by ``owner``, 0600), combined PEM, other CA; returns their paths."""
    os.makedirs(directory, exist_ok=True)
    os.chmod(directory, 0o755)
    ca_key, ca_cert = gen_tls.create_ca("airflow-ha test CA")
    key = gen_tls.new_key()
    cert = gen_tls.issue_host_cert(ca_key, ca_cert, key, name, list(dns), list(ips))
    other = gen_tls.create_ca("not the cluster CA")[1]
    return {
        "ca": _write(directory, "ca.crt", gen_tls.cert_pem(ca_cert), 0o644),
        "cert": _write(directory, "host.crt", gen_tls.cert_pem(cert), 0o644),
        "key": _write(directory, "host.key", gen_tls.key_pem(key), 0o600, owner),
        "pem": _write(directory, "host.pem", gen_tls.cert_pem(cert) + gen_tls.key_pem(key), 0o600),
        "other_ca": _write(directory, "other-ca.crt", gen_tls.cert_pem(other), 0o644),
    }
