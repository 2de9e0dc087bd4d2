"""The first save of a JSON store that does not exist yet (``tinystore.save``).

Such a save makes the directory and its lock, and writes the store's record
at its commit, with no journal and no empty record written first (see
``_DirPhysical._begin_unchecked``).  Until the record is in place there is no
store: readers find none, a writer killed before leaves a directory without
a record that the next writer empties, and a save that fails leaves nothing.
A real writer process is killed (SIGKILL) or made to fail just before each
file-system step (``tests/helpers/batch_writer.py``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinystore
from tinystore.errors import NotAStoreError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from procs import child_env  # noqa: E402

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
LEFTOVERS = ("@tmp-*", "@commit.json", "@record.prev.json", "@journal")

#: a value with an external leaf (an .npy file beside the record) and nesting
VALUE = {"x": 1, "arr": np.arange(2000.0), "nested": {"t": (1, "a"), "b": b"\x00" * 3000}}
OTHER = {"y": [1, 2, 3], "arr": np.ones(700)}


def _save_whole(store: str) -> None:
    tinystore.save(VALUE, store)


def _save_path(store: str) -> None:
    tinystore.save(VALUE, store, path="a/b")  # groups made on the way


JOBS = {"whole": _save_whole, "path": _save_path}


def _loaded(store: str, kind: str):
    """What a reader finds: None for no store, else the value saved."""
    try:
        if kind == "whole":
            return tinystore.load(store)
        return tinystore.load(store, path="a/b")
    except FileNotFoundError:
        return None


def _same(got, expected) -> bool:
    if type(got) is not type(expected):
        return False
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in expected)
    if isinstance(expected, np.ndarray):
        return got.dtype == expected.dtype and np.array_equal(got, expected)
    return got == expected


def _files(store: str) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in Path(store).rglob("*") if p.name != "@lock")


def _clean_files(tmp_path: Path, value) -> list[str]:
    """The files a save of ``value`` into a new store leaves (nothing else may stay)."""
    reference = str(tmp_path / "reference.json")
    tinystore.save(value, reference)
    return _files(reference)


def _check_clean(store: str) -> None:
    left = [str(p) for pattern in LEFTOVERS for p in Path(store).rglob(pattern)]
    assert left == []


def _remove(store: str) -> None:
    if os.path.lexists(store):
        shutil.rmtree(store)  # (tinystore.delete refuses a directory with no record)


def _count(store: str, job) -> int:
    status, out = bw.forked(store, "count", job=job)
    assert status == 0 and out.startswith("ok"), out
    return int(out.split()[1])


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize("kind", ["whole", "path"])
def test_first_save_killed_at_every_step_leaves_no_store_or_the_whole_one(kind, tmp_path):
    store = str(tmp_path / "new.json")
    job = JOBS[kind]
    steps = _count(store, job)
    assert _same(_loaded(store, kind), VALUE)
    expected_files = _clean_files(tmp_path, OTHER)
    seen = set()
    for n in range(1, steps + 1):
        _remove(store)
        status, out = bw.forked(store, "kill", n, job=job)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        got = _loaded(store, kind)  # a reader first: it never writes
        assert got is None or _same(got, VALUE), n
        seen.add("none" if got is None else "new")
        if got is None and os.path.exists(store):
            with pytest.raises(FileNotFoundError):
                tinystore.open(store, "r")
        # the next writer takes the directory, whatever the killed one left in it
        tinystore.save(OTHER, store)
        assert _same(tinystore.load(store), OTHER), n
        if got is None:  # nothing the killed writer left stays
            assert _files(store) == expected_files, n
        _check_clean(store)
    assert seen == {"none", "new"}  # kills before and after the record was in place


@pytest.mark.slow
@needs_fork
def test_first_save_failing_at_any_step_leaves_nothing_or_the_whole_store(tmp_path):
    store = str(tmp_path / "new.json")
    steps = _count(store, _save_whole)
    outcomes = set()
    for n in range(1, steps + 1):
        _remove(store)
        status, out = bw.forked(store, "raise", n, job=_save_whole)
        assert status == 0, out
        failed = out.startswith("failed")
        outcomes.add(failed)
        if failed:  # as if never begun: no directory is left
            assert not os.path.lexists(store), (n, out, os.listdir(store))
        else:  # the failure came after the commit (removing what nothing needs)
            assert _same(tinystore.load(store), VALUE), n
            _check_clean(store)
    assert outcomes == {True, False}


@pytest.mark.slow
@needs_fork
def test_save_replacing_an_existing_store_killed_at_every_step_is_old_or_new(tmp_path):
    store = str(tmp_path / "old.json")
    tinystore.save(OTHER, store)
    steps = _count(store, _save_whole)
    seen = set()
    for n in range(1, steps + 1):
        tinystore.save(OTHER, store)
        status, out = bw.forked(store, "kill", n, job=_save_whole)
        assert os.WIFSIGNALED(status), (n, out)
        got = tinystore.load(store)  # a reader: never a store half replaced
        assert _same(got, OTHER) or _same(got, VALUE), n
        with tinystore.open(store) as s:  # the next writer recovers
            s["z"] = 1
        again = tinystore.load(store)
        del again["z"]
        assert _same(again, got), n
        _check_clean(store)
        seen.add("old" if _same(got, OTHER) else "new")
    assert seen == {"old", "new"}


_READER = """
import sys, time
import numpy as np
import tinystore
store, seconds = sys.argv[1], float(sys.argv[2])
seen = {"none": 0, "whole": 0}
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        value = tinystore.load(store)
    except FileNotFoundError:
        seen["none"] += 1
        continue
    assert value["x"] == 1 and np.array_equal(value["arr"], np.arange(2000.0)), value
    assert value["nested"]["b"] == b"\\x00" * 3000, value
    seen["whole"] += 1
