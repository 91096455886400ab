"""The inventory checks: each bad input gives a message naming the key and the fix."""

import ipaddress

import pytest

import _modules.ha_inventory as ha_inventory
from salt.exceptions import CommandExecutionError
from tests.helpers.inventory import REPO, TOPOLOGIES, copy_inventory, hosts_with_role, load_inventory, load_ports


@pytest.fixture
def configure_loader_modules(inventory_dunders):
    return {ha_inventory: inventory_dunders}


def test_validate_without_any_tls_pillar_names_the_missing_tls_keys():
    del ha_inventory.__pillar__["tls"]
    with pytest.raises(CommandExecutionError, match=r"tls:ca_cert is missing \(tls:enabled is true by default\)"):
        ha_inventory.validate()


def errors_of(inventory, secrets, ports=None):
    return ha_inventory.find_errors(inventory, secrets, ports if ports is not None else load_ports())


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_shipped_topologies_are_valid(topology, secrets):
    assert errors_of(load_inventory(topology), secrets) == []


def test_full_topology_is_the_13_hosts_of_the_seed_plus_monitoring():
    inv = load_inventory("full")
    seed_hosts = {"airflow", "scheduler2", "haproxy2", "ftp", "nfs2", "worker1", "card1", "mq1", "mq2", "mq3",
                  "sql1", "sql2", "sql3"}
    assert set(inv["hosts"]) == seed_hosts | {"monitor1"}
    assert inv["hosts"]["monitor1"]["roles"] == ["monitoring", "backup", "ldap", "logs", "ca"]  # ldap: the logins (issue 26); logs: issue 22; ca: issue 17
    assert inv["hosts"]["sql1"]["ip"] == "192.168.83.148"
    assert inv["vips"]["main"]["ip"] == "192.168.83.210"
    assert inv["vips"]["nfs"]["ip"] == "192.168.83.220"


def test_compact_topology_keeps_quorum_and_two_of_each_airflow_component():
    inv = load_inventory("compact")
    for role in ("etcd", "postgres", "rabbitmq"):
        assert len(hosts_with_role(inv, role)) == 3
    for role in ("scheduler", "webserver", "worker", "haproxy", "dag_processor"):
        assert len(hosts_with_role(inv, role)) == 2, role


@pytest.mark.parametrize("role,members", [("etcd", ["sql1", "sql2"]), ("postgres", ["sql1", "sql2", "sql3", "ftp"]),
                                          ("rabbitmq", ["mq1"])])
def test_even_or_too_few_members_fail(role, members, secrets):
    inv = copy_inventory()
    for name, host in inv["hosts"].items():
        host["roles"] = [r for r in host["roles"] if r != role] + ([role] if name in members else [])
    errors = errors_of(inv, secrets)
    assert any(f"role {role!r} has {len(members)} hosts" in e and "odd number" in e for e in errors), errors


def test_duplicate_ip_fails(secrets):
    inv = copy_inventory()
    inv["hosts"]["sql2"]["ip"] = inv["hosts"]["sql1"]["ip"]
    errors = errors_of(inv, secrets)
    assert any(e.startswith("inventory:hosts:sql2:ip 192.168.83.148 is also the address of 'sql1'") for e in errors), errors


def test_duplicate_hostname_fails(secrets):
    inv = copy_inventory()
    inv["hosts"]["SQL1"] = dict(inv["hosts"]["sql1"], ip="192.168.83.200")
    errors = errors_of(inv, secrets)
    assert any("inventory:hosts:SQL1: hostname duplicates 'sql1'" in e for e in errors), errors


def test_vip_hostname_colliding_with_a_host_fails(secrets):
    inv = copy_inventory()
    inv["vips"]["main"]["hostname"] = "airflow"
    assert any(e.startswith("inventory:vips:main:hostname 'airflow' is also a host's name") for e in errors_of(inv, secrets))


def test_role_with_no_host_fails(secrets):
    inv = copy_inventory()
    inv["hosts"]["worker1"]["roles"] = []
    errors = errors_of(inv, secrets)
    assert any("role 'worker'" in e and "has no host" in e for e in errors), errors


def test_unknown_role_fails(secrets):
    inv = copy_inventory()
    inv["hosts"]["worker1"]["roles"].append("sheduler")
    errors = errors_of(inv, secrets)
    assert any(e.startswith("inventory:hosts:worker1:roles: unknown role 'sheduler'") for e in errors), errors


