"""The map of which secrets each role's hosts hold (pillar/role_secrets.yaml, issue 17): well formed, true
to the states (every secret a role area reads is held by its roles), the one list `make secrets` fills and
docs/secrets.md shows, and what the render's checks ask of a host (its own roles' secrets, no other)."""

import copy
import re

import pytest
import yaml

import _modules.ha_inventory as ha_inventory
from salt.exceptions import CommandExecutionError
from tests.helpers.inventory import REPO, copy_inventory, load_inventory, load_ports

import gen_secrets

ROLE_SECRETS = ha_inventory.read_role_secrets()
KEY = re.compile(r"secrets:([a-z_]+:[a-z_]+)")
ENV_KEY = re.compile(r"\bs\.([a-z_]+)\.([a-z_]+)")  # airflow.env.jinja: `s` is pillar secrets


@pytest.fixture
def configure_loader_modules(inventory_dunders):
    return {ha_inventory: inventory_dunders}


def by_role():
    """{role: every key the map gives its hosts under some condition}."""
    out = {}
    for need in ROLE_SECRETS["needs"]:
        for role in need["roles"]:
            out.setdefault(role, set()).update(need["secrets"])
    return out


def subtree(secrets, paths):
    """The ``secrets`` mapping cut down to ``paths``: what pillar gives a host."""
    out = {}
    for path in paths:
        group, key = path.split(":")
        if key in secrets.get(group, {}):
            out.setdefault(group, {})[key] = secrets[group][key]
    return out


def test_the_map_is_well_formed():
    assert set(ROLE_SECRETS) == {"needs"}
    for need in ROLE_SECRETS["needs"]:
        assert set(need) <= {"roles", "secrets", "with_role", "optional"}, need
        assert need["roles"] and set(need["roles"]) <= set(ha_inventory.KNOWN_ROLES), need
        assert need.get("with_role") in (None, *ha_inventory.KNOWN_ROLES), need
        assert need.get("optional") in (None, True), need
        # group:key, as pillar/role_secrets.sls splits it
        assert need["secrets"] and all(re.fullmatch(r"[a-z_]+:[a-z_]+", p) for p in need["secrets"]), need


def area_roles():
    """{state area: the roles whose hosts apply it}: salt/top.sls, plus the areas a role's SLS includes."""
    roles = {"keepalived": {"haproxy", "nfs"}, "backup": {"postgres"}}  # haproxy, storage.nfs; postgres's backup.member
    for target, entries in yaml.safe_load((REPO / "salt" / "top.sls").read_text())["base"].items():
        for sls in entries:
            if isinstance(sls, str):
                roles.setdefault(sls.split(".")[0], set())
                if target.startswith("roles:"):
                    roles[sls.split(".")[0]].add(target[len("roles:"):])
    return roles


def keys_read(area):
    found = set()
    for path in sorted((REPO / "salt" / area).rglob("*")):
        if path.is_file() and path.suffix in (".sls", ".jinja", ".yaml", ".py"):
            text = path.read_text()
            found.update(KEY.findall(text))
            if path.name == "airflow.env.jinja":
                found.update(f"{g}:{k}" for g, k in ENV_KEY.findall(text))
    return found


@pytest.mark.parametrize("area", sorted(p.name for p in (REPO / "salt").iterdir()
                                        if p.is_dir() and not p.name.startswith("_")))
def test_every_secret_a_state_area_reads_is_held_by_the_roles_that_apply_it(area):
    """A new secret read by a state goes into the map, or its hosts would not get it; an area no role applies
    (base, the orchestrates, pki: every host, the master) reads none."""
    held = set().union(*(by_role().get(role, set()) for role in area_roles().get(area, ())))
    missing = keys_read(area) - held
    assert not missing, f"salt/{area} reads {sorted(missing)}: add them to pillar/role_secrets.yaml for the roles " \
                        f"{sorted(area_roles().get(area, ())) or '(none: no secret here)'}"


def test_every_secret_of_the_map_is_read_by_a_state():
    """No stale entry: each key is read by a state (or the custom module a state calls: the VRRP password)."""
    read = set().union(*(keys_read(area) for area in area_roles()))
    read |= set(KEY.findall((REPO / "_modules" / "ha_inventory.py").read_text()))
    assert set(ha_inventory.map_secrets(ROLE_SECRETS, optional=True)) - read == set()


def test_make_secrets_makes_every_secret_of_the_map_but_the_sites_optional_ones(secrets):
    made = {f"{g}:{k}" for g, keys in secrets.items() for k in keys}
    assert made == set(ha_inventory.map_secrets(ROLE_SECRETS))
    assert "alertmanager:smtp_password" in ha_inventory.map_secrets(ROLE_SECRETS, optional=True)
    for path in made:
        assert ha_inventory.secret_problem(path, ha_inventory._get(secrets, path)) is None, path


