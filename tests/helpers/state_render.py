"""The render fixtures of the tests (session-wide Salt environments with
throwaway secrets, plain and with TLS); the rendering itself is
tools/clusters/state_render.py, which the drills use too."""

import pytest

from clusters.state_render import (  # noqa: F401  (state_source, state_args, ...: for the tests that import them here)
    compiler, context_getter, make_salt_env, render_state_template, renderer, state_args, state_source)


@pytest.fixture(scope="session")
def salt_env(tmp_path_factory):
    return make_salt_env(tmp_path_factory.mktemp("monitoring-render"))


@pytest.fixture(scope="session")
def hostile_salt_env(tmp_path_factory):
    """salt_env with passwords full of the characters their consumers must carry (tests/helpers/hostile_secrets.py)."""
    from tests.helpers.hostile_secrets import hostile_secrets

    return make_salt_env(tmp_path_factory.mktemp("hostile-render"), secrets=hostile_secrets())


@pytest.fixture(scope="session")
def render_state_file(salt_env):
    """render_state_file(host, topology, sls, state_id, os_name="debian12", **context overrides) -> text"""
    return renderer(salt_env)


@pytest.fixture(scope="session")
def state_file_context(salt_env):
    """state_file_context(host, topology, sls, state_id, os_name="debian12") -> the `context` the state passes"""
    return context_getter(salt_env)


@pytest.fixture(scope="session")
def tls_salt_env(tmp_path_factory):
    """(secrets dir, cache): pillar tls:enabled, the CA in the secrets file, the signing policies (tls/ca.sls)."""
    return make_salt_env(tmp_path_factory.mktemp("tls-render"), tls=True)


@pytest.fixture(scope="session")
def tls_render_state_file(tls_salt_env):
    """render_state_file with pillar tls:enabled"""
    return renderer(tls_salt_env)


@pytest.fixture(scope="session")
def tls_state_file_context(tls_salt_env):
    """state_file_context with pillar tls:enabled"""
    return context_getter(tls_salt_env)


@pytest.fixture(scope="session")
def compiled_sls(salt_env):
    """compiled_sls(host, topology, sls, os_name="debian12") -> {state id: its arguments, ``fun`` included}"""
    return compiler(salt_env)


@pytest.fixture(scope="session")
def tls_compiled_sls(tls_salt_env):
    """compiled_sls with pillar tls:enabled"""
    return compiler(tls_salt_env)
