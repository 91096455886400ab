"""The versioned virtualenvs of _modules/airflow_ha.py (orch.airflow_upgrade):
reading a venv's Airflow version, adopting the older layout (a real
directory at <home>/venv) and one host's switch, with systemd and the drain
stubbed: what is stopped, switched and started, in which order, and that a
host already switched is left alone."""

import os

import pytest
from salt.exceptions import CommandExecutionError

import _modules.airflow_ha as airflow_ha


@pytest.fixture
def configure_loader_modules():
    return {airflow_ha: {"__salt__": {}, "__grains__": {"id": "af1"}}}


def make_venv(path, version, shebang_path=None):
    """A venv's files as these functions read them: the dist-info, bin/airflow, bin/python (a symlink)."""
    site = path / "lib" / "python3.11" / "site-packages"
    (site / f"apache_airflow-{version}.dist-info").mkdir(parents=True)
    (site / f"apache_airflow-{version}.dist-info" / "METADATA").write_text(
        f"Metadata-Version: 2.4\nName: apache-airflow\nVersion: {version}\n\nlong text\n")
    (site / f"apache_airflow_core-{version}.dist-info").mkdir()
    (path / "bin").mkdir()
    os.symlink("/usr/bin/python3", path / "bin" / "python")
    script = path / "bin" / "airflow"
    script.write_text(f"#!{shebang_path or path}/bin/python\nimport sys\n")
    script.chmod(0o755)
    (path / "bin" / "activate").write_text("# no shebang\n")
    return path


def test_venv_version_is_read_from_the_dist_info(tmp_path):
    assert airflow_ha.venv_version(str(make_venv(tmp_path / "v", "3.3.1"))) == "3.3.1"
    assert airflow_ha.venv_version(str(tmp_path / "none")) is None


def test_adopt_moves_the_old_directory_beside_and_links_it_once(tmp_path):
    link = tmp_path / "venv"
    make_venv(link, "3.3.1")
    out = airflow_ha.adopt_venv(str(link), str(tmp_path))
    dest = tmp_path / "venv-3.3.1"
    assert out["changed"] is True and out["version"] == "3.3.1" and out["venv"] == str(dest)
    assert os.readlink(link) == str(dest) and (dest / "bin" / "airflow").is_file()
    # the scripts pip wrote for <home>/venv now name their own path; a symlink is left as it is
    assert (dest / "bin" / "airflow").read_text().startswith(f"#!{dest}/bin/python\n")
    assert os.access(dest / "bin" / "airflow", os.X_OK) and out["scripts"] == 1
    assert os.readlink(dest / "bin" / "python") == "/usr/bin/python3"
    # the second time (a symlink now): nothing
    assert airflow_ha.adopt_venv(str(link), str(tmp_path))["changed"] is False


def test_adopt_refuses_a_taken_path_or_a_directory_without_airflow(tmp_path):
    link = tmp_path / "venv"
    make_venv(link, "3.3.1")
    (tmp_path / "venv-3.3.1").mkdir()
    with pytest.raises(CommandExecutionError, match=r"af1: .* cannot move to .*venv-3.3.1: that path exists"):
        airflow_ha.adopt_venv(str(link), str(tmp_path))
    assert link.is_dir() and not link.is_symlink()
    empty = tmp_path / "other" / "venv"
    empty.mkdir(parents=True)
    with pytest.raises(CommandExecutionError, match="without apache-airflow"):
        airflow_ha.adopt_venv(str(empty))


class Systemd:
    """service.status/stop/start over a set of running units, each call recorded in order."""

    def __init__(self, running, failing=(), missing=()):
        self.running, self.failing, self.missing, self.calls = set(running), set(failing), set(missing), []

    def install(self):
        airflow_ha.__salt__.update({"service.status": self.status, "service.stop": self.stop,
                                    "service.start": self.start})
        return self

    def status(self, unit):
        return unit in self.running

    def stop(self, unit):
        self.calls.append(("stop", unit))
        self.running.discard(unit)
        return True

    def start(self, unit):
        self.calls.append(("start", unit))
        if unit in self.missing:
            # Salt's systemd module raises for a unit systemd does not know
            raise CommandExecutionError(f"Failed to start {unit}.service: Unit {unit}.service not found.")
        if unit in self.failing:
            return False
        self.running.add(unit)
        return True


@pytest.fixture
def layout(tmp_path):
    old, new = make_venv(tmp_path / "venv-3.3.1", "3.3.1"), make_venv(tmp_path / "venv-3.3.2", "3.3.2")
    link = tmp_path / "venv"
    os.symlink(old, link)
    return str(link), str(old), str(new)


