"""The shortcuts of the save and load loops (issue 19) give what the long
ways give: key checks in bulk, the encoder's children copied up front,
bare arrays built in short on read, string codes of table columns, and
sessions and transactions as classes.  Every round trip is compared with
pickle (types, values, order and sharing)."""

from __future__ import annotations

import gc
import math

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from objects_cases import assert_same_structure, node_kinds, pickled, stored_tree

import tinystore
from tinystore._paths import are_keys, is_key
from tinystore.errors import CorruptStoreError
from tinystore.objects.codec import ObjectCodec
from tinystore.storage.base import no_gc

BAD_OR_ODD_KEYS = [
    "",
    ".",
    "..",
    "a/b",
    "/",
    "@ts:meta",
    "@ok",  # a valid key with an "@" (looked at key by key)
    "x" * 255,
    "x" * 256,
    "é",
    "é" * 128,  # 256 UTF-8 bytes
    "\ud800",
    "a\x00b",
    "0starts_with_a_digit",
    "with space",
    3,
    None,
    (1, 2),
]


class StrKey(str):
    pass


@pytest.mark.parametrize("n", [9, 40, 300])  # 300: the longest key found by numpy
@pytest.mark.parametrize("odd", BAD_OR_ODD_KEYS + [StrKey("sub")])
@pytest.mark.parametrize("where", [0, "middle", -1])
def test_are_keys_is_is_key_of_each(n, odd, where):
    keys = [f"key_{i:04d}" for i in range(n)]
    i = {0: 0, "middle": n // 2, -1: n - 1}[where]
    keys[i] = odd
    d = dict.fromkeys(keys)
    assert are_keys(d) is all(map(is_key, d))
    assert are_keys(list(d)) is all(map(is_key, d))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="ab./@\x00é_x", max_size=6), min_size=0, max_size=40))
def test_are_keys_agrees_with_is_key(keys):
    d = dict.fromkeys(keys)
    assert are_keys(d) is all(map(is_key, d))


def test_are_keys_long_keys_among_many():
    for length in (254, 255, 256):
        d = dict.fromkeys([f"k{i}" for i in range(299)] + ["y" * length])
        assert are_keys(d) is (length <= 255)
        d = dict.fromkeys(["y" * length] + [f"k{i}" for i in range(299)])
        assert are_keys(d) is (length <= 255)


class Reduced:
    """A reduce with arguments, state, list items and dict items: the encoder
    lays out both phases of its node (children before and after the memo)."""

    def __init__(self, items=(), extra=None):
        self.items = list(items)
        self.extra = extra or {}
        self.state = None

    def __reduce__(self):
        return (Reduced, (), {"s": 1}, iter(self.items), iter(self.extra.items()))

    def append(self, x):
        self.items.append(x)

    def __setitem__(self, k, v):
        self.extra[k] = v

    def __setstate__(self, state):
        self.state = state


def _mixed_dict():
    shared = (1, 2.5, "x")
    plain_list = [1, "two", 3.0]
    return {
        "int": 1,
        "big": 2**70,
        "float": 0.5,
        "nan": math.nan,
        "inf": -math.inf,
        "str": "short",
        "non_ascii": "é",
        "long": "y" * 300,
        "none": None,
        "bool": True,
        "bytes": b"xy",
        "complex": 1 + 2j,
        "tuple": shared,
        "again": shared,  # the same tuple: one object after loading
        "list": plain_list,
        "list_again": plain_list,
        "nested": (1, (2, 3)),
        "odd_tuple": (math.nan, 2**64, "é"),
        "reduced": Reduced([shared, 1], {"k": plain_list}),
        "last": shared,
    }


def test_a_dict_of_every_kind_of_child_matches_pickle(roundtrip):
    obj = _mixed_dict()
    loaded = roundtrip(obj)
    assert_same_structure(pickled(obj), loaded, new=True)
    assert loaded["tuple"] is loaded["again"] is loaded["last"]
    assert loaded["reduced"].items[0] is loaded["tuple"]
    assert loaded["reduced"].state == {"s": 1}