def test_vip_outside_every_subnet_fails(secrets):
    inv = copy_inventory()
    inv["vips"]["main"]["ip"] = "10.9.9.9"
    errors = errors_of(inv, secrets)
    assert any(e.startswith("inventory:vips:main:ip 10.9.9.9 is inside no host's subnet") for e in errors), errors


def test_vip_on_a_host_address_fails(secrets):
    inv = copy_inventory()
    inv["vips"]["nfs"]["ip"] = inv["hosts"]["ftp"]["ip"]
    assert any("inventory:vips:nfs:ip" in e and "is the address of host 'ftp'" in e for e in errors_of(inv, secrets))


def test_vip_of_a_role_with_no_host_fails(secrets):
    inv = copy_inventory()
    for host in inv["hosts"].values():
        host["roles"] = [r for r in host["roles"] if r != "nfs"]
    assert any(e.startswith("inventory:vips:nfs:role 'nfs' has no host") for e in errors_of(inv, secrets))


def test_host_outside_the_network_fails(secrets):
    inv = copy_inventory()
    inv["hosts"]["card1"]["ip"] = "10.1.1.1"
    assert any(e.startswith("inventory:hosts:card1:ip 10.1.1.1 is outside inventory:network") for e in errors_of(inv, secrets))


@pytest.mark.parametrize("path", ["postgres:replication_password", "rabbitmq:erlang_cookie", "airflow:fernet_key",
                                  "keepalived:auth_pass", "card:ssh_private_key"])
def test_missing_secret_fails_naming_the_key_and_the_fix(path, secrets):
    import copy

    broken = copy.deepcopy(secrets)
    group, key = path.split(":")
    del broken[group][key]
    errors = errors_of(load_inventory("full"), broken)
    assert any(e.startswith(f"secrets:{path} is missing") and "make secrets" in e for e in errors), errors


def test_no_secrets_at_all_lists_every_missing_secret():
    inv = load_inventory("full")
    errors = errors_of(inv, None)
    role_secrets = ha_inventory.read_role_secrets()
    needed = {p for host in inv["hosts"] for p in ha_inventory.host_secrets(inv, host, role_secrets)}
    assert len(needed) >= 15
    assert sorted(e.split()[0] for e in errors) == sorted(f"secrets:{p}" for p in needed)


def test_known_default_password_is_refused(secrets):
    import copy

    broken = copy.deepcopy(secrets)
    broken["postgres"]["airflow_password"] = "airflow_pass"
    assert any(e.startswith("secrets:postgres:airflow_password is a well-known default password") for e in errors_of(load_inventory("full"), broken))


def test_bad_fernet_key_and_long_vrrp_password_fail(secrets):
    import copy

    broken = copy.deepcopy(secrets)
    broken["airflow"]["fernet_key"] = "not-a-key"
    broken["keepalived"]["auth_pass"] = "123456789"
    errors = errors_of(load_inventory("full"), broken)
    assert any(e.startswith("secrets:airflow:fernet_key is not a Fernet key") for e in errors)
    assert any(e.startswith("secrets:keepalived:auth_pass is longer than 8") for e in errors)


def test_port_map_with_unknown_role_fails(secrets):
    ports = load_ports() + [{"role": "database", "port": 1, "proto": "tcp", "from_roles": ["all"]}]
    assert any("unknown role 'database'" in e for e in errors_of(load_inventory("full"), secrets, ports))


def test_validate_raises_with_every_message(secrets):
    inv = copy_inventory()
    inv["hosts"]["sql2"]["ip"] = inv["hosts"]["sql1"]["ip"]
    ha_inventory.__pillar__["inventory"] = inv
    with pytest.raises(CommandExecutionError, match=r"Invalid pillar, nothing was applied:\n  - inventory:hosts:sql2:ip"):
        ha_inventory.validate()


def test_load_refuses_a_minion_not_in_the_inventory():
    ha_inventory.__grains__["id"] = "stranger"
    with pytest.raises(CommandExecutionError, match="minion's id 'stranger' is not in inventory:hosts"):
        ha_inventory.load()


