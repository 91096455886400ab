"""tools/lab/repeating.py, the background loop of the drills' load (drill_day2.Stream, drill_upgrade.CardStream)
and the bench's sampler, without a lab: steps repeat until the block ends, and a step that fails is counted by
its owner, not lost with the thread."""

import sys
import threading

from tests.helpers.inventory import REPO

sys.path.insert(0, str(REPO / "tools" / "lab"))
import drill_day2  # noqa: E402
import repeating  # noqa: E402


class Counter(repeating.Repeating):
    every = 0.01

    def __init__(self):
        super().__init__("test-counter")
        self.steps = 0
        self.enough = threading.Event()

    def step(self):
        self.steps += 1
        if self.steps >= 3:
            self.enough.set()


def test_steps_repeat_until_the_block_ends():
    with Counter() as counter:
        assert counter.enough.wait(5)
    steps = counter.steps
    assert not counter.thread.is_alive()
    counter.enough.clear()
    assert not counter.enough.wait(0.05) and counter.steps == steps  # nothing after the end


class FakeAirflow:
    """trigger_dag accepts the first two runs, then refuses (an api-server going down behind HAProxy)."""

    def __init__(self):
        self.calls = 0

    def trigger_dag(self, dag_id, conf=None, **api):
        self.calls += 1
        if self.calls > 2:
            raise RuntimeError("HTTP 503 no server is available")
        return f"run{self.calls}"


def test_the_day2_stream_keeps_runs_and_counts_refusals(monkeypatch):
    fake = FakeAirflow()
    monkeypatch.setattr(drill_day2, "airflow_api", lambda inv: (fake, {}))
    monkeypatch.setattr(drill_day2.Stream, "every", 0.01)
    with drill_day2.Stream({}) as stream:
        for _ in range(500):
            if fake.calls >= 4:
                break
            stream.pause(0.01)
    assert stream.run_ids == ["run1", "run2"]
    assert len(stream.refused) == fake.calls - 2 and "503" in stream.refused[0]
