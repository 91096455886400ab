"""Failure drills on the running lab (make lab first). Each prints a FIGURE line.

    .venv/bin/python tools/lab/drill.py haproxy   # stop the active HAProxy: VIP moves, UI and DB back
    .venv/bin/python tools/lab/drill.py leader    # kill the Patroni leader's host: new leader, no committed row lost,
                                                  # Airflow still runs the smoke DAG
    .venv/bin/python tools/lab/drill.py rabbitmq  # stop one RabbitMQ node: the smoke DAG still runs; it rejoins
    .venv/bin/python tools/lab/drill.py scheduler # stop one scheduler: the other keeps scheduling
    .venv/bin/python tools/lab/drill.py worker    # kill the Celery worker running a task: the task is
                                                  # retried on the other worker and succeeds
    .venv/bin/python tools/lab/drill.py dags      # a broken DAG set refused with nothing changed; a new one
                                                  # parsed on both processors; the same again: 0 changes; rollback
    .venv/bin/python tools/lab/drill.py security  # every listening port is in the port map for the host's roles;
                                                  # flows the port map does not allow are refused
    .venv/bin/python tools/lab/drill.py secrets   # no secret in the master's job cache or logs, nor on a host
                                                  # outside its services' files (owner/service group only)
    .venv/bin/python tools/lab/drill.py logs      # the log host stopped: every host's messages (authpriv too) all
                                                  # arrive once it is back, root-only; delivery delay p95
    .venv/bin/python tools/lab/drill.py auth      # every lab LDAP user logs in through the VIP with its role's
                                                  # rights, the others are refused; Flower wants a login;
                                                  # the login page is FAB's (headless Chromium)
    .venv/bin/python tools/lab/drill.py monitoring # every Prometheus target up; a RabbitMQ node stopped
                                                   # fires RabbitMQNodeDown in Prometheus and Alertmanager
    .venv/bin/python tools/lab/drill.py add_worker # day 2: a new host in the lab's inventory, vagrant up,
                                                   # key accepted, orch.add_worker; it runs the smoke task
    .venv/bin/python tools/lab/drill.py throughput # fan-out tasks/s and chain latency (the bench DAGs)
    .venv/bin/python tools/lab/drill.py card      # card batches through FTPS/SFTP/SSH, exactly once (card_kills: under
                                                  # a worker kill and a leader kill)
    .venv/bin/python tools/lab/drill.py alerts    # every alert rule containers can provoke fires, notifies, resolves
    .venv/bin/python tools/lab/drill.py sync_cost # pgbench through the VIP with synchronous_mode on, then off
    .venv/bin/python tools/lab/drill.py housekeeping # airflow db clean once on its one host, the task-log
                                                     # cleanup on every Airflow host, orch.preflight passes
    .venv/bin/python tools/lab/drill.py partition # network cuts with a continuous writer: acknowledged commits lost
    .venv/bin/python tools/lab/drill.py restore   # the timers' diff backup, orch.backup_verify, then orch.restore
                                                  # to a time T: rows before T all back, none after, smoke DAG
    .venv/bin/python tools/lab/drill.py day2      # orch.airflow_rolling_restart and orch.rolling_reboot of two
                                                  # hosts while smoke runs go on: none fails
    .venv/bin/python tools/lab/drill.py upgrade   # orch.airflow_upgrade to the previous pinned release, then back
                                                  # to the current one under card batches and smoke runs
    .venv/bin/python tools/lab/drill.py autoscale # a standby worker started by a burst's backlog alert through
                                                  # salt-api and the reactor, stopped again when idle
    .venv/bin/python tools/lab/drill.py quiet     # no alert firing or pending
    .venv/bin/python tools/lab/drill.py all       # all of them, add_worker first, so every other drill covers the
                                                  # new host; no alert when healthy; after each disruptive drill
                                                  # the fan-out must run at 60% of its first figure

Commands run in the containers with lxc-attach (not Salt: the master may be
the host that dies). The UI/API is reached from this machine through the VIP.
"""

import argparse
import ipaddress
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import vagrant
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "lab"))
import inventory as lab_inventory  # noqa: E402
from inventory import lab_tls  # noqa: E402  (tools/lab/inventory.py)


