#!/usr/bin/env python3
"""Render the highstate of every host of every topology for both OS families.

    tools/render.py [--topology full --topology compact] [--os debian12 --os rocky9] [--no-tls] [-v]
                    [--secrets FILE [--tls]]

Each host is compiled as a masterless minion with faked grains (its inventory
name as minion id, Debian 12 or Rocky Linux 9) and run with ``mock=True``:
Salt renders every SLS, checks every requisite and orders the run, but calls
no state function, so nothing on this machine changes. Throwaway secrets are
generated into a temporary pillar root, with a throwaway CA and the hosts'
signing policies (tools/gen_tls.py) since TLS is on by default; ``--no-tls``
renders with ``tls:enabled: false`` instead. ``--secrets FILE`` uses that
file (and the signing policies ``tls/ca.sls`` beside it, as tools/gen_secrets.py
writes them) as it is; add ``--tls`` to make a throwaway CA for it.
Then every orchestrate (salt/orch/*.sls) is rendered for each topology as
the master would: from its own pillar, that of the master's id (in no
inventory, so it holds no secret: pillar/role_secrets.sls), with the
orchestrate pillar each one takes (e.g. orch.rollback_dags with a release).
Ends with the line ``rendered H hosts x F os families, N errors`` and exits
non-zero on errors.
"""

import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import warnings

warnings.filterwarnings("ignore")
os.environ.setdefault("PYTHONWARNINGS", "ignore")  # for the worker processes too

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, ROOT)

import yaml  # noqa: E402

import gen_secrets  # noqa: E402
import gen_tls  # noqa: E402
from _modules.ha_inventory import read_inventory  # noqa: E402

OS_GRAINS = {
    "debian12": {
        "os": "Debian", "os_family": "Debian", "osfinger": "Debian-12", "osmajorrelease": 12,
        "osrelease": "12", "oscodename": "bookworm", "osarch": "amd64", "init": "systemd",
        "virtual": "kvm", "virtual_subtype": None, "cpuarch": "x86_64",
    },
    "rocky9": {
        "os": "Rocky", "os_family": "RedHat", "osfinger": "Rocky Linux-9", "osmajorrelease": 9,
        "osrelease": "9.4", "oscodename": "Blue Onyx", "osarch": "x86_64", "init": "systemd",
        "virtual": "kvm", "virtual_subtype": None, "cpuarch": "x86_64",
    },
}


def topology_hosts(topology):
    return sorted(read_inventory(topology).get("hosts") or {})


def minion_opts(host, topology, os_name, secrets_dir, cache_root, override_roots=(), cache_tag=""):
    import salt.config

    opts = salt.config.minion_config(None)
    opts.update(
        {
            "id": host,
            "file_client": "local",
            "file_roots": {"base": [os.path.join(ROOT, "salt")]},
            # an override root comes first: its files shadow the repo's
            "pillar_roots": {"base": [*override_roots, os.path.join(ROOT, "pillar"), secrets_dir]},
            "airflow_ha_topology": topology,
            "cachedir": os.path.join(cache_root, f"{topology}-{os_name}-{host}{cache_tag}"),
            "extension_modules": os.path.join(cache_root, "extmods"),
            "log_level": "quiet",
            "state_verbose": False,
        }
    )
    # Salt reads static grains (which override the detected ones) only from
    # the config file, so the faked grains go into one.
    os.makedirs(opts["cachedir"], exist_ok=True)
    conf_file = os.path.join(opts["cachedir"], "minion")
    with open(conf_file, "w") as f:
        yaml.safe_dump({"grains": dict(OS_GRAINS[os_name], id=host, host=host, nodename=host, fqdn=host)}, f)
    opts["conf_file"] = conf_file
    return opts


def render_host(args):
    """Compile and mock-run one host's highstate; return (label, [errors])."""
    host, topology, os_name, secrets_dir, cache_root, override_roots = args
    import salt.client

    label = f"{topology}/{os_name}/{host}"
    try:
        caller = salt.client.Caller(mopts=minion_opts(host, topology, os_name, secrets_dir, cache_root, override_roots))
        ret = caller.cmd("state.highstate", mock=True)
    except Exception as exc:  # a render error can surface as an exception
        return label, [f"{type(exc).__name__}: {exc}"]
    if isinstance(ret, list):  # render/compile errors come back as a list of strings
        return label, [str(e) for e in ret]
    if isinstance(ret, str):
        return label, [ret]
    errors, unavailable = [], set()
    for state_id, result in ret.items():
        comment = str(result.get("comment"))
        if result.get("result") is not False:
            continue
        # A faked OS family's execution modules (yum, firewalld...) cannot load
        # on this machine: the state compiled and its requisites resolved, it
        # just cannot be mock-called here. Its dependents fail in cascade.
        if "__virtual__ returned False" in comment and "was not found in SLS" in comment:
            unavailable.add(state_id)
            continue
        if comment.startswith("One or more requisite failed"):
            continue
        errors.append(f"{state_id}: {comment}")
    return label, errors


