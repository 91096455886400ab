"""PgBouncer on the Airflow hosts (issue 19) as the states compile and render
it, for Debian 12 and Rocky 9, with pillar airflow:pgbouncer:enabled off (the
default: nothing of it, the URLs as before) and on: PgBouncer on 127.0.0.1 in
front of HAProxy's :5000 (TLS verify-full with tls:enabled), the components'
URLs on it and `airflow db migrate` past it, the auth file with the SCRAM
verifier the postgres state sets (no password), the exporter and its scrape
job; bad pillar fails the render naming the key. The real PgBouncer runs in
tests/airflow/test_pgbouncer_real.py."""

import configparser
import multiprocessing
import re
import subprocess
import sys
import urllib.parse

import pytest
import yaml

import _modules.airflow_ha as airflow_ha
from clusters.state_render import host_states_in_fresh_process
from tests.helpers.inventory import REPO, load_inventory
from tests.helpers.ldap_server import secrets_of

CA = "/etc/airflow-ha/pki/ca.crt"
AIRFLOW_SLS = ["airflow.worker", "airflow.migrate", "monitoring.exporters"]
PGBOUNCER_IDS = {"airflow-pgbouncer-dropin", "airflow-pgbouncer-package", "airflow-pgbouncer-auth-file",
                 "airflow-pgbouncer-config", "airflow-pgbouncer-unit-loaded", "airflow-pgbouncer-running",
                 "airflow-pgbouncer-reloaded-for-new-credentials", "monitoring-exporter-pgbouncer-dropin",
                 "monitoring-exporter-pgbouncer-package", "monitoring-exporter-pgbouncer-running"}
# (name, host, sls, os, switch, tls)
JOBS = [
    ("af1-debian-on-tls", "af1", AIRFLOW_SLS, "debian12", True, True),
    ("af1-rocky-on", "af1", AIRFLOW_SLS, "rocky9", True, False),
    ("af1-debian-off", "af1", AIRFLOW_SLS, "debian12", False, False),
    ("af1-rocky-off-tls", "af1", AIRFLOW_SLS, "rocky9", False, True),
    # db3: a PostgreSQL member and the monitoring host
    ("db3-on", "db3", ["postgres", "monitoring.prometheus"], "debian12", True, False),
    ("db3-off", "db3", ["postgres"], "debian12", False, False),
]


@pytest.fixture(scope="module")
def compiled(salt_env, tls_salt_env, tmp_path_factory):
    """name -> {state id: {fun, args, text}} (every file.managed's text as the state writes it)"""
    on = tmp_path_factory.mktemp("pgbouncer-on")
    (on / "lab.sls").write_text(yaml.safe_dump({"airflow": {"pgbouncer": {"enabled": True}}}))
    off = tmp_path_factory.mktemp("pgbouncer-off")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {name: pool.apply_async(host_states_in_fresh_process, (
            host, "compact", sls, str(on if switch else off), {}, *(tls_salt_env if tls else salt_env), os_name))
            for name, host, sls, os_name, switch, tls in JOBS}
        return {name: p.get(timeout=600) for name, p in pending.items()}


def env_vars(text):
    return dict(re.findall(r"^(\w+)='(.*)'$", text, re.M))


def url(text):
    parsed = urllib.parse.urlsplit(text)
    return parsed.hostname, parsed.port, dict(urllib.parse.parse_qsl(parsed.query))


def ini(text):
    parser = configparser.ConfigParser(inline_comment_prefixes=None, comment_prefixes=(";",), interpolation=None)
    parser.read_string(text)
    return parser


@pytest.mark.parametrize("name", ["af1-debian-off", "af1-rocky-off-tls"])
def test_off_by_default_nothing_of_pgbouncer_and_the_urls_as_before(compiled, name):
    states = compiled[name]
    assert not [sid for sid in states if "pgbouncer" in sid]
    env = env_vars(states["airflow-env"]["text"])
    tls = name.endswith("-tls")
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        host, port, query = url(env[key])
        assert (host, port) == ("10.83.0.100", 5000)
        assert query.get("sslmode") == ("verify-full" if tls else None)
    assert "AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN" not in env
    assert "[database]" not in states["airflow-cfg"]["text"]
    assert "pgbouncer" not in states["airflow-worker-unit"]["text"]
    assert "MIGRATE" not in states["airflow-db-migrated"]["args"]["name"]
    assert "require" not in states["airflow-worker-running"]["args"]


