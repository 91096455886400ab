"""A pillar root whose compact inventory marks af2 `standby: true` (autoscaling, issue 20): af1 still
serves the default and the card queue, so the inventory stays valid and every host keeps its
signing policy."""

import yaml

from tests.helpers.inventory import copy_inventory

STANDBY_HOST = "af2"


def standby_inventory():
    inv = copy_inventory("compact")
    inv["hosts"][STANDBY_HOST]["standby"] = True
    return inv


def standby_root(root):
    """``root`` (a pathlib directory) holding inventory/compact.yaml with the standby host; returned."""
    (root / "inventory").mkdir(exist_ok=True)
    (root / "inventory" / "compact.yaml").write_text(yaml.safe_dump(standby_inventory()))
    return root