def test_a_list_of_every_kind_of_child_matches_pickle(roundtrip):
    obj = list(_mixed_dict().values())
    assert_same_structure(pickled(obj), roundtrip(obj), new=True)


def test_the_encoded_tree_is_the_same_when_children_are_copied_up_front():
    # the children of a frame start as the items: what is left there is
    # exactly the JSON-exact atoms and the plain containers
    tree = ObjectCodec().encode(_mixed_dict())
    children = tree.children
    assert children["int"] == 1 and children["str"] == "short" and children["none"] is None
    assert children["big"] == 2**70  # a leaf the storage tags (declared in others)
    assert type(children["long"]) is str  # a leaf, memoised (the refs below point to it)
    assert children["tuple"].attrs.get("id") is not None  # met again: anchored
    assert children["again"].attrs["t"] == "ref"
    others = tree.others
    exact = {"int", "float", "str", "none", "bool"}
    assert [k for k in children if k not in exact] == others


def test_bare_arrays_with_tagged_values_fall_back_to_the_long_way(roundtrip):
    obj = {f"k{i}": (i, 0.5, "s") for i in range(20)}
    obj["k3"] = (math.nan, 2**64, "é")  # tagged leaves inside a bare array
    obj["k4"] = (1, (2, 3), [4])  # nodes in place inside one
    loaded = roundtrip(obj)
    assert_same_structure(pickled(obj), loaded, new=True)


@pytest.mark.parametrize("distinct", [5, 127, 128, 300])
def test_string_columns_of_one_and_two_byte_codes(roundtrip, filename, distinct):
    words = [f"w{i}" for i in range(distinct)]
    obj = [(i, words[i % distinct]) for i in range(4 * distinct + 16)]
    loaded = roundtrip(obj)
    assert_same_structure(pickled(obj), loaded, new=True)
    assert node_kinds(stored_tree(filename))["table"] == 1


@pytest.mark.parametrize(
    "entry, error",
    [
        ([0, {"x": 1}], CorruptStoreError),  # an entry no reader knows, in a bare array
        ([0, {"@": 7}], CorruptStoreError),  # a node the table does not have
        ({"@9": [0, 1.5]}, CorruptStoreError),  # a shape the table does not have
        ([0, 1.5, 2, 3], None),  # another length: a tuple of four (bare arrays of lists)
        ([0, [1, 2]], None),  # a node in place inside: a nested tuple
    ],
)
def test_crafted_bare_arrays(tmp_path, entry, error):
    """What the short way on read meets in a crafted record: as the long way."""
    path = tmp_path / "x.json"
    tinystore.save({f"k{i}": (i, 1.5) for i in range(20)}, path)
    record = path / "@record.json"
    doc = orjson.loads(record.read_bytes())
    del doc["h"]  # a record without a checksum (as written before checksums)
    assert doc["nodes"][0]["c"]["k0"] == [0, 1.5]
    doc["nodes"][0]["c"]["k0"] = entry
    record.write_bytes(orjson.dumps(doc))
    if error is not None:
        with pytest.raises(error):
            tinystore.load(path)
        return
    loaded = tinystore.load(path)
    assert loaded["k0"] == tuple(tuple(x) if type(x) is list else x for x in entry)
    assert loaded["k1"] == (1, 1.5)


def test_no_gc_restores_the_collector_state():
    assert gc.isenabled()
    with no_gc():
        assert not gc.isenabled()
        with no_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with no_gc():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(ZeroDivisionError), no_gc():
        1 / 0  # noqa: B018
    assert gc.isenabled()


def test_a_failed_transaction_leaves_the_store_as_it_was(store):
    store["a"] = {"x": 1}
    with pytest.raises(ZeroDivisionError):
        with store.batch():
            store["b"] = 2
            with store.batch():
                store["c"] = 3
            1 / 0  # noqa: B018
    assert sorted(store) == ["a"]
    with store.batch():
        store["d"] = 4
    assert sorted(store) == ["a", "d"]
    assert store["a"] == {"x": 1}
