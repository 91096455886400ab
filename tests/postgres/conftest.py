import tempfile

import pytest

from tests.helpers.patroni_cluster import PatroniCluster


@pytest.fixture(scope="session")
def patroni_contexts(state_file_context):
    """The contexts the etcd and postgres states pass to their templates (compact db1, Debian)."""
    return (state_file_context("db1", "compact", "etcd", "etcd-config"),
            state_file_context("db1", "compact", "postgres", "postgres-patroni-config"))


@pytest.fixture(scope="module")
def cluster(patroni_contexts):
    # not under pytest's tmp dir: that is root-only, and PostgreSQL runs as postgres
    workdir = tempfile.mkdtemp(prefix="airflow-ha-patroni-", dir="/var/tmp")
    with PatroniCluster(*patroni_contexts, workdir) as running:
        yield running
