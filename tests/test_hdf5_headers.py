"""HDF5 arrays and their folders have the smallest object headers HDF5 makes
(docs/format.rst, "The HDF5 layout"), and stay plain datasets of their dtype
and shape for h5py and h5dump."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from h5py import h5d, h5o

import tinystore
from tinystore.storage import hdf5_arrays
from tinystore.storage.hdf5 import SMALL_ARRAY_BYTES

RNG = np.random.default_rng(19)
VALUES = {
    "positions": RNG.random((60, 3)),  # 1440 bytes: compact
    "numbers": np.tile(np.array([1, 1, 8], dtype=np.int64), 20),  # 480 bytes
    "fortran": np.asfortranarray(RNG.random((4, 6))),  # 192 bytes, Fortran order
    "record": np.array([(1, 2.5)] * 10, dtype=[("n", "<i4"), ("x", "<f8")]),
    "when": np.arange(20).astype("datetime64[s]"),  # no HDF5 type: raw bytes
    "blob": bytes(range(256)) * 12,  # 3072 bytes (smaller ones stay in the record)
    "big": RNG.random(1000),  # 8000 bytes: contiguous
}


def _save(tmp_path):
    fn = tmp_path / "headers.h5"
    tinystore.save({"frame": {"arrays": VALUES}}, fn)
    return fn


def _header(obj) -> tuple:
    info = h5o.get_info(obj.id)
    return info, info.hdr


def test_the_library_is_reached_where_it_can_be():
    # (elsewhere, the headers are HDF5's default size: the tests below would fail)
    assert hdf5_arrays.hdf5_library() is not None or os.name != "posix"


@pytest.mark.skipif(os.name != "posix", reason="headers are HDF5's default size there")
def test_arrays_are_datasets_with_minimal_headers_and_no_timestamps(tmp_path):
    fn = _save(tmp_path)
    with h5py.File(fn, "r") as f:
        for name, value in VALUES.items():
            ds = f["frame/arrays"][name]
            assert isinstance(ds, h5py.Dataset)
            nbytes = value.nbytes if isinstance(value, np.ndarray) else len(value)
            assert nbytes > SMALL_ARRAY_BYTES
            compact = nbytes <= hdf5_arrays.COMPACT_ARRAY_BYTES
            assert name != "big" or not compact
            layout = ds.id.get_create_plist().get_layout()
            assert layout == (h5d.COMPACT if compact else h5d.CONTIGUOUS), name
            info, hdr = _header(ds)
            assert (info.mtime, info.ctime, info.atime, info.btime) == (0, 0, 0, 0)
            assert info.num_attrs == 0
            assert hdr.version == 2
            # HDF5 leaves room for one continuation message, nothing more (its
            # default reserves 256 bytes minus the messages)
            assert hdr.space.free <= 32, (name, hdr.space.free)
            if name != "record":  # (a compound type describes its fields)
                data = nbytes if compact else 0
                assert hdr.space.total - data <= 140, (name, hdr.space.total)


@pytest.mark.skipif(os.name != "posix", reason="headers are HDF5's default size there")
def test_folders_have_small_headers_without_timestamps(tmp_path):
    fn = _save(tmp_path)
    with h5py.File(fn, "r") as f:
        for path, links in (("frame", 1), ("frame/arrays", len(VALUES))):
            group = f[path]
            assert isinstance(group, h5py.Group) and len(group) == links
            info, hdr = _header(group)
            assert (info.mtime, info.ctime, info.atime, info.btime) == (0, 0, 0, 0)
            assert hdr.version == 2
        # a folder of one link: ~130 bytes (HDF5's default header: ~230)
        assert _header(f["frame"])[1].space.total <= 140
        # h5py lists a folder's names in the order they were written
        assert list(f["frame/arrays"]) == list(VALUES)


def test_h5py_reads_every_array_back_and_tinystore_loads_it_exactly(tmp_path):
    fn = _save(tmp_path)
    with h5py.File(fn, "r") as f:
        arrays = f["frame/arrays"]
        for name in ("positions", "numbers", "fortran", "record", "big"):
            value = VALUES[name]
            back = arrays[name][()]
            assert back.dtype == value.dtype and back.shape == value.shape, name
            np.testing.assert_array_equal(back, value)
        assert arrays["blob"][()].tobytes() == VALUES["blob"]
        assert arrays["when"].dtype == np.uint8  # raw bytes, the dtype in the record
    loaded = tinystore.load(fn)["frame"]["arrays"]
    expected = pickle.loads(pickle.dumps(VALUES))
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        got = loaded[name]
        assert type(got) is type(value), name
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype and got.shape == value.shape
            assert got.flags.f_contiguous == value.flags.f_contiguous
            assert got.flags.c_contiguous == value.flags.c_contiguous
            np.testing.assert_array_equal(got, value)
        else:
            assert got == value


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_h5dump_reads_a_compact_array(tmp_path):
    fn = _save(tmp_path)
    out = subprocess.run(
        ["h5dump", "-p", "-y", "-d", "/frame/arrays/numbers", "headers.h5"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    assert "H5T_STD_I64LE" in out and "SIMPLE { ( 60 ) / ( 60 ) }" in out
    assert re.search(r"STORAGE_LAYOUT \{\s*COMPACT", out)
    data = out[out.index("DATA {") :]
    numbers = [int(n) for n in re.findall(r"\b\d+\b", data[len("DATA {") :])]
    assert numbers == VALUES["numbers"].tolist()
    assert os.path.getsize(fn) > 0


def _frames(n: int) -> list:
    """Atoms-like frames: the folders and arrays a list of ``ase.Atoms`` with
    calculator results gives (without ase)."""
    rng = np.random.default_rng(0)
    numbers = np.tile(np.array([1, 1, 8]), 20)
    return [
        {
            "atoms": {
                "arrays": {"positions": rng.random((60, 3)), "numbers": numbers.copy()},
                "cell": {"array": np.eye(3) * 10.0},
            },
            "calc": {"results": {"forces": rng.random((60, 3)), "energy": float(rng.random())}},
        }
        for _ in range(n)
    ]


@pytest.mark.skipif(os.name != "posix", reason="headers are HDF5's default size there")
def test_a_trajectory_of_small_arrays_is_at_most_1_5x_pickle(tmp_path):
    frames = _frames(100)
    fn = tmp_path / "frames.h5"
    tinystore.save(frames, fn)
    size = os.path.getsize(fn)
    assert size <= 1.5 * len(pickle.dumps(frames, protocol=pickle.HIGHEST_PROTOCOL))
    # what HDF5 adds to the arrays and the record: ~135 bytes an object (was ~270)
    with h5py.File(fn, "r") as f:
        objects: list = []
        f.visititems(lambda name, obj: objects.append(obj))
        arrays = sum(o.nbytes for o in objects if isinstance(o, h5py.Dataset))
    assert len(objects) == 100 * (6 + 4) + 1  # folders and arrays, and the record
    assert (size - arrays) / len(objects) <= 160


@pytest.mark.skipif(os.name != "posix", reason="headers are HDF5's default size there")
def test_compressed_arrays_have_minimal_headers_too(tmp_path):
    fn = tmp_path / "gzip.h5"
    with tinystore.open(fn, "w", compression="gzip") as s:
        s["frame"] = {"arrays": {k: VALUES[k] for k in ("positions", "fortran", "big")}}
    with h5py.File(fn, "r") as f:
        for name in ("positions", "fortran", "big"):
            ds = f["frame/arrays"][name]
            assert ds.compression == "gzip" and ds.chunks is not None
            info, hdr = _header(ds)
            assert (info.mtime, info.ctime) == (0, 0)
            assert hdr.space.free <= 32, (name, hdr.space.free)
            np.testing.assert_array_equal(ds[()], VALUES[name])
    loaded = tinystore.load(fn, path="frame")["arrays"]
    assert loaded["fortran"].flags.f_contiguous
    np.testing.assert_array_equal(loaded["big"], VALUES["big"])


def test_arrays_in_folders_of_many_blocks_are_read_without_hdf5(tmp_path):
    """The version 2 headers of arrays and folders, a folder grown past its
    first block (five links: continuation blocks), read by ``hdf5_records``."""
    from h5py import h5f

    fn = tmp_path / "blocks.h5"
    value = {
        "f": {k: np.arange(20.0) + i for i, k in enumerate("abcde")},
        "g": {"x": {"y": VALUES["numbers"]}},
    }
    tinystore.save(value, fn)
    with h5py.File(fn, "r") as f:
        assert _header(f["f"])[1].nchunks > 1
    with tinystore.open(fn, "r") as s, s.hold():
        got = {"f": s["f"], "g": s["g"]}
        assert h5f.get_obj_count(h5f.OBJ_ALL, h5f.OBJ_FILE) == 0  # HDF5 never opened it
    for key, array in value["f"].items():
        assert got["f"][key].dtype == array.dtype
        np.testing.assert_array_equal(got["f"][key], array)
    np.testing.assert_array_equal(got["g"]["x"]["y"], VALUES["numbers"])


def test_a_damaged_version_2_header_is_left_to_hdf5(tmp_path):
    from tinystore.storage.hdf5 import _encoded_type
    from tinystore.storage.hdf5_records import open_reader

    fn = tmp_path / "damaged.h5"
    tinystore.save({"f": {"a": np.arange(20.0)}}, fn)
    with h5py.File(fn, "r") as f:
        address = h5o.get_info(f["f/a"].id).addr
    args = (("f", "a"), _encoded_type(np.dtype("<f8")), (20,), np.dtype("<f8"))
    reader = open_reader(str(fn))
    try:
        np.testing.assert_array_equal(reader.array(*args), np.arange(20.0))
    finally:
        reader.close()
    with open(fn, "r+b") as f:  # a byte of the array's header (its checksum no longer holds)
        f.seek(address + 20)
        byte = f.read(1)
        f.seek(address + 20)
        f.write(bytes([byte[0] ^ 0xFF]))
    reader = open_reader(str(fn))
    try:
        assert reader.array(*args) is None
    finally:
        reader.close()
