"""`make render`: every host of both topologies compiles for both OS families,
and bad pillar stops the render, naming the key, before anything is applied."""

import subprocess
import sys

import pytest
import yaml

from tests.helpers.inventory import REPO, TOPOLOGIES, load_inventory

RENDER = [sys.executable, str(REPO / "tools" / "render.py")]


def render(*args):
    proc = subprocess.run(RENDER + list(args), capture_output=True, text=True, timeout=900)
    return proc.returncode, proc.stderr + proc.stdout  # the summary line ends stdout


def write_inventory_override(tmp_path, topology, mutate):
    inv = load_inventory(topology)
    mutate(inv)
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / f"{topology}.yaml").write_text(yaml.safe_dump(inv))
    return str(tmp_path)


def test_one_host_with_most_roles_renders_for_both_os_families():
    rc, out = render("--topology", "compact", "--host", "af1")
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "rendered 1 hosts x 2 os families, 0 errors"


@pytest.mark.slow
def test_every_host_of_both_topologies_renders_for_both_os_families():
    hosts = sum(len(load_inventory(t)["hosts"]) for t in TOPOLOGIES)
    rc, out = render()
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == f"rendered {hosts} hosts x 2 os families, 0 errors"


def test_duplicate_ip_fails_the_render_naming_the_key(tmp_path):
    def dup(inv):
        inv["hosts"]["sql2"]["ip"] = inv["hosts"]["sql1"]["ip"]

    override = write_inventory_override(tmp_path, "full", dup)
    rc, out = render("--topology", "full", "--host", "worker1", "--os", "debian12", "--pillar-override", override)
    assert rc == 1
    assert "Invalid pillar, nothing was applied" in out
    assert "inventory:hosts:sql2:ip 192.168.83.148 is also the address of 'sql1'" in out


def test_even_etcd_membership_fails_the_render(tmp_path):
    def drop(inv):
        inv["hosts"]["sql3"]["roles"].remove("etcd")

    override = write_inventory_override(tmp_path, "full", drop)
    rc, out = render("--topology", "full", "--host", "sql1", "--os", "rocky9", "--pillar-override", override)
    assert rc == 1
    assert "role 'etcd' has 2 hosts (sql1, sql2)" in out


def test_missing_secret_fails_the_render_naming_the_key_and_the_fix(tmp_path):
    import gen_secrets

    tree = {}
    gen_secrets.fill(tree)
    del tree["postgres"]["replication_password"]
    secrets = tmp_path / "secrets.sls"
    secrets.write_text(yaml.safe_dump({"secrets": tree}))
    rc, out = render("--topology", "compact", "--host", "db1", "--os", "debian12", "--secrets", str(secrets))
    assert rc == 1
    assert "secrets:postgres:replication_password is missing (needed by role 'postgres'): run `make secrets`" in out


def test_tls_enabled_renders_the_database_tier_for_both_os_families():
    rc, out = render("--topology", "compact", "--host", "db1", "--tls")
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "rendered 1 hosts x 2 os families, 0 errors"


def test_the_ca_host_without_the_signing_policies_fails_naming_the_key_and_the_fix(tmp_path):
    """tls:enabled with the CA in the shared secrets but no tls/ca.sls: the CA host (db1) could sign
    nothing; another host (db2) needs no policy of its own."""
    import gen_secrets
    import gen_tls

    tree = {}
    gen_secrets.fill(tree)
    ca_cert = gen_tls.cert_pem(gen_tls.create_ca()[1]).decode()
    secrets = tmp_path / "secrets.sls"
    secrets.write_text(yaml.safe_dump({"secrets": tree, "tls": {"enabled": True, "ca_cert": ca_cert}}))
    rc, out = render("--topology", "compact", "--host", "db1", "--host", "db2", "--os", "debian12",
                     "--secrets", str(secrets), "--no-orchestrates")
    assert rc == 1
    assert "Invalid pillar, nothing was applied" in out
    assert ("x509_signing_policies:airflow_ha_af1 is missing on the CA host: the CA cannot sign af1's certificate: "
            "run `make secrets`") in out
    assert "FAIL compact/debian12/db1" in out and "FAIL compact/debian12/db2" not in out


def test_a_secrets_file_without_tls_fails_naming_the_ca_since_tls_is_on_by_default(tmp_path):
    import gen_secrets

    tree = {}
    gen_secrets.fill(tree)
    secrets = tmp_path / "secrets.sls"
    secrets.write_text(yaml.safe_dump({"secrets": tree}))
    rc, out = render("--topology", "compact", "--host", "af1", "--os", "debian12", "--secrets", str(secrets))
    assert rc == 1
    assert "tls:ca_cert is missing (tls:enabled is true by default): run `make secrets`" in out


def test_what_gen_secrets_writes_renders_as_it_is(tmp_path):
    """make secrets' output (shared file with the CA, tls/ca.sls beside it) is all a host needs."""
    import gen_secrets

    out_file = tmp_path / "secrets" / "airflow_ha_secrets.sls"
    assert gen_secrets.main(["--out", str(out_file), "--topology", "compact"]) == 0
    rc, out = render("--topology", "compact", "--host", "af1", "--host", "db1", "--os", "rocky9",
                     "--secrets", str(out_file))
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "rendered 2 hosts x 1 os families, 0 errors"


def test_tls_can_be_turned_off():
    rc, out = render("--topology", "compact", "--host", "af1", "--os", "debian12", "--no-tls")
    assert rc == 0, out
    assert out.strip().splitlines()[-1] == "rendered 1 hosts x 1 os families, 0 errors"


