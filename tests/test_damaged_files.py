"""Damaged and foreign files: clear tinystore errors, and the rest stays readable.

A store with several top-level items (each its own physical group or
external) is damaged in one place; loading the damaged item must raise a
:class:`tinystore.errors.TinystoreError` (never a bare h5py / JSON / numpy
error) naming the damaged node or file, and every other item must still load.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import orjson
import pytest

import tinystore
from tinystore.errors import (
    CorruptStoreError,
    FormatVersionError,
    NotAStoreError,
    TinystoreError,
)

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import read_record, write_record  # noqa: E402

FILE_BACKENDS = ["hdf5", "json"]

on_files = pytest.mark.parametrize("backend", FILE_BACKENDS)


def _expected() -> dict:
    return {
        "a": {"x": np.arange(1000.0), "y": 1},  # its own group, with an external array
        "b": np.arange(1000),  # an external array of the root group
        "c": [1, 2, b"z" * 5000],  # its own group, with external bytes
        "e": {"small": "text", "n": [1.5, 2.5]},  # its own group, all inline
        "g/d": 5,  # inside a group made by create_group
    }


def _populate(filename: str) -> None:
    with tinystore.open(filename, "w") as s:
        for key, value in _expected().items():
            s[key] = value


def _same(a, b) -> bool:
    if isinstance(b, np.ndarray):
        return type(a) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(b, dict):
        return type(a) is dict and list(a) == list(b) and all(_same(a[k], b[k]) for k in b)
    if isinstance(b, list):
        return type(a) is list and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def assert_others_load(filename: str, damaged: set[str]) -> None:
    """Every top-level item but the damaged ones loads, unchanged."""
    for key, value in _expected().items():
        if key in damaged:
            continue
        loaded = tinystore.load(filename, path=key)
        assert _same(loaded, value), f"{key!r} changed: {loaded!r:.200}"
    with tinystore.open(filename, "r") as s:
        assert set(s) == {"a", "b", "c", "e", "g"}


def assert_reported(filename: str, key: str, names: list[str], error=TinystoreError) -> Exception:
    """Loading ``key`` raises ``error`` whose message names one of ``names``."""
    for load in (
        lambda: tinystore.load(filename, path=key),
        lambda: tinystore.load(filename, path=key, safe=True),
        lambda: tinystore.open(filename, "r")[key],
    ):
        with pytest.raises(error) as info:
            load()
        assert isinstance(info.value, TinystoreError), repr(info.value)
        message = str(info.value)
        assert any(name in message for name in names), f"{names} not in {message!r}"
    return info.value


def _group_names(backend: str) -> list[str]:
    return ["'/a'", "/a/", "/a ", "a/@record"]


def _external_names() -> list[str]:
    return ["a/x.npy", "'x'"]


# -- records -----------------------------------------------------------------------------
def _hdf5_file_offset(filename: str, data: bytes) -> int:
    raw = Path(filename).read_bytes()
    assert raw.count(data) == 1, "the record must appear once in the file"
    return raw.index(data)


def _patch_record_in_place(backend: str, filename: str, gpath: tuple, patch) -> None:
    """Change the bytes of a record where they lie (the JSON file, or inside the HDF5 file)."""
    data = read_record(filename, gpath)
    new = patch(data)
    assert len(new) == len(data)
    if backend == "json":
        Path(filename, *gpath, "@record.json").write_bytes(new)
    else:
        at = _hdf5_file_offset(filename, data)
        with open(filename, "r+b") as f:
            f.seek(at)
            f.write(new)


def _flip_until_invalid(data: bytes) -> bytes:
    """XOR a few bytes in the middle of ``data`` so that it is no longer JSON."""
    for start in range(len(data) // 2, len(data) - 4):
        damaged = bytearray(data)
        for i in range(start, start + 4):
            damaged[i] ^= 0x5A
        try:
            orjson.loads(bytes(damaged))
        except orjson.JSONDecodeError:
            return bytes(damaged)
    raise AssertionError("no flip made the record invalid")


@on_files
def test_bit_flipped_record(backend, filename):
    _populate(filename)
    _patch_record_in_place(backend, filename, ("a",), _flip_until_invalid)
    err = assert_reported(filename, "a", _group_names(backend), CorruptStoreError)
    assert "damaged" in str(err)
    assert_others_load(filename, {"a"})


@on_files
def test_bit_flip_that_keeps_the_record_valid_json(backend, filename):
    """A flipped digit: the shape in the record no longer matches the array."""
    _populate(filename)
    _patch_record_in_place(backend, filename, ("a",), lambda d: d.replace(b"1000", b"1001"))
    assert_reported(filename, "a", _group_names(backend) + _external_names(), CorruptStoreError)
    assert_others_load(filename, {"a"})


@on_files
@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01\x02garbage", b"not json at all", b'{"tinystore": [1, 0], "nod', b"\xff" * 64],
    ids=["empty", "binary", "text", "cut short", "0xff"],
)
def test_record_replaced_by_non_json(backend, filename, content):
    _populate(filename)
    write_record(filename, ("a",), content)
    assert_reported(filename, "a", _group_names(backend), CorruptStoreError)
    assert_others_load(filename, {"a"})


@on_files
@pytest.mark.parametrize(
    "doc",
    [
        [1, 2, 3],
        {"nodes": []},
        {"tinystore": "one", "nodes": [{}]},
        {"tinystore": [1, 0]},
        {"tinystore": [1, 0], "nodes": []},
        {"tinystore": [1, 0], "nodes": [5]},
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": 5}]},
        {"tinystore": [1, 0], "nodes": [{"a": "dict", "c": {}}]},
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": {"x": {"@": 7}}}]},
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": {"x": {"@": "1"}}}]},
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": {"x": {"X": "x", "k": "A"}}}]},
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": {"x": {"X": 5, "k": "A"}}}]},
        {
            "tinystore": [1, 0],
            "nodes": [{"a": {"t": "dict"}, "c": {"x": {"A": "%%%", "d": "<f8", "s": [1]}}}],
        },
        {
            "tinystore": [1, 0],
            "nodes": [{"a": {"t": "dict"}, "c": {"x": {"A": "", "d": "zz", "s": [1]}}}],
        },
        {"tinystore": [1, 0], "nodes": [{"a": {"t": "dict"}, "c": {"x": {"Q": 1}}}]},
        {"tinystore": [1, 0], "attrs": {"t": "dict"}, "nodes": [{"a": 0, "c": {}}]},
        {"tinystore": [1, 0], "attrs": ["dict"], "nodes": [{"a": 0, "c": {}}]},
        {"tinystore": [1, 0], "attrs": [{"t": "dict"}], "nodes": [{"a": 1, "c": {}}]},
        {"tinystore": [1, 0], "attrs": [{"t": "dict"}], "nodes": [{"a": -1, "c": {}}]},
        {
            "tinystore": [1, 0],
            "attrs": [{"t": "dict"}],
            "nodes": [{"a": 0, "c": {"x": {"@3": [1, 2]}}}],
        },
        {
            "tinystore": [1, 0],
            "attrs": [{"t": "dict"}],
            "nodes": [{"a": 0, "c": {"x": {"@x": [1, 2]}}}],
        },
        {
            "tinystore": [1, 0],
            "attrs": [{"t": "list"}],
            "nodes": [{"a": 0, "c": {"x": {"@0": 5}}}],
        },
        {
            "tinystore": [1, 0],
            "attrs": [{"t": "dict"}],
            "nodes": [{"a": 0, "c": {"x": {"@0": [1, 2, 3]}}}],
        },
    ],
    ids=[
        "a list",
        "no version",
        "version not a list",
        "no nodes",
        "empty node table",
        "node not an object",
        "children not a container",
        "attrs not an object",
        "node index out of range",
        "node index not a number",
        "external without dtype",
        "external name not a string",
        "inline array not base64",
        "inline array unknown dtype",
        "unknown leaf tag",
        "metadata table not a list",
        "metadata entry not an object",
        "metadata index out of range",
        "metadata index negative",
        "small node with a metadata index out of range",
        "small node with an invalid tag",
        "small node whose children are not a container",
        "small dict node holding a sequence",
    ],
)
def test_record_that_is_json_but_not_a_valid_record(backend, filename, doc):
    _populate(filename)
    write_record(filename, ("a",), doc)
    # (a node whose children cannot be its kind's is named by its path, a/x)
    assert_reported(filename, "a", _group_names(backend) + ["'x'", "a/x", "dtype", "leaf entry"])
    assert_others_load(filename, {"a"})


@pytest.mark.parametrize("backend", ["memory", "hdf5", "json"])
@pytest.mark.parametrize(
    "kind, children",
    [("dict", [1, 2, 3]), ("set", [[1]]), ("frozenset", [{"@": 9}]), ("tuple", {"k": [1]})],
    ids=["dict of a sequence", "set of a list", "set of a bad node", "tuple of a mapping"],
)
def test_container_node_with_impossible_children(backend, filename, kind, children):
    """Nodes the inline paths of the decoder meet: a tinystore error naming the part."""
    _populate(filename)
    doc = {
        "tinystore": [1, 0],
        "attrs": [{"t": "dict"}, {"t": kind}],
        "nodes": [{"a": 0, "c": {"inner": {"@": 1}, "ok": 1}}, {"a": 1, "c": children}],
    }
    write_record(filename, ("e",), doc)
    for load in (
        lambda: tinystore.load(filename, path="e"),
        lambda: tinystore.load(filename, path="e", safe=True),
    ):
        with pytest.raises(TinystoreError) as info:
            load()
        assert "e" in str(info.value)
    assert_others_load(filename, {"e"})


@on_files
def test_record_of_the_root_damaged_names_the_root(backend, filename):
    _populate(filename)
    write_record(filename, (), b"\x00 not json")
    for key in ("a", "b", "g/d"):
        with pytest.raises(CorruptStoreError, match="'/'"):
            tinystore.load(filename, path=key)


@on_files
@pytest.mark.parametrize("version", [[2, 0], [99, 1], [2]])
def test_newer_major_format_version(backend, filename, version):
    _populate(filename)
    doc = orjson.loads(read_record(filename, ("a",)))
    doc["tinystore"] = version
    write_record(filename, ("a",), doc)
    with pytest.raises(FormatVersionError) as info:
        tinystore.load(filename, path="a")
    message = str(info.value)
    assert f"format {version[0]}" in message and "1.x" in message, message
    assert "upgrade" in message
    assert any(n in message for n in _group_names(backend)), message
    assert_others_load(filename, {"a"})

    # the same on the root record: every item then needs the newer tinystore
    doc = orjson.loads(read_record(filename, ()))
    doc["tinystore"] = version
    write_record(filename, (), doc)
    with pytest.raises(FormatVersionError, match=f"format {version[0]}"):
        tinystore.load(filename, path="b")
    with pytest.raises(FormatVersionError):
        tinystore.open(filename, "r")["e"]


@on_files
def test_newer_minor_format_version_still_loads(backend, filename):
    _populate(filename)
    doc = orjson.loads(read_record(filename, ("a",)))
    doc["tinystore"] = [1, 7]
    doc["a field from the future"] = {"ignored": True}
    write_record(filename, ("a",), doc)
    assert_others_load(filename, set())


@pytest.mark.parametrize("backend", ["json"])
def test_record_that_is_a_directory(backend, filename):
    _populate(filename)
    record = Path(filename, "a", "@record.json")
    record.unlink()
    record.mkdir()
    assert_reported(filename, "a", _group_names(backend))
    assert_others_load(filename, {"a"})


@pytest.mark.parametrize("backend", ["hdf5"])
@pytest.mark.parametrize("replacement", ["int dataset", "group", "array of strings"])
def test_hdf5_record_of_the_wrong_kind(backend, filename, replacement):
    _populate(filename)
    with h5py.File(filename, "a") as f:
        del f["a/@record"]
        if replacement == "int dataset":
            f["a"].create_dataset("@record", data=np.arange(5))
        elif replacement == "group":
            f["a"].create_group("@record")
        else:
            f["a"].create_dataset("@record", data=[b"{", b"}"])
    assert_reported(filename, "a", _group_names(backend) + ["/a"])
    assert_others_load(filename, {"a"})


# -- missing parts -----------------------------------------------------------------------
@on_files
@pytest.mark.parametrize(
    "group, key, names",
    [("a", "a", ["'/a'", "/a/", "/a ", "a/@record"]), ("g", "g/d", ["'/g'", "/g "])],
    ids=["subgroup of a stored object", "group made by create_group"],
)
def test_missing_group(backend, filename, group, key, names):
    _populate(filename)
    if backend == "json":
        shutil.rmtree(Path(filename, group))
    else:
        with h5py.File(filename, "a") as f:
            del f[group]
    assert_reported(filename, key, names, CorruptStoreError)
    assert_others_load(filename, {key})


@on_files
@pytest.mark.parametrize("which", ["array in a group", "array at the root", "bytes"])
def test_missing_external(backend, filename, which):
    _populate(filename)
    key, gpath, name = {
        "array in a group": ("a", ("a",), "x.npy"),
        "array at the root": ("b", (), "b.npy"),
        "bytes": ("c", ("c",), "2.bin"),
    }[which]
    if backend == "json":
        Path(filename, *gpath, name).unlink()
    else:
        with h5py.File(filename, "a") as f:
            del f["/".join(gpath + (name[:-4],))]
    stem = name[:-4]
    assert_reported(filename, key, [name, f"'{stem}'"], CorruptStoreError)
    assert_others_load(filename, {key})


@pytest.mark.parametrize("backend", ["hdf5"])
def test_hdf5_group_replaced_by_a_dataset(request, backend, filename):
    _populate(filename)
    with h5py.File(filename, "a") as f:
        del f["a"]
        f.create_dataset("a", data=5)
    assert_reported(filename, "a", _group_names(backend))
    assert_others_load(filename, {"a"})


@pytest.mark.parametrize("backend", ["hdf5"])
def test_hdf5_external_replaced_by_a_group(backend, filename):
    _populate(filename)
    with h5py.File(filename, "a") as f:
        del f["a/x"]
        f["a"].create_group("x")
    assert_reported(filename, "a", _external_names(), CorruptStoreError)
    assert_others_load(filename, {"a"})


# -- swapped or altered externals ----------------------------------------------------------
class _Boom:
    """Unpickling this would create ``path``: a swapped-in pickle must never be loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


