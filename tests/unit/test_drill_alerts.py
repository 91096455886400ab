"""The pure parts of the lab's alert drill (tools/lab/drill_alerts.py): alert
lines, matching, the webhook log, and a plan that, with the rules covered only
by promtool, accounts for every alert rule."""

import json
import sys

import yaml

from tests.helpers.inventory import REPO, hosts_with_role, load_inventory

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_alerts  # noqa: E402

CASES = [REPO / "tests" / "monitoring" / "alert_rules_test.yml", REPO / "tests" / "monitoring" / "alert_rules_statsd_test.yml"]


def promtool_alerts():
    return {c["alertname"] for path in CASES for t in yaml.safe_load(path.read_text())["tests"] for c in t["alert_rule_test"]}


def compact_plan():
    inv = load_inventory("compact")
    return inv, drill_alerts.plan(inv, leader="db1", vip_holder="af1")


def test_alert_lines_and_matching():
    line = drill_alerts.alert_line({"state": "firing", "labels": {"alertname": "EtcdMemberDown", "host": "db2",
                                                                  "job": "etcd", "severity": "warning"}})
    assert line == "EtcdMemberDown firing {host=db2, job=etcd, severity=warning}"
    assert drill_alerts.matches(line, "EtcdMemberDown", {"host": "db2"})
    assert drill_alerts.matches(line, "EtcdMemberDown", {})
    assert not drill_alerts.matches(line, "EtcdMemberDown", {"host": "db3"})
    assert not drill_alerts.matches(line, "EtcdMemberDown", {"host": "db2"}, state="pending")
    assert not drill_alerts.matches(line, "EtcdQuorumAtRisk", {})


def test_webhook_log_parsed_per_alert():
    body = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "HostDown", "host": "db2"}},
                                           {"status": "resolved", "labels": {"alertname": "HostDown", "host": "db1"}}]}
    text = json.dumps({"received": 12.5, "body": body}) + "\n\n"
    assert drill_alerts.parse_notifications(text) == [
        (12.5, "firing", "HostDown", {"alertname": "HostDown", "host": "db2"}),
        (12.5, "resolved", "HostDown", {"alertname": "HostDown", "host": "db1"})]


def test_every_rule_is_drilled_on_the_lab_or_covered_by_promtool_only():
    _, scenarios = compact_plan()
    drilled = set(drill_alerts.covered(scenarios))
    assert not drilled & set(drill_alerts.PROMTOOL_ONLY)
    assert drilled | set(drill_alerts.PROMTOOL_ONLY) == promtool_alerts()


def test_plan_leaves_quorum_and_the_leader_alone():
    inv, scenarios = compact_plan()
    by_name = {s.name: s for s in scenarios}
    touched = lambda name: {h for h, _ in by_name[name].provoke}
    # one etcd member and one RabbitMQ node, different hosts, never the Patroni leader's etcd
    assert len(touched("etcd member down")) == 1 and "db1" not in touched("etcd member down")
    assert touched("etcd member down").isdisjoint(touched("RabbitMQ node and node_exporter down"))
    # the lag is made on the leader and a replica pauses its replay
    assert {h for h, _ in by_name["replica lag"].provoke} == {"db1", by_name["replica lag"].expect[0][1]["host"]}
    # the VIP holder's HAProxy stops: the backend alert is expected only where HAProxy still runs
    assert [labels["host"] for _, labels in by_name["HAProxy backend down (Flower)"].expect] == \
        [h for h in hosts_with_role(inv, "haproxy") if h != "af1"]
    # every failure has its undoing
    assert all(s.restore and len(s.restore) >= 1 for s in scenarios)
