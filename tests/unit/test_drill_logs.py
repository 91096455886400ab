"""The pure parts of the logs drill (tools/lab/drill_logs.py): the lines the
receiver writes (receiver.conf.jinja's line template) parsed back, the
delivered set counting only a sender's own directory, the emit script; the
PAN scan's output read back and judged (fake outputs and the real script's)."""

import subprocess
import sys

import pytest

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


PLANTED = "/var/log/remote/af1/pan-drill-abc.log"
SCAN_FOUND = f"""\
{PLANTED}:1: PAN-like number 411111…1111 (Visa)
scanned 120 files, 48210 lines: 1 PAN-like numbers
"""
SCAN_CLEAN = "scanned 119 files, 48209 lines: 0 PAN-like numbers\n"
SCAN_OTHER = f"""\
{PLANTED}:1: PAN-like number 411111…1111 (Visa)
/var/log/remote/db1/airflow-worker.log.1.gz:7: PAN-like number 555555…4444 (Mastercard)
scanned 120 files, 48210 lines: 2 PAN-like numbers
"""


def test_parse_pan_scan_reads_the_findings_and_the_counts():
    scan = drill_logs.parse_pan_scan(SCAN_FOUND)
    assert (scan["files"], scan["lines"], scan["found"]) == (120, 48210, 1)
    assert scan["findings"] == [(PLANTED, 1, "411111…1111", "Visa", SCAN_FOUND.splitlines()[0])]
    assert drill_logs.parse_pan_scan(SCAN_CLEAN) == {"files": 119, "lines": 48209, "found": 0, "findings": []}


def test_parse_pan_scan_refuses_an_unfinished_or_inconsistent_output():
    with pytest.raises(ValueError, match="no summary"):
        drill_logs.parse_pan_scan(SCAN_FOUND.splitlines()[0])
    with pytest.raises(ValueError, match="counts 2"):
        drill_logs.parse_pan_scan(SCAN_FOUND.replace(": 1 PAN-like", ": 2 PAN-like"))


def test_the_planted_scan_must_report_the_planted_number_only_and_exit_1():
    assert drill_logs.masked(drill_logs.TEST_PAN) == "411111…1111"
    assert drill_logs.planted_problems(1, drill_logs.parse_pan_scan(SCAN_FOUND), PLANTED) == []
    assert drill_logs.planted_problems(0, drill_logs.parse_pan_scan(SCAN_FOUND), PLANTED) == [
        "the PAN scan exited 0 with a finding, not 1"]
    missed = drill_logs.planted_problems(0, drill_logs.parse_pan_scan(SCAN_CLEAN), PLANTED)
    assert missed[0] == f"the PAN scan did not report the planted test number in {PLANTED}"
    other = drill_logs.planted_problems(1, drill_logs.parse_pan_scan(SCAN_OTHER), PLANTED)
    assert other == ["PAN-like number outside the planted file: /var/log/remote/db1/airflow-worker.log.1.gz:7: "
                     "PAN-like number 555555…4444 (Mastercard)"]
    wrong = SCAN_FOUND.replace("411111…1111 (Visa)", "411111…1112 (Visa)")
    assert "not the planted 411111…1111 (Visa)" in drill_logs.planted_problems(
        1, drill_logs.parse_pan_scan(wrong), PLANTED)[0]


def test_the_clean_scan_must_find_nothing_and_exit_0():
    assert drill_logs.clean_problems(0, drill_logs.parse_pan_scan(SCAN_CLEAN)) == []
    problems = drill_logs.clean_problems(1, drill_logs.parse_pan_scan(SCAN_OTHER))
    assert len(problems) == 2
    assert all(p.startswith("PAN-like number on the log host: /var/log/remote/") for p in problems)
    assert "555555…4444 (Mastercard)" in problems[1]
    assert "exited 2" in drill_logs.clean_problems(2, drill_logs.parse_pan_scan(SCAN_CLEAN))[0]


def test_the_drills_parser_reads_the_real_scripts_output(tmp_path):
    # the script's output format and the drill's parser stay one format
    (tmp_path / "af1").mkdir()
    planted = tmp_path / "af1" / "pan-drill-abc.log"
    planted.write_text(f"2026-12-03T15:46:50+00:00 x af1 pan-drill-abc: drill abc card {drill_logs.TEST_PAN} here\n")
    script = REPO / "salt" / "logs" / "files" / "airflow-ha-pan-scan.py"
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=60)
    scan = drill_logs.parse_pan_scan(proc.stdout)
    assert drill_logs.planted_problems(proc.returncode, scan, str(planted)) == []
    assert (scan["files"], scan["lines"], scan["found"]) == (1, 1, 1)
