"""What the logs states write (issue 22), rendered as the states render it: the
central log host admits the inventory's hosts by their certificates' names and
files by the inventory name of the source address; every host forwards to the
log host of the inventory over TLS with a disk-assisted queue; the log host
gets the root-only PAN scan; bad pillar fails the render naming the key;
without TLS the role refuses to apply."""

import shutil
import subprocess
import sys

import pytest
import yaml

from tests.helpers.inventory import REPO, load_inventory

PKI = "/etc/airflow-ha/pki"
RENDER = [sys.executable, str(REPO / "tools" / "render.py")]


def rsyslog_check(text, tmp_path):
    """rsyslogd -N1 on the file, as the states' check_cmd runs it (skipped without rsyslogd)."""
    if not shutil.which("rsyslogd"):
        return
    path = tmp_path / "check.conf"
    path.write_text(text)
    proc = subprocess.run(["rsyslogd", "-N1", "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_receiver_admits_the_inventory_hosts_and_files_by_source_address(tls_render_state_file, tmp_path):
    inv = load_inventory("compact")
    conf = tls_render_state_file("db3", "compact", "logs", "logs-receiver-config", os_name="rocky9")
    assert 'input(type="imtcp" port="6514" ruleset="airflow-ha-remote"' in conf
    assert 'StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="x509/name"' in conf
    assert f'StreamDriver.KeyFile="{PKI}/rsyslog.key"' in conf
    peers = sorted(f"{name}.{inv['domain']}" for name in inv["hosts"])
    assert f"PermittedPeer={peers}".replace("'", '"') in conf
    for name, host in inv["hosts"].items():
        assert f'if $fromhost-ip == "{host["ip"]}" then {{ set $.host = "{name}"; }}' in conf
    assert '/var/log/remote/%$.host%/%$.program:::secpath-replace%.log' in conf
    assert 'dirCreateMode="0700" fileCreateMode="0600"' in conf and 'fileOwner="root" fileGroup="root"' in conf
    rsyslog_check(conf, tmp_path)


@pytest.mark.parametrize("os_name, spool", [("debian12", "/var/spool/rsyslog"), ("rocky9", "/var/lib/rsyslog")])
def test_every_host_forwards_to_the_log_host_with_a_disk_assisted_queue(tls_render_state_file, tmp_path, os_name,
                                                                       spool):
    conf = tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config", os_name=os_name)
    for part in ('target="10.83.0.13" port="6514" protocol="tcp"', 'StreamDriverAuthMode="x509/name"',
                 'StreamDriverPermittedPeers="db3.lab.internal"', 'queue.type="LinkedList"',
                 'queue.filename="airflow-ha-forward-db3"', f'queue.spoolDirectory="{spool}"',
                 'queue.saveOnShutdown="on" queue.maxDiskSpace="1g"', 'action.resumeRetryCount="-1"'):
        assert part in conf, part
    rsyslog_check(conf, tmp_path)


def test_the_full_topology_logs_to_the_monitoring_host(tls_render_state_file):
    conf = tls_render_state_file("sql1", "full", "logs.forward", "logs-forward-config")
    assert 'target="192.168.83.160"' in conf and 'StreamDriverPermittedPeers="monitor1.airflow.internal"' in conf


def test_worker_hosts_send_task_log_lines_to_the_other_api_servers(tls_render_state_file, tmp_path):
    conf = tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config")
    for pattern in ("task_id=*/attempt=*.log", "task_id=*/map_index=*/attempt=*.log"):
        assert f'File="/opt/airflow/logs/dag_id=*/run_id=*/{pattern}" Tag="airflow-task"' in conf
    # to af2 (the other api-server host) on the port map's task_logs port, never to itself
    assert 'name="airflow-ha-task-logs-af2"' in conf and 'target="10.83.0.22" port="6515"' in conf
    assert "airflow-ha-task-logs-af1" not in conf
    rsyslog_check(conf, tmp_path)
    # a database host runs no worker: no task logs tailed, RabbitMQ's log instead
    db = tls_render_state_file("db2", "compact", "logs.forward", "logs-forward-config")
    assert "airflow-task" not in db and 'File="/var/log/rabbitmq/rabbit@*.log" Tag="rabbitmq"' in db
    assert db.count('module(load="imfile"') == conf.count('module(load="imfile"') == 1
    rsyslog_check(db, tmp_path)


def test_api_server_hosts_take_copies_from_worker_and_triggerer_hosts_only(tls_render_state_file, tls_compiled_sls,
                                                                           tmp_path):
    conf = tls_render_state_file("af2", "compact", "logs.task_log_copies", "logs-task-log-copies-config")
    assert 'input(type="imtcp" port="6515" ruleset="airflow-ha-task-log-copies"' in conf
    assert 'PermittedPeer=["af1.lab.internal", "af2.lab.internal"]' in conf
    assert 'string="/opt/airflow/logs/%$.path%.copy"' in conf and 'fileOwner="airflow"' in conf
    states = tls_compiled_sls("af2", "compact", "logs.task_log_copies")
    assert {"file": "airflow-dirs"} in states["logs-task-log-copies-config"]["require"]
    assert "logs-task-log-copies-config" not in tls_compiled_sls("db2", "compact", "logs.task_log_copies")


def test_debian_rsyslog_reads_the_journal_itself_redhat_already_does(tls_render_state_file, tls_compiled_sls):
    debian = tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config")
    assert 'module(load="imjournal" StateFile="/var/spool/rsyslog/imjournal.state" IgnorePreviousMessages="on"' \
        in debian
    states = tls_compiled_sls("af1", "compact", "logs.forward")
    assert "ForwardToSyslog=no" in states["logs-journald-no-syslog-forward"]["contents"]
    assert {"service": "logs-rsyslog-running"} in states["logs-journald-no-syslog-forward"]["require"]
    # Rocky's rsyslog.conf loads imjournal: a second load would fail rsyslog's config check
    rocky = tls_render_state_file("af1", "compact", "logs.forward", "logs-forward-config", os_name="rocky9")
    assert "imjournal" not in rocky
    assert "logs-journald-no-syslog-forward" not in tls_compiled_sls("af1", "compact", "logs.forward",
                                                                     os_name="rocky9")


def test_retention_from_pillar(tls_render_state_file):
    conf = tls_render_state_file("db3", "compact", "logs", "logs-retention")
    assert "/var/log/remote/*/*.log {" in conf
    assert "    rotate 365" in conf.splitlines() and "    maxage 365" in conf.splitlines()
    assert "    create 0600 root root" in conf.splitlines()


def test_states_keep_a_root_only_key_copy_and_restart_on_new_material(tls_compiled_sls):
    states = tls_compiled_sls("db3", "compact", "logs")
    key = states["logs-rsyslog-tls-key"]
    assert (key["name"], key["mode"], key["user"], key["show_changes"]) == (f"{PKI}/rsyslog.key", "0600", "root",
                                                                            False)
    assert key["source"] == f"{PKI}/host.key" and {"x509": "pki-host-key"} in key["require"]
    assert states["logs-remote-dir"]["mode"] == "0700"
    assert states["logs-receiver-config"]["check_cmd"] == "rsyslogd -N1 -f"
    watched = states["logs-rsyslog-running"]["watch"]
    for req in ({"file": "logs-forward-config"}, {"file": "logs-rsyslog-tls-key"}, {"x509": "pki-host-cert"}):
        assert req in watched
    assert {"service": "logs-rsyslog-running"} in states["logs-receiver-config"]["watch_in"]


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_the_log_host_gets_the_root_only_pan_scan(tls_compiled_sls, os_name):
    state = tls_compiled_sls("db3", "compact", "logs", os_name=os_name)["logs-pan-scan-script"]
    assert state["fun"] == "file.managed"
    assert (state["name"], state["source"], state["user"], state["group"], state["mode"]) == (
        "/usr/local/sbin/airflow-ha-pan-scan", "salt://logs/files/airflow-ha-pan-scan.py", "root", "root", "0700")
    assert "logs-pan-scan-script" not in tls_compiled_sls("af1", "compact", "logs.forward", os_name=os_name)


def test_without_tls_the_log_host_and_the_senders_refuse_to_apply(compiled_sls):
    assert compiled_sls("db3", "compact", "logs")["logs-needs-tls"]["fun"] == "test.fail_without_changes"
    assert "logs-forward-needs-tls" in compiled_sls("af1", "compact", "logs.forward")


def test_postgres_logs_connections_and_ddl_once():
    params = yaml.safe_load((REPO / "salt" / "postgres" / "defaults.yaml").read_text())["dcs"]["postgresql"]
    assert params["parameters"]["log_connections"] == "on" and params["parameters"]["log_statement"] == "ddl"
    # one source: nothing else in the tree sets them
    hits = [str(p.relative_to(REPO)) for p in (REPO / "salt").rglob("*") if p.is_file()
            and "log_statement" in p.read_text(errors="ignore")]
    assert hits == ["salt/postgres/defaults.yaml"]


@pytest.mark.parametrize("setting, message", [
    ({"retention_days": 0}, "pillar logs:retention_days is 0: give whole days, at least 1"),
    ({"retention_days": "a year"}, 'pillar logs:retention_days is "a year": give whole days'),
    ({"forward": {"max_disk_space": "lots"}}, 'pillar logs:forward:max_disk_space is "lots": give an rsyslog size'),
    ({"forward": {"resume_interval": 0}}, "pillar logs:forward:resume_interval is 0: give whole seconds from 1"),
    ({"task_logs": {"copy_suffix": ".log"}}, 'pillar logs:task_logs:copy_suffix is ".log": give a dot and a word'),
    ({"task_logs": {"copy_suffix": "/x"}}, 'pillar logs:task_logs:copy_suffix is "/x": give a dot and a word'),
    ({"pan_scan_script": "airflow-ha-pan-scan"}, 'pillar logs:pan_scan_script is "airflow-ha-pan-scan": give an '
                                                 'absolute path'),
])
def test_bad_logs_pillar_fails_the_render_naming_the_key(tmp_path, setting, message):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"logs": setting}))
    proc = subprocess.run(RENDER + ["--topology", "compact", "--host", "af1", "--os", "debian12",
                                    "--pillar-override", str(tmp_path)], capture_output=True, text=True, timeout=900)
    out = proc.stderr + proc.stdout
    assert proc.returncode == 1, out
    assert message in out
