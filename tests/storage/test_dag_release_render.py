"""The DAG folder states as every host compiles them: a release symlink whatever the distribution
(salt/dags on the compact topology's Airflow hosts, the NFS export's `current` on the full one), and
bad settings failing the render naming the key (docs/dag-deploy.md)."""

import pytest

from tests.monitoring.conftest import salt_env_with_pillar
from tests.helpers.state_render import compiler


def test_compact_airflow_hosts_keep_a_release_link(compiled_sls):
    states = compiled_sls("af1", "compact", "storage.dags")
    release = states["storage-dags-release"]
    assert release["fun"] == "dag_release.present"
    assert release["name"] == "/srv/airflow/dags" and release["source"] == "salt://dags"
    assert release["releases_dir"] == "/srv/airflow/dag-releases" and release["keep"] == 5
    assert not [s for s in states.values() if s["fun"] == "file.recurse"]  # no copy in place any more


def test_full_topology_links_the_folder_to_the_nfs_export_current(compiled_sls):
    states = compiled_sls("airflow", "full", "storage.dags")
    assert states["storage-dags-nfs-folder-link"]["target"] == "/srv/airflow/dag-share/current"
    assert states["storage-dags-nfs-fstab"]["name"] == "/srv/airflow/dag-share"
    server = compiled_sls("nfs2", "full", "storage.nfs")
    assert server["storage-nfs-dags-release"]["name"] == "/srv/nfs/dags/current"
    assert server["storage-nfs-dags-release"]["releases_dir"] == "/srv/nfs/dags/releases"


# the full topology's inventory has no `dags` key: pillar storage:dags:distribution decides there
@pytest.mark.parametrize("pillar, words", [
    ({"storage": {"dags": {"distribution": "git", "git": {"url": "https://git.example.com/dags.git", "rev": "main"}}}},
     "storage:dags:git needs url and rev, a full commit id"),
    ({"storage": {"releases": {"keep": 1}}}, "storage:releases:keep is 1: keep at least 2"),
])
def test_bad_settings_fail_the_render_naming_the_key(tmp_path, pillar, words):
    compiled = compiler(salt_env_with_pillar(tmp_path, pillar))
    with pytest.raises(RuntimeError, match=words):
        compiled("airflow", "full", "storage.dags")


def test_git_distribution_fetches_a_pinned_commit(tmp_path):
    rev = "0123456789abcdef0123456789abcdef01234567"
    compiled = compiler(salt_env_with_pillar(tmp_path, {"storage": {"dags": {
        "distribution": "git", "git": {"url": "https://git.example.com/dags.git", "rev": rev}}}}))
    states = compiled("airflow", "full", "storage.dags")
    assert states["storage-dags-git-package"]["name"] == "git"
    release = states["storage-dags-release"]
    assert release["source"] == "https://git.example.com/dags.git" and release["git_rev"] == rev
