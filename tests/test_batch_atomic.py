"""A ``batch()`` into several groups is one transaction, on every backend.

A real writer process is killed (SIGKILL) just before each file-system step of
a batch that changes three groups, makes one and deletes a key; then a reader
(which never writes) and the next writer must both see all the old values or
all the new ones, the same ones, with nothing left behind.  An error at a
step (not a kill) before the commit point leaves the old values and the
batch raises; after it (removing what the batch replaced) the batch holds
and does not raise.  Readers running beside a writer never see a batch half
done.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import tinystore

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from conftest import BACKENDS, HAVE_ZARR, location  # noqa: E402
from procs import child_env  # noqa: E402

#: (backend, big): HDF5 small (journaled whole, HDF5 writes the file itself)
#: and big (every HDF5 write goes through the journal's file object: a step)
CASES = [("json", False), ("hdf5", False), ("hdf5", True)] + (
    [("zarr", False)] if HAVE_ZARR else []
)
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
LEFTOVERS = ("@tmp-*", "@commit.json", "@record.prev.json", "@journal")


def _store(backend: str, tmp_path: Path) -> str:
    return location(backend, tmp_path)


def _steps(store: str, big: bool) -> int:
    bw.make(store, big)
    status, out = bw.forked(store, "count")
    assert status == 0 and out.startswith("ok"), out
    assert bw.same(bw.snapshot(store), bw.NEW)
    return int(out.split()[1])


def _which(state: dict) -> str:
    if bw.same(state, bw.OLD):
        return "old"
    if bw.same(state, bw.NEW):
        return "new"
    raise AssertionError(f"a batch half done: {state}")


def _check_clean(store: str) -> None:
    if store.endswith(".json"):
        left = [str(p) for pattern in LEFTOVERS for p in Path(store).rglob(pattern)]
        assert left == []
    assert not Path(store + ".journal").exists()


def _write_elsewhere(store: str) -> None:
    """A write session of the next writer: recovery runs, then a key apart."""
    with tinystore.open(store) as s:
        s["z_after"] = 1


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize(("backend", "big"), CASES)
def test_batch_killed_at_every_step_is_all_old_or_all_new(backend, big, tmp_path):
    store = _store(backend, tmp_path)
    steps = _steps(store, big)
    seen = set()
    for n in range(1, steps + 1):
        bw.make(store, big)
        status, out = bw.forked(store, "kill", n)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        read = _which(bw.snapshot(store, "r"))  # a reader first: it never writes
        _write_elsewhere(store)
        after = _which(bw.snapshot(store))
        assert after == read, n  # the next writer finishes what readers saw
        _check_clean(store)
        seen.add(after)
    # JSON: kills before and after its commit point (the intent in place);
    # HDF5's is the removal of its journal, the last step
    assert seen == ({"old"} if backend == "hdf5" else {"old", "new"})


@pytest.mark.slow
@needs_fork
def test_json_writer_killed_while_it_finishes_a_commit(tmp_path):
    """The batch killed half-way through its renames, then the next writer
    killed at each step of finishing them: the one after still finishes."""
    store = _store("json", tmp_path)
    steps = _steps(store, False)
    halfway = []
    for n in range(1, steps + 1):
        bw.make(store)
        bw.forked(store, "kill", n)
        if (Path(store) / "@commit.json").exists() and list(Path(store).rglob("@tmp-*")):
            halfway.append(n)
    assert halfway  # the intent in place, records still to move
    n = halfway[len(halfway) // 2]
    bw.make(store)
    bw.forked(store, "kill", n)
    status, out = bw.forked(store, "count", job=_write_elsewhere)
    assert status == 0, out
    recovery = int(out.split()[1])
    for m in range(1, recovery + 1):
        bw.make(store)
        bw.forked(store, "kill", n)
        status, out = bw.forked(store, "kill", m, job=_write_elsewhere)
        assert os.WIFSIGNALED(status), out
        assert _which(bw.snapshot(store, "r")) == "new", m
        _write_elsewhere(store)
        assert _which(bw.snapshot(store)) == "new", m
        _check_clean(store)


@pytest.mark.parametrize(
    "content",
    [b"not json", b'[[["a"], "../../outside"]]', b'[[["..", "x"], "@tmp-' + b"0" * 32 + b'"]]'],
)
def test_json_damaged_commit_intent_is_named(tmp_path, content):
    store = _store("json", tmp_path)
    bw.make(store)
    (Path(store) / "@commit.json").write_bytes(content)
    for mode in ("r", "a"):
        with pytest.raises(tinystore.errors.CorruptStoreError, match="@commit.json"):
            with tinystore.open(store, mode) as s:
                s["a/x"]


def test_json_symlinked_commit_intent_is_refused(tmp_path):
    store = _store("json", tmp_path)
    bw.make(store)
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"[]")
    (Path(store) / "@commit.json").symlink_to(outside)
    for mode in ("r", "a"):
        with pytest.raises(tinystore.errors.UnsafeStoreError):
            with tinystore.open(store, mode) as s:
                if mode == "r":
                    s["a/x"]
                else:
                    s["a/x"] = 5
    assert outside.read_bytes() == b"[]"


@pytest.mark.slow
@needs_fork
def test_json_batch_failing_at_any_step_changes_nothing(tmp_path):
    store = _store("json", tmp_path)
    steps = _steps(store, False)
    outcomes = set()
    for n in range(1, steps + 1):
        bw.make(store)
        status, out = bw.forked(store, "raise", n)
        assert status == 0, out
        failed = out.startswith("failed")
        outcomes.add(failed)
        assert _which(bw.snapshot(store, "r")) == ("old" if failed else "new"), (n, out)
        _write_elsewhere(store)
        assert _which(bw.snapshot(store)) == ("old" if failed else "new"), n
        _check_clean(store)
    assert outcomes == {True, False}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "json"])
def test_batch_error_while_records_are_written_puts_the_old_ones_back(backend, tmp_path):
    """In process: writing the second record raises; the first is put back.
    (JSON: ``test_json_batch_failing_at_any_step_changes_nothing``.)"""
    store = location(backend, tmp_path)
    bw.make(store)
    s = tinystore.open(store)
    physical = s._store.physical
    real = physical.write_record
    calls = []

    def write_record(gpath, data):
        calls.append(gpath)
        if len(calls) == 2:
            raise OSError("the second record cannot be written")
        real(gpath, data)

    physical.write_record = write_record  # this storage's own method, failing once
    with pytest.raises(OSError, match="second record"):
        with s.batch():
            for g in bw.GROUPS:
                s[f"{g}/x"] = -1
    assert len(calls) >= 2
    del physical.write_record
    s.close()
    try:
        assert _which(bw.snapshot(store)) == "old"
        bw.batch(store)  # the store works on
        assert _which(bw.snapshot(store)) == "new"
        if backend != "memory":
            _check_clean(store)
    finally:
        if backend == "memory":
            tinystore.MemoryStorage.drop(store)


_ALTERNATE = """
import sys, time, tinystore
store, rounds = sys.argv[1], int(sys.argv[2])
with tinystore.open(store) as s:
    for i in range(rounds):
        with s.batch():
            for g in "abcd":
                s[g + "/i"] = i
        time.sleep(0.002)  # flock is not fair: a waiting reader gets its turn
print("done", flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["json", "hdf5"])
def test_readers_never_see_a_batch_half_done(backend, tmp_path):
    store = _store(backend, tmp_path)
    with tinystore.open(store, "w") as s:
        for g in "abcd":
            s.create_group(g)
            s[g + "/i"] = -1
    writer = subprocess.Popen(
        [sys.executable, "-c", _ALTERNATE, store, "40"],
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    seen = set()
    deadline = time.monotonic() + 60
    try:
        while writer.poll() is None and time.monotonic() < deadline:
            with tinystore.open(store, "r") as s, s.hold():
                values = {s[g + "/i"] for g in "abcd"}
            assert len(values) == 1, values
            seen |= values
    finally:
        out, _ = writer.communicate(timeout=60)
    assert writer.returncode == 0 and out.strip() == "done"
    assert len(seen) > 2  # the reads overlapped the batches
    with tinystore.open(store, "r") as s:
        assert {s[g + "/i"] for g in "abcd"} == {39}
