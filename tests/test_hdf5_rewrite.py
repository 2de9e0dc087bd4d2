"""A write session of an existing HDF5 file that holds nothing but its root
record, exactly as the image writer makes it (:mod:`tinystore.storage.hdf5_image`),
does not open the file with HDF5: if it writes nothing but a new root record
(a single assignment in an open store, a small save), the file is rewritten
whole as the image of that record, in place, under a whole-file journal.

Proved here: HDF5 is not called; the bytes are HDF5's own for a new file
holding that record; a session that writes more opens the file with HDF5 and
keeps what it wrote before; a file that holds anything else (an attribute, a
dataset, a user block) is left to HDF5 and keeps it; the inode and
permissions stay; other handles' writes between two assignments are seen
and kept; a writer killed or failing at any step leaves the old store or
the new one; durable sessions fsync the journal first and the file before
the journal goes.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.storage import hdf5, hdf5_image, journal

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from hdf5_files import made_by_hdf5  # noqa: E402

pytestmark = pytest.mark.skipif(
    not hdf5._writes_new_files(), reason="this HDF5's layout is not proven: HDF5 writes"
)
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")


class _NoOpen:
    """``h5py.h5f`` for tinystore's HDF5 module, refusing to open a file."""

    def __getattr__(self, name):
        return getattr(h5py.h5f, name)

    def open(self, *args, **kwargs):
        raise AssertionError("HDF5 was asked to open the file")


class _Counting(_NoOpen):
    """``h5py.h5f`` for tinystore's HDF5 module, noting the files it opens."""

    def __init__(self):
        self.opened = []

    def open(self, *args, **kwargs):
        self.opened.append(args[0])
        return h5py.h5f.open(*args, **kwargs)


def _record(path) -> bytes:
    with h5py.File(path, "r") as f:
        return f["@record"][()]


def _by_hdf5(folder, record: bytes) -> bytes:
    """The file HDF5 itself makes for ``record`` as a new file's root record."""
    return made_by_hdf5(folder, record)


def _step(i: int) -> dict:
    return {"step": i, "loss": 0.5 / (i + 1), "tag": "train"}


def _contents(store: str) -> dict:
    with tinystore.open(store, "r") as s:
        return {key: s[key] for key in s}


def _new_store(store: str, **items) -> None:
    """A new store (its root a group) holding ``items``."""
    with tinystore.open(store, "w") as s:
        for key, value in items.items():
            s[key] = value


def _same(got: dict, expected: dict) -> None:
    """Equal, keys in the same order, values of the same types (pickle's
    loads of the same bytes are the reference)."""
    assert list(got) == list(expected)
    for key, value in expected.items():
        assert got[key] == value and type(got[key]) is type(value)
        assert got[key] == pickle.loads(pickle.dumps(value))


def test_assignments_rewrite_the_file_without_hdf5(tmp_path, monkeypatch):
    store = str(tmp_path / "s.h5")
    with tinystore.open(store, "w") as s:
        s["first"] = _step(0)
        monkeypatch.setattr(hdf5, "h5f", _NoOpen())
        for i in range(1, 40):
            s[f"step{i}"] = _step(i)
            assert s[f"step{i}"] == _step(i)
        del s["first"]
        s["step1"] = "replaced"
        assert list(s) == [f"step{i}" for i in range(1, 40)]
    monkeypatch.undo()
    expected = {f"step{i}": _step(i) for i in range(1, 40)}
    expected["step1"] = "replaced"
    _same(_contents(store), expected)
    with open(store, "rb") as f:
        assert f.read() == _by_hdf5(tmp_path, _record(store))  # HDF5's bytes
    assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.h5.lock"]


def test_a_small_save_over_a_small_file_is_a_rewrite(tmp_path, monkeypatch):
    store = str(tmp_path / "s.h5")
    tinystore.save({"old": 1}, store)
    monkeypatch.setattr(hdf5, "h5f", _NoOpen())
    tinystore.save({"new": [1, 2.5, "x"]}, store)
    tinystore.save(3, store, path="three")
    monkeypatch.undo()
    _same(_contents(store), {"new": [1, 2.5, "x"], "three": 3})


