"""Alert drills on the running lab (issue 18): zero alerts when healthy, every
rule that containers can provoke fires, reaches a person (the lab's webhook
receiver) and resolves. For the lead to wire into tools/lab/drill.py and
tests/lab:

    import drill_alerts
    drill_alerts.assert_quiet(inv, timeout=300)   # after bring-up and after every drill
    drill_alerts.drill_alerts(inv)                # FIGURE drill alerts: ... lines

The webhook receiver needs Alertmanager to send to it: the lab's pillar
(.lab/pillar/lab.sls, written by tools/lab/up.sh) must hold LAB_PILLAR.

Failures are provoked together where they do not interfere (about 6 minutes
in all, RabbitMQQueueDepthHigh's `for: 5m` being the longest); each is undone
as soon as its alerts fire. The rules' `for:` are the shipped ones.
"""

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drill as lab  # noqa: E402  (tools/lab/drill.py: run, roles, prometheus_get, wait, patroni_leader, vip_holder)
import drill_partition  # noqa: E402  (the nftables cut)

# The lab's webhook receiver: loopback of the monitoring host (Alertmanager
# runs there too), so it needs no port of the port map.
WEBHOOK_PORT = 9097
WEBHOOK_URL = f"http://127.0.0.1:{WEBHOOK_PORT}/alerts"
WEBHOOK_LOG = "/var/tmp/airflow-ha-alert-webhook.jsonl"
WEBHOOK_UNIT = "airflow-ha-alert-webhook"


def _seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600}
    return int(str(duration)[:-1]) * units[str(duration)[-1]]


# seconds a fired alert may take to reach the webhook: group_wait for a new
# group, up to group_interval more when its group was notified recently
_AM = lab.yaml.safe_load((lab.REPO / "salt" / "monitoring" / "defaults.yaml").read_text())["alertmanager"]
NOTIFY_WAIT = _seconds(_AM["group_wait"]) + _seconds(_AM["group_interval"]) + 30
LAB_PILLAR = {"monitoring": {"alertmanager": {"receivers": {"webhook_urls": [WEBHOOK_URL]}}}}

WEBHOOK_SERVER = r"""
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"received": time.time(), "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

# Rules no container failure can provoke (or not within the drill without
# harming the lab): their `promtool test rules` cases (tests/monitoring/
# alert_rules_test.yml) are their proof.
PROMTOOL_ONLY = {
    "DiskNearlyFull": "the containers' disk is the host's: filling it to 90% would hurt the machine",
    "DiskFillingFast": "needs hours of steady growth",
    "PatroniNoLeader": "a failover elects a new leader; the leader drill (drill.py leader) may see it pending",
    "PostgresDown": "Patroni restarts a stopped PostgreSQL within seconds; a lost host takes the exporter too",
    "EtcdNoLeader": "two of three members down would also stop Patroni",
    "RabbitMQPartitionSuspected": "a partition needs the Erlang distribution cut between running containers",
    "RabbitMQNodeOutsideCluster": "needs a node reset into a cluster of its own",
    "RabbitMQAlarm": "needs RabbitMQ's memory or disk watermark crossed",
    "AirflowUnreachable": "needs both HAProxy hosts down",
    "BlackboxExporterDown": "stopping it would blind the Airflow drills running at the same time",
    "CertificateExpiringSoon": "needs a certificate within 21 days of its end",
    "ClockSkew": "the containers share the machine's kernel clock: one cannot be set apart",
    "TLSHandshakeFailing": "needs an expired or foreign certificate",
    "PostgresWALArchiveFailing": "needs archiving broken for 5 minutes (the repository's pgBackRest stopped), "
                                 "while the restore drill needs every WAL segment archived",
    "PostgresBackupTooOld": "needs 26 hours without a successful backup",
    "BackupRepositoryLowSpace": "the repository's disk is the host's: filling it to 85% would hurt the machine",
    "AirflowSchedulerHeartbeatStalled": "statsd_exporter: not on Debian",
    "AirflowTaskFailureRateHigh": "statsd_exporter: not on Debian",
}

# a replica's WAL replay paused, then this much WAL written on the leader
# (rows of ~100 bytes): over the rule's 16 MiB
LAG_ROWS = 400000
PSQL = "runuser -u postgres -- psql -X -Atq -d postgres -c {}"
BACKLOG_QUEUE = "airflow_ha_drill_backlog"
# publishes messages to a queue of its own with Airflow's broker URL (never printed); a quorum queue like Airflow's own,
# so it outlives the RabbitMQ node another scenario stops (a classic queue there went with it, and the
# backlog never lasted the rule's 5 minutes)
BACKLOG = r"""set -a; . /etc/default/airflow; set +a
/opt/airflow/venv/bin/python - {count} <<'PY'
import os, ssl, sys
from kombu import Connection, Queue
url = os.environ["AIRFLOW__CELERY__BROKER_URL"]
tls = {{"ca_certs": "/etc/airflow-ha/pki/ca.crt", "cert_reqs": ssl.CERT_REQUIRED}} if url.startswith("amqps") else False
queue = Queue("{queue}", durable=True, auto_delete=False, queue_arguments={{"x-queue-type": "quorum"}})
with Connection(url, ssl=tls, connect_timeout=10) as conn:
    if int(sys.argv[1]) < 0:
        queue(conn.default_channel).delete()
    else:
        producer = conn.Producer()
        for i in range(int(sys.argv[1])):
            producer.publish({{"drill": i}}, routing_key="{queue}", declare=[queue])
