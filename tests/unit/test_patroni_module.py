"""The patroni module's parsing and decisions, with patronictl stubbed: both
the Patroni 3.x and the 4.1+ JSON shapes, every role word."""

import json

import pytest
from salt.exceptions import CommandExecutionError

import _modules.patroni as patroni
import _states.patroni as patroni_state

PATRONI_3 = [
    {"Cluster": "airflow-ha", "Member": "sql1", "Host": "10.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 3},
    {"Cluster": "airflow-ha", "Member": "sql2", "Host": "10.0.0.2:5432", "Role": "Replica", "State": "running", "TL": 3, "Lag in MB": 0},
    {"Cluster": "airflow-ha", "Member": "sql3", "Host": "10.0.0.3:5432", "Role": "Sync Standby", "State": "running", "TL": 3, "Lag in MB": 2},
]
PATRONI_41 = [
    {"Cluster": "airflow-ha", "Member": "sql1", "Host": "10.0.0.1", "Role": "primary", "State": "running", "TL": 4},
    {"Cluster": "airflow-ha", "Member": "sql2", "Host": "10.0.0.2", "Role": "Replica", "State": "streaming", "TL": 4,
     "Receive Lag": 0, "Replay Lag": 40},
    {"Cluster": "airflow-ha", "Member": "sql3", "Host": "10.0.0.3", "Role": "Replica", "State": "stopped", "TL": None,
     "Receive Lag": "unknown", "Replay Lag": "unknown"},
]


def stub_patronictl(rows, retcode=0):
    calls = []

    def run_all(cmd, **kwargs):
        calls.append(cmd)
        return {"retcode": retcode, "stdout": json.dumps(rows), "stderr": "connection refused" if retcode else ""}

    return run_all, calls


@pytest.fixture
def configure_loader_modules(tmp_path, http_utils):
    config = tmp_path / "patroni.yml"
    config.write_text("scope: airflow-ha\nrestapi: {connect_address: 127.0.0.1:8008}\n")
    return {patroni: {"__salt__": {}, "__grains__": {"id": "sql1"}, "__utils__": http_utils},
            patroni_state: {"__salt__": {}, "__opts__": {"test": False}}}


def use(rows, tmp_path, retcode=0):
    run_all, calls = stub_patronictl(rows, retcode)
    patroni.__salt__["cmd.run_all"] = run_all
    return str(tmp_path / "patroni.yml"), calls


def test_patroni_3_output(tmp_path):
    config, calls = use(PATRONI_3, tmp_path)
    status = patroni.cluster_status(config=config)
    assert status["leader"] == "sql1"
    assert [m["role"] for m in status["members"]] == ["leader", "replica", "sync_standby"]
    assert status["max_lag_mb"] == 2 and status["running"] == 3
    assert calls[0] == ["patronictl", "-c", config, "list", "-f", "json"]  # no password anywhere


def test_patroni_41_output_with_receive_and_replay_lag(tmp_path):
    config, _ = use(PATRONI_41, tmp_path)
    status = patroni.cluster_status(config=config)
    assert status["leader"] == "sql1"  # "primary" is the leader
    assert status["members"][1]["lag_mb"] == 40  # the larger of receive and replay lag
    assert status["members"][2]["lag_mb"] is None
    assert status["running"] == 2 and status["replicas"] == ["sql2"]
    assert patroni.health_problems(status, members=3, max_lag_mb=16) == [
        "2 of 3 members running", "replicas lagging over 16 MB or of unknown lag: sql2"]


@pytest.mark.parametrize("word", ["Leader", "master", "primary"])
def test_every_leader_word_is_the_leader(word):
    assert patroni.normalize_member({"Member": "a", "Role": word, "State": "running"})["role"] == "leader"


def test_no_leader_when_two_claim_it():
    rows = [patroni.normalize_member({"Member": n, "Role": "Leader", "State": "running"}) for n in ("a", "b")]
    assert patroni.summarize(rows)["leader"] is None


def test_failure_raises_with_patronictl_message(tmp_path):
    config, _ = use([], tmp_path, retcode=1)
    with pytest.raises(CommandExecutionError, match="patronictl list -f json failed \\(exit 1\\): connection refused"):
        patroni.members(config=config)
    assert patroni.is_leader(config=config) is False  # an unreachable Patroni is not the leader


def test_switchover_without_a_leader_refuses(tmp_path):
    config, _ = use([dict(PATRONI_3[1], Role="Replica")], tmp_path)
    with pytest.raises(CommandExecutionError, match="use patroni.failover"):
        patroni.switchover(candidate="sql2", config=config)


def test_config_applied_diff_compares_like_postgres():
    current = {"loop_wait": 10, "postgresql": {"parameters": {"max_connections": 300, "wal_level": "replica"}}}
    desired = {"loop_wait": "10", "postgresql": {"parameters": {"max_connections": 500}}}
    assert patroni_state._diff(current, desired) == {"postgresql.parameters.max_connections": {"old": 300, "new": 500}}


def test_config_applied_in_test_mode_changes_nothing():
    edits = []
    patroni_state.__salt__.update({"patroni.show_config": lambda config=None: {"ttl": 30},
                                   "patroni.edit_config": lambda settings, config=None: edits.append(settings)})
    patroni_state.__opts__["test"] = True
    ret = patroni_state.config_applied("dcs", {"ttl": 20})
    assert ret["result"] is None and ret["changes"] == {"ttl": {"old": 30, "new": 20}} and edits == []


def test_rest_api_is_called_over_https_verified_by_the_configs_ca(tmp_path, monkeypatch):
    """With restapi.certfile (tls:enabled) the module calls https with the ctl/restapi CA, else plain http."""
    import urllib.request

    import gen_tls

    ca_key, ca_cert = gen_tls.create_ca()
    ca = tmp_path / "ca.crt"
    ca.write_bytes(gen_tls.cert_pem(ca_cert))
    seen = []

    class Response:
        def __init__(self):
            self.text = b'{"ok": true}'

        def read(self):
            return self.text

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def urlopen(req, timeout=None, context=None):
        seen.append((req.full_url, context))
        return Response()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    plain = tmp_path / "plain.yml"
    plain.write_text("scope: s\nrestapi: {connect_address: '10.0.0.1:8008'}\n")
    tls = tmp_path / "tls.yml"
    tls.write_text(f"scope: s\nrestapi: {{connect_address: '10.0.0.1:8008', certfile: /x.crt, keyfile: /x.key}}\n"
                   f"ctl: {{cacert: {ca}}}\n")
    assert patroni.edit_config({"loop_wait": 5}, config=str(plain)) == {"ok": True}
    assert patroni.edit_config('{"loop_wait": 5}', config=str(tls)) == {"ok": True}
    (plain_url, plain_ctx), (tls_url, tls_ctx) = seen
    assert plain_url == "http://10.0.0.1:8008/config" and plain_ctx is None
    assert tls_url == "https://10.0.0.1:8008/config"
    assert tls_ctx.verify_mode.name == "CERT_REQUIRED" and tls_ctx.check_hostname is True
    assert len(tls_ctx.get_ca_certs()) == 1  # the cluster CA only, not the system store
