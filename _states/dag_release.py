"""
States of the versioned DAG releases (execution module ``dag_release``,
docs/dag-deploy.md). The orchestrates ``orch.deploy_dags`` and
``orch.rollback_dags`` run them step by step over the hosts; ``present`` is
what the highstate applies (a host's first release only).

.. code-block:: yaml

    dags-validated:
      dag_release.validated:
        - source: salt://dags
        - venv: /opt/airflow/venv

    dags-staged:
      dag_release.staged:
        - name: /srv/airflow/dag-releases
        - source: salt://dags

    dags-switched:
      dag_release.switched:
        - name: /srv/airflow/dags
        - release: staged
        - releases_dir: /srv/airflow/dag-releases
        - keep: 5
"""

import json
import os

from salt.exceptions import CommandExecutionError, SaltInvocationError

FAILURES = (CommandExecutionError, SaltInvocationError, OSError)

__virtualname__ = "dag_release"
RELEASES = "/srv/airflow/dag-releases"
LINK = "/srv/airflow/dags"


def __virtual__():
    if "dag_release.stage" not in __salt__:
        return (False, "the dag_release execution module is not available (saltutil.sync_all)")
    return __virtualname__


def _ret(name):
    return {"name": name, "result": False, "changes": {}, "comment": ""}


def _validated_file(releases_dir, version):
    return os.path.join(releases_dir, ".validated", f"{version}.json")


def validated(name, source, releases_dir=RELEASES, git_rev=None, saltenv="base", venv="/opt/airflow/venv",
              env_file="/etc/default/airflow", runas=None, timeout=300):
    """
    Fetch the DAG set at ``source`` into a scratch directory and validate it
    in ``venv`` (``dag_release.validate``): the state fails naming each file,
    line and error, and nothing is staged or switched. Changes nothing on
    success either (the DAG ids found are kept for ``staged`` and
    ``parsed`` under ``releases_dir/.validated``).
    """
    ret = _ret(name)
    if __opts__["test"]:
        ret.update(result=None, comment=f"would validate the DAG set {source} in {venv}")
        return ret
    prep = None
    try:
        prep = __salt__["dag_release.prepare"](source, releases_dir=releases_dir, git_rev=git_rev, saltenv=saltenv)
        report = __salt__["dag_release.validate"](prep["path"], venv=venv, env_file=env_file, runas=runas,
                                                  timeout=timeout)
        path = _validated_file(releases_dir, prep["version"])
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "w") as f:
            json.dump(report, f)
    except FAILURES as exc:
        ret["comment"] = f"DAG set {source} not deployed: {exc}"
        return ret
    finally:
        if prep:
            __salt__["dag_release.discard"](prep["path"])
    ret.update(result=True, comment=f"DAG set {source} valid as release {prep['version']}: "
                                    f"{len(report['dags'])} DAGs in {report['files']} files, tests: {report['tests']}")
    return ret


def staged(name=RELEASES, source="salt://dags", git_rev=None, saltenv="base"):
    """
    Stage the set at ``source`` as a release under ``name`` (the releases
    directory); no change when that version is already there.
    """
    ret = _ret(name)
    prep = None
    try:
        prep = __salt__["dag_release.prepare"](source, releases_dir=name, git_rev=git_rev, saltenv=saltenv)
        version = prep["version"]
        exists = os.path.isdir(os.path.join(name, version))
        if __opts__["test"]:
            ret.update(result=None if not exists else True,
                       comment=f"release {version} " + ("already staged" if exists else "would be staged"),
                       changes={} if exists else {"staged": version})
            return ret
        validation = None
        if os.path.exists(_validated_file(name, version)):
            with open(_validated_file(name, version)) as f:
                validation = json.load(f)
        out = __salt__["dag_release.stage"](source, releases_dir=name, git_rev=git_rev, saltenv=saltenv,
                                            validation=validation, prepared=prep)
    except FAILURES as exc:
        ret["comment"] = f"DAG set {source} not staged: {exc}"
        return ret
    finally:
        if prep:
            __salt__["dag_release.discard"](prep["path"])
    if out["changed"]:
        ret["changes"] = {"staged": out["version"]}
    ret.update(result=True, comment=f"release {out['version']} staged at {out['path']}")
    return ret


def switched(name=LINK, release="staged", releases_dir=RELEASES, keep=5):
    """
    Point the DAG folder symlink ``name`` at ``release`` (``staged``: this
    host's last staged release; ``previous``; or a version) atomically, then
    prune the releases beyond ``keep``. No change when it points there.
    """
    ret = _ret(name)
    try:
        version = __salt__["dag_release.resolve"](release, releases_dir=releases_dir, link=name)
        now = __salt__["dag_release.current"](name)
        if now == version:
            ret.update(result=True, comment=f"{name} already points to release {version}")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"{name} would switch from {now} to release {version}",
                       changes={"release": {"old": now, "new": version}})
            return ret
        out = __salt__["dag_release.switch"](version, link=name, releases_dir=releases_dir)
        removed = __salt__["dag_release.prune"](keep=keep, releases_dir=releases_dir, link=name)
    except FAILURES as exc:
        ret["comment"] = f"{name} not switched to release {release}: {exc}"
        return ret
    ret["changes"] = {"release": {"old": out["previous"], "new": out["version"]}}
    if removed:
        ret["changes"]["pruned"] = removed
    ret.update(result=True, comment=f"{name} switched to release {out['version']}")
    return ret


