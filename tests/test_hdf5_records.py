"""Records read without the HDF5 library (``tinystore.storage.hdf5_records``).

A read session that needs only records reads them from the bytes HDF5 wrote;
the bytes must be exactly those HDF5 reads, and anything outside the layout
tinystore writes must be left to HDF5 (``None``), which then reads it or says
what is wrong with it, as before.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from h5py import h5f

import tinystore
from tinystore.errors import CorruptStoreError, UnsafeStoreError
from tinystore.storage.hdf5_records import lookup3, read_record

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

GOLDEN = Path(__file__).parent / "data" / "golden"
LIMIT = 1 << 30


def _h5py_records(fn: str) -> dict:
    """Every record of the file, as h5py reads it: {gpath: bytes}."""
    out = {}
    with h5py.File(fn, "r") as f:

        def visit(group, gpath):
            if "@record" in group:
                out[gpath] = group["@record"][()]
            for key in group:
                if key != "@record" and isinstance(group[key], h5py.Group):
                    visit(group[key], gpath + (key,))

        visit(f, ())
    return out


def _stores(tmp_path: Path) -> list[str]:
    small = str(tmp_path / "small.h5")
    tinystore.save({"a": 1, "b": [1.5, "x", None], "ü": {"é": b"\x00\x01"}}, small)
    big = str(tmp_path / "big.h5")  # a record of >60 KB: a contiguous dataset
    tinystore.save([{"i": i, "s": "x" * 10} for i in range(5000)], big)
    groups = str(tmp_path / "groups.h5")
    with tinystore.open(groups, "w") as s:
        run = s.create_group("Results").create_group("rün1")
        run["forces"] = np.arange(300.0)
        run["params"] = {"k": list(range(200))}
        s["text"] = "a" * 70_000  # the root record contiguous too
    return [small, big, groups]


def test_every_record_is_read_as_hdf5_reads_it(tmp_path):
    read = 0
    for fn in _stores(tmp_path):
        for gpath, data in _h5py_records(fn).items():
            got = read_record(fn, gpath, b"@record", LIMIT)
            assert got is not None, (fn, gpath)  # the layout tinystore writes
            assert type(got) is bytes and got == data
            read += 1
    assert read >= 6


def test_a_load_reads_no_hdf5_file_when_it_needs_records_only(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"a": {"b": [1, 2]}, "c": "x"}, fn)
    with tinystore.open(fn, "r") as s, s.hold():
        assert s["a"] == {"b": [1, 2]} and s["c"] == "x"
        assert h5f.get_obj_count(h5f.OBJ_ALL, h5f.OBJ_FILE) == 0  # HDF5 never opened it
    assert tinystore.load(fn) == {"a": {"b": [1, 2]}, "c": "x"}


def test_arrays_still_come_through_hdf5_in_the_same_session(tmp_path):
    fn = str(tmp_path / "s.h5")
    x = np.arange(1000.0)
    tinystore.save({"x": x, "n": 3}, fn)
    with tinystore.open(fn, "r") as s, s.hold():
        assert s["n"] == 3
        np.testing.assert_array_equal(s["x"], x)
    out = tinystore.load(fn)
    np.testing.assert_array_equal(out["x"], x)
    assert out["n"] == 3


def _changed(fn: str, change) -> str:
    with h5py.File(fn, "a") as f:
        change(f)
    return fn


def _record_as(f, **kwargs) -> None:
    """Write the root record again, as h5py's create_dataset(**kwargs) makes it."""
    data = f["@record"][()]
    del f["@record"]
    f.create_dataset("@record", data=kwargs.pop("data", lambda d: d)(data), **kwargs)


def _null_terminated(f) -> None:
    data = f["@record"][()]
    del f["@record"]
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(data) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    f.create_dataset("@record", shape=(), dtype=h5py.Datatype(tid))[()] = data


def _linked_away(f, link) -> None:
    f.move("@record", "real")
    f["@record"] = link


CHANGES = {
    "record under a soft link": lambda f: _linked_away(f, h5py.SoftLink("/real")),
    "record under an external link": lambda f: _linked_away(f, h5py.ExternalLink("o.h5", "/x")),
    "record chunked": lambda f: _record_as(f, chunks=(1,), data=lambda d: np.array([d])),
    "record of bytes": lambda f: _record_as(f, data=lambda d: np.frombuffer(d, "u1")),
    "record null-terminated": lambda f: _null_terminated(f),
    "record variable-length": lambda f: _record_as(f, data=lambda d: d.decode()),
    "record with an attribute": lambda f: f["@record"].attrs.__setitem__("x", 1),
    "many links: a dense group": lambda f: [f.create_group(f"g{i}") for i in range(20)],
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_other_layouts_are_left_to_hdf5(tmp_path, change):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"a": 1}, fn)
    assert read_record(fn, (), b"@record", LIMIT) is not None
    _changed(fn, CHANGES[change])
    assert read_record(fn, (), b"@record", LIMIT) is None


def test_a_soft_linked_record_is_still_refused(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"a": 1}, fn)
    _changed(fn, CHANGES["record under a soft link"])
    with pytest.raises(UnsafeStoreError, match="soft link"):
        tinystore.load(fn)


def test_a_group_with_two_hard_links_is_left_to_hdf5(tmp_path):
    fn = str(tmp_path / "s.h5")
    with tinystore.open(fn, "w") as s:
        s.create_group("g")["x"] = 1
    assert read_record(fn, ("g",), b"@record", LIMIT) is not None
    _changed(fn, lambda f: f.__setitem__("alias", f["g"]))
    assert read_record(fn, ("g",), b"@record", LIMIT) is None
    with pytest.raises(UnsafeStoreError, match="2 hard links"):
        tinystore.open(fn, "r")["g"]["x"]


