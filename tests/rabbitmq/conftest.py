import tempfile

import pytest

from clusters.templates import render_template
from clusters.rabbitmq import RabbitCluster


@pytest.fixture(scope="session")
def rabbitmq_context(state_file_context):
    """The context the rabbitmq state passes to rabbitmq.conf (compact db1, Debian)."""
    return state_file_context("db1", "compact", "rabbitmq", "rabbitmq-config")


@pytest.fixture(scope="session")
def celery_settings_file(state_file_context, tmp_path_factory):
    """airflow_ha_celery.py as the airflow state renders it for a worker."""
    ctx = state_file_context("af1", "compact", "airflow.worker", "airflow-celery-config")
    path = tmp_path_factory.mktemp("celery") / "airflow_ha_celery.py"
    path.write_text(render_template("airflow/files/airflow_ha_celery.py.jinja", ctx))
    return str(path)


@pytest.fixture(scope="module")
def rabbit(rabbitmq_context, generated_secrets):
    # not under pytest's tmp dir: that is root-only, and RabbitMQ runs as rabbitmq
    workdir = tempfile.mkdtemp(prefix="airflow-ha-rabbitmq-", dir="/var/tmp")
    cookie = generated_secrets[0]["rabbitmq"]["erlang_cookie"]
    with RabbitCluster(rabbitmq_context, cookie, workdir) as cluster:
        yield cluster
