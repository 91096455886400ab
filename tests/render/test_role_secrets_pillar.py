"""Issue 17, per role: the pillar each minion compiles holds the secrets of its own roles and nothing else.
Salt compiles the repo's pillar (pillar/top.sls, pillar/role_secrets.sls) for every host of both
topologies, as the master does for a minion id, from one secrets file that also holds keys no role
uses; the keys each host gets must be what the map (pillar/role_secrets.yaml, read by
ha_inventory.host_secrets) says its roles need, with the file's values, and the render's checks must pass
with exactly that pillar."""

import os
import subprocess
import warnings

import pytest
import yaml

import _modules.ha_inventory as ha_inventory
from tests.helpers.inventory import REPO, TOPOLOGIES, load_inventory, load_ports

import gen_secrets

MASTER_ID = "saltmaster_master"  # the master's own minion id (its host name and `_master`): in no inventory
SMTP_PASSWORD = "a-site-own-smtp-password-1234"  # the one optional secret (a site's Alertmanager login)
# keys of the secrets file that no role reads: they must reach no host
UNKNOWN = {"secrets": {"extra": {"api_token": "x" * 32}, "postgres": {"unused_password": "y" * 32}},
           "elsewhere": {"token": "z" * 32}}
TLS = {"enabled": False, "ca_cert": "-----BEGIN CERTIFICATE-----\nnot secret\n-----END CERTIFICATE-----\n"}


def write_secrets(directory, data):
    os.makedirs(directory, exist_ok=True)
    gen_secrets.write_private(os.path.join(directory, "airflow_ha_secrets.sls"), yaml.safe_dump(data))
    return str(directory)


def compile_pillar(secrets_dir, topology, minion_id, cachedir, grains_id=None, **extra_opts):
    """The pillar Salt compiles for ``minion_id`` from the repo's pillar and ``secrets_dir`` (the minion
    reporting grain id ``grains_id``)."""
    import salt.config
    import salt.pillar

    warnings.filterwarnings("ignore")
    opts = salt.config.minion_config(None)
    opts.update(id=minion_id, file_client="local", pillar_roots={"base": [str(REPO / "pillar"), secrets_dir]},
                airflow_ha_topology=topology, cachedir=cachedir, **extra_opts)
    grains = {"id": grains_id or minion_id}
    return salt.pillar.get_pillar(opts, grains, minion_id, saltenv="base").compile_pillar()


def flat(tree, prefix=""):
    """{group:key: value} of a ``secrets`` mapping."""
    out = {}
    for key, value in (tree or {}).items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}:"))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(scope="module")
def secrets_file(tmp_path_factory):
    """(secrets tree, secrets dir): every secret `make secrets` makes, the site's optional one, unknown keys."""
    tree = {}
    gen_secrets.fill(tree)
    tree["alertmanager"] = {"smtp_password": SMTP_PASSWORD}
    data = {"secrets": {**tree, **UNKNOWN["secrets"],
                        "postgres": {**tree["postgres"], **UNKNOWN["secrets"]["postgres"]}},
            "elsewhere": UNKNOWN["elsewhere"], "tls": TLS}
    return tree, write_secrets(tmp_path_factory.mktemp("role-secrets") / "secrets", data)


@pytest.fixture(scope="module")
def pillars(secrets_file, tmp_path_factory):
    """{(topology, minion id): compiled pillar} of every host of both topologies and the master's id."""
    cache = str(tmp_path_factory.mktemp("role-secrets-cache"))
    return {(topo, host): compile_pillar(secrets_file[1], topo, host, cachedir=cache)
            for topo in TOPOLOGIES for host in [*load_inventory(topo)["hosts"], MASTER_ID]}


