"""Fixtures of the load-balancer tier: the haproxy and keepalived states
compiled for a host (faked grains, as tools/render.py does) with optional
pillar or inventory overrides, their template files rendered with the
states' own contexts; a real Patroni cluster for the HAProxy drill."""

import multiprocessing
import os
import tempfile

import pytest
import yaml

from clusters.state_render import render_state_template, state_args

import render as render_tool


def compile_state(host, topology, sls, state_id, os_name, secrets_dir, cache_root, pillar=None, inventory=None):
    """In a fresh process (Salt caches grains per process): the arguments of
    ``state_id`` in the compiled ``sls`` and its template file rendered with
    its own context, or the render errors."""
    import salt.client

    override_roots = ()
    if pillar or inventory:
        root = tempfile.mkdtemp(prefix="airflow-ha-haproxy-pillar-")
        if pillar:
            with open(os.path.join(root, "site.sls"), "w") as f:
                yaml.safe_dump(pillar, f)
        if inventory:
            os.makedirs(os.path.join(root, "inventory"))
            with open(os.path.join(root, "inventory", f"{topology}.yaml"), "w") as f:
                yaml.safe_dump(inventory, f)
        override_roots = (root,)
    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root, override_roots)
    caller = salt.client.Caller(mopts=opts)
    high = caller.cmd("state.show_sls", sls)
    if not isinstance(high, dict):
        return {"errors": "\n".join(map(str, high)) if isinstance(high, list) else str(high)}
    if state_id not in high:
        return {"errors": f"{state_id} not in {sls}: {sorted(high)}", "ids": sorted(high)}
    args = state_args(high[state_id])
    result = {"args": args, "ids": sorted(high)}
    if args.get("template") == "jinja":
        result["text"] = render_state_template(caller, args)
    return result


@pytest.fixture(scope="session")
def compile_many(salt_env):
    """compile_many([(host, topology, sls, state_id, os_name, pillar, inventory), ...]) -> results, in order,
    two fresh processes at a time."""
    ctx = multiprocessing.get_context("spawn")

    def run(jobs):
        with ctx.Pool(2, maxtasksperchild=1) as pool:
            pending = [pool.apply_async(compile_state, (h, t, sls, sid, os_name, *salt_env, pillar, inv))
                       for h, t, sls, sid, os_name, pillar, inv in jobs]
            return [p.get(timeout=300) for p in pending]

    return run


@pytest.fixture(scope="session")
def render_secrets(salt_env):
    """The throwaway secrets the renders use."""
    with open(os.path.join(salt_env[0], "airflow_ha_secrets.sls")) as f:
        return yaml.safe_load(f)["secrets"]


@pytest.fixture(scope="module")
def lb_patroni_cluster(state_file_context):
    """A 3-member etcd + Patroni + PostgreSQL cluster on loopback, offset from
    the tests/postgres one (PostgreSQL 15532-15534, REST API 18108-18110)."""
    from clusters.patroni import PatroniCluster

    etcd = state_file_context("db1", "compact", "etcd", "etcd-config")
    patroni = state_file_context("db1", "compact", "postgres", "postgres-patroni-config")
    # not under pytest's tmp dir: that is root-only, and PostgreSQL runs as postgres
    workdir = tempfile.mkdtemp(prefix="airflow-ha-haproxy-", dir="/var/tmp")
    with PatroniCluster(etcd, patroni, workdir, offset=100) as running:
        running.superuser_password = patroni["patroni"]["superuser"]["password"]
        yield running
