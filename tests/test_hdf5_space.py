"""HDF5 files reuse the space of replaced and deleted data (persistent free-space tracking)."""

from __future__ import annotations

import os

import h5py
import numpy as np

import tinystore
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
    # the new copy is written before the old one is let go (a crash keeps one
    # of them whole), so two copies is the most the file ever needs
    assert os.path.getsize(filename) < 2.2 * one_copy
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