@pytest.mark.parametrize("topology", TOPOLOGIES)
def test_every_host_holds_exactly_the_secrets_of_its_roles(pillars, secrets_file, topology):
    inv, role_secrets = load_inventory(topology), ha_inventory.read_role_secrets()
    tree = flat(secrets_file[0])
    for host in inv["hosts"]:
        pillar = pillars[(topology, host)]
        assert "_errors" not in pillar, pillar["_errors"]
        held = flat(pillar["secrets"])
        needed = ha_inventory.host_secrets(inv, host, role_secrets, optional=True)
        assert set(held) == set(needed), f"{topology}/{host} ({', '.join(inv['hosts'][host]['roles'])})"
        assert held == {path: tree[path] for path in needed}, f"{topology}/{host}: not the file's values"


def test_a_worker_holds_no_database_superuser_password_cookie_or_directory_root_password(pillars):
    """The issue's example: af2 (compact) runs DAG code; it holds its Airflow, haproxy and backup secrets only."""
    af2 = flat(pillars[("compact", "af2")]["secrets"])
    for absent in ("postgres:superuser_password", "postgres:replication_password", "patroni:restapi_password",
                   "rabbitmq:erlang_cookie", "rabbitmq:admin_password", "ldap:admin_password", "ldap:seed_password",
                   "grafana:admin_password", "card:host_private_key", "alertmanager:smtp_password"):
        assert absent not in af2, absent
    for present in ("postgres:airflow_password", "rabbitmq:airflow_password", "airflow:fernet_key",
                    "card:ssh_private_key", "haproxy:stats_password", "pgbackrest:cipher_pass"):
        assert present in af2, present
    # full: the card key on the worker only, the admin password on the scheduler and api-server hosts only
    worker1, airflow = flat(pillars[("full", "worker1")]["secrets"]), flat(pillars[("full", "airflow")]["secrets"])
    assert "card:ssh_private_key" in worker1 and "airflow:admin_password" not in worker1
    assert "card:ssh_private_key" not in airflow and "airflow:admin_password" in airflow
    assert set(flat(pillars[("full", "card1")]["secrets"])) == {"card:ssh_public_key", "card:host_private_key",
                                                                  "card:host_public_key"}
    assert flat(pillars[("full", "monitor1")]["secrets"])["alertmanager:smtp_password"] == SMTP_PASSWORD
    assert pillars[("full", "sql1")]["secrets"].keys() == {"postgres", "patroni", "pgbackrest"}


def test_no_unknown_key_of_the_secrets_file_reaches_any_host_and_tls_is_given_as_it_is(pillars):
    for (topology, host), pillar in pillars.items():
        held = flat(pillar["secrets"])
        assert not {"extra:api_token", "postgres:unused_password"} & set(held), (topology, host)
        assert "elsewhere" not in pillar, (topology, host)
        assert pillar["tls"] == TLS, (topology, host)


def test_the_masters_own_pillar_holds_no_secret_and_what_the_orchestrate_reads(pillars):
    """salt/orch/map.jinja reads the inventory, settings and tls:enabled of the master's own pillar, no secret
    (tests/render/test_render.py renders every orchestrate with that pillar)."""
    for topology in TOPOLOGIES:
        master = pillars[(topology, MASTER_ID)]
        assert master["secrets"] == {}
        assert master["inventory"] == load_inventory(topology) and master["tls"] == TLS


def test_the_secrets_follow_the_id_the_master_authenticated_not_a_grain(secrets_file, tmp_path):
    """A worker reporting a database host's id as its grain still gets its own secrets."""
    pillar = compile_pillar(secrets_file[1], "compact", "af2", str(tmp_path), grains_id="db1")
    af2 = flat(pillar["secrets"])
    assert set(af2) == set(ha_inventory.host_secrets(load_inventory("compact"), "af2",
                                                     ha_inventory.read_role_secrets(), optional=True))
    assert "postgres:superuser_password" not in af2


def test_each_host_passes_the_renders_checks_with_its_own_pillar(pillars):
    """A host asks for no secret it does not get (ha_inventory.validate checks the minion's own id)."""
    for (topology, host), pillar in pillars.items():
        errors = ha_inventory.find_errors(pillar["inventory"], pillar["secrets"], load_ports(), host=host,
                                          role_secrets=pillar["role_secrets"])
        assert errors == [], (topology, host)
    assert pillars[("compact", "af2")]["role_secrets"] == ha_inventory.read_role_secrets()


