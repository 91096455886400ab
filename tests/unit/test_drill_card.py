"""The pure parts of the card drill (tools/lab/drill_card.py): batch generation (valid for the real
card-process-batch, never PAN-like, unique), totals, the exactly-once verdict and the latency maths."""

import decimal
import json
import subprocess
import sys

import pytest

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_card  # noqa: E402

SCRIPT = REPO / "salt" / "card_target" / "files" / "card-process-batch.py"


def test_generated_batches_are_valid_unique_and_their_totals_match_the_processing_script(tmp_path):
    for folder in ("inbox", "outbox", "archive", "failed", "ledger"):
        (tmp_path / folder).mkdir()
    texts = [drill_card.generate_batch(1234567, i, 300) for i in range(3)]
    assert len(set(texts)) == 3 and texts[0] == drill_card.generate_batch(1234567, 0, 300)
    records, totals = drill_card.batch_totals(texts)
    ledger = []
    for i, text in enumerate(texts):
        (tmp_path / "inbox" / f"b{i}.csv").write_text(text)
        proc = subprocess.run([sys.executable, str(SCRIPT), f"b{i}.csv", "--base", str(tmp_path)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout  # no line of a generated batch is rejected (PAN-like included)
        ledger.append(json.loads(proc.stdout))
    assert records == 900 and drill_card.ledger_totals(ledger) == (records, totals)
    assert set(totals) == set(drill_card.CURRENCIES)


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert drill_card.percentile(values, 50) == 50 and drill_card.percentile(values, 95) == 95
    assert drill_card.percentile([3.0], 95) == 3.0 and drill_card.percentile([5, 1, 3], 50) == 3
    with pytest.raises(ValueError):
        drill_card.percentile([], 50)


def test_figures_from_upload_and_result_times():
    uploaded = {"a": 100.0, "b": 110.0, "c": 120.0, "d": 130.0}
    finished = {"a": 130.0, "b": 150.0, "c": 160.0, "d": 190.0}
    f = drill_card.figures(uploaded, finished, records_per_batch=1000)
    assert f["span_s"] == 90.0 and f["batches"] == 4
    assert f["batches_per_min"] == pytest.approx(4 / 90 * 60) and f["records_per_s"] == pytest.approx(4000 / 90)
    assert f["latency_p50_s"] == 40.0 and f["latency_p95_s"] == 60.0


def test_verdict_counts_lost_twice_and_wrong_totals():
    names = ["a", "b", "c"]
    rec = lambda n, eur: {"name": n, "result": f"ok 1 EUR={eur}", "records": 1, "totals": {"EUR": eur}}  # noqa: E731
    ledger = [rec("a", "1.00"), rec("b", "2.00"), rec("c", "3.00")]
    results = {n: r["result"] for n, r in zip(names, ledger)}
    good = drill_card.verdict(names, results, set(names), ledger, {"EUR": decimal.Decimal("6.00")})
    assert good["totals_equal"] and not any(good[k] for k in ("lost", "twice", "unarchived", "unledgered", "wrong"))
    bad = drill_card.verdict(names, {"a": results["a"], "b": "ok 1 EUR=9.00"}, {"a"}, ledger + [rec("a", "1.00")],
                             {"EUR": decimal.Decimal("6.00")})
    assert bad["lost"] == ["c"] and bad["twice"] == ["a"] and bad["wrong"] == ["b"]
    assert bad["unarchived"] == ["b", "c"] and not bad["totals_equal"]


def test_the_upload_script_embeds_the_generator_and_reads_no_secret_from_its_arguments():
    script = drill_card.upload_script()
    assert "def generate_batch(seed, index, records):" in script and "GENERATE" not in script
    assert ". /etc/default/airflow" in script and "password" not in script.split("<<'PY'")[0]