def test_firewall_rules_follow_the_port_map():
    rules = {(r["port"], r["proto"]): r for r in ha_inventory.firewall_rules("sql1")}
    inv = load_inventory("full")
    sql_ips = sorted(inv["hosts"][n]["ip"] for n in ("sql1", "sql2", "sql3"))
    assert rules[("2380", "tcp")]["sources"] == sorted(sql_ips, key=lambda ip: tuple(map(int, ip.split("."))))
    assert inv["hosts"]["worker1"]["ip"] not in rules[("5432", "tcp")]["sources"]
    assert ("5672", "tcp") not in rules  # RabbitMQ is not on sql1
    assert rules[("22", "tcp")]["sources"][0] == "192.168.83.0/24"  # admin network defaults to the inventory's


def test_port_map_entries_marked_tls_follow_tls_enabled():
    plain = {r["port"] for r in ha_inventory.firewall_rules("mq1")}
    tls = {r["port"] for r in ha_inventory.firewall_rules("mq1", tls=True)}
    assert {"5672", "15672"} <= plain and not {"5671", "15671"} & plain
    assert {"5671", "15671", "15692", "25672"} <= tls and not {"5672", "15672"} & tls
    web = {r["port"] for r in ha_inventory.firewall_rules("airflow", tls=True)}
    assert {"80", "443", "5555"} <= web
    assert "443" not in {r["port"] for r in ha_inventory.firewall_rules("airflow")}
    assert ha_inventory.port_applies({"port": 22}, tls=True) and ha_inventory.port_applies({"port": 22})


def test_a_tls_mark_that_is_not_a_boolean_is_refused():
    ports = load_ports() + [{"role": "rabbitmq", "port": 5671, "proto": "tcp", "tls": "yes", "from_roles": ["all"]}]
    errors = ha_inventory.find_errors(load_inventory("full"), ports=ports, check_secrets=False)
    assert errors == [f"ports:{len(ports) - 1}:tls must be true or false (the entry holds only with / without tls:enabled)"]


def test_admin_networks_replace_the_default():
    rules = {(r["port"], r["proto"]): r for r in ha_inventory.firewall_rules("airflow", ["10.20.0.0/16"])}
    assert "10.20.0.0/16" in rules[("22", "tcp")]["sources"]
    assert "192.168.83.0/24" not in rules[("22", "tcp")]["sources"]
    assert rules[("vrrp", "vrrp")]["sources"] == ["192.168.83.129", "192.168.83.154"]


def test_roster_has_every_inventory_host_at_its_ip():
    import roster

    inv = load_inventory("full")
    entries = roster.roster(inv, "airflowops")
    assert sorted(entries) == sorted(inv["hosts"])
    assert entries["sql1"] == {"host": "192.168.83.148", "user": "airflowops", "sudo": True,
                               "minion_opts": {"airflow_ha_topology": "full"}}


def test_unknown_dag_distribution_fails(secrets):
    inv = copy_inventory("compact")
    inv["dags"]["distribution"] = "rsync"
    assert any(e.startswith("inventory:dags:distribution 'rsync' is unknown") for e in errors_of(inv, secrets))


def test_nfs_distribution_without_nfs_hosts_fails(secrets):
    inv = copy_inventory("compact")
    inv["dags"]["distribution"] = "nfs"
    assert any("there is no nfs host" in e for e in errors_of(inv, secrets))


def test_ips_of_roles_are_sorted_and_unique():
    assert ha_inventory.ips("scheduler", "triggerer") == ["192.168.83.129", "192.168.83.151"]
    assert ha_inventory.ips("nonexistent") == []


def test_vagrantfile_reads_the_inventory_and_lists_no_host():
    text = (REPO / "Vagrantfile").read_text()
    assert 'File.join(__dir__, "tools", "lab", "inventory.py")' in text  # the loader (tests/unit/test_one_source.py)
    for topology in ("full", "compact"):
        for name, host in load_inventory(topology)["hosts"].items():
            assert host["ip"] not in text and f'"{name}"' not in text


# ------------------------------------------------------------------ strict secrets (issue 17)

def broken_with(secrets, path, value):
    import copy

    broken = copy.deepcopy(secrets)
    group, key = path.split(":")
    broken[group][key] = value
    return broken