PY"""


def shell_quote(text):
    return "'" + text.replace("'", "'\"'\"'") + "'"


def alert_line(alert):
    """``Name state {label=value, ...}`` without the alertname label."""
    labels = {k: v for k, v in sorted(alert["labels"].items()) if k != "alertname"}
    return f"{alert['labels']['alertname']} {alert['state']} " + "{" + ", ".join(f"{k}={v}" for k, v in labels.items()) + "}"


def active_alerts(inv):
    """Every alert firing or pending in Prometheus, as readable strings."""
    alerts = lab.prometheus_get(inv, 9090, "/api/v1/alerts")["data"]["alerts"]
    return sorted(alert_line(a) for a in alerts if a["state"] in ("firing", "pending"))


def assert_quiet(inv, timeout=300):
    """Wait up to ``timeout`` s for no alert firing or pending; raise listing them. Returns the wait."""
    start = time.monotonic()
    last = []
    while True:
        last = active_alerts(inv)
        if not last:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{len(last)} alerts firing or pending after {timeout} s:\n  " + "\n  ".join(last))
        time.sleep(5)


def start_webhook(inv):
    """The lab's webhook receiver on the monitoring host (a transient systemd unit), logging each POST."""
    host = lab.roles(inv, "monitoring")[0]
    lab.run(host, f"cat > /usr/local/lib/airflow-ha-alert-webhook.py <<'PY'\n{WEBHOOK_SERVER}\nPY")
    lab.run(host, f"systemctl is-active --quiet {WEBHOOK_UNIT} || systemd-run --unit={WEBHOOK_UNIT} --collect "
                  f"/usr/bin/python3 /usr/local/lib/airflow-ha-alert-webhook.py {WEBHOOK_PORT} {WEBHOOK_LOG}")
    config = lab.run(host, "cat /etc/prometheus/alertmanager.yml").stdout
    if WEBHOOK_URL not in config:
        raise AssertionError(f"Alertmanager on {host} does not send to {WEBHOOK_URL}: the lab's pillar needs "
                             f"{json.dumps(LAB_PILLAR)}")
    return host


def parse_notifications(text):
    """Webhook log lines -> [(received, status, alertname, labels)] per alert of each POST."""
    out = []
    for line in text.splitlines():
        if line.strip():
            entry = json.loads(line)
            for alert in entry["body"].get("alerts", []):
                out.append((entry["received"], alert["status"], alert["labels"].get("alertname"), alert["labels"]))
    return out


def notifications(inv):
    """What the lab's webhook receiver got: [(received epoch, status, alertname, labels)]."""
    host = lab.roles(inv, "monitoring")[0]
    return parse_notifications(lab.run(host, f"cat {WEBHOOK_LOG} 2>/dev/null || true").stdout)


def matches(line, alertname, labels, state="firing"):
    """Does an ``active_alerts`` line show ``alertname`` in ``state`` with these labels?"""
    name, got_state, rest = line.split(" ", 2)
    return name == alertname and got_state == state and all(f"{k}={v}" in rest[1:-1].split(", ")
                                                             for k, v in labels.items())


class Scenario:
    def __init__(self, name, provoke, restore, expect):
        self.name, self.provoke, self.restore, self.expect = name, provoke, restore, expect
        self.started = self.fired = self.restored = self.resolved = self.notified = None


