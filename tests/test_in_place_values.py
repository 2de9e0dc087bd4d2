"""Small flat values assigned into a group live in the group's record.

``s[key] = value`` writes ``value`` in the record of the physical group it is
assigned into, instead of a physical group of its own, when its encoding is
one node of at most ``MAX_INPLACE_CHILDREN`` JSON values (a dict of
scalars, a short tuple or list of them): the size rule of docs/format.rst.
Everything else (nested containers, arrays and byte strings stored outside
the record, objects, more children) keeps a physical group.  Either way the
value reads, updates, deletes and browses the same, on every backend.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
from pathlib import Path

import h5py
import numpy as np
import orjson
import pytest

import tinystore
from tinystore.storage.record.packing import MAX_INPLACE_CHILDREN

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")

SMALL = {
    "dict": {"step": 3, "loss": 0.125, "tag": "train", "ok": True, "none": None},
    "tuple": (1, 2.5, "x"),
    "list": [1, "two", 3.0],
    "unicode": {"name": "Zürich", "big": 2**70, "inf": float("inf")},
    "empty dict": {},
    "widest": {f"k{i}": i for i in range(MAX_INPLACE_CHILDREN)},
    "class": pytest.approx,  # stored by reference: one node, no children
}
GROUPED = {
    "nested": {"a": {"b": 1}},
    "array": {"x": np.arange(1000.0)},
    "too wide": {f"k{i}": i for i in range(MAX_INPLACE_CHILDREN + 1)},
    "list of tuples": [(1, 2), (3, 4)],
    "set in a dict": {"s": {1, 2}},
}


def _physical_names(backend: str, location: str) -> set[str]:
    """The names at the top of the store that are physical groups."""
    if backend == "json":
        return {p.name for p in Path(location).iterdir() if p.is_dir()}
    if backend == "hdf5":
        with h5py.File(location, "r") as f:
            return {k for k in f if isinstance(f[k], h5py.Group) and "@record" in f[k]}
    raise AssertionError(backend)


def _same(got, expected) -> None:
    reference = pickle.loads(pickle.dumps(expected))
    assert type(got) is type(reference)
    if isinstance(reference, dict):
        assert list(got) == list(reference)
    assert got == reference


@pytest.mark.parametrize("name", SMALL)
def test_a_small_flat_value_is_in_its_groups_record(store, filename, backend, name):
    value = SMALL[name]
    store["v"] = value
    store["g"] = GROUPED["nested"]
    _same(store["v"], value)
    store.close()
    with tinystore.open(filename, "r") as s:
        _same(s["v"], value)
        assert "v" not in s.list_groups() and "g" not in s.list_groups()
        assert "v" in s.tree()
    if backend in ("json", "hdf5"):
        assert _physical_names(backend, filename) == {"g"}


@pytest.mark.parametrize("name", GROUPED)
def test_other_values_keep_a_physical_group(store, filename, backend, name):
    value = GROUPED[name]
    store["v"] = value
    got = store["v"]
    if isinstance(value, dict) and "x" in value:
        np.testing.assert_array_equal(got["x"], value["x"])
    else:
        _same(got, value)
    store.close()
    if backend in ("json", "hdf5"):
        assert _physical_names(backend, filename) == {"v"}


def test_in_place_values_read_update_delete_and_browse(store, filename):
    for i in range(20):
        store[f"step{i}"] = {"step": i, "loss": 0.5 / (i + 1), "tag": "train"}
    store["run"] = (1, 2, 3)
    assert store["step7/loss"] == 0.5 / 8
    store["step7/loss"] = 1.5  # a part updated in place
    store["step7/extra"] = {"deep": [1, {"x": 2}]}  # which may now hold anything
    del store["step8/tag"]
    del store["step9"]
    assert "step9" not in store and "step10" in store
    assert store["step8"] == {"step": 8, "loss": 0.5 / 9}
    assert store["step7"] == {
        "step": 7,
        "loss": 1.5,
        "tag": "train",
        "extra": {"deep": [1, {"x": 2}]},
    }
    assert list(store)[:3] == ["step0", "step1", "step2"]
    assert store.node("step3").to_object() == {"step": 3, "loss": 0.125, "tag": "train"}
    assert "step3" in store.tree() and store.list_groups() == []
    store.close()
    with tinystore.open(filename, "r") as s:
        assert len(s) == 20
        assert s["run"] == (1, 2, 3)
        assert s["step7/extra/deep"] == [1, {"x": 2}]
        assert tinystore.load(filename, path="step8") == {"step": 8, "loss": 0.5 / 9}


def test_a_group_value_replaced_by_an_in_place_one_and_back(store, filename, backend):
    store["k"] = {"x": np.arange(1000.0), "n": 1}
    store["k"] = {"n": 2}
    assert store["k"] == {"n": 2}
    if backend in ("json", "hdf5"):
        assert _physical_names(backend, filename) == set()
    store["k"] = {"x": np.ones(1000), "n": 3}
    assert store["k"]["n"] == 3 and store["k"]["x"].sum() == 1000
    if backend in ("json", "hdf5"):
        assert _physical_names(backend, filename) == {"k"}
    store.close()
    assert tinystore.load(filename, path="k/n") == 3


def test_in_place_values_in_a_created_group(store, filename, backend):
    g = store.create_group("runs")
    g["a"] = {"e": -1.5}
    with store.batch():
        g["b"] = {"e": -2.5}
        store["runs/c"] = [1, 2]
    store.close()
    with tinystore.open(filename, "r") as s:
        assert s["runs/a"] == {"e": -1.5} and s["runs/b"] == {"e": -2.5}
        assert s["runs/c"] == [1, 2]
        assert s["runs"].is_group
    if backend == "json":
        assert [p.name for p in Path(filename, "runs").iterdir() if p.is_dir()] == []


def _assign(store: str) -> None:
    with tinystore.open(store) as s:
        s["k"] = {"v": 2, "tag": "new"}


def _snapshot(store: str, mode: str = "r"):
    with tinystore.open(store, mode) as s:
        return s["k"], s["other"]


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize("backend", ["json", "hdf5"])
def test_an_in_place_assignment_killed_at_every_step_is_old_or_new(backend, tmp_path):
    store = str(tmp_path / ("s.json" if backend == "json" else "s.h5"))

    def make():
        with tinystore.open(store, "w") as s:
            s["k"] = {"v": 1, "tag": "old"}
            s["other"] = {"x": np.arange(1000.0)}

    make()
    status, out = bw.forked(store, "count", job=_assign)
    assert status == 0, out
    steps = int(out.split()[1])
    seen = set()
    for n in range(1, steps + 1):
        make()
        status, out = bw.forked(store, "kill", n, job=_assign)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        k, other = _snapshot(store)  # a reader first: it never writes
        assert k in ({"v": 1, "tag": "old"}, {"v": 2, "tag": "new"}), n
        np.testing.assert_array_equal(other["x"], np.arange(1000.0))
        with tinystore.open(store) as s:  # the next writer
            s["z"] = 1
        assert _snapshot(store, "a")[0] == k, n
        if backend == "json":
            left = [
                p.name
                for pattern in ("@tmp-*", "@record.prev.json", "@journal")
                for p in Path(store).rglob(pattern)
            ]
            assert left == [], n
        seen.add(k["v"])
    # JSON: kills before and after the record's rename; HDF5's commit point is
    # the removal of its journal, the last step
    assert seen == ({1} if backend == "hdf5" else {1, 2})


def test_replacing_in_place_values_leaves_no_nodes_behind(tmp_path):
    """Replaced or deleted in-place values leave no node in the record's
    table: it is that of a store that only ever held the final values (the
    metadata table may keep entries no node uses until the record is written
    whole, docs/format.rst)."""
    first, second = str(tmp_path / "a.json"), str(tmp_path / "b.json")
    with tinystore.open(first, "w") as s:
        s["saved"] = {"obj": {"deep": [1, (2, 3)]}}  # nodes of the table before them
        s["k"] = {"x": 1}
        s["gone"] = (1, 2)
        s["k"] = {"x": 2, "y": "z"}
        del s["gone"]
        s["g"] = {"x": np.arange(1000.0)}
        s["g"] = [4, 5]
    with tinystore.open(second, "w") as s:
        s["saved"] = {"obj": {"deep": [1, (2, 3)]}}
        s["k"] = {"x": 2, "y": "z"}
        s["g"] = [4, 5]
    records = [orjson.loads(Path(p, "@record.json").read_bytes()) for p in (first, second)]
    assert len(records[0]["nodes"]) == len(records[1]["nodes"]) == 1
    assert list(records[0]["nodes"][0]["c"]) == list(records[1]["nodes"][0]["c"])
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    for key in ("saved", "k", "g"):
        assert tinystore.load(first, path=key) == tinystore.load(second, path=key)
