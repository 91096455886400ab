"""The preflight module for real on this machine (Salt's loader, real
__salt__: ss, systemd-detect-virt, timedatectl, the resolver, /proc): an
inventory this machine satisfies passes; a name that does not resolve, a
name that resolves elsewhere and a role port held by a stranger are each
reported with their fix."""

import os
import socket

import pytest

from _modules.ha_inventory import port_map, read_ports

pytestmark = pytest.mark.integration

PORTS = port_map(read_ports(), {})
MINIMUMS = {"all": {"memory_mb": 256, "cpus": 1, "disk_gb": 0.5}}


@pytest.fixture
def preflight(loaders):
    return loaders.modules.preflight


def test_this_machine_passes_an_inventory_it_satisfies(preflight):
    hosts = {"localhost": {"ip": "127.0.0.1", "roles": ["worker"]}}
    found = preflight.problems(hosts=hosts, ports=PORTS, minimums=MINIMUMS, tls=False, minion_id="localhost",
                               require_resolvable=True)
    # the clock: fine in a container (this machine), else as synchronized as its time daemon says
    clock = preflight.check_clock()
    assert [p for p in found if p not in clock] == []
    assert preflight.check(hosts=hosts, ports=PORTS, minimums=MINIMUMS, tls=False, minion_id="localhost") is True \
        or clock


def test_a_name_that_does_not_resolve_and_one_that_resolves_elsewhere(preflight):
    hosts = {"localhost": {"ip": "127.0.0.1", "roles": ["worker"]},
             "nosuchhost-airflow-ha-preflight": {"ip": "10.99.0.7", "roles": ["worker"]},
             "ip6-loopback-elsewhere": {"ip": "10.99.0.8", "roles": ["worker"]}}
    found = preflight.problems(hosts=hosts, ports=PORTS, minimums=MINIMUMS, tls=False, minion_id="localhost",
                               require_resolvable=True)
    assert ("nosuchhost-airflow-ha-preflight does not resolve (inventory IP 10.99.0.7): add it to DNS or "
            "/etc/hosts") in found
    # without require_resolvable the base role's /etc/hosts will hold it: not yet a problem
    lenient = preflight.check_names({n: h["ip"] for n, h in hosts.items()}, "localhost")
    assert not [p for p in lenient if p.startswith("nosuchhost")]
    wrong = preflight.check_names({"localhost": "10.99.0.9"}, "other")
    assert len(wrong) == 1 and wrong[0].startswith("localhost resolves to 127.0.0.1")
    # this machine's /etc/hosts maps localhost to 127.0.0.1: a line the base role would not remove
    assert "not its inventory IP 10.99.0.9: /etc/hosts maps it to 127.0.0.1" in wrong[0]
    strict = preflight.check_names({"localhost": "10.99.0.9"}, "other", require_resolvable=True)
    assert strict == wrong


def test_a_role_port_held_by_a_stranger(preflight):
    port = next(int(e["port"]) for e in PORTS if e["role"] == "worker")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            pytest.skip(f"port {port} is in use here")
        sock.listen()
        found = preflight.check_ports(["worker"], PORTS)
    held = [p for p in found if p.startswith(f"port {port}/tcp (worker: ")]
    assert len(held) == 1, found
    # this process, whatever its name (python, pytest), in no unit of the worker role
    assert f" (pid {os.getpid()}, unit " in held[0]
    assert "not by airflow-worker.service or " in held[0] and ": stop and disable that service" in held[0]
    assert preflight.check_ports(["worker"], PORTS) == []
