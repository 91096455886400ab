"""The secrets drill (tools/lab/drill_secrets.py) run for real, its scripts in bash with grep and stat,
against hosts that are directories here: a clean lab passes; each kind of leak (a password in the
master's job cache, in a log; another host's TLS key; the CA key; a secret none of the host's roles
uses, even in a service's file; the repo on a minion; a world-readable or shared-group secret file; the
job cache world-readable) is found and named by its pillar key, never by its value."""

import grp
import os
import pwd
import subprocess
import sys

import pytest
import yaml

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_secrets  # noqa: E402

import gen_secrets  # noqa: E402
import gen_tls  # noqa: E402

INV = {"hosts": {"db1": {"ip": "10.0.0.1", "roles": ["postgres"]}, "af1": {"ip": "10.0.0.2", "roles": ["scheduler"]}}}
ME = pwd.getpwuid(os.getuid()).pw_name
MY_GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory):
    """A secrets dir as tools/gen_secrets.py writes it: the file, tls/ca.sls (policies), ca/ca.key."""
    out = tmp_path_factory.mktemp("secrets") / ".secrets"
    tree = {}
    gen_secrets.fill(tree)
    ca_cert, _, _ = gen_tls.generate([{"hosts": INV["hosts"], "network": "10.0.0.0/24", "vips": {}}], str(out),
                                  str(out / "ca"))
    gen_tls.write_private(str(out / "airflow_ha_secrets.sls"), yaml.safe_dump({"secrets": tree,
                                                                               "tls": {"ca_cert": ca_cert}}))
    return out


