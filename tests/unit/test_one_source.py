"""One source per fact: where a fact is still written in more than one place,
these tests prove the copies agree, and that a pillar override the rest of
the tree cannot follow is refused at render time."""

import re

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
    targets = {(role, port) for role, port, _ in ha_monitoring.EXPORTERS.values()}
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

VALUES = [True, False, "true", "false", "True", "yes", "no", "on", "off", "1", "0", 1, 0, None]


def test_tls_default_is_the_pki_default():
    assert defaults("pki")["enabled"] is ha_inventory.TLS_ENABLED_DEFAULT


@pytest.mark.parametrize("value", VALUES)
def test_orchestrate_reads_the_tls_switch_as_ha_inventory_does(value):
    """salt/orch/map.jinja renders on the master (no custom modules there): its
    expression, rendered with Salt's to_bool, gives what tls_on gives."""
    from jinja2 import Environment
    from salt.utils.jinja import to_bool

    text = (REPO / "salt" / "orch" / "map.jinja").read_text()
    expr = re.search(r"\{%- set tls = (.+?) %\}", text).group(1)
    env = Environment(extensions=["jinja2.ext.do"])
    env.filters["to_bool"] = to_bool
    pki = {"enabled": ha_inventory.TLS_ENABLED_DEFAULT}
    for site in ({"tls": {"enabled": value}}, {"tls": {}}):
        got = env.from_string("{{ " + expr + " }}").render(site=site, pki=pki)
        assert got == str(ha_inventory.tls_on(site.get("tls"))), (site, got)


def test_pki_map_and_the_lab_call_the_one_switch():
    assert "salt['ha_inventory.tls_enabled']()" in (REPO / "salt" / "pki" / "map.jinja").read_text()
    assert "tls_on(" in (REPO / "tools" / "lab" / "inventory.py").read_text()
    for value in VALUES:
        ha_inventory.__pillar__["tls"] = {"enabled": value}
        assert ha_inventory.tls_enabled() is ha_inventory.tls_on({"enabled": value})


# ------------------------------------------------------------------ inventory loader

LOADER_USERS = ["tools/render.py", "tools/roster.py", "tools/gen_tls.py", "tools/lab/inventory.py",
                "tests/helpers/inventory.py"]


@pytest.mark.parametrize("path", LOADER_USERS)
def test_the_inventory_is_read_by_the_one_loader(path):
    text = (REPO / path).read_text()
    assert "read_inventory" in text or "read_ports" in text
    assert not re.search(r"open\([^)]*inventory|\"inventory\", f\"\{", text), f"{path} opens an inventory file itself"


def test_the_lab_loader_gives_what_pillar_gets():
    import importlib.util

    spec = importlib.util.spec_from_file_location("lab_inventory", REPO / "tools" / "lab" / "inventory.py")
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    if lab.LAB_INVENTORY.exists():
        pytest.skip("a lab inventory exists: load() reads that copy")
    assert lab.load("compact") == ha_inventory.read_inventory("compact") == load_inventory("compact")


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
