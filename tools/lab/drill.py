"""Failure drills on the running lab (make lab first). Each prints a FIGURE line.

    .venv/bin/python tools/lab/drill.py haproxy   # stop the active HAProxy: VIP moves, UI and DB back
    .venv/bin/python tools/lab/drill.py leader    # kill the Patroni leader's host: new leader, no committed row lost,
                                                  # Airflow still runs the smoke DAG
    .venv/bin/python tools/lab/drill.py rabbitmq  # stop one RabbitMQ node: the smoke DAG still runs; it rejoins
    .venv/bin/python tools/lab/drill.py scheduler # stop one scheduler: the other keeps scheduling
    .venv/bin/python tools/lab/drill.py worker    # kill the Celery worker running a task: the task is
                                                  # retried on the other worker and succeeds
    .venv/bin/python tools/lab/drill.py security  # every listening port is in the port map for the host's roles;
                                                  # flows the port map does not allow are refused
    .venv/bin/python tools/lab/drill.py monitoring # every Prometheus target up; a RabbitMQ node stopped
                                                   # fires RabbitMQNodeDown in Prometheus and Alertmanager
    .venv/bin/python tools/lab/drill.py add_worker # day 2: a new host in the lab's inventory, vagrant up,
                                                   # key accepted, orch.add_worker; it runs the smoke task
    .venv/bin/python tools/lab/drill.py all       # add_worker first, so every other drill covers the new host

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
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools" / "lab"))
import inventory as lab_inventory  # noqa: E402
from inventory import lab_tls  # noqa: E402  (tools/lab/inventory.py)


def inventory():
    """The lab's inventory (tools/lab/inventory.py)."""
    return lab_inventory.load(os.environ.get("AIRFLOW_HA_TOPOLOGY", "compact"))


def container(host):
    return (REPO / ".vagrant" / "machines" / host / "lxc" / "id").read_text().strip()


