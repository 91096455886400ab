"""The clients of the database tier with pillar tls:enabled (the default):
HAProxy checks the Patroni REST API with check-ssl against the cluster CA,
Airflow's DB URLs verify the server (sslmode=verify-full, the CA), Prometheus
scrapes etcd (client certificate) and Patroni over https; each host of those
roles gets the pki state's CA first. Without TLS the same files stay plain."""

import multiprocessing
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from tests.haproxy.conftest import compile_state

CA = "/etc/airflow-ha/pki/ca.crt"
CERT = "/etc/airflow-ha/pki/host.crt"
PROMETHEUS_KEY = "/etc/airflow-ha/pki/prometheus.key"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"

# (host, topology, sls, state id, os)
JOBS = [
    ("af1", "compact", "haproxy", "haproxy-config", "debian12"),
    ("haproxy2", "full", "haproxy", "haproxy-config", "rocky9"),
    ("af1", "compact", "airflow.scheduler", "airflow-env", "debian12"),
    ("worker1", "full", "airflow.worker", "airflow-env", "rocky9"),
    ("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config", "debian12"),
    ("monitor1", "full", "monitoring.prometheus", "monitoring-prometheus-tls-key", "rocky9"),
]
PLAIN_JOBS = [
    ("af1", "compact", "haproxy", "haproxy-config", "debian12"),
    ("af1", "compact", "airflow.scheduler", "airflow-env", "debian12"),
    ("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config", "debian12"),
]

AIRFLOW_DEFAULTS = yaml.safe_load((Path(__file__).resolve().parents[2] / "salt" / "airflow" / "defaults.yaml").read_text())


def _compile(env, jobs):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2, maxtasksperchild=1) as pool:
        pending = [pool.apply_async(compile_state, (h, t, sls, sid, os_name, *env)) for h, t, sls, sid, os_name in jobs]
        return {job[:4]: p.get(timeout=300) for job, p in zip(jobs, pending)}


@pytest.fixture(scope="module")
def tls(tls_salt_env):
    return _compile(tls_salt_env, JOBS)


@pytest.fixture(scope="module")
def plain(salt_env):
    return _compile(salt_env, PLAIN_JOBS)


def ok(result):
    assert "errors" not in result, result.get("errors")
    return result


def server_lines(text, proxy):
    block = text.split(f"listen {proxy}\n", 1)[1].split("\n\n", 1)[0]
    return [line.strip() for line in block.splitlines() if line.strip().startswith("server ")]


# ------------------------------------------------------------------ HAProxy


def test_haproxy_checks_patroni_over_https_verified_against_the_ca(tls):
    for key in (("af1", "compact", "haproxy", "haproxy-config"), ("haproxy2", "full", "haproxy", "haproxy-config")):
        result = ok(tls[key])
        for proxy in ("postgres_rw", "postgres_ro"):
            lines = server_lines(result["text"], proxy)
            assert len(lines) == 3
            for line in lines:
                name = line.split()[1]
                assert line.endswith(f"check port 8008 check-ssl verify required ca-file '{CA}' verifyhost {name}")
        # the HTTP backends are not touched
        assert all("check-ssl" not in line for line in server_lines(result["text"], "airflow"))
        # the CA file is there before the config is checked and loaded
        assert {"file": "pki-ca-cert"} in result["args"]["require"]
        assert "pki-ca-cert" in result["ids"] and "pki-host-cert" in result["ids"]


def test_haproxy_accepts_the_check_ssl_config(tls, tmp_path):
    import gen_tls

    ca = tmp_path / "ca.crt"
    ca.write_bytes(gen_tls.cert_pem(gen_tls.create_ca()[1]))
    # the https frontends' certificate and key (salt/haproxy haproxy-tls-pem), a throwaway pair here
    key = gen_tls.new_key()
    ca_key, ca_cert = gen_tls.create_ca()
    pem = tmp_path / "haproxy.pem"
    pem.write_bytes(gen_tls.cert_pem(gen_tls.issue_host_cert(ca_key, ca_cert, key, "af1", ["af1"], ["127.0.0.1"]))
                    + gen_tls.key_pem(key))
    text = (tls[("af1", "compact", "haproxy", "haproxy-config")]["text"].replace(CA, str(ca))
            .replace("/etc/airflow-ha/pki/haproxy.pem", str(pem)))
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(text)
    proc = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_haproxy_without_tls_keeps_plain_http_checks(plain):
    result = ok(plain[("af1", "compact", "haproxy", "haproxy-config")])
    assert all("check-ssl" not in line and "ca-file" not in line
               for proxy in ("postgres_rw", "postgres_ro") for line in server_lines(result["text"], proxy))
    assert all(line.endswith("check port 8008") for line in server_lines(result["text"], "postgres_rw"))
    assert "pki-ca-cert" not in result["ids"]


