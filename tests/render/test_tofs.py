"""TOFS (salt/common/tofs.jinja): the haproxy config and airflow.cfg states
take a source list; a site's file in a file root before the repo's wins,
per host or per OS family, and without one the shipped template is used."""

import pytest

from tests.helpers.inventory import REPO

CASES = {  # state id -> (host, topology, sls, shipped template)
    "haproxy-config": ("af1", "compact", "haproxy", "salt://haproxy/files/haproxy.cfg.jinja"),
    "airflow-cfg": ("af1", "compact", "airflow.config", "salt://airflow/files/airflow.cfg.jinja"),
}


@pytest.fixture(scope="module")
def sources(compiled_sls):
    return {sid: compiled_sls(host, topo, sls)[sid]["source"] for sid, (host, topo, sls, _) in CASES.items()}


@pytest.mark.parametrize("state_id", CASES)
def test_source_list_is_host_then_os_family_then_shipped(sources, state_id):
    host, _, _, shipped = CASES[state_id]
    area, name = shipped[len("salt://"):].split("/files/")
    assert sources[state_id] == [f"salt://{area}/files/{host}/{name}", f"salt://{area}/files/Debian/{name}", shipped]


@pytest.mark.parametrize("state_id", CASES)
@pytest.mark.parametrize("override", ["host", "os_family", None])
def test_a_site_file_root_overrides_the_template(sources, minion_opts, tmp_path, state_id, override):
    """Salt's own choice (file.source_list, what file.managed calls) over file_roots [site, repo]."""
    host, _, _, shipped = CASES[state_id]
    site = tmp_path / "site"
    if override:
        rel = sources[state_id][0 if override == "host" else 1][len("salt://"):]
        (site / rel).parent.mkdir(parents=True)
        (site / rel).write_text("# the site's own\n")
    else:
        site.mkdir()
    from saltfactories.utils.functional import Loaders

    cache = tmp_path / "cache"
    loaders = Loaders(dict(minion_opts, file_roots={"base": [str(site), str(REPO / "salt")]}, cachedir=str(cache),
                           extension_modules=str(cache / "extmods")))
    chosen, _ = loaders.modules.file.source_list(sources[state_id], "", "base")
    expected = sources[state_id][{"host": 0, "os_family": 1, None: 2}[override]]
    assert chosen == expected
    got = loaders.modules.cp.get_file(chosen, str(tmp_path / "got"))
    assert got and ((tmp_path / "got").read_text() == "# the site's own\n") == bool(override)
    loaders.reset_state()