def inventory():
    """The lab's inventory (tools/lab/inventory.py)."""
    return lab_inventory.load(os.environ.get("AIRFLOW_HA_TOPOLOGY", "compact"))


def port(role, purpose):
    """The TCP port of ``role`` whose purpose (pillar/ports.sls, the one port map) contains ``purpose``."""
    tls = lab_tls()[0]
    for entry in yaml.safe_load((REPO / "pillar" / "ports.sls").read_text())["ports"]:
        if entry["role"] == role and purpose in entry["purpose"] and entry.get("tls", tls) == tls:
            return int(entry["port"])
    raise KeyError(f"pillar/ports.sls: no {role} port for {purpose!r}")


def container(host):
    return (REPO / ".vagrant" / "machines" / host / "lxc" / "id").read_text().strip()


def run(host, script, check=True, timeout=120):
    proc = subprocess.run(["lxc-attach", "-n", container(host), "--", "bash", "-c", script], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode:
        raise RuntimeError(f"{host}: {script!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc


def module_on(host, name):
    """One of the project's execution modules (_modules/NAME.py), its commands run in ``host``'s container."""
    import importlib
    import shlex

    module = importlib.import_module(f"_modules.{name}")

    def run_all(cmd, stdin=None, timeout=None, **_kwargs):
        script = shlex.join(cmd) if isinstance(cmd, (list, tuple)) else cmd
        proc = subprocess.run(["lxc-attach", "-n", container(host), "--", "bash", "-c", script], input=stdin,
                              capture_output=True, text=True, timeout=timeout or 120)
        return {"retcode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    module.__salt__ = {"cmd.run_all": run_all}
    return module


def running(host):
    out = subprocess.run(["lxc-info", "-s", "-n", container(host)], capture_output=True, text=True).stdout
    return "RUNNING" in out


def roles(inv, role):
    return [h for h, spec in inv["hosts"].items() if role in spec["roles"]]


def vip_holder(inv):
    vip = inv["vips"]["main"]["ip"]
    for host in roles(inv, "haproxy"):
        if vip + "/" in run(host, "ip -4 -o addr show").stdout:
            return host
    return None


# a write through HAProxy's leader port, from an Airflow host, with Airflow's own DB URL (never printed)
WRITE = r"""set -a; . /etc/default/airflow; set +a
/opt/airflow/venv/bin/python - <<'PY'
import os, sqlalchemy
url = os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
engine = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
with engine.begin() as c:
    c.exec_driver_sql("CREATE TABLE IF NOT EXISTS lab_drill (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
    print(c.exec_driver_sql("INSERT INTO lab_drill DEFAULT VALUES RETURNING id").scalar())
PY"""
COUNT = WRITE.replace(
    'c.exec_driver_sql("INSERT INTO lab_drill DEFAULT VALUES RETURNING id").scalar()',
    'c.exec_driver_sql("SELECT count(*) FROM lab_drill").scalar()')


def db_write(host, check=False):
    proc = run(host, WRITE, check=check, timeout=30)
    return int(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 and proc.stdout.strip() else None


def api_base(inv):
    """The UI/API on the VIP (https with TLS: HAProxy's 443, verified against the cluster CA) and the CA file."""
    tls, ca_file = lab_tls()
    vip = inv["vips"]["main"]["ip"]
    return (f"https://{vip}:443", ca_file) if tls else (f"http://{vip}", None)


def ui_healthy(inv):
    import ssl

    base, ca_file = api_base(inv)
    url = f"{base}/api/v2/monitor/health"
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(url, timeout=3, context=context) as resp:
            return json.loads(resp.read()).get("metadatabase", {}).get("status") == "healthy"
    except (OSError, ValueError):
        return False


def wait(check, timeout, what):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not within {timeout} s")


def drill_haproxy(inv):
    active = vip_holder(inv)
    assert active, "no host holds the main VIP"
    client = next(h for h in roles(inv, "scheduler"))
    assert db_write(client) is not None and ui_healthy(inv)
    run(active, "systemctl stop haproxy")
    stopped = time.monotonic()
    try:
        moved = wait(lambda: vip_holder(inv) not in (None, active), 60, "VIP move")
        wait(lambda: ui_healthy(inv), 60, "UI/API through the VIP")
        wait(lambda: db_write(client) is not None, 60, "DB write through the VIP")
        total = time.monotonic() - stopped
    finally:
        run(active, "systemctl start haproxy")
    print(f"FIGURE drill haproxy: stopped HAProxy on {active}; VIP on {vip_holder(inv)} after {moved:.1f} s, "
          f"UI/API and DB writes through the VIP again {total:.1f} s after the stop", flush=True)
    return {"vip_moved_s": moved, "recovered_s": total}


def patroni_leader(inv, via):
    """The Patroni leader as ``via`` sees it (the project's patroni module)."""
    leader = module_on(via, "patroni").leader(config="/etc/patroni/config.yml")
    if not leader:
        raise RuntimeError(f"no running Patroni leader seen from {via}")
    return leader


def airflow_api(inv):
    """The execution module and the REST API behind the VIP, called from this machine."""
    import _modules.airflow_ha as airflow_ha

    secrets = yaml.safe_load((REPO / ".secrets" / "airflow_ha_secrets.sls").read_text())["secrets"]
    airflow_ha.__pillar__ = {}
    url, ca_file = api_base(inv)
    return airflow_ha, {"url": url, "ca_file": ca_file, "password": secrets["airflow"]["admin_password"]}


def audit_log(inv, since, auth=None):
    """Airflow's audit log (REST API /eventLogs through the VIP, every page) since ``since`` (epoch): its rows.
    ``auth``: the Authorization header to send (default: the break-glass admin's, a login of its own)."""
    airflow_ha, api = airflow_api(inv)
    auth = auth or airflow_ha._auth(api["url"], "admin", api["password"], 3, api["ca_file"])
    after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since - 1))
    return airflow_ha._pages(api["url"], f"/api/v2/eventLogs?after={after}", "event_logs", auth, api["ca_file"])


def smoke(inv):
    """The orchestrate's smoke test, from this machine (the Salt master may be the dead host)."""
    airflow_ha, api = airflow_api(inv)
    return airflow_ha.smoke_test(timeout=300, **api)


def drill_worker(inv, seconds=45):
    """Kill the Celery worker (every process of its unit) while it runs a task of airflow_ha_drill."""
    airflow_ha, api = airflow_api(inv)
    run_id = airflow_ha.trigger_dag("airflow_ha_drill", conf={"seconds": seconds}, **api)

    def running_task():
        ti = airflow_ha.dag_run("airflow_ha_drill", run_id, **api)["tasks"]["hold_worker_slot"]
        return ti if ti["state"] == "running" and ti["hostname"] else None

    wait(running_task, 120, "the drill task running on a worker")
    first = running_task()
    host = first["hostname"].split(".")[0]
    time.sleep(5)  # mid-task
    run(host, "systemctl kill --signal=SIGKILL airflow-worker; systemctl stop airflow-worker")
    killed, killed_at = time.monotonic(), time.time()  # the containers share this machine's clock
    try:
        final = airflow_ha.wait_dag_run("airflow_ha_drill", run_id, timeout=600, **api)
    finally:
        run(host, "systemctl start airflow-worker")
    recovered = time.monotonic() - killed
    ti = final["tasks"]["hold_worker_slot"]
    lost = [t for t, x in final["tasks"].items() if x["state"] != "success"]
    assert ti["hostname"].split(".")[0] != host, f"the retry ran on the killed worker's host {host}: {ti}"
    retry_started = datetime.fromisoformat(ti["start_date"].replace("Z", "+00:00")).timestamp() - killed_at
    print(f"FIGURE drill worker: killed airflow-worker on {host} during try {first['try_number']} of a {seconds} s "
          f"task; try {ti['try_number']} started on {ti['hostname']} {retry_started:.0f} s after the kill (heartbeat "
          f"timeout + detection + retry delay), DAG run {final['state']} {recovered:.0f} s after it; tasks lost "
          f"{len(lost)}", flush=True)
    return {"recovered_s": recovered, "retry_started_s": retry_started, "killed_on": host,
            "retried_on": ti["hostname"], "try": ti["try_number"]}


def next_host(inv, prefix="worker"):
    """A free name and the first free address after the inventory's hosts (VIPs skipped)."""
    used = {h["ip"] for h in inv["hosts"].values()} | {v["ip"] for v in inv.get("vips", {}).values()}
    last = max(ipaddress.ip_address(h["ip"]) for h in inv["hosts"].values())
    ip = next(str(a) for a in ipaddress.ip_network(inv["network"]).hosts() if a > last and str(a) not in used)
    name = next(f"{prefix}{n}" for n in range(1, 100) if f"{prefix}{n}" not in inv["hosts"])
    return name, ip


def vagrant_up(name):
    """`vagrant up` of one machine through python-vagrant, with the environment tools/lab/up.sh gives
    Vagrant; its output goes to .lab/vagrant-<name>.log. Raises unless Vagrant then reports it running."""
    env = dict(os.environ, AIRFLOW_HA_LAB_VENV=str(REPO / ".venv"), AIRFLOW_HA_LAB_PYTHON=sys.base_prefix,
               AIRFLOW_HA_LAB_WHEELS="/var/cache/airflow-ha/wheels")
    key = REPO / ".lab" / "pki" / name
    if not key.with_suffix(".pem").exists():
        subprocess.run(["openssl", "genrsa", "-out", f"{key}.pem", "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", f"{key}.pem", "-pubout", "-out", f"{key}.pub"], check=True,
                       capture_output=True)
    log = REPO / ".lab" / f"vagrant-{name}.log"
    machines = vagrant.Vagrant(root=str(REPO), env=env, out_cm=lambda: open(log, "a"), err_cm=lambda: open(log, "a"))
    try:
        machines.up(vm_name=name, provider="lxc")
    except subprocess.CalledProcessError as exc:
        raise RuntimeError(f"vagrant up {name} (exit {exc.returncode}): {log.read_text()[-2000:]}") from exc
    state = machines.status(vm_name=name)[0].state
    if state != machines.RUNNING:
        raise RuntimeError(f"vagrant up {name} returned, but Vagrant reports it {state}: {log}")


def drill_add_worker(inv):
    """Day 2 as an operator does it: the lab's inventory gains a worker host, Vagrant brings the machine
    up with its key pre-seeded on the master, orch.add_worker joins it; with the other workers stopped, the
    smoke DAG's task must run on the new host."""
    name, ip = next_host(inv)
    master = next(iter(inv["hosts"]))
    inv["hosts"][name] = {"ip": ip, "roles": ["worker"]}
    lab_inventory.save(inv)
    # its TLS certificate (the other hosts' material is kept)
    subprocess.run([sys.executable, str(REPO / "tools" / "gen_secrets.py"), "--inventory",
                    str(lab_inventory.LAB_INVENTORY)], cwd=REPO, check=True, capture_output=True)
    started = time.monotonic()
    vagrant_up(name)
    up = time.monotonic() - started
    # its key pre-seeded on the master, as make lab did for the first hosts
    run(master, f"install -m 0644 /srv/airflow-ha/.lab/pki/{name}.pub /etc/salt/pki/master/minions/{name}")
    joined = time.monotonic()
    proc = run(master, "salt-run state.orchestrate orch.add_worker pillar='" + json.dumps({"host": name}) + "'",
               check=False, timeout=1800)
    orchestrate = time.monotonic() - joined
    if proc.returncode or not re.search(r"Failed:\s+0\n", proc.stdout):
        raise RuntimeError(f"orch.add_worker {name}: exit {proc.returncode}\n{proc.stdout[-4000:]}")
    others = [h for h in roles(inv, "worker") if h != name]
    for host in others:
        run(host, "systemctl stop airflow-worker", timeout=180)
    try:
        result = smoke(inv)
    finally:
        for host in others:
            run(host, "systemctl start airflow-worker")
    ran_on = list(result["tasks"].values())[0]["hostname"].split(".")[0]
    print(f"FIGURE drill add_worker: {name} ({ip}) added to the lab's inventory; vagrant up {up:.0f} s, "
          f"orch.add_worker {orchestrate:.0f} s; with the other workers "
          f"stopped the smoke DAG {result['state']} in {result['seconds']} s, its task on {ran_on}", flush=True)
    assert ran_on == name, f"the smoke task ran on {ran_on}, not on the new worker {name}"
    return {"host": name, "vagrant_up_s": up, "orchestrate_s": orchestrate, "smoke": result["state"],
            "ran_on": ran_on}


def drill_leader(inv):
    members = roles(inv, "postgres")
    client = roles(inv, "scheduler")[0]
    leader = patroni_leader(inv, members[0])
    survivors = [m for m in members if m != leader]
    db_write(client, check=True)
    before = int(run(client, COUNT).stdout.strip().splitlines()[-1])
    subprocess.run(["lxc-stop", "-k", "-n", container(leader)], check=True)  # the host dies
    killed = time.monotonic()
    try:
        failover = wait(lambda: db_write(client) is not None, 180, "a write through the VIP on a new leader")
        new_leader = patroni_leader(inv, survivors[0])
        rows = int(run(client, COUNT).stdout.strip().splitlines()[-1])
        run_ = smoke(inv)
    finally:
        subprocess.run(["lxc-start", "-n", container(leader)], check=True)
    lost = max(0, before + 1 - rows)  # every row committed before the kill, plus the failover write
    print(f"FIGURE drill leader: killed {leader} (Patroni leader host); first write through the VIP on {new_leader} "
          f"after {failover:.1f} s; committed rows lost {lost}; smoke DAG {run_['state']} in {run_['seconds']} s "
          f"on {list(run_['tasks'].values())[0]['hostname']}", flush=True)
    wait(lambda: running(leader), 60, f"{leader} back")
    return {"failover_s": failover, "lost": lost, "smoke": run_["state"], "new_leader": new_leader}


def drill_service(inv, role, service, what, host=None):
    """Stop ``service`` on ``host`` (default: the first host of ``role``); the smoke DAG must still succeed."""
    host = host or roles(inv, role)[0]
    run(host, f"systemctl stop {service}")
    try:
        started = time.monotonic()
        result = smoke(inv)
        elapsed = time.monotonic() - started
    finally:
        run(host, f"systemctl start {service}")
    ran_on = list(result["tasks"].values())[0]["hostname"]
    failed = [t for t, ti in result["tasks"].items() if ti["state"] != "success"]
    print(f"FIGURE drill {what}: stopped {service} on {host}; smoke DAG {result['state']} in {elapsed:.1f} s "
          f"(task on {ran_on}), tasks not successful {len(failed)}", flush=True)
    return {"smoke": result["state"], "seconds": elapsed, "host": host}


def celery_queue_leader(inv):
    """The host whose RabbitMQ node leads the Celery quorum queue (``default`` on Airflow's vhost)."""
    vhost = yaml.safe_load((REPO / "salt" / "airflow" / "defaults.yaml").read_text())["amqp_vhost"]
    queues = module_on(roles(inv, "rabbitmq")[0], "rabbitmq_ha").list_queues(vhost=vhost)
    return next(q["leader"] for q in queues if q["name"] == "default").split("@", 1)[1]


def rabbitmq_whole(inv):
    """True when every RabbitMQ node runs and sees every other one, with no partition recorded anywhere."""
    nodes = roles(inv, "rabbitmq")
    expected = sorted(f"rabbit@{n}" for n in nodes)
    for node in nodes:
        try:
            status = module_on(node, "rabbitmq_ha").cluster_status()
        except Exception:  # pylint: disable=broad-except  # paused by pause_minority, or starting again
            return False
        if sorted(status["running_nodes"]) != expected or status["partitions"]:
            return False
    return True


def drill_rabbitmq(inv):
    """Stop the RabbitMQ node leading the Celery queue (a quorum queue: a new leader is elected); the smoke
    DAG must still succeed, and the node rejoins."""
    leader = celery_queue_leader(inv)
    out = drill_service(inv, "rabbitmq", "rabbitmq-server", "rabbitmq", host=leader)
    wait(lambda: rabbitmq_whole(inv), 180, "RabbitMQ node back")
    return dict(out, queue_leader=leader)


PROMETHEUS_GET = """python3 - <<'PY'
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s%s", timeout=5).read().decode())
PY"""


def prometheus_get(inv, port, path):
    """GET on the monitoring host itself (its firewall admits only the cluster's flows)."""
    return json.loads(run(roles(inv, "monitoring")[0], PROMETHEUS_GET % (port, path), timeout=30).stdout)


def targets_down(inv):
    active = prometheus_get(inv, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]
    return active, [f"{t['labels']['job']} {t['labels']['instance']}: {t.get('lastError') or t['health']}"
                    for t in active if t["health"] != "up"]


def firing(inv, alert, instance_prefix):
    alerts = prometheus_get(inv, 9090, "/api/v1/alerts")["data"]["alerts"]
    return [a for a in alerts if a["labels"]["alertname"] == alert and a["state"] == "firing"
            and a["labels"].get("instance", "").startswith(instance_prefix)]


def alertmanager_has(inv, alert):
    return any(a["labels"]["alertname"] == alert for a in prometheus_get(inv, 9093, "/api/v2/alerts"))


def drill_monitoring(inv):
    """Every target up; stopping a RabbitMQ node fires RabbitMQNodeDown (rule `for: 1m`), which resolves."""
    try:
        waited = wait(lambda: not targets_down(inv)[1], 180, "every Prometheus target up")
    except TimeoutError:
        raise AssertionError(f"Prometheus targets down: {targets_down(inv)[1]}") from None
    active, _ = targets_down(inv)
    # a target can be up while its exporter cannot read the database
    pg_up = prometheus_get(inv, 9090, "/api/v1/query?query=pg_up")["data"]["result"]
    assert sorted(r["value"][1] for r in pg_up) == ["1"] * len(roles(inv, "postgres")), f"pg_up: {pg_up}"
    host = roles(inv, "rabbitmq")[0]
    instance = inv["hosts"][host]["ip"]
    run(host, "systemctl stop rabbitmq-server")
    try:
        fired = wait(lambda: firing(inv, "RabbitMQNodeDown", instance), 240, "RabbitMQNodeDown firing")
        notified = wait(lambda: alertmanager_has(inv, "RabbitMQNodeDown"), 60, "RabbitMQNodeDown in Alertmanager")
    finally:
        run(host, "systemctl start rabbitmq-server")
    resolved = wait(lambda: not firing(inv, "RabbitMQNodeDown", instance), 240, "RabbitMQNodeDown resolved")
    print(f"FIGURE drill monitoring: {len(active)} Prometheus targets up ({waited:.0f} s wait); stopped "
          f"rabbitmq-server on {host}: RabbitMQNodeDown firing after {fired:.0f} s (rule for: 1m), in Alertmanager "
          f"{fired + notified:.0f} s, resolved {resolved:.0f} s after the restart", flush=True)
    return {"targets_up": len(active), "fired_s": fired, "resolved_s": resolved}


def port_map_tcp(roles_of_host):
    """TCP ports pillar/ports.sls opens on a host with these roles (entries marked `tls` as the lab's TLS is)."""
    tls = lab_tls()[0]
    allowed = set()
    for entry in yaml.safe_load((REPO / "pillar" / "ports.sls").read_text())["ports"]:
        if entry.get("tls", tls) != tls:
            continue
        if entry["proto"] == "tcp" and entry["role"] in ("all", *roles_of_host):
            low, _, high = str(entry["port"]).partition("-")
            allowed.update(range(int(low), int(high or low) + 1))
    return allowed


def listening_tcp(host):
    """Ports with a listener on an address other than loopback."""
    ports = set()
    for line in run(host, "ss -lntH").stdout.splitlines():
        address, port = line.split()[3].rsplit(":", 1)
        if not (address.startswith("127.") or address == "[::1]"):
            ports.add(int(port))
    return ports


CONNECT = "python3 -c 'import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 3)' {} {}"


def can_connect(source, ip, port):
    """A TCP connection from host ``source`` (None: this machine, outside the inventory)."""
    if source is None:
        import socket

        try:
            socket.create_connection((ip, port), 3).close()
            return True
        except OSError:
            return False
    return run(source, CONNECT.format(ip, port), check=False, timeout=30).returncode == 0


# Protocol-level refusals with TLS on, run from a host the firewall admits (the
# second etcd/PostgreSQL member) against the first: each command must fail
TLS_REFUSALS = [
    ("etcd without a client certificate", "curl -sS --max-time 5 --cacert {pki}/ca.crt https://{ip}:2379/health"),
    ("etcd over plain http", "curl -sS --max-time 5 http://{ip}:2379/health"),
    ("Patroni's REST API over plain http", "curl -sS --max-time 5 http://{ip}:8008/health"),
    ("PostgreSQL without TLS (sslmode=disable)",
     "psql 'host={ip} port=5432 sslmode=disable user=airflow dbname=airflow connect_timeout=3' -c 'select 1' "
     "</dev/null 2>&1 | grep -q 'no encryption' && exit 1 || exit 0"),
]
TLS_CONTROL = ("etcd with the member's client certificate",
               "curl -sS --max-time 5 --cacert {pki}/ca.crt --cert {pki}/host.crt --key {pki}/etcd.key "
               "https://{ip}:2379/health | grep -q '\"health\":\"true\"'")


def tls_refusals(inv):
    """(refused, wrong): the TLS_REFUSALS that failed as they must, and what did not."""
    target, source = roles(inv, "postgres")[:2]
    pki = yaml.safe_load((REPO / "salt" / "pki" / "defaults.yaml").read_text())["dir"]
    args = {"ip": inv["hosts"][target]["ip"], "pki": pki}
    wrong = [f"{what} ({source} -> {target}) accepted" for what, cmd in TLS_REFUSALS
             if run(source, cmd.format(**args), check=False).returncode == 0]
    what, cmd = TLS_CONTROL
    if run(source, cmd.format(**args), check=False).returncode:
        wrong.append(f"{what} ({source} -> {target}) refused")
    return len(TLS_REFUSALS) - len([w for w in wrong if w.endswith("accepted")]), wrong


def drill_security(inv):
    """ss -lnt on every host against the port map; disallowed flows refused, allowed ones open."""
    unexpected = {}
    for host, spec in inv["hosts"].items():
        extra = listening_tcp(host) - port_map_tcp(spec["roles"])
        if extra:
            unexpected[host] = sorted(extra)
    assert not unexpected, f"listening ports outside the port map (pillar/ports.sls): {unexpected}"
    etcd, airflow_host = roles(inv, "etcd")[0], roles(inv, "scheduler")[0]
    rabbit, postgres = roles(inv, "rabbitmq")[0], roles(inv, "postgres")[0]
    ip = {h: spec["ip"] for h, spec in inv["hosts"].items()}
    tls = lab_tls()[0]
    amqp = 5671 if tls else 5672  # with TLS RabbitMQ has no plain AMQP listener
    refused = [  # (from, to, port, what): None is this machine, in the admin network but no cluster role
        (airflow_host, etcd, 2379, "etcd client from an Airflow host"),
        (airflow_host, etcd, 2380, "etcd peer from an Airflow host"),
        (airflow_host, rabbit, 25672, "Erlang distribution from an Airflow host"),
        (None, postgres, 5432, "PostgreSQL from outside the cluster"),
        (None, rabbit, amqp, "AMQP from outside the cluster"),
        (None, etcd, 2379, "etcd from outside the cluster"),
    ]
    if tls:
        refused.append((airflow_host, rabbit, 5672, "plain AMQP (TLS only) from an Airflow host"))
    allowed = [
        (airflow_host, postgres, 5432, "PostgreSQL from HAProxy's host"),
        (airflow_host, rabbit, amqp, "AMQP from an Airflow host"),
        (None, inv["vips"]["main"]["ip"], 80, "UI through the VIP from the admin network"),
    ]
    if tls:
        allowed.append((None, inv["vips"]["main"]["ip"], 443, "UI over https through the VIP"))
    opened = [(src, dst, port, what) for src, dst, port, what in refused if can_connect(src, ip.get(dst, dst), port)]
    wrong = [f"{what} ({src or 'this machine'} -> {dst}:{port}) open" for src, dst, port, what in opened]
    refused_seen = len(refused) - len(opened)
    wrong += [f"{what} ({src or 'this machine'} -> {dst}:{port}) refused" for src, dst, port, what in allowed
              if not can_connect(src, ip.get(dst, dst), port)]
    tls_refused, tls_wrong = tls_refusals(inv) if tls else (0, [])
    wrong += tls_wrong
    assert not wrong, "; ".join(wrong)
    print(f"FIGURE drill security: {len(inv['hosts'])} hosts listen only on port-map ports; {refused_seen} of "
          f"{len(refused)} disallowed flows refused, {len(allowed)} allowed flows open; {tls_refused} connections without "
          f"TLS or without a client certificate refused", flush=True)
    return {"hosts": len(inv["hosts"]), "flows_to_refuse": len(refused), "refused": refused_seen,
            "allowed": len(allowed), "tls_refused": tls_refused}


DRILLS = ["add_worker", "throughput", "card", "haproxy", "rabbitmq", "scheduler", "worker", "dags", "security",
          "secrets", "logs", "task_logs", "auth", "monitoring", "alerts", "sync_cost",
          "housekeeping", "partition", "card_kills", "day2", "upgrade", "autoscale", "restore",
          "leader"]
# after these the fan-out must be back to RECOVERED_SHARE of the first figure, with no restart: the
# database failovers, where throughput once collapsed (a fan-out takes ~2 min on the lab). Not after the
# HAProxy and RabbitMQ drills (115% and 144% of before when they were rechecked; make bench measures a broker
# stop under load) nor after restore (leader, after it in `all`, is rechecked)
DISRUPTIVE = {"partition", "card_kills", "leader"}


def run_drill(name, inv, args):
    import drill_alerts
    import drill_auth
    import drill_card
    import drill_dags
    import drill_partition
    import drill_restore
    import drill_throughput

    if name == "add_worker":
        return drill_add_worker(inv)
    if name == "throughput":
        return drill_throughput.measure(inv, "before any failure")
    if name == "card":
        return drill_card.drill_card(inv, batches=args.batches, kills=False)
    if name == "card_kills":
        return drill_card.drill_card(inv, batches=args.batches, kills=True)
    if name == "upgrade":
        import drill_upgrade
        return drill_upgrade.drill_upgrade(inv)
    if name == "autoscale":
        import drill_autoscale
        return drill_autoscale.drill_autoscale(inv)
    if name == "haproxy":
        return drill_haproxy(inv)
    if name == "rabbitmq":
        return drill_rabbitmq(inv)
    if name == "scheduler":
        return drill_service(inv, "scheduler", "airflow-scheduler", "scheduler")
    if name == "worker":
        return drill_worker(inv)
    if name == "dags":
        return drill_dags.drill_dags(inv)
    if name == "security":
        return drill_security(inv)
    if name == "secrets":
        import drill_secrets

        return drill_secrets.drill_secrets(inv)
    if name == "logs":
        import drill_logs

        return drill_logs.drill_logs(inv)
    if name == "task_logs":
        import drill_task_logs

        return drill_task_logs.drill_task_logs(inv)
    if name == "auth":
        return drill_auth.drill_auth(inv)
    if name == "monitoring":
        return drill_monitoring(inv)
    if name == "alerts":
        return drill_alerts.drill_alerts(inv)
    if name == "housekeeping":
        import drill_housekeeping

        return drill_housekeeping.drill_housekeeping(inv)
    if name == "day2":
        import drill_day2

        return drill_day2.drill_day2(inv)
    if name == "sync_cost":
        import drill_sync_cost

        return drill_sync_cost.drill_sync_cost(inv)
    if name == "partition":
        return drill_partition.drill_partition(inv, only=args.only)
    if name == "restore":
        return drill_restore.drill_restore(inv)
    if name == "leader":
        return drill_leader(inv)
    raise ValueError(name)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("drill", choices=DRILLS + ["quiet", "all"])
    parser.add_argument("--only", nargs="*", help="partition: only these scenarios")
    parser.add_argument("--batches", type=int, default=50, help="card: batches to upload")
    parser.add_argument("--skip", nargs="*", default=[], choices=DRILLS, help="all: leave these drills out")
    args = parser.parse_args(argv)
    import drill_alerts
    import drill_throughput

    inv = inventory()
    results = {}
    if args.drill == "quiet":
        results["quiet_s"] = drill_alerts.assert_quiet(inv)
    for name in DRILLS:
        if args.drill not in (name, "all") or name in args.skip:
            continue
        if args.drill == "all" and name == "throughput":
            # no alert firing or pending on the healthy cluster, before any failure
            results["quiet_s"] = drill_alerts.assert_quiet(inv)
        started = time.monotonic()
        results[name] = run_drill(name, inv, args)
        if name == "add_worker":
            inv = inventory()
        if args.drill == "all" and name in DISRUPTIVE:
            results[f"throughput_after_{name}"] = drill_throughput.recovered(inv, results["throughput"], name)
        # where the lab test's time goes
        print(f"FIGURE drill {name} took {time.monotonic() - started:.0f} s", flush=True)
    if args.drill == "all":
        results["quiet_after_s"] = drill_alerts.assert_quiet(inv)
    print(json.dumps(results, default=str))
    return results


if __name__ == "__main__":
    main()
