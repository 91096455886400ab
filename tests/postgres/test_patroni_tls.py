"""The real 3-member etcd + Patroni + PostgreSQL cluster with pillar
tls:enabled (configured from the states' templates and contexts, its own CA):
etcd, the Patroni REST API and PostgreSQL refuse clients without TLS (etcd:
without a certificate of the CA), replication runs over TLS, and the patroni
execution and state modules still drive the cluster."""

import os
import ssl
import subprocess
import time
import urllib.error
import urllib.request

import pytest

# lab_covered: the lab's database tier runs TLS (the security drill's refusals, every drill's patroni module
# over https, HAProxy's checks); make test-loopback keeps the other-CA refusals
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.lab_covered]

MEMBERS = ("db1", "db2", "db3")


def get(url, context=None):
    with urllib.request.urlopen(url, timeout=5, context=context) as resp:
        return resp.status, resp.read().decode()


def refused(url, context=None):
    """True when the request fails at the TLS or HTTP layer (no answer of the server's)."""
    try:
        get(url, context)
    except (OSError, ssl.SSLError):  # URLError, reset, handshake failure, bad status line
        return True
    return False


def psql(cluster, contexts, conninfo, sql="select 1"):
    """psql as the superuser over TCP to db1's member; the password goes through the environment."""
    env = dict(os.environ, PGPASSWORD=contexts[1]["patroni"]["superuser"]["password"], PGCONNECT_TIMEOUT="5")
    port = cluster.ports(0)["pg"]
    return subprocess.run(["psql", f"port={port} user=postgres dbname=postgres {conninfo}", "-XAtqc", sql],
                          capture_output=True, text=True, timeout=30, env=env)


def test_tls_cluster_reaches_health_through_the_state(loaders, tls_cluster):
    # patronictl through etcd over https with a client certificate, then the members' REST API over https
    ret = loaders.states.patroni.cluster_healthy(name="bootstrap", members=3, timeout=180,
                                                 config=tls_cluster.configs["db1"])
    assert ret.result is True, ret.comment


