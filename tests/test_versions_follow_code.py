"""Recorded versions follow the code: an edited and reloaded module is recorded as it is now.

``%autoreload`` in Jupyter is ``importlib.reload`` after an edit; the source
hash and the git dirty flag recorded by the next save must be the new ones,
not what this process saw first.
"""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import shutil
import subprocess
import sys

import pytest

import tinystore

_names = itertools.count()

SOURCE = """
class Thing:
    def __init__(self, x):
        self.x = x

VERSION = {version}
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    """``(module, path)``: a fresh module in ``tmp_path/code`` (a folder that
    tests may turn into a git work tree), imported."""
    code = tmp_path / "code"
    code.mkdir()
    name = f"vfollow_{os.getpid()}_{next(_names)}"
    path = code / f"{name}.py"
    path.write_text(SOURCE.format(version=1))
    monkeypatch.syspath_prepend(str(code))
    importlib.invalidate_caches()
    yield importlib.import_module(name), path
    sys.modules.pop(name, None)


def _recorded(filename, name: str) -> dict:
    with tinystore.open(filename, "r") as s:
        return s.node().versions[name]


def _edit(path, version: int, same_size: bool = False) -> None:
    """Rewrite the module; ``same_size``: the size stays, only the mtime tells."""
    before = os.stat(path)
    path.write_text(SOURCE.format(version=version))
    if same_size:
        assert os.stat(path).st_size == before.st_size
    # a distinct mtime, as a later edit has (file systems with coarse clocks may not)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("same_size", [False, True], ids=["resized", "same-size"])
def test_source_hash_follows_an_edit_and_reload(filename, module, same_size):
    mod, path = module
    tinystore.save({"thing": mod.Thing(1)}, filename)
    first = _recorded(filename, mod.__name__)["sha256"]
    assert first == _sha(path)

    _edit(path, 2, same_size)
    mod = importlib.reload(mod)
    assert mod.VERSION == 2
    tinystore.save({"thing": mod.Thing(2)}, filename)
    second = _recorded(filename, mod.__name__)["sha256"]
    assert second == _sha(path) != first
    assert tinystore.load(filename, version_check="strict")["thing"].x == 2


def _git(cwd, *args) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "GIT_CONFIG_NOSYSTEM": "1"},
    ).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_commit_and_dirty_flag_follow_the_work_tree(filename, module):
    mod, path = module
    repo = path.parent
    _git(repo, "init", "-q")
    _git(repo, "add", path.name)
    _git(repo, "commit", "-q", "-m", "first")
    first_commit = _git(repo, "rev-parse", "HEAD")

    tinystore.save(mod.Thing(1), filename)
    recorded = _recorded(filename, mod.__name__)
    assert (recorded["git"], recorded["dirty"]) == (first_commit, False)

    _edit(path, 2)  # an uncommitted edit, then %autoreload
    mod = importlib.reload(mod)
    tinystore.save(mod.Thing(2), filename)
    recorded = _recorded(filename, mod.__name__)
    assert (recorded["git"], recorded["dirty"]) == (first_commit, True)
    assert recorded["sha256"] == _sha(path)

    _git(repo, "commit", "-q", "-a", "-m", "second")  # the file itself does not change
    second_commit = _git(repo, "rev-parse", "HEAD")
    tinystore.save(mod.Thing(3), filename)
    recorded = _recorded(filename, mod.__name__)
    assert (recorded["git"], recorded["dirty"]) == (second_commit, False)
    assert second_commit != first_commit


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_modules_of_one_work_tree_agree_on_its_state(filename, module, tmp_path):
    """Two modules of one repository, one of them edited: both say dirty."""
    mod, path = module
    repo = path.parent
    other_path = repo / f"{mod.__name__}_other.py"
    other_path.write_text(SOURCE.format(version=10))
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    other = importlib.import_module(other_path.stem)
    try:
        tinystore.save([other.Thing(0)], filename)  # the other module alone, clean
        assert _recorded(filename, other.__name__)["dirty"] is False
        _edit(path, 2)
        mod = importlib.reload(mod)
        tinystore.save([mod.Thing(1), other.Thing(2)], filename)
        assert _recorded(filename, mod.__name__)["dirty"] is True
        assert _recorded(filename, other.__name__)["dirty"] is True
    finally:
        sys.modules.pop(other_path.stem, None)