# the master's own minion id (Salt's default: its host name and `_master`), in no inventory
MASTER_ID = "saltmaster_master"
# the orchestrate pillar each orchestrate is rendered with (more than one: each)
ORCH_PILLARS = {
    "orch.add_worker": [lambda hosts: {"host": hosts["worker"][0]}],
    "orch.deploy_dags": [lambda hosts: {}, lambda hosts: {"source": "salt://dags"}],
    "orch.rollback_dags": [lambda hosts: {}, lambda hosts: {"release": "0123456789abcdef"}],
    # without action it renders its refusal; up and down (nothing to scale without a standby host)
    "orch.autoscale": [lambda hosts: {}, lambda hosts: {"action": "up"}, lambda hosts: {"action": "down"}],
    # without target_time and confirm it renders only its refusal
    "orch.restore": [lambda hosts: {}, lambda hosts: {"target_time": "2026-12-02 03:00:00+00", "confirm": "restore"}],
    # the current release, and the previous one (its own pin file)
    "orch.airflow_upgrade": [lambda hosts: {},
                             lambda hosts: {"airflow": {"version": "3.3.1", "requirements": "airflow-3.3.1.txt"}}],
    # every host; some in a given order; a check only
    "orch.rolling_reboot": [lambda hosts: {}, lambda hosts: {"hosts": [hosts["worker"][-1], hosts["postgres"][0]]},
                            lambda hosts: {"hosts": []}],
}


def render_orchestrate(args):
    """Render one orchestrate SLS as the master does (its own pillar: the inventory, site and tls:enabled
    every minion gets, no secret); return (label, [errors])."""
    sls, topology, pillar, secrets_dir, cache_root, *override_roots = args
    import salt.client

    label = f"{topology}/orchestrate/{sls} {json.dumps(pillar)}"
    # --pillar-override shadows the master's pillar files too (e.g. a bad orch:preflight)
    # a cache directory per worker process: the orchestrates all render as the same id, and two workers
    # filling one file cache at once raced (FileExistsError on its roots directory)
    opts = minion_opts(MASTER_ID, topology, "debian12", secrets_dir, cache_root,
                       tuple(override_roots[0]) if override_roots else (), cache_tag=f"-orch{os.getpid()}")
    try:
        ret = salt.client.Caller(mopts=opts).cmd("state.show_sls", sls, pillar=pillar)
    except Exception as exc:
        return label, [f"{type(exc).__name__}: {exc}"]
    if isinstance(ret, list):
        return label, [str(e) for e in ret]
    if not isinstance(ret, dict) or not ret:
        return label, [f"rendered nothing: {ret!r}"]
    return label, []


def orchestrate_jobs(topologies, secrets_dir, cache_root, only_pillar=None, override_roots=()):
    jobs = []
    for topo in topologies:
        by_role = {}
        for host, spec in sorted((read_inventory(topo).get("hosts") or {}).items()):
            for role in spec.get("roles", []):
                by_role.setdefault(role, []).append(host)
        for path in sorted(os.listdir(os.path.join(ROOT, "salt", "orch"))):
            if path.endswith(".sls"):
                sls = "orch." + path[:-4]
                makers = [lambda hosts: json.loads(only_pillar)] if only_pillar else \
                    ORCH_PILLARS.get(sls, [lambda hosts: {}])
                for make in makers:
                    jobs.append((sls, topo, make(by_role), secrets_dir, cache_root, tuple(override_roots)))
    return jobs


def sync_modules(secrets_dir, cache_root):
    import salt.client

    host = topology_hosts("full")[0]
    caller = salt.client.Caller(mopts=minion_opts(host, "full", "debian12", secrets_dir, cache_root))
    caller.cmd("saltutil.sync_all")


