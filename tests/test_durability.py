"""``durable=True``: fsync in commit order, checked on the recorded sequence of
system calls; by default no fsync at all.  And no orphans: a writer killed
between the two renames of a JSON record leaves nothing behind the next
writer does not settle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinystore
from tinystore.errors import BackendError
from tinystore.storage import journal

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402


@pytest.fixture
def trace():
    journal.TRACE = []
    try:
        yield journal.TRACE
    finally:
        journal.TRACE = None


def _index(trace: list, call: str, path: str, start: int = 0) -> int:
    for i in range(start, len(trace)):
        if trace[i][0] == call and trace[i][1] == os.fspath(path):
            return i
    raise AssertionError(f"no {call} of {path} after step {start} in {trace}")


def test_json_durable_fsyncs_files_then_names_then_records(tmp_path, trace):
    root = tmp_path / "store.json"
    tinystore.save(1, str(root), path="x")
    trace.clear()
    tinystore.save({"a": np.arange(1000.0), "b": 1}, str(root), path="obj", durable=True)
    (group,) = [p for p in root.iterdir() if p.is_dir()]
    (array,) = group.glob("*.npy")
    # the array's data, then the names in its directory, then the record naming it
    data = _index(trace, "fsync", array)
    names = _index(trace, "fsync", group, data)
    group_record = _index(trace, "rename", group / "@record.json", names)
    tmp = trace[group_record][2]
    assert _index(trace, "fsync", tmp) < group_record  # the new record's bytes first
    # the new group's directory entry and record on the disk before the root record
    group_named = _index(trace, "fsync", group, group_record)
    root_names = _index(trace, "fsync", root, group_record)
    root_record = _index(trace, "rename", root / "@record.json", max(group_named, root_names))
    assert _index(trace, "fsync", trace[root_record][2]) < root_record
    _index(trace, "fsync", root, root_record)  # and the root record's own entry after it
    assert tinystore.load(str(root), path="obj")["b"] == 1


@pytest.mark.parametrize("size", [10, 100_000])  # whole-file journal, page journal
def test_hdf5_durable_fsyncs_journal_file_then_removal(tmp_path, trace, size):
    store = tmp_path / "store.h5"
    tinystore.save(np.arange(size, dtype=float), str(store), path="x")
    trace.clear()
    tinystore.save(np.arange(size, dtype=float) + 1, str(store), path="x", durable=True)
    jpath, folder = f"{store}.journal", str(tmp_path)
    first = _index(trace, "fsync", jpath)
    named = _index(trace, "fsync", folder, first)  # the journal's name before any change
    data = _index(trace, "fsync", store, named)  # the file complete on the disk
    gone = _index(trace, "unlink", jpath, data)  # then the commit point
    _index(trace, "fsync", folder, gone)  # made durable
    assert not os.path.exists(jpath)
    assert np.array_equal(tinystore.load(str(store), path="x"), np.arange(size) + 1.0)


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_default_is_not_durable(tmp_path, trace, backend):
    store = str(tmp_path / ("s.h5" if backend == "hdf5" else "s.json"))
    tinystore.save({"a": np.arange(1000.0)}, store, path="x")
    with tinystore.open(store) as s:
        s["y"] = np.arange(2000.0)
    assert not [t for t in trace if t[0] == "fsync"]


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_durable_open_keeps_every_write_durable(tmp_path, trace, backend):
    store = str(tmp_path / ("s.h5" if backend == "hdf5" else "s.json"))
    with tinystore.open(store, durable=True) as s:
        s["x"] = 1
        trace.clear()
        s["y"] = np.arange(2000.0)
        assert [t for t in trace if t[0] == "fsync"]
        trace.clear()
        del s["x"]
        assert [t for t in trace if t[0] == "fsync"]
    assert tinystore.load(store, path="y").shape == (2000,)


def test_memory_refuses_durable():
    with pytest.raises(BackendError):
        tinystore.open("memory://durable-test", durable=True)


_KILLED_BETWEEN_RENAMES = """
import os, signal, sys
import tinystore
store = sys.argv[1]
real = os.rename
def rename(src, dst):
    folder = os.path.dirname(dst)
    if os.path.basename(dst) == "@record.json" and os.path.basename(src).startswith("@tmp-") \\
            and os.path.abspath(folder) != os.path.abspath(store):
        os.kill(os.getpid(), signal.SIGKILL)  # the old record stepped aside, the new not in
    real(src, dst)
os.rename = rename
tinystore.save(2, store, path="a/v")  # a partial update: a's group record is replaced
"""


def test_json_leftover_previous_record_is_settled_by_the_next_writer(tmp_path):
    root = tmp_path / "store.json"
    tinystore.save({"v": 1, "sub": {"k": [1, 2]}}, str(root), path="a")
    tinystore.save({"w": 2}, str(root), path="b")
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_BETWEEN_RENAMES, str(root)], env=child_env()
    )
    assert proc.returncode == -signal.SIGKILL
    assert list(root.rglob("@record.prev.json"))  # the killed writer's leftover
    assert tinystore.load(str(root), path="a") == {"v": 1, "sub": {"k": [1, 2]}}
    tinystore.save(3, str(root), path="c")  # the next writer writes elsewhere
    assert not list(root.rglob("@record.prev.json"))
    assert not list(root.rglob("@tmp-*")) and not (root / "@journal").exists()
    assert tinystore.load(str(root), path="a") == {"v": 1, "sub": {"k": [1, 2]}}
    assert tinystore.load(str(root), path="b") == {"w": 2}


def test_json_durable_batch_of_several_groups_fsyncs_the_intent_first(tmp_path, trace):
    root = tmp_path / "store.json"
    with tinystore.open(str(root), "w") as s:
        for g in "ab":
            s.create_group(g)
            s[g + "/x"] = 0
    trace.clear()
    with tinystore.open(str(root), durable=True) as s, s.batch():
        s["a/x"] = 1
        s["b/x"] = 1
    intent = root / "@commit.json"
    placed = _index(trace, "rename", intent)  # the commit point
    assert _index(trace, "fsync", trace[placed][2]) < placed  # written whole first
    renames = []
    for group in [p for p in root.iterdir() if p.is_dir()]:
        renamed = _index(trace, "rename", group / "@record.json", placed)
        assert _index(trace, "fsync", trace[renamed][2]) < placed  # each new record
        renames.append((renamed, group))
    root_synced = _index(trace, "fsync", root, placed)  # the intent's name on the disk
    assert root_synced < min(renames)[0]  # before any record is replaced
    gone = _index(trace, "unlink", intent, max(renames)[0])
    for renamed, group in renames:  # the records' names on the disk before it goes
        assert _index(trace, "fsync", group, renamed) < gone
    _index(trace, "fsync", root, gone)
    assert not intent.exists()
    assert tinystore.load(str(root), path="a/x") == tinystore.load(str(root), path="b/x") == 1