def test_config_check_of_the_state_passes_a_tls_members_config(tls_cluster, tmp_path):
    """The state's check_cmd on a config with the TLS sections (certificate files present, as the requisites ensure)."""
    import yaml

    from tests.helpers.inventory import REPO

    config = yaml.safe_load(open(tls_cluster.configs["db1"]))
    assert config["restapi"]["certfile"] and config["etcd3"]["protocol"] == "https" and config["ctl"]["cacert"]
    # Patroni refuses loopback connect addresses, which only this test cluster uses
    config["restapi"]["connect_address"] = "10.83.0.11:18058"
    config["postgresql"]["connect_address"] = "10.83.0.11:15482"
    good = tmp_path / "good.yml"
    good.write_text(yaml.safe_dump(config))
    proc = subprocess.run([str(REPO / "salt" / "postgres" / "files" / "patroni-validate-config.py"), str(good)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_etcd_accepts_only_clients_with_a_certificate_of_the_ca(tls_cluster):
    client = tls_cluster.etcd_url(0, "/health")
    assert refused(client.replace("https://", "http://")), "etcd answered plain http"
    assert refused(client, tls_cluster.ssl_context(client_cert=False)), "etcd answered a client without certificate"
    status, body = get(client, tls_cluster.ssl_context())
    assert status == 200 and '"health":"true"' in body
    # the v3 API too (what Patroni uses), and the peer port
    proc = subprocess.run(["etcdctl", "--endpoints", client.rsplit("/", 1)[0], "--cacert", tls_cluster.pki["ca"],
                           "endpoint", "health"], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, ETCDCTL_API="3", ETCDCTL_DIAL_TIMEOUT="3s"))
    assert proc.returncode != 0, "etcdctl without a client certificate got through"
    proc = subprocess.run(["etcdctl", "--endpoints", client.rsplit("/", 1)[0], "--cacert", tls_cluster.pki["ca"],
                           "--cert", tls_cluster.pki["cert"]["db2"], "--key", tls_cluster.pki["key"]["db2"],
                           "endpoint", "health"], capture_output=True, text=True, timeout=30,
                          env=dict(os.environ, ETCDCTL_API="3", ETCDCTL_DIAL_TIMEOUT="3s"))
    assert proc.returncode == 0, proc.stderr
    peer = f"https://127.0.0.1:{tls_cluster.ports(1)['peer']}/members"
    assert refused(peer, tls_cluster.ssl_context(client_cert=False))
    assert refused(peer.replace("https://", "http://"))


def test_etcd_healthy_state_arguments_pass_against_the_tls_etcd(loaders, tls_cluster):
    """etcd-healthy (salt/etcd/init.sls) with tls: the CA bundle and the client certificate as the state passes them."""
    url = tls_cluster.etcd_url(2, "/health")
    ret = loaders.states.http.wait_for_successful_query(
        name=url, match='"health":"true"', wait_for=20, request_interval=1,
        ca_bundle=tls_cluster.pki["ca"], cert=[tls_cluster.pki["cert"]["db3"], tls_cluster.pki["key"]["db3"]])
    assert ret.result is True, ret.comment
    without = loaders.states.http.wait_for_successful_query(
        name=url, match='"health":"true"', wait_for=2, request_interval=1, ca_bundle=tls_cluster.pki["ca"])
    assert without.result is False


def test_patroni_rest_api_is_https_only_and_verifies_against_the_ca(tls_cluster):
    url = f"https://127.0.0.1:{tls_cluster.ports(1)['rest']}/health"
    assert refused(url.replace("https://", "http://")), "the REST API answered plain http"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(url, ssl.create_default_context())  # the system's trust store does not know the cluster CA
    status, body = get(url, tls_cluster.ssl_context(client_cert=False))  # no client certificate needed
    assert status == 200 and '"state": "running"' in body.replace('":"', '": "')


def test_postgres_refuses_connections_without_tls(tls_patroni_contexts, tls_cluster):
    proc = psql(tls_cluster, tls_patroni_contexts, "host=127.0.0.1 sslmode=disable")
    assert proc.returncode != 0
    assert "no pg_hba.conf entry" in proc.stderr and "no encryption" in proc.stderr


def test_postgres_verify_full_with_the_ca_connects_over_ssl(tls_patroni_contexts, tls_cluster, tmp_path):
    import gen_tls

    ca = tls_cluster.pki["ca"]
    for host in ("127.0.0.1", "localhost"):  # the names Patroni's own connections use
        proc = psql(tls_cluster, tls_patroni_contexts, f"host={host} sslmode=verify-full sslrootcert={ca}",
                    "select ssl from pg_stat_ssl where pid = pg_backend_pid()")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "t"
    # a server certificate of another CA is not trusted
    other = tmp_path / "other-ca.crt"
    other.write_bytes(gen_tls.cert_pem(gen_tls.create_ca("not the cluster CA")[1]))
    proc = psql(tls_cluster, tls_patroni_contexts, f"host=127.0.0.1 sslmode=verify-full sslrootcert={other}")
    assert proc.returncode != 0 and "certificate verify failed" in proc.stderr


def test_replication_connections_use_ssl(loaders, tls_cluster):
    leader = loaders.modules.patroni.leader(config=tls_cluster.configs["db1"])
    sql = ("select count(*) filter (where s.ssl), count(*) from pg_stat_replication r "
           "join pg_stat_ssl s using (pid) where r.state = 'streaming'")
    deadline = time.time() + 60
    while tls_cluster.psql(leader, sql) != "2|2" and time.time() < deadline:
        time.sleep(1)
    assert tls_cluster.psql(leader, sql) == "2|2"
    # the replicas' primary_conninfo verifies the leader's certificate
    replica = next(n for n in MEMBERS if n != leader)
    conninfo = tls_cluster.psql(replica, "select conninfo from pg_stat_wal_receiver")
    assert "sslmode=verify-full" in conninfo and "sslrootcert=" in conninfo


def test_patroni_module_and_states_work_under_tls(loaders, tls_cluster):
    mod, config = loaders.modules.patroni, tls_cluster.configs["db2"]
    members = mod.members(config=config)
    assert sorted(m["name"] for m in members) == list(MEMBERS)
    before = mod.leader(config=config)
    assert before in MEMBERS
    # PATCH /config through the module's https client
    # another loop_wait that keeps loop_wait + 2 * retry_timeout within the ttl
    loop_wait = mod.show_config(config=config)["loop_wait"]
    new = 1 if loop_wait != 1 else 2
    ret = loaders.states.patroni.config_applied(name="dcs", settings={"loop_wait": new}, config=config)
    assert ret.result is True and ret.changes == {"loop_wait": {"old": loop_wait, "new": new}}, ret.comment
    assert mod.show_config(config=config)["loop_wait"] == new
    # synchronous_mode (the default): the synchronous standby is the one candidate
    ret = loaders.states.patroni.cluster_healthy(name="sync standby", members=3, timeout=120, config=config)
    assert ret.result is True, ret.comment
    deadline = time.time() + 60
    while not [m for m in mod.members(config=config) if m["role"] == "sync_standby"] and time.time() < deadline:
        time.sleep(1)
    candidate = next(m["name"] for m in mod.members(config=config) if m["role"] == "sync_standby")
    assert candidate != before
    assert mod.switchover(candidate=candidate, config=config) == candidate
    ret = loaders.states.patroni.cluster_healthy(name="after switchover", members=3, timeout=120, config=config)
    assert ret.result is True, ret.comment


# ------------------------------------------- HAProxy in front of the TLS cluster


@pytest.fixture(scope="module")
def tls_lb_context(tls_cluster, tls_patroni_contexts, tls_state_file_context, tmp_path_factory):
    """The haproxy state's context of compact af1 with pillar tls:enabled, moved onto the TLS cluster."""
    import gen_tls
    from clusters.haproxy import lb_context

    tls_cluster.superuser_password = tls_patroni_contexts[1]["patroni"]["superuser"]["password"]
    state_ctx = tls_state_file_context("af1", "compact", "haproxy", "haproxy-config")["haproxy"]
    tmp = tmp_path_factory.mktemp("haproxy-tls")
    ctx = lb_context(state_ctx, tls_cluster, tmp)
    # the https frontends (UI, Flower) need their certificate and key: a throwaway pair, not under test here
    ca_key, ca_cert = gen_tls.create_ca("web frontends")
    key = gen_tls.new_key()
    pem = tmp / "haproxy.pem"
    pem.write_bytes(gen_tls.cert_pem(gen_tls.issue_host_cert(ca_key, ca_cert, key, "af1", ["af1"], ["127.0.0.1"]))
                    + gen_tls.key_pem(key))
    ctx["tls"] = dict(ctx["tls"], pem=str(pem))
    return ctx


@pytest.fixture(scope="module")
def tls_lb(tls_lb_context, tls_cluster, tls_render_state_file, tmp_path_factory):
    """A real HAProxy with the state's check-ssl config in front of the TLS cluster."""
    from clusters.haproxy import start_lb, wait_for

    balancer, text = start_lb(tls_lb_context, tls_cluster, tls_render_state_file,
                               tmp_path_factory.mktemp("haproxy-tls-run"))
    balancer.config_text = text
    try:
        wait_for(balancer.settled, 120, "one leader behind the read/write port and two replicas behind the "
                 "read-only one (https checks)", interval=1)
        yield balancer
    finally:
        balancer.stop()


def psql_through(port, conninfo, password, sql="select ssl from pg_stat_ssl where pid = pg_backend_pid()"):
    env = dict(os.environ, PGPASSWORD=password, PGCONNECT_TIMEOUT="5")
    return subprocess.run(["psql", f"port={port} user=postgres dbname=postgres {conninfo}", "-XAtqc", sql],
                          capture_output=True, text=True, timeout=30, env=env)


def test_haproxy_checks_patroni_over_https_and_routes_to_the_leader(tls_lb, loaders, tls_cluster):
    servers = [line.strip() for line in tls_lb.config_text.splitlines() if line.strip().startswith("server db")]
    assert len(servers) == 6 and all(" check-ssl verify required ca-file " in s for s in servers)
    leader = loaders.modules.patroni.leader(config=tls_cluster.configs["db1"])
    assert tls_lb.up("postgres_rw") == [leader]
    assert sorted(tls_lb.up("postgres_ro")) == sorted(m for m in MEMBERS if m != leader)


def test_verify_full_through_haproxy_by_the_vips_name_and_ip(tls_lb, tls_cluster, loaders):
    """What Airflow does: TLS passes through HAProxy and the member's certificate must name the VIP
    (tools/gen_tls.py gives PostgreSQL members the main VIP's IP and names). The VIP is faked by
    libpq's hostaddr: the connection goes to HAProxy on loopback, the name checked is `host`."""
    ca, port, password = tls_cluster.pki["ca"], tls_lb.ports["postgres_rw"], tls_lb.password
    leader = loaders.modules.patroni.leader(config=tls_cluster.configs["db1"])
    for host in ("10.83.0.100", "airflow-vip", "airflow-vip.lab.internal"):
        proc = psql_through(port, f"host={host} hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}", password,
                            "select ssl, pg_is_in_recovery(), inet_server_port() from pg_stat_ssl "
                            "where pid = pg_backend_pid()")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"t|f|{tls_cluster.ports(MEMBERS.index(leader))['pg']}"
    # a name the certificate does not carry is refused
    proc = psql_through(port, f"host=af1.lab.internal hostaddr=127.0.0.1 sslmode=verify-full sslrootcert={ca}",
                        password)
    assert proc.returncode != 0 and "does not match host name" in proc.stderr


def test_airflow_db_url_with_verify_full_connects_through_haproxy(tls_lb, tls_cluster, tls_lb_context):
    """The URL the airflow_ha module builds for Airflow (the VIP's IP, sslmode and sslrootcert), handed to libpq."""
    import _modules.airflow_ha as airflow_ha

    url = airflow_ha.db_url("postgres", "unused", "10.83.0.100", tls_lb.ports["postgres_rw"], "postgres",
                            sslmode="verify-full", sslrootcert=tls_cluster.pki["ca"])
    libpq_url = url.replace("postgresql+psycopg2://postgres:unused@", "postgresql://postgres@") + \
        "&hostaddr=127.0.0.1"
    env = dict(os.environ, PGPASSWORD=tls_lb.password, PGCONNECT_TIMEOUT="5")
    proc = subprocess.run(["psql", libpq_url, "-XAtqc", "select ssl from pg_stat_ssl where pid = pg_backend_pid()"],
                          capture_output=True, text=True, timeout=30, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "t"


def test_a_client_with_another_ca_is_refused_through_haproxy(tls_lb, tmp_path):
    import gen_tls

    other = tmp_path / "other-ca.crt"
    other.write_bytes(gen_tls.cert_pem(gen_tls.create_ca("not the cluster CA")[1]))
    proc = psql_through(tls_lb.ports["postgres_rw"], f"host=10.83.0.100 hostaddr=127.0.0.1 sslmode=verify-full "
                        f"sslrootcert={other}", tls_lb.password)
    assert proc.returncode != 0 and "certificate verify failed" in proc.stderr


def test_haproxy_checking_against_another_ca_takes_every_member_out(tls_lb, tls_lb_context, tls_cluster,
                                                                    tls_render_state_file, tmp_path):
    """verify required: a Patroni REST API whose certificate is not of the configured CA fails the check."""
    import copy

    import gen_tls
    from clusters.haproxy import free_port, start_lb, wait_for

    other = tmp_path / "other-ca.crt"
    other.write_bytes(gen_tls.cert_pem(gen_tls.create_ca("not the cluster CA")[1]))
    ctx = copy.deepcopy(tls_lb_context)
    for server in ctx["postgres_servers"]:
        server["check_tls"]["ca_file"] = str(other)
    ctx.update(frontends={name: free_port() for name in ctx["frontends"]},
               stats_socket=str(tmp_path / "admin.sock"))
    ctx["check"].update(inter="1s", fall=2, rise=1)
    balancer, _ = start_lb(ctx, tls_cluster, tls_render_state_file, tmp_path)
    try:
        def all_down():
            states = balancer.states()
            return all(st == "DOWN" for (proxy, _), st in states.items() if proxy.startswith("postgres_"))
        wait_for(all_down, 30, "every PostgreSQL member down behind HAProxy checking against another CA")
        _, body = balancer.http("/;csv")
        assert "L6RSP" in body or "L6" in body  # a layer-6 (TLS) failure of the checks
        assert balancer.psql("postgres_rw", "select 1", timeout=20) is None
    finally:
        balancer.stop()


# ------------------------------------------------------- Prometheus over https


def test_prometheus_scrapes_tls_etcd_and_patroni_with_the_rendered_tls_config(tls_cluster, tls_render_state_file,
                                                                               tmp_path):
    """A real Prometheus with the etcd and patroni jobs of the state's config (TLS on), their
    targets moved onto the cluster and their tls_config files onto its CA and db3's certificate."""
    import json
    import shutil

    import yaml

    config = yaml.safe_load(tls_render_state_file("db3", "compact", "monitoring.prometheus",
                                                  "monitoring-prometheus-config"))
    files = {"ca_file": tls_cluster.pki["ca"], "cert_file": tls_cluster.pki["cert"]["db3"],
             "key_file": tls_cluster.pki["key"]["db3"]}
    jobs = []
    for job in config["scrape_configs"]:
        if job["job_name"] not in ("etcd", "patroni"):
            continue
        port = "client" if job["job_name"] == "etcd" else "rest"
        job["tls_config"] = {k: files[k] for k in job["tls_config"]}
        job["static_configs"] = [{"targets": [f"127.0.0.1:{tls_cluster.ports(i)[port]}"], "labels": {"host": name}}
                                 for i, name in enumerate(MEMBERS)]
        jobs.append(job)
    assert sorted((j["job_name"], j["scheme"], sorted(j["tls_config"])) for j in jobs) == [
        ("etcd", "https", ["ca_file", "cert_file", "key_file"]), ("patroni", "https", ["ca_file"])]
    config.update(scrape_configs=jobs, rule_files=[], alerting={"alertmanagers": []})
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    addr = "127.0.0.1:59190"
    proc = subprocess.Popen([shutil.which("prometheus") or "/usr/bin/prometheus",
                             f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address={addr}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, targets = time.time() + 60, []
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://{addr}/api/v1/targets", timeout=5) as resp:
                    targets = json.load(resp)["data"]["activeTargets"]
            except OSError:
                targets = []
            if len(targets) == 6 and all(t["health"] == "up" for t in targets):
                break
            time.sleep(1)
        assert len(targets) == 6 and all(t["health"] == "up" for t in targets), \
            [(t["labels"]["job"], t["labels"]["instance"], t.get("lastError")) for t in targets]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
