"""The Salt audit engine (salt/_engines/airflow_ha_audit.py) in a real master, configured as
docs/logs.md says (engines_dirs, engines), writing to a syslog socket this test reads: a state run
with a pillar override, a command with a secret on its command line and an orchestrate each give their
lines, with user, function, target and result, and the secret is in none of them. On the lab the lines
go through rsyslog to the log host (drill.py logs)."""

import json
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers.inventory import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECRET = "audit-Secret-7c1f"


@pytest.fixture(scope="module")
def syslog_socket():
    """A unix datagram socket standing in for /dev/log: the engine's lines, as rsyslog would get them."""
    directory = Path(tempfile.mkdtemp(prefix="audit-", dir="/tmp"))
    path = directory / "log"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.5)
    yield sock, path
    sock.close()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def master(salt_factories, syslog_socket, tmp_path_factory):
    roots = tmp_path_factory.mktemp("audit-roots")
    (roots / "orch").mkdir()
    (roots / "orch" / "audit.sls").write_text(
        "audit-ping:\n  salt.function:\n    - name: test.ping\n    - tgt: audit-minion\n")
    factory = salt_factories.salt_master_daemon(
        "audit-master",
        overrides={
            "file_roots": {"base": [str(roots)]},
            "open_mode": True,
            "engines_dirs": [str(REPO / "salt" / "_engines")],
            "engines": [{"airflow_ha_audit": {"address": str(syslog_socket[1])}}],
        },
    )
    with factory.started(start_timeout=120):
        yield factory


@pytest.fixture(scope="module")
def minion(master):
    factory = master.salt_minion_daemon("audit-minion")
    with factory.started(start_timeout=120):
        yield factory


def received(sock, until, timeout=60):
    """The lines read from the socket until ``until(lines)`` holds (or ``timeout``)."""
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline and not until(lines):
        try:
            lines.append(sock.recv(65536).decode())
        except socket.timeout:
            continue
    return lines


def audit(lines, event):
    return [json.loads(line.split(f"salt-audit: {event} ", 1)[1]) for line in lines if f"salt-audit: {event} " in line]


def test_jobs_and_orchestrates_are_audited_without_their_secrets(master, minion, syslog_socket):
    sock, _ = syslog_socket
    cli = master.salt_cli(timeout=120)
    ret = cli.run("state.single", "test.succeed_with_changes", "name=audited",
                  f"pillar={json.dumps({'token': SECRET})}", minion_tgt="audit-minion")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    ret = cli.run("cmd.run", f"echo {SECRET} >/dev/null", minion_tgt="audit-minion")
    assert ret.returncode == 0, ret.stdout + ret.stderr
    orch = master.salt_run_cli(timeout=120).run("state.orchestrate", "orch.audit")
    assert orch.returncode == 0, orch.stdout + orch.stderr

    lines = received(sock, lambda got: len(audit(got, "run ret")) >= 1)
    assert not [line for line in lines if SECRET in line]
    new = {j["fun"]: j for j in audit(lines, "job new")}
    assert new["state.single"]["minions"] == ["audit-minion"] and new["state.single"]["pillar"] == "***"
    assert new["state.single"]["args"] == ["test.succeed_with_changes"]
    assert new["cmd.run"]["args"] == "1 not shown" and new["cmd.run"]["user"]
    rets = {j["fun"]: j for j in audit(lines, "job ret")}
    assert rets["state.single"]["minion"] == "audit-minion" and rets["state.single"]["changed"] == 1
    assert rets["cmd.run"]["success"] is True
    assert "test.ping" in new  # the orchestrate's own job
    (run_new,), (run_ret,) = audit(lines, "run new"), audit(lines, "run ret")
    assert run_new["fun"] == "runner.state.orchestrate" and run_new["args"] == ["orch.audit"]
    assert run_ret["success"] is True and run_ret["states"] == 1 and run_ret["failed"] == 0
    # syslog's priority: authpriv (10) at info (6)
    assert all(line.startswith(f"<{10 * 8 + 6}>") for line in lines)