def test_without_a_secrets_file_a_host_gets_none_and_the_checks_name_each_key(tmp_path):
    empty = str(tmp_path / "no-secrets")
    os.makedirs(empty)
    pillar = compile_pillar(empty, "compact", "af2", cachedir=str(tmp_path))
    assert "_errors" not in pillar and pillar["secrets"] == {} and "tls" not in pillar
    errors = ha_inventory.find_errors(pillar["inventory"], pillar["secrets"], load_ports(), host="af2",
                                      role_secrets=pillar["role_secrets"])
    assert "secrets:postgres:airflow_password is missing (needed by role 'scheduler'): run `make secrets`" \
           " (tools/gen_secrets.py) or set it in your secrets pillar" in errors
    assert len(errors) == len(ha_inventory.host_secrets(pillar["inventory"], "af2", pillar["role_secrets"]))


def test_a_secret_one_role_needs_missing_from_the_file_fails_that_hosts_checks_naming_the_key(secrets_file,
                                                                                            tmp_path):
    """The secrets file without the Flower login: only the flower host (af1 in compact) fails, naming it."""
    tree = flat(secrets_file[0])
    data = {}
    for path, value in tree.items():
        if path != "airflow:flower_password":
            group, key = path.split(":")
            data.setdefault(group, {})[key] = value
    secrets_dir = write_secrets(tmp_path / "secrets", {"secrets": data, "tls": TLS})
    inv = load_inventory("compact")
    for host in inv["hosts"]:
        pillar = compile_pillar(secrets_dir, "compact", host, cachedir=str(tmp_path))
        errors = ha_inventory.find_errors(inv, pillar["secrets"], load_ports(), host=host,
                                          role_secrets=pillar["role_secrets"])
        if "flower" in inv["hosts"][host]["roles"]:
            assert errors == ["secrets:airflow:flower_password is missing (needed by role 'flower'): "
                              "run `make secrets` (tools/gen_secrets.py) or set it in your secrets pillar"], host
        else:
            assert errors == [], host


def test_a_gpg_encrypted_secrets_file_is_read_with_its_own_renderers(tmp_path):
    """A file with a renderer line (`#!yaml|gpg`, docs/operations.md) is read as pillar reads it: Salt's GPG
    renderer decrypts the values the host needs."""
    keydir = tmp_path / "gpgkeys"
    keydir.mkdir(mode=0o700)
    gpg = ["gpg", "--homedir", str(keydir), "--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    try:
        subprocess.run(gpg + ["--quick-gen-key", "salt-master", "future-default", "default", "never"], check=True,
                       capture_output=True)
        password = "grafana-admin-from-gpg-1234"
        cipher = subprocess.run(gpg + ["--armor", "--trust-model", "always", "--encrypt", "-r", "salt-master"],
                                input=password, capture_output=True, text=True, check=True).stdout
        text = "#!yaml|gpg\n" + yaml.safe_dump({"secrets": {"grafana": {"admin_password": cipher}}, "tls": TLS})
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir()
        gen_secrets.write_private(str(secrets_dir / "airflow_ha_secrets.sls"), text)
        pillar = compile_pillar(str(secrets_dir), "full", "monitor1", str(tmp_path / "cache"), gpg_keydir=str(keydir))
        assert "_errors" not in pillar, pillar["_errors"]
        assert pillar["secrets"] == {"grafana": {"admin_password": password}} and pillar["tls"] == TLS
        assert compile_pillar(str(secrets_dir), "full", "worker1", str(tmp_path / "cache"),
                              gpg_keydir=str(keydir))["secrets"] == {}
    finally:  # the agent gpg started for this home dir: a daemon that would outlive pytest
        subprocess.run(["gpgconf", "--homedir", str(keydir), "--kill", "gpg-agent"], capture_output=True)
