"""Each value looked at once on the way in and once on the way out (issue 19).

The codec declares on the Trees it encodes which children are *not*
JSON-exact atoms (``Tree.others``); the record packer copies the others at
once.  A storage that reads a tree marks the Trees without a Tree child
(``Tree.flat``); the decoder then builds them without looking again.  Both
are shortcuts: the files and the loaded objects are what the full walks
give.
"""

from __future__ import annotations

import pickle

import pytest
from conftest import OBJECT_BACKENDS
from objects_cases import assert_same_structure

import tinystore
from tinystore._paths import is_key
from tinystore.errors import InvalidKeyError
from tinystore.objects.codec import ObjectCodec
from tinystore.objects.registry import Adapter, register_adapter
from tinystore.storage.base import Tree
from tinystore.storage.record.packing import _json_exact


class Bag:
    """An object with many attributes (its state dict gets a frame of its own)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


SHARED = (1, 2.5, "shared")
LONG = "L" * 300  # memoised: met twice, a reference


def _odd_values() -> list:
    return [
        2**70,
        -(2**63) - 1,
        float("nan"),
        float("inf"),
        -0.0,
        "é",
        "\ud800",
        b"bytes",
        1 + 2j,
        LONG,
        LONG,
        SHARED,
        SHARED,
        (1, "é"),
        [2**64],
        {"x": 1},
        {"not a key/": 1},
        {1: 2},
        set(),
        None,
        True,
        1,
        1.5,
        "ascii",
    ]


def _objects() -> dict:
    mixed = {f"key_{i:04d}": v for i, v in enumerate(_odd_values() * 3)}
    small = {f"k{i}": [i, i / 3, "s", None, True, (i, 1.5, "t")][i % 6] for i in range(600)}
    cyclic: dict = {f"c{i}": i for i in range(10)}
    cyclic["me"] = cyclic
    cyclic["list"] = [cyclic, SHARED]
    return {
        "small-dict": small,
        "mixed": mixed,
        "nested": {"outer": mixed, "again": mixed, **{f"n{i}": i for i in range(10)}},
        "object": Bag(**{f"a{i}": v for i, v in enumerate(_odd_values())}),
        "cyclic": cyclic,
        # long keys (checked the slow way), and a value that needs a frame
        "dict-keys": {**{f"{'x' * 70}{i}": i for i in range(10)}, "z": [[1]]},
    }


OBJECTS = _objects()


def _trees(tree):
    stack = [tree]
    while stack:
        t = stack.pop()
        if isinstance(t, Tree):
            yield t
            c = t.children
            stack.extend(c if type(c) is list else c.values())


@pytest.mark.parametrize("name", OBJECTS)
def test_others_names_every_child_that_is_not_a_json_exact_atom(name):
    tree = ObjectCodec().encode(OBJECTS[name])
    declared = 0
    for t in _trees(tree):
        if t.others is None:
            continue
        declared += 1
        c = t.children
        keys = range(len(c)) if type(c) is list else list(c)
        assert list(t.others) == [k for k in keys if k in set(t.others)]  # in order
        for k in keys:
            if type(c) is dict:
                assert is_key(k)
            if k not in t.others:
                assert _json_exact(c[k]), (name, k, c[k])
    assert declared  # the codec declares it where it matters: a big dict


def _undeclared(tree):
    for t in _trees(tree):
        t.others = None
    return tree


def _files(folder) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", OBJECTS)
def test_the_files_are_the_same_with_and_without_the_declaration(name, tmp_path, monkeypatch):
    obj = OBJECTS[name]
    tinystore.save(obj, tmp_path / "declared.json")
    encode = ObjectCodec.encode
    monkeypatch.setattr(ObjectCodec, "encode", lambda *a, **kw: _undeclared(encode(*a, **kw)))
    tinystore.save(obj, tmp_path / "undeclared.json")
    assert _files(tmp_path / "declared.json") == _files(tmp_path / "undeclared.json")


@pytest.mark.parametrize("backend", OBJECT_BACKENDS)
@pytest.mark.parametrize("name", OBJECTS)
def test_declared_trees_round_trip_as_pickle(name, roundtrip):
    obj = OBJECTS[name]
    loaded = roundtrip(obj)
    assert_same_structure(pickle.loads(pickle.dumps(obj)), loaded)
    if name == "mixed":
        assert loaded["key_0011"] is loaded["key_0012"]  # the shared tuple, once
        assert loaded["key_0011"] is loaded["key_0035"]


def test_a_shared_container_in_a_big_dict_becomes_a_reference_where_it_stands():
    """A plain container met again is replaced by a node for its anchor (``_ref``)
    after the dict's frame listed it: the declaration still holds."""
    inner = [1, 2, 3]
    obj = {f"k{i}": i for i in range(10)}
    obj["first"] = inner
    obj["second"] = inner
    tree = ObjectCodec().encode(obj)
    assert type(tree.children["first"]) is Tree and "first" in tree.others
    assert tree.children["second"].attrs["t"] == "ref" and "second" in tree.others


