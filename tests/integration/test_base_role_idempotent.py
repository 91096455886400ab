"""The base role applied for real with `salt-call --local` on a throwaway
Debian 12 host (systemd-nspawn): the first apply converges, the second reports
zero changes, and the firewall that came up is the port map's."""

import pytest

from tests.helpers.nspawn import changed_states, nspawn_host

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def db1(generated_secrets):
    with nspawn_host("db1", "compact", generated_secrets[1]) as host:
        assert host.salt_call("saltutil.sync_all")["modules"] is not None
        yield host


def test_first_apply_converges_and_second_reports_zero_changes(db1):
    first = db1.salt_call("state.apply", "base")
    assert [k for k, v in first.items() if v["result"] is not True] == []
    assert len(changed_states(first)) >= 5  # hosts entries, user, sudoers, firewall ...
    second = db1.salt_call("state.apply", "base")
    assert changed_states(second) == []


def test_hosts_file_and_roles_grain_come_from_the_inventory(db1):
    hosts = [line.split() for line in db1.run(["cat", "/etc/hosts"]).stdout.splitlines()]
    assert ["10.83.0.21", "af1.lab.internal", "af1"] in hosts
    assert ["10.83.0.100", "airflow-vip.lab.internal", "airflow-vip"] in hosts
    assert ["127.0.0.1", "localhost"] in hosts
    assert db1.salt_call("grains.get", "roles") == ["etcd", "postgres", "rabbitmq", "ca"]


def test_firewall_opens_only_the_port_map_flows_of_the_hosts_roles(db1):
    ruleset = db1.run(["nft", "list", "table", "inet", "airflow_ha"]).stdout
    assert "policy drop" in ruleset
    assert "ip saddr { 10.83.0.11, 10.83.0.12, 10.83.0.13 } tcp dport 2380 accept" in ruleset
    assert "dport 5000" not in ruleset  # HAProxy is not on db1
    assert db1.run(["systemctl", "is-active", "nftables"]).stdout.strip() == "active"


def test_admin_user_may_sudo_without_a_password(db1):
    assert db1.run(["id", "-nG", "airflowops"]).stdout.split().count("sudo") == 1
    assert db1.run(["/usr/sbin/visudo", "-cf", "/etc/sudoers.d/airflowops"], check=False).returncode == 0
