"""The backup role's states as they render: pgbackrest.conf of the
repository host (af2 of compact) and of a member (db1), with TLS (the
default: pgBackRest's TLS server, the cluster's certificates) and without
(SSH as postgres); Patroni's archive and restore commands; the timers."""

import configparser

import pytest

pytestmark = [pytest.mark.slow]


def ini(text):
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def lines(text):
    return [line.strip() for line in text.splitlines()]


def test_repository_config_with_tls(tls_render_state_file):
    text = tls_render_state_file("af2", "compact", "backup", "backup-config")
    conf = ini(text)
    g, s = conf["global"], conf["airflow-ha"]
    assert g["repo1-cipher-type"] == "aes-256-cbc" and len(g["repo1-cipher-pass"]) == 64
    assert g["repo1-retention-full"] == "2" and g["repo1-retention-diff"] == "6"
    assert g["tls-server-address"] == "10.83.0.22" and g["tls-server-port"] == "8432"
    auth = [line for line in lines(text) if line.startswith("tls-server-auth=")]
    assert auth == [f"tls-server-auth=db{i}.lab.internal=airflow-ha" for i in (1, 2, 3)]
    assert [s[f"pg{i}-host"] for i in (1, 2, 3)] == [f"db{i}.lab.internal" for i in (1, 2, 3)]
    assert s["pg1-host-type"] == "tls" and s["pg1-path"] == "/var/lib/postgresql/15/patroni"
    assert s["pg2-host-key-file"] == "/etc/airflow-ha/pki/pgbackrest.key"


def test_member_config_with_tls_has_no_passphrase(tls_render_state_file):
    text = tls_render_state_file("db1", "compact", "backup.member", "backup-config")
    conf = ini(text)
    g = conf["global"]
    assert "repo1-cipher-pass" not in g and g["repo1-host"] == "af2.lab.internal" and g["repo1-host-type"] == "tls"
    assert [line for line in lines(text) if line.startswith("tls-server-auth=")] == [
        "tls-server-auth=af2.lab.internal=airflow-ha"]
    assert conf["airflow-ha"]["pg1-socket-path"] == "/var/run/postgresql"


def test_without_tls_the_transport_is_ssh(render_state_file, compiled_sls):
    conf = ini(render_state_file("af2", "compact", "backup", "backup-config"))
    assert conf["airflow-ha"]["pg3-host-user"] == "postgres" and "pg1-host-type" not in conf["airflow-ha"]
    assert "tls-server-address" not in conf["global"]
    states = compiled_sls("db1", "compact", "backup.member")
    assert "backup-ssh-private-key" in states and "backup-server-running" not in states
    key = states["backup-ssh-authorized-key"]
    assert key["contents"].startswith('restrict,from="10.83.0.22" ssh-ed25519 ')


def test_patroni_archives_into_pgbackrest_and_reads_it_back(render_state_file):
    import yaml

    config = yaml.safe_load(render_state_file("db1", "compact", "postgres", "postgres-patroni-config"))
    params = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert params["archive_mode"] == "on" and params["archive_timeout"] == 60
    assert params["archive_command"] == "pgbackrest --stanza=airflow-ha archive-push %p"
    restore_command = 'pgbackrest --stanza=airflow-ha archive-get %f "%p"'
    assert config["postgresql"]["recovery_conf"] == {"restore_command": restore_command}


def test_timers_run_the_pillar_schedule_from_the_repository_host(compiled_sls):
    states = compiled_sls("af2", "compact", "backup")
    timer = states["backup-full-timer"]
    assert "OnCalendar=Sun *-*-* 01:15:00" in timer["contents"]
    service = states["backup-diff-service"]
    assert "--type=diff backup" in service["contents"] and "ExecStopPost=+/usr/local/sbin/airflow-ha-backup-metrics" \
        in service["contents"]


@pytest.mark.integration
@pytest.mark.parametrize("host, sls", [("af2", "backup"), ("db1", "backup.member")])
def test_pgbackrest_itself_accepts_the_rendered_config(tls_render_state_file, tmp_path, host, sls):
    """Every option name, value and dependency of the TLS config as pgBackRest 2.45 parses them: the
    repository host's `info` reads the (empty) repository; a member's `archive-get` gets as far as
    reading the member's pg_control (absent here), past every option check."""
    import shutil
    import subprocess

    if not shutil.which("pgbackrest"):
        pytest.skip("pgbackrest missing: make deps")
    text = tls_render_state_file(host, "compact", sls, "backup-config")
    text = text.replace("repo1-path=/var/lib/pgbackrest", f"repo1-path={tmp_path}/repo")
    config = tmp_path / "pgbackrest.conf"
    config.write_text(text)
    base = ["pgbackrest", f"--config={config}", "--stanza=airflow-ha", f"--lock-path={tmp_path}",
            f"--log-path={tmp_path}", "--log-level-file=off", "--log-level-console=warn"]
    if host == "af2":
        proc = subprocess.run(base + ["--output=json", "info"], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert '"missing stanza path"' in proc.stdout
    else:
        proc = subprocess.run(base + ["--archive-timeout=3", "archive-get", "000000010000000000000001",
                                      str(tmp_path / "wal")], capture_output=True, text=True, timeout=60)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0 and "pg_control" in out, out
        assert "option" not in out.lower(), out


def test_bad_backup_pillar_fails_the_render_naming_each_key(salt_env):
    import multiprocessing

    from tests.haproxy.conftest import compile_state

    pillar = {"backup": {"retention_full": 0, "archive_timeout": "soon", "schedule": {"full": ""},
                         "cipher_type": "none", "stanza": "Bad Stanza"}}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(compile_state, ("af2", "compact", "backup", "backup-config", "debian12", *salt_env,
                                            pillar, None))
    errors = result.get("errors", "")
    for key in ("backup:retention_full", "backup:archive_timeout", "backup:schedule:full", "backup:cipher_type",
                "backup:stanza"):
        assert key in errors, errors[-2000:]


def test_members_without_a_backup_host_neither_archive_nor_get_pgbackrest(salt_env):
    """A cluster without the backup role: no backup.member on the members, Patroni without archive_mode,
    archive_command or restore_command (orch.bringup leaves the backup steps out: tests/unit)."""
    import multiprocessing

    import yaml

    from tests.haproxy.conftest import compile_state
    from tests.helpers.inventory import copy_inventory

    inventory = copy_inventory("compact")
    for host in inventory["hosts"].values():
        host["roles"] = [r for r in host["roles"] if r != "backup"]
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        result = pool.apply(compile_state, ("db1", "compact", "postgres", "postgres-patroni-config", "debian12",
                                            *salt_env, None, inventory))
    assert "errors" not in result, result.get("errors", "")[-2000:]
    assert not [i for i in result["ids"] if i.startswith("backup-")] and "postgres-restarted-for-archiving" not in \
        result["ids"]
    config = yaml.safe_load(result["text"])
    params = config["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert not {"archive_mode", "archive_command", "archive_timeout"} & set(params), params
    assert "recovery_conf" not in config["postgresql"]
