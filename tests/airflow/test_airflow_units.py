"""The systemd unit template renders to units systemd-analyze accepts without warnings."""

import shutil
import subprocess
from pathlib import Path

import jinja2
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_VENV = Path("/var/cache/airflow-ha/pin3")

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing"),
              pytest.mark.skipif(not AIRFLOW_VENV.exists(), reason="run tools/pin_airflow.sh 3 3.3.2 first")]


@pytest.mark.parametrize("name,args", [("scheduler", "scheduler"), ("worker", "celery worker"),
                                       ("webserver", "api-server --port 48080")])
def test_unit_verifies(tmp_path, name, args):
    area = REPO / "salt" / "airflow"
    settings = yaml.safe_load((area / "defaults.yaml").read_text())
    settings.update(yaml.safe_load((area / "osfamilymap.yaml").read_text())["Debian"])
    # existing paths on this host: verify checks ExecStart and the user exist
    settings.update(venv=str(AIRFLOW_VENV), env_file="/dev/null", user="root", home=str(tmp_path))
    unit = tmp_path / f"airflow-{name}.service"
    unit.write_text(jinja2.Template((area / "files/airflow.service.jinja").read_text())
                    .render(airflow=settings, name=name, args=args))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # systemd-analyze exits 0 on unknown values but warns: any output is a defect
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