print(seen["none"], seen["whole"])
"""


@pytest.mark.slow
def test_a_reader_beside_first_saves_finds_no_store_or_the_whole_one(tmp_path):
    """Another process reads while this one makes the store again and again
    (delete, then a first save): it never sees a store half made."""
    store = str(tmp_path / "racing.json")
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, store, "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
    )
    saves = 0
    while reader.poll() is None:
        if os.path.exists(store):
            tinystore.delete(store)
        tinystore.save(VALUE, store)
        saves += 1
        time.sleep(0.001)
    out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    none, whole = map(int, out.split())
    assert whole > 0 and saves > 10


def _left_by_a_killed_first_save(store: Path) -> None:
    store.mkdir()
    (store / "@lock").write_bytes(b"")
    (store / "arr.npy").write_bytes(b"half an array")
    (store / "sub").mkdir()
    (store / "sub" / "@record.json").write_bytes(b"{")
    (store / f"@tmp-{'0' * 32}").write_bytes(b"{")


def test_a_directory_left_by_a_killed_first_save_is_taken_by_open(tmp_path):
    store = tmp_path / "left.json"
    _left_by_a_killed_first_save(store)
    with tinystore.open(str(store), "a") as s:
        assert list(s) == []
        s["k"] = 1
    assert sorted(os.listdir(store)) == ["@lock", "@record.json"]
    assert tinystore.load(str(store), path="k") == 1


def test_a_directory_left_by_a_killed_first_save_is_no_store_until_saved_again(tmp_path):
    """What a first save killed before its record leaves: its lock and files
    nothing names.  Readers find no store; the next save empties it."""
    store = tmp_path / "left.json"
    _left_by_a_killed_first_save(store)
    with pytest.raises(FileNotFoundError, match="no tinystore directory"):
        tinystore.load(str(store))
    with pytest.raises(FileNotFoundError, match="no tinystore directory"):
        tinystore.open(str(store), "r")
    tinystore.save(OTHER, str(store))
    assert _same(tinystore.load(str(store)), OTHER)
    assert _files(str(store)) == _clean_files(tmp_path, OTHER)


@pytest.mark.parametrize("how", ["save", "open"])
def test_a_directory_of_other_files_is_still_refused(tmp_path, how):
    """Without a record or a lock file, a directory holding anything but
    ``@`` names is somebody else's: refused, nothing removed."""
    store = tmp_path / "theirs.json"
    store.mkdir()
    (store / "notes.txt").write_text("mine")
    with pytest.raises(NotAStoreError, match="did not write"):
        if how == "save":
            tinystore.save(OTHER, str(store))
        else:
            tinystore.open(str(store), "a")
    assert os.listdir(store) == ["notes.txt"]


@pytest.mark.parametrize("mode", ["w-", "x"])
def test_exclusive_modes_refuse_a_store_made_meanwhile(tmp_path, mode):
    store = str(tmp_path / "s.json")
    tinystore.save(OTHER, store)
    with pytest.raises(FileExistsError):
        tinystore.open(store, mode)


def test_a_failed_first_save_leaves_no_directory(tmp_path):
    store = tmp_path / "bad.json"

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("not today")

    with pytest.raises(Exception, match="not today"):
        tinystore.save({"ok": 1, "bad": Unpicklable()}, str(store))
    assert not store.exists()
    tinystore.save(OTHER, str(store))  # and the name is free
    assert _same(tinystore.load(str(store)), OTHER)


def test_a_save_into_a_directory_a_failed_save_emptied_keeps_other_stores(tmp_path):
    """A first save that fails removes its own directory only."""
    kept = tmp_path / "kept.json"
    tinystore.save(OTHER, str(kept))
    with pytest.raises(Exception):  # noqa: B017 - any error: the value cannot be stored
        tinystore.save({"f": lambda: 1}, str(tmp_path / "gone.json"))
    assert not (tmp_path / "gone.json").exists()
    assert _same(tinystore.load(str(kept)), OTHER)