@on_files
@pytest.mark.parametrize("how", ["np.save of an object array", "pickle.dump", "raw pickle bytes"])
def test_external_array_swapped_for_a_pickle(request, backend, filename, tmp_path, how):
    _populate(filename)
    sentinel = tmp_path / "UNPICKLED"
    payload = np.array([_Boom(str(sentinel))] * 3, dtype=object)
    if backend == "json":
        with open(Path(filename, "a", "x.npy"), "wb") as f:
            if how == "np.save of an object array":
                np.save(f, payload, allow_pickle=True)
            else:
                pickle.dump(payload, f)
    else:
        raw = pickle.dumps(payload)
        with h5py.File(filename, "a") as f:
            del f["a/x"]
            if how == "raw pickle bytes":
                f["a"].create_dataset("x", data=np.frombuffer(raw, dtype=np.uint8))
            elif how == "pickle.dump":
                f["a"].create_dataset("x", data=np.void(raw))
            else:
                ragged = np.empty(1000, dtype=object)
                ragged[:] = [np.frombuffer(raw, dtype=np.uint8)] * 1000
                f["a"].create_dataset("x", data=ragged, dtype=h5py.vlen_dtype(np.uint8))
    for safe in (False, True):
        with pytest.raises(TinystoreError) as info:
            tinystore.load(filename, path="a", safe=safe)
        assert any(n in str(info.value) for n in _external_names()), str(info.value)
    assert not sentinel.exists(), "the swapped-in pickle was unpickled"
    assert_others_load(filename, {"a"})


