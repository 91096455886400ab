"""The systemd unit template renders to units systemd-analyze accepts without warnings."""

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")]


def _venv(major):
    return Path(f"/var/cache/airflow-ha/pin{major}")


@pytest.mark.parametrize("major,name,args", [
    pytest.param(major, name, args, id=f"airflow{major}-{name}",
                 marks=pytest.mark.skipif(not _venv(major).exists(), reason="make deps builds the Airflow venvs"))
    for major, name, args in [(3, "scheduler", "scheduler"), (3, "worker", "celery worker"),
                              (3, "webserver", "api-server --port 48080 --proxy-headers"), (2, "webserver", "webserver --port 48080"),
                              (2, "dag-processor", "dag-processor")]])
def test_unit_verifies(tmp_path, major, name, args):
    area = REPO / "salt" / "airflow"
    settings = yaml.safe_load((area / "defaults.yaml").read_text())
    settings.update(yaml.safe_load((area / "osfamilymap.yaml").read_text())["Debian"])
    # existing paths on this host: verify checks ExecStart and the user exist
    settings.update(venv=str(_venv(major)), env_file="/dev/null", user="root", home=str(tmp_path))
    unit = tmp_path / f"airflow-{name}.service"
    unit.write_text(jinja2.Template((area / "files/airflow.service.jinja").read_text())
                    .render(airflow=settings, name=name, args=args))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # systemd-analyze exits 0 on unknown values but warns: any output is a defect
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr


def test_housekeeping_units_verify(tmp_path, compiled_sls):
    """airflow-db-clean and airflow-task-log-cleanup (.service, .timer) as airflow.housekeeping renders them
    on the first scheduler, with this host's paths and user."""
    compiled = compiled_sls("af1", "compact", "airflow.housekeeping")
    script = REPO / "salt/airflow/files/airflow-ha-db-clean"
    units = []
    for state_id in ("airflow-db-clean-service", "airflow-db-clean-timer", "airflow-task-log-cleanup-service",
                     "airflow-task-log-cleanup-timer"):
        name = Path(compiled[state_id]["name"]).name
        text = (compiled[state_id]["contents"].replace("User=airflow", "User=root").replace("Group=airflow", "Group=root")
                .replace("EnvironmentFile=/etc/default/airflow", "EnvironmentFile=/dev/null")
                .replace("/opt/airflow/bin/airflow-ha-db-clean", str(script)).replace("/opt/airflow", str(tmp_path)))
        (tmp_path / name).write_text(text)
        units.append(str(tmp_path / name))
    proc = subprocess.run(["systemd-analyze", "verify", *units], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
