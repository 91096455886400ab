"""The Prometheus, rule and Alertmanager files the monitoring states install
pass the real promtool/amtool checks, for both topologies and OS families,
and their targets follow the inventory."""

import json
import shutil
import subprocess

import pytest
import yaml

from tests.helpers.inventory import REPO, hosts_with_role, load_inventory

MONITOR_HOST = {"compact": "db3"}
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AMTOOL = shutil.which("amtool") or "/usr/bin/amtool"
BLACKBOX = shutil.which("prometheus-blackbox-exporter") or "/usr/bin/prometheus-blackbox-exporter"


def write_config_tree(render_state_file, tmp_path, host, topology, os_name="debian12"):
    states = {}
    rules = render_state_file(host, topology, "monitoring.prometheus", "monitoring-prometheus-rules", os_name)
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "airflow-ha.yml").write_text(rules)
    # same template and context as the state, with the config dir moved here
    config = render_state_file(host, topology, "monitoring.prometheus", "monitoring-prometheus-config", os_name)
    config = config.replace("/etc/prometheus/rules/*.yml", str(tmp_path / "rules" / "*.yml"))
    (tmp_path / "prometheus.yml").write_text(config)
    return tmp_path / "prometheus.yml", tmp_path / "rules" / "airflow-ha.yml"


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_compact_prometheus_config_and_rules_pass_promtool(render_state_file, tmp_path, os_name):
    config, rules = write_config_tree(render_state_file, tmp_path, "db3", "compact", os_name)
    out = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS: 1 rule files found" in out.stdout + out.stderr
    out = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_targets_follow_the_inventory(render_state_file, tmp_path):
    config, _ = write_config_tree(render_state_file, tmp_path, "db3", "compact")
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    inv = load_inventory("compact")
    node_targets = [sc["targets"][0] for sc in jobs["node"]["static_configs"]]
    assert sorted(node_targets) == sorted(f"{h['ip']}:9100" for h in inv["hosts"].values())
    patroni = [sc["targets"][0] for sc in jobs["patroni"]["static_configs"]]
    assert sorted(patroni) == sorted(f"{inv['hosts'][n]['ip']}:8008" for n in hosts_with_role(inv, "postgres"))
    assert {sc["labels"]["host"] for sc in jobs["rabbitmq"]["static_configs"]} == set(hosts_with_role(inv, "rabbitmq"))
    # Debian has no statsd_exporter package: its job is left out there
    assert "statsd" not in jobs
    assert {"etcd", "haproxy", "postgres", "prometheus", "alertmanager"} <= set(jobs)
    # blackbox probes: each api-server's health endpoint, each scheduler's health server, each worker's log server
    airflow = load_yaml_airflow_defaults()
    api = [sc["targets"][0] for sc in jobs["airflow_scheduler_heartbeat"]["static_configs"]]
    assert api == [f"http://{inv['hosts'][n]['ip']}:{airflow['api_port']}/api/v2/monitor/health"
                   for n in hosts_with_role(inv, "webserver")]
    assert jobs["airflow_scheduler_heartbeat"]["params"] == {"module": ["airflow_scheduler_heartbeat"]}
    assert [sc["labels"]["host"] for sc in jobs["airflow_worker"]["static_configs"]] == hosts_with_role(inv, "worker")
    assert [sc["targets"][0] for sc in jobs["airflow_scheduler"]["static_configs"]] == [
        f"http://{inv['hosts'][n]['ip']}:{airflow['scheduler_health_port']}/health" for n in hosts_with_role(inv, "scheduler")]
    relabel = jobs["airflow_worker"]["relabel_configs"]
    assert relabel[-1] == {"target_label": "__address__", "replacement": "127.0.0.1:9115"}


def load_yaml_airflow_defaults():
    return yaml.safe_load((REPO / "salt" / "airflow" / "defaults.yaml").read_text())


def blackbox_port_in_port_map():
    ports = yaml.safe_load((REPO / "pillar" / "ports.sls").read_text())["ports"]
    return {e["port"] for e in ports if e["role"] == "monitoring"}


