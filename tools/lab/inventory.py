"""What tools/lab/up.sh needs from the inventory (the one source of truth).

    inventory.py TOPOLOGY gateway|hosts|master|pillar|urls
"""

import ipaddress
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
LXC_NAT_NETWORK = "10.0.3.0/24"  # lxc-net's bridge: vagrant ssh and package mirrors


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
        print(f"Airflow UI/API : http://{vip}/  (user admin, password: secrets:airflow:admin_password)")
        print(f"Flower         : http://{vip}:5555/")
        print(f"HAProxy stats  : http://{vip}:7000/  (user in salt/haproxy/defaults.yaml, secrets:haproxy:stats_password)")
        print(f"PostgreSQL rw  : {vip}:5000, ro {vip}:6000")
    else:
        raise SystemExit(f"unknown query {what!r}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
