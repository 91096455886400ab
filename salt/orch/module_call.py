#!py
"""
One function of the state tree's ``_modules`` called while an orchestrate
renders on the Salt master, which loads no custom module (its renderer's
``salt`` is the master minion's loader: Salt's own modules only;
docs/secrets.md). An orchestrate's Jinja calls it through Salt's own
``slsutil.renderer`` with this file's Python renderer, e.g.

    {%- set result = salt['slsutil.renderer']('salt://orch/module_call.py', default_renderer='py',
                                              fun='ha_cluster.reboot_plan', kwarg={...}) %}

and gets the function's return. The module is read from the master's
file_roots as a plain Python module, as salt/reactor/autoscale.sls reads
ha_inventory: only functions that need no loader dunders (``__salt__``,
``__pillar__``...) and read nothing but their arguments belong here.
"""

import importlib.util
import os


def _module(name):
    """_modules/<name>.py of the master's state tree (file_roots), as a plain module."""
    relative = os.path.join("_modules", name + ".py")
    for root in (__opts__.get("file_roots") or {}).get(saltenv or "base", []):
        path = os.path.join(root, relative)
        if os.path.isfile(path):
            spec = importlib.util.spec_from_file_location("airflow_ha_orch_" + name, path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module
    raise RuntimeError(f"orch/module_call.py: no {relative} in the master's file_roots")


def run():
    name, _, function = fun.partition(".")
    if not name.isidentifier() or not function.isidentifier() or function.startswith("_"):
        raise RuntimeError(f"orch/module_call.py: fun {fun!r} is no MODULE.FUNCTION of _modules")
    return getattr(_module(name), function)(**(globals().get("kwarg") or {}))
