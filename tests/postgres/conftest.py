import tempfile

import pytest

from clusters.patroni import PatroniCluster


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


@pytest.fixture(scope="session")
def tls_patroni_contexts(tls_state_file_context):
    """The same contexts from a pillar with tls:enabled (salt/pki paths, https, verify-full)."""
    return (tls_state_file_context("db1", "compact", "etcd", "etcd-config"),
            tls_state_file_context("db1", "compact", "postgres", "postgres-patroni-config"))


@pytest.fixture(scope="module")
def tls_cluster(tls_patroni_contexts):
    """The cluster with TLS everywhere (its own CA), on ports shifted by 50 from `cluster`'s."""
    workdir = tempfile.mkdtemp(prefix="airflow-ha-patroni-tls-", dir="/var/tmp")
    with PatroniCluster(*tls_patroni_contexts, workdir, offset=50) as running:
        yield running
