"""The VRRP maths of keepalived (ha_inventory.vrrp_instances): priorities by
position among the role's hosts, peers, router ids, track scripts, and each
bad setting refused naming the pillar key."""

import copy

import pytest
import yaml
from salt.exceptions import CommandExecutionError

import _modules.ha_inventory as ha_inventory
from tests.helpers.inventory import REPO, load_inventory

DEFAULTS = yaml.safe_load((REPO / "salt" / "keepalived" / "defaults.yaml").read_text())


@pytest.fixture
def full():
    return ha_inventory.normalize(load_inventory("full"))


def by_vip(instances):
    return {i["vip"]: i for i in instances}


def test_priorities_follow_the_roles_host_order(full):
    members = full["roles"]["haproxy"]
    prios = [by_vip(ha_inventory.vrrp_instances(full, DEFAULTS, name, "eth0")[0])["main"]["priority"]
             for name in members]
    assert prios == [150 - 50 * i for i in range(len(members))]


def test_instance_of_the_first_haproxy_host(full):
    first, *others = full["roles"]["haproxy"]
    instances, scripts = ha_inventory.vrrp_instances(full, DEFAULTS, first, "ens3", "abc123")
    main = by_vip(instances)["main"]
    assert main["name"] == "VI_main" and main["interface"] == "ens3" and main["virtual_router_id"] == 51
    assert main["unicast_src_ip"] == full["hosts"][first]["ip"]
    assert main["unicast_peers"] == [full["hosts"][n]["ip"] for n in others]
    assert main["address"] == f"{full['vips']['main']['ip']}/{full['hosts'][first]['prefix']}"
    # without the Patroni REST API's port the database track is left out
    assert main["track_scripts"] == ["chk_haproxy"] and main["nopreempt"] is True
    assert set(scripts) == {"haproxy"}


def test_the_main_vip_tracks_the_database_tier_when_the_inventory_has_one(full):
    first = full["roles"]["haproxy"][0]
    members = [full["hosts"][n]["ip"] for n in full["roles"]["postgres"]]
    conf = copy.deepcopy(DEFAULTS)  # the script's path is the OS family's (osfamilymap.yaml)
    for name in conf["track_scripts"]:
        conf["track_scripts"][name]["script"] = f"/usr/local/sbin/keepalived-check-{name}"
    instances, scripts = ha_inventory.vrrp_instances(full, conf, first, "eth0", "abc",
                                                     {"port": 8008, "ca_file": "/pki/ca.crt"})
    assert by_vip(instances)["main"]["track_scripts"] == ["chk_haproxy", "chk_database"]
    assert scripts["database"]["script"].split()[1:] == (
        ["--cacert", "/pki/ca.crt"] + [f"https://{ip}:8008/liveness" for ip in members])
    plain = ha_inventory.vrrp_instances(full, conf, first, "eth0", "abc", {"port": 8008, "ca_file": None})[1]
    assert plain["database"]["script"].split()[1:] == [f"http://{ip}:8008/liveness" for ip in members]
    no_db = copy.deepcopy(full)
    no_db["roles"]["postgres"] = []
    assert ha_inventory.vrrp_instances(no_db, conf, first, "eth0", "abc", {"port": 8008})[1].keys() == {"haproxy"}


def test_a_host_without_a_vip_role_has_no_instance(full):
    assert ha_inventory.vrrp_instances(full, DEFAULTS, "sql1", "eth0") == ([], {})


def test_pillar_priority_and_interface_per_vip(full):
    first = full["roles"]["haproxy"][0]
    conf = copy.deepcopy(DEFAULTS)
    conf["vips"]["main"].update(priorities={first: 200}, interface="bond0", nopreempt=False)
    main = by_vip(ha_inventory.vrrp_instances(full, conf, first, "eth0")[0])["main"]
    assert (main["priority"], main["interface"], main["nopreempt"]) == (200, "bond0", False)


@pytest.mark.parametrize("change, message", [
    ({"vips": {"main": {"virtual_router_id": 52}, "nfs": {"virtual_router_id": 52}}},
     "virtual_router_id 52 is also the id of VIP"),
    ({"vips": {"main": {"virtual_router_id": 0}, "nfs": {"virtual_router_id": 52}}},
     "keepalived:vips:main:virtual_router_id"),
    ({"priority_step": 100}, "set keepalived:priority_step"),
    ({"vips": {"main": {"virtual_router_id": 51, "track": "nginx"}, "nfs": {"virtual_router_id": 52}}},
     "keepalived:vips:main:track nginx is not in keepalived:track_scripts"),
])
def test_bad_settings_are_refused_naming_the_key(full, change, message):
    conf = dict(copy.deepcopy(DEFAULTS), **change)
    last = full["roles"]["haproxy"][-1] if len(full["roles"]["haproxy"]) > 2 else full["roles"]["haproxy"][0]
    if "priority_step" in change:  # the third host of a role would get 150 - 2 * 100 < 1
        full = dict(full, roles=dict(full["roles"], haproxy=[*full["roles"]["haproxy"], "x1", "x2"][:3]))
        last = full["roles"]["haproxy"][2]
        full["hosts"] = dict(full["hosts"], **{n: dict(full["hosts"][full["roles"]["haproxy"][0]], roles=["haproxy"])
                                              for n in ("x1", "x2")})
    with pytest.raises(CommandExecutionError, match=message):
        ha_inventory.vrrp_instances(full, conf, last, "eth0")


def test_an_unquotable_vrrp_password_is_refused(full):
    with pytest.raises(CommandExecutionError, match="secrets:keepalived:auth_pass holds"):
        ha_inventory.vrrp_instances(full, DEFAULTS, "sql1", "eth0", 'a"b')


def test_interface_of_picks_the_interface_holding_the_ip():
    grains = {"lo": ["127.0.0.1"], "eth1": ["10.0.0.5"], "eth0": ["10.0.0.4", "10.0.0.5"]}
    assert ha_inventory.interface_of("10.0.0.5", grains) == "eth0"
    assert ha_inventory.interface_of("10.9.9.9", grains) is None