def test_every_orchestrate_renders_as_the_master_renders_it():
    """salt/orch/*.sls with the master's own pillar (its id is in no inventory: no secret, tools/render.py);
    the DAG orchestrates also with their pillar (source, release), orch.restore with a confirmed target."""
    rc, out = render("--topology", "compact", "--orchestrates-only", "-v")
    assert rc == 0, out
    for sls in ("orch.bringup", "orch.deploy_dags", "orch.rollback_dags", "orch.add_worker", "orch.backup_verify",
                "orch.restore", "orch.preflight", "orch.airflow_rolling_restart", "orch.rolling_reboot",
                "orch.airflow_upgrade"):
        assert f"ok   compact/orchestrate/{sls} " in out, out
    assert 'ok   compact/orchestrate/orch.rollback_dags {"release": "0123456789abcdef"}' in out
    assert 'ok   compact/orchestrate/orch.restore {"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"}' in out
    assert 'ok   compact/orchestrate/orch.rolling_reboot {"hosts": ["af2", "db1"]}' in out
    assert 'ok   compact/orchestrate/orch.rolling_reboot {"hosts": []}' in out
    assert ('ok   compact/orchestrate/orch.airflow_upgrade {"airflow": {"version": "3.3.1", '
            '"requirements": "airflow-3.3.1.txt"}}') in out
    assert out.strip().splitlines()[-1] == "rendered 0 hosts x 2 os families, 0 errors"


def test_bad_dag_orchestrate_pillar_fails_the_render_naming_the_key():
    rc, out = render("--topology", "compact", "--orch-pillar", '{"release": "latest", "source": "ftp://x/dags"}')
    assert rc == 1, out
    assert 'orchestrate pillar source is "ftp://x/dags": use salt://PATH' in out
    assert 'orchestrate pillar release is "latest": use previous or a release version' in out


@pytest.mark.parametrize("setting, message", [
    ({"net_ticktime": 3}, "pillar rabbitmq:net_ticktime is 3: give whole seconds from 10"),
    ({"net_ticktime": "fast"}, "pillar rabbitmq:net_ticktime is fast: give whole seconds from 10"),
    ({"partition_heal": {"interval": "half a minute"}},
     "pillar rabbitmq:partition_heal:interval is half a minute: give seconds as a systemd time span like 30s"),
])
def test_bad_rabbitmq_timing_fails_the_render_naming_the_key(tmp_path, setting, message):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"rabbitmq": setting}))
    rc, out = render("--topology", "compact", "--host", "db1", "--os", "debian12", "--pillar-override", str(tmp_path))
    assert rc == 1, out
    assert message in out


@pytest.mark.parametrize("dcs", [{"ttl": 10, "loop_wait": 2, "retry_timeout": 4},
                                 {"ttl": 20, "loop_wait": 10, "retry_timeout": 9}])
def test_patroni_timing_it_would_refuse_fails_the_render_naming_the_key(tmp_path, dcs):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"postgres": {"dcs": dcs}}))
    rc, out = render("--topology", "compact", "--host", "db1", "--os", "debian12", "--pillar-override", str(tmp_path))
    assert rc == 1, out
    assert (f"pillar postgres:dcs ttl {dcs['ttl']}, loop_wait {dcs['loop_wait']}, retry_timeout "
            f"{dcs['retry_timeout']}: Patroni needs ttl >= 20") in out


def test_bad_preflight_pillar_fails_the_orchestrate_render_naming_the_key(tmp_path):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"orch": {"preflight": {
        "minimums": {"workers": {"cpus": 1}, "all": {"memory_mb": "lots", "swap": 1}}, "require_resolvable": "maybe",
        "disk_paths": ["var"]}}}))
    rc, out = render("--topology", "compact", "--orchestrates-only", "--pillar-override", str(tmp_path))
    assert rc == 1, out
    for message in ('pillar orch:preflight:minimums:all:memory_mb is "lots": give a number (0: no minimum)',
                    "pillar orch:preflight:minimums:all:swap is unknown: use memory_mb, cpus or disk_gb",
                    "pillar orch:preflight:minimums:workers is no role: use all or a role of the inventory",
                    'pillar orch:preflight:require_resolvable is "maybe": use true or false',
                    'pillar orch:preflight:disk_paths is ["var"]: give a list of absolute paths'):
        assert message in out, message


def test_bad_housekeeping_limits_and_journald_pillar_fail_the_render_naming_the_key(tmp_path):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({
        "base": {"journald": {"system_max_use": "half the disk"}},
        "airflow": {"housekeeping": {"db_clean_days": 0, "task_log_days": "a month"},
                    "limits": {"worker": {"memory_max": "100MB"}, "nofile": 0}}}))
    rc, out = render("--topology", "compact", "--host", "af1", "--os", "debian12", "--pillar-override", str(tmp_path))
    assert rc == 1, out
    for message in ('pillar base:journald:system_max_use is "half the disk": give a size like 500M or 2G',
                    "pillar airflow:housekeeping:db_clean_days is 0: give whole days from 1 to 3650",
                    "pillar airflow:housekeeping:task_log_days is 'a month': give whole days from 1 to 3650",
                    "pillar airflow:limits:worker:memory_max is '100MB': give infinity, a size like 512M or 2G",
                    "pillar airflow:limits:nofile is 0: give a positive whole number or infinity"):
        assert message in out, message
