"""Which code wrote a file: module versions, git commits and source hashes.

Every module whose classes or functions a stored object references is
recorded in the object's root node as::

    "versions": {"mypkg.models": {"dist": "mypkg", "version": "1.2.0",
                                  "git": "3f2a...", "dirty": true,
                                  "sha256": "<hash of the module source>"}}

(standard-library modules are covered by the Python version, stored once as
``"python"``).  Lookups are cached per process, and done again when a
module's source file changes (its mtime or size: an edit, then
``importlib.reload`` or IPython's ``%autoreload``), and git runs again when
the work tree's HEAD, branch or index changes too.

At load time :func:`check_versions` compares what was recorded with what is
installed, under a policy: ``"ignore"``, ``"warn"`` (default), ``"strict"``
(raise :class:`~tinystore.errors.VersionMismatchError` before anything is
built) or a callable that receives the list of :class:`Mismatch`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import os
import platform
import subprocess
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from tinystore.errors import VersionMismatchError

__all__ = ["module_info", "record_versions", "check_versions", "Mismatch", "VersionWarning"]

PYTHON = platform.python_version()


class VersionWarning(UserWarning):
    """Recorded and installed versions differ (``version_check="warn"``)."""


@dataclass(frozen=True)
class Mismatch:
    """One module whose recorded and installed versions differ."""

    module: str
    field: str
    stored: Any
    installed: Any

    def __str__(self) -> str:
        return f"{self.module}: {self.field} stored {self.stored!r}, installed {self.installed!r}"


def _is_stdlib(module: str) -> bool:
    top = module.split(".", 1)[0]
    return top in sys.stdlib_module_names or top == "builtins"


@functools.lru_cache(maxsize=None)
def _distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.lru_cache(maxsize=None)
def _dist_version(top: str) -> tuple[str | None, str | None]:
    for dist in _distributions().get(top, ()):
        try:
            return dist, importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    mod = sys.modules.get(top)
    version = getattr(mod, "__version__", None)
    return None, version if isinstance(version, str) else None


def _stamp(path: str) -> tuple[int, int] | None:
    """``(mtime_ns, size)`` of a file, which changes when it is written; None if absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=256)