def run(host, script, check=True, timeout=120):
    proc = subprocess.run(["lxc-attach", "-n", container(host), "--", "bash", "-c", script], capture_output=True,
                          text=True, timeout=timeout)
    if check and proc.returncode:
        raise RuntimeError(f"{host}: {script!r} exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
    return proc


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
    out = run(via, "patronictl -c /etc/patroni/config.yml list -f json").stdout
    return next(m["Member"] for m in json.loads(out) if m["Role"].lower() in ("leader", "master", "primary"))


def airflow_api(inv):
    """The execution module and the REST API behind the VIP, called from this machine."""
    import _modules.airflow_ha as airflow_ha

    secrets = yaml.safe_load((REPO / ".secrets" / "airflow_ha_secrets.sls").read_text())["secrets"]
    airflow_ha.__pillar__ = {}
    url, ca_file = api_base(inv)
    return airflow_ha, {"url": url, "ca_file": ca_file, "password": secrets["airflow"]["admin_password"]}


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
    killed = time.monotonic()
    try:
        final = airflow_ha.wait_dag_run("airflow_ha_drill", run_id, timeout=600, **api)
    finally:
        run(host, "systemctl start airflow-worker")
    recovered = time.monotonic() - killed
    ti = final["tasks"]["hold_worker_slot"]
    assert ti["hostname"].split(".")[0] != host, f"the retry ran on the killed worker's host {host}: {ti}"
    print(f"FIGURE drill worker: killed airflow-worker on {host} during try {first['try_number']} of a {seconds} s "
          f"task; retried as try {ti['try_number']} on {ti['hostname']}, DAG run {final['state']} {recovered:.0f} s "
          f"after the kill (heartbeat timeout + retry delay + the whole task again); tasks lost 0", flush=True)
    return {"recovered_s": recovered, "killed_on": host, "retried_on": ti["hostname"], "try": ti["try_number"]}


def next_host(inv, prefix="worker"):
    """A free name and the first free address after the inventory's hosts (VIPs skipped)."""
    used = {h["ip"] for h in inv["hosts"].values()} | {v["ip"] for v in inv.get("vips", {}).values()}
    last = max(ipaddress.ip_address(h["ip"]) for h in inv["hosts"].values())
    ip = next(str(a) for a in ipaddress.ip_network(inv["network"]).hosts() if a > last and str(a) not in used)
    name = next(f"{prefix}{n}" for n in range(1, 100) if f"{prefix}{n}" not in inv["hosts"])
    return name, ip


def vagrant_up(name):
    """`vagrant up` of one machine, with the environment tools/lab/up.sh gives Vagrant."""
    env = dict(os.environ, AIRFLOW_HA_LAB_VENV=str(REPO / ".venv"), AIRFLOW_HA_LAB_PYTHON=sys.base_prefix,
               AIRFLOW_HA_LAB_WHEELS="/var/cache/airflow-ha/wheels")
    key = REPO / ".lab" / "pki" / name
    if not key.with_suffix(".pem").exists():
        subprocess.run(["openssl", "genrsa", "-out", f"{key}.pem", "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", f"{key}.pem", "-pubout", "-out", f"{key}.pub"], check=True,
                       capture_output=True)
    proc = subprocess.run(["vagrant", "up", name, "--provider=lxc"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    if proc.returncode:
        raise RuntimeError(f"vagrant up {name}: {(proc.stdout + proc.stderr)[-2000:]}")


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


def drill_service(inv, role, service, what):
    """Stop ``service`` on the first host of ``role``; the smoke DAG must still succeed."""
    host = roles(inv, role)[0]
    run(host, f"systemctl stop {service}")
    try:
        started = time.monotonic()
        result = smoke(inv)
        elapsed = time.monotonic() - started
    finally:
        run(host, f"systemctl start {service}")
    ran_on = list(result["tasks"].values())[0]["hostname"]
    print(f"FIGURE drill {what}: stopped {service} on {host}; smoke DAG {result['state']} in {elapsed:.1f} s "
          f"(task on {ran_on}), lost runs 0", flush=True)
    return {"smoke": result["state"], "seconds": elapsed, "host": host}


def drill_rabbitmq(inv):
    out = drill_service(inv, "rabbitmq", "rabbitmq-server", "rabbitmq")
    nodes = roles(inv, "rabbitmq")
    survivor = nodes[1]
    wait(lambda: all(f"rabbit@{n}" in run(survivor, "rabbitmqctl cluster_status --formatter json").stdout
                     .split('"running_nodes":')[1].split("]")[0] for n in nodes), 180, "RabbitMQ node back")
    return out


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
    wrong = [f"{what} ({src or 'this machine'} -> {dst}:{port}) open" for src, dst, port, what in refused
             if can_connect(src, ip.get(dst, dst), port)]
    wrong += [f"{what} ({src or 'this machine'} -> {dst}:{port}) refused" for src, dst, port, what in allowed
              if not can_connect(src, ip.get(dst, dst), port)]
    tls_refused, tls_wrong = tls_refusals(inv) if tls else (0, [])
    wrong += tls_wrong
    assert not wrong, "; ".join(wrong)
    print(f"FIGURE drill security: {len(inv['hosts'])} hosts listen only on port-map ports; {len(refused)} "
          f"disallowed flows refused, {len(allowed)} allowed flows open; {tls_refused} connections without "
          f"TLS or without a client certificate refused", flush=True)
    return {"hosts": len(inv["hosts"]), "refused": len(refused), "allowed": len(allowed), "tls_refused": tls_refused}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("drill", choices=["add_worker", "haproxy", "leader", "rabbitmq", "scheduler", "worker",
                                          "monitoring", "security", "all"])
    args = parser.parse_args(argv)
    inv = inventory()
    results = {}
    if args.drill in ("add_worker", "all"):
        results["add_worker"] = drill_add_worker(inv)
        inv = inventory()
    if args.drill in ("haproxy", "all"):
        results["haproxy"] = drill_haproxy(inv)
    if args.drill in ("rabbitmq", "all"):
        results["rabbitmq"] = drill_rabbitmq(inv)
    if args.drill in ("scheduler", "all"):
        results["scheduler"] = drill_service(inv, "scheduler", "airflow-scheduler", "scheduler")
    if args.drill in ("worker", "all"):
        results["worker"] = drill_worker(inv)
    if args.drill in ("security", "all"):
        results["security"] = drill_security(inv)
    if args.drill in ("monitoring", "all"):
        results["monitoring"] = drill_monitoring(inv)
    if args.drill in ("leader", "all"):
        results["leader"] = drill_leader(inv)
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
