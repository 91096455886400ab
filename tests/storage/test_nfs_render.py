"""The NFS parts cannot run here (no NFS in this kernel): their files are
rendered from the states' own templates and checked at exports(5) syntax
level; the client side is an automount of the NFS VIP with HA options."""

import re

import pytest

EXPORT_OPTIONS = {"ro", "rw", "sync", "async", "no_subtree_check", "subtree_check", "root_squash", "no_root_squash",
                  "all_squash", "secure", "insecure", "wdelay", "no_wdelay", "crossmnt", "nohide"}
EXPORT_LINE = re.compile(r"^(?P<path>/\S+)\s+(?P<clients>(\S+\([^)]*\)\s*)+)$")
CLIENT = re.compile(r"^(?P<host>[0-9.]+)\((?P<options>[^)]*)\)$")


@pytest.mark.parametrize("os_name", ["debian12", "rocky9"])
def test_exports_are_valid_and_read_only_to_the_airflow_hosts(render_state_file, os_name):
    text = render_state_file("ftp", "full", "storage.nfs", "storage-nfs-exports", os_name)
    lines = [l for l in text.splitlines() if l.strip() and not l.startswith("#")]
    assert len(lines) == 1
    m = EXPORT_LINE.match(lines[0])
    assert m, lines[0]
    clients = {}
    for spec in m.group("clients").split():
        c = CLIENT.match(spec)
        assert c, spec
        options = c.group("options").split(",")
        unknown = [o for o in options if o not in EXPORT_OPTIONS and not re.match(r"^fsid=(\d+|root)$", o)]
        assert unknown == [], spec
        clients[c.group("host")] = options
    assert m.group("path") == "/srv/nfs/dags"
    # schedulers, webservers, DAG processors, workers, triggerers of the full topology; nothing else
    assert sorted(clients) == ["192.168.83.129", "192.168.83.131", "192.168.83.132", "192.168.83.150",
                               "192.168.83.151", "192.168.83.154"]
    assert all("ro" in o and "root_squash" in o for o in clients.values())
