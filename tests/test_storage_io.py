"""The file I/O under the backends: rollback journal, HDF5 and .npy fast paths."""

from __future__ import annotations

import io
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.storage import hdf5
from tinystore.storage import journal as jn
from tinystore.storage.journal import JournaledFile, RolledBackFile, roll_back, save_whole_file

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

ORIGINAL = bytes(range(256)) * 40  # 10,240 bytes: two full pages and a part


def _change(f) -> None:
    """Overwrite bytes in two pages, then append: what HDF5 does in a session."""
    f.seek(100)
    f.write(b"x" * 5000)
    f.seek(9000)
    f.write(b"y" * 3000)  # past the original end


@pytest.fixture
def original(tmp_path) -> tuple[str, str]:
    path = tmp_path / "data"
    path.write_bytes(ORIGINAL)
    return str(path), str(path) + ".journal"


def test_journaled_file_rolls_back_overwrites_and_growth(original):
    path, journal = original
    f = JournaledFile(path, journal)
    _change(f)
    f.close()  # a kill: the journal stays
    assert Path(path).read_bytes() != ORIGINAL
    assert roll_back(path, journal)
    assert Path(path).read_bytes() == ORIGINAL
    assert not os.path.exists(journal)


def test_journaled_file_saves_each_page_once(original):
    path, journal = original
    f = JournaledFile(path, journal)
    for _ in range(3):
        _change(f)
    f.truncate(50)
    f.close()
    pages = (len(ORIGINAL) + 4095) // 4096
    assert os.path.getsize(journal) <= 8 + pages * (12 + 4096)
    roll_back(path, journal)
    assert Path(path).read_bytes() == ORIGINAL


def test_journaled_file_commit_keeps_the_changes(original):
    path, journal = original
    f = JournaledFile(path, journal)
    _change(f)
    f.commit()
    assert not os.path.exists(journal)
    assert not roll_back(path, journal)
    assert Path(path).read_bytes()[100:105] == b"xxxxx"


def test_whole_file_journal_undoes_any_change(original):
    path, journal = original
    assert not save_whole_file(path, journal, limit=len(ORIGINAL) - 1)
    assert not os.path.exists(journal)
    assert save_whole_file(path, journal, limit=len(ORIGINAL))
    with open(path, "r+b") as f:  # anyone may write now, without a journaled file object
        _change(f)
        f.truncate(20_000)
    roll_back(path, journal)
    assert Path(path).read_bytes() == ORIGINAL


@pytest.mark.parametrize("kernel", [True, False])
def test_whole_file_journal_holds_the_file_byte_for_byte(original, kernel):
    """The whole-file journal is copied by the kernel (copy_file_range) where
    it can, else read and written: the same journal either way."""
    path, journal = original
    with open(path, "rb") as f, open(journal, "wb") as out:
        out.write(b"head")
        jn._copy_file(f if kernel else io.BytesIO(f.read()), out, len(ORIGINAL))
    assert Path(journal).read_bytes() == b"head" + ORIGINAL
    os.unlink(journal)
    assert save_whole_file(path, journal, limit=len(ORIGINAL))
    head = struct.pack("<Q", len(ORIGINAL))
    assert Path(journal).read_bytes()[: len(head)] == head
    assert Path(journal).read_bytes().endswith(ORIGINAL)


def test_rolled_back_file_reads_what_roll_back_writes(original):
    path, journal = original
    f = JournaledFile(path, journal)
    _change(f)
    f.truncate(9500)
    f.close()
    damaged = Path(path).read_bytes()
    view = RolledBackFile(path, journal)
    assert view.seek(0, os.SEEK_END) == len(ORIGINAL)
    view.seek(0)
    chunks = []
    while chunk := view.read(3000):  # reads that straddle the journaled pages
        chunks.append(chunk)
    view.close()
    assert b"".join(chunks) == ORIGINAL
    assert Path(path).read_bytes() == damaged  # not written
    roll_back(path, journal)
    assert Path(path).read_bytes() == ORIGINAL


