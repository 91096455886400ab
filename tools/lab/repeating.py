"""A step repeated in a background thread for as long as a ``with`` block runs: the drills' and the bench's
load and samplers (smoke runs every few seconds, card batch sets, connection counts)."""

import threading


class Repeating:
    """``step()`` called in a daemon thread every ``every`` seconds (after each call) from the ``with``
    block's start until its end; the exit waits up to ``join_timeout`` seconds for the step under way."""

    every = 5.0
    join_timeout = 120

    def __init__(self, name):
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def step(self):
        raise NotImplementedError

    def pause(self, seconds):
        """Wait ``seconds`` inside a step, cut short when the block ends."""
        self._stop.wait(seconds)

    def _run(self):
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.every)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join(self.join_timeout)
