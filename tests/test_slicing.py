"""Lazy array access: node views and ``load(slice=...)`` read only what they select."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
from conftest import FILE_BACKENDS

import tinystore
from tinystore.errors import CorruptStoreError, NodeNotFoundError

BIG = np.arange(1_000_000, dtype=np.float64).reshape(1000, 1000)
SELECTIONS = [
    np.s_[0:10],
    np.s_[..., 3],
    np.s_[5],
    np.s_[3, 4],
    np.s_[2:800:7, 1::50],
    np.s_[[1, 5, 7]],
    np.s_[::-1, 0],  # HDF5 cannot: read whole, then indexed
    np.s_[[7, 1]],  # unsorted: likewise
    BIG[:, 0] % 3 == 0,  # a boolean mask of rows
    np.s_[-3, 2:5],
    np.s_[:, [-1, 2, 2]],  # negative and repeated indices
]


def _same(got, expected):
    assert type(got) is type(expected)
    assert got.dtype == expected.dtype and np.array_equal(got, expected)
    if isinstance(got, np.ndarray):
        assert got.shape == expected.shape and got.flags.writeable


@pytest.mark.parametrize("selection", SELECTIONS, ids=range(len(SELECTIONS)))
def test_a_node_view_slices_like_numpy(filename, selection):
    small = np.arange(12, dtype=np.int16).reshape(3, 4)  # inline in its record
    tinystore.save({"x": BIG, "f": np.asfortranarray(BIG[:50]), "small": small}, filename)
    with tinystore.open(filename, "r") as s:
        _same(s.node("x")[selection], BIG[selection])
        if not isinstance(selection, np.ndarray):
            _same(
                s.node("f")[selection[:1] if type(selection) is tuple else 3],
                BIG[:50][selection[:1] if type(selection) is tuple else 3],
            )
        _same(s.node("small")[1:, 2], small[1:, 2])
        assert s.node("x").shape == BIG.shape  # a view still describes it


def test_a_slice_is_a_copy_of_its_own(filename):
    tinystore.save({"x": BIG}, filename)
    part = tinystore.load(filename, path="x", slice=np.s_[0:3])
    part[:] = -1
    assert tinystore.load(filename, path="x", slice=np.s_[0, 0]) == 0.0
    assert part.base is None or not isinstance(part.base, np.memmap)


def test_load_with_slice(filename):
    with tinystore.open(filename, "w") as s:
        s["runs/a/forces"] = BIG
        s["runs/a/energy"] = -1.5
    _same(tinystore.load(filename, path="runs/a/forces", slice=np.s_[2:4, 5]), BIG[2:4, 5])
    with pytest.raises(TypeError, match="not an array"):
        tinystore.load(filename, path="runs/a/energy", slice=np.s_[0])
    with pytest.raises(NodeNotFoundError):
        tinystore.load(filename, path="runs/a/missing", slice=np.s_[0])
    with pytest.raises(TypeError, match="path"):
        tinystore.load(filename, slice=np.s_[0])


@pytest.mark.parametrize("value", [b"x" * 5000, 3.5, {"a": 1}, [1, 2, 3], "text"])
def test_slicing_a_node_that_is_no_array_is_a_type_error(filename, value):
    tinystore.save(value, filename, path="v")
    with tinystore.open(filename, "r") as s:
        view = s.node("v")
        for selection in (np.s_[0:3], np.s_[..., 0], (0, 1), np.array([True])):
            with pytest.raises(TypeError, match="not an array"):
                view[selection]


def _bytes_read() -> int:
    with open("/proc/self/io") as f:
        return int(next(line for line in f if line.startswith("rchar")).split()[1])


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="counts reads on Linux")
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_a_slice_reads_only_the_bytes_it_needs(filename, backend):
    """Bytes read by this process (rchar: every read(2), HDF5's and zarr's
    included) stay far below the array's 8 MB; reading the whole array reads
    them all.  Zarr reads whole chunks (250 x 250 by default, compressed):
    the one chunk the slice lies in, a sixteenth of the array."""
    data = np.random.default_rng(6).random(BIG.shape)  # zarr cannot compress it away
    tinystore.save({"x": data}, filename)
    with tinystore.open(filename, "r") as s:
        s.node("x")  # the records are read
        before = _bytes_read()
        part = s.node("x")[0:10, 5:15]
        sliced = _bytes_read() - before
        before = _bytes_read()
        whole = s["x"]
        everything = _bytes_read() - before
    assert np.array_equal(part, data[0:10, 5:15]) and np.array_equal(whole, data)
    # JSON: a memory map (its page faults are no read(2) calls at all)
    # zarr compresses even random floats by a few percent
    limit = 1.1 * data.nbytes / 16 if backend == "zarr" else 200_000
    assert sliced < limit and everything >= 0.9 * data.nbytes


def test_a_damaged_chunk_outside_the_slice_does_not_matter(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save({"x": BIG}, filename, compression="gzip")
    with h5py.File(filename, "r") as f:
        (name,) = [n for n in f if n != "@record"]
        last = f[name].id.get_chunk_info(f[name].id.get_num_chunks() - 1)
    with open(filename, "r+b") as f:
        f.seek(last.byte_offset)
        f.write(b"\xff" * min(64, last.size))
    _same(tinystore.load(filename, path="x", slice=np.s_[0:10]), BIG[0:10])
    with pytest.raises(CorruptStoreError):
        tinystore.load(filename, path="x")
