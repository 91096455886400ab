"""One source per fact: where a fact is still written in more than one place,
these tests prove the copies agree, and that a pillar override the rest of
the tree cannot follow is refused at render time."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from salt.exceptions import CommandExecutionError

import _modules.ha_inventory as ha_inventory
import _modules.ha_monitoring as ha_monitoring
from tests.helpers.inventory import REPO, load_inventory, load_ports


@pytest.fixture
def configure_loader_modules(inventory_dunders):
    return {ha_inventory: inventory_dunders}


def defaults(area):
    return yaml.safe_load((REPO / "salt" / area / "defaults.yaml").read_text())


# ------------------------------------------------------------------ ports

def port_keys():
    return [(key, rule) for rule in load_ports() for key in rule.get("keys") or []]


@pytest.mark.parametrize("key, rule", port_keys(), ids=[k for k, _ in port_keys()])
def test_every_port_setting_of_the_defaults_equals_the_port_map(key, rule):
    area, *path = key.split(":")
    value = ha_inventory._get(defaults(area), ":".join(path))
    assert value is not None, f"{key} is in pillar/ports.sls keys but not in salt/{area}/defaults.yaml"
    assert str(value) == str(rule["port"]), f"salt/{area}/defaults.yaml {key} {value} != port map {rule['port']}"


@pytest.mark.parametrize("area", sorted(p.parent.name for p in (REPO / "salt").glob("*/defaults.yaml")))
def test_every_port_of_a_defaults_file_is_in_the_port_map(area):
    """A new `*_port` setting must name its port map entry (keys), or the firewall would not know it."""
    named = {key for key, _ in port_keys()}

    def walk(data, prefix):
        for k, v in (data or {}).items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}:")
            elif isinstance(v, int) and (k == "port" or k.endswith("_port") or prefix == "haproxy:frontends:"):
                yield f"{prefix}{k}"

    missing = sorted(set(walk(defaults(area), f"{area}:")) - named)
    assert not missing, f"ports of salt/{area}/defaults.yaml not in any pillar/ports.sls keys: {missing}"


def test_every_scrape_target_is_a_scraped_entry_of_the_port_map():
    scraped = {(r["role"], r["port"]) for r in load_ports() if r.get("scraped")}
    # a job of several roles (PgBouncer's exporter: every Airflow role) is one scraped entry per role
    targets = {(r, port) for role, port, _ in ha_monitoring.EXPORTERS.values()
               for r in ((role,) if isinstance(role, str) else role)}
    assert targets == scraped, f"ha_monitoring.EXPORTERS {sorted(targets - scraped)} / ports.sls {sorted(scraped - targets)}"


def test_moving_a_scraped_port_in_pillar_is_refused():
    ha_inventory.__pillar__["etcd"] = {"client_port": 2479}
    with pytest.raises(CommandExecutionError, match=r"etcd:client_port 2479 differs from the port map .*scrape"):
        ha_inventory.validate()


def test_moving_an_unscraped_port_moves_the_firewall_rule():
    ha_inventory.__pillar__["etcd"] = {"peer_port": 2480}
    assert ha_inventory.validate()
    ports = {r["port"] for r in ha_inventory.firewall_rules("sql1")}
    assert "2480" in ports and "2380" not in ports


def test_two_settings_of_one_port_must_agree():
    ha_inventory.__pillar__.update(rabbitmq={"amqp_port": 5673}, airflow={"amqp_port": 5674})
    with pytest.raises(CommandExecutionError, match="must agree"):
        ha_inventory.validate()


# ------------------------------------------------------------------ TLS switch

VALUES = [True, False, "true", "false", "True", "yes", "no", "on", "off", "1", "0", 1, 0, 2, -1, 1.5, 0.0, None,
          [], ["x"]]
# the pillar a site may write: tls absent, null or no mapping, tls:enabled of every kind (to_bool reads a
# float as false), and pillar pki:enabled, which salt/pki/map.jinja overrides: no reader may take it for the switch
TLS_PILLARS = [{}, {"tls": None}, {"tls": "off"}, {"tls": {}}, {"pki": {"enabled": False}},
               {"pki": {"enabled": False}, "tls": {"enabled": "yes"}}, *({"tls": {"enabled": v}} for v in VALUES)]


def lab_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab_inventory", REPO / "tools" / "lab" / "inventory.py")
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    return lab


def salt_jinja(template, pillar, funcs, grains=None):
    """``template`` rendered by Salt's Jinja, its imports resolved in the repo's salt/ (as on the master)."""
    from tests.helpers import master_jinja

    return master_jinja.render(template, pillar, funcs, grains)


def test_tls_default_is_the_pki_default():
    assert defaults("pki")["enabled"] is ha_inventory.TLS_ENABLED_DEFAULT


@pytest.mark.parametrize("value", VALUES)
def test_tls_on_reads_a_value_as_salts_to_bool(value):
    from salt.utils.jinja import to_bool

    assert ha_inventory.tls_on({"enabled": value}) is to_bool(value)


@pytest.mark.parametrize("pillar", TLS_PILLARS, ids=[repr(p) for p in TLS_PILLARS])
def test_every_reader_of_the_tls_switch_gives_the_same_answer(pillar, tmp_path, monkeypatch):
    """tls_on is the switch; the minions' salt/pki/map.jinja (through tls_enabled), the master's
    salt/orch/map.jinja (no custom module loads there: its own to_bool expression), the validation and
    tools/lab's lab_tls, each rendered or run on the same pillar, must all say what it says."""
    expected = ha_inventory.tls_on(pillar.get("tls"))
    answers = {}
    ha_inventory.__pillar__.pop("tls", None)
    ha_inventory.__pillar__.update(pillar)
    answers["tls_enabled"] = ha_inventory.tls_enabled()
    pki = salt_jinja("{%- from 'pki/map.jinja' import pki with context %}{{ pki.enabled }}", pillar, {
        "ha_inventory.tls_enabled": ha_inventory.tls_enabled,
        "ha_inventory.ca_server": lambda: "sql1", "ha_inventory.signing_policy_name": ha_inventory.signing_policy_name,
        "ha_inventory.load": lambda: {"hosts": {"sql1": {}}}}, grains={"id": "sql1", "os_family": "Debian"})
    answers["salt/pki/map.jinja"] = {"True": True, "False": False}.get(pki.strip(), pki)
    orch = salt_jinja("{%- from 'orch/map.jinja' import orch with context %}{{ orch.api_url }} {{ orch.ca_file }}",
                      dict(pillar, inventory=load_inventory("compact")), {"test.exception": pytest.fail})
    api_url, ca_file = orch.split()
    answers["salt/orch/map.jinja"] = api_url.startswith("https://") if (ca_file != "None") == api_url.startswith(
        "https://") else f"api_url {api_url} with ca_file {ca_file}"
    errors = []
    ha_inventory._check_tls(pillar.get("tls") or {}, {"ca": ["sql1"]}, errors)  # as validate() passes it
    if not any("must be a mapping" in e for e in errors):  # no mapping: the render fails anyway
        answers["validation (material required)"] = any("is missing" in e for e in errors)
    lab = lab_module()
    monkeypatch.setattr(lab, "REPO", tmp_path)
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "airflow_ha_secrets.sls").write_text(yaml.safe_dump(pillar))
    answers["tools/lab lab_tls"] = lab.lab_tls()[0]
    assert answers == dict.fromkeys(answers, expected), f"tls_on says {expected}"


