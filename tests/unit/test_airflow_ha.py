"""Unit tests of _modules/airflow_ha.py (no Airflow needed)."""

import pytest
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha

GOOD = {"major": 3, "version": "3.3.2", "api_port": 8080, "log_server_port": 8793, "flower_port": 5555,
        "scheduler_health_port": 8974, "db_port": 5000, "amqp_port": 5672, "worker_concurrency": 8}


@pytest.fixture
def configure_loader_modules():
    return {airflow_ha: {}}


def test_db_url_quotes_password():
    url = airflow_ha.db_url("airflow", "p@ss/w:rd", "10.0.0.100", 5000, "airflow")
    assert url == "postgresql+psycopg2://airflow:p%40ss%2Fw%3Ard@10.0.0.100:5000/airflow"


def test_result_backend_scheme():
    assert airflow_ha.db_url("a", "b", "h", "5000", "d", "db+postgresql").startswith("db+postgresql://a:b@h:5000/d")


def test_broker_url_lists_all_hosts():
    url = airflow_ha.broker_url("airflow", "x", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], 5672, "airflow")
    assert url.split(";") == ["amqp://airflow:x@10.0.0.%d:5672/airflow" % i for i in (1, 2, 3)]


@pytest.mark.parametrize("func,args", [
    (airflow_ha.broker_url, ("a", "x", [], 5672, "v")),
    (airflow_ha.broker_url, ("a", "", ["h"], 5672, "v")),
    (airflow_ha.db_url, ("a", "", "h", 5000, "d")),
])
def test_urls_refuse_missing_inputs(func, args):
    with pytest.raises(CommandExecutionError):
        func(*args)


def test_check_settings_ok():
    assert airflow_ha.check_settings(GOOD) is True


@pytest.mark.parametrize("key,value,words", [
    ("major", 4, "airflow:major"),
    ("version", "2.11.0", "airflow:version"),
    ("api_port", "http", "airflow:api_port"),
    ("worker_concurrency", 0, "airflow:worker_concurrency"),
])
def test_check_settings_names_key(key, value, words):
    with pytest.raises(CommandExecutionError, match=words):
        airflow_ha.check_settings(dict(GOOD, **{key: value}))


def test_health_parses_airflow3(monkeypatch):
    data = {"metadatabase": {"status": "healthy"}, "scheduler": {"status": "healthy"},
            "triggerer": {"status": "unhealthy"}, "dag_processor": {"status": "healthy"}}
    monkeypatch.setattr(airflow_ha, "_get_json", lambda url, timeout: data)
    out = airflow_ha.health(major=3)
    assert out["healthy"] is False and out["components"]["triggerer"] == "unhealthy"
    data["triggerer"]["status"] = "healthy"
    assert airflow_ha.health(major=3)["healthy"] is True


def test_health_unreachable_raises():
    with pytest.raises(CommandExecutionError, match="unreachable"):
        airflow_ha.health(url="http://127.0.0.1:48999", timeout=1)
