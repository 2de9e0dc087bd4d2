"""Red-team checks of format 1.3 (shapes, bare arrays, nodes nested in place)
and of HDF5 reads without the HDF5 library, with cases their own tests do not
write.

Each object is compared with pickle's copy of it (types, values, order and
sharing); each damaged input must give a tinystore error.
"""

from __future__ import annotations

import collections
import struct
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from objects_cases import assert_same_structure, pickled

import tinystore
from tinystore.cli import main
from tinystore.errors import CorruptStoreError, SharedNodeError, TinystoreError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import write_record  # noqa: E402


# -- updates by path under a shared object ----------------------------------------------------------
@pytest.mark.parametrize("n", [1, 100], ids=["in-place", "table-node"])
@pytest.mark.parametrize("how", ["open", "save", "delete"])
def test_no_update_through_a_reference(filename, n, how):
    """``sh/1`` is a reference to the dict at ``sh/0``: a path through it
    names nothing to load, so an update there must be refused, not written
    into the reference node where no load ever sees it."""
    shared = {f"s{i}": i for i in range(n)}
    obj = {"sh": [shared, shared, {"q": shared}]}
    tinystore.save(obj, filename)
    for path in ("sh/1/s0", "sh/2/q/s0"):
        with pytest.raises(SharedNodeError, match="is a reference"):
            if how == "open":
                with tinystore.open(filename, "a") as s:
                    s[path] = "new"
            elif how == "save":
                tinystore.save("new", filename, path=path)
            else:
                tinystore.delete(filename, path=path)
    assert_same_structure(pickled(obj), tinystore.load(filename), new=False)


# -- damaged HDF5 files, read with and without the HDF5 library ------------------------------------
def _load_both(path):
    """The load of ``path`` without the HDF5 library (none holds a file open),
    then through it (an h5py handle of another file is open)."""
    out = []
    for hold in (False, True):
        other = h5py.File(f"{path}.other.h5", "w") if hold else None
        try:
            out.append(("value", tinystore.load(path)))
        except TinystoreError as exc:
            out.append(("error", type(exc)))
        finally:
            if other is not None:
                other.close()
    return out


def _root_header(data: bytes) -> int:
    """The address of the root group's object header in a version 2 superblock."""
    assert data[8] == 2
    return struct.unpack_from("<Q", data, 12 + 3 * 8)[0]


def test_damaged_root_group_header_is_a_tinystore_error(tmp_path):
    """A root group whose object header HDF5 cannot parse: not a raw
    ``RuntimeError`` of the h5io/pyiron detection that runs after the file
    was found not to be tinystore's."""
    path = tmp_path / "s.h5"
    tinystore.save({"a": 1, "b": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}, path)
    data = bytearray(path.read_bytes())
    data[_root_header(data)] ^= 0xFF  # its version
    path.write_bytes(bytes(data))
    assert [kind for kind, _ in _load_both(path)] == ["error", "error"]


FLIPPED = {"a": 1, "b": [1, 2, {"x": 1, "y": 2}, {"x": 3, "y": 4}], "s": "hello"}


def test_every_byte_flipped_gives_the_value_or_a_tinystore_error(tmp_path):
    """Each byte of a small file flipped in turn (0xFF): the load without the
    HDF5 library and the one through it each give the saved value or a
    tinystore error, never another exception, a hang or another value."""
    path = tmp_path / "s.h5"
    tinystore.save(FLIPPED, path)
    data = path.read_bytes()
    expected = pickled(FLIPPED)
    for offset in range(len(data)):
        damaged = bytearray(data)
        damaged[offset] ^= 0xFF
        path.write_bytes(bytes(damaged))
        for kind, value in _load_both(path):
            if kind == "value":
                assert_same_structure(expected, value, new=False)


# -- crafted records --------------------------------------------------------------------------------
_DICT = {"t": "dict"}


@pytest.mark.parametrize(
    "doc",
    [
        {
            "tinystore": [1, 3],
            "attrs": [_DICT, [0, "a/b", "c"]],
            "nodes": [{"a": 0, "c": {"x": [1, 2]}}],
        },
        {
            "tinystore": [1, 2],
            "attrs": [_DICT],
            "nodes": [{"a": 0, "c": {"x": {"@0": {"a/b": 1}}}}],
        },
        {"tinystore": [1, 2], "attrs": [_DICT], "nodes": [{"a": 0, "c": {"a/b": 1}}]},
    ],
    ids=["shape", "in-place", "table-node"],
)
def test_browsing_a_child_named_with_a_slash_is_a_tinystore_error(backend, filename, doc):
    """tinystore writes the keys of a dict that hold "/" as values (``kv``),
    never as names; a crafted record that names a child ``a/b`` makes
    ``tree()`` (and ``tinystore show``) raise a tinystore error, not a raw
    KeyError of its path ``a`` that does not exist."""
    with tinystore.open(filename, "w") as s:
        s["a"] = {"x": np.arange(3.0), "y": [1, [2]]}
    write_record(filename, ("a",), doc)
    with tinystore.open(filename, "r") as s:
        with pytest.raises(CorruptStoreError, match="a/b"):
            s.tree()
    if backend != "memory":  # (the command line opens files)
        holder = "a" if doc["tinystore"] == [1, 2] and "a/b" in doc["nodes"][0]["c"] else "a/x"
        for args in (["ls", filename, holder], ["tree", filename]):
            assert main(args) == 1


