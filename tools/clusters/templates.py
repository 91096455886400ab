"""A state's template file rendered with plain Jinja and the state's context
(the filters the templates use), for clusters run from the states' own files."""

import json
from pathlib import Path

import jinja2

REPO = Path(__file__).resolve().parents[2]


def render_template(relpath, context):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(REPO / "salt")), keep_trailing_newline=True,
                             extensions=["jinja2.ext.do"])
    env.filters["json"] = json.dumps
    return env.get_template(relpath).render(**context)