@on_files
@pytest.mark.parametrize(
    "replacement",
    [
        np.arange(999.0),
        np.arange(1000.0).reshape(10, 100),
        np.arange(1000, dtype="<f4"),
        np.arange(1000, dtype="<i8"),
        np.arange(1000.0).astype(">f8"),
        np.zeros(1000, dtype=[("x", "<f8")]),
        np.array(["x"] * 1000),
    ],
    ids=["shorter", "2-d", "float32", "int64", "big-endian", "structured", "unicode"],
)
def test_external_array_with_another_shape_or_dtype(request, backend, filename, replacement):
    """The record says float64 (1000,); the file or dataset holds something else."""
    _populate(filename)
    if backend == "json":
        np.save(Path(filename, "a", "x.npy"), replacement, allow_pickle=False)
    else:
        if replacement.dtype.kind == "U":  # HDF5 has no UCS-4 strings
            replacement = replacement.astype("S")
        with h5py.File(filename, "a") as f:
            del f["a/x"]
            f["a"].create_dataset("x", data=replacement)
    assert_reported(filename, "a", _external_names(), CorruptStoreError)
    assert_others_load(filename, {"a"})


@pytest.mark.parametrize("backend", ["hdf5"])
def test_hdf5_external_array_of_variable_length_strings(backend, filename):
    _populate(filename)
    with h5py.File(filename, "a") as f:
        del f["a/x"]
        f["a"].create_dataset("x", data=["s"] * 1000, dtype=h5py.string_dtype())
    assert_reported(filename, "a", _external_names(), CorruptStoreError)
    assert_others_load(filename, {"a"})


