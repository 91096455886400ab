"""Issue 17: no secret in the master's job cache or logs. A real salt-master
(pytest-salt-factories) serves the repo's state tree and pillar with throwaway
secrets and TLS material to a real minion (af1 of the compact topology, whose
pillar the master caches as it does in production); the orchestrate map
(salt/orch/map.jinja) then runs in a real `salt-run state.orchestrate`, and
every orchestrate SLS is compiled by `state.orchestrate_show_sls`, without the
project's custom modules on the master. Afterwards no secret value (password,
private key line, the minion's TLS key) is anywhere in the master's cache
(the minion data cache, pillar/<id>.p, which holds pillar by design, left out) or its log.
The control: the former map's `saltutil.runner('cache.pillar')` run the same
way does leave the minion's secrets in the job cache, so the search finds
them when they are there."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers.inventory import REPO

import gen_secrets
import render as render_tool

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE = """{%- from 'orch/map.jinja' import orch with context %}
airflow-ha-probe:
  test.succeed_without_changes:
    - name: {{ {'migrate_host': orch.migrate_host, 'api_url': orch.api_url, 'ca_file': orch.ca_file,
                'schedulers': orch.roles.scheduler, 'steps': orch.steps | map(attribute='name') | list,
                'major': orch.airflow_major} | json | json }}
"""
# what salt/orch/map.jinja did before issue 17
LEGACY = """{%- set pillars = salt['saltutil.runner']('cache.pillar', tgt='*') %}
airflow-ha-legacy:
  test.succeed_without_changes:
    - name: {{ 'pillars of %s' | format(pillars | sort | join(',')) | json }}
