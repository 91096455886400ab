"""DAG deployment drill on the running lab (docs/dag-deploy.md): the orchestrates
run on the Salt master as an operator runs them.

    .venv/bin/python tools/lab/drill.py dags

Scenarios, in order (each prints a FIGURE line):
  broken    salt/dags plus a file with an import error, passed as the
            orchestrate's `source` (salt://dags-drill/broken: written into
            salt/dags-drill/ of this checkout, the master's file root, and
            fetched from the Salt fileserver by the hosts, since only the
            master sees the repository): refused by the validation,
            naming the file and line; no host's DAG folder link changed, no
            release staged anywhere
  deploy    salt/dags plus one added DAG, while the card DAG processes
            batches (drill_card: exactly once) and short DAG runs are
            triggered every few seconds: validated, staged and switched on
            every release host; the added DAG shows up in the API with zero
            import errors and both DAG processor hosts parsed its file; no
            task of the load failed or needed a retry; the time from the
            orchestrate's start to parsed, and how long two hosts' DAG
            folders pointed at different releases (their links' switch times);
            Airflow's Variable airflow_ha_dag_release names the release, its
            change in Airflow's audit log
  again     the same set once more: the orchestrate reports zero changes
  rollback  orch.rollback_dags: every host back on the release from before
            the drill, and so is the Variable; the added DAG goes stale (gone
            from the API's list)
The lab is left on the release it had before the drill.
"""

import json
import re
import shlex
import shutil
import threading
import time

import yaml

import drill
from drill import REPO, roles, run, wait

# the drill's sets: in the master's file root (the repo's salt/, bound into the master only), git-ignored
DRILL_DIR = REPO / "salt" / "dags-drill"
ADDED_DAG = "airflow_ha_drill_added"
ADDED = f'''"""Added by tools/lab/drill_dags.py: a DAG that only the drill's new release ships."""
import datetime

try:
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG({ADDED_DAG!r}, start_date=datetime.datetime(2026, 1, 1), schedule=None, tags=["drill"]):
    EmptyOperator(task_id="noop")
'''
BROKEN_FILE = "airflow_ha_drill_broken.py"
BROKEN = "import datetime\n\nimport airflow_ha_no_such_module  # the drill's import error\n"
FOLDER = "/srv/airflow/dags"
# the Airflow Variable the orchestrates set to the current release (storage:releases:variable)
RELEASE_VARIABLE = yaml.safe_load((REPO / "salt" / "storage" / "defaults.yaml").read_text())["releases"][
    "variable"]


def dag_set(name, extra):
    """salt/dags plus ``extra`` files, under salt/dags-drill/NAME; its salt:// URL."""
    path = DRILL_DIR / name
    shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(REPO / "salt" / "dags", path)
    for rel, text in extra.items():
        (path / rel).write_text(text)
    return f"salt://{path.relative_to(REPO / 'salt')}"


def fileserver_refresh(master):
    """The master's fileserver sees the sets just written (its file list is cached for a while)."""
    run(master, "salt-run fileserver.update >/dev/null; salt-run fileserver.clear_file_list_cache >/dev/null",
        check=False, timeout=300)


def distribution(inv):
    return (inv.get("dags") or {}).get("distribution", "nfs")


def release_hosts(inv):
    if distribution(inv) == "nfs":
        return roles(inv, "nfs")
    hosts = []
    for role in ("scheduler", "webserver", "dag_processor", "worker", "triggerer"):
        hosts += [h for h in roles(inv, role) if h not in hosts]
    return hosts


def links(inv):
    """{host: the release its DAG folder link points to} (the NFS servers' `current` with nfs)."""
    link = "/srv/nfs/dags/current" if distribution(inv) == "nfs" else FOLDER
    return {h: run(h, f"basename $(readlink -f {link})").stdout.strip() for h in release_hosts(inv)}


def releases(inv):
    folder = "/srv/nfs/dags/releases" if distribution(inv) == "nfs" else "/srv/airflow/dag-releases"
    return {h: sorted(run(h, f"ls {folder} 2>/dev/null; true").stdout.split()) for h in release_hosts(inv)}


def orchestrate(master, sls, pillar=None):
    """salt-run state.orchestrate on the master: (ok, seconds, JSON return)."""
    cmd = f"salt-run state.orchestrate {sls} --out=json"
    if pillar:
        cmd += " pillar=" + shlex.quote(json.dumps(pillar))
    started = time.monotonic()
    proc = run(master, cmd, check=False, timeout=1800)
    seconds = time.monotonic() - started
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = {"unparsed": proc.stdout[-4000:] + proc.stderr[-2000:]}
    ok = proc.returncode == 0 and not failed_states(data)
    return ok, seconds, data