@on_files
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_external_array_file_damaged(backend, filename, how):
    _populate(filename)
    if backend == "json":
        path = Path(filename, "a", "x.npy")
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2] if how == "truncated" else b"garbage" * 100)
    else:
        with h5py.File(filename, "a") as f:
            del f["a/x"]
            if how == "truncated":
                f["a"].create_dataset("x", data=np.arange(500.0))
            else:
                f["a"].create_dataset("x", data=np.frombuffer(b"garbage" * 100, dtype=np.uint8))
    assert_reported(filename, "a", _external_names(), CorruptStoreError)
    assert_others_load(filename, {"a"})


@on_files
@pytest.mark.parametrize("how", ["truncated", "longer", "wrong dtype"])
def test_external_bytes_of_the_wrong_length(request, backend, filename, how):
    """The record says 5000 bytes (``"n"``); the ``.bin`` file / dataset holds other bytes."""
    if how == "wrong dtype" and backend == "json":
        pytest.skip("a .bin file has no dtype")
    _populate(filename)
    new = {"truncated": b"z" * 10, "longer": b"z" * 6000, "wrong dtype": None}[how]
    if backend == "json":
        Path(filename, "c", "2.bin").write_bytes(new)
    else:
        with h5py.File(filename, "a") as f:
            del f["c/2"]
            data = np.arange(625.0) if new is None else np.frombuffer(new, dtype=np.uint8)
            f["c"].create_dataset("2", data=data)
    assert_reported(filename, "c", ["2.bin", "'2'"], CorruptStoreError)
    assert_others_load(filename, {"c"})