"""


def secret_strings(secrets_dir):
    """Every secret value as a search string (a PEM by each line of its body)."""
    data = yaml.safe_load((Path(secrets_dir) / "airflow_ha_secrets.sls").read_text())
    values = []

    def walk(node):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value)
            elif not key.endswith("_public_key"):
                values.append(str(value))

    walk(data["secrets"])
    strings = []
    for value in values:
        lines = value.strip().splitlines()
        strings += [ln for ln in lines if len(ln) >= 40 and not ln.startswith("-----")] if len(lines) > 1 else [value]
    return strings


# the minion data cache (Salt 3008: pillar/<id>.p; older: minions/<id>/data.p) holds pillar by design
DATA_CACHE = ("pillar", "minions")


def found_in(root, strings, skip=DATA_CACHE):
    """{file: count of secret strings in it} under ``root`` (directories named in ``skip`` left out)."""
    hits = {}
    needles = [s.encode() for s in strings] + [s.replace("/", "\\/").encode() for s in strings if "/" in s]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in skip]
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                data = Path(path).read_bytes()
            except OSError:
                continue
            count = sum(1 for n in needles if n in data)
            if count:
                hits[path] = count
    return hits


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("orch-secrets")
    secrets_dir = tmp / "secrets"
    tree = {}
    gen_secrets.fill(tree)
    text = render_tool.with_tls(yaml.safe_dump({"secrets": tree}), ["compact"], str(secrets_dir), str(tmp / "ca"))
    gen_secrets.write_private(str(secrets_dir / "airflow_ha_secrets.sls"), text)
    return secrets_dir


@pytest.fixture(scope="module")
def master(salt_factories, secrets_dir, tmp_path_factory):
    probe_root = tmp_path_factory.mktemp("probe-root")
    (probe_root / "airflow_ha_probe.sls").write_text(PROBE)
    (probe_root / "airflow_ha_legacy.sls").write_text(LEGACY)
    factory = salt_factories.salt_master_daemon(
        "orch-master",
        overrides={
            "file_roots": {"base": [str(REPO / "salt"), str(probe_root)]},
            "pillar_roots": {"base": [str(REPO / "pillar"), str(secrets_dir)]},
            "airflow_ha_topology": "compact",
            "open_mode": True,
            "log_level_logfile": "debug",  # the worst case: whatever the master logs, no secret in it
        },
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minion(master):
    factory = master.salt_minion_daemon("af1", overrides={"airflow_ha_topology": "compact"})
    with factory.started(start_timeout=120):
        yield factory


def master_cache(master):
    return master.config["cachedir"]


def run(master, *args):
    ret = master.salt_run_cli(timeout=300).run(*args)
    assert ret.returncode == 0, ret.stdout + ret.stderr
    return ret.data


def test_the_orchestrate_map_leaves_no_secret_in_the_job_cache_or_the_log(master, minion, secrets_dir):
    strings = secret_strings(secrets_dir)
    assert len(strings) >= 20
    # the master has the minion's pillar (the minion data cache, as in production): the legacy map would find it
    assert found_in(master_cache(master), strings, skip=()), "af1's pillar was not cached"
    assert not os.path.isdir(os.path.join(master_cache(master), "extmods", "modules")), \
        "the project's modules must not be needed on the master"

    ret = run(master, "state.orchestrate", "airflow_ha_probe")
    states = list(ret["data"].values())[0] if "data" in ret else list(ret.values())[0]
    probe = json.loads(next(iter(states.values()))["name"])
    assert probe == {"migrate_host": "af1", "api_url": "https://10.83.0.100:443", "ca_file": "/etc/airflow-ha/pki/ca.crt",
                     "schedulers": ["af1", "af2"], "major": 3,
                     "steps": ["logs", "etcd", "backup", "postgres", "backup-stanza", "haproxy", "rabbitmq", "ftp",
                               "card-target", "airflow-config"]}
    for sls, pillar in (("orch.bringup", None), ("orch.airflow_rolling_restart", None),
                        ("orch.patroni_switchover", {"candidate": "db2"}), ("orch.add_worker", {"host": "af2"})):
        args = ["state.orchestrate_show_sls", sls] + ([f"pillar={json.dumps(pillar)}"] if pillar else [])
        high = list(run(master, *args).values())[0]
        assert isinstance(high, dict) and high, (sls, high)
        text = json.dumps(high)
        assert "https://10.83.0.100:443" in text and '"af1"' in text, (sls, text[:2000])
    # the reboot plan: ha_cluster.reboot_plan read from the state tree by orch/module_call.py (no custom module
    # on the master); no host's IP is the master's here, so each host is rebooted, the quorum members last
    for pillar in (None, {"hosts": "af2, db1"}):
        args = ["state.orchestrate_show_sls", "orch.rolling_reboot"]
        args += [f"pillar={json.dumps(pillar)}"] if pillar else []
        high = list(run(master, *args).values())[0]
        assert isinstance(high, dict) and "orch-reboot-plan" in high, high
        order = "af2, db1" if pillar else "af1, af2, db1, db2, db3"
        assert f"in this order: {order}" in json.dumps(high["orch-reboot-plan"]), high["orch-reboot-plan"]
    for sls, pillar in (("orch.backup_verify", None),
                        ("orch.restore", {"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"})):
        args = ["state.orchestrate_show_sls", sls] + ([f"pillar={json.dumps(pillar)}"] if pillar else [])
        high = list(run(master, *args).values())[0]
        assert isinstance(high, dict) and high, (sls, high)
        assert '"af2"' in json.dumps(high) and not any("refused" in k for k in high), (sls, high)
    # the DAG orchestrates (docs/dag-deploy.md): validated on af1, staged and switched on both Airflow hosts
    for sls, pillar in (("orch.deploy_dags", {"source": "salt://dags"}), ("orch.rollback_dags", None)):
        args = ["state.orchestrate_show_sls", sls] + ([f"pillar={json.dumps(pillar)}"] if pillar else [])
        high = list(run(master, *args).values())[0]
        assert isinstance(high, dict) and "orch-dags-parsed" in high, (sls, high)
        text = json.dumps(high)
        assert '"af1,af2"' in text and '"af1"' in text, (sls, text[:2000])

    jobs = os.path.join(master_cache(master), "jobs")
    assert len(os.listdir(jobs)) >= 1, "the runs stored no job: the check below would prove nothing"
    leaks = found_in(master_cache(master), strings)
    leaks.update(found_in(os.path.dirname(master.config["log_file"]), strings))
    assert leaks == {}, f"secret values in the master's cache or log: {sorted(leaks)}"


def test_control_the_former_map_did_leave_the_pillar_in_the_job_cache(master, minion, secrets_dir, tmp_path):
    """Runs after the test above (same module): the search finds what cache.pillar put there."""
    strings = secret_strings(secrets_dir)
    jobs = os.path.join(master_cache(master), "jobs")
    before = found_in(jobs, strings)
    assert before == {}
    # af1 compiles its pillar now, so the master's data cache has it whatever the load did before
    refreshed = master.salt_cli(timeout=300).run("saltutil.refresh_pillar", "wait=True", minion_tgt="af1")
    assert refreshed.returncode == 0, refreshed.stdout + refreshed.stderr
    ret = run(master, "state.orchestrate", "airflow_ha_legacy")
    states = list(ret["data"].values())[0] if "data" in ret else list(ret.values())[0]
    # the state's name lists the minions whose pillar cache.pillar returned
    assert next(iter(states.values()))["name"] == "pillars of af1", states
    leaked = found_in(jobs, strings)
    assert leaked, "cache.pillar's return was expected in the job cache (the control of the search)"
    assert max(leaked.values()) >= len(strings) // 2
    # the evidence goes with the master's root dir
    shutil.rmtree(jobs, ignore_errors=True)
