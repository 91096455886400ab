"""The inventory as the tests read it: the same files pillar loads, through
the one loader (_modules/ha_inventory.py's plain functions)."""

import copy
from pathlib import Path

from _modules.ha_inventory import read_inventory, read_ports

REPO = Path(__file__).resolve().parents[2]
INVENTORY_DIR = REPO / "pillar" / "inventory"
TOPOLOGIES = ("full", "compact")


def load_inventory(topology="full"):
    return read_inventory(topology)


def load_ports():
    return read_ports()


def hosts_with_role(inventory, role):
    return sorted(n for n, h in inventory["hosts"].items() if role in h.get("roles", []))


def copy_inventory(topology="full"):
    return copy.deepcopy(load_inventory(topology))


def pinned_airflow(major):
    """The apache-airflow version requirements/airflow-<major>.txt pins."""
    import re

    text = (REPO / "requirements" / f"airflow-{major}.txt").read_text()
    return re.search(r"^apache-airflow==(\S+)$", text, re.M).group(1)
