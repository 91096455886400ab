"""Fixtures shared by every test area (each area adds its own conftest)."""

import faulthandler
import os
import sys
import threading
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


# How long pytest may take to exit once its summary is printed. A thread or a child process left running
# (a plugin's, a library's) makes the interpreter wait for it at exit: one CI run hung 55 min after its summary,
# until CI's limit killed it, with no trace of what it waited for.
EXIT_GRACE_S = 120


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    status = getattr(config, "_airflow_ha_exitstatus", 1)

    def exit_hung():
        print(f"\npytest has not exited {EXIT_GRACE_S} s after its summary: the stacks of its threads, "
              f"then exit with the session's status {status}", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(status)

    left = [t.name for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if left:
        print(f"\nthreads still running at pytest's exit (the interpreter waits for them): {left}",
              file=sys.stderr, flush=True)
    watchdog = threading.Timer(EXIT_GRACE_S, exit_hung)
    watchdog.daemon = True
    watchdog.start()


def pytest_sessionfinish(session, exitstatus):
    session.config._airflow_ha_exitstatus = int(exitstatus)