#: a record longer than the image writer makes (hdf5_image.MAX_CONTIGUOUS_BYTES)
BIG_TEXT = "x" * (hdf5_image.MAX_CONTIGUOUS_BYTES + 10)


@pytest.mark.parametrize("more", ["array", "group", "big record"])
def test_a_session_that_writes_more_opens_the_file_with_hdf5(tmp_path, more):
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)
    with tinystore.open(store) as s:
        with s.batch():
            s["small"] = {"a": 1}  # a new root record, kept for the image so far
            if more == "array":
                s["arr"] = np.arange(100.0)  # a dataset: HDF5 opens the file
            elif more == "group":
                s.create_group("g")
                s["g/x"] = 2
            else:
                s["text"] = BIG_TEXT
            s["after"] = 3
    got = _contents(store)
    assert got["old"] == 1 and got["small"] == {"a": 1} and got["after"] == 3
    if more == "array":
        np.testing.assert_array_equal(got["arr"], np.arange(100.0))
        with h5py.File(store, "r") as f:
            assert isinstance(f["arr"], h5py.Dataset)
    elif more == "group":
        assert tinystore.load(store, path="g/x") == 2
    else:
        assert got["text"] == BIG_TEXT
    assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.h5.lock"]


def _add_attribute(path: str) -> None:
    with h5py.File(path, "r+") as f:
        f.attrs["note"] = "kept"


def _add_dataset(path: str) -> None:
    with h5py.File(path, "r+") as f:
        f["extra"] = np.arange(3)


def _add_user_block(path: str) -> None:
    """The same store, in a file of HDF5's that starts with a user block."""
    record = _record(path)
    os.unlink(path)
    with h5py.File(path, "w", userblock_size=512, libver=("v110", "latest")) as f:
        f["@record"] = np.bytes_(record)
    with open(path, "r+b") as f:
        f.write(b"a user block")


@pytest.mark.parametrize("change", [_add_attribute, _add_dataset, _add_user_block])
def test_a_file_holding_anything_else_is_left_to_hdf5(tmp_path, change):
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)
    change(store)
    with tinystore.open(store) as s:
        s["new"] = 2
        s["newer"] = 3
    with h5py.File(store, "r") as f:
        if change is _add_attribute:
            assert f.attrs["note"] == "kept"
        elif change is _add_dataset:
            np.testing.assert_array_equal(f["extra"][()], np.arange(3))
        else:
            assert f.userblock_size == 512
    if change is _add_user_block:
        with open(store, "rb") as f:
            assert f.read(12) == b"a user block"
    with tinystore.open(store, "r") as s:
        assert s["old"] == 1 and s["new"] == 2 and s["newer"] == 3


def test_a_file_hdf5_changed_is_left_to_hdf5(tmp_path, monkeypatch):
    """A file HDF5 updated in place (here: an array stored, then deleted)
    holds nothing but its root record, but it is not the image of it: HDF5
    updates it, as before."""
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)
    tinystore.save(np.arange(100.0), store, path="arr")
    tinystore.delete(store, path="arr")
    with open(store, "rb") as f:
        assert f.read() != hdf5._root_image(_record(store))
    counting = _Counting()
    monkeypatch.setattr(hdf5, "h5f", counting)
    tinystore.save(2, store, path="new")
    assert counting.opened
    monkeypatch.undo()
    _same(_contents(store), {"old": 1, "new": 2})


def test_a_file_open_in_hdf5_in_this_process_is_left_to_hdf5(tmp_path, monkeypatch):
    """While HDF5 holds a file open in this process (an h5py handle, of any
    file), HDF5 opens the store's file: an h5py handle of it may hold
    changes the image does not know."""
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)
    counting = _Counting()
    with h5py.File(tmp_path / "other.h5", "w"):
        monkeypatch.setattr(hdf5, "h5f", counting)
        with tinystore.open(store) as s:
            s["new"] = 2
        assert counting.opened
    monkeypatch.undo()
    _same(_contents(store), {"old": 1, "new": 2})


