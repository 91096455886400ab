"""The log host's card-number search (salt/logs/files/airflow-ha-pan-scan.py,
issue 22): the public test numbers of each scheme are found (grouped, in JSON,
in log text), Luhn-invalid numbers and Luhn-valid ones of no scheme's prefix
and length (epoch nanoseconds, ids) are not, nor digits glued to letters or
longer runs; the output masks every number; exit codes; .gz copies and a
directory tree. The CLI cases run the script as the log host does."""

import gzip
import importlib.util
import random
import re
import string
import subprocess
import sys

import pytest
import yaml

from tests.helpers.inventory import REPO

SCRIPT = REPO / "salt" / "logs" / "files" / "airflow-ha-pan-scan.py"
# the schemes' public test numbers (payment providers' docs)
TEST_PANS = {
    "4111111111111111": "Visa",
    "5555555555554444": "Mastercard",
    "2223003122003222": "Mastercard",
    "378282246310005": "Amex",
    "6011111111111117": "Discover",
    "3530111333300000": "JCB",
    "36227206271667": "Diners",
    "6200000000000005": "UnionPay",
}


@pytest.fixture(scope="module")
def scan():
    spec = importlib.util.spec_from_file_location("airflow_ha_pan_scan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def with_check_digit(body):
    """``body`` and the digit that makes it pass Luhn."""
    for d in "0123456789":
        total = 0
        for i, ch in enumerate(reversed(body + d)):
            n = int(ch) * (2 if i % 2 else 1)
            total += n - 9 if n > 9 else n
        if total % 10 == 0:
            return body + d
    raise AssertionError("no check digit")


def run_cli(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def test_luhn_of_the_helper_and_the_script_agree(scan):
    assert all(scan.luhn_ok(pan) for pan in TEST_PANS)
    assert not scan.luhn_ok("4111111111111112")
    for body in ("411111111111111", "176480640000000000", "12345678901234"):
        number = with_check_digit(body)
        assert scan.luhn_ok(number) and not scan.luhn_ok(number[:-1] + str((int(number[-1]) + 1) % 10))


@pytest.mark.parametrize("pan, scheme", TEST_PANS.items())
def test_each_schemes_test_number_is_found_plain_grouped_and_in_text(scan, pan, scheme):
    spaced = " ".join(pan[i:i + 4] for i in range(0, len(pan), 4))
    dashed = spaced.replace(" ", "-")
    for text in (pan, spaced, dashed, f'{{"card": "{pan}", "amount": "12.50"}}',
                 f"2026-12-03T15:46:50.454081+00:00 af1 card-dag[812]: charged {dashed} EUR 12.50",
                 f"number={pan}."):
        found = scan.find_pans(text)
        assert [(digits, name) for _, digits, name in found] == [(pan, scheme)], text
        start = found[0][0]
        assert text[start:start + 4] == pan[:4]


def test_luhn_invalid_numbers_with_a_schemes_prefix_are_not_found(scan):
    for pan in TEST_PANS:
        wrong = pan[:-1] + str((int(pan[-1]) + 1) % 10)
        assert not scan.luhn_ok(wrong) and scan.find_pans(f"card {wrong} here") == []


@pytest.mark.parametrize("body, what", [
    ("176480640000000000", "epoch nanoseconds (19 digits)"),
    ("176480640000000", "epoch microseconds (16 digits)"),
    ("176480640000", "epoch milliseconds (13 digits)"),
    ("202612031546504", "a Salt-style id starting with a date (16 digits)"),
    ("98765432109876", "an id of 15 digits"),
    ("41111111111111", "a Visa prefix at 15 digits (Visa issues 13, 16, 19)"),
    ("5111111111111111", "a Mastercard prefix at 17 digits"),
    ("378282246310000", "an Amex prefix at 16 digits (Amex issues 15)"),
    ("7000000000000000", "prefix 7: no scheme"),
])
def test_luhn_valid_numbers_of_no_schemes_prefix_and_length_are_not_found(scan, body, what):
    number = with_check_digit(body)
    assert scan.luhn_ok(number), number  # not vacuous: Luhn alone would report it
    assert scan.scheme_of(number) is None, what
    assert scan.find_pans(f"ts={number} bytes {number} [{number}]") == [], what


def test_longer_runs_and_digits_glued_to_letters_are_not_found(scan):
    pan = "4111111111111111"
    for text in (f"1{pan}", f"{pan}1", f"{pan}0000", f"id{pan}", f"{pan}abc", f"x{pan}y",
                 "4111111111111111111111", f"sha {pan}deadbeef"):
        assert scan.find_pans(text) == [], text
    # a run of groups glued on one side keeps its other groups
    assert [d for _, d, _ in scan.find_pans(f"ref12-{pan}")] == [pan]


def test_the_parts_of_a_decimal_number_are_not_found(scan):
    """The lab's false finding: a float's 15-digit fraction with Amex's prefix that passed Luhn."""
    fraction = with_check_digit("34849612345438")
    assert len(fraction) == 15 and scan.luhn_ok(fraction) and scan.scheme_of(fraction) == "Amex"
    assert [d for _, d, _ in scan.find_pans(f"took {fraction} s")] == [fraction]  # alone it is PAN-like
    for text in (f"duration 0.{fraction} s", f"ts=1764806400.{fraction}", f'"t": 12.{fraction}}}',
                 f"{fraction}.5 ms"):
        assert scan.find_pans(text) == [], text
    # a full stop after a number ends the sentence: still found
    assert [d for _, d, _ in scan.find_pans(f"card {fraction}. Next")] == [fraction]


def test_mixed_separators_or_double_spaces_do_not_make_one_number(scan):
    assert scan.find_pans("4111 1111-1111 1111") == []
    assert scan.find_pans("4111  1111  1111  1111") == []


def test_a_number_next_to_other_numbers_is_still_found(scan):
    pan = "5555555555554444"
    assert [d for _, d, _ in scan.find_pans(f"12 {pan} 3 items at 10:30")] == [pan]
    assert [d for _, d, _ in scan.find_pans("1 5555 5555 5555 4444 2")] == [pan]


def etcd_slow_request(request_id, lease_id, key="/service/airflow-ha/members/db3"):
    """etcd's slow-request warning as the log host receives it (the lab's db2, 2026-12-04)."""
    return (f'2026-12-04T12:59:41.741198+00:00 2026-12-04T12:59:41.295193+00:00 db2 etcd[1223] request '
            f'"header:<ID:{request_id} username:\\"db3.lab.internal\\" auth_revision:1 > put:<key:\\"{key}\\" '
            f'value_size:148 lease:{lease_id} >" with result "size:4" took too long (118.939094ms) to execute\n')


# etcd's ids of one member share their high digits (db3's: 6241..., UnionPay's prefix at 19 digits)
ETCD_ID = with_check_digit("624160453421881704")
ETCD_LEASE = with_check_digit("624160453421881703")


def test_etcds_request_lease_and_member_ids_are_not_card_numbers(scan, tmp_path):
    assert scan.scheme_of(ETCD_ID) == "UnionPay" and scan.luhn_ok(ETCD_LEASE)  # what the scan found before
    line = etcd_slow_request(ETCD_ID, ETCD_LEASE)
    voters = f"2026-12-04T10:41:35 db3 etcd[998] INFO: fce5f12e9d0e569e switched to configuration voters=({ETCD_ID} " \
             f"12515644130489390503 {ETCD_LEASE})\n"
    (tmp_path / "db2").mkdir()
    (tmp_path / "db2" / "etcd.log").write_text(line + voters)
    # etcd's own log file, whose lines carry no syslog tag
    (tmp_path / "db2" / "etcd.log-20261203").write_text(f"request \"header:<ID:{ETCD_ID} > lease:{ETCD_LEASE}\"\n")
    proc = run_cli(tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "scanned 2 files, 3 lines: 0 PAN-like numbers\n")


def test_a_card_number_elsewhere_in_an_etcd_line_or_in_those_fields_of_another_program_is_found(scan):
    pan = "6200000000000005"
    line = scan.without_known_ids(etcd_slow_request(ETCD_ID, ETCD_LEASE, key=f"/cards/{pan}"), "etcd.log")
    assert [d for _, d, _ in scan.find_pans(line)] == [pan]
    # the same fields in another program's line and file
    other = f"db2 cardapp[77] request header:<ID:{ETCD_ID}> lease:{ETCD_LEASE}"
    assert [d for _, d, _ in scan.find_pans(scan.without_known_ids(other, "cardapp.log"))] == [ETCD_ID, ETCD_LEASE]


def test_the_cli_masks_every_number_and_exits_1(tmp_path):
    log = tmp_path / "af1" / "card-dag.log"
    log.parent.mkdir()
    log.write_text("".join(f"line with {pan}\n" for pan in TEST_PANS) + "nothing here 1764806400000000000\n")
    proc = run_cli(tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:len(TEST_PANS)] == [f"{log}:{n}: PAN-like number {pan[:6]}…{pan[-4:]} ({scheme})"
                                      for n, (pan, scheme) in enumerate(TEST_PANS.items(), 1)]
    assert lines[-1] == f"scanned 1 files, {len(TEST_PANS) + 1} lines: {len(TEST_PANS)} PAN-like numbers"
    for pan in TEST_PANS:
        assert pan not in proc.stdout + proc.stderr
    # the first 6 and the last 4 digits, never the middle ones
    shown = re.findall(r"PAN-like number (\S+)", proc.stdout)
    assert len(shown) == len(TEST_PANS) and all(re.fullmatch(r"\d{6}…\d{4}", s) for s in shown), shown


def test_the_cli_exits_0_with_nothing_found_and_2_on_usage_errors(tmp_path):
    (tmp_path / "db1").mkdir()
    (tmp_path / "db1" / "patroni.log").write_text("2026-12-03T15:46:50+00:00 db1 patroni: jid 20261203154650454081\n")
    proc = run_cli(tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "scanned 1 files, 1 lines: 0 PAN-like numbers\n")
    assert run_cli(tmp_path / "missing").returncode == 2
    assert run_cli("--no-such-option").returncode == 2


def test_gz_copies_and_a_nested_tree_are_scanned(tmp_path):
    # as the receiver and logrotate (dateext, compress, delaycompress) leave them
    (tmp_path / "af1").mkdir()
    (tmp_path / "db1").mkdir()
    (tmp_path / "af1" / "airflow-worker.log").write_text("ok\n")
    (tmp_path / "af1" / "airflow-worker.log-20261201").write_text("ok\npaid 3530-1113-3330-0000\n")
    with gzip.open(tmp_path / "db1" / "sshd.log-20261130.gz", "wt") as f:
        f.write("a\nb\nc card 378282246310005\n")
    (tmp_path / "db1" / "deep" / "er").mkdir(parents=True)
    (tmp_path / "db1" / "deep" / "er" / "x.log").write_text("6011 1111 1111 1117\n")
    proc = run_cli(tmp_path)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        f"{tmp_path}/af1/airflow-worker.log-20261201:2: PAN-like number 353011…0000 (JCB)",
        f"{tmp_path}/db1/sshd.log-20261130.gz:3: PAN-like number 378282…0005 (Amex)",
        f"{tmp_path}/db1/deep/er/x.log:1: PAN-like number 601111…1117 (Discover)",  # a directory's files first
        "scanned 4 files, 7 lines: 3 PAN-like numbers",
    ]
    # one file, or several directories, by name
    assert run_cli(tmp_path / "af1" / "airflow-worker.log").returncode == 0
    assert run_cli(tmp_path / "af1", tmp_path / "db1").stdout.splitlines()[-1] == \
        "scanned 4 files, 7 lines: 3 PAN-like numbers"


def test_a_truncated_gz_reports_what_it_held_and_exits_2_without_a_finding(tmp_path):
    # a copy logrotate is still compressing: what could be read is searched, the scan says it is incomplete
    rng = random.Random(22)
    noise = "".join("".join(rng.choices(string.ascii_letters, k=60)) + "\n" for _ in range(20000))
    data = gzip.compress(("x\ncard 4111111111111111\n" + noise).encode())
    (tmp_path / "cut.log-1.gz").write_bytes(data[:len(data) // 2])
    proc = run_cli(tmp_path)
    assert "cannot read" in proc.stderr and proc.returncode == 1  # a finding wins over the incomplete read
    assert proc.stdout.splitlines()[0] == f"{tmp_path}/cut.log-1.gz:2: PAN-like number 411111…1111 (Visa)"
    (tmp_path / "cut.log-1.gz").write_bytes(gzip.compress(noise.encode())[:5000])
    proc = run_cli(tmp_path)
    assert proc.returncode == 2 and "cannot read" in proc.stderr


def test_the_default_directory_is_the_log_hosts_remote_dir(scan):
    defaults = yaml.safe_load((REPO / "salt" / "logs" / "defaults.yaml").read_text())
    assert scan.DEFAULT_DIR == defaults["remote_dir"]


def test_the_script_runs_on_the_standard_library_only():
    imports = [line.split()[1] for line in SCRIPT.read_text().splitlines() if line.startswith(("import ", "from "))]
    assert all(name in sys.stdlib_module_names for name in imports), imports
    assert SCRIPT.read_text().startswith("#!/usr/bin/python3\n")
