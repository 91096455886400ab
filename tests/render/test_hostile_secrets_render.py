"""Passwords full of special characters (issue 17): the states of the
compact topology compiled with tests/helpers/hostile_secrets.py's secrets
(every printable special character, spaces at the ends where the consumer
keeps them), and every file or state argument a password ends in read back
the way its consumer reads it: the env files as systemd and the shell do,
URLs as libpq/SQLAlchemy and Kombu unquote them, YAML and JSON parsed,
HAProxy's and keepalived's quoting undone, pgBackRest's ini rule, the
{SSHA} and SCRAM hashes checked against the password. A real Airflow on
such a DB password: tests/airflow/test_hostile_secrets_real.py."""

import base64
import hashlib
import json
import multiprocessing
import re
import subprocess
import urllib.parse

import pytest
import yaml

import _modules.airflow_ha as airflow_ha
from _utils.ha_env import parse_env
from clusters.state_render import host_states_in_fresh_process, make_salt_env
from tests.helpers.ldap_server import secrets_of

# (name, host, sls, pillar/lab.sls, tls); compact: af1 the Airflow and HAProxy host, db1 a PostgreSQL and
# RabbitMQ member, db3 also the directory (LDAPS only: with TLS), FTP and monitoring host, af2 the pgBackRest
# repository
JOBS = [
    ("af1", "af1", ["airflow.worker", "airflow.migrate", "airflow.flower", "airflow.webserver", "haproxy"],
     {"airflow": {"pgbouncer": {"enabled": True}}}, False),
    ("db1", "db1", ["postgres", "rabbitmq"], {}, False),
    ("db3", "db3", ["ldap", "ftp", "monitoring.grafana"], {"monitoring": {"grafana": {"install": True}}}, True),
    ("af2", "af2", ["backup"], {}, False),
]


@pytest.fixture(scope="module")
def secrets(hostile_salt_env):
    return secrets_of(hostile_salt_env)


@pytest.fixture(scope="module")
def states(hostile_salt_env, secrets, tmp_path_factory):
    """name -> {state id: {fun, args, text}}"""
    tls_env = make_salt_env(tmp_path_factory.mktemp("hostile-tls"), tls=True, topologies=["compact"],
                            secrets=secrets)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = {}
        for name, host, sls, pillar, tls in JOBS:
            root = tmp_path_factory.mktemp(f"hostile-{name}")
            (root / "lab.sls").write_text(yaml.safe_dump(pillar))
            pending[name] = pool.apply_async(host_states_in_fresh_process, (
                host, "compact", sls, str(root), {}, *(tls_env if tls else hostile_salt_env)))
        return {name: p.get(timeout=600) for name, p in pending.items()}


def text(states, name, state_id):
    return states[name][state_id]["text"]


def url_password(url):
    """The password of a URL as libpq (through SQLAlchemy) and Kombu read it: percent-decoded."""
    return urllib.parse.unquote(urllib.parse.urlsplit(url).password)


def sourced(env_text, tmp_path, keys):
    """The values a shell gets sourcing the env file (salt/airflow/migrate.sls: `set -a; . file`)."""
    path = tmp_path / "env"
    path.write_text(env_text)
    script = f"set -a; . {path}; " + " ".join(f'printf "%s\\0" "${k}";' for k in keys)
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True, env={"HOME": "/root"})
    return dict(zip(keys, out.stdout.split("\0")))


def test_the_airflow_env_file_carries_every_password_to_systemd_and_the_shell(states, secrets, tmp_path):
    env_text = text(states, "af1", "airflow-env")
    env = parse_env(env_text)
    assert sourced(env_text, tmp_path, list(env)) == env  # systemd's reading (ha_env) is the shell's
    db = secrets["postgres"]["airflow_password"]
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND",
                "AIRFLOW_HA_MIGRATE_SQL_ALCHEMY_CONN"):
        assert url_password(env[key]) == db, key
    urls = env["AIRFLOW__CELERY__BROKER_URL"].split(";")  # Kombu's failover list
    assert len(urls) == 3 and {url_password(u) for u in urls} == {secrets["rabbitmq"]["airflow_password"]}
    assert env["AIRFLOW__API__SECRET_KEY"] == secrets["airflow"]["secret_key"]
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secrets["airflow"]["jwt_secret"]
    ftp = [v for k, v in env.items() if k.startswith("AIRFLOW_CONN_") and v.startswith("ftp://")]
    assert [url_password(v) for v in ftp] == [secrets["ftp"]["password"]]


def test_airflow_cfg_holds_no_secret_and_interpolates(states, secrets):
    """airflow.cfg goes through configparser's '%' interpolation: no secret is in it (the env file has them)
    and every value of it reads back."""
    import configparser

    cfg = text(states, "af1", "airflow-cfg")
    passwords = [v.strip() for group in secrets.values() for k, v in group.items() if "public" not in k]
    assert not [p for p in passwords if p in cfg]
    parser = configparser.ConfigParser()  # BasicInterpolation, as Airflow's parser
    parser.read_string(cfg)
    assert all(parser.get(section, key) is not None for section in parser.sections() for key in parser[section])


def test_flowers_env_file_and_the_admin_password_file(states, secrets, tmp_path):
    flower = text(states, "af1", "airflow-flower-env")
    value = parse_env(flower)["FLOWER_BASIC_AUTH"]
    assert sourced(flower, tmp_path, ["FLOWER_BASIC_AUTH"]) == {"FLOWER_BASIC_AUTH": value}
    # Flower splits the variable on ',' into user:password pairs and compares a login with each
    assert value.split(",") == ["admin:" + secrets["airflow"]["flower_password"]]
    admin = states["af1"]["airflow-admin-password"]["args"]["contents"]
    assert json.loads(admin) == {"admin": secrets["airflow"]["admin_password"]}


