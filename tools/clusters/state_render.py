"""Render a state's template file exactly as the state does: the state's own
`context` is taken from the compiled SLS of a host (faked grains, as in
tools/render.py), then the template file is rendered with Salt's Jinja
renderer. Each host/OS compiles in a fresh process, since Salt caches grains
per process. The tests' fixtures (tests/helpers/state_render.py) and the drills use
these with throwaway secrets, plain (tls:enabled false) or with a throwaway CA
and host certificates of the compact and full topologies."""

import multiprocessing
import os

import yaml

from clusters.templates import REPO

import gen_secrets
import render as render_tool


def render_in_fresh_process(host, topology, sls, state_id, os_name, overrides, secrets_dir, cache_root,
                             context_only=False, override_roots=()):
    import salt.client

    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root, tuple(override_roots))
    caller = salt.client.Caller(mopts=opts)
    high = caller.cmd("state.show_sls", sls)
    if not isinstance(high, dict):
        raise RuntimeError(f"{sls} did not compile for {host}/{os_name}: {high}")
    if state_id not in high:
        raise KeyError(f"{state_id} not in {sls} for {host}/{os_name}: {sorted(high)}")
    args = state_args(high[state_id])
    if context_only:
        return args.get("context") or {}
    if args.get("template") != "jinja":
        return state_source(args)
    return render_state_template(caller, args, overrides)


def state_args(chunk):
    """The arguments of one state of ``state.show_sls``'s output, its function as ``fun``."""
    args = {}
    for mod, fun_args in chunk.items():
        if not mod.startswith("__"):
            for arg in fun_args:
                if isinstance(arg, dict):
                    args.update(arg)
                else:
                    args["fun"] = f"{mod}.{arg}"
    return args


def state_source(args):
    """The file a state's ``source`` names (the first of a TOFS list that the
    repo's salt/ tree holds), read from there."""
    sources = args["source"] if isinstance(args["source"], list) else [args["source"]]
    paths = [REPO / "salt" / s[len("salt://"):] for s in sources]
    return next(p for p in paths if p.exists()).read_text()


def render_state_template(caller, args, overrides=None):
    """A state's Jinja source rendered with the state's own context (plus ``overrides``)."""
    context = dict(args.get("context") or {}, **(overrides or {}))
    return caller.cmd("file.apply_template_on_contents", state_source(args), "jinja", context, {}, "base")


def make_salt_env(tmp, tls=False, topologies=None, secrets=None):
    """(secrets dir, cache) under ``tmp``: throwaway secrets (0600; ``secrets``,
    the tree under pillar `secrets`, when given), the modules synced; with
    ``tls`` a throwaway CA and certificates for the hosts of ``topologies``
    (default all), else pillar tls:enabled false (TLS is on by default, so the
    plain environment turns it off explicitly)."""
    if secrets is None:
        secrets = {}
        gen_secrets.fill(secrets)
    secrets_dir, cache = os.path.join(tmp, "secrets"), os.path.join(tmp, "cache")
    text = yaml.safe_dump({"secrets": secrets})
    text = render_tool.with_tls(text, topologies, secrets_dir, os.path.join(tmp, "ca")) if tls else \
        render_tool.without_tls(text)
    gen_secrets.write_private(os.path.join(secrets_dir, "airflow_ha_secrets.sls"), text)
    render_tool.sync_modules(secrets_dir, cache)
    return secrets_dir, cache


def in_fresh_process(*args):
    """render_in_fresh_process(*args) in a spawned process (Salt caches grains per process)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(render_in_fresh_process, args)


def renderer(env, override_roots=()):
    """render(host, topology, sls, state_id, os_name, **context overrides); ``override_roots``: pillar
    directories shadowing the repo's pillar files (e.g. one holding lab.sls with extra pillar)."""
    ctx = multiprocessing.get_context("spawn")

    def render(host, topology, sls, state_id, os_name="debian12", **overrides):
        with ctx.Pool(1) as pool:
            return pool.apply(render_in_fresh_process, (host, topology, sls, state_id, os_name, overrides, *env,
                                                        False, tuple(map(str, override_roots))))

    return render


def context_getter(env):
    ctx = multiprocessing.get_context("spawn")

    def context(host, topology, sls, state_id, os_name="debian12"):
        with ctx.Pool(1) as pool:
            return pool.apply(render_in_fresh_process, (host, topology, sls, state_id, os_name, {}, *env, True))

    return context


def compile_in_fresh_process(host, topology, sls, os_name, secrets_dir, cache_root, override_roots=()):
    import salt.client

    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root, tuple(override_roots))
    high = salt.client.Caller(mopts=opts).cmd("state.show_sls", sls)
    if not isinstance(high, dict):
        raise RuntimeError(f"{sls} did not compile for {host}/{os_name}: {high}")
    return {state_id: state_args(chunk) for state_id, chunk in high.items() if isinstance(chunk, dict)}


def compiler(env, override_roots=()):
    """compiled(host, topology, sls, os_name); ``override_roots`` as in renderer."""
    ctx = multiprocessing.get_context("spawn")

    def compiled(host, topology, sls, os_name="debian12"):
        with ctx.Pool(1) as pool:
            return pool.apply(compile_in_fresh_process, (host, topology, sls, os_name, *env,
                                                         tuple(map(str, override_roots))))

    return compiled


def host_states_in_fresh_process(host, topology, sls, pillar_root, overrides, secrets_dir, cache_root,
                                  os_name="debian12"):
    """``sls`` (a list) compiled for ``host`` with ``pillar_root`` shadowing the repo's pillar:
    {state id: {"fun", "args", "text"}}, each file.managed's text as the state writes it (its template
    rendered with its own context; ``overrides``: {context key: {key: value}} merged into that key's dict)."""
    import salt.client

    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root, (pillar_root,))
    caller = salt.client.Caller(mopts=opts)
    high = caller.cmd("state.show_sls", ",".join(sls))
    if not isinstance(high, dict):
        raise RuntimeError(f"{sls} did not compile for {host}: {high}")
    states = {}
    for state_id, chunk in high.items():
        if not isinstance(chunk, dict):
            continue
        args = state_args(chunk)
        fun = args.pop("fun")
        text = None
        if fun == "file.managed" and "contents" in args:
            text = args["contents"]
        elif fun == "file.managed" and "salt://" in str(args.get("source")):
            # the shipped file of a TOFS source list (a local source, e.g. a copy of the host's own key
            # made by salt/pki, exists only on the host: no text here)
            text = state_source(args)
            if args.get("template") == "jinja":
                context = dict(args.get("context") or {})
                for key, extra in overrides.items():
                    if key in context:
                        context[key] = dict(context[key], **extra)
                text = caller.cmd("file.apply_template_on_contents", text, "jinja", context, {}, "base")
        states[state_id] = {"fun": fun, "args": args, "text": text}
    return states


def host_states(host, topology, sls, pillar_root, overrides, env, os_name="debian12"):
    """host_states_in_fresh_process in a spawned process (``env``: make_salt_env's pair)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(host_states_in_fresh_process, (host, topology, sls, str(pillar_root), overrides, *env,
                                                         os_name))


def loopback_db(port):
    """The `airflow` context overrides that move its metadata DB onto 127.0.0.1:``port`` (plain): the
    host and every URL map.jinja derives from it (``db_direct``, and ``db_client`` without PgBouncer)."""
    db = {"host": "127.0.0.1", "port": port, "tls": None}
    return {"db_host": db["host"], "db_port": port, "db_direct": db, "db_client": db}
