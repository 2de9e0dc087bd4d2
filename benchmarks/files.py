"""Where a benchmark's stores live on disk: their size, and their removal."""

from __future__ import annotations

import os
import shutil

import tinystore


def path_size(location: str) -> int:
    """Bytes of the file or directory at ``location`` (every file below it)."""
    if os.path.isdir(location):
        return sum(
            os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(location) for f in files
        )
    return os.path.getsize(location)


def remove_path(location: str) -> None:
    """Remove a store (a ``memory://`` one, a directory, or a file and its lock file)."""
    if location.startswith("memory://"):
        tinystore.delete(location)
    elif os.path.isdir(location):
        shutil.rmtree(location, ignore_errors=True)
    else:
        for path in (location, location + ".lock"):
            if os.path.lexists(path):
                os.remove(path)