def _states(data):
    """Every state result of an orchestrate's JSON return: the orchestrate's own, then the minions'."""
    runs = data.get("data") if isinstance(data.get("data"), dict) else data
    for run_ret in runs.values():
        if not isinstance(run_ret, dict):
            continue
        for step_id, step in run_ret.items():
            if not isinstance(step, dict):
                continue
            yield step_id, step
            for minion, minion_ret in ((step.get("changes") or {}).get("ret") or {}).items():
                if isinstance(minion_ret, dict):
                    for state_id, state in minion_ret.items():
                        if isinstance(state, dict):
                            yield f"{minion} {state_id}", state


def failed_states(data):
    return [f"{sid}: {str(s.get('comment'))[:400]}" for sid, s in _states(data) if s.get("result") is False]


def changed_states(data):
    """The minions' states that changed something (the orchestrate's steps carry their minions' changes)."""
    return [sid for sid, s in _states(data) if " " in sid and s.get("changes")]


# the stream of short runs during the deploy: the smoke DAG, in both the old and the new set
SHORT_DAG = "airflow_ha_smoke"
SHORT_EVERY_S = 3
LOAD_BATCHES = 10


class Load:
    """The card DAG (drill_card, which checks exactly once itself) and a stream of short DAG runs, while
    something else (the deploy) goes on. ``finish`` waits for all of it and counts every task instance of
    the load that failed or ran more than once."""

    def __init__(self, inv):
        self.inv = inv
        self.airflow_ha, self.api = drill.airflow_api(inv)
        # one login for the whole load (start() polls card_runs every half second)
        self.auth = self.airflow_ha._auth(self.api["url"], "admin", self.api["password"], 3, self.api["ca_file"])
        self.stop = threading.Event()
        self.short_runs, self.errors, self.card = [], [], {}
        self.threads = [threading.Thread(target=self._short, daemon=True),
                        threading.Thread(target=self._card, daemon=True)]

    def _short(self):
        while not self.stop.is_set():
            try:
                self.short_runs.append(self.airflow_ha.trigger_dag(SHORT_DAG, **self.api))
            except Exception as exc:  # a refused trigger is a failure of the load, reported at the end
                self.errors.append(f"trigger {SHORT_DAG}: {str(exc)[:200]}")
            self.stop.wait(SHORT_EVERY_S)

    def _card(self):
        import drill_card

        try:
            self.card.update(drill_card.drill_card(self.inv, batches=LOAD_BATCHES, kills=False,
                                                   label="during a DAG deploy"))
        except Exception as exc:  # AssertionError: lost or twice
            self.errors.append(f"card: {str(exc)[:400]}")

    def start(self):
        self.started = time.time()
        for thread in self.threads:
            thread.start()
        # the deploy starts once both are flowing
        wait(lambda: self.short_runs and self.card_runs(), 120, "the load's first short run and card run")

    def card_runs(self):
        """card_processing's runs started since the load began: [run_id]."""
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started - 1))
        runs = self.airflow_ha._pages(self.api["url"], f"/api/v2/dags/card_processing/dagRuns?start_date_gte={since}",
                                      "dag_runs", self.auth, self.api["ca_file"])
        return [r["dag_run_id"] for r in runs]

    def finish(self, timeout=900):
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=timeout)
        bad = []
        runs = [(SHORT_DAG, r) for r in self.short_runs] + [("card_processing", r) for r in self.card_runs()]
        for dag_id, run_id in runs:
            try:
                self.airflow_ha.wait_dag_run(dag_id, run_id, timeout=300, **self.api)
            except Exception as exc:  # a failed run: its task instances below say which task
                bad.append(f"{dag_id} {run_id}: {str(exc)[:200]}")
            for ti in self.airflow_ha.task_instances(dag_id, run_id, **self.api):
                if ti["state"] not in ("success", "skipped") or (ti["try_number"] or 1) > 1:
                    bad.append(f"{dag_id} {run_id} {ti['task_id']}[{ti['map_index']}]: {ti['state']}, "
                               f"try {ti['try_number']}")
        return {"short_runs": len(self.short_runs), "card_runs": len(runs) - len(self.short_runs),
                "card": self.card, "failed": bad + self.errors}


def recorded_release(inv, since):
    """(the release Airflow's Variable names, the audit log's changes of it since ``since`` epoch: [(event, owner)])."""
    airflow_ha, api = drill.airflow_api(inv)
    changes = [(r["event"], r["owner"]) for r in drill.audit_log(inv, since)
               if r["event"] in ("post_variable", "patch_variable")]
    return airflow_ha.variable(RELEASE_VARIABLE, **api), changes


