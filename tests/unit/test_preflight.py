"""Unit tests of _modules/preflight.py: each check with stubbed __salt__ (the
commands it runs) and stubbed readers of /proc and the resolver, its pass and
its failure message (what was found and the fix)."""

import pytest
from salt.exceptions import CommandExecutionError

import _modules.preflight as preflight
from _modules.ha_inventory import port_map, read_ports

HOSTS = {"db1": {"ip": "10.83.0.11", "roles": ["etcd", "postgres", "rabbitmq"]},
         "af1": {"ip": "10.83.0.21", "roles": ["haproxy", "scheduler", "webserver", "worker"]}}
PORTS = port_map(read_ports(), {})


class Commands:
    """cmd.run_all by the command's first word: {word: (retcode, stdout)}."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __call__(self, cmd, **_kwargs):
        self.calls.append(cmd)
        retcode, stdout = self.answers.get(cmd[0].replace("-", "_"), (127, ""))
        return {"retcode": retcode, "stdout": stdout, "stderr": "" if not retcode else f"{cmd[0]} failed"}


@pytest.fixture
def commands():
    return Commands()


@pytest.fixture
def configure_loader_modules(commands):
    return {preflight: {"__salt__": {"cmd.run_all": commands}, "__grains__": {"id": "db1", "virtual": "kvm"},
                        "__pillar__": {}}}


@pytest.fixture
def machine(monkeypatch):
    """A host with 2 CPUs, 1536 MiB, 20 GiB free, every name resolving to its inventory IP, no time tool."""
    state = {"cpus": 2, "mem": 1536, "free": 20.0, "names": {n: [h["ip"]] for n, h in HOSTS.items()},
             "tools": set(), "container": False, "units": {}, "hosts_file": {}}
    monkeypatch.setattr(preflight, "_cpus", lambda: state["cpus"])
    monkeypatch.setattr(preflight, "_mem_total_mib", lambda: state["mem"])
    monkeypatch.setattr(preflight, "_free_gib", lambda path: (1, state["free"]))
    monkeypatch.setattr(preflight, "_resolve", lambda name: state["names"].get(name, []))
    monkeypatch.setattr(preflight, "_which", lambda name: f"/usr/bin/{name}" if name in state["tools"] else None)
    monkeypatch.setattr(preflight, "_unit_of", lambda pid: state["units"].get(pid))
    monkeypatch.setattr(preflight, "_hosts_file", lambda name: state["hosts_file"].get(name, []))
    monkeypatch.setattr(preflight, "_in_container", lambda: state["container"])
    return state


# ------------------------------------------------------------------- clock
def test_clock_synchronized_by_timedatectl_passes(machine, commands):
    machine["tools"] = {"timedatectl"}
    commands.answers["timedatectl"] = (0, "yes\n")
    assert preflight.check_clock() == []
    assert commands.calls == [["timedatectl", "show", "-p", "NTPSynchronized", "--value"]]


def test_clock_not_synchronized_names_the_finding_and_the_fix(machine, commands):
    machine["tools"] = {"timedatectl"}
    commands.answers["timedatectl"] = (0, "no\n")
    problem, = preflight.check_clock()
    assert problem.startswith("clock not synchronized (timedatectl NTPSynchronized=no)")
    assert "systemctl enable --now chrony" in problem


def test_clock_falls_back_to_chrony(machine, commands):
    machine["tools"] = {"chronyc"}
    commands.answers["chronyc"] = (0, "Reference ID    : C0A80001 (ntp)\nLeap status     : Normal\n")
    assert preflight.check_clock() == []
    commands.answers["chronyc"] = (0, "Reference ID    : 00000000 ()\nLeap status     : Not synchronised\n")
    problem, = preflight.check_clock()
    assert problem.startswith("clock not synchronized (chronyc tracking: no selected source)")


def test_timedatectl_no_but_chrony_synchronized_passes(machine, commands):
    machine["tools"] = {"timedatectl", "chronyc"}
    commands.answers.update(timedatectl=(0, "no\n"), chronyc=(0, "Leap status     : Normal\n"))
    assert preflight.check_clock() == []


def test_no_time_tool_on_a_vm_is_a_problem(machine):
    problem, = preflight.check_clock()
    assert problem.startswith("clock synchronization unknown (neither timedatectl nor chronyc answers)")


def test_a_container_keeps_the_hosts_clock(machine, commands):
    machine["container"] = True
    assert preflight.check_clock() == []
    assert commands.calls == []


def test_container_detection_by_grains_or_systemd_detect_virt(monkeypatch, commands):
    monkeypatch.setattr(preflight.os.path, "exists", lambda path: False)
    monkeypatch.setattr(preflight, "_which", lambda name: "/usr/bin/" + name)
    monkeypatch.setitem(preflight.__grains__, "virtual", "LXC")
    assert preflight._in_container() is True
    monkeypatch.setitem(preflight.__grains__, "virtual", "kvm")
    commands.answers["systemd_detect_virt"] = (1, "none\n")
    assert preflight._in_container() is False
    commands.answers["systemd_detect_virt"] = (0, "lxc\n")
    assert preflight._in_container() is True


# --------------------------------------------------------------- resources
MINIMUMS = {"all": {"memory_mb": 512, "cpus": 1, "disk_gb": 2}, "postgres": {"memory_mb": 1024, "disk_gb": 10},
            "rabbitmq": {"cpus": 2}}


def test_resources_enough_pass(machine):
    assert preflight.check_resources(["postgres", "rabbitmq"], MINIMUMS) == []


def test_the_largest_minimum_of_the_hosts_roles_counts(machine):
    machine.update(cpus=1, mem=1000, free=5.0)
    problems = preflight.check_resources(["etcd", "postgres", "rabbitmq"], MINIMUMS)
    assert problems == [
        "1000 MiB of RAM, roles etcd, postgres, rabbitmq need 1024 MiB: give the host more or lower pillar "
        "orch:preflight:minimums (production values: docs/operations.md)",
        "1 CPUs, roles etcd, postgres, rabbitmq need 2: give the host more or lower pillar orch:preflight:minimums "
        "(production values: docs/operations.md)",
        "5.0 GiB free on the filesystem of /var, roles etcd, postgres, rabbitmq need 10 GiB: free space or give the "
        "host more or lower pillar orch:preflight:minimums (production values: docs/operations.md)"]
    # a worker needs only what `all` asks
    assert preflight.check_resources(["worker"], MINIMUMS) == []


def test_one_filesystem_is_checked_once(machine):
    machine["free"] = 1.0
    problems = preflight.check_resources(["worker"], MINIMUMS, disk_paths=["/var", "/opt"])
    assert len(problems) == 1 and "filesystem of /var" in problems[0]


def test_no_minimums_no_checks(machine):
    machine.update(cpus=0, mem=0, free=0.0)
    assert preflight.check_resources(["worker"], None) == []


# ------------------------------------------------------------------- names
def test_every_name_resolving_to_its_ip_passes(machine):
    assert preflight.check_names({"db1": "10.83.0.11", "af1": "10.83.0.21"}, "db1") == []


def test_a_stale_hosts_file_line_is_a_problem(machine):
    machine["names"]["af1"] = ["10.9.9.9"]
    machine["hosts_file"]["af1"] = ["10.9.9.9"]
    problem, = preflight.check_names({"db1": "10.83.0.11", "af1": "10.83.0.21"}, "db1")
    assert problem == ("af1 resolves to 10.9.9.9, not its inventory IP 10.83.0.21: /etc/hosts maps it to 10.9.9.9: "
                       "remove or fix that line (or the inventory)")


def test_a_dns_answer_elsewhere_passes_unless_names_must_resolve(machine):
    # e.g. a lab bridge's dnsmasq naming the container on its other interface: /etc/hosts (the base
    # role's) will win over it
    machine["names"]["af1"] = ["10.0.3.55"]
    hosts = {"db1": "10.83.0.11", "af1": "10.83.0.21"}
    assert preflight.check_names(hosts, "db1") == []
    problem, = preflight.check_names(hosts, "db1", require_resolvable=True)
    assert problem == ("af1 resolves to 10.0.3.55, not its inventory IP 10.83.0.21: fix DNS or /etc/hosts "
                       "(or the inventory)")


def test_the_hosts_file_reader(tmp_path):
    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n127.0.1.1 db1.lab.internal db1  # vagrant\n# 10.1.1.1 db1\n"
                    "10.83.0.11 db1.lab.internal db1\n")
    assert preflight._hosts_file("db1", str(path)) == ["127.0.1.1", "10.83.0.11"]
    assert preflight._hosts_file("db2", str(path)) == []


def test_a_name_not_resolving_yet_passes_unless_required(machine):
    del machine["names"]["af1"]
    hosts = {"db1": "10.83.0.11", "af1": "10.83.0.21"}
    assert preflight.check_names(hosts, "db1") == []
    problem, = preflight.check_names(hosts, "db1", require_resolvable=True)
    assert problem == "af1 does not resolve (inventory IP 10.83.0.21): add it to DNS or /etc/hosts"


def test_the_own_name_on_loopback_passes_other_names_do_not(machine):
    machine["names"].update(db1=["127.0.1.1"], af1=["127.0.1.1"])
    machine["hosts_file"].update(db1=["127.0.1.1"], af1=["127.0.1.1"])
    problem, = preflight.check_names({"db1": "10.83.0.11", "af1": "10.83.0.21"}, "db1")
    assert problem.startswith("af1 resolves to 127.0.1.1, not its inventory IP 10.83.0.21")


# ------------------------------------------------------------------- ports
SS = """tcp LISTEN 0 4096 0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=100,fd=3))
tcp LISTEN 0 4096 10.83.0.11:5432 0.0.0.0:* users:(("postgres",pid=200,fd=6))
tcp LISTEN 0 4096 [::]:2379 [::]:* users:(("etcd",pid=300,fd=7))
tcp LISTEN 0 128 0.0.0.0:4369 0.0.0.0:* users:(("epmd",pid=400,fd=3),("systemd",pid=1,fd=50))
udp UNCONN 0 0 0.0.0.0:9125 0.0.0.0:* users:(("statsd_exporter",pid=500,fd=3))
tcp LISTEN 0 64 0.0.0.0:2049 0.0.0.0:*
"""


def test_ports_held_by_their_services_pass(machine, commands):
    commands.answers["ss"] = (0, SS)
    machine["units"] = {100: "ssh.service", 200: "patroni.service", 300: "etcd.service", 400: "epmd.service",
                        1: "init.scope"}
    assert preflight.check_ports(["etcd", "postgres", "rabbitmq"], PORTS) == []
    assert commands.calls == [["ss", "-H", "-l", "-n", "-t", "-u", "-p"]]


def test_free_ports_pass(machine, commands):
    commands.answers["ss"] = (0, "")
    assert preflight.check_ports(["haproxy", "webserver", "worker"], PORTS) == []


def test_a_port_held_by_another_service_names_it_and_the_fix(machine, commands):
    commands.answers["ss"] = (0, SS)
    machine["units"] = {100: "ssh.service", 200: "postgresql@15-main.service", 300: "etcd.service"}
    problem, = preflight.check_ports(["postgres"], PORTS)
    assert problem == ("port 5432/tcp (postgres: PostgreSQL: replication, HAProxy backends) is held by postgres "
                       "(pid 200, unit postgresql@15-main.service), not by patroni.service or "
                       "prometheus-postgres-exporter.service or postgres_exporter.service or pgbackrest.service: "
                       "stop and disable that service (or move it to another port)")


def test_udp_and_kernel_sockets(machine, commands):
    commands.answers["ss"] = (0, SS)
    machine["units"] = {100: "ssh.service", 500: "docker-1234.scope"}
    problem, = preflight.check_ports(["monitoring"], PORTS)
    assert problem.startswith("port 9125/udp (monitoring: statsd (Airflow metrics)) is held by statsd_exporter "
                              "(pid 500, unit docker-1234.scope)")
    # nfsd's socket has no process: the kernel, which the nfs role expects
    assert preflight.check_ports(["nfs"], PORTS) == []
    machine["units"] = {}
    problem, = [p for p in preflight.check_ports(["etcd"], PORTS) if "2379" in p]
    assert "held by etcd (pid 300, unit unknown)" in problem


def test_tls_entries_follow_the_switch(machine, commands):
    commands.answers["ss"] = (0, "tcp LISTEN 0 5 0.0.0.0:5671 0.0.0.0:* users:((\"nc\",pid=9,fd=3))\n")
    assert preflight.check_ports(["rabbitmq"], PORTS, tls=False) == []
    problem, = preflight.check_ports(["rabbitmq"], PORTS, tls=True)
    assert problem.startswith("port 5671/tcp (rabbitmq: AMQP over TLS) is held by nc (pid 9, unit unknown)")


def test_ss_failing_is_reported(machine, commands):
    with pytest.raises(CommandExecutionError, match="install iproute2"):
        preflight.check_ports(["worker"], PORTS)


# ------------------------------------------------------------ the whole run
def test_a_ready_host_has_no_problem_and_check_is_true(machine, commands):
    commands.answers["ss"] = (0, "")
    machine["container"] = True
    assert preflight.problems(hosts=HOSTS, ports=PORTS, minimums=MINIMUMS, tls=False) == []
    assert preflight.check(hosts=HOSTS, ports=PORTS, minimums=MINIMUMS, tls=False) is True


def test_a_minion_id_outside_the_inventory(machine, commands):
    commands.answers["ss"] = (0, "")
    machine["container"] = True
    problem, = preflight.problems(hosts=HOSTS, ports=PORTS, minimums=MINIMUMS, tls=False, minion_id="stray")
    assert problem == ("minion id 'stray' is not a host of inventory:hosts (af1, db1): set /etc/salt/minion_id to "
                       "its inventory name (and re-accept its key), or add the host")


def test_check_raises_naming_the_host_and_every_problem(machine, commands):
    machine.update(mem=256)
    machine["names"]["af1"] = ["10.9.9.9"]
    machine["hosts_file"]["af1"] = ["10.9.9.9"]
    with pytest.raises(CommandExecutionError) as exc:
        preflight.check(hosts=HOSTS, ports=PORTS, minimums=MINIMUMS, tls=False)
    text = str(exc.value)
    assert text.startswith("preflight of db1: 4 problem(s), nothing was changed:\n  - db1: clock synchronization")
    assert "\n  - db1: 256 MiB of RAM, roles etcd, postgres, rabbitmq need 1024 MiB" in text
    assert "\n  - db1: af1 resolves to 10.9.9.9" in text
    assert "\n  - db1: ss -Hlntup failed" in text


def test_defaults_come_from_the_minions_pillar(machine, commands, monkeypatch):
    commands.answers["ss"] = (0, "")
    machine["container"] = True
    pillar = {"inventory": {"hosts": HOSTS}, "ports": read_ports()}
    monkeypatch.setitem(preflight.__salt__, "pillar.get", lambda key, default=None: pillar.get(key, default))
    monkeypatch.setitem(preflight.__salt__, "ha_inventory.port_map", port_map)
    monkeypatch.setitem(preflight.__salt__, "ha_inventory.tls_enabled", lambda: True)
    assert preflight.problems() == []
    assert ["ss", "-H", "-l", "-n", "-t", "-u", "-p"] in commands.calls


def test_check_takes_what_a_minion_passes_it(machine, commands):
    """A published job's kwargs go through the minion's argument loader, which adds __pub_* keys to a
    function taking **kwargs (the first lab bring-up failed on that: problems() got '__pub_fun')."""
    import salt.minion

    commands.answers["ss"] = (0, "")
    machine["container"] = True
    args, kwargs = salt.minion.load_args_and_kwargs(
        preflight.check, [{"__kwarg__": True, "hosts": HOSTS, "ports": PORTS, "minimums": {}, "tls": False}],
        data={"fun": "preflight.check", "jid": "20261202000000000000", "user": "root"})
    assert preflight.check(*args, **kwargs) is True