def plan(inv, leader, vip_holder):
    """The failures provoked together, from the lab's inventory: (host, command) lists and the alerts
    (name, labels) each must fire. ``leader``: the Patroni leader; ``vip_holder``: the main VIP's host."""
    airflow = lab.roles(inv, "scheduler")
    db = lab.roles(inv, "etcd")
    replica = next(h for h in lab.roles(inv, "postgres") if h != leader)
    etcd_down = next(h for h in db if h != leader)
    rabbit_down = next(h for h in lab.roles(inv, "rabbitmq") if h not in (etcd_down,))
    api_down = lab.roles(inv, "webserver")[-1]
    worker_down = lab.roles(inv, "worker")[-1]
    flower = lab.roles(inv, "flower")
    haproxy = lab.roles(inv, "haproxy")
    survivors = [h for h in haproxy if h != vip_holder]
    stop, start = "systemctl stop {}", "systemctl start {}"
    return [
        Scenario("queue backlog", [(airflow[0], BACKLOG.format(count=1100, queue=BACKLOG_QUEUE))],
                 [(airflow[0], BACKLOG.format(count=-1, queue=BACKLOG_QUEUE))],
                 [("RabbitMQQueueDepthHigh", {})]),
        Scenario("etcd member down", [(etcd_down, stop.format("etcd"))], [(etcd_down, start.format("etcd"))],
                 [("EtcdMemberDown", {"host": etcd_down}), ("EtcdQuorumAtRisk", {})]),
        Scenario("RabbitMQ node and node_exporter down", [(rabbit_down, stop.format("rabbitmq-server")),
                                                          (rabbit_down, stop.format("prometheus-node-exporter"))],
                 [(rabbit_down, start.format("prometheus-node-exporter")),
                  (rabbit_down, start.format("rabbitmq-server"))],
                 [("RabbitMQNodeDown", {"host": rabbit_down}), ("HostDown", {"host": rabbit_down})]),
        # the replica cut off from the leader's PostgreSQL port (Patroni resumes a paused replay by itself) and
        # from the WAL archive: cut from streaming only, it replays the archive's segments ("in archive
        # recovery") and stays about one segment behind, around the threshold: the alert fired late or not at all
        Scenario("replica lag", [(replica, drill_partition.cut_script(
                                     [inv["hosts"][leader]["ip"]] + [inv["hosts"][h]["ip"] for h in lab.roles(inv, "backup")],
                                     [lab.port("postgres", "PostgreSQL: replication"),
                                      lab.port("backup", "pgBackRest TLS server on the repository")])),
                                 (leader, PSQL.format(shell_quote(
                                     "drop table if exists drill_lag; create table drill_lag as select g, "
                                     f"md5(g::text) || md5((g + 1)::text) as pad from generate_series(1, {LAG_ROWS}) g")))],
                 [(replica, drill_partition.HEAL),
                  (leader, PSQL.format(shell_quote("drop table if exists drill_lag")))],
                 [("PatroniReplicaLagHigh", {"host": replica})]),
        Scenario("schedulers down", [(h, stop.format("airflow-scheduler")) for h in airflow],
                 [(h, start.format("airflow-scheduler")) for h in airflow],
                 [("AirflowSchedulerDown", {"host": h}) for h in airflow] + [("AirflowSchedulerHeartbeatMissing", {})]),
        Scenario("triggerers down", [(h, stop.format("airflow-triggerer")) for h in lab.roles(inv, "triggerer")],
                 [(h, start.format("airflow-triggerer")) for h in lab.roles(inv, "triggerer")],
                 [("AirflowTriggererDown", {"host": h}) for h in lab.roles(inv, "triggerer")]
                 + [("AirflowTriggererHeartbeatMissing", {})]),
        Scenario("DAG processors down",
                 [(h, stop.format("airflow-dag-processor")) for h in lab.roles(inv, "dag_processor")],
                 [(h, start.format("airflow-dag-processor")) for h in lab.roles(inv, "dag_processor")],
                 [("AirflowDagProcessorHeartbeatMissing", {})]),
        Scenario("worker down", [(worker_down, stop.format("airflow-worker"))],
                 [(worker_down, start.format("airflow-worker"))], [("AirflowWorkerDown", {"host": worker_down})]),
        Scenario("api-server down", [(api_down, stop.format("airflow-webserver"))],
                 [(api_down, start.format("airflow-webserver"))],
                 [("AirflowApiServerDown", {"host": api_down})]),
        Scenario("HAProxy backend down (Flower)", [(h, stop.format("airflow-flower")) for h in flower],
                 [(h, start.format("airflow-flower")) for h in flower],
                 [("HAProxyBackendDown", {"host": h, "proxy": "flower"}) for h in survivors]),
        Scenario("HAProxy down, VIP moved", [(vip_holder, stop.format("haproxy"))],
                 [(vip_holder, start.format("haproxy"))],
                 [("ExporterDown", {"job": "haproxy", "host": vip_holder})]),
    ]