@pytest.mark.parametrize("whole", [True, False])
def test_journal_cut_short_by_a_kill_changes_nothing(original, whole):
    """A kill while the journal is written: the file was not touched yet."""
    path, journal = original
    if whole:
        save_whole_file(path, journal, limit=1 << 20)
    else:
        f = JournaledFile(path, journal)
        f.seek(100)
        f.write(b"x")
        f.close()
        Path(path).write_bytes(ORIGINAL)  # as if the kill came before the data write
    full = Path(journal).read_bytes()
    for cut in sorted({0, 4, 8, 12, 19, 20, 21, len(full) // 2, len(full) - 1}):
        Path(journal).write_bytes(full[:cut])
        roll_back(path, journal)
        assert Path(path).read_bytes() == ORIGINAL, cut
        assert not os.path.exists(journal)


# -- HDF5 sessions killed half-way -----------------------------------------------------------

_KILLED_WRITER = """
import os, signal, sys
import h5py
import numpy as np
import tinystore
s = tinystore.open(sys.argv[1])
with s.batch():
    for i in range(3):
        s[f"new{i}"] = np.full(100_000, i)
    del s["old"]
    h5py.h5f.flush(s._store.physical._fid)  # HDF5's metadata, rewritten in place, is in the file
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("size", ["small", "large"])
def test_hdf5_write_session_killed_half_way(tmp_path, size):
    """Small files are journaled whole, large ones page by page: both roll back."""
    filename = str(tmp_path / "store.h5")
    old = np.arange(10.0) if size == "small" else np.arange(100_000.0)
    with tinystore.open(filename, "w") as s:
        s["old"] = old
        s["keep"] = {"a": 1}
    assert (os.path.getsize(filename) <= hdf5.JOURNAL_WHOLE_LIMIT) == (size == "small")
    before = Path(filename).read_bytes()
    env = child_env()
    proc = subprocess.run([sys.executable, "-c", _KILLED_WRITER, filename], env=env)
    assert proc.returncode == -signal.SIGKILL
    assert os.path.exists(filename + ".journal")
    damaged = Path(filename).read_bytes()
    assert damaged != before  # as far as HDF5 knows
    # a reader that may not write sees the file as it was, and leaves it as it is
    assert tinystore.load(filename, path="keep") == {"a": 1}
    with tinystore.open(filename, "r") as s:
        assert sorted(s) == ["keep", "old"]
        np.testing.assert_array_equal(s["old"], old)
    assert Path(filename).read_bytes() == damaged
    assert os.path.exists(filename + ".journal")
    with tinystore.open(filename) as s:  # a writer rolls the journal back first
        assert sorted(s) == ["keep", "old"]
        np.testing.assert_array_equal(s["old"], old)
    assert Path(filename).read_bytes() == before
    assert not os.path.exists(filename + ".journal")
    tinystore.save({"after": 1}, filename, path="after")
    assert tinystore.load(filename, path="after") == {"after": 1}


def test_hdf5_datasets_are_plain_h5py_datasets(tmp_path):
    filename = str(tmp_path / "store.h5")
    values = {
        "f8": np.arange(1000.0).reshape(10, 100),
        "f4_fortran": np.asfortranarray(np.arange(1200, dtype=np.float32).reshape(30, 40)),
        "bool": np.arange(5000) % 3 == 0,
        "struct": np.zeros(300, dtype=[("x", "<f8"), ("n", "<i2")]),
        "big_endian": np.arange(400, dtype=">i8"),
        "empty": np.zeros((0, 500)),
        "bytes": bytes(range(256)) * 20,
    }
    tinystore.save(values, filename)
    loaded = tinystore.load(filename)
    for key, value in values.items():
        if isinstance(value, np.ndarray):
            assert loaded[key].dtype == value.dtype and loaded[key].flags.writeable
            assert loaded[key].flags.f_contiguous == value.flags.f_contiguous
            np.testing.assert_array_equal(loaded[key], value)
        else:
            assert loaded[key] == value
    with h5py.File(filename, "r") as f:
        names = {}
        f.visititems(lambda name, obj: names.update({name: obj}))
        arrays = [obj for obj in names.values() if isinstance(obj, h5py.Dataset) and obj.ndim]
        assert len(arrays) == len(values) - 1  # the empty array is in its record
        for ds in arrays:
            assert ds.chunks is None and ds.compression is None  # contiguous, as h5py makes it
        assert any(ds.dtype == np.dtype(">i8") for ds in arrays)


def test_hdf5_compression_still_applies(tmp_path):
    filename = str(tmp_path / "store.h5")
    tinystore.save({"x": np.zeros(100_000)}, filename, compression="gzip")
    assert os.path.getsize(filename) < 100_000
    np.testing.assert_array_equal(tinystore.load(filename)["x"], np.zeros(100_000))


# -- .npy files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        np.arange(3000.0).reshape(30, 100),
        np.asfortranarray(np.arange(3000.0).reshape(30, 100)),
        np.zeros(400, dtype=[("x", "<f8"), ("n", "<i2")]),
        np.arange(1000, dtype=">i4"),
    ],
    ids=["c", "fortran", "struct", "big-endian"],
)
@pytest.mark.parametrize("version", [(1, 0), (2, 0), (3, 0)])
def test_json_reads_npy_files_numpy_wrote_in_any_version(tmp_path, value, version):
    """Arrays are read fast when the header is the one tinystore writes, and still
    read (numpy parses the header) when another tool rewrote the file."""
    store = tmp_path / "store.json"
    tinystore.save({"v": value}, store)
    (npy,) = store.glob("*.npy")
    with open(npy, "wb") as f:
        np.lib.format.write_array(f, value, version=version)
    loaded = tinystore.load(store)["v"]
    assert loaded.dtype == value.dtype and loaded.flags.writeable
    np.testing.assert_array_equal(loaded, value)


def test_json_external_written_in_place_and_read_into_its_own_memory(tmp_path):
    store = tmp_path / "store.json"
    value = np.arange(100_000.0)
    tinystore.save({"v": value}, store)
    (npy,) = store.glob("*.npy")
    np.testing.assert_array_equal(np.load(npy), value)  # a plain .npy file
    assert not list(store.glob("@tmp-*")) and not (store / "@journal").exists()
    loaded = tinystore.load(store)["v"]
    assert loaded.flags.writeable
    assert loaded.base is None or type(loaded.base) is np.ndarray  # numpy's memory
    np.testing.assert_array_equal(loaded, value)


def test_json_npy_shorter_than_its_header_says(tmp_path):
    store = tmp_path / "store.json"
    tinystore.save({"v": np.arange(100_000.0)}, store)
    (npy,) = store.glob("*.npy")
    npy.write_bytes(npy.read_bytes()[:-8])
    with pytest.raises(tinystore.errors.CorruptStoreError, match="shorter"):
        tinystore.load(store)


class _CountingH5f:
    """``hdf5.h5f`` with ``open`` counted."""

    def __init__(self):
        self.opens = 0

    def __getattr__(self, name):
        return getattr(h5py.h5f, name)

    def open(self, *args, **kwargs):
        self.opens += 1
        return h5py.h5f.open(*args, **kwargs)


def test_hdf5_load_and_save_open_the_file_once(tmp_path, monkeypatch):
    fn = str(tmp_path / "once.h5")
    tinystore.save({"a": [1, 2]}, fn)
    counting = _CountingH5f()
    monkeypatch.setattr(hdf5, "h5f", counting)
    assert tinystore.load(fn) == {"a": [1, 2]}
    assert counting.opens <= 1  # (none: records only, read without HDF5, see hdf5_records)
    counting.opens = 0
    tinystore.save({"b": 3}, fn)
    assert counting.opens <= 2  # the ours-check (read-only), then the write session
    # tinystore.open still checks at once
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = 1
    with pytest.raises(tinystore.errors.NotAStoreError):
        tinystore.open(foreign, "r")
    monkeypatch.undo()
    before = foreign.read_bytes()
    for op in (lambda: tinystore.load(foreign), lambda: tinystore.save(1, foreign)):
        with pytest.raises(tinystore.errors.NotAStoreError, match="not a tinystore file"):
            op()
    assert foreign.read_bytes() == before


# -- JSON records are replaced without renaming over an existing file ----------------
def _json_store(tmp_path):
    root = tmp_path / "store.json"
    tinystore.save({"v": 1, "sub": {"k": [1, 2]}}, str(root), path="a")
    tinystore.save({"w": 2}, str(root), path="b")
    return root


def test_json_record_replacement_leaves_no_previous_record(tmp_path):
    root = _json_store(tmp_path)
    tinystore.save({"v": 3}, str(root), path="a")
    assert not list(root.rglob("@record.prev.json"))
    assert tinystore.load(str(root), path="a") == {"v": 3}


@pytest.mark.parametrize("where", ["root", "group"])
def test_json_writer_killed_between_the_renames(tmp_path, where):
    # the state a writer leaves when killed after the old record stepped aside
    # and before the new one took its place: readers read the previous record
    root = _json_store(tmp_path)
    folder = root if where == "root" else next(p for p in root.iterdir() if p.is_dir())
    before = {p: tinystore.load(str(root), path=p) for p in ("a", "b")}
    (folder / "@record.json").rename(folder / "@record.prev.json")
    assert {p: tinystore.load(str(root), path=p) for p in ("a", "b")} == before
    with tinystore.open(str(root), "r") as s:
        assert sorted(s) == ["a", "b"]
    # the next writer puts a record in place and the previous one goes
    tinystore.save({"v": 4}, str(root), path="a")
    assert tinystore.load(str(root), path="a") == {"v": 4}
    assert tinystore.load(str(root), path="b") == before["b"]
    # a previous record stays only where no record came back (a group not written since)
    for previous in root.rglob("@record.prev.json"):
        assert not (previous.parent / "@record.json").exists()
    assert not (root / "@record.prev.json").exists()


def test_json_writer_killed_after_the_new_record_took_its_place(tmp_path):
    root = _json_store(tmp_path)
    stale = root / "@record.prev.json"
    stale.write_bytes(b'{"tinystore":[1,0],"nodes":[{"g":1,"c":{}}]}')  # an older root
    assert sorted(tinystore.open(str(root), "r")) == ["a", "b"]  # the record wins
    tinystore.save(5, str(root), path="c")
    assert not stale.exists()
    assert tinystore.load(str(root), path="c") == 5


def test_json_store_is_recognised_while_its_root_record_is_being_replaced(tmp_path):
    # opening a store checks for its record without the lock; a writer replaces
    # it by two renames meanwhile: the store must never look like a non-store
    from tinystore.storage.jsondir import is_store_dir

    root = str(tmp_path / "busy.json")
    tinystore.save(1, root)
    physical = tinystore.open(root)._store.physical
    record = b'{"tinystore":[1,0],"nodes":[{"g":1,"c":{}}]}'
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            physical.write_record((), record)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        misses = sum(not is_store_dir(root) for _ in range(30_000))
    finally:
        stop.set()
        writer.join()
    assert misses == 0