def _git_state(directory: str, stamp: tuple) -> tuple[str | None, bool | None]:
    """Commit and dirty flag of the git work tree holding ``directory``.

    ``stamp`` (see :func:`_git_stamp`) only keys the cache: git runs again
    when it changes.
    """
    try:
        head = subprocess.run(
            ["git", "-C", directory, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "-C", directory, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return head.stdout.strip(), bool(status.stdout.strip()) if status.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None, None


@functools.lru_cache(maxsize=None)
def _git_dirs(root: str) -> tuple[str, str] | None:
    """The git directory of a work tree (``.git``, or where a ``.git`` file
    points) and its common directory (where branches live; the same but in a
    linked work tree)."""
    dotgit = os.path.join(root, ".git")
    gitdir: str | None = dotgit
    if not os.path.isdir(dotgit):
        line = _read_small(dotgit)
        gitdir = None
        if line.startswith("gitdir:"):
            gitdir = os.path.join(root, line[len("gitdir:") :].strip())
    if gitdir is None:
        return None
    common = _read_small(os.path.join(gitdir, "commondir")).strip()
    return gitdir, os.path.join(gitdir, common) if common else gitdir


def _read_small(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(4096)
    except (OSError, UnicodeDecodeError):
        return ""


@functools.lru_cache(maxsize=256)
def _branch_file(gitdir: str, common: str, head_stamp: Any) -> str | None:
    """The file of the branch HEAD names (None: a detached HEAD)."""
    head = _read_small(os.path.join(gitdir, "HEAD"))
    if not head.startswith("ref:"):
        return None
    return os.path.join(common, head[len("ref:") :].strip())


def _git_stamp(root: str, sources: Iterable[tuple[str, Any]]) -> tuple:
    """What the commit and dirty flag of ``root`` follow, cheaply (a few
    ``stat`` calls): the recorded source files, and HEAD, its branch, the
    packed refs and the index (commits, checkouts and ``git add`` change them)."""
    parts: list = [tuple(sorted(sources, key=lambda item: item[0]))]
    dirs = _git_dirs(root)
    if dirs is None:
        return tuple(parts)
    gitdir, common = dirs
    head = _stamp(os.path.join(gitdir, "HEAD"))
    branch = _branch_file(gitdir, common, head)
    parts += [head, _stamp(os.path.join(gitdir, "index"))]
    parts += [_stamp(os.path.join(common, "packed-refs")), branch and _stamp(branch)]
    return tuple(parts)


@functools.lru_cache(maxsize=None)
def _git_root(path: str) -> str | None:
    """The git work tree of a source file, unless it is an installed package.

    Looked up once per file and process: a work tree made later is seen by
    the next process.
    """
    parts = os.path.abspath(path).split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return None  # installed code: its version says it all (and a work tree above lies)
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        if os.path.exists(os.path.join(directory, ".git")):
            return directory
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


@functools.lru_cache(maxsize=None)
def _spec_origin(module: str) -> str | None:
    """Where ``module`` would be imported from (for modules not imported)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None else None


def _source_file(module: str) -> str | None:
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None) if mod is not None else None
    if path is None:
        parent = module.rpartition(".")[0]
        if parent and parent not in sys.modules:
            return None  # finding it would import (run) its parent package
        path = _spec_origin(module)
    if isinstance(path, str) and path.endswith(".py"):
        return path
    return None


@functools.lru_cache(maxsize=1024)
def _file_hash(path: str, stamp: tuple) -> str:
    """The sha256 of a file; ``stamp`` (its mtime and size) keys the cache."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _source_info(module: str) -> tuple[dict, str | None, tuple | None]:
    """dist, version and sha256 of ``module``, with its source file and stamp."""
    info: dict = {}
    dist, version = _dist_version(module.split(".", 1)[0])
    if dist:
        info["dist"] = dist
    if version:
        info["version"] = version
    source = _source_file(module)
    stamp = _stamp(source) if source is not None else None
    if stamp is None:
        return info, None, None
    try:
        info["sha256"] = _file_hash(source, stamp)
    except OSError:
        return info, None, None
    return info, source, stamp


def module_info(module: str, git: bool = True) -> dict:
    """What is installed for ``module`` now: dist, version, git, dirty, sha256.

    ``git=False`` (used when loading) never runs git: a file may name any
    module, and git runs commands a repository configures (``core.fsmonitor``).
    Lookups are cached, and done again when the module's file changes (its
    mtime or size), so an edited and reloaded module is recorded as it is now.
    """
    return _modules_info([module], git)[module]


def _modules_info(modules: list[str], git: bool = True) -> dict[str, dict]:
    found = {m: _source_info(m) for m in modules}
    out = {m: info for m, (info, _, _) in found.items()}
    if not git:
        return out
    by_root: dict[str, list[str]] = {}
    for m, (_, source, _) in found.items():
        root = _git_root(source) if source is not None else None
        if root is not None:
            by_root.setdefault(root, []).append(m)
    for root, members in by_root.items():
        # one git state per work tree and save, so its modules agree on it
        stamp = _git_stamp(root, [(found[m][1], found[m][2]) for m in members])
        commit, dirty = _git_state(root, stamp)
        if commit:
            for m in members:
                out[m] = {**out[m], "git": commit, "dirty": dirty}
    return out


def record_versions(names: Iterable[str]) -> dict:
    """The ``versions`` record for the ``module:qualname`` names an object used."""
    modules = sorted({name.partition(":")[0] for name in names})
    return _modules_info([m for m in modules if m and not _is_stdlib(m)])


def _compare(recorded: dict) -> list[Mismatch]:
    out = []
    modules = recorded.get("versions")
    for module, stored in modules.items() if type(modules) is dict else ():
        if not isinstance(stored, dict):
            continue
        now = module_info(module, git=False)
        if "version" in stored and stored["version"] != now.get("version"):
            out.append(Mismatch(module, "version", stored["version"], now.get("version")))
        # the source can only be compared where it can be found without running code
        if "sha256" in stored and "sha256" in now and stored["sha256"] != now["sha256"]:
            out.append(Mismatch(module, "sha256", stored["sha256"], now["sha256"]))
    python = recorded.get("python")
    if type(python) is str and python.rsplit(".", 1)[0] != PYTHON.rsplit(".", 1)[0]:
        out.append(Mismatch("python", "version", python, PYTHON))
    return out


def check_versions(recorded: dict, policy: str | Callable[[list], Any], where: str) -> None:
    """Apply the ``version_check`` policy to the versions ``recorded`` for ``where``."""
    if policy == "ignore" or not recorded:
        return
    if not (callable(policy) or policy in ("warn", "strict")):
        raise ValueError(
            f"version_check must be 'ignore', 'warn', 'strict' or a callable, not {policy!r}"
        )
    mismatches = _compare(recorded)
    if callable(policy):
        policy(mismatches)
        return
    if not mismatches:
        return
    text = "; ".join(map(str, mismatches))
    if policy == "strict":
        raise VersionMismatchError(
            f"{where} was written by other code versions: {text}. Load with "
            "version_check='warn' or 'ignore' to load it anyway"
        )
    warnings.warn(
        f"{where} was written by other code versions: {text}", VersionWarning, stacklevel=4
    )
