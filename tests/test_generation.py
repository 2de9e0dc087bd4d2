"""The store's generation: an open handle keeps the records it read while
nobody writes, and reads them again as soon as anybody (this process or
another) has written -- see ``tinystore.storage.locking``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import tinystore
from tinystore.storage import HDF5Storage, JSONDirStorage
from tinystore.storage.locking import StoreLock

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "helpers"))
from procs import child_env  # noqa: E402


@pytest.fixture(params=["hdf5", "json"])
def location(request, tmp_path):
    return str(tmp_path / ("s.h5" if request.param == "hdf5" else "s.json"))


def _counting(store) -> list:
    """Count the records read from the file by ``store`` (its own method, wrapped)."""
    physical = store.root_group()._store.physical
    calls: list = []
    read = physical.read_record

    def counted(gpath):
        calls.append(gpath)
        return read(gpath)

    physical.read_record = counted
    return calls


def test_an_unchanged_store_is_not_read_again(location):
    with tinystore.open(location, "w") as s:
        s["a"] = {"x": 1}
        s["b"] = [1, 2.5, "z"]
        assert s["a"] == {"x": 1}  # each record read once
        calls = _counting(s)
        for _ in range(3):
            assert s["a"] == {"x": 1}
            assert s["b"] == [1, 2.5, "z"]
            s["c"] = 3  # its own writes keep the cache good
        assert calls == []
    with tinystore.open(location, "r") as s:
        calls = _counting(s)
        assert s["b"] == [1, 2.5, "z"]
        assert s["b"] == [1, 2.5, "z"]  # a handle's first session leaves no stamp
        first = len(calls)
        assert first >= 1
        assert s["b"] == [1, 2.5, "z"] and s["c"] == 3
        assert len(calls) == first


def test_a_write_through_another_handle_is_seen(location):
    a = tinystore.open(location, "w")
    b = tinystore.open(location)
    a["k"] = {"v": 1}
    assert b["k"] == {"v": 1}
    calls = _counting(b)
    a["k"] = {"v": 2}
    assert b["k"] == {"v": 2}
    assert calls  # read again: a wrote
    b["j"] = 5  # b's write starts from a's state, nothing of a's is lost
    assert a["k"] == {"v": 2} and a["j"] == 5
    a.close()
    b.close()


def test_a_write_by_another_process_is_seen(location):
    with tinystore.open(location, "w") as s:
        s["k"] = {"v": 1}
        assert s["k"] == {"v": 1}
        code = (
            "import tinystore\n"
            f"with tinystore.open({location!r}) as t:\n"
            "    t['k'] = {'v': 2}\n"
            "    t['new'] = [1, 2]\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
        assert s["k"] == {"v": 2}
        assert s["new"] == [1, 2]
        s["mine"] = 3  # written over the other process's state, not an old copy
    with tinystore.open(location, "r") as s:
        assert dict(s.items()) == {"k": {"v": 2}, "new": [1, 2], "mine": 3}


def test_a_failed_write_makes_the_next_session_read_again(location):
    with tinystore.open(location, "w") as s:
        s["k"] = 1
        assert s["k"] == 1
        with pytest.raises(RuntimeError), s.batch():
            s["k"] = 2
            raise RuntimeError("interrupted")
        calls = _counting(s)
        assert s["k"] == 1
        assert calls  # the state a failed session leaves is not trusted


@pytest.mark.parametrize("opener", [HDF5Storage, JSONDirStorage])
def test_a_lock_file_without_a_generation_is_never_trusted(opener, tmp_path):
    location = str(tmp_path / ("s.h5" if opener is HDF5Storage else "s.json"))
    s = opener(location, mode="w")
    s["k"] = 1
    lock = location + ".lock" if opener is HDF5Storage else os.path.join(location, "@lock")
    assert os.path.getsize(lock) == 8  # every write session writes a new generation
    before = open(lock, "rb").read()
    s["k"] = 2
    assert open(lock, "rb").read() != before
    os.truncate(lock, 0)  # as a writer leaves it when it cannot write one
    calls = _counting(s)
    assert s["k"] == 2
    assert s["k"] == 2
    assert len(calls) >= 2  # read in each session
    s.close()


def test_generation_of_a_lock(tmp_path):
    lock = StoreLock(tmp_path / "x.lock", "x", 1.0, readonly=False)
    assert lock.generation() is None  # not held
    lock.acquire()
    assert lock.generation() is None  # a new lock file holds none
    value = lock.new_generation()
    assert value is not None and lock.generation() == value
    assert lock.new_generation() == (int.from_bytes(value, "little") + 1).to_bytes(8, "little")
    lock.release()
    lock.acquire(shared=True)
    assert lock.new_generation() is None  # only a writer writes one
    assert lock.generation() is not None
    lock.release()


def test_two_saves_in_one_session_of_a_new_file_leave_nothing_behind(tmp_path):
    """The first save of a new HDF5 file lists nothing to delete (the session
    made the file); a second save in that session must list the first's."""
    import h5py
    import numpy as np

    from tinystore.storage.base import Tree

    location = str(tmp_path / "new.h5")
    s = HDF5Storage(location, mode="w", check=False)
    with s.batch():
        s.replace_root(Tree({}, {"a": np.arange(50_000), "b": np.ones(40_000)}))
        s.replace_root(Tree({}, {"a": np.arange(30_000)}))
    s.close()
    with h5py.File(location, "r") as f:
        names = sorted(f)
        assert len(names) == 2 and names[0] == "@record"  # the first save's leaves went
        assert f[names[1]].shape == (30_000,)
    t = HDF5Storage(location, mode="r")
    assert np.array_equal(t.read_tree().children["a"], np.arange(30_000))
    t.close()


