"""Salt's own Jinja renderer over the repo's salt/ (imports resolved as on the
master), with a dict for pillar: what the render tests of map files and
orchestrates share."""

import tempfile

import salt.config
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


def render(template, pillar, funcs, grains=None, sls="probe", tmplpath=None):
    """``template`` rendered by Salt's Jinja; ``funcs`` adds to (or overrides) pillar.get and slsutil.merge."""
    opts = salt.config.minion_config(None)
    opts.update(file_client="local", file_roots={"base": [str(REPO / "salt")]}, cachedir=tempfile.mkdtemp())
    salt_funcs = {"pillar.get": pillar_get(pillar),
                  "slsutil.merge": lambda a, b, **_: salt.utils.dictupdate.merge(a, b), **funcs}
    return salt.utils.templates.render_jinja_tmpl(template, {
        "salt": salt_funcs, "opts": opts, "saltenv": "base", "pillar": pillar, "grains": grains or {}, "sls": sls},
        tmplpath=tmplpath)
