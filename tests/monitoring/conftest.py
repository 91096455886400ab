"""Render helpers with extra pillar (monitoring settings a site would set)."""

import pytest
import yaml

from tests.helpers.state_render import compiler as _compiler, make_salt_env as _make_salt_env, renderer as _renderer


def salt_env_with_pillar(tmp, pillar, tls=False):
    """A render environment whose pillar also holds ``pillar`` (top-level keys): its ``secrets`` (and
    ``tls``) go into the secrets file, the rest, a site's settings, into lab.sls beside it, which
    pillar/top.sls gives every host (the secrets file gives each host its roles' secrets only)."""
    secrets_dir, cache = _make_salt_env(tmp, tls=tls)
    path = f"{secrets_dir}/airflow_ha_secrets.sls"
    with open(path) as f:
        text = f.read()
    data = yaml.safe_load(text)
    settings = {}
    for key, value in pillar.items():
        target = data if key in ("secrets", "tls") else settings
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            target[key].update(value)
        else:
            target[key] = value
    with open(path, "w") as f:
        f.write(yaml.safe_dump(data))
    with open(f"{secrets_dir}/lab.sls", "w") as f:
        f.write(yaml.safe_dump(settings))
    return secrets_dir, cache


@pytest.fixture(scope="session")
def pillar_renderer(tmp_path_factory):
    """pillar_renderer(pillar, tls=False) -> (render_state_file, compiled_sls) with that extra pillar"""

    def make(pillar, tls=False):
        env = salt_env_with_pillar(tmp_path_factory.mktemp("monitoring-pillar"), pillar, tls)
        return _renderer(env), _compiler(env)

    return make