def test_pgbouncers_auth_file_holds_the_verifier_of_the_password(states, secrets):
    from salt.modules import postgres

    line = text(states, "af1", "airflow-pgbouncer-auth-file").strip().splitlines()[-1]
    user, verifier = re.fullmatch(r'"(\w+)" "(\S+)"', line).groups()
    assert user == "airflow"
    # Salt's own SCRAM code, with the verifier's salt: the password it was made from
    assert postgres._verify_password("airflow", secrets["postgres"]["airflow_password"], verifier, "scram-sha-256")
    assert not postgres._verify_password("airflow", secrets["postgres"]["airflow_password"].strip(), verifier,
                                         "scram-sha-256")


def test_the_ldap_bind_password_file_is_read_back_exactly(states, secrets):
    """webserver_config.py reads the file Salt wrote (contents_pillar, plus Salt's final newline)."""
    args = states["af1"]["airflow-ldap-bind-password"]["args"]
    assert args["contents_pillar"] == "secrets:ldap:bind_password" and args.get("contents_newline", True)
    config = text(states, "af1", "airflow-webserver-config")
    block = re.search(r"^try:\n(?:    .*\n)+?except FileNotFoundError:\n    .*\n", config, re.M).group(0)
    written = secrets["ldap"]["bind_password"] + "\n"

    class File:
        def __init__(self, path):
            assert path == args["name"]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self):
            return written

    namespace = {"open": File}
    exec(block, namespace)  # noqa: S102 (the template's own lines)
    assert namespace["AUTH_LDAP_BIND_PASSWORD"] == secrets["ldap"]["bind_password"]


def test_haproxy_and_keepalived_quote_their_passwords(states, secrets):
    cfg = text(states, "af1", "haproxy-config")
    quoted = re.search(r"^\s*stats auth ('(?:[^']|'\\'')*')$", cfg, re.M).group(1)
    assert quoted[1:-1].replace("'\\''", "'") == "stats:" + secrets["haproxy"]["stats_password"]
    conf = text(states, "af1", "keepalived-config")
    assert re.findall(r'auth_pass "([^"]*)"', conf) == [secrets["keepalived"]["auth_pass"]]


def test_patronis_config_and_the_postgres_and_rabbitmq_users(states, secrets):
    config = yaml.safe_load(text(states, "db1", "postgres-patroni-config"))
    assert config["restapi"]["authentication"]["password"] == secrets["patroni"]["restapi_password"]
    auth = config["postgresql"]["authentication"]
    assert {k: auth[k]["password"] for k in ("superuser", "replication", "rewind")} == {
        "superuser": secrets["postgres"]["superuser_password"],
        "replication": secrets["postgres"]["replication_password"],
        "rewind": secrets["postgres"]["rewind_password"]}
    # Salt hashes the password (postgres_user.present, scram-sha-256) before it quotes any SQL
    role = states["db1"]["postgres-airflow-role"]["args"]
    assert role["password"] == secrets["postgres"]["airflow_password"] and role["encrypted"] == "scram-sha-256"
    # rabbitmq_ha.user_present hands it to rabbitmqctl on standard input (which strips the ends: refused there)
    assert states["db1"]["rabbitmq-airflow-user"]["args"]["password"] == secrets["rabbitmq"]["airflow_password"]
    assert states["db1"]["rabbitmq-admin-user"]["args"]["password"] == secrets["rabbitmq"]["admin_password"]


def ssha_matches(hashed, password):
    raw = base64.b64decode(hashed.removeprefix("{SSHA}"))
    digest, salt = raw[:20], raw[20:]
    return hashlib.sha1(password.encode() + salt).digest() == digest


def test_the_directory_ftp_and_grafana(states, secrets, tmp_path):
    ldap = secrets["ldap"]
    rootpw = states["db3"]["ldap-admin-password"]["args"]["contents"]
    assert ssha_matches(rootpw.removeprefix("rootpw "), ldap["admin_password"])
    seed = text(states, "db3", "ldap-seed-file")
    hashes = re.findall(r"^userPassword: (\S+)$", seed, re.M)
    assert any(ssha_matches(h, ldap["bind_password"]) for h in hashes)
    assert any(ssha_matches(h, ldap["seed_password"]) for h in hashes)
    # ldapadd -y takes the whole file: no newline added
    clear = states["db3"]["ldap-root-password-file"]["args"]
    assert clear["contents_pillar"] == "secrets:ldap:admin_password" and clear["contents_newline"] is False
    ftp = states["db3"]["ftp-account"]["args"]
    assert ftp["password"] == secrets["ftp"]["password"] and ftp["hash_password"] is True
    grafana = states["db3"]["monitoring-grafana-admin-password"]["args"]["contents"]
    assert parse_env(grafana) == {"GF_SECURITY_ADMIN_PASSWORD": secrets["grafana"]["admin_password"]}
    assert sourced(grafana, tmp_path, ["GF_SECURITY_ADMIN_PASSWORD"]) == parse_env(grafana)


def test_pgbackrest_reads_the_repository_passphrase(states, secrets):
    """pgBackRest's ini rule: a line trimmed, the key before the first '=', the value trimmed."""
    conf = text(states, "af2", "backup-config")
    values = {}
    for line in conf.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip()
    assert values["repo1-cipher-pass"] == secrets["pgbackrest"]["cipher_pass"]


def test_env_quote_refuses_what_no_env_file_line_carries():
    from salt.exceptions import CommandExecutionError

    with pytest.raises(CommandExecutionError, match="newline"):
        airflow_ha.env_quote("a\nb")
