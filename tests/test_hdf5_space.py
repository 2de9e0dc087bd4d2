"""HDF5 files reuse the space of replaced and deleted data (persistent free-space tracking);
the growth tests of every file backend are in test_space_reuse.py."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import UnsupportedValueError
from tinystore.storage.base import Tree
from tinystore.storage.hdf5 import FREE_SPACE


def test_new_files_track_free_space_persistently(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save({"x": 1}, filename)
    with h5py.File(filename, "r") as f:
        strategy, persist, threshold = f.id.get_create_plist().get_file_space_strategy()
    assert (strategy, persist, threshold) == (h5py.h5f.FSPACE_STRATEGY_FSM_AGGR, True, 1)
    assert FREE_SPACE["fs_persist"] is True


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
