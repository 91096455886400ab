#!/usr/bin/env python3
"""Generate every secret the cluster needs into a root-only pillar file.

    tools/gen_secrets.py [--out .secrets/airflow_ha_secrets.sls] [--force]
                         [--ca-dir DIR] [--ca-host-dir DIR] [--topology full ...] [--inventory FILE ...]
                         [--no-tls]

Also makes the cluster's CA (tools/gen_tls.py): its certificate goes into this
file (``tls:ca_cert``), its key into ``--ca-dir`` (default ``ca/`` next to it;
on a master keep it outside every pillar root), and the signing policy of each
host into ``tls/ca.sls`` next to it (pillar/top.sls gives it to the CA host
only). Hosts make their own keys (salt/pki).

Which secrets: every one of pillar/role_secrets.yaml, the map of which
secrets each role's hosts hold (one file serves every topology; pillar gives
each host the secrets of its own roles only, docs/secrets.md).

Existing values are kept (re-running adds only what is missing, and replaces
a value the render refuses: empty, too short, a well-known default, a copy of
another secret), so the file can be regenerated after an upgrade that needs a
new secret without rotating the others. Nothing is printed but the path: secrets never reach a terminal,
a log or a process list (ssh-keygen gets no passphrase on its command line).
"""

import argparse
import base64
import os
import secrets
import string
import subprocess
import sys
import tempfile

import yaml

import gen_tls
# gen_tls put the repo on the path
from _modules.ha_inventory import map_secrets, read_role_secrets, secret_problem  # noqa: E402

DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".secrets", "airflow_ha_secrets.sls")
ALNUM = string.ascii_letters + string.digits


def password(length=32):
    return "".join(secrets.choice(ALNUM) for _ in range(length))


def fernet_key():
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def ssh_keypair(comment):
    with tempfile.TemporaryDirectory() as tmp:
        key = os.path.join(tmp, "id_ed25519")
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", key],
            check=True, stdin=subprocess.DEVNULL,
        )
        with open(key) as priv, open(key + ".pub") as pub:
            return priv.read(), pub.read().strip()


# How a secret of the map (pillar/role_secrets.yaml, which says which secrets exist) is made: 32 letters
# and digits unless named here; the SSH key pairs by ssh-keygen (SSH_PAIRS).
MAKERS = {
    "rabbitmq:erlang_cookie": lambda: password(48),
    "airflow:fernet_key": fernet_key,
    "airflow:secret_key": lambda: secrets.token_urlsafe(48),
    "airflow:jwt_secret": lambda: secrets.token_urlsafe(48),
    "keepalived:auth_pass": lambda: password(8),
    # pgBackRest's repository encryption (repo1-cipher-pass, aes-256-cbc)
    "pgbackrest:cipher_pass": lambda: password(64),
    # Alertmanager's bearer token to salt-api's autoscaling webhook (an HTTP header: url-safe characters)
    "autoscale:webhook_token": lambda: secrets.token_urlsafe(32),
}
# private key -> (its public half, the key's comment)
SSH_PAIRS = {
    "card:ssh_private_key": ("card:ssh_public_key", "airflow-worker@card-target"),
    # the card target's SSH host key, so the workers verify the host they deliver to
    "card:host_private_key": ("card:host_public_key", "card-target-host"),
    # pgBackRest between the repository host and the members over SSH (tls:enabled false)
    "pgbackrest:ssh_private_key": ("pgbackrest:ssh_public_key", "postgres@pgbackrest"),
}


def generators():
    """Every secret of the map but the SSH key pairs (made in pairs by :py:func:`fill`) and the site's own
    optional ones: colon path -> function making a fresh value."""
    halves = set(SSH_PAIRS) | {public for public, _ in SSH_PAIRS.values()}
    return {path: MAKERS.get(path, password) for path in map_secrets(read_role_secrets()) if path not in halves}


def fill(tree):
    """Add every missing secret of the map (pillar/role_secrets.yaml: whatever the inventory, so one file
    serves every topology) to ``tree`` (the ``secrets`` mapping), and replace every value the render would
    refuse (empty, too short, a well-known default, a second copy of another secret: see
    ``ha_inventory.secret_problem``); return what was added or replaced."""
    added = []
    seen = set()

    def node_of(path):
        node = tree
        *parents, leaf = path.split(":")
        for part in parents:
            node = node.setdefault(part, {})
        return node, leaf

    for path, make in generators().items():
        node, leaf = node_of(path)
        if secret_problem(path, node.get(leaf)) or str(node.get(leaf)) in seen:
            node[leaf] = make()
            added.append(path)
        seen.add(str(node[leaf]))
    wanted = set(map_secrets(read_role_secrets()))
    for private, (public, comment) in SSH_PAIRS.items():
        if private not in wanted and public not in wanted:
            continue
        (pnode, pleaf), (unode, uleaf) = node_of(private), node_of(public)
        if secret_problem(private, pnode.get(pleaf)) or secret_problem(public, unode.get(uleaf)):
            pnode[pleaf], unode[uleaf] = ssh_keypair(comment)
            added += [private, public]
    return added


def write_private(path, text):
    """``text`` into ``path``, 0600 in a 0700 directory, atomically."""
    gen_tls.write_private(path, text)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help="pillar file to write (default: %(default)s)")
    parser.add_argument("--force", action="store_true",
                        help="regenerate every secret (rotation), the TLS CA included")
    parser.add_argument("--ca-dir", help="where the CA private key stays (default: ca/ next to --out)")
    parser.add_argument("--ca-host-dir",
                        help="that directory as the CA host sees it (default: as an earlier run recorded, else --ca-dir)")
    parser.add_argument("--topology", action="append", help="inventories to write signing policies for (default: all)")
    parser.add_argument("--inventory", action="append", default=[],
                        help="an inventory file outside pillar/inventory to write signing policies for too")
    parser.add_argument("--no-tls", action="store_true", help="leave the TLS material alone")
    args = parser.parse_args(argv)
    data = {}
    if os.path.exists(args.out) and not args.force:
        with open(args.out) as f:
            data = yaml.safe_load(f) or {}
    added = fill(data.setdefault("secrets", {}))
    if not args.no_tls:
        ca_cert, _, removed = gen_tls.generate(gen_tls.load_topologies(args.topology, args.inventory),
                                               os.path.dirname(args.out), args.ca_dir, args.force, args.ca_host_dir)
        if data.get("tls", {}).get("ca_cert") != ca_cert:
            data.setdefault("tls", {})["ca_cert"] = ca_cert
            added.append("tls:ca_cert")
        if removed:
            print(f"removed {len(removed)} host key files of the former layout (hosts now make their own keys)")
    header = "# Generated by tools/gen_secrets.py: every secret of the cluster. Keep it root-only (0600).\n"
    write_private(args.out, header + yaml.safe_dump(data, default_flow_style=False, sort_keys=True))
    print(f"{args.out}: {len(added)} secrets added, mode 0600")
    return 0


if __name__ == "__main__":
    sys.exit(main())
