"""Airflow upgrade drill on the running lab (issue 20, docs/operations.md#airflow-upgrade-orchairflow_upgrade):
orch.airflow_upgrade from the previous pinned Airflow 3 release to the current one, while card batches and a
stream of short DAG runs go on.

    .venv/bin/python tools/lab/drill.py upgrade

1. ``orch.airflow_upgrade`` with the previous release's pillar (PREVIOUS): the lab runs it, as a site did
   before the upgrade (itself a rolling change: the venv built beside, each host switched in turn).
2. ``orch.airflow_upgrade`` to the current release (salt/airflow/defaults.yaml) with a smoke run triggered
   every few seconds through the VIP (drill_day2.Stream) and sets of CARD_BATCHES card batches uploaded one
   after the other meanwhile (CardStream), each set checked exactly once.
3. A second run: no state step changes anything.

Figures: each run's seconds; the stream's runs, failed runs, failed tries, refused triggers and the longest
scheduling gap; the card batches lost and processed twice; each host's venv and Airflow version after.
"""

import time

import drill
import drill_card
import drill_dags
import yaml
from drill import roles, run
from drill_day2 import STREAM_EVERY_S, Stream, outcome
from repeating import Repeating

PREVIOUS = {"version": "3.3.1", "requirements": "airflow-3.3.1.txt"}
CARD_BATCHES = 5


def current_release():
    defaults = yaml.safe_load((drill.REPO / "salt" / "airflow" / "defaults.yaml").read_text())
    return {"version": str(defaults["version"]), "requirements": defaults["requirements"]}


def airflow_hosts(inv):
    return sorted({h for role in ("scheduler", "webserver", "worker", "triggerer", "dag_processor")
                   for h in roles(inv, role)})


def versions(inv):
    """{host: (venv the symlink names, Airflow version that venv imports)}."""
    out = {}
    for host in airflow_hosts(inv):
        link = run(host, "readlink /opt/airflow/venv").stdout.strip()
        version = run(host, "/opt/airflow/venv/bin/python -c 'import airflow; print(airflow.__version__)'",
                      timeout=120).stdout.strip()
        out[host] = (link, version)
    return out


def upgrade(master, pillar=None):
    ok, seconds, data = drill_dags.orchestrate(master, "orch.airflow_upgrade", pillar)
    assert ok, f"orch.airflow_upgrade {pillar or ''} failed: {drill_dags.failed_states(data) or str(data)[-3000:]}"
    return round(seconds), data


def state_changes(data):
    """{minion: [state ids with changes]} of the salt.state steps of an orchestrate's JSON return."""
    changed = {}
    for steps in (data.get("data") or {}).values():
        for step_id, step in steps.items():
            if step_id.startswith("salt_|-") and step_id.endswith("_|-state"):
                for minion, states in (step.get("changes") or {}).get("ret", {}).items():
                    ids = [s.get("__id__", k) for k, s in (states if isinstance(states, dict) else {}).items()
                           if isinstance(s, dict) and s.get("changes")]
                    if ids:
                        changed.setdefault(minion, []).extend(ids)
    return changed


class CardStream(Repeating):
    """Card batches, CARD_BATCHES at a time, one set after the other for as long as the ``with`` block runs
    (a set takes well under a minute: one set at the start would be done before the first host switches);
    every set checked exactly once by drill_card."""

    every = 0
    join_timeout = 1800

    def __init__(self, inv):
        super().__init__("upgrade-card")
        self.inv, self.sets, self.errors = inv, [], []

    def step(self):
        try:
            self.sets.append(drill_card.drill_card(self.inv, batches=CARD_BATCHES, kills=False,
                                                   label="during the Airflow upgrade"))
        except Exception as exc:  # noqa: BLE001 - the drill's finding, reported at the end
            self.errors.append(str(exc)[:300])
            self.pause(10)

    def figures(self):
        return {"batches": CARD_BATCHES * len(self.sets), "lost": sum(s["lost"] for s in self.sets),
                "twice": sum(s["twice"] for s in self.sets), "errors": self.errors}


def drill_upgrade(inv):
    master = next(iter(inv["hosts"]))
    target = current_release()
    figures = {"from": PREVIOUS["version"], "to": target["version"]}
    figures["to_previous_s"], _ = upgrade(master, {"airflow": PREVIOUS})
    before = versions(inv)
    assert all(v == PREVIOUS["version"] for _, v in before.values()), f"not on {PREVIOUS['version']}: {before}"

    started = time.time()
    with Stream(inv) as stream, CardStream(inv) as card:
        time.sleep(STREAM_EVERY_S * 2)
        figures["upgrade_s"], _ = upgrade(master)
        time.sleep(STREAM_EVERY_S * 2)
    ended = time.time()
    failed_runs, failed_tries, starts = outcome(inv, stream.run_ids)
    window = [s for s in starts if started <= s <= ended]
    gap = max((b - a for a, b in zip(window, window[1:])), default=None)
    after = versions(inv)
    figures.update(runs=len(stream.run_ids), failed_runs=failed_runs, failed_tries=failed_tries,
                   refused_triggers=stream.refused, longest_scheduling_gap_s=round(gap, 1) if gap else None,
                   card=card.figures(), versions=after)
    figures["again_s"], again = upgrade(master)
    figures["again_changes"] = state_changes(again)
    print(f"FIGURE drill upgrade: orch.airflow_upgrade to {PREVIOUS['version']} {figures['to_previous_s']} s, then to "
          f"{target['version']} {figures['upgrade_s']} s under load: a smoke run every {STREAM_EVERY_S} s, "
          f"{len(stream.run_ids)} runs, {len(failed_runs)} failed, {len(failed_tries)} failed tries, "
          f"{len(stream.refused)} triggers refused, longest scheduling gap {figures['longest_scheduling_gap_s']} s; "
          f"{figures['card']['batches']} card batches: lost {figures['card']['lost']}, twice "
          f"{figures['card']['twice']}, failed checks {len(figures['card']['errors'])}; a second run "
          f"{figures['again_s']} s, states changed {sum(map(len, figures['again_changes'].values()))}", flush=True)
    assert figures["card"]["batches"] and not figures["card"]["errors"], figures["card"]
    assert all(v == target["version"] for _, v in after.values()), f"not on {target['version']}: {after}"
    assert not failed_runs and not failed_tries, (failed_runs, failed_tries)
    assert figures["card"]["lost"] == 0 and figures["card"]["twice"] == 0, figures["card"]
    assert not figures["again_changes"], figures["again_changes"]
    return figures
