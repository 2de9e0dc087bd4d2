"""The codec's ``plain_exact`` promise (issue 19): the containers the encoder
leaves in a tree as they are (``plain_nodes``) hold only values that plain
JSON carries exactly, so the record storage writes them without checking
each value again.  Anything else is laid out as a node of its own, and
round-trips as pickle does."""

from __future__ import annotations

import math
import pickle

import pytest

from tinystore.objects.codec import ObjectCodec
from tinystore.objects.encode import MEMO_MIN_LEN, PLAIN_NODES
from tinystore.storage.base import Tree
from tinystore.storage.record.packing import _json_exact

EDGES = [
    (1, 2.5, "x"),
    (None, True, False, -(2**63), 2**63 - 1),
    (b"bytes",),
    ("é",),
    ("\ud800",),
    (2**63,),
    (-(2**63) - 1,),
    (float("nan"),),
    (float("inf"), 1.0),
    (-float("inf"),),
    ("x" * MEMO_MIN_LEN,),
    (1 + 2j,),
    [1, "é"],
    [2**100],
]


def _plain_containers(node):
    """Every container left as it is in the tree ``node``."""
    stack = [node]
    while stack:
        t = stack.pop()
        if type(t) is Tree:
            values = t.children.values() if type(t.children) is dict else t.children
            stack.extend(values)
        elif type(t) in PLAIN_NODES:
            yield t


def test_the_codec_declares_the_promise():
    assert ObjectCodec.plain_exact is True


@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_containers_left_as_they_are_hold_only_exact_values(value):
    for obj in (value, [value] * 1, [value, (1, 2)], {"k": value}, {"a": list(value)}):
        tree = ObjectCodec().encode(obj)
        for container in _plain_containers(tree):
            items = container.values() if type(container) is dict else container
            for item in items:
                assert _json_exact(item), (obj, container)
                assert type(item) is not str or len(item) < MEMO_MIN_LEN


def _same(a, b) -> bool:
    """Equal as pickle's copy is, nan included, with the same types throughout."""
    if type(a) is not type(b):
        return False
    if type(a) in (tuple, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is float and math.isnan(a):
        return math.isnan(b)
    return a == b


def test_edge_values_round_trip_as_pickle(roundtrip):
    obj = [EDGES, tuple(EDGES), [tuple(e) for e in EDGES] * 20]
    expected = pickle.loads(pickle.dumps(obj))
    loaded = roundtrip(obj)
    assert _same(loaded, expected)
    n = len(EDGES)
    assert expected[2][0] is expected[2][n]  # the list repeats the same tuples ...
    assert loaded[2][0] is loaded[2][n] and loaded[2][2] is loaded[2][2 + n]  # ... and so here


def test_a_plain_tuple_met_twice_stays_shared(roundtrip):
    t = (1, 2.5, "x")
    obj = []
    for i in range(30):
        obj += [t, tuple([3, i % 2])]  # equal tuples, but new objects each time
    loaded = roundtrip(obj)
    assert loaded == obj
    assert all(x is loaded[0] for x in loaded[::2])
    assert loaded[1] == loaded[5] and loaded[1] is not loaded[5]


@pytest.mark.parametrize(
    "obj, fast",
    [
        # (an int-or-None field: not a columnar table, see test_tables.py)
        ([(i, i / 3, f"s{i}", None if i % 2 else i) for i in range(100)], True),
        ([[i, None, True] for i in range(40)], True),
        ([(i,) * (i % 70) for i in range(100)], False),  # some longer than a node in place
        ([(1, 2)] * 3 + [(i, "x") for i in range(30)], False),  # refs among them
        ([{"a": i} for i in range(30)], False),
        ([(i, "x") for i in range(20)] + [[1]], False),  # two types
    ],
    ids=["tuples", "lists", "long", "shared", "dicts", "mixed"],
)
def test_the_record_is_the_same_with_and_without_the_promise(obj, fast):
    """A list of many plain containers takes a path of its own when the
    codec promises exact values: the node table it makes is the one the
    general loop makes."""
    from tinystore.storage.record import packing
    from tinystore.storage.record.format import Record

    tree = ObjectCodec().encode(obj)
    tables = []
    bulk = []
    original = packing._bulk_entries

    def counted(*args):
        made = original(*args)
        bulk.append(made is not None)
        return made

    packing._bulk_entries = counted
    try:
        for exact in (True, False):
            rec = Record([])
            packing.add_tree(None, (), rec, tree, plain=PLAIN_NODES, exact=exact)
            tables.append((rec.nodes, rec.attrs))
    finally:
        packing._bulk_entries = original
    assert tables[0] == tables[1]
    # the path of its own is taken where it can be (one type, each short enough)
    assert any(bulk) is fast


def test_many_plain_containers_round_trip(roundtrip):
    obj = [
        [(i, i / 3, f"s{i}") for i in range(100)],
        [[i, None, True] for i in range(40)],
        [(i,) * (i % 70) for i in range(100)],
    ]
    loaded = roundtrip(obj)
    assert _same(loaded, pickle.loads(pickle.dumps(obj)))