# ------------------------------------------------------------------ Airflow


def env_values(text):
    out = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            out[key] = value.strip("'")
    return out


@pytest.mark.parametrize("key,vip", [(("af1", "compact", "airflow.scheduler", "airflow-env"), "10.83.0.100"),
                                     (("worker1", "full", "airflow.worker", "airflow-env"), "192.168.83.210")])
def test_airflow_db_urls_verify_the_server_through_the_vip(tls, key, vip):
    result = ok(tls[key])
    env = env_values(result["text"])
    for name in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__RESULT_BACKEND"):
        url = urllib.parse.urlsplit(env[name])
        # the VIP's IP: the PostgreSQL members' certificates carry it (tools/gen_tls.py THROUGH_VIPS)
        assert url.hostname == vip and url.port == 5000
        options = {k: str(v) for k, v in AIRFLOW_DEFAULTS["db_options"].items()}
        assert dict(urllib.parse.parse_qsl(url.query)) == {"sslmode": "verify-full", "sslrootcert": CA, **options}
    # the CA is installed before the file naming it; the file stays private
    assert {"file": "pki-ca-cert"} in result["args"]["require"]
    assert result["args"]["mode"] == "0640" and result["args"]["show_changes"] is False


def test_airflow_db_urls_without_tls_are_plain(plain):
    env = env_values(ok(plain[("af1", "compact", "airflow.scheduler", "airflow-env")])["text"])
    assert "sslmode" not in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert "sslmode" not in env["AIRFLOW__CELERY__RESULT_BACKEND"]


# --------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_etcd_with_a_client_certificate_and_patroni_over_https(tls, tmp_path):
    import gen_tls

    result = ok(tls[("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config")])
    jobs = {j["job_name"]: j for j in yaml.safe_load(result["text"])["scrape_configs"]}
    assert jobs["etcd"]["scheme"] == "https"
    assert jobs["etcd"]["tls_config"] == {"ca_file": CA, "cert_file": CERT, "key_file": PROMETHEUS_KEY}
    assert jobs["patroni"]["scheme"] == "https" and jobs["patroni"]["tls_config"] == {"ca_file": CA}
    for other in ("node", "postgres", "rabbitmq", "haproxy", "prometheus", "alertmanager"):
        assert "scheme" not in jobs[other] and "tls_config" not in jobs[other]
    # promtool checks that the files exist: the config state requires them
    require = result["args"]["require"]
    for req in ({"file": "pki-ca-cert"}, {"x509": "pki-host-cert"}, {"file": "monitoring-prometheus-tls-key"}):
        assert req in require
    # the real promtool accepts it (files moved here)
    ca_key, ca_cert = gen_tls.create_ca()
    key = gen_tls.new_key()
    files = {CA: gen_tls.cert_pem(ca_cert),
             CERT: gen_tls.cert_pem(gen_tls.issue_host_cert(ca_key, ca_cert, key, "db3", ["db3"], ["10.83.0.13"])),
             PROMETHEUS_KEY: gen_tls.key_pem(key)}
    text = result["text"].replace("/etc/prometheus/rules/*.yml", str(tmp_path / "rules" / "*.yml"))
    for path, data in files.items():
        local = tmp_path / path.rsplit("/", 1)[1]
        local.write_bytes(data)
        text = text.replace(path, str(local))
    (tmp_path / "prometheus.yml").write_text(text)
    proc = subprocess.run([PROMTOOL, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_prometheus_has_its_own_private_copy_of_the_host_key(tls):
    args = ok(tls[("monitor1", "full", "monitoring.prometheus", "monitoring-prometheus-tls-key")])["args"]
    # a copy of the key the host made (salt/pki), never key material in the state's arguments
    assert args["name"] == PROMETHEUS_KEY and args["source"] == "/etc/airflow-ha/pki/host.key"
    assert {"x509": "pki-host-key"} in args["require"]
    assert (args["user"], args["group"], args["mode"]) == ("prometheus", "prometheus", "0600")
    assert args["show_changes"] is False and "contents" not in args


def test_prometheus_without_tls_scrapes_plain_http(plain):
    result = ok(plain[("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config")])
    jobs = {j["job_name"]: j for j in yaml.safe_load(result["text"])["scrape_configs"]}
    assert all("scheme" not in j and "tls_config" not in j for j in jobs.values())
    assert "monitoring-prometheus-tls-key" not in result["ids"]