# -- values of the new forms, as pickle gives them ---------------------------------------------------
Point = collections.namedtuple("Point", "x y")


class Reduces:
    def __init__(self, d):
        self.d = d

    def __reduce__(self):
        return (Reduces, (self.d,))


def _chain(depth: int) -> list:
    value: list = [1]
    for i in range(depth):
        value = [value, {"a": i}]
    return value


def _shaped_cases() -> dict:
    shared = {"x": [1], "y": {}}
    sub = {"q": 1}
    cyclic: list = [{"a": 1}]
    cyclic[0]["b"] = cyclic
    looped = {"a": 1, "b": None}
    looped["b"] = looped
    empty_d, empty_l = {}, []
    return {
        "shared values of one key tuple": [{"a": shared, "b": shared} for _ in range(3)],
        "same keys in another order": [{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"b": 3, "a": 4}],
        "keys like tags and numbers": [{"0": 1, "@0": 2, "a/b": 3, "": 4}] * 2
        + [{"0": 1, "@0": 2, "a/b": 3, "": 4}],
        "empty containers repeated": [empty_d, empty_d, empty_l, empty_l, {}, {}, [], [[]], [[]]],
        "depths around the limit": [_chain(63), _chain(64), _chain(65), _chain(128)],
        "a dict once, then twice": [{"p": 1}, sub, {"z": sub}, [sub, sub]],
        "subclasses, namedtuples, reduce": [
            Point(1, 2),
            Point(3, 4),
            (1, 2),
            {"x": 1, "y": 2},
            {"x": 3, "y": 4},
            collections.OrderedDict(a=1, b=2),
            {"a": 1, "b": 2},
            collections.defaultdict(list, a=[1], b=[2]),
            {"a": [1], "b": [2]},
            Reduces({"a": 1, "b": 2}),
            Reduces({"a": 1, "b": 2}),
        ],
        "one sub-dict from two shapes": [
            {"a": sub, "b": 1},
            {"a": sub, "b": 2},
            {"a": {"q": 1}, "b": 3},
        ],
        "cycles through nodes in place": {
            "r": cyclic,
            "s": [{"a": 2, "b": cyclic}],
            "t": [looped, {"a": 1, "b": looped}],
        },
        "same keys, values of other types": [
            {"a": 1, "b": 2},
            {"a": 1.0, "b": True},
            {"a": b"x", "b": 2**70},
        ],
    }


@pytest.mark.parametrize("case", list(_shaped_cases()))
def test_values_of_shapes_and_nodes_in_place_are_pickles(case, roundtrip):
    obj = _shaped_cases()[case]
    assert_same_structure(pickled(obj), roundtrip(obj), new=False)


# -- files changed by h5py after tinystore wrote them ------------------------------------------------
def _replace(name, **kw):
    def change(h):
        data = h[name][...]
        del h[name]
        h.create_dataset(name, data=data.astype(kw.pop("dtype", data.dtype)), **kw)

    return change


def _many_links(h):
    for i in range(10):
        h[f"extra{i}"] = i


def _soft_link(h):
    h["a2"] = h["a"][...]
    del h["a"]
    h["a"] = h5py.SoftLink("/a2")


H5PY_CHANGES = {
    "attributes": lambda h: [
        h.attrs.create("n", 1),
        h["@record"].attrs.create("n", 1),
        h["a"].attrs.create("n", 1),
    ],
    "another dtype": _replace("a", dtype=np.float32),
    "chunked": _replace("a", chunks=(10,)),
    "compressed": _replace("a", compression="gzip"),
    "10 links in the root": _many_links,
    "soft link": _soft_link,
    "values changed": lambda h: h["a"].__setitem__(0, 99.0),
}


@pytest.mark.parametrize("change", list(H5PY_CHANGES))
def test_files_changed_by_h5py_load_as_hdf5_reads_them(tmp_path, change):
    """Read without the HDF5 library, a file h5py changed gives what the read
    through HDF5 gives (the value, or the same tinystore error)."""
    path = tmp_path / "s.h5"
    tinystore.save(
        {"a": np.arange(40.0), "b": b"\x01" * 3000, "d": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}, path
    )
    with h5py.File(path, "a") as h:
        H5PY_CHANGES[change](h)
    pure, through_hdf5 = _load_both(path)
    assert pure[0] == through_hdf5[0]
    if pure[0] == "error":
        assert pure[1] is through_hdf5[1]
    else:
        assert_same_structure(pickled(through_hdf5[1]), pure[1], new=False)