def present(name=LINK, source="salt://dags", releases_dir=RELEASES, git_rev=None, saltenv="base", keep=5):
    """
    The highstate's part: a host whose DAG folder is not yet a release (a
    new host, or the folder from before releases) gets the set at ``source``
    staged and switched to. A host with a release keeps it: new sets are
    deployed by ``orch.deploy_dags`` (validated first), never by a highstate.
    """
    ret = _ret(name)
    try:
        now = __salt__["dag_release.current"](name)
        if now and os.path.isdir(os.path.join(releases_dir, now)):
            ret.update(result=True, comment=f"{name} is release {now} (new sets: orch.deploy_dags)")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"{name} would become the first release, from {source}",
                       changes={"release": {"old": now, "new": f"staged from {source}"}})
            return ret
        out = __salt__["dag_release.stage"](source, releases_dir=releases_dir, git_rev=git_rev, saltenv=saltenv)
        switch = __salt__["dag_release.switch"](out["version"], link=name, releases_dir=releases_dir)
    except FAILURES as exc:
        ret["comment"] = f"{name}: first DAG release from {source} failed: {exc}"
        return ret
    ret.update(result=True, comment=f"{name} switched to its first release {switch['version']}",
               changes={"release": {"old": now, "new": switch["version"]}})
    return ret


def release_available(name, release="previous", link=LINK):
    """
    Check (change nothing) that ``release`` (``previous`` or a version) is
    staged in the releases directory ``name`` on this host: the rollback
    orchestrate's first step, on every host, before any host switches.
    """
    ret = _ret(name)
    try:
        version = __salt__["dag_release.resolve"](release, releases_dir=name, link=link)
    except FAILURES as exc:
        ret["comment"] = f"cannot roll back to {release}: {exc}"
        return ret
    ret.update(result=True, comment=f"release {version} ({release}) is staged here")
    return ret


def recorded(name=LINK, variable="airflow_ha_dag_release", url="http://127.0.0.1:8080", ca_file=None,
             username="admin", password=None, major=3):
    """
    Record the release ``name`` points to in Airflow: the Variable
    ``variable`` (the UI's Admin > Variables) holds its id, set through the
    REST API, so Airflow's audit log has each change with the time and the
    API user. No change when it already holds it; test mode changes nothing.
    """
    ret = _ret(name)
    try:
        version = __salt__["dag_release.current"](name)
        if not version:
            ret["comment"] = f"{name} points to no release: nothing to record"
            return ret
        api = {"url": url, "username": username, "password": password, "major": major, "ca_file": ca_file}
        old = __salt__["airflow_ha.variable"](variable, **api)
        if old == version:
            ret.update(result=True, comment=f"Variable {variable} already holds release {version}")
            return ret
        if __opts__["test"]:
            ret.update(result=None, comment=f"would set Variable {variable} to release {version} (now {old})",
                       changes={variable: {"old": old, "new": version}})
            return ret
        __salt__["airflow_ha.set_variable"](variable, version, description=f"the DAG release of {name}, set by Salt "
                                            "once it parsed", **api)
    except FAILURES as exc:
        ret["comment"] = f"Variable {variable} not set: {exc}"
        return ret
    ret.update(result=True, comment=f"Variable {variable} set to release {version}",
               changes={variable: {"old": old, "new": version}})
    return ret


def parsed(name=LINK, url="http://127.0.0.1:8080", release="current", releases_dir=RELEASES, timeout=300,
           ca_file=None, username="admin", password=None, validations_dir=None, major=3):
    """
    Wait until the DAG processors report ``release`` (the one ``name``
    points to) parsed with zero import errors (``dag_release.wait_parsed``).
    Changes nothing; test mode waits for nothing.
    """
    ret = _ret(name)
    if __opts__["test"]:
        ret.update(result=None, comment=f"would wait up to {timeout} s for the DAG processors to parse "
                                        f"the release of {name}")
        return ret
    try:
        version = __salt__["dag_release.current"](name) if release == "current" else release
        out = __salt__["dag_release.wait_parsed"](version, url=url, releases_dir=releases_dir, link=name,
                                                  timeout=timeout, ca_file=ca_file, username=username,
                                                  password=password, validations_dir=validations_dir, major=major)
    except FAILURES as exc:
        ret["comment"] = str(exc)
        return ret
    ret.update(result=True, comment=f"release {out['version']} parsed with zero import errors "
                                    f"({len(out['dags'])} DAGs) after {out['seconds']} s")
    return ret
