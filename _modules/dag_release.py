"""
Versioned DAG releases: validate a DAG set in the pinned Airflow venv, stage
it into a release directory named by its content, switch the DAG folder (a
symlink) to it atomically, roll back, prune old releases, and wait until the
DAG processors parsed it (docs/dag-deploy.md).

Layout on a host (defaults from salt/storage/defaults.yaml, ``storage:releases``)::

    /srv/airflow/dag-releases/<version>/         one release, never changed once staged
    /srv/airflow/dag-releases/<version>/.release.json   its manifest (version, source, DAG ids)
    /srv/airflow/dag-releases/.history           the versions switched to, one a line, oldest first
    /srv/airflow/dags -> /srv/airflow/dag-releases/<version>   the DAG folder Airflow reads

``version``: the first 16 hex digits of the SHA-256 of the set's relative
paths and contents (what is deployed: ``README.md``, ``tests/``,
``__pycache__`` and ``.git`` left out); ``<commit[:12]>-<hash>`` for a git
source. The same set gives the same version, so a second deploy changes
nothing.

Sources: ``salt://path`` (the Salt fileserver), an absolute directory present
on the host, or a git URL with a pinned commit (``git_rev``).

The convention for a DAG set's own tests: a ``tests/`` directory at the root
of the set, run by ``validate`` with the venv's pytest (``python -m pytest``,
working directory the set, ``AIRFLOW__CORE__DAGS_FOLDER`` the set). It is
never staged into a release.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time

from salt.exceptions import CommandExecutionError

__virtualname__ = "dag_release"
log = logging.getLogger(__name__)

# left out of a release and of its version
EXCLUDED_NAMES = {"README.md", "__pycache__", ".git", "tests", ".pytest_cache"}
EXCLUDED_TOP_ONLY = {"tests"}  # only the set's own tests dir, not a package named tests deeper down
MANIFEST = ".release.json"
HISTORY = ".history"
VERSION_RE = re.compile(r"^(?:[0-9a-f]{12}-)?[0-9a-f]{16}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_VENV = "/opt/airflow/venv"
DEFAULT_ENV_FILE = "/etc/default/airflow"
DEFAULT_RELEASES = "/srv/airflow/dag-releases"
DEFAULT_LINK = "/srv/airflow/dags"


def __virtual__():
    if os.name != "posix" or not hasattr(os, "symlink"):
        return (False, "dag_release needs POSIX symlinks and rename(2)")
    return __virtualname__


def _salt(name):
    funcs = globals().get("__salt__") or {}
    if name not in funcs:
        raise CommandExecutionError(f"dag_release needs the Salt function {name}")
    return funcs[name]


# --------------------------------------------------------------------------- files
def _excluded(rel):
    parts = rel.split(os.sep)
    if parts[0] in EXCLUDED_TOP_ONLY:
        return True
    return any(p in EXCLUDED_NAMES - EXCLUDED_TOP_ONLY for p in parts) or any(
        p.endswith(".pyc") for p in parts[-1:])


def release_files(path):
    """
    The relative paths of the files of the set at ``path`` that a release
    holds, sorted (``README.md``, ``tests/``, ``__pycache__``, ``.git`` left out).

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.release_files /srv/airflow/dags
    """
    found = []
    for root, dirs, files in os.walk(path):
        rel_root = os.path.relpath(root, path)
        dirs[:] = sorted(d for d in dirs if not _excluded(os.path.normpath(os.path.join(rel_root, d))))
        for name in files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if name == MANIFEST and rel_root == ".":
                continue
            if not _excluded(rel):
                found.append(rel)
    return sorted(found)


def content_hash(path):
    """
    The version of the set at ``path``: SHA-256 over each file's relative path
    and contents, first 16 hex digits.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.content_hash /srv/airflow-ha/salt/dags
    """
    if not os.path.isdir(path):
        raise CommandExecutionError(f"{path}: no such directory")
    digest = hashlib.sha256()
    for rel in release_files(path):
        digest.update(rel.encode() + b"\0")
        with open(os.path.join(path, rel), "rb") as f:
            digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()[:16]


def _copy_set(src, dest, with_tests=True):
    """Copy the set (tests/ too when asked) into ``dest``: root-owned files 0644, dirs 0755."""
    os.makedirs(dest, mode=0o755, exist_ok=True)
    rels = release_files(src)
    if with_tests and os.path.isdir(os.path.join(src, "tests")):
        rels += [os.path.join("tests", os.path.relpath(os.path.join(r, f), os.path.join(src, "tests")))
                 for r, _, files in os.walk(os.path.join(src, "tests")) if "__pycache__" not in r for f in files]
    for rel in rels:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        shutil.copyfile(os.path.join(src, rel), target)
        os.chmod(target, 0o644)
    for root, dirs, _ in os.walk(dest):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(dest, 0o755)


# --------------------------------------------------------------------------- fetch
def _fetch_salt(source, dest, saltenv):
    prefix = source[len("salt://"):].strip("/")
    files = [f for f in _salt("cp.list_master")(saltenv=saltenv, prefix=prefix + "/")
             if f.startswith(prefix + "/")]
    if not files:
        raise CommandExecutionError(f"{source}: no files on the Salt fileserver (saltenv {saltenv})")
    for path in files:
        rel = path[len(prefix) + 1:]
        cached = _salt("cp.cache_file")(f"salt://{path}", saltenv=saltenv)
        if not cached:
            raise CommandExecutionError(f"salt://{path}: could not be fetched from the Salt fileserver")
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(cached, target)
    return None


def _git(args, cwd, timeout=300):
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise CommandExecutionError(f"git {' '.join(args)}: {proc.stderr.strip()[-500:]}")
    return proc.stdout.strip()


def _readable(path):
    """Files 0644, directories 0755 (the validation runs as the Airflow user; the minion's umask may be 077)."""
    for root, dirs, files in os.walk(path):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def _fetch_git(url, rev, dest):
    if not rev or not COMMIT_RE.match(str(rev)):
        raise CommandExecutionError(f"git source {url}: rev {rev!r} is not a full commit id (40 hex digits): "
                                    "pin storage:dags:git:rev to `git rev-parse <ref>`")
    if not shutil.which("git"):
        raise CommandExecutionError("git source: the git binary is missing (storage.dags installs it)")
    _git(["init", "-q", dest], cwd="/")
    _git(["fetch", "-q", "--depth", "1", url, rev], cwd=dest)
    _git(["checkout", "-q", "FETCH_HEAD"], cwd=dest)
    return _git(["rev-parse", "HEAD"], cwd=dest)


def fetch(source, dest, git_rev=None, saltenv="base"):
    """
    Copy the DAG set at ``source`` (``salt://path``, an absolute directory, or
    a git URL with ``git_rev``, a full commit id) into the new directory
    ``dest``; return the git commit or None.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.fetch salt://dags /tmp/dags-incoming
    """
    if os.path.exists(dest):
        raise CommandExecutionError(f"{dest} exists: fetch writes a new directory")
    source = str(source)
    if source.startswith("salt://"):
        os.makedirs(dest, mode=0o755)
        _fetch_salt(source, dest, saltenv)
        _readable(dest)
        return None
    if git_rev:
        commit = _fetch_git(source, git_rev, dest)
        _readable(dest)
        return commit
    if source.startswith("/"):
        if not os.path.isdir(source):
            raise CommandExecutionError(f"DAG source {source}: no such directory on this host")
        _copy_set(source, dest)
        return None
    raise CommandExecutionError(f"DAG source {source!r}: use salt://PATH, an absolute directory, "
                                "or a git URL with git_rev")


def _version(path, commit=None):
    digest = content_hash(path)
    return f"{commit[:12]}-{digest}" if commit else digest


# --------------------------------------------------------------------------- validate
# Runs in the pinned Airflow venv: every file compiles and imports, the DagBag
# has no import errors (cycles and duplicate DAG ids are import errors there),
# no DAG id twice in one file. Prints one JSON document.
VALIDATOR = r'''
import json, os, re, sys, traceback
root, files = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
errors, dags = [], {}

def line_of(rel, needle):
    try:
        with open(os.path.join(root, rel)) as f:
            for n, text in enumerate(f, 1):
                if needle in text:
                    return n
    except OSError:
        pass
    return None

def from_trace(rel, trace):
    path = os.path.join(root, rel)
    lines = [int(m.group(1)) for m in re.finditer(r'File "%s", line (\d+)' % re.escape(path), trace)]
    if lines:
        return lines[-1]
    m = re.search(r'File "[^"]*%s", line (\d+)' % re.escape(rel), trace) or re.search(r"line (\d+)", trace)
    return int(m.group(1)) if m else None

def last_line(trace):
    rows = [r for r in trace.strip().splitlines() if r.strip()]
    return rows[-1].strip() if rows else trace.strip()

for rel in files:
    try:
        with open(os.path.join(root, rel), "rb") as f:
            compile(f.read(), os.path.join(root, rel), "exec")
    except SyntaxError as exc:
        errors.append({"file": rel, "line": exc.lineno, "error": f"SyntaxError: {exc.msg}"})
if errors:
    print(json.dumps({"errors": errors, "dags": {}}))
    sys.exit(0)

from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=root, collect_dags=False, bundle_path=__import__("pathlib").Path(root),
             bundle_name="dags-folder")
for rel in files:
    found = bag.process_file(os.path.join(root, rel), only_if_updated=False, safe_mode=False)
    seen = {}
    for dag in found:
        seen[dag.dag_id] = seen.get(dag.dag_id, 0) + 1
    for dag_id, n in seen.items():
        if n > 1:
            errors.append({"file": rel, "line": line_of(rel, dag_id),
                           "error": f"DAG id {dag_id!r} defined {n} times in this file"})
for rel, trace in sorted(bag.import_errors.items()):
    rel = os.path.relpath(rel, root) if os.path.isabs(rel) else rel
    message = last_line(trace)
    line = from_trace(rel, trace)
    m = re.search(r"(?:Cycle detected in DAG|Ignoring DAG)\s*:?\s*'?([\w.-]+)", message, re.I)
    if line is None and m:
        line = line_of(rel, m.group(1).rstrip("."))
    errors.append({"file": rel, "line": line, "error": message})
for dag_id, dag in bag.dags.items():
    dags[dag_id] = os.path.relpath(dag.fileloc, root)
print(json.dumps({"errors": errors, "dags": dags}))
'''


def _read_env_file(path):
    """The Airflow units' environment file (``_utils/ha_env.py``, the one parser)."""
    utils = globals().get("__utils__") or {}
    if "ha_env.read_env_file" in utils:
        return utils["ha_env.read_env_file"](path)
    from _utils import ha_env

    return ha_env.read_env_file(path)


def _run(cmd, env, cwd, timeout, runas=None):
    if runas and os.geteuid() == 0:
        cmd = ["runuser", "-u", runas, "--", *cmd]
    try:
        proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CommandExecutionError(f"{cmd[0]} did not finish within {timeout} s")
    return proc


def _format(errors):
    return "; ".join(f"{e['file']}:{e['line'] if e.get('line') is not None else '?'}: {e['error']}" for e in errors)


def validate(path, venv=DEFAULT_VENV, env_file=DEFAULT_ENV_FILE, runas=None, timeout=300, run_tests=True):
    """
    Validate the DAG set in the directory ``path`` with the Airflow of
    ``venv``: every ``.py`` file compiles and imports (a DagBag in safe
    mode off, so helper modules are imported too), no import errors, no
    cycle, no DAG id twice; then the set's own ``tests/`` with the venv's
    pytest when the set ships them. ``env_file``: the Airflow env file the
    DAG processors run with (read when present, so DAGs see the same
    variables and connections). Returns ``{"dags": {dag_id: file}, "files":
    N, "tests": ...}``; raises CommandExecutionError naming each file, line
    and error.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.validate /srv/airflow/dag-releases/.incoming-x venv=/opt/airflow/venv
    """
    python = os.path.join(venv, "bin", "python")
    if not os.access(python, os.X_OK):
        raise CommandExecutionError(f"no Airflow venv at {venv} ({python} missing): apply airflow.install first")
    if not os.path.isdir(path):
        raise CommandExecutionError(f"{path}: no such directory")
    files = [f for f in release_files(path) if f.endswith(".py")]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    if env_file and os.path.exists(env_file):
        env.update(_read_env_file(env_file))
    scratch = tempfile.mkdtemp(prefix="dag-validate-")
    os.chmod(scratch, 0o755)
    if runas and os.geteuid() == 0:
        import pwd

        entry = pwd.getpwnam(runas)
        os.chown(scratch, entry.pw_uid, entry.pw_gid)
    try:
        env.update({"AIRFLOW__CORE__DAGS_FOLDER": path, "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                    "PYTHONDONTWRITEBYTECODE": "1", "HOME": scratch,
                    "AIRFLOW__LOGGING__BASE_LOG_FOLDER": os.path.join(scratch, "logs")})
        env.setdefault("AIRFLOW_HOME", scratch)
        proc = _run([python, "-c", VALIDATOR, path, *files], env, scratch, timeout, runas)
        out = proc.stdout.strip().splitlines()
        try:
            report = json.loads(out[-1])
        except (IndexError, ValueError):
            raise CommandExecutionError(f"the validator in {venv} failed (exit {proc.returncode}): "
                                        f"{(proc.stderr or proc.stdout).strip()[-800:]}")
        if report["errors"]:
            raise CommandExecutionError(f"DAG set refused: {_format(report['errors'])}")
        tests = "none shipped"
        if run_tests and os.path.isdir(os.path.join(path, "tests")):
            has_pytest = _run([python, "-c", "import pytest"], env, scratch, 60, runas).returncode == 0
            if not has_pytest:
                raise CommandExecutionError(f"DAG set refused: it ships tests/ but {venv} has no pytest: "
                                            "install pytest into the Airflow venv (pillar airflow:requirements)")
            proc = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                        dict(env, PYTHONPATH=path), path, timeout, runas)
            summary = (proc.stdout.strip().splitlines() or [""])[-1]
            if proc.returncode:
                failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
                raise CommandExecutionError(f"DAG set refused: its tests failed: {'; '.join(failed[:10]) or ''} "
                                            f"({summary})".strip())
            tests = summary
        return {"dags": report["dags"], "files": len(files), "tests": tests}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# --------------------------------------------------------------------------- releases
