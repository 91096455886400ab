"""What the rabbitmq and airflow states write for the broker side, rendered as
the states render it: node names and peers from the inventory, and Celery
settings for quorum queues that Airflow's config points at."""

import importlib.util


def test_every_node_lists_all_peers_and_names_itself_from_the_inventory(render_state_file):
    env = render_state_file("db2", "compact", "rabbitmq", "rabbitmq-env-config")
    assert "NODENAME=rabbit@db2" in env.splitlines()
    conf = render_state_file("db2", "compact", "rabbitmq", "rabbitmq-config", os_name="rocky9")
    peers = [line.split(" = ")[1] for line in conf.splitlines() if "classic_config.nodes." in line]
    assert peers == ["rabbit@db1", "rabbit@db2", "rabbit@db3"]
    assert "cluster_partition_handling = pause_minority" in conf


def test_airflow_points_celery_at_settings_for_quorum_queues(render_state_file, tmp_path):
    cfg = render_state_file("af1", "compact", "airflow.worker", "airflow-cfg")
    assert "celery_config_options = airflow_ha_celery.CELERY_CONFIG" in cfg.splitlines()
    path = tmp_path / "airflow_ha_celery.py"
    path.write_text(render_state_file("af1", "compact", "airflow.worker", "airflow-celery-config"))
    spec = importlib.util.spec_from_file_location("airflow_ha_celery", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = module.HA_SETTINGS
    assert settings["task_default_queue_type"] == "quorum" and settings["task_acks_late"] is True
    assert settings["broker_transport_options"]["confirm_publish"] is True
    merged = module.merged({"broker_transport_options": {"visibility_timeout": 21600}, "task_default_queue": "x"},
                           settings)
    assert merged["broker_transport_options"] == {"visibility_timeout": 21600, "confirm_publish": True}
    assert merged["task_default_queue"] == "x"


# --------------------------------------------------------------- TLS (pillar tls:enabled)
PKI = "/etc/airflow-ha/pki"


def test_without_tls_rabbitmq_listens_plain_and_airflow_uses_amqp(render_state_file):
    conf = render_state_file("db1", "compact", "rabbitmq", "rabbitmq-config").splitlines()
    assert "listeners.tcp.default = 5672" in conf and "management.tcp.port = 15672" in conf
    assert not [line for line in conf if "ssl" in line]
    env = render_state_file("af1", "compact", "airflow.worker", "airflow-env")
    assert "AIRFLOW__CELERY__BROKER_URL='amqp://airflow:" in env and ":5672/airflow" in env
    cfg = render_state_file("af1", "compact", "airflow.worker", "airflow-cfg").splitlines()
    assert "base_url = http://10.83.0.100:80" in cfg and not [line for line in cfg if line.startswith("ssl_")]


def test_with_tls_rabbitmq_listens_only_with_tls_on_the_host_certificate(tls_render_state_file):
    for os_name in ("debian12", "rocky9"):
        conf = tls_render_state_file("db2", "compact", "rabbitmq", "rabbitmq-config", os_name=os_name).splitlines()
        for line in ("listeners.tcp = none", "listeners.ssl.default = 5671",
                     f"ssl_options.cacertfile = {PKI}/ca.crt", f"ssl_options.certfile = {PKI}/host.crt",
                     f"ssl_options.keyfile = {PKI}/rabbitmq.key", "ssl_options.verify = verify_peer",
                     "ssl_options.fail_if_no_peer_cert = false", "management.ssl.port = 15671",
                     f"management.ssl.keyfile = {PKI}/rabbitmq.key", "prometheus.tcp.port = 15692"):
            assert line in conf, (os_name, line)
        assert not [line for line in conf if line.startswith(("listeners.tcp.default", "management.tcp."))]


def test_with_tls_rabbitmq_state_keeps_its_own_key_copy_and_reloads_certificates(tls_compiled_sls):
    states = tls_compiled_sls("db1", "compact", "rabbitmq")
    key = states["rabbitmq-tls-key"]
    assert key["fun"] == "file.managed" and key["name"] == f"{PKI}/rabbitmq.key"
    assert key["source"] == f"{PKI}/host.key" and "contents" not in key
    assert (key["user"], key["mode"], key["show_changes"]) == ("rabbitmq", "0600", False)
    assert {"x509": "pki-host-cert"} in states["rabbitmq-running"]["require"]
    reload = states["rabbitmq-tls-reload"]
    assert reload["name"] == "rabbitmqctl eval 'ssl:clear_pem_cache().'"
    assert {"file": "rabbitmq-tls-key"} in reload["onchanges"]
    # the private key never appears in any state's arguments
    assert "PRIVATE KEY" not in str(states)


def test_with_tls_airflow_talks_amqps_to_the_rabbitmq_ips_and_https_to_the_vip(tls_render_state_file,
                                                                                 tls_compiled_sls):
    import yaml

    from tests.helpers.inventory import REPO

    env = tls_render_state_file("af2", "compact", "airflow.worker", "airflow-env")
    url = env.split("AIRFLOW__CELERY__BROKER_URL='")[1].split("'")[0]
    hosts = [part.split("@")[1].split("/")[0] for part in url.split(";")]
    assert all(part.startswith("amqps://airflow:") for part in url.split(";"))
    assert hosts == ["10.83.0.11:5671", "10.83.0.12:5671", "10.83.0.13:5671"]
    # each address is a name of its host's certificate (tools/gen_tls.py: the inventory IP)
    import gen_tls

    inventory = yaml.safe_load((REPO / "pillar" / "inventory" / "compact.yaml").read_text())
    for name, host in zip(("db1", "db2", "db3"), hosts):
        assert host.split(":")[0] in gen_tls.host_names(inventory, name)[1]
    assert "10.83.0.100" in gen_tls.host_names(inventory, "af1")[1]  # the VIP, in the haproxy hosts' certificates

    cfg = tls_render_state_file("af2", "compact", "airflow.worker", "airflow-cfg").splitlines()
    for line in ("ssl_active = True", f"ssl_cacert = {PKI}/ca.crt", "ssl_mutual_tls = False",
                 "base_url = https://10.83.0.100:443", "execution_api_server_url = https://10.83.0.100:443/execution/",
                 f"ssl_ca_file = {PKI}/ca.crt"):
        assert line in cfg, line
    states = tls_compiled_sls("af2", "compact", "airflow.worker")
    assert {"file": "pki-ca-cert"} in states["airflow-cfg"]["require"]
    assert states["pki-ca-cert"]["contents_pillar"] == "tls:ca_cert"
