"""RabbitMQ with pillar tls:enabled, against real programs: a 3-node cluster
started from the state's rabbitmq.conf rendered with TLS (certificates from
tools/gen_tls.py instead of /etc/airflow-ha/pki), the Airflow broker URL
(amqps) and the broker_use_ssl that Airflow's Celery provider builds from the
[celery] ssl_* lines the airflow state renders.

- the cluster forms and the CLI/state module work (Erlang distribution, not AMQP);
- no plain AMQP or management listener; AMQPS verified against the cluster CA
  (and the host name of the URL) connects, a client trusting another CA fails;
- the management API answers over https only;
- a Celery task round-trips over amqps with Airflow's own TLS settings.
"""

import configparser
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from clusters import tls_material
from tests.helpers.inventory import REPO
from clusters.rabbitmq import RabbitCluster

# lab_covered: the lab's broker runs TLS (Celery over amqps in every drill, the security drill's refusals);
# make test-loopback keeps the other-CA refusals
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.lab_covered]

VHOST = "airflow"
AIRFLOW_PYTHON = next(iter(sorted(Path("/var/cache/airflow-ha").glob("pin3/bin/python"))), None)


@pytest.fixture(scope="module")
def tls_rabbitmq_context(tls_state_file_context):
    return tls_state_file_context("db1", "compact", "rabbitmq", "rabbitmq-config")


@pytest.fixture(scope="module")
def tls_rabbit(tls_rabbitmq_context, generated_secrets, loaders_module):
    """A TLS-only 3-node cluster with the Airflow vhost and users, as the seed's states make them."""
    assert tls_rabbitmq_context["rabbitmq"]["tls"]["enabled"] is True
    workdir = tempfile.mkdtemp(prefix="airflow-ha-rabbitmq-tls-", dir="/var/tmp")
    os.chmod(workdir, 0o755)
    pki = tls_material.issue(os.path.join(workdir, "pki"), owner="rabbitmq")
    cookie = generated_secrets[0]["rabbitmq"]["erlang_cookie"]
    tls = {"ca_file": pki["ca"], "cert_file": pki["cert"], "key_file": pki["key"]}
    with RabbitCluster(tls_rabbitmq_context, cookie, workdir, base_port=41200, tls=tls) as cluster:
        cluster.pki = pki
        st, secrets = loaders_module.states.rabbitmq_ha, generated_secrets[0]["rabbitmq"]
        seed = cluster.nodes[0]
        ret = st.cluster_healthy(name="tls", nodes=cluster.nodes, timeout=240, node=seed)
        assert ret.result is True, ret.comment
        cluster.formed_after = time.monotonic() - cluster.started_at
        assert st.vhost_present(name=VHOST, default_queue_type="quorum", node=seed).result is True
        for user, password, tags in (("airflow", secrets["airflow_password"], []),
                                     ("admin", secrets["admin_password"], ["administrator"])):
            ret = st.user_present(name=user, password=password, tags=tags, permissions={VHOST: [".*", ".*", ".*"]},
                                  node=seed)
            assert ret.result is True, ret.comment
        yield cluster


@pytest.fixture(scope="module")
def loaders_module(minion_opts):
    from saltfactories.utils.functional import Loaders

    loaders = Loaders(minion_opts)
    yield loaders
    loaders.reset_state()


def _url(cluster, generated_secrets, loaders_module, nodes=(0, 1, 2)):
    password = generated_secrets[0]["rabbitmq"]["airflow_password"]
    hosts = [f"127.0.0.1:{cluster.ports(i)['amqps']}" for i in nodes]
    return loaders_module.modules.airflow_ha.broker_url("airflow", password, hosts, 5671, VHOST, scheme="amqps")


def _refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), 3).close()
    except ConnectionRefusedError:
        return True
    return False


def test_tls_cluster_forms_through_the_erlang_distribution(tls_rabbit, loaders_module):
    status = loaders_module.modules.rabbitmq_ha.cluster_status(node=tls_rabbit.nodes[2])
    assert status["running_nodes"] == sorted(tls_rabbit.nodes)
    print(f"\nFIGURE rabbitmq tls: 3 TLS-only nodes formed one cluster after {tls_rabbit.formed_after:.1f} s")


def test_no_plain_amqp_nor_plain_management_listener(tls_rabbit):
    for i in range(3):
        ports = tls_rabbit.ports(i)
        assert _refused(ports["amqp"]), f"plain AMQP answers on node {i}"
        assert _refused(ports["management"]), f"plain http management answers on node {i}"


