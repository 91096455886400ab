"""Render helpers with extra pillar (monitoring settings a site would set)."""

import pytest
import yaml

from tests.helpers.state_render import compiler as _compiler, make_salt_env as _make_salt_env, renderer as _renderer


def salt_env_with_pillar(tmp, pillar, tls=False):
    """A render environment whose pillar also holds ``pillar`` (top-level keys, beside the secrets)."""
    secrets_dir, cache = _make_salt_env(tmp, tls=tls)
    path = f"{secrets_dir}/airflow_ha_secrets.sls"
    with open(path) as f:
        text = f.read()
    data = yaml.safe_load(text)
    for key, value in pillar.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    with open(path, "w") as f:
        f.write(yaml.safe_dump(data))
    return secrets_dir, cache


@pytest.fixture(scope="session")
def pillar_renderer(tmp_path_factory):
    """pillar_renderer(pillar, tls=False) -> (render_state_file, compiled_sls) with that extra pillar"""

    def make(pillar, tls=False):
        env = salt_env_with_pillar(tmp_path_factory.mktemp("monitoring-pillar"), pillar, tls)
        return _renderer(env), _compiler(env)

    return make
