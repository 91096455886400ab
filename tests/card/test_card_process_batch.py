"""card-process-batch run for real (subprocesses, real files, real flock) on a
throwaway target tree: exactly once through repeats, re-deliveries, a killed
run's leftovers and concurrent runs; bad batches to failed/ with NAME.error,
saying where, never echoing a PAN-like value."""

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from tests.helpers.inventory import REPO

SCRIPT = REPO / "salt" / "card_target" / "files" / "card-process-batch.py"
GOOD = "token,amount,currency\nTOKa1b2c3d4e5f6a7b8,12.50,EUR\nTOKb1c2d3e4f5a6b7c8,7.50,EUR\nTOKc1d2e3f4a5b6c7d8,1.05,USD\n"
PAN = "4111111111111111"  # a test card number: passes Luhn


@pytest.fixture
def base(tmp_path):
    """A target tree with the folders the card_target role creates (salt/card/defaults.yaml)."""
    folders = yaml.safe_load((REPO / "salt" / "card" / "defaults.yaml").read_text())["target"]["folders"]
    for folder in folders:
        (tmp_path / folder).mkdir()
    return tmp_path


def run(base, name, check=None):
    proc = subprocess.run([sys.executable, str(SCRIPT), name, "--base", str(base)], capture_output=True, text=True,
                          timeout=60)
    if check is not None:
        assert proc.returncode == check, proc.stdout + proc.stderr
    return proc, json.loads(proc.stdout)


def drop(base, name, text):
    (base / "inbox" / name).write_text(text)


def ledger_records(base):
    return sorted(p.name for p in (base / "ledger").glob("*.json"))


def test_a_batch_is_processed_once_and_a_repeat_returns_the_first_result(base):
    drop(base, "b1.csv", GOOD)
    _, first = run(base, "b1.csv", check=0)
    assert first["processed_now"] is True and first["result"] == "ok 3 EUR=20.00 USD=1.05"
    assert (base / "outbox" / "b1.csv.result").read_text() == "ok 3 EUR=20.00 USD=1.05\n"
    assert (base / "archive" / "b1.csv").read_text() == GOOD and not (base / "inbox" / "b1.csv").exists()
    # a retry after the inbox copy is gone, then a re-delivery of the same bytes
    _, again = run(base, "b1.csv", check=0)
    drop(base, "b1.csv", GOOD)
    _, redelivered = run(base, "b1.csv", check=0)
    for outcome in (again, redelivered):
        assert outcome["processed_now"] is False and outcome["result"] == first["result"]
        assert outcome["at"] == first["at"]
    assert ledger_records(base) == [hashlib.sha256(GOOD.encode()).hexdigest() + ".json"]
    assert not (base / "inbox" / "b1.csv").exists()


def test_a_run_killed_after_the_commit_is_completed_by_the_retry_without_processing_again(base):
    drop(base, "b2.csv", GOOD)
    run(base, "b2.csv", check=0)
    # what a run killed right after the ledger commit leaves: the batch still in the inbox, no result, no index
    os.replace(base / "archive" / "b2.csv", base / "inbox" / "b2.csv")
    (base / "outbox" / "b2.csv.result").unlink()
    (base / "ledger" / "names" / "b2.csv.json").unlink()
    _, outcome = run(base, "b2.csv", check=0)
    assert outcome["processed_now"] is False
    assert (base / "outbox" / "b2.csv.result").read_text() == "ok 3 EUR=20.00 USD=1.05\n"
    assert (base / "archive" / "b2.csv").exists() and not (base / "inbox" / "b2.csv").exists()


def test_the_same_content_under_another_name_is_a_rejected_duplicate(base):
    drop(base, "b3.csv", GOOD)
    run(base, "b3.csv", check=0)
    drop(base, "b3-again.csv", GOOD)
    _, outcome = run(base, "b3-again.csv", check=2)
    assert "duplicate" in outcome["error"] and "b3.csv" in outcome["error"]
    assert (base / "failed" / "b3-again.csv").exists() and (base / "failed" / "b3-again.csv.error").exists()
    assert len(ledger_records(base)) == 1


@pytest.mark.parametrize("text, where", [
    ("", "empty file"),
    ("token,amount,currency\n", "no records"),
    ("token,amount\nTOKa1b2c3d4e5f6a7b8,1.00\n", "line 1: the header"),
    ("token,amount,currency\nTOKa1b2c3d4e5f6a7b8,1.00,EUR\nTOKa1b2c3d4e5f6a7b8,1.0,EUR\n", "line 3, field amount"),
    ("token,amount,currency\nTOKa1b2c3d4e5f6a7b8,1.00,EUR,x\n", "line 2: 4 fields"),
    (f"token,amount,currency\nTOKa1b2c3d4e5f6a7b8,1.00,EUR\n{PAN},1.00,EUR\n", "line 3, field token: a PAN-like"),
    (f"token,amount,currency\nTOK-{PAN[:8]} {PAN[8:]},1.00,EUR\n", "line 2, field token: a PAN-like"),
    (f"token,amount,currency\nTOKa1b2c3d4e5f6a7b8,1.00,{PAN}\n", "line 2, field currency: a PAN-like"),
])
def test_bad_batches_go_to_failed_with_what_and_where_and_never_the_value(base, text, where):
    drop(base, "bad.csv", text)
    proc, outcome = run(base, "bad.csv", check=2)
    error = (base / "failed" / "bad.csv.error").read_text()
    assert outcome["status"] == "rejected" and where in error and where in outcome["error"]
    assert (base / "failed" / "bad.csv").read_text() == text and not (base / "inbox" / "bad.csv").exists()
    assert not (base / "outbox" / "bad.csv.result").exists() and ledger_records(base) == []
    for digits in (PAN, PAN[:8], PAN[8:]):
        assert digits not in proc.stdout + proc.stderr + error
    # a repeat (the retry of the task) gives the same error, exit 2
    _, again = run(base, "bad.csv", check=2)
    assert again["error"] == outcome["error"]


def test_a_non_luhn_digit_run_is_not_pan_like(base):
    drop(base, "digits.csv", "token,amount,currency\n4111111111111112,1.00,EUR\n")
    _, outcome = run(base, "digits.csv", check=0)
    assert outcome["result"] == "ok 1 EUR=1.00"


def test_an_unknown_name_is_exit_1(base):
    proc, outcome = run(base, "nothing.csv", check=1)
    assert outcome["status"] == "missing"


def test_concurrent_runs_of_one_batch_process_it_once(base):
    drop(base, "c1.csv", GOOD)
    sha = hashlib.sha256(GOOD.encode()).hexdigest()
    # hold the batch's lock, start 6 runs, check they wait on it, then let them go at once
    with open(base / "ledger" / f"{sha}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        procs = [subprocess.Popen([sys.executable, str(SCRIPT), "c1.csv", "--base", str(base)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
        time.sleep(2)
        waiting = [p.poll() is None for p in procs]
        fcntl.flock(lock, fcntl.LOCK_UN)
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(waiting), "a run did not wait for the batch's lock"
    outcomes = [json.loads(out) for out, _ in outs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    assert sum(o["processed_now"] for o in outcomes) == 1
    assert {o["result"] for o in outcomes} == {"ok 3 EUR=20.00 USD=1.05"}
    assert ledger_records(base) == [sha + ".json"] and (base / "archive" / "c1.csv").exists()
