"""Git's symlinks are symlinks in the work tree. A checkout made without
symlink support (core.symlinks false, a copy through a tool that drops links)
turns each one into a one-line file holding the target path: the minions then
get `../_modules` for their modules and pip reads `../../../requirements/...`
as the requirements of salt/airflow/files/airflow-2.txt. Such a file, once
committed, is a regular file of git: it is caught by its content."""

import os
import shutil
import subprocess

import pytest

from tests.helpers.inventory import REPO

LINK = "120000"
REGULAR = ("100644", "100755")
MAX_TURNED_SIZE = 300  # a turned link holds only its target path


def tracked(root):
    """(mode, path) of every file git tracks under ``root``; None when ``root`` is no git checkout."""
    try:
        proc = subprocess.run(["git", "-C", str(root), "ls-files", "-s", "-z"], capture_output=True, text=True,
                              timeout=60)
    except FileNotFoundError:  # no git
        return None
    if proc.returncode != 0:
        return None
    entries = []
    for record in filter(None, proc.stdout.split("\0")):
        meta, path = record.split("\t", 1)
        entries.append((meta.split()[0], path))
    return entries


def link_target(root, path):
    """The target a turned link holds: the whole (small) content of ``path`` is one relative path, without
    spaces, naming an existing path inside ``root`` (relative to the file's directory). None otherwise."""
    full = os.path.join(root, path)
    try:
        if os.path.islink(full) or os.path.getsize(full) >= MAX_TURNED_SIZE:
            return None
        with open(full) as f:
            target = f.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not target or "\n" in target or " " in target or os.path.isabs(target):
        return None
    if not (target.startswith("../") or "/" in target):
        return None
    resolved = os.path.normpath(os.path.join(os.path.dirname(full), target))
    inside = resolved.startswith(os.path.normpath(root) + os.sep)
    return target if inside and os.path.exists(resolved) else None


def turned(path, target):
    return f"{path}: a symlink turned into a file: restore it with `ln -sfn {target} {path}`"


def link_problems(root, entries):
    """One message per problem of the git ``entries`` ((mode, path), as `git ls-files -s`) in the work tree
    ``root``: a git symlink that is no symlink or points at nothing, a regular file that is a turned link."""
    root = os.path.realpath(root)
    problems = []
    for mode, path in entries:
        full = os.path.join(root, path)
        if mode == LINK:
            if not os.path.lexists(full):
                problems.append(f"{path}: a symlink of git missing from the work tree: `git checkout -- {path}`")
            elif not os.path.islink(full):
                problems.append(turned(path, link_target(root, path) or "TARGET"))
            elif not os.path.exists(full):
                problems.append(f"{path} -> {os.readlink(full)}: the link's target does not exist")
        elif mode in REGULAR and link_target(root, path):
            problems.append(turned(path, link_target(root, path)))
    return problems


def test_every_git_symlink_of_this_checkout_is_a_symlink_to_something():
    entries = tracked(REPO)
    if entries is None:
        pytest.skip("not a git checkout")
    problems = link_problems(REPO, entries)
    assert not problems, "\n".join(problems)


def test_a_turned_link_is_named_with_its_fix_and_a_real_link_passes(tmp_path):
    (tmp_path / "requirements").mkdir()
    (tmp_path / "requirements" / "pins.txt").write_text("salt==3008.3\n")
    files = tmp_path / "salt" / "files"
    files.mkdir(parents=True)
    (tmp_path / "salt" / "_modules").symlink_to("../requirements")
    (files / "real.txt").symlink_to("../../requirements/pins.txt")
    (files / "turned.txt").write_text("../../requirements/pins.txt")  # checked out without symlinks
    (files / "committed.txt").write_text("../../requirements/pins.txt\n")  # ... and committed so
    (files / "dangling.txt").symlink_to("../../requirements/gone.txt")
    (files / "prose.txt").write_text("pins: ../../requirements/pins.txt\n")
    (files / "nowhere.txt").write_text("../../requirements/gone.txt")
    entries = [(LINK, "salt/_modules"), (LINK, "salt/files/real.txt"), (LINK, "salt/files/turned.txt"),
               ("100644", "salt/files/committed.txt"), (LINK, "salt/files/dangling.txt"),
               ("100644", "salt/files/prose.txt"), ("100644", "salt/files/nowhere.txt"),
               ("100644", "requirements/pins.txt"), (LINK, "salt/files/deleted.txt")]
    assert link_problems(tmp_path, entries) == [
        turned("salt/files/turned.txt", "../../requirements/pins.txt"),
        turned("salt/files/committed.txt", "../../requirements/pins.txt"),
        "salt/files/dangling.txt -> ../../requirements/gone.txt: the link's target does not exist",
        "salt/files/deleted.txt: a symlink of git missing from the work tree: `git checkout -- salt/files/deleted.txt`",
    ]
    assert "restore it with `ln -sfn ../../requirements/pins.txt salt/files/turned.txt`" in link_problems(
        tmp_path, entries)[0]


def test_tracked_reads_git_modes_and_a_link_turned_after_checkout_is_caught(tmp_path):
    """A throwaway repository of its own: git keeps mode 120000 in the index while the work tree holds a file."""
    if not shutil.which("git"):
        pytest.skip("git is not installed")
    (tmp_path / "target.txt").write_text("x\n")
    (tmp_path / "link.txt").symlink_to("target.txt")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "up.txt").symlink_to("../target.txt")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    assert set(tracked(tmp_path)) == {(LINK, "dir/up.txt"), (LINK, "link.txt"), ("100644", "target.txt")}
    assert link_problems(tmp_path, tracked(tmp_path)) == []
    (tmp_path / "dir" / "up.txt").unlink()
    (tmp_path / "dir" / "up.txt").write_text("../target.txt")
    assert link_problems(tmp_path, tracked(tmp_path)) == [turned("dir/up.txt", "../target.txt")]


def test_tracked_is_none_outside_a_git_checkout(tmp_path):
    if not shutil.which("git"):
        assert tracked(tmp_path) is None
        return
    inside = subprocess.run(["git", "-C", str(tmp_path), "rev-parse"], capture_output=True).returncode == 0
    if inside:
        pytest.skip(f"{tmp_path} is inside a git checkout")
    assert tracked(tmp_path) is None