@pytest.mark.parametrize("path, value, problem", [
    ("postgres:superuser_password", "", "is missing"),
    ("postgres:superuser_password", "   ", "is missing"),
    ("rabbitmq:admin_password", "guest", "is a well-known default password"),
    ("airflow:admin_password", "Admin", "is a well-known default password"),
    ("postgres:airflow_password", "airflow", "is a well-known default password"),
    ("grafana:admin_password", "changeme", "is a well-known default password"),
    ("haproxy:stats_password", "Password ", "is a well-known default password"),
    ("ftp:password", "s3cr3tPass", "is too short (10 characters, at least 16)"),
    ("keepalived:auth_pass", "abc12", "is too short (5 characters, at least 8)"),
    ("airflow:jwt_secret", "x" * 70, "is one character repeated"),
    ("patroni:restapi_password", {"a": 1}, "must be a string, not dict"),
    ("card:ssh_private_key", "not a key at all, long enough", "is not an SSH private key"),
    ("card:host_public_key", "AAAAC3NzaC1lZDI1NTE5AAAAIMX", "is not an SSH public key"),
])
def test_a_weak_secret_fails_naming_the_key_and_the_fix(path, value, problem, secrets):
    errors = errors_of(load_inventory("full"), broken_with(secrets, path, value))
    mine = [e for e in errors if e.startswith(f"secrets:{path} ")]
    assert len(mine) == 1, errors
    assert problem in mine[0] and "make secrets" in mine[0], mine


def test_a_secret_reused_for_another_key_fails(secrets):
    broken = broken_with(secrets, "postgres:replication_password", secrets["postgres"]["superuser_password"])
    errors = errors_of(load_inventory("full"), broken)
    assert any(e.startswith("secrets:postgres:replication_password is the same value as "
                            "secrets:postgres:superuser_password") for e in errors), errors


def test_a_weak_secret_fails_validate_as_the_render_calls_it(secrets):
    ha_inventory.__grains__["id"] = "mq1"
    ha_inventory.__pillar__["secrets"] = broken_with(secrets, "rabbitmq:airflow_password", "guest")
    with pytest.raises(CommandExecutionError, match=r"secrets:rabbitmq:airflow_password is a well-known default "
                                                    r"password \(needed by role 'rabbitmq'\): run `make secrets`"):
        ha_inventory.validate()


def test_a_weak_secret_of_a_role_the_inventory_lacks_is_not_checked(secrets):
    inv = copy_inventory()
    for host in inv["hosts"].values():
        host["roles"] = [r for r in host["roles"] if r != "ftp"]
    assert errors_of(inv, broken_with(secrets, "ftp:password", "x")) == []


def test_every_generated_secret_passes_and_make_secrets_replaces_a_weak_one(secrets):
    """`make secrets` is the fix the messages name: it must replace what the render refuses, and keep the rest."""
    import gen_secrets

    for path in gen_secrets.generators():
        assert ha_inventory.secret_problem(path, ha_inventory._get(secrets, path)) is None, path
    weak = broken_with(secrets, "rabbitmq:admin_password", "guest")
    weak = broken_with(weak, "ftp:password", "short")
    weak = broken_with(weak, "haproxy:stats_password", weak["postgres"]["airflow_password"])
    weak["card"]["host_public_key"] = ""
    replaced = gen_secrets.fill(weak)
    assert {"rabbitmq:admin_password", "ftp:password", "haproxy:stats_password", "card:host_private_key",
            "card:host_public_key"} == set(replaced)
    assert weak["postgres"]["airflow_password"] == secrets["postgres"]["airflow_password"]
    assert errors_of(load_inventory("full"), weak) == []


def test_the_backup_role_is_one_host_and_never_a_postgres_member(secrets):
    inv = load_inventory("compact")
    inv["hosts"]["af1"]["roles"].append("backup")
    assert any("role 'backup' has 2 hosts (af1, af2)" in e for e in errors_of(inv, secrets))
    inv = load_inventory("compact")
    inv["hosts"]["af2"]["roles"].remove("backup")
    inv["hosts"]["db3"]["roles"].append("backup")
    assert any("inventory:hosts:db3:roles: a host cannot be both 'backup' and 'postgres'" in e
               for e in errors_of(inv, secrets))


def test_the_backup_role_needs_the_repository_passphrase(secrets):
    import copy

    tree = copy.deepcopy(secrets)
    del tree["pgbackrest"]["cipher_pass"]
    errors = errors_of(load_inventory("compact"), tree)
    assert errors == ["secrets:pgbackrest:cipher_pass is missing (needed by role 'backup'): "
                      + ha_inventory.SECRETS_FIX]