def test_amqps_verified_against_the_cluster_ca_and_the_url_host_connects(tls_rabbit, generated_secrets,
                                                                          loaders_module):
    from kombu import Connection

    url = _url(tls_rabbit, generated_secrets, loaders_module)
    # server_hostname None: kombu checks the certificate names the host of the URL in use
    options = {"ca_certs": tls_rabbit.pki["ca"], "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
    with Connection(url, ssl=options, connect_timeout=10) as conn:
        conn.ensure_connection(max_retries=1)
        assert conn.connected and conn.transport.driver_type == "amqp"
        assert conn.connection.transport.sock.version() in ("TLSv1.3", "TLSv1.2")
        with conn.channel() as channel:
            channel.queue_declare("tls-probe", durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
            channel.queue_delete("tls-probe")


@pytest.mark.parametrize("trust", ["other CA", "system CAs"])
def test_amqps_client_trusting_another_ca_fails(tls_rabbit, generated_secrets, loaders_module, trust):
    from kombu import Connection
    from kombu.exceptions import OperationalError

    url = _url(tls_rabbit, generated_secrets, loaders_module, nodes=(0,))
    options = {"cert_reqs": ssl.CERT_REQUIRED}
    if trust == "other CA":
        options["ca_certs"] = tls_rabbit.pki["other_ca"]
    with Connection(url, ssl=options, connect_timeout=10) as conn:
        with pytest.raises((ssl.SSLError, OperationalError), match="CERTIFICATE_VERIFY_FAILED"):
            conn.ensure_connection(max_retries=1)


def test_management_api_over_https_only(tls_rabbit, generated_secrets):
    import base64

    port = tls_rabbit.ports(1)["management_tls"]
    req = urllib.request.Request(f"https://127.0.0.1:{port}/api/overview")
    auth = base64.b64encode(f"admin:{generated_secrets[0]['rabbitmq']['admin_password']}".encode()).decode()
    req.add_header("Authorization", f"Basic {auth}")

    def get():
        context = ssl.create_default_context(cafile=tls_rabbit.pki["ca"])
        with urllib.request.urlopen(req, timeout=10, context=context) as resp:
            return json.loads(resp.read())

    deadline = time.time() + 60
    while True:  # the management listener starts a little after the node
        try:
            overview = get()
            break
        except (ConnectionError, urllib.error.URLError) as exc:
            if isinstance(getattr(exc, "reason", None), ssl.SSLError) or time.time() > deadline:
                raise
            time.sleep(1)
    assert overview["cluster_name"]
    # Prometheus keeps scraping plain http on its own port (salt/monitoring: rabbitmq job)
    with urllib.request.urlopen(f"http://127.0.0.1:{tls_rabbit.ports(1)['prometheus']}/metrics", timeout=10) as resp:
        assert resp.status == 200 and b"rabbitmq_identity_info" in resp.read()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(req, timeout=10, context=ssl.create_default_context(cafile=tls_rabbit.pki["other_ca"]))


def _airflow_broker_use_ssl(cfg_text, url, ca_file, workdir):
    """broker_use_ssl as the pinned Airflow's Celery provider builds it from the rendered [celery] section."""
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string(cfg_text)
    env = {"PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(workdir), "AIRFLOW__CELERY__BROKER_URL": url,
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{workdir}/airflow.db"}
    for key, value in cfg["celery"].items():
        if key.startswith("ssl_"):
            env[f"AIRFLOW__CELERY__{key.upper()}"] = ca_file if key == "ssl_cacert" else value
    proc = subprocess.run([str(AIRFLOW_PYTHON), "-c", "import json; from airflow.providers.celery.executors."
                           "default_celery import DEFAULT_CELERY_CONFIG as c; print(json.dumps(c['broker_use_ssl']))"],
                          env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(AIRFLOW_PYTHON is None, reason="no pinned Airflow venv in /var/cache/airflow-ha/pin3")
def test_celery_task_round_trips_over_amqps_with_airflows_ssl_settings(tls_rabbit, generated_secrets, loaders_module,
                                                                        tls_render_state_file, tmp_path,
                                                                        monkeypatch):
    url = _url(tls_rabbit, generated_secrets, loaders_module)
    cfg = tls_render_state_file("af1", "compact", "airflow.worker", "airflow-cfg")
    use_ssl = _airflow_broker_use_ssl(cfg, url, tls_rabbit.pki["ca"], tmp_path)
    assert use_ssl == {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": tls_rabbit.pki["ca"]}  # no client certificate

    settings = tmp_path / "airflow_ha_celery.py"
    settings.write_text(tls_render_state_file("af1", "compact", "airflow.worker", "airflow-celery-config"))
    record = tmp_path / "record.txt"
    record.touch()
    env = dict(os.environ, BROKER_URL=url, BROKER_USE_SSL=json.dumps(use_ssl), HA_CELERY_FILE=str(settings),
               RECORD_FILE=str(record), PYTHONPATH=str(REPO))
    for key in ("BROKER_URL", "BROKER_USE_SSL", "HA_CELERY_FILE", "RECORD_FILE"):
        monkeypatch.setenv(key, env[key])
    log = tmp_path / "worker.log"
    worker = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "celery"), "-A", "tests.helpers.celery_drill_app", "worker",
         "-P", "threads", "-c", "2", "--without-gossip", "--without-mingle", "-l", "INFO"],
        cwd=str(REPO), env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT)
    try:
        sys.modules.pop("tests.helpers.celery_drill_app", None)
        from tests.helpers.celery_drill_app import app, record as record_task

        assert app.conf.broker_use_ssl == use_ssl
        started = time.monotonic()
        for seq in range(20):
            record_task.apply_async(args=[seq])
        try:
            tls_rabbit.wait(lambda: sorted(map(int, record.read_text().split())) == list(range(20)), 90,
                            "20 tasks to run over amqps", interval=1)
        except TimeoutError:
            raise AssertionError(log.read_text()[-3000:]) from None
        print(f"\nFIGURE rabbitmq tls: 20 Celery tasks round-tripped over amqps in {time.monotonic() - started:.1f} s")
        queues = {q["name"]: q for q in loaders_module.modules.rabbitmq_ha.list_queues(vhost=VHOST,
                                                                                      node=tls_rabbit.nodes[0])}
        assert queues["default"]["type"] == "quorum"
    finally:
        worker.terminate()
        worker.wait(30)
