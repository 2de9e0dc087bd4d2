"""Red-team checks of format 1.3 (shapes, bare arrays, nodes nested in place)
and of HDF5 reads without the HDF5 library, with cases their own tests do not
write.

Each object is compared with pickle's copy of it (types, values, order and
sharing); each damaged input must give a tinystore error.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from objects_cases import assert_same_structure, pickled

import tinystore
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
        {"tinystore": [1, 3], "attrs": [_DICT, [0, "a/b", "c"]], "nodes": [{"a": 0, "c": {"x": [1, 2]}}]},
        {"tinystore": [1, 2], "attrs": [_DICT], "nodes": [{"a": 0, "c": {"x": {"@0": {"a/b": 1}}}}]},
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