def test_pki_map_and_the_lab_call_the_one_switch():
    assert "salt['ha_inventory.tls_enabled']()" in (REPO / "salt" / "pki" / "map.jinja").read_text()
    assert "tls_on(" in (REPO / "tools" / "lab" / "inventory.py").read_text()


# ------------------------------------------------------------------ inventory loader

LOADER_USERS = ["tools/render.py", "tools/roster.py", "tools/gen_tls.py", "tools/lab/inventory.py",
                "tests/helpers/inventory.py"]


@pytest.mark.parametrize("path", LOADER_USERS)
def test_the_inventory_is_read_by_the_one_loader(path):
    text = (REPO / path).read_text()
    assert "read_inventory" in text or "read_ports" in text
    assert not re.search(r"open\([^)]*inventory|\"inventory\", f\"\{", text), f"{path} opens an inventory file itself"


def test_the_lab_loader_gives_what_pillar_gets():
    lab = lab_module()
    if lab.LAB_INVENTORY.exists():
        pytest.skip("a lab inventory exists: load() reads that copy")
    assert lab.load("compact") == ha_inventory.read_inventory("compact") == load_inventory("compact")


def lab_machines():
    """What the Vagrantfile must define, from the loader: the lab's inventory once make lab made it, else
    the topology's (AIRFLOW_HA_TOPOLOGY=compact, as the tests below run it)."""
    lab_file = REPO / ".lab" / "pillar" / "inventory" / "lab.yaml"
    inv = ha_inventory.read_inventory(path=lab_file if lab_file.exists() else None, topology="compact")
    return {"topology": "lab" if lab_file.exists() else "compact", "prefix": int(inv["network"].split("/")[1]),
            "master": next(iter(inv["hosts"])), "hosts": {name: h["ip"] for name, h in inv["hosts"].items()}}