@pytest.mark.parametrize("tls", [False, True])
def test_blackbox_config_passes_its_check_and_has_every_probed_module(render_state_file, tls_render_state_file,
                                                                     tmp_path, tls):
    render = tls_render_state_file if tls else render_state_file
    text = render("db3", "compact", "monitoring.blackbox", "monitoring-blackbox-config")
    path = tmp_path / "blackbox.yml"
    path.write_text(text)
    out = subprocess.run([BLACKBOX, "--config.check", f"--config.file={path}"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    config = yaml.safe_load(render("db3", "compact", "monitoring.prometheus", "monitoring-prometheus-config"))
    probes = [j for j in config["scrape_configs"] if "params" in j]
    modules = yaml.safe_load(text)["modules"]
    assert probes and all(j["params"]["module"][0] in modules for j in probes)
    names = {j["job_name"] for j in probes}
    # with TLS the VIP is probed over https and the served certificates are checked
    assert ("tls_patroni" in names and "tls_haproxy" in names) == tls
    vip = next(j for j in probes if j["job_name"] == "airflow_vip")["static_configs"][0]["targets"][0]
    assert vip.startswith("https://" if tls else "http://"), vip
    # the exporter's address is in the port map
    port = int(probes[0]["relabel_configs"][-1]["replacement"].rsplit(":", 1)[1])
    assert port in blackbox_port_in_port_map()


def test_rocky_scrapes_statsd_exporter(render_state_file, tmp_path):
    config, _ = write_config_tree(render_state_file, tmp_path, "db3", "compact", "rocky9")
    jobs = {j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert "statsd" in jobs


def amtool_checked(text, tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(text)
    out = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return yaml.safe_load(text)


def test_alertmanager_default_is_a_null_receiver_and_passes_amtool(render_state_file, tmp_path):
    config = amtool_checked(render_state_file("db3", "compact", "monitoring.alertmanager",
                                              "monitoring-alertmanager-config"), tmp_path)
    assert config["route"]["receiver"] == "airflow-ha"
    assert config["receivers"] == [{"name": "airflow-ha"}]


SITE_PILLAR = {
    "monitoring": {
        "alertmanager": {"receivers": {
            "webhook_urls": ["http://127.0.0.1:9097/alerts", "https://chat.example.org/hooks/ops"],
            "email": {"to": ["ops@example.org"], "from": "alertmanager@example.org",
                      "smarthost": "mail.example.org:587", "auth_username": "alertmanager"}}},
        "grafana": {"repo": {"enabled": True, "url": "https://mirror.example.org/grafana",
                             "key_url": "https://mirror.example.org/grafana/gpg.key"}},
    },
    "secrets": {"alertmanager": {"smtp_password": "from-the-secrets-pillar"}},
}


@pytest.fixture(scope="module")
def site(pillar_renderer):
    return pillar_renderer(SITE_PILLAR)


def test_alertmanager_receivers_from_pillar_pass_amtool(site, tmp_path):
    render, compiled = site
    config = amtool_checked(render("db3", "compact", "monitoring.alertmanager", "monitoring-alertmanager-config"),
                            tmp_path)
    receiver = next(r for r in config["receivers"] if r["name"] == config["route"]["receiver"])
    hooks = SITE_PILLAR["monitoring"]["alertmanager"]["receivers"]["webhook_urls"]
    assert [w["url"] for w in receiver["webhook_configs"]] == hooks
    assert all(w["send_resolved"] for w in receiver["webhook_configs"])
    email = receiver["email_configs"][0]
    assert email["to"] == "ops@example.org" and email["smarthost"] == "mail.example.org:587"
    assert email["auth_password"] == SITE_PILLAR["secrets"]["alertmanager"]["smtp_password"]
    # the file holding the password shows no diff and is not world-readable
    state = compiled("db3", "compact", "monitoring.alertmanager")["monitoring-alertmanager-config"]
    assert state["show_changes"] is False and state["mode"] == "0640"


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_grafana_off_by_default(compiled_sls, os_name):
    states = compiled_sls("db3", "compact", "monitoring.grafana", os_name)
    assert not [s for s in states if s.startswith("monitoring-grafana")]


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_grafana_from_its_repository_or_a_mirror(site, os_name):
    _, compiled = site
    states = compiled("db3", "compact", "monitoring.grafana", os_name)
    repo = states["monitoring-grafana-repo"]
    mirror = SITE_PILLAR["monitoring"]["grafana"]["repo"]
    assert repo["fun"] == "pkgrepo.managed"
    if os_name == "debian12":
        key = states["monitoring-grafana-repo-key"]
        assert key["source"] == mirror["key_url"]
        assert repo["name"] == f"deb [signed-by={key['name']}] {mirror['url']} stable main"
    else:
        assert repo["baseurl"] == mirror["url"] and repo["gpgkey"] == mirror["key_url"] and repo["gpgcheck"] == 1
    assert {"monitoring-grafana-package", "monitoring-grafana-datasource", "monitoring-grafana-dashboards",
            "monitoring-grafana-running"} <= set(states)


def test_dashboards_are_valid_json_with_valid_promql(tmp_path):
    records = []
    boards = sorted((REPO / "salt" / "monitoring" / "files" / "dashboards").glob("*.json"))
    assert {b.stem for b in boards} == {"cluster-overview", "dag-performance", "workers", "database", "broker"}
    for board in boards:
        data = json.loads(board.read_text())
        assert data["uid"].startswith("airflow-ha-") and data["panels"]
        for panel in data["panels"]:
            for target in panel["targets"]:
                records.append({"record": f"dashboard:check:{len(records)}", "expr": target["expr"]})
    # promtool parses every panel query as a recording rule
    rules = tmp_path / "dashboards.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    out = subprocess.run([PROMTOOL, "check", "rules", str(rules)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_statsd_mapping_is_valid_yaml():
    mapping = yaml.safe_load((REPO / "salt" / "monitoring" / "files" / "statsd_mapping.yml").read_text())
    names = {m["name"] for m in mapping["mappings"]}
    assert {"airflow_scheduler_heartbeat", "airflow_ti_failures", "airflow_ti_successes"} <= names


def test_grafana_provisioning_is_valid_yaml(site):
    render, _ = site
    ds = yaml.safe_load(render("db3", "compact", "monitoring.grafana", "monitoring-grafana-datasource", "rocky9"))
    assert ds["datasources"][0]["url"] == "http://127.0.0.1:9090"
    provider = yaml.safe_load(render("db3", "compact", "monitoring.grafana", "monitoring-grafana-dashboard-provider", "rocky9"))
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/airflow-ha"