def _manifest(release_dir):
    try:
        with open(os.path.join(release_dir, MANIFEST)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_atomic(path, text):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _incoming(releases_dir):
    os.makedirs(releases_dir, mode=0o755, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".incoming-", dir=releases_dir)
    os.chmod(scratch, 0o755)  # the validation may run as the airflow user
    return os.path.join(scratch, "set")


def prepare(source, releases_dir=DEFAULT_RELEASES, git_rev=None, saltenv="base"):
    """
    Fetch ``source`` into a scratch directory under ``releases_dir``;
    return ``{"path", "version", "commit"}``. The caller removes the scratch
    directory's parent (``discard``).

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.prepare salt://dags
    """
    dest = _incoming(releases_dir)
    try:
        commit = fetch(source, dest, git_rev=git_rev, saltenv=saltenv)
        return {"path": dest, "version": _version(dest, commit), "commit": commit}
    except Exception:
        discard(dest)
        raise


def discard(path):
    """
    Remove a scratch directory made by ``prepare``.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.discard /srv/airflow/dag-releases/.incoming-abc123/set
    """
    parent = os.path.dirname(path)
    shutil.rmtree(parent if os.path.basename(parent).startswith(".incoming-") else path, ignore_errors=True)


def stage(source, releases_dir=DEFAULT_RELEASES, git_rev=None, saltenv="base", validation=None, prepared=None):
    """
    Stage the set at ``source`` as the release ``releases_dir/<version>``
    (atomically: copied next to it, then renamed into place; an existing
    release of the same version is kept as it is). Records the version as
    the host's staged one (``.staged``). Returns ``{"version", "path",
    "changed"}``.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.stage salt://dags
        salt-call dag_release.stage https://git.example.com/dags.git git_rev=0123...
    """
    prep = prepared or prepare(source, releases_dir, git_rev, saltenv)
    try:
        version = prep["version"]
        target = os.path.join(releases_dir, version)
        changed = False
        if not os.path.isdir(target):
            tmp = os.path.join(os.path.dirname(prep["path"]), "release")
            _copy_set(prep["path"], tmp, with_tests=False)
            manifest = {"version": version, "source": str(source), "commit": prep.get("commit"),
                        "staged_at": time.time(), "files": release_files(tmp)}
            if validation:
                manifest.update(dags=sorted(validation.get("dags", {})), validated=True)
            _write_atomic(os.path.join(tmp, MANIFEST), json.dumps(manifest, indent=1))
            try:
                os.rename(tmp, target)
                changed = True
            except OSError:
                if not os.path.isdir(target):  # not a concurrent stage of the same version
                    raise
        elif validation and not _manifest(target).get("validated"):
            manifest = dict(_manifest(target), dags=sorted(validation.get("dags", {})), validated=True)
            _write_atomic(os.path.join(target, MANIFEST), json.dumps(manifest, indent=1))
        if _read_staged(releases_dir) != version:
            _write_atomic(os.path.join(releases_dir, ".staged"), version + "\n")
        return {"version": version, "path": target, "changed": changed}
    finally:
        if not prepared:
            discard(prep["path"])


def _read_staged(releases_dir):
    try:
        with open(os.path.join(releases_dir, ".staged")) as f:
            return f.read().strip() or None
    except OSError:
        return None


def staged(releases_dir=DEFAULT_RELEASES):
    """
    The version this host staged last (``stage``), or None.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.staged
    """
    return _read_staged(releases_dir)


def current(link=DEFAULT_LINK):
    """
    The release the DAG folder symlink ``link`` points to, or None (no link,
    or a plain directory from before releases).

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.current /srv/airflow/dags
    """
    if not os.path.islink(link):
        return None
    # through every link (an NFS client's folder -> <mount>/current -> releases/<version>)
    return os.path.basename(os.path.realpath(link))


def _history(releases_dir):
    try:
        with open(os.path.join(releases_dir, HISTORY)) as f:
            return [line.strip() for line in f if line.strip()]
    except OSError:
        return []


def list_(releases_dir=DEFAULT_RELEASES, link=DEFAULT_LINK):
    """
    The releases on this host, oldest first: ``[{"version", "staged_at",
    "current", "dags"}]``.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.list
    """
    if not os.path.isdir(releases_dir):
        return []
    now = current(link)
    found = []
    for name in os.listdir(releases_dir):
        path = os.path.join(releases_dir, name)
        if VERSION_RE.match(name) and os.path.isdir(path):
            manifest = _manifest(path)
            found.append({"version": name, "staged_at": manifest.get("staged_at") or os.stat(path).st_mtime,
                          "current": name == now, "dags": manifest.get("dags")})
    return sorted(found, key=lambda r: (r["staged_at"], r["version"]))


__func_alias__ = {"list_": "list"}


def previous(releases_dir=DEFAULT_RELEASES, link=DEFAULT_LINK):
    """
    The release switched to before the current one that is still on this
    host, or None.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.previous
    """
    now = current(link)
    for version in reversed(_history(releases_dir)):
        if version != now and os.path.isdir(os.path.join(releases_dir, version)):
            return version
    return None


def resolve(release, releases_dir=DEFAULT_RELEASES, link=DEFAULT_LINK):
    """
    The version ``release`` names on this host: ``previous``, ``staged``, or
    a version; raises when that release is not here.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.resolve previous
    """
    release = str(release or "")
    if release == "previous":
        version = previous(releases_dir, link)
        if not version:
            raise CommandExecutionError(f"no previous DAG release on this host (history in "
                                        f"{releases_dir}/{HISTORY}): name one with pillar release")
        return version
    version = _read_staged(releases_dir) if release == "staged" else release
    if not version or not VERSION_RE.match(version):
        raise CommandExecutionError(f"DAG release {release!r}: not a release version (16 hex digits, "
                                    "or commit-hash for git); see `salt-call dag_release.list`")
    if not os.path.isdir(os.path.join(releases_dir, version)):
        raise CommandExecutionError(f"DAG release {version} is not staged on this host ({releases_dir})")
    return version


def _links(path):
    """The symlinks ``path`` resolves through (itself first)."""
    seen = []
    while os.path.islink(path) and len(seen) < 10:
        seen.append(path)
        target = os.readlink(path)
        path = os.path.normpath(os.path.join(os.path.dirname(path), target))
        parent = os.path.dirname(path)
        if os.path.realpath(parent) != parent:
            path = os.path.join(os.path.realpath(parent), os.path.basename(path))
    return seen or [path]


def switch(version, link=DEFAULT_LINK, releases_dir=DEFAULT_RELEASES):
    """
    Point the DAG folder ``link`` at the release ``version`` atomically: a
    new symlink next to it renamed over it (rename(2)), so a reader resolves
    either the old release or the new one, never a mix. A plain directory at
    ``link`` (the DAG folder before releases) is moved aside to
    ``<link>.pre-release`` first. Returns ``{"version", "previous",
    "changed"}``.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.switch 0123456789abcdef
    """
    version = resolve(version, releases_dir, link)
    target = os.path.join(releases_dir, version)
    before = current(link)
    if before == version and os.path.realpath(link) == os.path.realpath(target):
        return {"version": version, "previous": before, "changed": False}
    parent = os.path.dirname(link.rstrip("/")) or "/"
    os.makedirs(parent, mode=0o755, exist_ok=True)
    # relative when the releases live beside the link (an NFS export: clients resolve it under their mount)
    rel = os.path.relpath(target, parent)
    pointer = rel if not rel.startswith("..") else target
    tmp = os.path.join(parent, f".{os.path.basename(link.rstrip('/'))}.tmp-{os.getpid()}")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(pointer, tmp)
    if os.path.isdir(link) and not os.path.islink(link):
        aside = f"{link.rstrip('/')}.pre-release"
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(link, aside)
    os.replace(tmp, link)
    history = _history(releases_dir)
    if not history or history[-1] != version:
        _write_atomic(os.path.join(releases_dir, HISTORY), "\n".join((history + [version])[-100:]) + "\n")
    return {"version": version, "previous": before, "changed": True}


def prune(keep=5, releases_dir=DEFAULT_RELEASES, link=DEFAULT_LINK):
    """
    Remove the oldest releases beyond the ``keep`` newest; the current, the
    previous and the staged release are always kept. Returns the removed
    versions.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.prune keep=5
    """
    keep = int(keep)
    if keep < 2:
        raise CommandExecutionError(f"keep={keep}: keep at least 2 releases (the current one and a rollback)")
    protected = {current(link), previous(releases_dir, link), _read_staged(releases_dir)}
    releases = list_(releases_dir, link)
    removed = []
    for rel in releases[:max(0, len(releases) - keep)]:
        if rel["version"] not in protected:
            shutil.rmtree(os.path.join(releases_dir, rel["version"]))
            removed.append(rel["version"])
            record = os.path.join(releases_dir, ".validated", f"{rel['version']}.json")
            if os.path.exists(record):
                os.unlink(record)
    for name in os.listdir(releases_dir) if os.path.isdir(releases_dir) else []:
        path = os.path.join(releases_dir, name)  # scratch left by an interrupted run, over an hour old
        if name.startswith(".incoming-") and time.time() - os.stat(path).st_mtime > 3600:
            shutil.rmtree(path, ignore_errors=True)
    return removed


def manifest(version, releases_dir=DEFAULT_RELEASES):
    """
    The manifest of a staged release (version, source, commit, files, and
    the DAG ids when it was validated on this host).

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.manifest 0123456789abcdef
    """
    return _manifest(os.path.join(releases_dir, resolve(version, releases_dir)))


# --------------------------------------------------------------------------- parsed
def _parse_time(value):
    import datetime

    if not value:
        return None
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _parse_report(dags, import_errors, expected, since, gone=()):
    """What keeps a release from counting as parsed: DAGs of ``expected``
    missing, stale or last parsed before ``since`` (epoch seconds), DAGs of
    ``gone`` still active, import errors. Empty when parsed."""
    by_id = {d["dag_id"]: d for d in dags}
    problems = []
    for dag_id in sorted(expected):
        dag = by_id.get(dag_id)
        if dag is None or dag.get("is_stale"):
            problems.append(f"{dag_id} not parsed yet")
        elif (_parse_time(dag.get("last_parsed_time")) or 0) < since:
            problems.append(f"{dag_id} last parsed before the switch")
    for dag_id in sorted(gone):
        if dag_id in by_id and not by_id[dag_id].get("is_stale"):
            problems.append(f"{dag_id} still active (its file is gone)")
    for err in import_errors:
        first = (err.get("stack_trace") or "").strip().splitlines()
        problems.append(f"import error in {err.get('filename')}: {first[-1] if first else ''}")
    return problems


def dag_ids(version, releases_dir=DEFAULT_RELEASES, validations_dir=None):
    """
    The DAG ids of a release as its validation found them (its manifest, or
    the validation's record in ``validations_dir/.validated``), or None when
    unknown.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.dag_ids 0123456789abcdef
    """
    ids = _manifest(os.path.join(releases_dir, version)).get("dags")
    if ids is None:
        try:
            with open(os.path.join(validations_dir or releases_dir, ".validated", f"{version}.json")) as f:
                ids = sorted(json.load(f).get("dags", {}))
        except (OSError, ValueError):
            return None
    return ids


def wait_parsed(version, url, releases_dir=DEFAULT_RELEASES, link=DEFAULT_LINK, timeout=300, interval=5,
                ca_file=None, username="admin", password=None, since=None, validations_dir=None, major=3):
    """
    Wait until the DAG processors parsed the release ``version`` (which must
    be the current one here): every DAG of its manifest parsed after the
    switch (``last_parsed_time`` of ``GET /api/v2/dags`` later than the
    link's change), the DAGs of no longer shipped files stale, and zero
    import errors (``GET /api/v2/importErrors``). Returns the seconds waited
    and the DAG ids; raises naming what is still missing after ``timeout``.

    CLI Example:

    .. code-block:: bash

        salt-call dag_release.wait_parsed 0123456789abcdef url=https://10.83.0.100:443 \
            ca_file=/etc/airflow-ha/pki/ca.crt
    """
    version = resolve(version, releases_dir, link)
    if current(link) != version:
        raise CommandExecutionError(f"{link} points to {current(link)}, not {version}")
    expected = dag_ids(version, releases_dir, validations_dir)
    if expected is None:
        raise CommandExecutionError(f"release {version}: no record of its DAG ids (it was not validated by "
                                    f"this host's dag_release.validated): deploy it with orch.deploy_dags")
    expected = set(expected)
    if since is None:  # the switch: the newest change of a link on the way to the release
        since = max(os.lstat(p).st_mtime for p in _links(link))
    others = [dag_ids(r["version"], releases_dir, validations_dir) for r in list_(releases_dir, link)
              if r["version"] != version]
    gone = set().union(*(set(ids) for ids in others if ids)) - expected
    started = time.monotonic()
    problems = ["not asked yet"]
    while True:
        try:
            dags = _salt("airflow_ha.dags")(url=url, username=username, password=password, ca_file=ca_file,
                                            major=major)
            errors = _salt("airflow_ha.import_errors")(url=url, username=username, password=password,
                                                     ca_file=ca_file, major=major)
            problems = _parse_report(dags, errors, expected, since, gone)
        except CommandExecutionError as exc:
            problems = [str(exc)]
        if not problems:
            return {"version": version, "seconds": round(time.monotonic() - started, 1), "dags": sorted(expected)}
        if time.monotonic() - started > timeout:
            raise CommandExecutionError(f"DAG release {version} not parsed within {timeout} s: "
                                        f"{'; '.join(problems[:10])}")
        time.sleep(interval)
