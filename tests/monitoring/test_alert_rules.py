"""Every alert rule, evaluated by the real `promtool test rules` on the cases
of alert_rules_test.yml (and alert_rules_statsd_test.yml where statsd_exporter
runs, alert_rules_pgbouncer_test.yml with pillar airflow:pgbouncer:enabled,
alert_rules_autoscale_test.yml with a standby worker host, issue 20):
each fires after its `for:` and resolves. A rule without such a case fails the
test, as does a case for a rule that does not exist."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
HERE = Path(__file__).parent
CASES = {"common": HERE / "alert_rules_test.yml", "statsd": HERE / "alert_rules_statsd_test.yml",
         "pgbouncer": HERE / "alert_rules_pgbouncer_test.yml", "autoscale": HERE / "alert_rules_autoscale_test.yml"}
# the OS families render different rule sets: statsd_exporter is packaged for RedHat only; PgBouncer's rule
# only with pillar airflow:pgbouncer:enabled (its exporter scraped)
CASE_FILES = {"debian12": ["common"], "rocky9": ["common", "statsd"], "debian12+pgbouncer": ["common", "pgbouncer"],
              "debian12+standby": ["common", "autoscale"]}


@pytest.fixture(scope="module", params=sorted(CASE_FILES))
def rendered(request, render_state_file, salt_env, tmp_path_factory):
    from tests.helpers.state_render import renderer

    os_name = request.param
    render = render_state_file
    if os_name.endswith("+pgbouncer"):
        root = tmp_path_factory.mktemp("pgbouncer-pillar")
        (root / "lab.sls").write_text(yaml.safe_dump({"airflow": {"pgbouncer": {"enabled": True}}}))
        render = renderer(salt_env, [root])
    if os_name.endswith("+standby"):
        from tests.helpers.standby import standby_root

        render = renderer(salt_env, [standby_root(tmp_path_factory.mktemp("standby-pillar"))])
    path = tmp_path_factory.mktemp(f"rules-{os_name}") / "airflow-ha.yml"
    path.write_text(render("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-rules",
                           os_name.split("+")[0]))
    return os_name, path


def alert_names(rules_path):
    return {r["alert"] for g in yaml.safe_load(rules_path.read_text())["groups"] for r in g["rules"] if "alert" in r}


def seconds(duration):
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    parts = re.findall(r"(\d+)([smhd])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def proven(case_files):
    """alert -> True when some test of the files expects it firing and, later in the same test, resolved."""
    result = {}
    for path in case_files:
        for test in yaml.safe_load(path.read_text())["tests"]:
            by_alert = {}
            for check in test["alert_rule_test"]:
                by_alert.setdefault(check["alertname"], []).append((seconds(check["eval_time"]), bool(check.get("exp_alerts"))))
            for alert, checks in by_alert.items():
                fired = [t for t, firing in checks if firing]
                resolved = bool(fired) and any(t > min(fired) and not firing for t, firing in checks)
                result[alert] = result.get(alert, False) or resolved
    return result


def test_rules_pass_promtool_check(rendered):
    _, path = rendered
    out = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_rule_fires_and_resolves_in_promtool(rendered, tmp_path):
    os_name, rules = rendered
    files = []
    for name in CASE_FILES[os_name]:
        spec = yaml.safe_load(CASES[name].read_text())
        spec["rule_files"] = [str(rules)]
        files.append(tmp_path / f"{name}.yml")
        files[-1].write_text(yaml.safe_dump(spec, sort_keys=False))
    out = subprocess.run([PROMTOOL, "test", "rules", *map(str, files)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("SUCCESS") == len(files), out.stdout


def test_every_rule_has_a_firing_and_resolving_case(rendered):
    os_name, rules = rendered
    cases = proven([CASES[n] for n in CASE_FILES[os_name]])
    alerts = alert_names(rules)
    assert alerts, "no alert rule rendered"
    missing = sorted(a for a in alerts if not cases.get(a))
    assert not missing, f"alert rules without a promtool case that fires and resolves: {missing}"
    unknown = sorted(set(cases) - alerts)
    assert not unknown, f"promtool cases for alerts the {os_name} rules do not have: {unknown}"


def test_statsd_rules_only_where_statsd_exporter_runs(rendered):
    os_name, rules = rendered
    statsd_alerts = {t["alert_rule_test"][0]["alertname"] for t in yaml.safe_load(CASES["statsd"].read_text())["tests"]}
    present = statsd_alerts & alert_names(rules)
    # Debian has no statsd_exporter: its rules would only ever see absent series
    assert present == (statsd_alerts if "statsd" in CASE_FILES[os_name] else set()), present


def test_pgbouncer_rule_only_where_its_exporter_is_scraped(rendered):
    os_name, rules = rendered
    # off by default (pillar airflow:pgbouncer:enabled): its series would never exist
    assert ("PgBouncerClientsWaiting" in alert_names(rules)) == ("pgbouncer" in CASE_FILES[os_name])


def test_autoscale_rules_only_with_a_standby_worker_host(rendered):
    os_name, rules = rendered
    # issue 20: without a standby host nothing would act on them
    assert {"CeleryBacklogHigh", "CeleryBacklogIdle"} & alert_names(rules) == (
        {"CeleryBacklogHigh", "CeleryBacklogIdle"} if "autoscale" in CASE_FILES[os_name] else set())
