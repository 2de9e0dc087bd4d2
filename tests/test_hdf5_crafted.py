"""Crafted HDF5 files of format 1.1 (leaves at paths inside their group):
what only the native layout can be made to say.

Each case edits a small store with plain h5py, the way an attacker (or a
damaged disk) could.  Loading, browsing, verifying and writing must end in a
tinystore error naming the node, in a child process whose address space is
capped and whose time is limited: never a crash, a hang, a ``RecursionError``
or ``MemoryError``, nor an array made of bytes the file does not hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import CorruptStoreError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import attempt, fork_available, run_one  # noqa: E402
from procs import child_env  # noqa: E402

pytestmark = pytest.mark.skipif(not fork_available(), reason="needs fork() to isolate loads")

ARR = np.arange(1000.0)


def _store(tmp_path: Path) -> str:
    fn = str(tmp_path / "crafted.h5")
    tinystore.save({"arr": ARR, "x": 1}, fn, path="obj")
    tinystore.save(np.arange(100.0), fn, path="top")
    return fn


def _edit_entry(fn: str, change) -> None:
    """Apply ``change(entry, file)`` to the entry of ``obj/arr`` in its record
    (its checksum dropped: records without one are read unchecked)."""
    with h5py.File(fn, "a") as f:
        doc = json.loads(f["obj/@record"][()])
        doc.pop("h", None)
        entry = doc["nodes"][0]["c"]["arr"]
        entry.pop("h", None)
        change(entry, f)
        del f["obj/@record"]
        f["obj/@record"] = np.bytes_(json.dumps(doc))


def _deep_name(entry, f):
    entry["X"] = "a/" * 3000 + "arr"


def _deep_existing_folders(entry, f):
    name = "/".join(["a"] * 1500)
    f.create_group("obj/" + name)
    entry["X"] = name + "/arr"


def _sparse(layout: str, n: int):
    def change(entry, f):
        del f["obj/arr"]
        chunks = (1 << 16,) if layout == "chunked" else None
        f.create_dataset("obj/arr", shape=(n,), dtype="<f8", chunks=chunks)  # nothing written
        entry["s"] = [n]

    return change


def _sparse_raw(entry, f):
    del f["obj/arr"]
    f.create_dataset("obj/arr", shape=(1 << 28,), dtype="u1", chunks=(1 << 20,))
    entry["r"] = 1
    entry["s"] = [1 << 25]


def _sparse_bytes(entry, f):
    del f["obj/arr"]
    f.create_dataset("obj/arr", shape=(1 << 28,), dtype="u1", chunks=(1 << 20,))
    for key in ("d", "s"):
        entry.pop(key)
    entry.update(k="B", n=1 << 28)


def _partly_written(entry, f):
    del f["obj/arr"]
    ds = f.create_dataset("obj/arr", shape=(1 << 26,), dtype="<f8", chunks=(1 << 16,))
    ds[: 1 << 16] = 1.0  # one chunk of 1024 written
    entry["s"] = [1 << 26]


CASES = {
    # a path of more keys than any writer makes: no recursion error, read or written
    "leaf path of 3000 folders": _deep_name,
    "leaf path of 1500 existing folders": _deep_existing_folders,
    # datasets that claim far more than the file holds: HDF5 would hand out
    # its fill value for every byte never written (the file is a few KiB)
    "contiguous dataset never written": _sparse("contiguous", 1 << 27),
    "chunked dataset never written": _sparse("chunked", 1 << 27),
    "chunked dataset partly written": _partly_written,
    "raw bytes never written": _sparse_raw,
    "bytes never written": _sparse_bytes,
}


def _every_way(fn: str) -> dict:
    def browse():
        with tinystore.open(fn, "r") as s:
            return s.node("obj").tree(), s.info()

    def verify():
        done = subprocess.run(
            [sys.executable, "-m", "tinystore", "verify", fn],
            capture_output=True,
            text=True,
            env=child_env(),
        )
        return done.returncode, done.stdout + done.stderr

    return {
        "load": attempt(lambda: tinystore.load(fn, path="obj"), repr),
        "load leaf": attempt(lambda: tinystore.load(fn, path="obj/arr"), repr),
        "browse": attempt(browse, repr),
        "verify": attempt(verify),
        "write beside": attempt(lambda: tinystore.save(2, fn, path="obj/y")),
        "replace": attempt(lambda: tinystore.save(np.arange(5.0), fn, path="obj/arr")),
        "after": attempt(lambda: tinystore.load(fn, path="obj"), repr),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_crafted_native_layout_is_refused_cleanly(case, tmp_path):
    fn = _store(tmp_path)
    _edit_entry(fn, CASES[case])
    outcome = run_one(lambda: _every_way(fn), timeout=60, headroom=512 * 2**20)
    assert outcome.status == "done", f"{case}: {outcome}"
    got = outcome.result
    for way in ("load", "load leaf"):
        caught = got[way]
        assert caught.raised, f"{case} via {way}: loaded {caught.value:.200}"
        assert caught.isinstance(CorruptStoreError), f"{case} via {way}: {caught}"
        assert "/obj" in caught.message, f"{case} via {way}: {caught}"
        assert not caught.memory, f"{case} via {way}: {caught}"
        assert "recursion" not in caught.message, f"{case} via {way}: {caught}"
    assert not got["browse"].raised or got["browse"].tinystore_error, got["browse"]
    assert not got["verify"].raised, got["verify"]
    code, text = got["verify"].value
    assert code == 1 and "DAMAGED /obj" in text, text
    # writes beside the damage work; over it, they work or refuse a damaged record
    assert not got["write beside"].raised, got["write beside"]
    assert tinystore.load(fn, path="obj/y") == 2
    replaced = got["replace"]
    assert not replaced.raised or replaced.isinstance(CorruptStoreError), replaced
    if not replaced.raised:
        assert not got["after"].raised, got["after"]
        np.testing.assert_array_equal(tinystore.load(fn, path="obj/arr"), np.arange(5.0))


def test_compressed_arrays_are_not_mistaken_for_unwritten_ones(tmp_path):
    """The check against unwritten datasets accepts what tinystore writes:
    compressed chunks far smaller than the array, and empty arrays."""
    fn = tmp_path / "zeros.h5"
    value = {"z": np.zeros(1 << 20), "e": np.zeros((0, 1000)), "t": np.zeros(3000, ">i4")}
    tinystore.save(value, fn, compression="gzip")
    assert fn.stat().st_size < (1 << 20)
    back = tinystore.load(fn)
    for key, array in value.items():
        assert back[key].dtype == array.dtype and back[key].shape == array.shape
        np.testing.assert_array_equal(back[key], array)


def test_a_record_never_written_is_refused_before_it_is_read(tmp_path):
    """A record dataset claiming 256 MiB in a file of a few KiB: refused
    before anything is allocated for it."""
    fn = _store(tmp_path)
    with h5py.File(fn, "a") as f:
        del f["obj/@record"]
        f.create_dataset("obj/@record", shape=(), dtype=f"S{1 << 28}")
    outcome = run_one(
        lambda: attempt(lambda: tinystore.load(fn, path="obj"), repr),
        timeout=30,
        headroom=128 * 2**20,
    )
    assert outcome.status == "done", outcome
    caught = outcome.result
    assert caught.raised and caught.isinstance(CorruptStoreError), caught
    assert not caught.memory and "never written" in caught.message, caught
    assert "/obj" in caught.message, caught