# -- truncated and foreign files ------------------------------------------------------------
@pytest.mark.parametrize("backend", ["hdf5"])
@pytest.mark.parametrize("keep", [0.5, 0.9, 2048, 100, 8])
def test_truncated_hdf5_file(backend, filename, keep):
    _populate(filename)
    data = Path(filename).read_bytes()
    size = int(len(data) * keep) if isinstance(keep, float) else keep
    Path(filename).write_bytes(data[:size])
    for key in ("a", "b", "e"):
        with pytest.raises(TinystoreError) as info:
            tinystore.load(filename, path=key)
        assert filename in str(info.value)
        assert isinstance(info.value, (CorruptStoreError, NotAStoreError))
    # refusing to read it wrote nothing into it
    assert Path(filename).stat().st_size == size


@pytest.mark.parametrize("backend", ["hdf5"])
def test_hdf5_file_truncated_to_nothing(backend, filename):
    _populate(filename)
    Path(filename).write_bytes(b"")
    with pytest.raises((CorruptStoreError, NotAStoreError)):
        tinystore.load(filename, path="a")
    assert Path(filename).stat().st_size == 0, "loading wrote into the file"


@pytest.mark.parametrize("backend", ["hdf5"])
def test_hdf5_file_written_by_another_tool(backend, filename):
    with h5py.File(filename, "w") as f:
        f["x"] = np.arange(3)
        f.create_group("g")["y"] = 1.5
        f.attrs["creator"] = "another tool"
    before = Path(filename).read_bytes()
    with pytest.raises(NotAStoreError, match="not a tinystore file"):
        tinystore.load(filename, path="x")
    for mode in ("r", "r+", "a", "w"):
        with pytest.raises(NotAStoreError) as info:
            tinystore.open(filename, mode)
        assert filename in str(info.value)
    with pytest.raises(NotAStoreError):
        tinystore.save({"a": 1}, filename)
    with pytest.raises(NotAStoreError):
        tinystore.delete(filename)
    assert Path(filename).read_bytes() == before, "the foreign file was changed"
    with h5py.File(filename, "r") as f:
        assert f["g/y"][()] == 1.5