def test_on_debian_with_tls_pgbouncer_on_loopback_in_front_of_the_leader_port(compiled, tls_salt_env):
    states = compiled["af1-debian-on-tls"]
    assert PGBOUNCER_IDS | {"monitoring-exporter-pgbouncer-config"} <= set(states)
    cfg = ini(states["airflow-pgbouncer-config"]["text"])
    # the pool follows the leader through HAProxy's :5000 on the VIP; no user= (SCRAM pass-through)
    assert cfg["databases"]["airflow"] == "host=10.83.0.100 port=5000 dbname=airflow"
    pgb = cfg["pgbouncer"]
    assert (pgb["listen_addr"], pgb["listen_port"]) == ("127.0.0.1", "6432")
    assert (pgb["auth_type"], pgb["auth_file"], pgb["pool_mode"]) == ("scram-sha-256", "/etc/pgbouncer/userlist.txt",
                                                                      "transaction")
    assert (pgb["default_pool_size"], pgb["reserve_pool_size"], pgb["max_db_connections"]) == ("10", "5", "15")
    # TLS to the server as Airflow's own db_sslmode, against the cluster CA; loopback clients in plain
    assert (pgb["server_tls_sslmode"], pgb["server_tls_ca_file"], pgb["client_tls_sslmode"]) == (
        "verify-full", CA, "disable")
    assert (pgb["tcp_keepidle"], pgb["tcp_user_timeout"]) == ("5", "10000")  # airflow:db_options
    assert pgb["unix_socket_dir"] == "/var/run/postgresql" and pgb["unix_socket_mode"] == "0700"
    config = states["airflow-pgbouncer-config"]["args"]
    assert (config["user"], config["group"], config["mode"]) == ("root", "postgres", "0640")
    assert {"file": "pki-ca-cert"} in config["require"]
    # the auth file: the verifier only, root:postgres 0640, never shown
    auth = states["airflow-pgbouncer-auth-file"]
    password = secrets_of(tls_salt_env)["postgres"]["airflow_password"]
    assert auth["text"].strip() == f'"airflow" "{airflow_ha.scram_sha_256(password, "airflow")}"'
    assert password not in auth["text"] and password not in states["airflow-pgbouncer-config"]["text"]
    assert (auth["args"]["user"], auth["args"]["group"], auth["args"]["mode"], auth["args"]["show_changes"]) == (
        "root", "postgres", "0640", False)
    assert auth["args"]["source"][-1] == "salt://airflow/files/pgbouncer_userlist.txt.jinja"  # TOFS
    running = states["airflow-pgbouncer-running"]["args"]
    assert {"file": "airflow-pgbouncer-config"} in running["watch"] and running["enable"] is True
    assert states["airflow-pgbouncer-reloaded-for-new-credentials"]["args"]["onchanges"] == [
        {"file": "airflow-pgbouncer-auth-file"}]
    assert "LimitNOFILE=65536" in states["airflow-pgbouncer-dropin"]["text"]
    # the components on PgBouncer (plain on loopback), `airflow db migrate` past it with TLS
    env = env_vars(states["airflow-env"]["text"])
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        host, port, query = url(env[key])
        assert (host, port, query["sslmode"]) == ("127.0.0.1", 6432, "disable") and "sslrootcert" not in query
    host, port, query = url(env["AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN"])
    assert (host, port, query["sslmode"], query["sslrootcert"]) == ("10.83.0.100", 5000, "verify-full", CA)
    direct = 'AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN"; '
    for sid, key in (("airflow-db-migrated", "name"), ("airflow-db-migrated", "unless"),
                     ("airflow-admin-user", "name"), ("airflow-admin-user", "unless")):
        command = states[sid]["args"][key]
        assert command.startswith("set -a; . /etc/default/airflow; " + direct), (sid, key)
        assert password not in command
    # Airflow's own pool sized for PgBouncer; the components start after it
    cfg_text = states["airflow-cfg"]["text"]
    assert "[database]\n" in cfg_text and "sql_alchemy_pool_size = 5\n" in cfg_text
    assert "sql_alchemy_max_overflow = 10" in cfg_text
    assert "After=pgbouncer.service" in states["airflow-worker-unit"]["text"].splitlines()
    assert {"service": "airflow-pgbouncer-running"} in states["airflow-worker-running"]["args"]["require"]
    # the exporter: the package's unit (user postgres) with our settings, on this host's IP
    exporter = states["monitoring-exporter-pgbouncer-config"]["text"].splitlines()
    for line in ("host = 10.83.0.21", "port = 9127", "pgbouncer-port = 6432", "pgbouncer-user = pgbouncer",
                 "pgbouncer-host = /var/run/postgresql"):
        assert line in exporter, line
    assert "Environment=CONFIG=/etc/airflow-ha/pgbouncer-exporter.conf" in \
        states["monitoring-exporter-pgbouncer-dropin"]["text"]
    assert {"service": "airflow-pgbouncer-running"} in states["monitoring-exporter-pgbouncer-running"]["args"]["require"]


