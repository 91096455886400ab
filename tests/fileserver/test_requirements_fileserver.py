"""The pinned Airflow requirements reach a minion through Salt's fileserver.

`airflow.venv` manages `salt://airflow/files/<airflow:requirements>`; each of the
files is a link into `requirements/` (the one pinned copy, which `make deps`
and tools/pin_airflow.sh use). A minion gets them the way it gets every file:
`cp.get_file` from the file_roots, here the repo's `salt/` as on a master.
"""

import os
import subprocess

import pytest

from tests.helpers.inventory import REPO

REQUIREMENTS = ("airflow-2.txt", "airflow-3.txt", "airflow-3.3.1.txt")  # the last: the previous release (orch.airflow_upgrade)


@pytest.mark.parametrize("name", REQUIREMENTS)
def test_fileserver_serves_the_pinned_requirements(loaders, tmp_path, name):
    dest = tmp_path / name
    got = loaders.modules.cp.get_file(f"salt://airflow/files/{name}", str(dest))
    assert got == str(dest), f"the fileserver did not serve salt://airflow/files/{name}: {got!r}"
    served = dest.read_text()
    assert served == (REPO / "requirements" / name).read_text()
    major = name.split("-")[1].split(".")[0]
    pins = [line for line in served.splitlines() if line and not line.startswith("#")]
    assert any(line.startswith("apache-airflow==" + major + ".") for line in pins), pins[:5]
    assert all("==" in line for line in pins), [line for line in pins if "==" not in line]


@pytest.mark.parametrize("name", REQUIREMENTS)
def test_requirements_are_links_in_git(name):
    """A checkout without core.symlinks turns a link into a one-line file: git must hold a link."""
    path = f"salt/airflow/files/{name}"
    out = subprocess.run(["git", "ls-files", "-s", path], cwd=REPO, capture_output=True, text=True).stdout
    if not out:
        pytest.skip("not a git checkout")
    assert out.split()[0] == "120000", f"{path} is not a symlink in git: {out}"
    assert os.readlink(REPO / path) == f"../../../requirements/{name}"


def test_the_default_requirements_file_is_served(loaders):
    """airflow:requirements of defaults.yaml names one of the served files."""
    import yaml

    defaults = yaml.safe_load((REPO / "salt" / "airflow" / "defaults.yaml").read_text())
    assert defaults["requirements"] in REQUIREMENTS
