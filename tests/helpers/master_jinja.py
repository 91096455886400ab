"""Salt's own Jinja renderer over the repo's salt/ (imports resolved as on the
master), with a dict for pillar: what the render tests of map files and
orchestrates share."""

import tempfile

import salt.config
import salt.loader
import salt.template
import salt.utils.dictupdate
import salt.utils.templates

from tests.helpers.inventory import REPO


def pillar_get(pillar):
    """``pillar.get`` over a dict: colon-separated keys, a default when a key is missing."""

    def get(key, default=""):
        value = pillar
        for part in key.split(":"):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value

    return get


def slsutil_renderer(opts, salt_funcs):
    """``slsutil.renderer`` as Salt's runs it (its renderers, ``salt.template.compile_template``), a
    ``salt://`` path read from the repo's salt/ where Salt's fetches it with ``cp.get_url``."""

    def renderer(path=None, string=None, default_renderer="jinja|yaml", **kwargs):
        assert path and path.startswith("salt://") and not string, path
        template = str(REPO / "salt" / path[len("salt://"):])
        renderers = salt.loader.render(opts, salt_funcs)
        return salt.template.compile_template(template, renderers, default_renderer, opts["renderer_blacklist"],
                                              opts["renderer_whitelist"], **kwargs)

    return renderer


def render(template, pillar, funcs, grains=None, sls="probe", tmplpath=None):
    """``template`` rendered by Salt's Jinja; ``funcs`` adds to (or overrides) pillar.get, slsutil.merge and
    slsutil.renderer."""
    opts = salt.config.minion_config(None)
    opts.update(file_client="local", file_roots={"base": [str(REPO / "salt")]}, cachedir=tempfile.mkdtemp())
    salt_funcs = {"pillar.get": pillar_get(pillar),
                  "slsutil.merge": lambda a, b, **_: salt.utils.dictupdate.merge(a, b)}
    salt_funcs["slsutil.renderer"] = slsutil_renderer(opts, salt_funcs)
    salt_funcs.update(funcs)
    return salt.utils.templates.render_jinja_tmpl(template, {
        "salt": salt_funcs, "opts": opts, "saltenv": "base", "pillar": pillar, "grains": grains or {}, "sls": sls},
        tmplpath=tmplpath)