def test_a_handle_knows_the_image_it_wrote_without_a_look(tmp_path, monkeypatch):
    """A handle reads and compares the file once; after that, while the store
    is unchanged since its own last session, it knows the file is its image."""
    store = str(tmp_path / "s.h5")
    looks = []
    real = hdf5.hdf5_records.read_record

    def counting(*args):
        looks.append(args[0])
        return real(*args)

    monkeypatch.setattr(hdf5.hdf5_records, "read_record", counting)
    with tinystore.open(store, "w") as s:
        s["a"] = 1
        s["b"] = 2
        looks.clear()
        for i in range(5):
            s[f"k{i}"] = i
        assert looks == []
        tinystore.save(3, store, path="other")  # another handle wrote
        looks.clear()
        s["c"] = 4
        assert looks == [store]  # looked again, once
    _same(_contents(store), {"a": 1, "b": 2, **{f"k{i}": i for i in range(5)}, "other": 3, "c": 4})


def test_the_inode_and_permissions_stay(tmp_path):
    store = tmp_path / "s.h5"
    tinystore.save({"old": 1}, str(store))
    os.chmod(store, 0o640)
    os.link(store, tmp_path / "other-name.h5")
    inode = os.stat(store).st_ino
    with tinystore.open(str(store)) as s:
        for i in range(5):
            s[f"k{i}"] = i
    assert os.stat(store).st_ino == inode
    assert os.stat(store).st_mode & 0o777 == 0o640
    assert tinystore.load(str(tmp_path / "other-name.h5"))["k4"] == 4


def test_other_handles_writes_between_assignments_are_kept(tmp_path):
    store = str(tmp_path / "s.h5")
    with tinystore.open(store, "w") as a:
        a["a1"] = 1
        a["a2"] = 2  # a's last session left the image it knows
        with tinystore.open(store) as b:
            b["b"] = "from b"
        a["a3"] = 3
        assert a["b"] == "from b"
        tinystore.save(np.arange(10.0), store, path="arr")  # now a dataset too
        a["a4"] = 4
    got = _contents(store)
    assert [got[k] for k in ("a1", "a2", "b", "a3", "a4")] == [1, 2, "from b", 3, 4]
    np.testing.assert_array_equal(got["arr"], np.arange(10.0))


def test_a_file_changed_by_h5py_between_assignments_is_seen(tmp_path):
    store = str(tmp_path / "s.h5")
    with tinystore.open(store, "w") as s:
        s["a"] = 1
        s["b"] = 2
        _add_attribute(store)
        s["c"] = 3
    with h5py.File(store, "r") as f:
        assert f.attrs["note"] == "kept"
    _same(_contents(store), {"a": 1, "b": 2, "c": 3})


def test_a_durable_rewrite_fsyncs_the_journal_then_the_file(tmp_path, monkeypatch):
    store = str(tmp_path / "s.h5")
    tinystore.save({"old": 1}, store)
    monkeypatch.setattr(journal, "TRACE", [])
    monkeypatch.setattr(hdf5, "h5f", _NoOpen())
    tinystore.save(2, store, path="new", durable=True)
    trace = [t[:2] for t in journal.TRACE]
    jpath, folder = store + ".journal", str(tmp_path)
    first = trace.index(("fsync", jpath))
    named = trace.index(("fsync", folder), first)
    data = trace.index(("fsync", store), named)
    gone = trace.index(("unlink", jpath), data)
    assert ("fsync", folder) in trace[gone:]
    monkeypatch.undo()
    _same(_contents(store), {"old": 1, "new": 2})


def _assign_more(store: str) -> None:
    with tinystore.open(store) as s:
        s["new"] = {"x": 1, "y": "new"}  # (flat: it goes into the root record)


def _state(store: str):
    return _contents(store)