def switch_times(inv):
    """{host: when its DAG folder link was made (epoch, ns precision)}: the link is a new symlink renamed over
    the old one, so its own mtime is the switch (the lab's containers share one clock)."""
    return {h: float(run(h, f"stat -c %.9Y {FOLDER}").stdout.strip()) for h in release_hosts(inv)}


def processor_parsed(host, file_name, since):
    """True when ``host``'s DAG processor wrote a log of parsing ``file_name`` after ``since`` (epoch)."""
    out = run(host, f"find /opt/airflow/logs/dag_processor -name {shlex.quote(file_name)}.log "
                    f"-newermt @{int(since)} 2>/dev/null | head -1", check=False).stdout
    return bool(out.strip())


def drill_dags(inv):
    master = next(iter(inv["hosts"]))
    airflow_ha, api = drill.airflow_api(inv)
    processors = roles(inv, "dag_processor")
    results = {}
    # EVERY DAG processor re-lists the DAG folder every airflow:dag_refresh_interval: on Airflow 3
    # `refresh_interval = 0` + `bundle_refresh_check_interval` (a non-zero refresh_interval is measured from
    # any processor's refresh, so one processor can keep its old file list: docs/dag-deploy.md)
    for host in processors:
        cfg = run(host, "cat /opt/airflow/airflow.cfg").stdout
        if "[dag_processor]" in cfg:
            ok = re.search(r"^refresh_interval = 0$", cfg, re.M) and "bundle_refresh_check_interval" in cfg
        else:
            ok = "dag_dir_list_interval" in cfg
        if not ok:
            raise RuntimeError(f"{host}'s airflow.cfg predates the DAG processors' per-processor re-listing "
                               "([dag_processor] refresh_interval = 0, bundle_refresh_check_interval): run "
                               "`salt-run state.orchestrate orch.airflow_rolling_restart` on the master first")
    # a lab brought up before releases: its DAG folders become a first release (the rollback's target)
    if any(run(h, f"test -L {FOLDER}", check=False).returncode for h in release_hosts(inv)
           if distribution(inv) != "nfs"):
        ok, seconds, data = orchestrate(master, "orch.deploy_dags")
        assert ok, f"the first release from salt://dags failed: {failed_states(data) or data}"
        print(f"FIGURE drill dags baseline: the DAG folders became release {next(iter(links(inv).values()))} "
              f"in {seconds:.0f} s (a lab brought up before releases)", flush=True)
    before_links, before_releases = links(inv), releases(inv)
    assert len(set(before_links.values())) == 1, f"the hosts are not on one release before the drill: {before_links}"
    original = next(iter(before_links.values()))

    # 1. a broken set: refused, nothing changed anywhere
    broken = dag_set("broken", {BROKEN_FILE: BROKEN})
    good = dag_set("good", {f"{ADDED_DAG}.py": ADDED})
    fileserver_refresh(master)
    ok, seconds, data = orchestrate(master, "orch.deploy_dags", {"source": broken})
    failures = failed_states(data)
    named = [f for f in failures if f"{BROKEN_FILE}:3" in f] or (
        [f"{BROKEN_FILE}:3 (in the orchestrate's return)"] if f"{BROKEN_FILE}:3" in json.dumps(data) else [])
    assert not ok and named, f"the broken set was not refused naming {BROKEN_FILE}:3: {failures or data}"
    assert links(inv) == before_links, f"a DAG folder link moved: {before_links} -> {links(inv)}"
    assert releases(inv) == before_releases, f"a release was staged: {before_releases} -> {releases(inv)}"
    print(f"FIGURE drill dags broken: a set with an import error refused in {seconds:.0f} s "
          f"({named[0].split(': ', 1)[-1][:160]}); {len(before_links)} hosts still on release {original}, "
          f"no release staged", flush=True)
    results["broken"] = {"refused_s": seconds, "message": named[0]}

    # 2. a new good version: one more DAG, parsed by both processors
    parsed_at = {}
    stop = threading.Event()

    def watch(started):
        while not stop.is_set():
            try:
                dag = {d["dag_id"]: d for d in airflow_ha.dags(**api)}.get(ADDED_DAG)
                if dag and not dag["is_stale"] and dag["last_parsed_time"] and not airflow_ha.import_errors(**api):
                    parsed_at.setdefault("api", time.monotonic() - started)
                for host in processors:
                    if host not in parsed_at and processor_parsed(host, f"{ADDED_DAG}.py", wall_start):
                        parsed_at[host] = time.monotonic() - started
            except Exception as exc:  # the poll says nothing about the deploy: ask again
                parsed_at.setdefault("poll_errors", []).append(str(exc)[:200])
            if "api" in parsed_at and all(h in parsed_at for h in processors):
                return
            time.sleep(1)

    load = Load(inv)
    load.start()
    wall_start, started = time.time(), time.monotonic()
    watcher = threading.Thread(target=watch, args=(started,), daemon=True)
    watcher.start()
    ok, seconds, data = orchestrate(master, "orch.deploy_dags", {"source": good})
    try:
        assert ok, f"orch.deploy_dags of the good set failed: {failed_states(data) or data}"
        wait(lambda: "api" in parsed_at and all(h in parsed_at for h in processors), 300,
             f"{ADDED_DAG} parsed by the DAG processors on {processors}")
    finally:
        stop.set()
        watcher.join(timeout=30)
        under_load = load.finish()
    new = links(inv)
    assert len(set(new.values())) == 1 and original not in new.values(), f"not every host switched: {new}"
    version = next(iter(new.values()))
    shown, changes = recorded_release(inv, wall_start)
    assert shown == version and changes, (f"Airflow's Variable {RELEASE_VARIABLE} is {shown!r} (audit log changes "
                                          f"{changes}), not the deployed release {version}")
    switched = switch_times(inv) if distribution(inv) != "nfs" else {}
    # NFS: one link on the export, which every host reads
    disagree = max(switched.values()) - min(switched.values()) if switched else 0.0
    per_host = ", ".join(f"{h} {parsed_at[h]:.0f} s" for h in processors)
    print(f"FIGURE drill dags deploy: release {version} (+{ADDED_DAG}) on {len(new)} hosts; orchestrate "
          f"{seconds:.0f} s; from the orchestrate's start to parsed in the API with zero import errors "
          f"{parsed_at['api']:.0f} s; DAG processors parsed it: {per_host}; hosts on different releases for "
          f"{disagree:.3f} s (first to last link switch); Airflow's Variable {RELEASE_VARIABLE} = {shown}, "
          f"its change in the audit log: {changes[-1][0]} by {changes[-1][1]}", flush=True)
    print(f"FIGURE drill dags under load: during the deploy {under_load['short_runs']} runs of {SHORT_DAG} "
          f"(one every {SHORT_EVERY_S} s) and {under_load['card_runs']} card_processing runs "
          f"({LOAD_BATCHES} batches: lost {under_load['card'].get('lost')}, processed twice "
          f"{under_load['card'].get('twice')}); task instances failed or retried: {len(under_load['failed'])}",
          flush=True)
    assert not under_load["failed"], f"the load during the deploy: {under_load['failed'][:20]}"
    results["deploy"] = {"version": version, "orchestrate_s": seconds, "parsed_s": parsed_at["api"],
                         "processors_s": {h: parsed_at[h] for h in processors}, "disagree_s": disagree,
                         "load": under_load}

    # 3. the same set again: zero changes
    ok, seconds, data = orchestrate(master, "orch.deploy_dags", {"source": good})
    changed = changed_states(data)
    assert ok and not changed, f"the second deploy of the same set: failed {failed_states(data)}, changed {changed}"
    assert links(inv) == new
    print(f"FIGURE drill dags again: the same set deployed again in {seconds:.0f} s: 0 changes, "
          f"release {version} kept", flush=True)
    results["again"] = {"orchestrate_s": seconds, "changes": 0}

    # 4. rollback in one command: back to the release from before the drill
    rollback_start = time.time()
    ok, seconds, data = orchestrate(master, "orch.rollback_dags")
    assert ok, f"orch.rollback_dags failed: {failed_states(data) or data}"
    back = links(inv)
    assert set(back.values()) == {original}, f"the rollback left {back}, not {original}"
    shown, changes = recorded_release(inv, rollback_start)
    assert shown == original and changes, (f"after the rollback Airflow's Variable {RELEASE_VARIABLE} is {shown!r} "
                                           f"(audit log changes {changes}), not {original}")

    def added_gone():
        dag = {d["dag_id"]: d for d in airflow_ha.dags(**api)}.get(ADDED_DAG)
        return dag is None or dag["is_stale"]

    gone_s = wait(added_gone, 300, f"{ADDED_DAG} gone after the rollback")
    print(f"FIGURE drill dags rollback: orch.rollback_dags {seconds:.0f} s (parsed included); {len(back)} hosts "
          f"back on release {original}; {ADDED_DAG} stale in the API {gone_s:.0f} s after", flush=True)
    results["rollback"] = {"orchestrate_s": seconds, "release": original, "gone_s": gone_s}
    shutil.rmtree(DRILL_DIR, ignore_errors=True)
    return results
