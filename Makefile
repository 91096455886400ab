# The two commands of the README: `make lab` and `make test`. Both install
# what they need on a fresh Debian 12 machine (run as root).
VENV   := .venv
PY     := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest

.PHONY: deps secrets render test test-fast test-loopback test-unit lab lab-destroy bench roster clean

deps:
	tools/install-deps.sh

secrets: deps
	$(PY) tools/gen_secrets.py

roster: deps
	$(PY) tools/roster.py

render: deps
	PYTHONWARNINGS=ignore $(PY) tools/render.py

# Everything but the loopback runs of what the lab's drills prove (marker
# lab_covered, docs/testing.md): the lab test runs those on the real cluster.
test: deps
	$(PYTEST) -ra --durations=20 -m "not lab_covered" tests

# The loopback runs the lab covers (a new pin or a change to a cluster's
# states, before a lab): about 20 minutes.
test-loopback: deps
	$(PYTEST) -ra -m lab_covered tests

# The inner loop: unit tests and the render tests (about 1.5 minutes).
test-fast: deps
	$(PYTEST) -ra -m "not slow and not integration and not lab" tests

# The local rehearsal: LXC containers by Vagrant, one per inventory host,
# brought up by the orchestrate SLS (tools/lab/up.sh prints the figures).
lab:
	tools/lab/up.sh

lab-destroy:
	tools/lab/destroy.sh

# Figures, not a test: latency and throughput of the lab against a single-host
# Airflow on this machine, and the lab under failure (tools/bench/bench.py;
# BENCH_ARGS=--single-only needs no lab). Results in .lab/bench/.
bench: deps
	$(PY) tools/bench/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