def test_switch_drains_stops_switches_and_starts(layout, monkeypatch):
    link, old, new = layout
    systemd = Systemd({"airflow-scheduler", "airflow-worker"}).install()
    drained = []
    monkeypatch.setattr(airflow_ha, "drain_worker", lambda **kw: drained.append(kw) or {"tasks_finished": 2})
    out = airflow_ha.switch_venv(new, link, units=["airflow-scheduler", "airflow-worker", "airflow-triggerer"],
                                 drain=True, drain_timeout=90)
    assert drained == [{"timeout": 90, "interval": 5}]
    assert systemd.calls == [("stop", "airflow-scheduler"), ("stop", "airflow-worker"),
                             ("start", "airflow-scheduler"), ("start", "airflow-worker"),
                             ("start", "airflow-triggerer")]
    assert os.readlink(link) == new and out["changed"] is True and out["old"] == old
    assert not [p for p in os.listdir(os.path.dirname(link)) if ".airflow-ha-" in p]


def test_switch_of_a_host_already_on_the_target_does_nothing(layout, monkeypatch):
    link, old, new = layout
    systemd = Systemd({"airflow-worker"}).install()
    monkeypatch.setattr(airflow_ha, "drain_worker", lambda **kw: pytest.fail("drained"))
    out = airflow_ha.switch_venv(old, link, units=["airflow-worker"], drain=True)
    assert out["changed"] is False and systemd.calls == [] and os.readlink(link) == old


def test_a_standby_worker_that_was_stopped_stays_stopped(layout):
    link, _, new = layout
    systemd = Systemd(set()).install()
    airflow_ha.switch_venv(new, link, units=["airflow-worker"], only_running=["airflow-worker"])
    assert systemd.calls == [] and os.readlink(link) == new


def test_a_unit_that_does_not_start_names_the_host_and_the_way_back(layout):
    link, old, new = layout
    Systemd({"airflow-scheduler"}, failing={"airflow-scheduler"}).install()
    with pytest.raises(CommandExecutionError) as err:
        airflow_ha.switch_venv(new, link, units=["airflow-scheduler"])
    assert "af1: airflow-scheduler did not start" in str(err.value) and f"ln -sfn {old} {link}" in str(err.value)


def test_a_unit_that_raises_leaves_the_others_started(layout):
    """The lab's first rollout stopped at a misnamed unit, leaving the host's worker, triggerer and flower
    stopped: every unit is started, then the failures reported."""
    link, old, new = layout
    units = ["airflow-scheduler", "airflow-dag_processor", "airflow-worker", "airflow-flower"]
    systemd = Systemd({"airflow-scheduler", "airflow-worker", "airflow-flower"},
                      missing={"airflow-dag_processor"}).install()
    with pytest.raises(CommandExecutionError, match="airflow-dag_processor did not start"):
        airflow_ha.switch_venv(new, link, units=units)
    assert [u for step, u in systemd.calls if step == "start"] == units
    assert systemd.running == {"airflow-scheduler", "airflow-worker", "airflow-flower"}


def test_a_drain_past_its_timeout_switches_nothing(layout, monkeypatch):
    link, old, new = layout
    systemd = Systemd({"airflow-worker"}).install()

    def drain(**kw):
        raise CommandExecutionError("af1: Celery worker celery@af1 still runs 1 task(s) after 600 s")

    monkeypatch.setattr(airflow_ha, "drain_worker", drain)
    with pytest.raises(CommandExecutionError, match="still runs"):
        airflow_ha.switch_venv(new, link, units=["airflow-worker"], drain=True)
    assert systemd.calls == [] and os.readlink(link) == old


def test_switch_refuses_a_missing_venv_or_the_old_layout(tmp_path, layout):
    link, _, _ = layout
    Systemd(set()).install()
    with pytest.raises(CommandExecutionError, match="has no bin/airflow: build it first"):
        airflow_ha.switch_venv(str(tmp_path / "venv-9.9.9"), link)
    real = tmp_path / "real"
    make_venv(real, "3.3.1")
    with pytest.raises(CommandExecutionError, match="is a directory, not the venv symlink"):
        airflow_ha.switch_venv(layout[2], str(real))


@pytest.mark.parametrize("settings, ok", [
    ({"version": "3.3.1", "requirements": "airflow-3.3.1.txt"}, True),
    ({"version": "3.3.2", "requirements": "airflow-3.txt"}, True),
    ({"version": "3.3.2", "requirements": "airflow-3.3.1.txt"}, False),
    ({"version": "3.3.1", "requirements": "airflow-2.txt"}, False),
])
def test_requirements_name_the_majors_file_or_the_versions_own(settings, ok):
    import yaml

    from tests.helpers.inventory import REPO

    defaults = yaml.safe_load((REPO / "salt/airflow/defaults.yaml").read_text())
    if ok:
        assert airflow_ha.check_settings(dict(defaults, **settings)) is True
    else:
        with pytest.raises(CommandExecutionError, match="is not the pinned file of airflow:major 3 or of"):
            airflow_ha.check_settings(dict(defaults, **settings))