@pytest.mark.parametrize("path", ["airflow:flower_password", "ldap:admin_password", "ldap:bind_password",
                                  "ldap:seed_password"])
def test_the_access_control_secrets_get_the_strict_checks(path, secrets):
    """Issue 26's secrets (Flower's login, the directory's) are refused weak like the others, and
    `make secrets` replaces a weak one."""
    import gen_secrets

    for value, problem in (("Admin", "is a well-known default password"), ("ldap-pw-1234", "is too short"),
                           (secrets["postgres"]["airflow_password"], "is the same value as secrets:postgres:")):
        weak = broken_with(secrets, path, value)
        errors = errors_of(load_inventory("full"), weak)
        assert any(e.startswith(f"secrets:{path} ") and problem in e for e in errors), errors
        assert gen_secrets.fill(weak) == [path]
        assert errors_of(load_inventory("full"), weak) == []


# ------------------------------------------ typed-in values: what the consumers carry (issue 17)

def test_hostile_passwords_pass_the_render(secrets):
    """Every printable special character where the consumers carry it (the render tests and
    tests/airflow/test_hostile_secrets_real.py prove they do) is accepted."""
    from tests.helpers.hostile_secrets import hostile_secrets

    assert errors_of(load_inventory("full"), hostile_secrets()) == []


@pytest.mark.parametrize("path, value, problem", [
    ("postgres:airflow_password", "line one\nline two 8f3k", "holds a character other than printable ASCII"),
    ("patroni:restapi_password", "tab\there-9fk3mXq2", "holds a character other than printable ASCII"),
    ("ldap:bind_password", "Grüße-aus-9fk3mXq2", "holds a character other than printable ASCII"),
    ("rabbitmq:airflow_password", " 9fk3mXq2Lw8rTz4b", "begins or ends with a space, which rabbitmqctl strips"),
    ("rabbitmq:admin_password", "9fk3mXq2Lw8rTz4b\t", "holds a character other than printable ASCII"),
    ("rabbitmq:admin_password", "9fk3mXq2Lw8rTz4b ", "begins or ends with a space, which rabbitmqctl strips"),
    ("pgbackrest:cipher_pass", "9fk3mXq2Lw8rTz4b ", "pgBackRest's configuration parser strips"),
    ("airflow:secret_key", "9fk3mXq2$HOME-Lw8rTz4b", "holds '$' or begins with '~', which Airflow expands"),
    ("airflow:jwt_secret", "~" + "9fk3mXq2Lw8rTz4b" * 4, "holds '$' or begins with '~', which Airflow expands"),
    ("airflow:flower_password", "9fk3mXq2,Lw8rTz4b", "holds ',', on which Flower splits"),
    ("grafana:admin_password", "9fk3mXq2${HOME}Lw8rTz4b", "which Grafana replaces in its settings"),
    ("grafana:admin_password", "9fk3mXq2$__file{/etc/shadow}", "which Grafana replaces in its settings"),
    ("grafana:admin_password", "9fk3mXq2%(admin_user)sLw8", "which Grafana replaces in its settings"),
    ("keepalived:auth_pass", "9fk3 mXq", "which keepalived.conf cannot quote"),
])
def test_a_character_a_consumer_cannot_carry_is_refused_naming_the_key(path, value, problem, secrets):
    import gen_secrets

    broken = broken_with(secrets, path, value)
    errors = errors_of(load_inventory("full"), broken)
    mine = [e for e in errors if e.startswith(f"secrets:{path} ")]
    assert len(mine) == 1 and problem in mine[0] and "make secrets" in mine[0], errors
    # `make secrets` replaces what the render refuses
    assert gen_secrets.fill(broken) == [path]
    assert errors_of(load_inventory("full"), broken) == []


@pytest.mark.parametrize("path, value", [
    ("grafana:admin_password", "9fk3mXq2$HOME {x} %s %(x) Lw8"),  # no ${, $__name{ nor %(name)s
    ("airflow:secret_key", "9fk3m~Xq2 'quoted' \"double\" \\ `tick`"),
    ("airflow:flower_password", "9fk3mXq2:Lw8@rT/z4b%40"),
    ("rabbitmq:airflow_password", "9fk3 mXq2 Lw8 rTz4b"),
])
def test_what_the_consumers_escape_is_accepted(path, value, secrets):
    assert errors_of(load_inventory("full"), broken_with(secrets, path, value)) == []


