"""What tools/lab/up.sh needs from the inventory (the one source of truth).

    inventory.py TOPOLOGY init|gateway|hosts|master|pillar|urls|vagrant

The lab runs on its own inventory, `.lab/pillar/inventory/lab.yaml`: `init`
copies pillar/inventory/TOPOLOGY.yaml there when the lab has none. The
master's pillar (topology `lab`, found in the .lab/pillar root), the
Vagrantfile and the drills all read that copy, so day-2 work (the add_worker
drill adds a host) changes the lab's inventory as an operator would change
theirs, never the repository's topology files. `vagrant` is what the
Vagrantfile needs, as JSON (Ruby never parses the inventory itself).
"""

import ipaddress
import json
import os
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
from _modules.ha_inventory import inventory_file, read_inventory, tls_on  # noqa: E402  (the one loader)
# the provider's management network (vagrant ssh, package mirrors): the firewall admits it
MANAGEMENT_NETWORKS = {"lxc": "10.0.3.0/24", "virtualbox": "10.0.2.0/24", "libvirt": "192.168.121.0/24"}
LAB_TOPOLOGY = "lab"
LAB_INVENTORY = REPO / ".lab" / "pillar" / "inventory" / f"{LAB_TOPOLOGY}.yaml"


def topology_file(topology):
    return Path(inventory_file(topology, REPO))


def load(topology):
    """The lab's inventory once `init` made it, else the topology's."""
    path = LAB_INVENTORY if LAB_INVENTORY.exists() else topology_file(topology)
    return read_inventory(path=path)


def save(inv):
    """Replace the lab's inventory (atomically: the master may read it at any moment)."""
    tmp = LAB_INVENTORY.with_suffix(".tmp")
    tmp.write_text("# The lab's inventory (tools/lab/inventory.py); make lab-destroy removes it.\n"
                   + yaml.safe_dump(inv, sort_keys=False))
    tmp.replace(LAB_INVENTORY)


def lab_tls():
    """(TLS on?, cluster CA file) of the lab: pillar tls:enabled of the secrets file
    (tools/gen_secrets.py) read as Salt reads it (ha_inventory.tls_on); the CA next to the secrets."""
    secrets_file = REPO / ".secrets" / "airflow_ha_secrets.sls"
    data = (yaml.safe_load(secrets_file.read_text()) or {}) if secrets_file.exists() else {}
    return tls_on(data.get("tls")), str(REPO / ".secrets" / "ca" / "ca.crt")


def main(topology, what):
    if what == "init":
        if not LAB_INVENTORY.exists():
            LAB_INVENTORY.parent.mkdir(parents=True, exist_ok=True)
            LAB_INVENTORY.write_text(topology_file(topology).read_text())
        print(LAB_TOPOLOGY)
        return
    inv = load(topology)
    network = ipaddress.ip_network(inv["network"], strict=False)  # as the validation reads it
    hosts = inv["hosts"]
    if what == "gateway":  # the lab host's address on the lab bridge
        print(f"{next(network.hosts())}/{network.prefixlen}")
    elif what == "hosts":
        print(" ".join(hosts))
    elif what == "master":
        print(next(iter(hosts)))
    elif what == "vagrant":  # the machines in inventory order, the first one the Salt master
        print(json.dumps({"topology": LAB_TOPOLOGY if LAB_INVENTORY.exists() else topology,
                          "prefix": network.prefixlen, "master": next(iter(hosts)),
                          "hosts": {name: host["ip"] for name, host in hosts.items()}}))
    elif what == "pillar":
        provider = os.environ.get("AIRFLOW_HA_LAB_PROVIDER", "lxc")
        pillar = {"base": {"firewall": {"admin_networks": [str(network), MANAGEMENT_NETWORKS[provider]]}}}
        if provider == "lxc":  # the containers install Airflow and Patroni from the lab's wheelhouse, bind-mounted
            wheelhouse = "--no-index --find-links /srv/wheels"
            pillar["airflow"] = {"pip_args": wheelhouse}
            pillar["postgres"] = {"patroni_install": {"pip_args": wheelhouse}}
        # Alertmanager notifies the lab's webhook receiver (tools/lab/drill_alerts.py)
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from drill_alerts import LAB_PILLAR

        pillar.update(LAB_PILLAR)
        print(yaml.safe_dump(pillar, sort_keys=False), end="")
    elif what == "urls":
        vip = inv["vips"]["main"]["ip"]
        tls, ca_file = lab_tls()
        scheme = "https" if tls else "http"
        print(f"Airflow UI/API : {scheme}://{vip}/  (LDAP users ada/otto/uma/vera: secrets:ldap:seed_password; "
              f"break-glass admin: secrets:airflow:admin_password)")
        print(f"Flower         : {scheme}://{vip}:5555/  (user admin, password: secrets:airflow:flower_password)")
        if tls:
            print(f"Cluster CA     : {ca_file}  (e.g. curl --cacert {ca_file} https://{vip}/api/v2/monitor/health)")
        print(f"HAProxy stats  : http://{vip}:7000/  (user in salt/haproxy/defaults.yaml, secrets:haproxy:stats_password)")
        print(f"PostgreSQL rw  : {vip}:5000, ro {vip}:6000")
    else:
        raise SystemExit(f"unknown query {what!r}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