@pytest.mark.parametrize("backend", ["hdf5"])
@pytest.mark.parametrize("content", [b"hello, not HDF5", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_file_with_an_hdf5_suffix_that_is_not_hdf5(backend, filename, content):
    Path(filename).write_bytes(content)
    with pytest.raises((NotAStoreError, CorruptStoreError)) as info:
        tinystore.load(filename)
    assert filename in str(info.value)
    assert Path(filename).read_bytes() == content


@pytest.mark.parametrize("backend", ["json"])
def test_directory_written_by_another_tool(backend, filename):
    d = Path(filename)
    d.mkdir()
    (d / "data.json").write_text('{"a": 1}')
    (d / "sub").mkdir()
    (d / "sub" / "@record.json").write_text("{}")
    for mode in ("r", "a", "w"):
        with pytest.raises((NotAStoreError, FileNotFoundError)) as info:
            tinystore.open(filename, mode)
        assert isinstance(info.value, TinystoreError) or mode == "r", repr(info.value)
    with pytest.raises(TinystoreError):
        tinystore.load(filename)
    with pytest.raises(NotAStoreError):
        tinystore.delete(filename)
    assert (d / "data.json").read_text() == '{"a": 1}'


# -- a JSON directory edited by hand ---------------------------------------------------------
@pytest.mark.parametrize("backend", ["json"])
def test_json_directory_with_extra_files_of_its_user(backend, filename):
    _populate(filename)
    root = Path(filename)
    extras = {
        root / "README.txt": "notes",
        root / ".DS_Store": "finder",
        root / "b.npy.bak": "backup",
        root / "notes" / "todo.md": "x",
        root / "a" / "comment.txt": "about a",
        root / "a" / "x.npy~": "editor backup",
        root / "e" / "@record.json.orig": "{}",
        root / "g" / "Thumbs.db": "x",
    }
    for path, text in extras.items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert_others_load(filename, set())
    with tinystore.open(filename, "r") as s:
        assert list(s) == ["a", "b", "c", "e", "g"]
        assert list(s["g"]) == ["d"]
        s.tree()
        s.info()
    # writing other items leaves the user's files alone
    with tinystore.open(filename, "a") as s:
        s["new"] = np.arange(2000.0)
        s["a/y"] = 2
        del s["c"]
        s["g/d2"] = 6
    assert tinystore.load(filename, path="a")["y"] == 2
    for path, text in extras.items():
        assert path.read_text() == text, f"{path} was changed or removed"


@pytest.mark.parametrize("backend", ["json"])
def test_json_record_edited_by_hand(backend, filename):
    """Re-indented, keys reordered, a value changed: still a valid record."""
    _populate(filename)
    path = Path(filename, "e", "@record.json")
    doc = orjson.loads(path.read_bytes())
    node = doc["nodes"][0]
    node["c"]["small"] = "edited"
    text = orjson.dumps(
        {"nodes": doc["nodes"], "attrs": doc["attrs"], "tinystore": doc["tinystore"]},
        option=orjson.OPT_INDENT_2,
    )
    path.write_bytes(b"\n  " + text.replace(b"\n", b"\r\n") + b"\n\n")
    assert tinystore.load(filename, path="e") == {"small": "edited", "n": [1.5, 2.5]}
    assert_others_load(filename, {"e"})


@pytest.mark.parametrize("backend", ["json"])
def test_json_record_edited_by_hand_into_invalid_json(backend, filename):
    _populate(filename)
    path = Path(filename, "e", "@record.json")
    path.write_bytes(path.read_bytes().replace(b'"text"', b"'text',"))
    err = assert_reported(filename, "e", ["'/e'"], CorruptStoreError)
    assert "line" in str(err)  # where in the file the damage is
    assert_others_load(filename, {"e"})


@on_files
def test_damage_in_one_item_does_not_stop_writing_others(backend, filename):
    _populate(filename)
    write_record(filename, ("a",), b"garbage")
    with tinystore.open(filename, "a") as s:
        s["f"] = {"new": [1, 2, 3]}
        s["e"] = {"replaced": True}
    assert tinystore.load(filename, path="f") == {"new": [1, 2, 3]}
    assert tinystore.load(filename, path="e") == {"replaced": True}
    with pytest.raises(CorruptStoreError):
        tinystore.load(filename, path="a")
    # the damaged item can be replaced or deleted to repair the store
    with tinystore.open(filename, "a") as s:
        s["a"] = "repaired"
    assert tinystore.load(filename, path="a") == "repaired"
    assert os.path.exists(filename)