@pytest.mark.parametrize("value, problem", [
    ("Airflow_pass2024!", "is a well-known default password with a few characters added"),
    ("Password20242024", "is a well-known default password with a few characters added"),
    ("postgrespostgres", "is a short sequence repeated"),
    ("passwordPASSWORD!", "is a well-known default password with a few characters added"),
    ("abcabcabcabcabcab", "is a short sequence repeated"),
    ("abcdefghijklmnopq", "is a run of consecutive characters"),
    ("7890123456789012", "is a run of consecutive characters"),
    ("ZYXWVUTSRQPONMLK", "is a run of consecutive characters"),
    ("qwertyuiopasdfgh", "is a run of consecutive characters"),
    ("aaaabbbbaaaabbbbab", "uses only 2 different characters"),
])
def test_an_obviously_weak_password_is_refused_though_long_enough(value, problem, secrets):
    errors = errors_of(load_inventory("full"), broken_with(secrets, "postgres:superuser_password", value))
    assert [e for e in errors if e.startswith("secrets:postgres:superuser_password ")] == [
        f"secrets:postgres:superuser_password {problem}" + (" (abcd..., 4321..., qwerty...)" if "run" in problem
                                                             else "")
        + f" (needed by role 'postgres'): {ha_inventory.SECRETS_FIX}"]


def test_weak_checks_leave_random_values_and_a_word_among_them_alone():
    import gen_secrets

    for _ in range(200):
        for path, make in gen_secrets.generators().items():
            value = make()
            assert ha_inventory.secret_problem(path, value) is None, (path, value)
    # a default word inside an otherwise random password, a short VRRP password of a word and digits
    assert ha_inventory.secret_problem("ftp:password", "q8Zt-test-Wm3rXp7c") is None
    assert ha_inventory.secret_problem("keepalived:auth_pass", "ro7Kt9Qz") is None
    assert ha_inventory.secret_problem("keepalived:auth_pass", "root1234") == (
        "is a well-known default password with a few characters added")


def test_the_jwt_secret_is_as_long_as_hs512_needs(secrets):
    errors = errors_of(load_inventory("full"), broken_with(secrets, "airflow:jwt_secret", "q8Zt7Wm3rXp7cKd2" * 3))
    assert any(e.startswith("secrets:airflow:jwt_secret is too short (48 characters, at least 64)") for e in errors)


# ------------------------------------------ addresses usable on their network (issue 17)

@pytest.mark.parametrize("network, ip, problem", [
    ("192.168.83.0/24", "192.168.83.0", "is the network address of 192.168.83.0/24"),
    ("192.168.83.0/24", "192.168.83.255", "is the broadcast address of 192.168.83.0/24"),
    ("127.0.0.0/8", "127.0.0.5", "is a loopback address"),
    ("224.0.0.0/4", "224.0.0.18", "is a multicast address"),
    ("169.254.0.0/16", "169.254.7.7", "is a link-local address"),
    ("0.0.0.0/8", "0.0.0.0", "is the unspecified address"),
    ("0.0.0.0/8", "0.0.0.7", "is in 0.0.0.0/8 (\"this network\", a source address only)"),
    ("240.0.0.0/4", "240.0.0.9", "is a reserved address"),
    ("fd00:83::/64", "fd00:83::", "is the network address of fd00:83::/64"),
])
def test_a_host_address_unusable_on_its_network_is_refused(network, ip, problem, secrets):
    inv = copy_inventory()
    inv["network"] = network
    for i, host in enumerate(inv["hosts"].values()):  # every host moved into the network
        host["ip"] = str(ipaddress.ip_network(network)[100 + i])
    inv["hosts"]["card1"]["ip"] = ip
    mine = [e for e in errors_of(inv, secrets) if e.startswith("inventory:hosts:card1:ip ")]
    assert len(mine) == 1 and mine[0].startswith(f"inventory:hosts:card1:ip {ip} {problem}: set the host's address "
                                                 f"on its network ({network}"), mine


