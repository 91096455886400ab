"""What tools/lab/up.sh needs from the inventory (the one source of truth).

    inventory.py TOPOLOGY gateway|hosts|master|pillar|urls
"""

import ipaddress
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LXC_NAT_NETWORK = "10.0.3.0/24"  # lxc-net's bridge: vagrant ssh and package mirrors


def lab_tls():
    """(TLS on?, cluster CA file) of the lab: pillar tls:enabled of the secrets file
    (tools/gen_secrets.py), else salt/pki/defaults.yaml; the CA next to the secrets."""
    secrets_file = REPO / ".secrets" / "airflow_ha_secrets.sls"
    data = (yaml.safe_load(secrets_file.read_text()) or {}) if secrets_file.exists() else {}
    enabled = (data.get("tls") or {}).get("enabled")
    if enabled is None:
        enabled = yaml.safe_load((REPO / "salt" / "pki" / "defaults.yaml").read_text()).get("enabled", False)
    return str(enabled).lower() in ("true", "1", "yes", "on"), str(REPO / ".secrets" / "ca" / "ca.crt")


def main(topology, what):
    inv = yaml.safe_load((REPO / "pillar" / "inventory" / f"{topology}.yaml").read_text())
    network = ipaddress.ip_network(inv["network"])
    hosts = inv["hosts"]
    if what == "gateway":  # the lab host's address on the lab bridge
        print(f"{next(network.hosts())}/{network.prefixlen}")
    elif what == "hosts":
        print(" ".join(hosts))
    elif what == "master":
        print(next(iter(hosts)))
    elif what == "pillar":
        print(yaml.safe_dump({
            "airflow": {"pip_args": "--no-index --find-links /srv/wheels"},
            "base": {"firewall": {"admin_networks": [str(network), LXC_NAT_NETWORK]}},
        }, sort_keys=False), end="")
    elif what == "urls":
        vip = inv["vips"]["main"]["ip"]
        tls, ca_file = lab_tls()
        scheme = "https" if tls else "http"
        print(f"Airflow UI/API : {scheme}://{vip}/  (user admin, password: secrets:airflow:admin_password)")
        print(f"Flower         : {scheme}://{vip}:5555/")
        if tls:
            print(f"Cluster CA     : {ca_file}  (e.g. curl --cacert {ca_file} https://{vip}/api/v2/monitor/health)")
        print(f"HAProxy stats  : http://{vip}:7000/  (user in salt/haproxy/defaults.yaml, secrets:haproxy:stats_password)")
        print(f"PostgreSQL rw  : {vip}:5000, ro {vip}:6000")
    else:
        raise SystemExit(f"unknown query {what!r}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
