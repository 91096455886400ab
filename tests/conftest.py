"""Fixtures shared by every test area (each area adds its own conftest)."""

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO))


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def minion_opts(tmp_path_factory):
    """Masterless minion opts that load the repo's own _modules and _states."""
    import salt.config

    tmp = tmp_path_factory.mktemp("minion")
    opts = salt.config.minion_config(None)
    opts.update(
        {
            "id": "test-minion",
            "file_client": "local",
            "file_roots": {"base": [str(REPO / "salt")]},
            "pillar_roots": {"base": [str(REPO / "pillar")]},
            "cachedir": str(tmp / "cache"),
            # not the machine's /var/cache/salt/minion/extmods (minion_config's default, computed before
            # cachedir moves): modules synced there by anything else would shadow the repo's own
            "extension_modules": str(tmp / "cache" / "extmods"),
            "module_dirs": [str(REPO / "_modules")],
            "states_dirs": [str(REPO / "_states")],
            "utils_dirs": [str(REPO / "_utils")],
        }
    )
    return opts


@pytest.fixture
def loaders(minion_opts):
    """pytest-salt-factories functional loaders over the repo's modules and states."""
    from saltfactories.utils.functional import Loaders

    loaders = Loaders(minion_opts)
    yield loaders
    loaders.reset_state()


# salt_env, render_state_file: a template rendered with its state's own context
from tests.helpers.state_render import (  # noqa: E402,F401
    compiled_sls, hostile_salt_env, render_state_file, salt_env, state_file_context, tls_compiled_sls,
    tls_render_state_file, tls_salt_env, tls_state_file_context)


@pytest.fixture(scope="session")
def generated_secrets(tmp_path_factory):
    """Throwaway secrets of every kind: (tree under `secrets`, path of the pillar file); the file
    turns TLS (on by default) off, so the hosts it serves need no certificates."""
    import yaml

    import gen_secrets

    tree = {}
    gen_secrets.fill(tree)
    path = tmp_path_factory.mktemp("secrets") / "airflow_ha_secrets.sls"
    path.write_text(yaml.safe_dump({"secrets": tree, "tls": {"enabled": False}}))
    path.chmod(0o600)
    return tree, str(path)
