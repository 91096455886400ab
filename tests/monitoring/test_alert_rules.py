"""Every alert rule, evaluated by the real `promtool test rules` on series that
should fire it and series that should not (thresholds: the shipped defaults)."""

import shutil
import subprocess

import pytest
import yaml

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# alert -> (time to evaluate at, firing series, quiet series)
CASES = {
    "HostDown": ("3m", ['up{job="node", host="db1", instance="a"}', "0x10"], ['up{job="node", host="db1", instance="a"}', "1x10"]),
    "AirflowSchedulerHeartbeatMissing": ("5m", ['airflow_scheduler_heartbeat{job="statsd", instance="m"}', "100+0x10"],
                                         ['airflow_scheduler_heartbeat{job="statsd", instance="m"}', "0+5x10"]),
    "PatroniNoLeader": ("2m", ['patroni_primary{job="patroni", host="db1", instance="a"}', "0x10"],
                        ['patroni_primary{job="patroni", host="db1", instance="a"}', "1x10"]),
    "EtcdNoLeader": ("2m", ['etcd_server_has_leader{job="etcd", host="db1", instance="a"}', "0x10"],
                     ['etcd_server_has_leader{job="etcd", host="db1", instance="a"}', "1x10"]),
    "RabbitMQNodeDown": ("3m", ['up{job="rabbitmq", host="db2", instance="b"}', "0x10"], ['up{job="rabbitmq", host="db2", instance="b"}', "1x10"]),
    "RabbitMQAlarm": ("1m", ['rabbitmq_alarms_memory_used_watermark{job="rabbitmq", host="db2", instance="b"}', "1x10"],
                      ['rabbitmq_alarms_memory_used_watermark{job="rabbitmq", host="db2", instance="b"}', "0x10"]),
    "RabbitMQQueueDepthHigh": ("15m", ['rabbitmq_queue_messages_ready{job="rabbitmq", instance="b"}', "5000x20"],
                               ['rabbitmq_queue_messages_ready{job="rabbitmq", instance="b"}', "10x20"]),
    "HAProxyBackendDown": ("2m", ['haproxy_backend_active_servers{job="haproxy", proxy="postgres_rw", host="af1", instance="c"}', "0x10"],
                           ['haproxy_backend_active_servers{job="haproxy", proxy="postgres_rw", host="af1", instance="c"}', "1x10"]),
}


def multi_series_cases():
    """Alerts whose expression needs several series."""
    etcd = lambda states: [{"series": f'up{{job="etcd", host="db{i}", instance="e{i}"}}', "values": f"{v}x10"} for i, v in enumerate(states, 1)]
    lag = lambda replayed: [
        {"series": 'patroni_xlog_location{job="patroni", host="db1", instance="p1"}', "values": "1000000000x10"},
        {"series": 'patroni_replica{job="patroni", host="db1", instance="p1"}', "values": "0x10"},
        {"series": 'patroni_xlog_replayed_location{job="patroni", host="db2", instance="p2"}', "values": f"{replayed}x10"},
        {"series": 'patroni_replica{job="patroni", host="db2", instance="p2"}', "values": "1x10"},
    ]
    failures = lambda fail_step, ok_step: [
        {"series": 'airflow_ti_failures{job="statsd", instance="m"}', "values": f"0+{fail_step}x30"},
        {"series": 'airflow_ti_successes{job="statsd", instance="m"}', "values": f"0+{ok_step}x30"},
    ]
    partition = lambda names: [{"series": f'rabbitmq_identity_info{{job="rabbitmq", rabbitmq_cluster="{n}", instance="r{i}"}}', "values": "1x10"}
                               for i, n in enumerate(names)]
    disk = lambda avail: [
        {"series": 'node_filesystem_avail_bytes{job="node", host="db1", mountpoint="/", fstype="ext4", instance="a"}', "values": f"{avail}x30"},
        {"series": 'node_filesystem_size_bytes{job="node", host="db1", mountpoint="/", fstype="ext4", instance="a"}', "values": "1000x30"},
    ]
    return {
        "EtcdQuorumAtRisk": ("3m", etcd([1, 1, 0]), etcd([1, 1, 1])),
        "PatroniReplicaLagHigh": ("5m", lag(1000000000 - 20 * 2**20), lag(1000000000 - 2**20)),
        "AirflowTaskFailureRateHigh": ("25m", failures(10, 1), failures(1, 20)),
        "RabbitMQPartitionSuspected": ("3m", partition(["rabbit@a", "rabbit@b"]), partition(["rabbit@a", "rabbit@a"])),
        "DiskFilling": ("20m", disk(50), disk(600)),
    }


@pytest.fixture(scope="module")
def rules_file(render_state_file, tmp_path_factory):
    path = tmp_path_factory.mktemp("rules") / "airflow-ha.yml"
    path.write_text(render_state_file("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-rules"))
    return path


def all_cases():
    cases = {name: (at, [{"series": s, "values": v}], [{"series": qs, "values": qv}])
             for name, (at, (s, v), (qs, qv)) in CASES.items()}
    cases.update(multi_series_cases())
    return cases


@pytest.mark.parametrize("alert", sorted(all_cases()))
def test_alert_fires_on_bad_series_and_not_on_good(alert, rules_file, tmp_path):
    at, firing, quiet = all_cases()[alert]
    tests = []
    for series, expect_fire in ((firing, True), (quiet, False)):
        tests.append({"interval": "1m", "input_series": series,
                      "alert_rule_test": [{"eval_time": at, "alertname": alert,
                                           "exp_alerts": None if not expect_fire else "ANY"}]})
    # promtool wants the exact alerts; "ANY" is filled in from a first run below
    spec = {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}
    quiet_only = dict(spec, tests=[dict(tests[1], alert_rule_test=[dict(tests[1]["alert_rule_test"][0], exp_alerts=[])])])
    path = tmp_path / "quiet.yml"
    path.write_text(yaml.safe_dump(quiet_only))
    out = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, f"{alert} fired on good series:\n{out.stdout}{out.stderr}"
    firing_spec = dict(spec, tests=[dict(tests[0], alert_rule_test=[dict(tests[0]["alert_rule_test"][0], exp_alerts=[])])])
    path = tmp_path / "firing.yml"
    path.write_text(yaml.safe_dump(firing_spec))
    out = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True)
    # expecting no alert must FAIL here: the alert did fire, and promtool shows it
    assert out.returncode != 0 and f'alertname="{alert}"' in out.stdout + out.stderr, \
        f"{alert} did not fire on bad series:\n{out.stdout}{out.stderr}"
