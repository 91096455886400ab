"""The pure parts of the logs drill (tools/lab/drill_logs.py): the lines the
receiver writes (receiver.conf.jinja's line template) parsed back, the
delivered set counting only a sender's own directory, the emit script."""

import subprocess
import sys

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_logs  # noqa: E402

TEXT = """\
2026-12-02T06:00:01.500000+00:00 2026-12-02T06:00:01.100000+00:00 af1 airflow-ha-drill[812]: drill abc outage af1 1 sent=1764655200.25
/var/log/remote/af1/airflow-ha-drill.log:2026-12-02T06:00:02+00:00 2026-12-02T06:00:02+00:00 af1 airflow-ha-drill: drill abc outage-auth af1 0
2026-12-02T06:00:03.000000+00:00 x db1 airflow-ha-drill[9]: drill abc up af1 3 sent=1764655202.5
2026-12-02T06:00:03.000000+00:00 x db1 airflow-ha-drill[9]: drill other up db1 3 sent=1764655202.5
2026-12-02T06:00:03.000000+00:00 x db1 sshd[9]: drill abc up db1 4
2026-12-02T06:00:04.000000+00:00 2026-12-02T06:00:03.900000+00:00 af1 airflow-ha-drill drill abc outage af1 2 sent=1764655203.5
"""


def test_parse_keeps_this_runs_lines_with_send_and_receive_times():
    found = drill_logs.parse(TEXT, "abc")
    assert [(d, p, s, n) for d, p, s, n, _, _ in found] == [
        ("af1", "outage", "af1", 1), ("af1", "outage-auth", "af1", 0), ("db1", "up", "af1", 3),
        ("af1", "outage", "af1", 2)]  # the last as the lab's receiver writes a forwarded tag: no colon
    assert found[0][4] == 1764655200.25 and found[0][5] == 1796191201.5  # 2026-12-02T06:00:01.5Z
    assert found[1][4] is None


def test_delivered_counts_a_message_only_under_its_senders_directory():
    found = drill_logs.parse(TEXT, "abc")
    assert drill_logs.delivered(found, "outage", ["af1"]) == {("af1", "outage", 1), ("af1", "outage-auth", 0),
                                                              ("af1", "outage", 2)}
    assert drill_logs.delivered(found, "up", ["af1", "db1"]) == set()  # af1's message filed under db1


def test_emit_script_is_valid_bash_with_an_authpriv_event():
    script = drill_logs.emit_script("abc", "outage", "af1", 3, auth=True)
    assert subprocess.run(["bash", "-n", "-c", script]).returncode == 0
    assert script.count("logger ") == 2 and "-p authpriv.notice" in script