def covered(scenarios):
    return sorted({name for s in scenarios for name, _ in s.expect})


def drill_alerts(inv, timeout=900):
    """Provoke the plan's failures at once; per scenario: time to firing (every expected alert), time to the
    webhook's first notification of each, time from its undoing to no alert of it firing or pending."""
    assert_quiet(inv, timeout=300)
    monitor = start_webhook(inv)
    lab.run(monitor, f": > {WEBHOOK_LOG}")
    leader = lab.patroni_leader(inv, lab.roles(inv, "postgres")[0])
    scenarios = plan(inv, leader, lab.vip_holder(inv))
    start = time.monotonic()
    wall = time.time()
    try:
        for s in scenarios:
            for host, cmd in s.provoke:
                lab.run(host, cmd, timeout=300)
            s.started = time.monotonic()
        while any(s.resolved is None for s in scenarios):
            if time.monotonic() - start > timeout:
                late = [f"{s.name}: {'not fired' if s.fired is None else 'not resolved'}" for s in scenarios
                        if s.resolved is None]
                raise AssertionError(f"alert drill incomplete after {timeout} s: {late}; active: {active_alerts(inv)}")
            active = active_alerts(inv)
            if any(s.fired is not None and s.restored is None for s in scenarios):
                notified = {name for _, status, name, _ in notifications(inv) if status == "firing"}
            for s in scenarios:
                if s.fired is None and all(any(matches(line, n, labels) for line in active) for n, labels in s.expect):
                    s.fired = time.monotonic()
                elif s.fired is not None and s.restored is None and (
                        all(n in notified for n, _ in s.expect) or time.monotonic() - s.fired > NOTIFY_WAIT):
                    # undone once the webhook has the alerts (Alertmanager notifies after group_wait; an alert
                    # resolved before then is never sent), or NOTIFY_WAIT after firing, to be reported missing
                    for host, cmd in s.restore:
                        lab.run(host, cmd, timeout=300)
                    s.restored = time.monotonic()
                elif s.restored is not None and s.resolved is None and not any(
                        matches(line, n, labels, state) for line in active for n, labels in s.expect
                        for state in ("firing", "pending")):
                    s.resolved = time.monotonic()
            time.sleep(5)
        sent = notifications(inv)
    finally:
        for s in scenarios:  # whatever happened, undo every failure
            if s.restored is None:
                for host, cmd in s.restore:
                    lab.run(host, cmd, check=False, timeout=300)
    for s in scenarios:
        times = [min((r for r, status, name, _ in sent if status == "firing" and name == n), default=None)
                 for n, _ in s.expect]
        s.notified = None if None in times else max(times) - (wall + (s.started - start))
    missing = [s.name for s in scenarios if s.notified is None]
    for s in scenarios:
        names = ", ".join(sorted({n for n, _ in s.expect}))
        notified = "not notified" if s.notified is None else f"webhook {s.notified:.0f} s"
        print(f"FIGURE drill alerts: {s.name}: {names} firing {s.fired - s.started:.0f} s after the failure, "
              f"{notified}, resolved {s.resolved - s.restored:.0f} s after recovery", flush=True)
    rules = covered(scenarios)
    print(f"FIGURE drill alerts: {len(rules)} rules fired and resolved on the lab; covered only by promtool "
          f"test rules: {', '.join(sorted(PROMTOOL_ONLY))}", flush=True)
    quiet = assert_quiet(inv, timeout=300)
    print(f"FIGURE drill alerts: 0 alerts firing or pending {quiet:.0f} s after the last recovery", flush=True)
    assert not missing, f"no webhook notification for: {missing}"
    return {s.name: {"fired_s": s.fired - s.started, "notified_s": s.notified, "resolved_s": s.resolved - s.restored}
            for s in scenarios}


if __name__ == "__main__":
    inv = lab.inventory()
    if os.environ.get("ALERTS_QUIET_ONLY"):
        print(f"quiet after {assert_quiet(inv):.0f} s")
    else:
        print(json.dumps(drill_alerts(inv)))
