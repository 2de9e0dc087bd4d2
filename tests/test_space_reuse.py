"""Files do not grow: replaced and deleted data give their space back, on
every file backend (HDF5: persistent free-space tracking; JSON and zarr: the
files of the old data are deleted), and ``compact`` removes leftovers."""

from __future__ import annotations

import os

import numpy as np
import pytest
from conftest import FILE_BACKENDS

import tinystore
from tinystore._compact import _size

MB8 = 1_000_000  # float64 items in 8 MB


@pytest.fixture(params=FILE_BACKENDS)
def backend(request) -> str:
    return request.param


def test_replacing_an_array_ten_times_does_not_grow_the_store(filename):
    data = np.random.default_rng(0).random(MB8)
    tinystore.save({"x": data, "y": 1}, filename)
    one_copy = _size(filename)
    assert one_copy > 0.9 * data.nbytes  # zarr compresses a little, not much (random data)
    for i in range(10):
        tinystore.save(data + i, filename, path="x")  # a new handle each time
    # HDF5: the old copy is freed before the new one is written (the session's
    # rollback journal keeps it for a crash), so the new one takes its place
    assert _size(filename) < 1.5 * one_copy
    assert np.array_equal(tinystore.load(filename, path="x"), data + 9)
    assert tinystore.load(filename, path="y") == 1


def test_adding_and_deleting_reuses_space(filename):
    data = np.random.default_rng(1).random(MB8)
    tinystore.save({"keep": 1}, filename)
    with tinystore.open(filename) as s:
        s["k"] = data
        del s["k"]
    after_one = _size(filename)
    for _ in range(10):
        with tinystore.open(filename) as s:
            s["k"] = data
            del s["k"]
    assert _size(filename) < after_one + 0.2 * data.nbytes
    assert tinystore.load(filename, path="keep") == 1
    with tinystore.open(filename, "r") as s:
        assert list(s) == ["keep"]


def _orphans(filename: str, backend: str) -> list[str]:
    """Leave what a writer killed half-way would: data no record refers to."""
    if backend == "hdf5":
        import h5py

        with h5py.File(filename, "a") as f:
            f["lost"] = np.arange(200_000.0)
        return ["lost"]
    if backend == "zarr":
        import zarr

        store = zarr.storage.LocalStore(filename)
        zarr.create_array(store, name="lost", data=np.random.default_rng(2).random(200_000))
        return ["lost"]
    np.save(os.path.join(filename, "lost.npy"), np.arange(200_000.0))
    return ["lost"]


def test_compact_removes_what_no_record_refers_to(filename, backend):
    content = {"x": np.arange(50_000.0), "n": [1, 2]}
    tinystore.save(content, filename)
    clean = _size(filename)
    expected = _orphans(filename, backend)
    assert _size(filename) > clean + 1_000_000
    done = tinystore.compact(filename)
    assert done["removed"] == expected
    assert done["after"] < clean + 100_000 and done["after"] == _size(filename)
    loaded = tinystore.load(filename)
    assert list(loaded) == ["x", "n"] and np.array_equal(loaded["x"], content["x"])
    assert loaded["n"] == [1, 2]