def test_a_vip_on_the_broadcast_address_is_refused_and_a_point_to_point_host_is_not(secrets):
    inv = copy_inventory()
    net = ipaddress.ip_network(inv["network"])
    inv["vips"]["main"]["ip"] = str(net.broadcast_address)
    assert [e for e in errors_of(inv, secrets) if e.startswith("inventory:vips:main:ip")] == [
        f"inventory:vips:main:ip {net.broadcast_address} is the broadcast address of {net}: set an unused address "
        f"on its network ({net}, from {net[1]} to {net[-2]})"]
    inv = copy_inventory()
    inv["hosts"]["card1"].update(ip="10.99.0.1", prefix=31)  # RFC 3021: both addresses of a /31 are hosts'
    assert errors_of(inv, secrets) == []


# ------------------------------------------------------------------ worker pools (issue 20)

def test_shipped_topologies_serve_every_required_queue_and_the_card_pool_is_as_documented():
    compact, full = load_inventory("compact"), load_inventory("full")
    # compact: both workers in the card pool (the worker-kill drills retry a card task on the other one)
    assert ha_inventory.queue_members(compact) == {"default": ["af1", "af2"], "card": ["af1", "af2"]}
    assert ha_inventory.queue_members(full) == {"default": ["worker1"], "card": ["worker1"]}
    assert set(ha_inventory.REQUIRED_QUEUES) == {ha_inventory.DEFAULT_QUEUE, ha_inventory.CARD_QUEUE}


def test_a_worker_without_queues_serves_the_default_queue_and_other_hosts_none():
    assert ha_inventory.host_queues({"roles": ["worker"]}) == ["default"]
    assert ha_inventory.host_queues({"roles": ["worker"], "queues": ["card"]}) == ["card"]
    assert ha_inventory.host_queues({"roles": ["scheduler"]}) == []
    inv = ha_inventory.normalize(load_inventory("compact"))
    assert inv["hosts"]["af1"]["queues"] == ["default", "card"] and inv["hosts"]["db1"]["queues"] == []
    assert inv["queues"]["card"] == ["af1", "af2"]


def test_queue_helpers_read_the_pillar_inventory():
    assert ha_inventory.queues("worker1") == ["default", "card"]
    assert ha_inventory.queues() == []  # sql1, no worker
    assert ha_inventory.queue_hosts("card") == ["worker1"]
    assert ha_inventory.queue_hosts("reports") == []
    assert ha_inventory.queue_ips("card") == ["192.168.83.131"]
    assert (ha_inventory.default_queue(), ha_inventory.card_queue()) == ("default", "card")
    with pytest.raises(CommandExecutionError, match="host 'stranger' is not in inventory:hosts"):
        ha_inventory.queues("stranger")


def with_queues(topology, **queues_of):
    inv = copy_inventory(topology)
    for name, queues in queues_of.items():
        inv["hosts"][name]["queues"] = queues
    return inv


@pytest.mark.parametrize("topology, queues_of, message", [
    ("compact", {"af1": ["default", "Card"]},
     "inventory:hosts:af1:queues: 'Card' is not a queue name: use lower-case letters, digits, '_' and '-', "
     "beginning with a letter (^[a-z][a-z0-9_-]*$)"),
    ("compact", {"af1": ["default", "card,x"]}, "inventory:hosts:af1:queues: 'card,x' is not a queue name"),
    ("compact", {"af1": ["default", 7]}, "inventory:hosts:af1:queues: 7 is not a queue name"),
    ("compact", {"af1": []}, "inventory:hosts:af1:queues is []: give a non-empty list of Celery queue names "
                             "(e.g. queues: [default, card]; leave it out for [default])"),
    ("compact", {"af1": "default,card"}, "inventory:hosts:af1:queues is 'default,card': give a non-empty list"),
    ("compact", {"af1": ["card", "card"]}, "inventory:hosts:af1:queues lists 'card' 2 times: list each queue once"),
    ("compact", {"db1": ["default"]}, "inventory:hosts:db1:queues is set but db1 has no role 'worker' (only a Celery "
                                      "worker consumes queues): remove db1's queues or give it the worker role"),
    ("full", {"worker1": ["default"]}, "inventory:hosts: queue 'card' (the card_processing DAG's tasks"),
    ("full", {"worker1": ["card"]}, "inventory:hosts: queue 'default' (every task that names no queue"),
])
def test_a_bad_queues_value_fails_naming_the_key_and_the_fix(topology, queues_of, message, secrets):
    errors = ha_inventory.find_errors(with_queues(topology, **queues_of), check_secrets=False, ports=load_ports())
    assert any(e.startswith(message) for e in errors), errors