def with_tls(secrets_text, topologies, secrets_dir, ca_dir):
    """The secrets pillar with tls:enabled and the CA; the CA host's signing policies (tls/ca.sls) beside it."""
    ca_cert, _, _ = gen_tls.generate(gen_tls.load_topologies(topologies), secrets_dir, ca_dir)
    data = yaml.safe_load(secrets_text) or {}
    data.setdefault("tls", {}).update(enabled=True, ca_cert=ca_cert)
    return yaml.safe_dump(data)


def without_tls(secrets_text):
    """The secrets pillar with tls:enabled false (no TLS material needed)."""
    data = yaml.safe_load(secrets_text) or {}
    data["tls"] = {"enabled": False}
    return yaml.safe_dump(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--topology", action="append", help="full and compact by default")
    parser.add_argument("--os", action="append", choices=sorted(OS_GRAINS), help="all by default")
    parser.add_argument("--host", action="append", help="only these hosts")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--pillar-override", action="append", default=[], metavar="DIR",
                        help="a pillar root whose files shadow the repo's (e.g. inventory/full.yaml)")
    parser.add_argument("--secrets", metavar="FILE", help="use this secrets pillar file instead of throwaway ones")
    parser.add_argument("--tls", action="store_true",
                        help="with --secrets: add tls:enabled, a throwaway CA and the hosts' signing policies "
                             "(without --secrets they are always issued)")
    parser.add_argument("--no-tls", action="store_true", help="render with tls:enabled false")
    parser.add_argument("--no-orchestrates", action="store_true", help="hosts only, not salt/orch/*.sls")
    parser.add_argument("--orchestrates-only", action="store_true", help="salt/orch/*.sls only, no host's highstate")
    parser.add_argument("--orch-pillar", metavar="JSON", help="render only the orchestrates with this orchestrate "
                                                                "pillar (e.g. a bad one, to see the render fail)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    topologies = args.topology or ["full", "compact"]
    os_names = args.os or sorted(OS_GRAINS)

    with tempfile.TemporaryDirectory(prefix="airflow-ha-render-") as tmp:
        secrets_dir = os.path.join(tmp, "secrets")
        if args.secrets:
            with open(args.secrets) as f:
                text = f.read()
            # the CA host's signing policies beside it (tools/gen_secrets.py's layout), read-only here
            host_tls = os.path.join(os.path.dirname(os.path.abspath(args.secrets)), "tls")
            if os.path.isdir(host_tls) and not args.tls:
                shutil.copytree(host_tls, os.path.join(secrets_dir, "tls"))
        else:
            data = {"secrets": {}}
            gen_secrets.fill(data["secrets"])
            text = yaml.safe_dump(data)
        if args.no_tls:
            text = without_tls(text)
        elif args.tls or not args.secrets:
            text = with_tls(text, topologies, secrets_dir, os.path.join(tmp, "ca"))
        gen_secrets.write_private(os.path.join(secrets_dir, "airflow_ha_secrets.sls"), text)
        cache_root = os.path.join(tmp, "cache")
        sync_modules(secrets_dir, cache_root)
        jobs = [
            (host, topo, os_name, secrets_dir, cache_root, tuple(os.path.abspath(d) for d in args.pillar_override))
            for topo in topologies
            for host in topology_hosts(topo)
            if not args.host or host in args.host
            for os_name in os_names
        ]
        failures = 0
        with concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs) as pool:
            results = [] if args.orchestrates_only or args.orch_pillar else list(pool.map(render_host, jobs))
            if not args.host and not args.no_orchestrates:
                orch_jobs = orchestrate_jobs(topologies, secrets_dir, cache_root, args.orch_pillar,
                                             [os.path.abspath(d) for d in args.pillar_override])
                if args.orch_pillar:
                    orch_jobs = [j for j in orch_jobs if j[0] in ("orch.deploy_dags", "orch.rollback_dags")]
                results += list(pool.map(render_orchestrate, orch_jobs))
            for label, errors in results:
                if errors:
                    failures += len(errors)
                    print(f"FAIL {label}")
                    for err in errors:
                        print("   ", err.replace("\n", "\n    "))
                elif args.verbose:
                    print(f"ok   {label}")
    hosts = 0 if args.orchestrates_only or args.orch_pillar else len({(j[1], j[0]) for j in jobs})
    print(f"rendered {hosts} hosts x {len(os_names)} os families, {failures} errors")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
