"""A full disk never commits damage: a save into a nearly full file system
either succeeds (and the store holds the new value) or raises an ``OSError``
(``StoreFullError`` when the disk is full) and the store is as it was -- or,
for a new store, does not exist.  Never a success with wrong data, a store
that no longer loads, or a crash.

Each case runs in a child process on a small tmpfs that the fixture mounts
(root only; skipped elsewhere, with the reason), sweeping the free space
from nothing to more than the save needs (tests/helpers/fill_disk.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import HELPERS, child_env  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_disk():
    """A 2 MiB tmpfs, mounted for these tests and unmounted after them."""
    if not sys.platform.startswith("linux"):
        pytest.skip("needs Linux tmpfs")
    folder = tempfile.mkdtemp(prefix="tinystore-full-")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", folder], capture_output=True
    )
    if done.returncode:
        os.rmdir(folder)
        why = done.stderr.decode(errors="replace").strip()
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {why}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", folder], check=False)
        os.rmdir(folder)


def _sweep(folder: str, backend: str, scenario: str, step: int, *extra: str) -> list[dict]:
    child = subprocess.run(
        [sys.executable, str(HELPERS / "fill_disk.py"), folder, backend, scenario, str(step)]
        + list(extra),
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=600,
    )
    levels = [json.loads(line) for line in child.stdout.splitlines()]
    assert child.returncode == 0, f"the child died ({child.returncode}): {child.stderr[-2000:]}"
    assert levels, child.stderr
    bad = [lv for lv in levels if lv["holds"] != "as expected" or "UNEXPECTED" in lv["said"]]
    assert not bad, bad[:5]
    said = [lv["said"] for lv in levels]
    # the sweep covers both outcomes: the disk too full, and enough room
    assert said[0] != "ok" and said[-1] == "ok", said
    assert any(s.startswith("StoreFullError") for s in said), said
    return levels


@pytest.mark.parametrize("scenario", ["whole", "partial", "new"])
@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_full_disk_never_commits_damage(small_disk, backend, scenario):
    _sweep(small_disk, backend, scenario, 4096)


@pytest.mark.parametrize("scenario", ["whole", "partial", "new"])
def test_hdf5_write_errors_reported_late_roll_back(small_disk, scenario):
    """With no free space kept in hand, HDF5 itself meets the full disk while
    it writes its metadata (80 small arrays: object headers and links that
    the check before each write does not count, more than the old data
    frees), and reports it only at the end of the session, or used to as
    h5py freed a handle: the save still raises and the store is as before
    (before the fixes: success reported, a record cut short, or a segfault,
    up to a crash at the next save of the process)."""
    levels = _sweep(small_disk, "hdf5", scenario, 1024, "nomargin", "many")
    late = [lv for lv in levels if "writing failed" in lv["said"]]
    assert len(late) > 10, "the sweep met no write error of HDF5 itself"