def test_the_vagrantfile_parses_no_inventory():
    text = (REPO / "Vagrantfile").read_text()
    assert not re.search(r'require "yaml"|YAML\.|\.yaml"', text), "the Vagrantfile reads an inventory file itself"
    assert '"tools", "lab", "inventory.py"' in text and '"vagrant"' in text


def pythons():
    """The Pythons the Vagrantfile may run the loader with: make lab's venv, and the system's python3
    (no Salt there) when it has PyYAML."""
    found = [sys.executable]
    system = "/usr/bin/python3"
    if os.path.exists(system) and subprocess.run([system, "-c", "import yaml"], capture_output=True).returncode == 0:
        found.append(system)
    return found


@pytest.mark.parametrize("python", pythons())
def test_the_vagrant_query_gives_the_loaders_machines(python, tmp_path):
    proc = subprocess.run([python, str(REPO / "tools" / "lab" / "inventory.py"), "compact", "vagrant"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == lab_machines()


def test_vagrant_defines_one_machine_per_host_of_the_inventory():
    """`vagrant status` (read-only: a machine not created is listed not_created) evaluates the Vagrantfile."""
    if not shutil.which("vagrant"):
        pytest.skip("vagrant is not installed (tools/lab/up.sh installs it)")
    proc = subprocess.run(["vagrant", "status", "--machine-readable"], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=dict(os.environ, AIRFLOW_HA_TOPOLOGY="compact"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = [line.split(",")[1] for line in proc.stdout.splitlines() if line.split(",")[2:3] == ["state"]]
    assert names == list(lab_machines()["hosts"])


def test_the_lab_drills_ports_are_ports_of_the_port_map():
    """tools/lab/drill.py writes ports as literals (it is owned elsewhere): each must be a port of the map."""
    text = (REPO / "tools" / "lab" / "drill.py").read_text()
    found = set()
    for pattern in (r"\{ip\}:(\d{2,5})/", r"port=(\d{2,5})\b", r"prometheus_get\(inv, (\d{2,5})",
                    r"(\d{4,5}) if tls else (\d{4,5})"):
        for match in re.findall(pattern, text):
            found.update(int(m) for m in (match if isinstance(match, tuple) else (match,)))
    assert found, "no port literal found: the patterns no longer match drill.py"
    mapped = {int(r["port"]) for r in load_ports() if str(r["port"]).isdigit()}
    assert found <= mapped, f"ports of tools/lab/drill.py not in pillar/ports.sls: {sorted(found - mapped)}"