def test_the_secrets_of_a_host_follow_its_roles_and_the_inventory():
    full = load_inventory("full")
    worker1 = ha_inventory.host_secrets(full, "worker1", ROLE_SECRETS)
    assert worker1["card:ssh_private_key"] == "worker" and worker1["postgres:airflow_password"] == "worker"
    assert "airflow:admin_password" not in worker1 and "rabbitmq:erlang_cookie" not in worker1
    assert ha_inventory.host_secrets(full, "sql1", ROLE_SECRETS)["postgres:airflow_password"] == "postgres"
    assert "alertmanager:smtp_password" not in ha_inventory.host_secrets(full, "monitor1", ROLE_SECRETS)
    assert "alertmanager:smtp_password" in ha_inventory.host_secrets(full, "monitor1", ROLE_SECRETS, optional=True)
    # the master's own id, in no inventory: the orchestrate reads no secret
    assert ha_inventory.host_secrets(full, "saltmaster_master", ROLE_SECRETS) == {}
    # without a card target or backup host, no card key on the workers, no pgBackRest SSH key on the members
    inv = copy_inventory("full")
    for host in inv["hosts"].values():
        host["roles"] = [r for r in host["roles"] if r not in ("card_target", "backup", "ftp")]
    assert not {"card:ssh_private_key", "card:host_public_key", "ftp:password"} \
        & set(ha_inventory.host_secrets(inv, "worker1", ROLE_SECRETS))
    assert not {p for p in ha_inventory.host_secrets(inv, "sql1", ROLE_SECRETS) if p.startswith("pgbackrest:")}
    # the union over the hosts is what a whole secrets file must hold
    assert set(ha_inventory.cluster_secrets(full, ROLE_SECRETS)) == \
        {p for h in full["hosts"] for p in ha_inventory.host_secrets(full, h, ROLE_SECRETS)}


def test_a_host_asks_for_the_secrets_of_its_roles_only(secrets):
    """With exactly the secrets pillar gives it, each host passes; it does not demand what it no longer gets."""
    for topology in ("full", "compact"):
        inv = load_inventory(topology)
        for host in inv["hosts"]:
            own = subtree(secrets, ha_inventory.host_secrets(inv, host, ROLE_SECRETS))
            assert ha_inventory.find_errors(inv, own, load_ports(), host=host, role_secrets=ROLE_SECRETS) == []


@pytest.mark.parametrize("host, path, role", [
    ("db1", "rabbitmq:erlang_cookie", "rabbitmq"),
    ("db1", "postgres:superuser_password", "postgres"),
    ("db3", "ldap:seed_password", "ldap"),
    ("af1", "airflow:flower_password", "flower"),
    ("af2", "card:ssh_private_key", "worker"),
    ("af2", "pgbackrest:cipher_pass", "backup"),
])
def test_a_secret_one_role_needs_missing_fails_that_hosts_render_naming_the_key_and_the_fix(secrets, host, path,
                                                                                           role):
    inv = load_inventory("compact")
    broken = copy.deepcopy(secrets)
    group, key = path.split(":")
    del broken[group][key]
    errors = ha_inventory.find_errors(inv, broken, load_ports(), host=host, role_secrets=ROLE_SECRETS)
    assert errors == [f"secrets:{path} is missing (needed by role {role!r}): run `make secrets` "
                      "(tools/gen_secrets.py) or set it in your secrets pillar"]
    # a host none of whose roles uses it does not ask for it
    others = [h for h in inv["hosts"] if path not in ha_inventory.host_secrets(inv, h, ROLE_SECRETS)]
    assert others
    for other in others:
        assert ha_inventory.find_errors(inv, broken, load_ports(), host=other, role_secrets=ROLE_SECRETS) == []


def test_validate_checks_the_minions_own_secrets_by_its_id(secrets):
    """ha_inventory.validate (every map.jinja's load) on worker1 with the pillar it gets: passes; a weak key of
    its roles fails naming it; the map missing from pillar (an older pillar tree on the master) is named."""
    ha_inventory.__grains__["id"] = "worker1"
    inv = load_inventory("full")
    own = subtree(secrets, ha_inventory.host_secrets(inv, "worker1", ROLE_SECRETS))
    ha_inventory.__pillar__["secrets"] = own
    assert ha_inventory.validate()
    own["card"]["ssh_private_key"] = "not a key"
    with pytest.raises(CommandExecutionError, match=r"secrets:card:ssh_private_key is not an SSH private key "
                                                    r"\(PEM\) \(needed by role 'worker'\)"):
        ha_inventory.validate()
    del ha_inventory.__pillar__["role_secrets"]
    with pytest.raises(CommandExecutionError, match=r"pillar role_secrets is missing: the master's pillar_roots "
                                                    r"must hold this version's pillar/"):
        ha_inventory.validate()


def docs_table():
    """{role: the keys docs/secrets.md's per-role table gives its hosts}."""
    text = (REPO / "docs" / "secrets.md").read_text()
    section = text.split("## Which host holds which secret", 1)[1].split("\n## ", 1)[0]
    table = {}
    for line in section.splitlines():
        cells = line.split("|")
        if len(cells) < 4 or "---" in line:
            continue
        roles = [r for r in re.findall(r"`([a-z_]+)`", cells[1]) if r in ha_inventory.KNOWN_ROLES]
        for role in roles:
            table.setdefault(role, set()).update(re.findall(r"`([a-z_]+:[a-z_]+)`", cells[2]))
    return table


def test_the_docs_per_role_table_is_the_map():
    table = docs_table()
    assert set(table) == set(ha_inventory.KNOWN_ROLES), "docs/secrets.md: one row (or a shared row) per role"
    assert {role: keys for role, keys in table.items() if keys} == by_role()
