"""Render a state's template file exactly as the state does: the state's own
`context` is taken from the compiled SLS of a host (faked grains, as in
tools/render.py), then the template file is rendered with Salt's Jinja
renderer. Each host/OS compiles in a fresh process, since Salt caches grains
per process. The plain fixtures render with pillar tls:enabled false; the
`tls_` fixtures with tls:enabled (the default) and a throwaway CA and host
certificates of the compact and full topologies."""

import multiprocessing

import pytest
import yaml

from tests.helpers.inventory import REPO

import gen_secrets
import render as render_tool


def _render_in_fresh_process(host, topology, sls, state_id, os_name, overrides, secrets_dir, cache_root,
                             context_only=False):
    import salt.client

    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root)
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
    """The file a state's ``source`` names, read from the repo's salt/ tree."""
    with open(args["source"].replace("salt://", str(REPO / "salt") + "/")) as f:
        return f.read()


def render_state_template(caller, args, overrides=None):
    """A state's Jinja source rendered with the state's own context (plus ``overrides``)."""
    context = dict(args.get("context") or {}, **(overrides or {}))
    return caller.cmd("file.apply_template_on_contents", state_source(args), "jinja", context, {}, "base")


def _make_salt_env(tmp, tls=False):
    secrets = {}
    gen_secrets.fill(secrets)
    secrets_dir = tmp / "secrets"
    secrets_dir.mkdir()
    text = yaml.safe_dump({"secrets": secrets})
    # TLS is on by default: the plain environment turns it off explicitly
    text = render_tool.with_tls(text, None, str(secrets_dir), str(tmp / "ca")) if tls else \
        render_tool.without_tls(text)
    (secrets_dir / "airflow_ha_secrets.sls").write_text(text)
    render_tool.sync_modules(str(secrets_dir), str(tmp / "cache"))
    return str(secrets_dir), str(tmp / "cache")


def _renderer(env):
    ctx = multiprocessing.get_context("spawn")

    def render(host, topology, sls, state_id, os_name="debian12", **overrides):
        with ctx.Pool(1) as pool:
            return pool.apply(_render_in_fresh_process, (host, topology, sls, state_id, os_name, overrides, *env))

    return render


def _context_getter(env):
    ctx = multiprocessing.get_context("spawn")

    def context(host, topology, sls, state_id, os_name="debian12"):
        with ctx.Pool(1) as pool:
            return pool.apply(_render_in_fresh_process, (host, topology, sls, state_id, os_name, {}, *env, True))

    return context


@pytest.fixture(scope="session")
def salt_env(tmp_path_factory):
    return _make_salt_env(tmp_path_factory.mktemp("monitoring-render"))


@pytest.fixture(scope="session")
def render_state_file(salt_env):
    """render_state_file(host, topology, sls, state_id, os_name="debian12", **context overrides) -> text"""
    return _renderer(salt_env)


@pytest.fixture(scope="session")
def state_file_context(salt_env):
    """state_file_context(host, topology, sls, state_id, os_name="debian12") -> the `context` the state passes"""
    return _context_getter(salt_env)


@pytest.fixture(scope="session")
def tls_salt_env(tmp_path_factory):
    """(secrets dir, cache): pillar tls:enabled, the CA in the secrets file, tls/<host>.sls for every host."""
    return _make_salt_env(tmp_path_factory.mktemp("tls-render"), tls=True)


@pytest.fixture(scope="session")
def tls_render_state_file(tls_salt_env):
    """render_state_file with pillar tls:enabled"""
    return _renderer(tls_salt_env)


@pytest.fixture(scope="session")
def tls_state_file_context(tls_salt_env):
    """state_file_context with pillar tls:enabled"""
    return _context_getter(tls_salt_env)


def _compile_in_fresh_process(host, topology, sls, os_name, secrets_dir, cache_root):
    import salt.client

    opts = render_tool.minion_opts(host, topology, os_name, secrets_dir, cache_root)
    high = salt.client.Caller(mopts=opts).cmd("state.show_sls", sls)
    if not isinstance(high, dict):
        raise RuntimeError(f"{sls} did not compile for {host}/{os_name}: {high}")
    return {state_id: state_args(chunk) for state_id, chunk in high.items() if isinstance(chunk, dict)}


def _compiler(env):
    ctx = multiprocessing.get_context("spawn")

    def compiled(host, topology, sls, os_name="debian12"):
        with ctx.Pool(1) as pool:
            return pool.apply(_compile_in_fresh_process, (host, topology, sls, os_name, *env))

    return compiled


@pytest.fixture(scope="session")
def compiled_sls(salt_env):
    """compiled_sls(host, topology, sls, os_name="debian12") -> {state id: its arguments, ``fun`` included}"""
    return _compiler(salt_env)


@pytest.fixture(scope="session")
def tls_compiled_sls(tls_salt_env):
    """compiled_sls with pillar tls:enabled"""
    return _compiler(tls_salt_env)