def test_on_rocky_without_tls_pgdg_package_its_user_and_the_go_exporter(compiled, salt_env):
    states = compiled["af1-rocky-on"]
    assert PGBOUNCER_IDS | {"airflow-pgbouncer-repo-pgdg-common"} <= set(states)
    assert "monitoring-exporter-pgbouncer-config" not in states
    assert "/common/redhat/" in states["airflow-pgbouncer-repo-pgdg-common"]["args"]["baseurl"]
    pgb = ini(states["airflow-pgbouncer-config"]["text"])["pgbouncer"]
    assert pgb["server_tls_sslmode"] == "disable" and "server_tls_ca_file" not in pgb
    assert pgb["unix_socket_dir"] == "/run/pgbouncer"
    assert "RuntimeDirectory=pgbouncer" in states["airflow-pgbouncer-dropin"]["text"]
    assert states["airflow-pgbouncer-auth-file"]["args"]["group"] == "pgbouncer"
    dropin = states["monitoring-exporter-pgbouncer-dropin"]["text"].splitlines()
    assert "User=pgbouncer" in dropin
    assert ("ExecStart=/usr/bin/pgbouncer_exporter --web.listen-address=10.83.0.21:9127 --pgBouncer.connectionString="
            "postgres:///pgbouncer?host=/run/pgbouncer&port=6432&user=pgbouncer&sslmode=disable") in dropin
    env = env_vars(states["airflow-env"]["text"])
    assert url(env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])[:2] == ("127.0.0.1", 6432)
    host, port, query = url(env["AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN"])
    assert (host, port) == ("10.83.0.100", 5000) and "sslmode" not in query


def test_the_postgres_role_gets_the_verifier_of_the_auth_file_only_with_the_switch(compiled, salt_env):
    password = secrets_of(salt_env)["postgres"]["airflow_password"]
    on = compiled["db3-on"]["postgres-airflow-role"]["args"]
    verifier = airflow_ha.scram_sha_256(password, "airflow")
    # the same env's af1 (Rocky): its auth file holds what pg_authid gets
    assert on["password"] == verifier and on["encrypted"] == "scram-sha-256"
    assert compiled["af1-rocky-on"]["airflow-pgbouncer-auth-file"]["text"].strip() == f'"airflow" "{verifier}"'
    assert compiled["db3-off"]["postgres-airflow-role"]["args"]["password"] == password


def test_the_exporter_is_scraped_on_the_airflow_hosts_with_the_switch(compiled):
    text = compiled["db3-on"]["monitoring-prometheus-config"]["text"]
    jobs = {j["job_name"]: j for j in yaml.safe_load(text)["scrape_configs"]}
    inv = load_inventory("compact")
    assert [sc["targets"][0] for sc in jobs["pgbouncer"]["static_configs"]] == [
        f"{inv['hosts'][h]['ip']}:9127" for h in ("af1", "af2")]
    assert "PgBouncerClientsWaiting" in compiled["db3-on"]["monitoring-prometheus-rules"]["text"]


def test_bad_pgbouncer_pillar_fails_the_render_naming_the_key(tmp_path):
    (tmp_path / "lab.sls").write_text(yaml.safe_dump({"airflow": {"pgbouncer": {
        "enabled": True, "max_client_conn": 10, "default_pool_size": 200}}}))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "render.py"), "--topology", "compact", "--host", "af1",
                           "--os", "debian12", "--pillar-override", str(tmp_path)],
                          capture_output=True, text=True, timeout=900)
    out = proc.stderr + proc.stdout
    assert proc.returncode == 1, out
    assert "pillar airflow:pgbouncer:default_pool_size 200 + reserve_pool_size 5 on each of the 2 Airflow hosts" in out
    assert "pillar airflow:pgbouncer:max_client_conn 10 is under the" in out
