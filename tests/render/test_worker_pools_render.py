"""Worker pools by queue (issue 20) as the states compile and render them:
each worker's unit consumes its inventory host's `queues` (`-q`), with
pillar airflow:worker_autoscale `--autoscale MAX,MIN`; the card target admits
the card pool's workers only (its key's from= and the firewall's SSH rule);
a bad `queues` value or autoscale setting fails the render naming the key."""

import json
import multiprocessing
import re
import subprocess
import sys

import pytest
import yaml

from clusters.state_render import host_states_in_fresh_process
from tests.helpers.inventory import REPO, load_inventory

ADMIN = "10.20.0.0/16"
AUTOSCALE = {"airflow": {"worker_autoscale": {"min": 2, "max": 8}}, "base": {"firewall": {"admin_networks": [ADMIN]}}}


def narrowed_compact(inv):
    """compact with af2 out of the card pool (the default pool only)."""
    inv["hosts"]["af2"]["queues"] = ["default"]


# (name, host, topology, sls, pillar of lab.sls, inventory change)
JOBS = [
    ("af1", "af1", "compact", ["airflow.worker"], None, None),
    ("db3", "db3", "compact", ["card_target", "base.firewall"], None, None),
    ("worker1-autoscale", "worker1", "full", ["airflow.worker"], AUTOSCALE, None),
    ("card1-admin", "card1", "full", ["card_target", "base.firewall"], AUTOSCALE, None),
    ("af2-narrowed", "af2", "compact", ["airflow.worker"], None, narrowed_compact),
    ("db3-narrowed", "db3", "compact", ["card_target"], None, narrowed_compact),
]


def pillar_root(tmp_path_factory, name, topology, pillar, change):
    root = tmp_path_factory.mktemp(f"pools-{name}")
    if pillar:
        (root / "lab.sls").write_text(yaml.safe_dump(pillar))
    if change:
        inv = load_inventory(topology)
        change(inv)
        (root / "inventory").mkdir()
        (root / "inventory" / f"{topology}.yaml").write_text(yaml.safe_dump(inv))
    return str(root)


@pytest.fixture(scope="module")
def compiled(salt_env, tmp_path_factory):
    """name -> {state id: {fun, args, text}}"""
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {name: pool.apply_async(host_states_in_fresh_process, (
            host, topology, sls, pillar_root(tmp_path_factory, name, topology, pillar, change), {}, *salt_env))
            for name, host, topology, sls, pillar, change in JOBS}
        return {name: p.get(timeout=600) for name, p in pending.items()}


def exec_start(states):
    return next(line for line in states["airflow-worker-unit"]["text"].splitlines() if line.startswith("ExecStart="))


def ssh_sources(states):
    """The sources of the nftables rule admitting tcp/22."""
    text = states["base-firewall-nftables-config"]["text"]
    lines = [line for line in text.splitlines() if line.strip().endswith("tcp dport 22 accept")]
    assert len(lines) == 1, lines
    return re.search(r"saddr \{ (.*) \}", lines[0]).group(1).split(", ")


def test_the_compact_workers_consume_the_default_and_the_card_queue(compiled):
    states = compiled["af1"]
    assert exec_start(states) == "ExecStart=/opt/airflow/venv/bin/airflow celery worker -q default,card"
    cfg = states["airflow-cfg"]["text"]
    assert "[operators]\n" in cfg and "\ndefault_queue = default\n" in cfg
    assert "\nworker_concurrency = 8\n" in cfg  # no autoscale: the fixed concurrency of airflow.cfg
    assert states["airflow-card-target-key"]["fun"] == "file.managed"
    # the card DAG's settings carry its queue
    env = dict(re.findall(r"^(\w+)='(.*)'$", states["airflow-env"]["text"], re.M))
    assert json.loads(env["AIRFLOW_VAR_CARD_PROCESSING"])["queue"] == "card"


def test_autoscale_from_pillar_on_the_full_topologys_worker(compiled):
    assert exec_start(compiled["worker1-autoscale"]) == (
        "ExecStart=/opt/airflow/venv/bin/airflow celery worker -q default,card --autoscale 8,2")


def test_the_card_target_admits_the_card_pool_only(compiled):
    inv = load_inventory("compact")
    key = compiled["db3"]["card-target-worker-key"]["args"]
    assert f'from="{inv["hosts"]["af1"]["ip"]},{inv["hosts"]["af2"]["ip"]}"' in key["options"]
    full = load_inventory("full")
    key = compiled["card1-admin"]["card-target-worker-key"]["args"]
    assert f'from="{full["hosts"]["worker1"]["ip"]}"' in key["options"]
    # the firewall: the admin networks and the card pool, no other host
    assert ssh_sources(compiled["card1-admin"]) == [ADMIN, full["hosts"]["worker1"]["ip"]]
    # compact, default admin network (the inventory network): the card pool (inside it) and pgBackRest's af2
    assert ssh_sources(compiled["db3"]) == ["10.83.0.0/24", "10.83.0.21", "10.83.0.22"]


def test_a_worker_outside_the_card_pool_neither_holds_the_key_nor_is_admitted(compiled):
    states = compiled["af2-narrowed"]
    assert exec_start(states) == "ExecStart=/opt/airflow/venv/bin/airflow celery worker -q default"
    assert "airflow-card-target-key" not in states
    assert states["airflow-card-target-key-absent"]["args"]["name"] == "/opt/airflow/.ssh/card_target"
    key = compiled["db3-narrowed"]["card-target-worker-key"]["args"]
    assert 'from="10.83.0.21"' in key["options"]


def render(*args):
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "render.py"), *args], capture_output=True, text=True,
                          timeout=900)
    return proc.returncode, proc.stderr + proc.stdout


def test_a_bad_queues_value_fails_the_render_naming_the_key(tmp_path):
    inv = load_inventory("compact")
    inv["hosts"]["af1"]["queues"] = ["default", "Card"]
    inv["hosts"]["af2"]["queues"] = ["default"]
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "compact.yaml").write_text(yaml.safe_dump(inv))
    rc, out = render("--topology", "compact", "--host", "db3", "--os", "debian12", "--no-orchestrates",
                     "--pillar-override", str(tmp_path))
    assert rc == 1, out
    assert "Invalid pillar, nothing was applied" in out
    assert ("inventory:hosts:af1:queues: 'Card' is not a queue name: use lower-case letters, digits, '_' and '-', "
            "beginning with a letter") in out


def test_a_bad_worker_autoscale_fails_the_render_naming_the_key(tmp_path):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"airflow": {"worker_autoscale": {"min": 8, "max": 2}}}))
    rc, out = render("--topology", "compact", "--host", "af1", "--os", "debian12", "--no-orchestrates",
                     "--pillar-override", str(tmp_path))
    assert rc == 1, out
    assert "pillar airflow:worker_autoscale:min 8 is above max 2: give min <= max" in out
