"""Fixtures of the unit tests that load the custom modules with stubbed dunders."""

import pytest

from tests.helpers.inventory import load_inventory, load_ports

import gen_secrets


@pytest.fixture(scope="module")
def secrets():
    """Throwaway secrets of every kind (tools/gen_secrets.py)."""
    tree = {}
    gen_secrets.fill(tree)
    return tree


@pytest.fixture
def inventory_dunders(secrets):
    """ha_inventory's dunders: the full topology, port map, secrets and the map of which secrets each role's
    hosts hold (pillar/role_secrets.sls gives it to every minion), minion sql1. TLS (on by default,
    tests/unit/test_gen_tls.py) off: these tests are about the inventory and secrets."""
    from _modules.ha_inventory import read_role_secrets

    return {"__pillar__": {"inventory": load_inventory("full"), "secrets": secrets, "ports": load_ports(),
                           "tls": {"enabled": False}, "role_secrets": read_role_secrets()},
            "__grains__": {"id": "sql1"}, "__opts__": {}}


@pytest.fixture
def http_utils():
    """__utils__ of a module that calls the shared HTTP client (_utils/ha_http.py), as a minion loads it."""
    from _utils import ha_http

    return {f"ha_http.{name}": getattr(ha_http, name) for name in ("request", "ssl_context")}
