"""The lab's own inventory (tools/lab/inventory.py) and the add_worker drill's choice of a new host."""

import json
import sys

import pytest
import yaml

from tests.helpers.inventory import REPO, load_inventory

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill  # noqa: E402
import inventory as lab_inventory  # noqa: E402


@pytest.fixture
def lab_file(tmp_path, monkeypatch):
    path = tmp_path / "pillar" / "inventory" / "lab.yaml"
    monkeypatch.setattr(lab_inventory, "LAB_INVENTORY", path)
    return path


def test_init_copies_the_topology_once_and_load_then_reads_the_copy(lab_file, capsys):
    assert lab_inventory.load("compact") == load_inventory("compact")
    lab_inventory.main("compact", "init")
    assert capsys.readouterr().out.strip() == "lab"
    assert yaml.safe_load(lab_file.read_text()) == load_inventory("compact")
    changed = load_inventory("compact")
    changed["hosts"]["worker1"] = {"ip": "10.83.0.23", "roles": ["worker"]}
    lab_inventory.save(changed)
    lab_inventory.main("full", "init")  # an existing lab keeps its inventory
    assert lab_inventory.load("full")["hosts"]["worker1"]["roles"] == ["worker"]


def test_a_new_host_takes_a_free_name_and_the_first_free_address_after_the_hosts():
    inv = load_inventory("compact")
    assert drill.next_host(inv) == ("worker1", "10.83.0.23")
    inv["hosts"]["worker1"] = {"ip": "10.83.0.23", "roles": ["worker"]}
    inv["vips"]["main"]["ip"] = "10.83.0.24"
    assert drill.next_host(inv) == ("worker2", "10.83.0.25")


def test_the_vagrant_query_prefers_the_labs_inventory(lab_file, capsys):
    """The Vagrantfile's machines (tools/lab/inventory.py vagrant): the topology's, then the lab's copy."""
    lab_inventory.main("compact", "vagrant")
    machines = json.loads(capsys.readouterr().out)
    assert machines == {"topology": "compact", "prefix": 24, "master": "db1",
                        "hosts": {n: h["ip"] for n, h in load_inventory("compact")["hosts"].items()}}
    lab_inventory.main("compact", "init")
    changed = load_inventory("compact")
    changed["hosts"]["worker1"] = {"ip": "10.83.0.23", "roles": ["worker"]}
    lab_inventory.save(changed)
    capsys.readouterr()
    lab_inventory.main("full", "vagrant")
    machines = json.loads(capsys.readouterr().out)
    assert machines["topology"] == "lab" and list(machines["hosts"])[-1] == "worker1"
    assert machines["hosts"]["worker1"] == "10.83.0.23" and machines["master"] == "db1"