def local(host, script, stdin=""):
    proc = subprocess.run(["bash", "-c", script], input=stdin, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


def put(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


@pytest.fixture
def lab(tmp_path, secrets_dir):
    """(roots, values, repo): two hosts as they should be after a bring-up, each with the key it made."""
    values = drill_secrets.secret_values(secrets_dir)
    roots = {h: tmp_path / h for h in INV["hosts"]}
    for host, root in roots.items():
        values[f"tls:key of {host}"] = gen_tls.key_pem(gen_tls.new_key()).decode()
        put(root / "etc/airflow-ha/pki/host.key", values[f"tls:key of {host}"])
    for root in roots.values():
        (root / "var" / "log" / "salt").mkdir(parents=True)
        put(root / "var" / "log" / "syslog", "started\n", 0o640)
    master = roots["db1"]
    for d in ("var/cache/salt/master/jobs/ab", "var/cache/salt/master/pillar"):
        (master / d).mkdir(parents=True)
    for d in ("var/cache/salt/master/jobs", "var/cache/salt/master/pillar", "var/cache/salt/master", "var/log/salt"):
        (master / d).chmod(0o700)
    put(master / "var/cache/salt/master/jobs/ab/return.p", "{'roles': ['postgres'], 'api_url': 'https://x'}")
    # the minion data cache holds the pillar by design (not a leak; its directory's mode is checked)
    put(master / "var/cache/salt/master/pillar/af1.p", values["secrets:postgres:superuser_password"])
    put(master / "srv/airflow-ha/.secrets/airflow_ha_secrets.sls", values["secrets:postgres:superuser_password"])
    # the services' own files
    put(master / "etc/airflow-ha/pki/postgres.key", values["tls:key of db1"])
    put(master / "etc/patroni/config.yml", f"password: {values['secrets:postgres:replication_password']}\n")
    put(roots["af1"] / "etc/default/airflow", f"X={values['secrets:postgres:airflow_password']}\n", 0o640)
    put(roots["af1"] / "etc/airflow-ha/pki/etcd.key", values["tls:key of af1"])
    repo = tmp_path / "repo"
    (repo / ".secrets").mkdir(parents=True, mode=0o700)
    return roots, values, repo


def run(lab, secrets_dir):
    roots, _, repo = lab
    return drill_secrets.drill_secrets(INV, execute=local, secrets_dir=secrets_dir, repo=repo,
                                       roots={h: str(r) for h, r in roots.items()})


def findings(lab, secrets_dir):
    with pytest.raises(AssertionError) as err:
        run(lab, secrets_dir)
    return str(err.value)


def test_a_clean_lab_passes(lab, secrets_dir, monkeypatch):
    # a service group with no member users (as on the hosts); this machine's own group may list users
    monkeypatch.setattr(drill_secrets, "SHARED_GROUPS", drill_secrets.SHARED_GROUPS - {MY_GROUP})
    result = run(lab, secrets_dir)
    assert result["findings"] == 0 and result["hosts"] == 2
    assert result["service_files"] == 6  # the two host keys included
    assert result["secrets"] >= 18  # every password and private key, both TLS keys, the CA key
    assert result["host_keys"] == 2 and result["keys_off_host"] == 0


def test_a_host_without_its_own_key_is_found(lab, secrets_dir):
    roots, _, _ = lab
    (roots["af1"] / "etc/airflow-ha/pki/host.key").unlink()
    assert "af1: no TLS key of its own at /etc/airflow-ha/pki/host.key" in findings(lab, secrets_dir)


def test_every_secret_is_searched_for_and_public_halves_are_not(secrets_dir):
    values = drill_secrets.secret_values(secrets_dir)
    assert "secrets:card:ssh_private_key" in values and "secrets:card:ssh_public_key" not in values
    assert "the CA key" in values and not [v for v in values if v.startswith("tls:key")]  # made on the hosts
    strings = drill_secrets.patterns(values)
    assert all(len(s) >= drill_secrets.SHORTEST and "\n" not in s for s in strings)
    assert set(strings.values()) == set(values)


@pytest.mark.parametrize("where, label", [
    ("db1:var/cache/salt/master/jobs/ab/return.p", "secrets:rabbitmq:admin_password"),
    ("db1:var/log/salt/master", "secrets:airflow:fernet_key"),
    ("af1:var/log/syslog", "secrets:grafana:admin_password"),
    ("af1:etc/airflow-ha/pki/copy.key", "tls:key of db1"),
    ("af1:tmp/x", "the CA key"),
    ("db1:etc/somewhere.pem", "the CA key"),
    ("af1:opt/airflow/logs/dag_id=x/attempt=1.log", "secrets:postgres:airflow_password"),
])
def test_a_secret_where_it_must_not_be_is_found_by_its_key_not_its_value(lab, secrets_dir, where, label):
    roots, values, _ = lab
    host, path = where.split(":")
    value = values[label]
    # a job return or a log line holds a PEM with its newlines escaped
    put(roots[host] / path, "ret: " + value.replace("\n", "\\n") + " end", 0o600)
    text = findings(lab, secrets_dir)
    assert f"{host}: {label} in /{path}" in text
    assert value.splitlines()[0 if "\n" not in value else 1] not in text


def test_a_world_readable_or_group_shared_secret_file_is_found(lab, secrets_dir, monkeypatch):
    roots, values, _ = lab
    (roots["db1"] / "etc/patroni/config.yml").chmod(0o644)
    (roots["af1"] / "etc/airflow-ha/pki/etcd.key").chmod(0o640)
    monkeypatch.setattr(drill_secrets, "SHARED_GROUPS", drill_secrets.SHARED_GROUPS | {MY_GROUP})
    text = findings(lab, secrets_dir)
    assert "db1: /etc/patroni/config.yml (secrets:postgres:replication_password; 644" in text
    assert "is readable by others" in text
    assert "af1: /etc/airflow-ha/pki/etcd.key (tls:key of af1; 640" in text and "a private key or Salt's state cache, readable" in text
    assert f"af1: /etc/default/airflow (secrets:postgres:airflow_password; 640 {ME}:{MY_GROUP}) is readable by group" \
        in text


def test_salts_own_state_cache_on_a_minion_may_hold_its_secrets_owner_only(lab, secrets_dir, monkeypatch):
    roots, values, _ = lab
    monkeypatch.setattr(drill_secrets, "SHARED_GROUPS", drill_secrets.SHARED_GROUPS - {MY_GROUP})
    cache = roots["af1"] / "var/cache/salt/minion/highstate.cache.p"
    put(cache, "password: " + values["secrets:airflow:admin_password"])
    assert run(lab, secrets_dir)["service_files"] == 7
    cache.chmod(0o640)
    assert "af1: /var/cache/salt/minion/highstate.cache.p (secrets:airflow:admin_password; 640" \
        in findings(lab, secrets_dir)
    put(roots["af1"] / "var/cache/salt/minion/proc/2026", "x " + values["secrets:airflow:admin_password"])
    assert "af1: secrets:airflow:admin_password in /var/cache/salt/minion/proc/2026" in findings(lab, secrets_dir)


def test_a_host_may_hold_the_secrets_of_its_roles_only():
    """What the drill allows a host: the keys pillar gives it (pillar/role_secrets.yaml), nothing else."""
    af1, db1 = drill_secrets.role_labels(INV, "af1"), drill_secrets.role_labels(INV, "db1")
    assert {"secrets:airflow:fernet_key", "secrets:postgres:airflow_password", "secrets:rabbitmq:airflow_password",
            "secrets:airflow:admin_password"} <= af1
    assert not {"secrets:postgres:superuser_password", "secrets:rabbitmq:erlang_cookie", "secrets:ldap:admin_password",
                "secrets:card:ssh_private_key", "secrets:ftp:password"} & af1  # no worker, no card target, no ftp
    assert {"secrets:postgres:superuser_password", "secrets:patroni:restapi_password"} <= db1
    assert "secrets:airflow:fernet_key" not in db1


@pytest.mark.parametrize("where, label", [
    # a service's own file on a host none of whose roles uses the secret: pillar gave it too much
    ("af1:etc/default/airflow", "secrets:postgres:superuser_password"),
    ("af1:opt/airflow/admin_passwords.json", "secrets:ldap:admin_password"),
    ("af1:var/cache/salt/minion/highstate.cache.p", "secrets:rabbitmq:erlang_cookie"),
    ("db1:etc/patroni/config.yml", "secrets:airflow:fernet_key"),
])
def test_a_secret_of_a_role_the_host_lacks_is_found_even_where_services_keep_theirs(lab, secrets_dir, where, label):
    roots, values, _ = lab
    host, path = where.split(":")
    target = roots[host] / path
    # beside the host's own secrets of the lab fixture (mode kept), or a new 0600 file of a service
    put(target, (target.read_text() if target.exists() else "") + f"leaked={values[label]}\n",
        target.stat().st_mode & 0o777 if target.exists() else 0o600)
    text = findings(lab, secrets_dir)
    roles = ", ".join(INV["hosts"][host]["roles"])
    assert f"{host}: {label} in /{path}: none of its roles ({roles}) uses it" in text
    assert values[label] not in text


def test_the_repo_on_a_minion_and_a_world_readable_job_cache_are_found(lab, secrets_dir):
    roots, _, _ = lab
    (roots["af1"] / "srv/airflow-ha").mkdir(parents=True)
    for d in ("var", "var/cache", "var/cache/salt", "var/cache/salt/master", "var/cache/salt/master/jobs",
              "var/cache/salt/master/pillar"):
        (roots["db1"] / d).chmod(0o755)
    text = findings(lab, secrets_dir)
    assert "db1: /var/cache/salt/master/pillar is mode 755 and reachable by others" in text
    assert "af1: the repo (with .secrets/) is mounted at /srv/airflow-ha on a minion" in text
    assert "db1: /var/cache/salt/master/jobs is mode 755 and reachable by others" in text


def test_an_open_job_cache_inside_an_owner_only_cache_dir_is_not_reachable(lab, secrets_dir):
    # Salt makes jobs/ 0755 itself; the 0700 directory above it keeps others out
    roots, _, _ = lab
    for d in ("var", "var/cache", "var/cache/salt"):
        (roots["db1"] / d).chmod(0o755)
    (roots["db1"] / "var/cache/salt/master").chmod(0o700)
    (roots["db1"] / "var/cache/salt/master/jobs").chmod(0o755)
    try:
        text = run(lab, secrets_dir)
    except AssertionError as err:  # other findings of this fake host may remain; not this one
        text = str(err)
    assert "/var/cache/salt/master/jobs" not in str(text)


def test_this_machines_secrets_dir_must_be_owner_only(lab, secrets_dir):
    _, _, repo = lab
    (repo / ".secrets").chmod(0o755)
    assert "/.secrets is mode 755: 0700" in findings(lab, secrets_dir)


def test_the_drill_is_registered_after_security():
    import drill

    assert drill.DRILLS[drill.DRILLS.index("security") + 1] == "secrets"


def test_a_line_every_openssh_key_shares_names_no_secret(secrets_dir):
    """The first body line of an unencrypted ed25519 key is the same in every such key (each host's own SSH
    host key too): searching it would report any host's host key as the card target's."""
    values = drill_secrets.secret_values(secrets_dir)
    keys = [v for k, v in values.items() if k.endswith("_private_key") and "OPENSSH" in v]
    assert len(keys) >= 2 and len({k.splitlines()[1] for k in keys}) == 1  # the shared header line
    strings = drill_secrets.patterns(values)
    assert not [s for s in strings if s.startswith(drill_secrets.OPENSSH_HEADER)]
    for key in keys:  # each key is still found by lines of its own
        assert any(line.strip() in strings for line in key.splitlines()[2:])
    shared = "x" * 50
    assert shared not in drill_secrets.patterns({"a": f"-----\n{shared}\n{'a' * 50}\n", "b": f"-----\n{shared}\n"})


def fake_process(root, pid, cmdline, environ="", uid=0):
    proc = root / "proc" / str(pid)
    put(proc / "cmdline", cmdline, 0o444)
    put(proc / "environ", environ, 0o400)
    put(proc / "comm", cmdline.split("\0")[0].rsplit("/", 1)[-1] + "\n", 0o444)
    os.chown(proc, uid, uid)
    return proc


@pytest.mark.skipif(os.getuid() != 0, reason="the fake processes of a login user are chowned to uid 1000")
def test_a_secret_in_a_process_argument_or_a_login_users_environment_is_found(lab, secrets_dir, monkeypatch):
    roots, values, _ = lab
    monkeypatch.setattr(drill_secrets, "SHARED_GROUPS", drill_secrets.SHARED_GROUPS - {MY_GROUP})
    secret = values["secrets:rabbitmq:airflow_password"]
    # a service's own environment (its system user and root read it) and clean arguments: no finding
    fake_process(roots["af1"], 200, "/usr/bin/celery\0worker\0", f"BROKER_PASSWORD={secret}\0", uid=0)
    fake_process(roots["af1"], 201, "/bin/bash\0", "HOME=/home/vagrant\0", uid=1000)
    assert run(lab, secrets_dir)["processes"] == 2
    fake_process(roots["af1"], 300, f"/usr/bin/psql\0postgresql://airflow:{secret}@db\0")
    fake_process(roots["db1"], 301, "/bin/bash\0", f"PGPASSWORD={values['secrets:postgres:superuser_password']}\0",
                 uid=1000)
    text = findings(lab, secrets_dir)
    assert "af1: secrets:rabbitmq:airflow_password in the arguments of process 300" in text and "psql" in text
    assert "db1: secrets:postgres:superuser_password in the environment of process 301" in text
    assert "process 200" not in text and "process 201" not in text
    assert secret not in text