def test_a_queue_nobody_serves_names_the_worker_hosts_to_give_it_to():
    inv = with_queues("compact", af1=["default"], af2=["default", "reports"])
    errors = ha_inventory.find_errors(inv, check_secrets=False, ports=load_ports())
    assert errors == ["inventory:hosts: queue 'card' (the card_processing DAG's tasks (salt/dags/card_processing.py), "
                      "the only workers the card target admits) is served by no worker host: add 'card' to "
                      "inventory:hosts:<name>:queues of at least one worker host (af1, af2), e.g. queues: "
                      "[default, card]"]
    # workers without queues serve the default queue only
    inv = copy_inventory("compact")
    for name in ("af1", "af2"):
        del inv["hosts"][name]["queues"]
    assert [e.split(" (")[0] for e in ha_inventory.find_errors(inv, check_secrets=False)] == [
        "inventory:hosts: queue 'card'"]


def test_the_validation_fails_the_load_naming_the_queues_key():
    ha_inventory.__pillar__["inventory"] = with_queues("full", worker1=["default", "Card"])
    with pytest.raises(CommandExecutionError, match=r"Invalid pillar, nothing was applied:\n  - "
                                                    r"inventory:hosts:worker1:queues: 'Card' is not a queue name"):
        ha_inventory.load()


def test_ssh_to_the_card_target_from_the_admin_networks_and_the_card_pool_only():
    inv = copy_inventory("full")
    inv["hosts"]["worker2"] = {"ip": "192.168.83.139", "roles": ["worker"]}  # the default pool only
    ports = load_ports()
    admin = ["10.20.0.0/16"]

    def ssh(host):
        rules = [r for r in ha_inventory.rules_for_host(inv, ports, host, admin) if r["port"] == "22"]
        assert len(rules) == 1, rules  # the entries of one port make one rule
        return rules[0]["sources"]

    assert ssh("card1") == ["10.20.0.0/16", "192.168.83.131"]
    # every other host as before: the admin networks and every host of the inventory
    assert ssh("sql1") == sorted([h["ip"] for h in inv["hosts"].values()] + admin, key=ha_inventory._ip_sort_key)
    assert "192.168.83.139" in ssh("worker1")


def test_a_card_target_that_is_also_a_member_still_admits_pgbackrest_over_ssh():
    inv = load_inventory("compact")  # db3: a PostgreSQL member and the card target; af2: the repository
    rules = {r["port"]: r for r in ha_inventory.rules_for_host(inv, load_ports(), "db3", ["10.20.0.0/16"])}
    assert rules["22"]["sources"] == ["10.20.0.0/16", "10.83.0.21", "10.83.0.22"]
    assert "pgBackRest" in rules["22"]["purpose"] and "card pool" in rules["22"]["purpose"]


def test_port_map_selectors_are_checked():
    ports = load_ports() + [{"role": "card_target", "port": 2222, "proto": "tcp", "from_queues": ["Card"]},
                            {"role": "all", "port": 2223, "proto": "tcp", "from_roles": ["all"],
                             "except_roles": ["card-target"]}]
    errors = ha_inventory.find_errors(load_inventory("full"), ports=ports, check_secrets=False)
    n = len(ports)
    assert errors == [f"ports:{n - 2}:from_queues: 'Card' is not a queue name (^[a-z][a-z0-9_-]*$): fix the entry",
                      f"ports:{n - 1} (2223): unknown role 'card-target': use one of all, "
                      + ", ".join(ha_inventory.KNOWN_ROLES)]


def test_every_queue_a_shipped_dag_names_is_a_required_queue():
    """The DAGs of salt/dags route tasks to queues by the settings' `queue` (the card DAG) or a literal; each
    must be in REQUIRED_QUEUES, which the inventory check makes some worker serve."""
    import re

    for path in sorted((REPO / "salt" / "dags").glob("*.py")):
        text = path.read_text()
        for literal in re.findall(r"""queue\s*[=:]\s*["']([^"']+)["']""", text):
            assert literal in ha_inventory.REQUIRED_QUEUES, (path.name, literal)
    card = (REPO / "salt" / "dags" / "card_processing.py").read_text()
    assert 'QUEUE = SETTINGS["queue"]' in card and '"queue": QUEUE' in card
    assert "salt['ha_inventory.card_queue']()" in (REPO / "salt" / "card" / "map.jinja").read_text()
