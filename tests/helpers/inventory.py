"""The inventory as the tests read it: the same files pillar loads."""

import copy
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
INVENTORY_DIR = REPO / "pillar" / "inventory"
TOPOLOGIES = ("full", "compact")


def load_inventory(topology="full"):
    with open(INVENTORY_DIR / f"{topology}.yaml") as f:
        return yaml.safe_load(f)


def load_ports():
    with open(REPO / "pillar" / "ports.sls") as f:
        return yaml.safe_load(f)["ports"]


def hosts_with_role(inventory, role):
    return sorted(n for n, h in inventory["hosts"].items() if role in h.get("roles", []))


def copy_inventory(topology="full"):
    return copy.deepcopy(load_inventory(topology))