def test_damaged_or_truncated_files_are_left_to_hdf5(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"a": 1}, fn)
    data = Path(fn).read_bytes()
    damaged = str(tmp_path / "damaged.h5")
    Path(damaged).write_bytes(data[:30] + bytes([data[30] ^ 1]) + data[31:])  # the superblock
    assert read_record(damaged, (), b"@record", LIMIT) is None
    with pytest.raises(CorruptStoreError):
        tinystore.load(damaged)
    short = str(tmp_path / "short.h5")
    Path(short).write_bytes(data[:-8])
    assert read_record(short, (), b"@record", LIMIT) is None
    assert read_record(str(tmp_path / "missing.h5"), (), b"@record", LIMIT) is None


def test_a_record_over_the_limit_is_left_to_hdf5(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save("x" * 100_000, fn)  # contiguous
    assert read_record(fn, (), b"@record", LIMIT) is not None
    assert read_record(fn, (), b"@record", 1000) is None


def test_older_files_are_left_to_hdf5_and_still_load(tmp_path):
    for path in sorted(GOLDEN.glob("*/object.h5")):
        copy = str(tmp_path / f"{path.parent.name}.h5")
        shutil.copy(path, copy)
        assert read_record(copy, (), b"@record", LIMIT) is None  # older group layout
        assert tinystore.load(copy) is not None


def test_lookup3_is_hdf5s_checksum(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save(1, fn)
    sb = Path(fn).read_bytes()[:48]
    assert lookup3(sb[:44]) == int.from_bytes(sb[44:48], "little")
    # Bob Jenkins' published values for hashlittle
    assert lookup3(b"") == 0xDEADBEEF
    assert lookup3(b"Four score and seven years ago") == 0x17770551
    assert lookup3(b"Four score and seven years ago", 1) == 0xCD628161


@pytest.mark.parametrize("how", ["written in place", "replaced by another file"])
def test_a_write_by_another_process_is_read_from_the_file(tmp_path, how):
    """Each read session reads the file as it is now: a handle opened (and
    checked) before another process wrote, or between its own reads, sees
    the new records and arrays, also when the file was replaced whole."""
    fn = str(tmp_path / "s.h5")
    tinystore.save({"v": 1, "x": np.arange(100.0)}, fn)
    code = (
        "import os, sys, numpy as np, tinystore\n"
        "fn, n, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]\n"
        "if how == 'written in place':\n"
        "    tinystore.save({'v': n, 'x': np.arange(100.0) + n}, fn)\n"
        "else:\n"
        "    tinystore.save({'v': n, 'x': np.arange(100.0) + n}, fn + '.new.h5')\n"
        "    os.replace(fn + '.new.h5', fn)\n"
    )

    def write(n):
        subprocess.run([sys.executable, "-c", code, fn, str(n), how], check=True, env=child_env())

    with tinystore.open(fn, "r") as s:
        write(2)  # after the handle checked the file, before its first read
        assert s["v"] == 2
        np.testing.assert_array_equal(s["x"], np.arange(100.0) + 2)
        write(3)
        assert s["v"] == 3
        np.testing.assert_array_equal(s["x"], np.arange(100.0) + 3)
    assert os.path.exists(fn)


ARRAYS = {
    "f8": np.linspace(0, 1, 50),
    "i4 2-d": np.arange(60, dtype="<i4").reshape(6, 10),
    "big-endian f4": np.arange(30, dtype=">f4"),
    "u2": np.arange(40, dtype="u2"),
    "bool": np.arange(100) % 3 == 0,
    "complex": np.arange(20) * (1 + 2j),
    "fortran": np.asfortranarray(np.arange(40.0).reshape(5, 8)),
    "0-d": np.array(3.5).astype(">f8") * np.ones((), ">f8"),
    "empty": np.zeros((0, 7)),
    "bytes": b"\x00\x01" * 100,
    "bytearray": bytearray(b"xyz" * 50),
}


def test_arrays_and_bytes_are_read_without_hdf5_as_hdf5_reads_them(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"top": ARRAYS, "g": {"deep": {"x": np.arange(100.0)}}}, fn)
    with tinystore.open(fn, "r") as s, s.hold():
        got = {"top": s["top"], "g": s["g"]}  # (a session: HDF5 never opens the file)
        assert h5f.get_obj_count(h5f.OBJ_ALL, h5f.OBJ_FILE) == 0
    for key, value in ARRAYS.items():
        out = got["top"][key]
        assert type(out) is type(value), key
        if isinstance(value, np.ndarray):
            assert out.dtype == value.dtype and out.shape == value.shape, key
            assert out.flags.f_contiguous == value.flags.f_contiguous, key
            assert out.flags.writeable
            np.testing.assert_array_equal(out, value)
        else:
            assert out == value
    np.testing.assert_array_equal(got["g"]["deep"]["x"], np.arange(100.0))


def test_a_damaged_array_is_still_reported(tmp_path):
    fn = str(tmp_path / "s.h5")
    tinystore.save({"x": np.arange(1000.0)}, fn)
    with h5py.File(fn, "a") as f:
        f["x"][5] = -1.0  # same layout, other bytes: its checksum says so
    with pytest.raises(CorruptStoreError, match="checksum"):
        tinystore.load(fn)