def test_a_handle_removes_what_a_killed_writer_left_before_it_opened(tmp_path):
    """The generation says whether anybody wrote since this handle's last
    session, not whether temporary files were left before it: the first
    write session of every handle clears them (a stray one here stands for a
    writer killed before the handle opened)."""
    location = str(tmp_path / "s.json")
    with tinystore.open(location, "w") as s:
        s["k"] = 1
    stray = os.path.join(location, "@tmp-" + "0" * 32)
    with open(stray, "wb") as f:
        f.write(b"half a record")
    with tinystore.open(location) as s:
        assert s["k"] == 1
        assert s["k"] == 1  # a stamped session: the cache is trusted from here
        assert os.path.exists(stray)  # readers never remove anything
        s["j"] = 2
        assert not os.path.exists(stray)
        code = (  # a writer killed half-way through a batch, leaving a temporary file
            "import os, tinystore\n"
            f"s = tinystore.open({location!r})\n"
            "with s.batch():\n"
            "    s['x'] = 1\n"
            f"    open({stray!r}, 'wb').write(b'half a record')\n"
            "    os._exit(1)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], env=child_env())
        assert proc.returncode == 1 and os.path.exists(stray)
        s["k"] = 3
        assert not os.path.exists(stray)
    with tinystore.open(location, "r") as s:
        assert dict(s.items()) == {"k": 3, "j": 2}


def test_two_handles_both_see_another_process_write(tmp_path):
    """A handle that read (and keeps its records) and a new handle both see
    what another process wrote meanwhile.  (HDF5 shares one open file, caches
    included, between the opens of a file in a process: keeping a file open
    between operations would hand the new handle the state from before.)"""
    location = str(tmp_path / "s.h5")
    with tinystore.open(location, "w") as s:
        for i in range(20):
            s[f"k{i}"] = {"v": i}
    a = tinystore.open(location, "r")
    assert a["k0"] == {"v": 0} and a["k1"] == {"v": 1}
    code = (
        "import tinystore\n"
        f"with tinystore.open({location!r}) as t:\n"
        "    for i in range(20):\n"
        "        t[f'k{i}'] = {'v': -i, 'more': list(range(i))}\n"
        "    t['new'] = 1\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
    b = tinystore.open(location, "r")
    assert b["new"] == 1
    assert [b[f"k{i}"]["v"] for i in range(20)] == [-i for i in range(20)]
    assert [a[f"k{i}"]["v"] for i in range(20)] == [-i for i in range(20)]
    a.close()
    b.close()
