"""compact: give back the space a store no longer uses."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from typing import Any

from tinystore.errors import BackendError
from tinystore.storage.copy import copy_store
from tinystore.storage.hdf5 import HDF5Storage
from tinystore.storage.journal import fsync_dir_of, fsync_path
from tinystore.storage.registry import resolve_location


def compact(filename: str | os.PathLike, *, backend: Any = None, **options: Any) -> dict:
    """Give back the space ``filename`` no longer uses, crash-safely.

    An HDF5 file is copied, node by node, into a new file beside it, which
    then replaces it (``os.replace``): the copy holds no free space, and new
    files track free space (files written by tinystore before 0.1 never
    reused it).  Keywords such as ``compression="gzip"`` apply to the copy.
    A JSON directory (or any other store) loses the files that no record
    refers to (left by a process killed half-way through a write).

    A process killed during it leaves the store as it was, and perhaps a
    ``.<name>.compact-*`` file to delete.  Returns ``{"before": bytes,
    "after": bytes, "removed": [paths]}`` (sizes on disk; orphans removed).
    """
    from tinystore._api import open as open_store

    filename = resolve_location(filename)
    before = _size(filename)
    with open_store(filename, "r+", backend=backend) as s:
        # a write session: it plays back the journal of a killed writer first
        removed = s.remove_orphans() if hasattr(s, "remove_orphans") else []
        is_hdf5 = isinstance(s, HDF5Storage)
    if is_hdf5:  # the file itself is replaced, not a symbolic link to it
        _rewrite(os.path.realpath(filename), options, open_store)
    elif options:
        raise BackendError(f"compact takes no options for {filename}: {sorted(options)}")
    return {"before": before, "after": _size(filename), "removed": removed}


def _rewrite(filename: str, options: dict, open_store) -> None:
    """Copy the HDF5 file into a new one and put that in its place, under a
    shared lock (no writer can change it meanwhile; readers keep the old)."""
    folder, name = os.path.split(os.path.abspath(filename))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.compact-", suffix=".h5", dir=folder)
    os.close(fd)
    try:
        with open_store(filename, "r", backend="hdf5") as src, src.hold():
            if os.path.exists(filename + ".journal"):
                raise BackendError(f"a writer of {filename} was killed just now; compact again")
            with open_store(tmp, "w", backend="hdf5", **options) as dst, dst.batch():
                copy_store(src, dst)
            os.chmod(tmp, stat.S_IMODE(os.stat(filename).st_mode))  # not mkstemp's 0600
            fsync_path(tmp)
            os.replace(tmp, filename)
            fsync_dir_of(filename)
    finally:
        for leftover in (tmp, tmp + ".lock"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _size(location: Any) -> int:
    """Bytes on disk of a file or directory (0 for a memory store)."""
    if not isinstance(location, (str, os.PathLike)) or not os.path.exists(location):
        return 0
    if os.path.isfile(location):
        return os.path.getsize(location)
    total = 0
    for root, _, files in os.walk(location):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, f)).st_size
    return total