def test_read_trees_are_flat_exactly_when_no_child_is_a_tree(filename):
    obj = {"small": OBJECTS["small-dict"], "object": OBJECTS["object"], "n": [[1], [[2]]]}
    tinystore.save(obj, filename)
    with tinystore.open(filename, mode="r") as s:
        tree = s.read_tree(plain=True)
    flat = 0
    for t in _trees(tree):
        c = t.children
        inner = any(type(v) is Tree for v in (c if type(c) is list else c.values()))
        assert t.flat is not inner, t
        flat += t.flat
    small = tree.children["small"]  # a dict of values: built by the reader (1.3), or flat
    assert (type(small) is dict or small.flat) and flat >= 3


def test_a_tree_built_by_hand_claims_nothing():
    """``flat`` and ``others`` are the reader's and the codec's word about
    children they made: a Tree built by hand says nothing, and is looked at."""
    t = Tree({"t": "dict"}, {"a": Tree({"t": "list"}, [1, 2])})
    assert t.flat is False and t.others is None
    assert ObjectCodec().decode(t) == {"a": [1, 2]}


@pytest.mark.parametrize(
    "obj, bulk",
    [  # lists of lists (lists are never rows of a table: tinystore.objects.table)
        ([[i, i / 3, f"s{i}"] for i in range(100)], True),
        ([[i, None, True] for i in range(40)], True),
        ([[i, "x"] for i in range(20)] + [[1, "é"]] + [[i, "y"] for i in range(5)], True),
        ([[i, "x"] for i in range(20)] + [[1, "\ud800"]] + [[i, "y"] for i in range(5)], False),
        ([[i, 2**64][: 1 + i % 2] for i in range(20)], False),  # a tagged big int
        ([[i] * (i % 70) for i in range(100)], False),  # some longer than a node in place
        ([[1, 2]] * 3 + [[i, "x"] for i in range(30)], False),  # refs among them
        ([[i, "x"] for i in range(20)] + [(1,)], False),  # two kinds
        ([{"a": i} for i in range(30)], False),  # dicts: not a list of values
    ],
    ids=[
        "floats",
        "atoms",
        "non-ascii",
        "surrogate",
        "big-int",
        "long",
        "shared",
        "mixed",
        "dicts",
    ],
)
def test_a_list_of_small_plain_nodes_is_read_at_once(obj, bulk, filename, monkeypatch):
    """The record reader builds a list of small plain nodes of one kind in a
    few passes (``_bulk_values``); anything else takes its loop.  The objects
    are the same either way."""
    from tinystore.storage.record import packing

    made = []
    original = packing._bulk_values

    def counted(*args):
        out = original(*args)
        made.append(out is not None)
        return out

    monkeypatch.setattr(packing, "_bulk_values", counted)
    tinystore.save(obj, filename)
    loaded = tinystore.load(filename)
    assert_same_structure(pickle.loads(pickle.dumps(obj)), loaded)
    assert any(made) is bulk


class _Keyed:
    pass


class _KeyedAdapter(Adapter):
    """Children with a key no store can hold: the encoder must not vouch for it."""

    kind, types = "test_walks.keyed", (_Keyed,)

    def encode(self, obj):
        return {}, {**{f"k{i}": i for i in range(10)}, "a/b": 1}

    def decode(self, attrs, children, remember):
        return _Keyed()
        yield  # pragma: no cover


def test_an_adapters_keys_are_checked_before_the_codec_vouches_for_them(filename):
    register_adapter(_KeyedAdapter(), replace=True)
    tree = ObjectCodec().encode(_Keyed())
    assert tree.others is None  # not declared: the storage checks every key
    with pytest.raises(InvalidKeyError, match="a/b"):
        tinystore.save({"x": _Keyed()}, filename)