OLD = {"old": 1, "keep": "kept"}
NEW = {**OLD, "new": {"x": 1, "y": "new"}}


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize("action", ["kill", "raise"])
def test_a_rewrite_killed_or_failing_at_every_step_leaves_old_or_new(tmp_path, action):
    store = str(tmp_path / "s.h5")
    _new_store(store, **OLD)
    _new_store(store, **OLD)  # (first-call caches made)
    status, out = bw.forked(store, "count", job=_assign_more)
    assert status == 0 and out.startswith("ok"), out
    with open(store, "rb") as f:  # rewritten as an image, not by HDF5
        assert f.read() == hdf5._root_image(_record(store))
    steps = int(out.split()[1])
    assert steps >= 3  # the journal, the file, the journal's removal
    seen = []
    for n in range(1, steps + 1):
        _new_store(store, **OLD)
        status, out = bw.forked(store, action, n, job=_assign_more)
        if action == "kill":
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        else:
            assert status == 0 and out.startswith("failed"), (n, out)
        got = _state(store)  # a reader: the old store or the new one
        assert got in (OLD, NEW), (n, got)
        seen.append(got == NEW)
        _assign_more(store)  # the next writer puts back what a killed one left
        assert _state(store) == NEW
        assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.h5.lock"], n
    assert seen == [False] * steps  # the journal's removal is the last step


def test_files_up_to_the_longest_image_are_rewritten_without_hdf5(tmp_path, monkeypatch):
    """Past the whole-file journal's limit for HDF5's sessions (256 KiB), up to
    the longest image (a root record of 1 MiB)."""
    store = str(tmp_path / "s.h5")
    text = "t" * (hdf5.JOURNAL_WHOLE_LIMIT + 1000)
    _new_store(store, text=text)
    assert os.path.getsize(store) > hdf5.JOURNAL_WHOLE_LIMIT
    monkeypatch.setattr(hdf5, "h5f", _NoOpen())
    with tinystore.open(store) as s:
        for i in range(3):
            s[f"k{i}"] = i
    monkeypatch.undo()
    _same(_contents(store), {"text": text, "k0": 0, "k1": 1, "k2": 2})
    with open(store, "rb") as f:
        assert f.read() == _by_hdf5(tmp_path, _record(store))


def test_an_h5py_handle_opened_during_the_session_never_goes_stale(tmp_path):
    """An h5py handle of the file opened inside a session that would rewrite
    it: HDF5 is asked to write the file instead, refuses (the handle holds
    it), and the session is rolled back; the handle reads the file as it is."""
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)
    with tinystore.open(store) as s:
        with pytest.raises(OSError, match="rolled back"):
            with s.hold():
                s["a"] = 1
                f = h5py.File(store, "r")
        try:
            assert f["@record"][()] == _record_bytes_on_disk(store)
        finally:
            f.close()
    _same(_contents(store), {"old": 1})


def _record_bytes_on_disk(store: str) -> bytes:
    from tinystore.storage import hdf5_records

    return hdf5_records.read_record(store, (), b"@record", 1 << 20)


def test_a_change_that_keeps_the_files_stamp_is_not_overwritten(tmp_path):
    """A writer that ignores tinystore's lock may change the file without
    changing its size or (on a file system of coarse times) its times: before
    the rewrite the file is compared with the image the session began with,
    and a changed file is left to HDF5, which keeps the change."""
    store = str(tmp_path / "s.h5")
    with tinystore.open(store, "w") as s:
        s["a"] = 1
        s["b"] = 2
        physical = s._store.physical
        _add_attribute(store)
        same = ("a stamp that looks unchanged",)  # (as a coarse clock may make it)
        physical._now = lambda: same
        physical._stamp = same
        physical._image = (same, physical._image[1])
        s["c"] = 3
        assert physical._image[0] is None  # (it was not rewritten as an image)
    with h5py.File(store, "r") as f:
        assert f.attrs["note"] == "kept"
    _same(_contents(store), {"a": 1, "b": 2, "c": 3})


def test_an_interrupt_before_the_rewrite_undoes_the_session_and_frees_the_lock(
    tmp_path, monkeypatch
):
    store = str(tmp_path / "s.h5")
    _new_store(store, old=1)

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(hdf5._HDF5Physical, "_unchanged", interrupted)
    with tinystore.open(store) as s:
        with pytest.raises(KeyboardInterrupt):
            s["a"] = 1
    monkeypatch.undo()
    _same(_contents(store), {"old": 1})
    with tinystore.open(store, lock_timeout=0.5) as s:  # the lock was released
        s["b"] = 2
    _same(_contents(store), {"old": 1, "b": 2})
