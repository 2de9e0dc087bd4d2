"""HDF5 files reuse the space of replaced and deleted data (persistent free-space tracking)."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import UnsupportedValueError
from tinystore.storage.base import Tree
from tinystore.storage.hdf5 import FREE_SPACE

MB8 = 1_000_000  # float64 items in 8 MB


def test_new_files_track_free_space_persistently(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save({"x": 1}, filename)
    with h5py.File(filename, "r") as f:
        strategy, persist, threshold = f.id.get_create_plist().get_file_space_strategy()
    assert (strategy, persist, threshold) == (h5py.h5f.FSPACE_STRATEGY_FSM_AGGR, True, 1)
    assert FREE_SPACE["fs_persist"] is True


def test_replacing_an_array_ten_times_does_not_grow_the_file(tmp_path):
    filename = tmp_path / "run.h5"
    data = np.random.default_rng(0).random(MB8)
    tinystore.save({"x": data, "y": 1}, filename)
    one_copy = os.path.getsize(filename)
    for i in range(10):
        tinystore.save(data + i, filename, path="x")  # a new file handle each time
    # the old copy is freed before the new one is written (the session's
    # rollback journal keeps it for a crash), so the new one takes its place
    assert os.path.getsize(filename) < 1.5 * one_copy
    assert np.array_equal(tinystore.load(filename, path="x"), data + 9)


def test_adding_and_deleting_reuses_space(tmp_path):
    filename = tmp_path / "run.h5"
    data = np.random.default_rng(1).random(MB8)
    tinystore.save({"keep": 1}, filename)
    with tinystore.open(filename) as s:
        s["k"] = data
        del s["k"]
    after_one = os.path.getsize(filename)
    for _ in range(10):
        with tinystore.open(filename) as s:
            s["k"] = data
            del s["k"]
    assert os.path.getsize(filename) < after_one + 0.2 * data.nbytes
    assert tinystore.load(filename, path="keep") == 1


@pytest.mark.parametrize("how", ["path", "root", "after_a_commit"])
def test_a_failed_replacement_keeps_the_old_data(filename, how):
    """The old data may be freed before the new is written (HDF5): a write that
    fails half-way, after the new data was written, puts it all back, on every
    backend, alone or after other writes of the same session."""
    old = np.random.default_rng(2).random(100_000)
    tinystore.save({"x": old, "y": [1, 2]}, filename)
    bad = Tree({}, {"a": old + 1, "bad": object()})  # fails after "a" is written
    with tinystore.open(filename) as s, s.hold():
        if how == "after_a_commit":
            s["z"] = old + 2  # a transaction of this session commits first
        with pytest.raises(UnsupportedValueError):
            if how == "root":
                s.replace_root(Tree({}, {"x": old + 3, "z": bad}))
            else:
                s["x"] = bad
    loaded = tinystore.load(filename)
    assert type(loaded["x"]) is np.ndarray and np.array_equal(loaded["x"], old)
    assert loaded["y"] == [1, 2]
    assert ("z" in loaded) == (how == "after_a_commit")
