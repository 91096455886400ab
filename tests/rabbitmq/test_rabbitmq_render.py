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
