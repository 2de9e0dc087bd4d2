"""Objects round-trip exactly, on every backend (issue 4, item 6).

Every test saves through the public API (the ``roundtrip``/``store``
fixtures, parametrised over memory, HDF5 and JSON directory), loads back,
and compares with :func:`objects_cases.assert_same_structure`: exact types,
values, dtype/shape/order, key order, shared references and cycles.  Unless
a test asks for ``cloudpickle_fallback``, it also checks that nothing was
stored as pickle bytes.  Pickle's own behaviour is the reference; the
reduce-protocol corner cases are in ``test_objects_pickle_parity.py``.
"""

from __future__ import annotations

import array
import collections
import datetime
import decimal
import fractions
import functools
import io
import math
import operator
import pathlib
import pickle
import re
import struct
import sys
import threading
import types
import uuid
import warnings
import weakref

import numpy as np
import pytest
from conftest import OBJECT_BACKENDS, S3_BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from objects_cases import (
    POST_INIT_CALLS,
    SINGLETON,
    Bits,
    Color,
    CustomStorable,
    DefaultStorable,
    Empty,
    FailsOnLoad,
    FalsyState,
    FreshListInArgs,
    Frozen,
    FrozenSlotsDataclass,
    Hashable,
    Inner,
    Level,
    MyBytes,
    MyDict,
    MyFloat,
    MyFrozenset,
    MyInt,
    MyList,
    MyOrderedDict,
    MySet,
    MyStr,
    MyTuple,
    NewArgs,
    Node,
    Outer,
    Perm,
    Point,
    SelfInArgs,
    SharedState,
    SlotsDataclass,
    Slotted,
    SlottedList,
    Versioned,
    assert_no_pickle,
    assert_same_structure,
    module_function,
    node_kinds,
    stored_tree,
)

import tinystore
from tinystore.errors import NodeNotFoundError, UnloadableError, UnstorableError

# -- helpers ---------------------------------------------------------------------------


@pytest.fixture(params=OBJECT_BACKENDS + S3_BACKENDS)
def backend(request) -> str:
    """Every backend, the reference backend of the developer contract, and zarr on S3."""
    return request.param


class Obj:
    """A plain object defined in this test module: stored by the import path
    ``test_objects_roundtrip:Obj`` (pytest puts ``tests/`` on ``sys.path``)."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)


PointNT = collections.namedtuple("PointNT", "x y")


@pytest.fixture
def check(roundtrip, filename):
    """``check(obj) -> loaded``: round-trip, compare structure, and forbid pickle leaves."""

    def run(obj, **kw):
        loaded = roundtrip(obj, **kw)
        assert_same_structure(obj, loaded)
        assert_no_pickle(filename)
        return loaded

    return run


def _nan_with_payload() -> float:
    return struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\xff")[0]


# -- the checker itself catches what it must ----------------------------------------------


def _pair_shared_vs_distinct():
    x = [1]
    return [x, x], [[1], [1]]


def _pair_distinct_vs_merged():
    y = [1]
    return [[1], [1]], [y, y]


def _pair_cycle_on_wrong_object():
    a = []
    a.append(a)
    b = [[]]
    b[0].append(b[0])
    return a, [b[0]]


def _pair_same_object():
    x = [1]
    return [x], [x]


def _pair_state_not_shared():
    params = {"a": 1}
    return [SharedState(params), params], [SharedState({"a": 1}), {"a": 1}]


CHECKER_MUST_FAIL = {
    "shared_vs_distinct": _pair_shared_vs_distinct,
    "distinct_vs_merged": _pair_distinct_vs_merged,
    "cycle_on_wrong_object": _pair_cycle_on_wrong_object,
    "same_object": _pair_same_object,
    "state_not_shared": _pair_state_not_shared,
    "type": lambda: ([1], (1,)),
    "subclass": lambda: (MyList([1]), [1]),
    "key_order": lambda: ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    "int_vs_bool_key": lambda: ({1: 0}, {True: 0}),
    "negative_zero": lambda: ([-0.0], [0.0]),
    "nan_payload": lambda: ([float("nan")], [_nan_with_payload()]),
    "dtype": lambda: (np.zeros(2, "<f8"), np.zeros(2, ">f8")),
    "memory_order": lambda: (np.zeros((2, 2), order="F"), np.zeros((2, 2))),
    "enum_identity": lambda: ([Color.RED], [Color.GREEN]),
    "global_identity": lambda: ([len], [abs]),
    "attribute": lambda: (Obj(a=1), Obj(a=2)),
    "missing_attribute": lambda: (Obj(a=1), Obj()),
    "slot": lambda: (Slotted(1, 2), Slotted(1)),
    "set_element": lambda: ({1, 2}, {1, 3}),
    "object_array_sharing": lambda: _object_arrays(),
    "defaultdict_factory": lambda: (
        collections.defaultdict(list),
        collections.defaultdict(dict),
    ),
    "deque_maxlen": lambda: (collections.deque([1], 3), collections.deque([1], 4)),
}


def _object_arrays():
    x = [1]
    a = np.empty(2, dtype=object)
    a[0] = a[1] = x
    b = np.empty(2, dtype=object)
    b[0], b[1] = [1], [1]
    return a, b


@pytest.mark.parametrize("make", CHECKER_MUST_FAIL.values(), ids=CHECKER_MUST_FAIL.keys())
def test_structure_checker_catches_differences(make):
    original, other = make()
    with pytest.raises(AssertionError):
        assert_same_structure(original, other)


def test_structure_checker_accepts_an_isomorphic_copy():
    a = [1]
    obj = {"x": a, "y": (a, Slotted(a)), "z": Color.RED, "n": np.arange(3)}
    obj["self"] = obj
    assert_same_structure(obj, pickle.loads(pickle.dumps(obj)))


# -- builtin values --------------------------------------------------------------------

SCALARS = {
    "none": None,
    "true": True,
    "false": False,
    "zero": 0,
    "int_neg": -12345,
    "int64_edge": 2**63,
    "int64_min_edge": -(2**63) - 1,
    "int_big": 7**300,
    "int_big_neg": -(3**200),
    "float": 1.5,
    "float_nan": float("nan"),
    "float_nan_payload": _nan_with_payload(),
    "float_negzero": -0.0,
    "float_inf": float("inf"),
    "float_subnormal": 5e-324,
    "complex": 1 - 2.5j,
    "complex_nan_negzero": complex(float("nan"), -0.0),
    "str_empty": "",
    "str_nul": "a\x00b\x00",
    "str_surrogate": "lone \ud800 and \udfff",
    "str_unicode": "Grüße \u4e16\U0001f600",
    "str_long": "long string " * 50,
    "bytes_empty": b"",
    "bytes": bytes(range(256)),
    "ellipsis": Ellipsis,
    "notimplemented": NotImplemented,
}


def test_classes_of_test_modules_are_stored_by_import_path(check, filename):
    loaded = check(Obj(a=1))
    assert type(loaded) is Obj
    assert stored_tree(filename).attrs["c"] == "test_objects_roundtrip:Obj"


@pytest.mark.parametrize("value", SCALARS.values(), ids=SCALARS.keys())
def test_scalar_alone_in_list_and_in_dict(check, value):
    check(value)
    check([value, "after"])
    check({"k": value, "v": [value]})


def test_ellipsis_and_notimplemented_keep_identity(check):
    loaded = check([Ellipsis, NotImplemented, None])
    assert loaded[0] is Ellipsis and loaded[1] is NotImplemented and loaded[2] is None


CONTAINERS = {
    "tuple": lambda: (1, "a", (2.5, None), ()),
    "list": lambda: [1, [2, [3, []]], "x", b"y"],
    "list_empty": lambda: [],
    "tuple_empty": lambda: (),
    "dict_empty": lambda: {},
    "set_empty": lambda: set(),
    "frozenset_empty": lambda: frozenset(),
    "dict_order": lambda: {"b": 1, "a": 2, "c": 3, "_": 4, "Z": 5},
    "dict_int_keys": lambda: {3: "c", 1: "a", -2: "b", 2**70: "big"},
    "dict_mixed_keys": lambda: {
        "name": 1,
        7: 2,
        (1, "t"): 3,
        frozenset({1, 2}): 4,
        None: 5,
        1.5: 6,
        -0.0: 7,
        True: 8,
        b"raw": 9,
        1j: 10,
        Color.RED: 11,
        Point: 12,
    },
    "dict_awkward_str_keys": lambda: {
        "a/b": 1,
        "": 2,
        ".": 3,
        "..": 4,
        "nul\x00key": 5,
        "sur\ud800": 6,
        "x" * 300: 7,
        " spaced ": 8,
        "0": 9,
        "1": 10,
    },
    "dict_metadata_like_keys": lambda: {
        "t": "ref",
        "r": 0,
        "id": 1,
        "alias": 2,
        "c": "builtins:len",
        "g": "os:system",
        "kv": 1,
        "st": "n",
        "__class__": "x",
        "__dict__": {},
    },
    "set": lambda: {1, "a", (2, 3), None, frozenset({4})},
    "frozenset": lambda: frozenset({1, "b", (5,), 2**80}),
    "bytearray": lambda: bytearray(b"\x00mutable\xff"),
    "bytearray_empty": lambda: bytearray(),
    "range": lambda: range(3, -20, -4),
    "range_big": lambda: range(0, 2**100, 2**90),
    "slice": lambda: slice(1, None, "step"),
    "nested": lambda: {"runs": [{"E": -1.5, "ok": True, "tags": ("a", "b")}] * 2},
}


@pytest.mark.parametrize("factory", CONTAINERS.values(), ids=CONTAINERS.keys())
def test_container(check, factory):
    check(factory())
    check([factory(), factory()])


_AWKWARD_KEYS = [
    "a", "A", "CON", "nul", "a\\b", " ", "a:b", "*", "?", "\t", ".hidden", "~", "é",
    "e\u0301", "%2F", "__x__", "ǅ", "ß", "SS", "a" * 200,
]  # fmt: skip


@pytest.mark.parametrize("size", [1, 5_000], ids=["inline", "own_groups"])
def test_awkward_keys_that_are_valid_child_names(check, store, size):
    # large values become their own HDF5 groups / files: names must survive escaping
    obj = {k: Obj(i=i, data=np.arange(size) + i) for i, k in enumerate(_AWKWARD_KEYS)}
    check(obj)
    store["objs"] = obj
    for i, k in enumerate(_AWKWARD_KEYS):
        assert store[f"objs/{k}/i"] == i
    assert list(store["objs"]) == _AWKWARD_KEYS


def test_dict_int_keys_and_str_digit_keys_stay_distinct(check):
    loaded = check({1: "int", "1": "str", (1,): "tuple"})
    assert [type(k) for k in loaded] == [int, str, tuple]


def test_dict_bool_and_int_keys_keep_their_type(check):
    loaded = check({True: "t", 2: "two"})
    assert type(next(iter(loaded))) is bool


# -- sharing, distinctness, cycles -----------------------------------------------------


def test_shared_list_stays_shared(check):
    x = [1, 2]
    loaded = check([x, x, {"again": x}])
    assert loaded[0] is loaded[1] is loaded[2]["again"]


def test_equal_but_distinct_objects_stay_distinct(check):
    loaded = check([[1], [1], {"a": 1}, {"a": 1}, bytearray(b"x"), bytearray(b"x")])
    assert loaded[0] is not loaded[1]
    assert loaded[2] is not loaded[3]
    assert loaded[4] is not loaded[5]


SHARED = {
    "tuple": lambda: (1, 2),
    "frozenset": lambda: frozenset({1, 2}),
    "dict": lambda: {"k": 1},
    "set": lambda: {3},
    "bytearray": lambda: bytearray(b"ab"),
    "array": lambda: np.arange(4.0),
    "array_fortran": lambda: np.arange(4.0).reshape(2, 2).T,
    "long_str": lambda: "shared and long " * 20,
    "long_bytes": lambda: b"shared and long " * 20,
    "object": lambda: Point(1, 2),
    "slots_object": lambda: Slotted(1, 2),
    "dataclass": lambda: Inner(1, [2]),
    "range": lambda: range(5),
    "timedelta": lambda: datetime.timedelta(days=2),
    "decimal": lambda: decimal.Decimal("1.5"),
    "deque": lambda: collections.deque([1]),
    "list_subclass": lambda: MyList([1]),
    "object_array": lambda: np.array([None, 1], dtype=object),
}


@pytest.mark.parametrize("factory", SHARED.values(), ids=SHARED.keys())
def test_shared_object_of_each_kind(check, factory):
    x = factory()
    loaded = check([x, (x, {"in": x}), x])
    assert loaded[0] is loaded[1][0] is loaded[1][1]["in"] is loaded[2]


@pytest.mark.parametrize(
    "make", [lambda: tuple([1, "a"]), lambda: [1.5, None]], ids=["tuple", "list"]
)
def test_plain_container_shared_between_attributes_stays_shared(check, make):
    # attributes of plain values and small containers take a short way; sharing
    # within one instance, across instances and with the outside must survive it
    x = make()
    p, q = Point(x, x), Point(1, x)
    loaded = check([p, q, x, Point(make(), make())])
    lp, lq, lx, lr = loaded
    assert lp.x is lp.y is lq.y is lx
    assert lr.x == lr.y and lr.x is not lr.y


class _KeyStr(str):
    pass


def test_str_subclass_keys_equal_to_earlier_keys_keep_their_type(check):
    # key tuples checked once per save must not let an equal str subclass pass
    a, b = _KeyStr("a"), _KeyStr("b")
    p = Point(1, 2)
    q = Point(3, 4)
    q.__dict__ = {a: 3, "y": 4}
    loaded = check([{"a": 1, "b": 2}, {a: 1, "b": 2}, {"a": 1, b: 2}, p, q])
    assert [type(k) for k in loaded[1]] == [_KeyStr, str]
    assert [type(k) for k in loaded[2]] == [str, _KeyStr]
    assert [type(k) for k in vars(loaded[4])] == [_KeyStr, str]


def test_shared_key_and_value(check):
    key = (1, "k")
    h = Hashable("h")
    loaded = check({key: key, h: [h, key]})
    k0 = next(iter(loaded))
    assert loaded[k0] is k0
    h0 = list(loaded)[1]
    assert loaded[h0][0] is h0 and loaded[h0][1] is k0


def test_self_referencing_list(check):
    x = []
    x.append(x)
    loaded = check(x)
    assert loaded[0] is loaded


def test_self_referencing_dict(check):
    d = {}
    d["me"] = d
    d[1] = [d]
    loaded = check(d)
    assert loaded["me"] is loaded and loaded[1][0] is loaded


def test_recursive_tuple_through_list(check):
    t = ([],)
    t[0].append(t)
    loaded = check(t)
    assert loaded[0][0] is loaded


def test_recursive_tuple_through_dict(check):
    t = ({}, 1)
    t[0]["t"] = t
    loaded = check(t)
    assert loaded[0]["t"] is loaded


def test_tuple_reached_again_through_each_of_its_lists(check):
    # pickle writes the tuple once per list before it can memoise it
    t = ([], [], [], {})
    for part in t[:3]:
        part.append(t)
    t[3]["t"] = t
    loaded = check(t)
    assert all(part[0] is loaded for part in loaded[:3]) and loaded[3]["t"] is loaded


def test_list_inside_tuple_inside_list_cycle(check):
    x = [1]
    t = (x, x)
    x.append(t)
    loaded = check([t, x])
    assert loaded[0][0] is loaded[0][1] is loaded[1]
    assert loaded[1][1] is loaded[0]


@pytest.mark.parametrize("factory", [tuple, list, set, frozenset, MyList, MyTuple, MySet])
def test_collection_containing_object_containing_collection(check, factory):
    o = Obj()
    o.attr = factory([o])
    loaded = check(o)
    (inner,) = loaded.attr
    assert inner is loaded


@pytest.mark.parametrize("factory", [list, tuple, MyList, MyTuple])
def test_object_inside_collection_refers_to_collection(check, factory):
    c = factory([Obj()])
    c[0].attr = c
    loaded = check(c)
    assert loaded[0].attr is loaded


def test_dict_key_object_refers_to_dict(check):
    d = {}
    k = Hashable("key")
    k.owner = d
    d[k] = 1
    loaded = check(d)
    assert next(iter(loaded)).owner is loaded


def test_set_whose_element_refers_to_the_set(check):
    s = set()
    o = Obj(home=s)
    s.add(o)
    loaded = check(s)
    assert next(iter(loaded)).home is loaded


def test_object_attribute_tuple_contains_object(check):
    o = Obj()
    o.pair = (o, [o])
    loaded = check(o)
    assert loaded.pair[0] is loaded and loaded.pair[1][0] is loaded


def test_recursive_dict_subclass_and_list_subclass(check):
    d = MyDict()
    d["self"] = d
    d.attr = d
    lst = MyList()
    lst.append(lst)
    lst.owner = d
    loaded = check([d, lst])
    assert loaded[0]["self"] is loaded[0] and loaded[0].attr is loaded[0]
    assert loaded[1][0] is loaded[1] and loaded[1].owner is loaded[0]


def test_cycle_through_many_objects(check):
    nodes = [Node(i) for i in range(20)]
    for a, b in zip(nodes, nodes[1:] + nodes[:1]):
        a.next = b
    loaded = check(nodes[5])
    cur = loaded
    for _ in range(20):
        cur = cur.next
    assert cur is loaded


# -- random object graphs, against pickle ----------------------------------------------

_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.complex_numbers(allow_nan=True),
    st.text(max_size=6),
    st.binary(max_size=6),
)


KINDS = [
    "list", "dict", "tuple", "set", "obj", "mylist", "bytearray", "array", "slotted", "state",
    "newargs",
]  # fmt: skip


@st.composite
def object_graphs(draw):
    """Nested lists, dicts, tuples, sets and objects with shared parts and cycles."""
    made: list = []  # every container made so far, to be shared
    mutable: list = []  # lists, dicts and objects, to close cycles through

    def hashable(depth):
        if depth > 1 or draw(st.booleans()):
            return draw(_ATOMS.filter(lambda x: x == x))  # NaN keys cannot be found again
        return draw(st.sampled_from([tuple, frozenset]))(
            [hashable(depth + 1) for _ in range(draw(st.integers(0, 2)))]
        )

    def build(depth):
        if depth > 3 or draw(st.integers(0, 4)) == 0:
            return draw(_ATOMS)
        if made and draw(st.integers(0, 3)) == 0:
            return draw(st.sampled_from(made))
        kind = draw(st.sampled_from(KINDS))
        n = draw(st.integers(0, 3))
        if kind == "tuple":
            obj = tuple(build(depth + 1) for _ in range(n))
        elif kind == "set":
            obj = {hashable(depth) for _ in range(n)}
        elif kind == "bytearray":
            obj = bytearray(draw(st.binary(max_size=4)))
        elif kind == "array":
            obj = np.empty(n, dtype=object)
            for i in range(n):
                obj[i] = build(depth + 1)
        elif kind == "slotted":
            obj = Slotted(build(depth + 1), build(depth + 1)) if n else Slotted(1)
            mutable.append(obj)
        elif kind == "state":
            obj = SharedState(draw(st.sampled_from([d for d in made if type(d) is dict] or [{}])))
        elif kind == "newargs":
            obj = NewArgs(build(depth + 1), build(depth + 1))
        else:
            obj = {"list": list, "dict": dict, "obj": Obj, "mylist": MyList}[kind]()
            mutable.append(obj)
            for _ in range(n):
                value = build(depth + 1)
                if kind in ("list", "mylist"):
                    obj.append(value)
                elif kind == "dict":
                    obj[hashable(depth)] = value
                else:
                    setattr(obj, draw(st.sampled_from(["a", "b", "c_d", "énergie"])), value)
            if kind == "mylist" and draw(st.booleans()):
                obj.tag = build(depth + 1)
        made.append(obj)
        return obj

    root = build(0)
    for _ in range(draw(st.integers(0, 3))):  # cycles: point back at anything made
        if mutable and made:
            target, value = draw(st.sampled_from(mutable)), draw(st.sampled_from(made))
            if isinstance(target, list):
                target.append(value)
            elif isinstance(target, dict):
                target[hashable(0)] = value
            elif isinstance(target, Slotted):
                target.y = value
            else:
                target.back = value
    return root


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(graph=object_graphs())
def test_random_object_graphs_match_pickle(roundtrip, filename, graph):
    loaded = roundtrip(graph)
    assert_same_structure(graph, loaded)
    assert_same_structure(pickle.loads(pickle.dumps(graph)), loaded, new=False)
    assert_no_pickle(filename)


# -- subclasses of builtins with state -------------------------------------------------


def _with_attrs(obj, **attrs):
    obj.__dict__.update(attrs)
    return obj


SUBCLASSES = {
    "MyList": lambda: _with_attrs(MyList([1, [2]]), name="L", meta={"a": 1}),
    "MyDict": lambda: _with_attrs(MyDict({"b": 1, 2: "two", (3,): [3]}), name="D"),
    "MyInt": lambda: _with_attrs(MyInt(2**80), unit="eV"),
    "MyFloat": lambda: _with_attrs(MyFloat(-0.0), unit="Å"),
    "MyStr": lambda: _with_attrs(MyStr("text\x00"), lang="en"),
    "MyBytes": lambda: _with_attrs(MyBytes(b"\x00\x01"), enc="raw"),
    "MyTuple": lambda: _with_attrs(MyTuple((1, "a", [2])), label="t"),
    "MySet": lambda: _with_attrs(MySet({1, 2, "x"}), label="s"),
    "MyFrozenset": lambda: _with_attrs(MyFrozenset({1, 2}), label="f"),
    "MyOrderedDict": lambda: _with_attrs(MyOrderedDict([("z", 1), ("a", 2)]), label="o"),
    "SlottedList": lambda: _with_slot(SlottedList([1, 2]), "tag", "slot value"),
    "MyList_empty_state": lambda: MyList([1]),
    "MyDict_empty": lambda: MyDict(),
}


def _with_slot(obj, name, value):
    setattr(obj, name, value)
    return obj


@pytest.mark.parametrize("factory", SUBCLASSES.values(), ids=SUBCLASSES.keys())
def test_builtin_subclass_with_state(check, factory):
    obj = factory()
    loaded = check(obj)
    assert getattr(loaded, "__dict__", None) == getattr(obj, "__dict__", None)
    check({"twice": [obj, obj]})


def test_attribute_names_that_look_like_metadata(check):
    obj = Obj(t="ref", r=0, id=1, alias=2, p="s", c="os:system", g="os:system", st="n")
    loaded = check([obj, obj])
    assert vars(loaded[0]) == vars(obj)


def test_builtin_subclass_values_browsable(store):
    store["lst"] = _with_attrs(MyList([10, 20]), name="L")
    loaded = store["lst"]
    assert type(loaded) is MyList and loaded == [10, 20] and loaded.name == "L"


# -- standard library types ------------------------------------------------------------

_TZ = datetime.timezone(datetime.timedelta(hours=-3, minutes=-30), "NST")

STDLIB = {
    "datetime_naive": lambda: datetime.datetime(2024, 2, 29, 23, 59, 59, 999999),
    "datetime_tz": lambda: datetime.datetime(2001, 1, 1, tzinfo=_TZ),
    "datetime_utc_fold": lambda: datetime.datetime(
        2020, 1, 1, fold=1, tzinfo=datetime.timezone.utc
    ),
    "date": lambda: datetime.date(1, 1, 1),
    "time": lambda: datetime.time(12, 30, 1, 5, tzinfo=_TZ),
    "timedelta": lambda: datetime.timedelta(days=-3, microseconds=7),
    "timezone": lambda: _TZ,
    "timezone_utc": lambda: datetime.timezone.utc,
    "decimal": lambda: decimal.Decimal("1.2300"),
    "decimal_specials": lambda: [decimal.Decimal(x) for x in ("-0", "NaN", "-Infinity", "1E+999")],
    "fraction": lambda: fractions.Fraction(-22, 7),
    "uuid": lambda: uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "pure_posix_path": lambda: pathlib.PurePosixPath("/data/run 1/out.h5"),
    "pure_windows_path": lambda: pathlib.PureWindowsPath(r"C:\data\out.h5"),
    "path": lambda: pathlib.Path("relative/dir"),
    "ordered_dict": lambda: _moved(collections.OrderedDict([("a", 1), ("b", 2), ("c", 3)])),
    "defaultdict": lambda: collections.defaultdict(list, {"x": [1], 2: [3]}),
    "defaultdict_none": lambda: collections.defaultdict(None, {"x": 1}),
    "defaultdict_nested": lambda: collections.defaultdict(
        functools.partial(collections.defaultdict, int), {"a": collections.defaultdict(int, b=2)}
    ),
    "deque": lambda: collections.deque([1, [2], "3"], maxlen=5),
    "deque_unbounded": lambda: collections.deque(range(5)),
    "counter": lambda: collections.Counter("abracadabra"),
    "namedtuple": lambda: PointNT(1, [2]),
    "simple_namespace": lambda: types.SimpleNamespace(a=1, b=[2]),
    "partial": lambda: functools.partial(module_function, 1),
    "itemgetter": lambda: operator.itemgetter(1, "a"),
    "regex": lambda: re.compile(r"(\d+)-x", re.IGNORECASE),
    "array_module": lambda: array.array("d", [1.5, -0.0]),
    "complex_nested": lambda: {
        "when": datetime.datetime(2020, 5, 17),
        "where": pathlib.PurePosixPath("a/b"),
        "how_much": decimal.Decimal("3.14"),
    },
}


def _moved(od):
    od.move_to_end("a")
    return od


@pytest.mark.parametrize("factory", STDLIB.values(), ids=STDLIB.keys())
def test_stdlib_type(check, factory):
    obj = factory()
    loaded = check(obj)
    assert repr(loaded) == repr(obj)
    check([obj, obj])


def test_stdlib_values_equal_to_pickle(check):
    obj = [f() for f in STDLIB.values()]
    loaded = check(obj)
    assert repr(loaded) == repr(pickle.loads(pickle.dumps(obj)))


def _advanced(iterator):
    next(iterator)
    return iterator


RUNTIME = {
    "list_iterator": lambda: _advanced(iter([1, [2], 3])),
    "reversed": lambda: reversed([1, 2]),
    "enumerate": lambda: enumerate("ab", start=5),
    "zip": lambda: zip([1, 2], "xy"),
    "map": lambda: map(str, [1, 2]),
    "chain_map": lambda: collections.ChainMap({"a": 1}, {"b": 2}),
    "user_dict": lambda: collections.UserDict(a=[1]),
    "user_list": lambda: collections.UserList([1, 2]),
}


@pytest.mark.parametrize("factory", RUNTIME.values(), ids=RUNTIME.keys())
def test_runtime_objects_pickle_supports(roundtrip, filename, factory):
    loaded = roundtrip(factory())
    expected = pickle.loads(pickle.dumps(factory()))
    assert type(loaded) is type(expected)
    assert list(loaded) == list(expected)  # iterators resume where they were
    assert_no_pickle(filename)


@pytest.mark.parametrize(
    "factory", [lambda: np.random.default_rng(7), lambda: np.random.RandomState(7)], ids=str
)
def test_random_generators_resume_their_stream(check, factory):
    rng = factory()
    rng.random(3)
    loaded = check(rng)
    assert loaded.random(5).tolist() == rng.random(5).tolist()


def test_defaultdict_factory_works_after_load(check):
    loaded = check(collections.defaultdict(list, {"x": [1]}))
    loaded["new"].append(1)
    assert loaded["new"] == [1]


def test_deque_keeps_maxlen(check):
    loaded = check(collections.deque([1, 2, 3], maxlen=3))
    loaded.append(4)
    assert list(loaded) == [2, 3, 4] and loaded.maxlen == 3


# -- enums -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "member",
    [
        Color.RED,
        Color.GREEN,
        Color.BLUE,
        Level.HIGH,
        Perm.R,
        Perm.R | Perm.W,
        Perm(0),
        Bits.A | Bits.C,
    ],
    ids=str,
)
def test_enum_member_identity(check, member):
    loaded = check([member, {"m": member}])
    assert loaded[0] is member and loaded[1]["m"] is member


def test_int_enum_is_not_stored_as_int(check):
    loaded = check({"level": Level.LOW, 1: Level.LOW})
    assert type(loaded["level"]) is Level


# -- dataclasses -----------------------------------------------------------------------


def test_nested_dataclass_and_post_init_not_rerun(check):
    inner = Inner(3, [1, 2])
    obj = Outer("run", inner, {"a": inner}, scale=5)
    assert obj.computed == 15
    calls = len(POST_INIT_CALLS)
    loaded = check(obj)
    assert len(POST_INIT_CALLS) == calls, "__post_init__ ran on load (pickle does not)"
    assert loaded.computed == 15 and loaded.table["a"] is loaded.inner
    assert loaded == obj


@pytest.mark.parametrize(
    "factory",
    [
        lambda: Frozen(1, (2, [3])),
        lambda: SlotsDataclass(1, [2]),
        lambda: FrozenSlotsDataclass(1, "b"),
        lambda: Inner(0),
    ],
    ids=["frozen", "slots", "frozen_slots", "default_factory"],
)
def test_dataclass_variants(check, factory):
    obj = factory()
    loaded = check([obj, obj])
    assert loaded[0] == obj and loaded[0] is loaded[1]


def test_frozen_dataclass_stays_frozen(check):
    import dataclasses

    loaded = check(Frozen(1, ()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.a = 2


def test_dataclass_fields_are_browsable(store):
    store["dc"] = Outer("name", Inner(7, [1, 2, 3]))
    assert store["dc/name"] == "name"
    assert store["dc/inner/x"] == 7
    assert store["dc/inner/values"] == [1, 2, 3]
    assert type(store["dc/inner"]) is Inner


# -- globals: functions, classes, methods by import path -------------------------------

GLOBALS = {
    "len": len,
    "print": print,
    "math_sqrt": math.sqrt,
    "numpy_add": np.add,
    "numpy_sum": np.sum,
    "str_upper": str.upper,
    "int": int,
    "type": type,
    "object": object,
    "ndarray": np.ndarray,
    "float64": np.float64,
    "ordered_dict_class": collections.OrderedDict,
    "module_function": module_function,
    "local_test_class": Obj,
    "staticmethod": Point.helper,
    "class": Point,
    "enum_class": Color,
    "singleton_by_name": SINGLETON,
}


@pytest.mark.parametrize("value", GLOBALS.values(), ids=GLOBALS.keys())
def test_global_is_stored_by_name(check, filename, value):
    loaded = check([value, value])
    assert loaded[0] is value and loaded[1] is value
    kinds = node_kinds(stored_tree(filename))
    assert kinds["global"] + kinds["reduce"] >= 1


def test_bound_methods_and_classmethods(check):
    p = Point(3, 4)
    lst = [1, 2]
    loaded = check([p, p.norm2, Point.origin, lst.append, lst, dict.fromkeys])
    q, norm2, origin, append, lst2, fromkeys = loaded
    assert norm2.__self__ is q and norm2() == 25
    assert origin.__self__ is Point and origin().x == 0
    append(3)
    assert lst2 == [1, 2, 3]
    assert fromkeys == dict.fromkeys and fromkeys("ab") == {"a": None, "b": None}


# -- numpy -----------------------------------------------------------------------------

_DTYPES = [
    "?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16",
    ">i4", ">f8", "<U3", "S4", "V2", "M8[ns]", "M8[D]", "m8[s]",
]  # fmt: skip


@pytest.mark.parametrize("dtype", _DTYPES)
def test_numpy_array_dtype(check, dtype):
    raw = np.random.default_rng(1).integers(0, 256, 6 * np.dtype(dtype).itemsize, dtype="u1")
    arr = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(2, 3).copy()
    if arr.dtype.kind == "?":
        arr = raw[:6].reshape(2, 3) % 2 == 1
    elif arr.dtype.kind == "U":
        arr = np.array([["a", "bé", ""], ["x\x00", "zz", "Ω"]], dtype=dtype)
    loaded = check({"c": arr, "f": np.asfortranarray(arr), "list": [arr]})
    assert loaded["f"].flags.f_contiguous and not loaded["f"].flags.c_contiguous


ARRAYS = {
    "0d": lambda: np.array(2.5),
    "empty": lambda: np.zeros((0, 3), dtype="i2"),
    "fortran_3d": lambda: np.asfortranarray(np.arange(24).reshape(2, 3, 4)),
    "noncontiguous_view": lambda: np.arange(20.0)[::3],
    "transposed": lambda: np.arange(6).reshape(2, 3).T,
    "big": lambda: np.linspace(0, 1, 20_000),
    "structured": lambda: np.array(
        [(1, 2.5, b"ab")], dtype=[("i", "<i4"), ("f", ">f8"), ("s", "S2")]
    ),
    "longdouble": lambda: np.linspace(0, 1, 3, dtype=np.longdouble),
    "readonly": lambda: _readonly(np.arange(3)),
}


def _readonly(arr):
    arr.flags.writeable = False
    return arr


@pytest.mark.parametrize("factory", ARRAYS.values(), ids=ARRAYS.keys())
def test_numpy_array_layouts(check, factory):
    arr = factory()
    loaded = check([arr, arr])
    assert loaded[0] is loaded[1]
    assert loaded[0].flags.writeable  # like pickle: a loaded array is a fresh, writable copy


def test_numpy_object_arrays_share_objects(check):
    shared = [1, 2]
    p = Point(1, 2)
    arr = np.empty((2, 3), dtype=object)
    arr[0] = [shared, p, None]
    arr[1] = [shared, p, "s"]
    farr = np.asfortranarray(arr)
    loaded = check({"c": arr, "f": farr, "p": p})
    assert loaded["c"][0, 0] is loaded["c"][1, 0] is loaded["f"][0, 0]
    assert loaded["c"][0, 1] is loaded["p"]


def test_numpy_object_array_containing_itself(check):
    arr = np.empty(2, dtype=object)
    arr[0] = arr
    arr[1] = [arr]
    loaded = check(arr)
    assert loaded[0] is loaded and loaded[1][0] is loaded


def test_numpy_structured_array_with_object_field(roundtrip):
    shared = [1]
    arr = np.zeros(3, dtype=[("obj", "O"), ("x", ">f8")])
    arr["x"] = [0.5, -0.0, 2.5]
    arr["obj"][0] = arr["obj"][1] = shared
    arr["obj"][2] = {"k": shared}
    loaded, again = roundtrip([arr, shared])
    assert loaded.dtype == arr.dtype and loaded.shape == (3,)
    assert loaded["x"].tobytes() == arr["x"].tobytes()
    assert loaded["obj"][0] is loaded["obj"][1] is loaded["obj"][2]["k"] is again
    assert again == [1] and again is not shared


def test_numpy_object_array_empty_and_0d(check):
    zero_d = np.empty((), dtype=object)
    zero_d[()] = {"k": 1}
    check([np.empty((0, 2), dtype=object), zero_d])


NUMPY_SCALARS = [
    np.float64(1.5), np.float32(-0.0), np.float16(2.0), np.int8(-3), np.uint64(2**64 - 1),
    np.int64(-(2**63)), np.bool_(False), np.complex64(1 - 1j), np.complex128(complex("nan")),
    np.longdouble("0.1"), np.datetime64("2020-01-01T00:00"), np.timedelta64(5, "ms"),
    np.str_("numpy str"), np.bytes_(b"nb"),
]  # fmt: skip


@pytest.mark.parametrize("scalar", NUMPY_SCALARS, ids=lambda s: type(s).__name__)
def test_numpy_scalar(check, scalar):
    check({"x": scalar, "l": [scalar, scalar]})


@pytest.mark.parametrize(
    "dtype",
    [
        np.dtype("f8"),
        np.dtype(">i2"),
        np.dtype("U7"),
        np.dtype("M8[us]"),
        np.dtype([("a", "<i4"), ("b", [("c", "f4", (2,))])]),
        np.dtype(object),
        np.dtype([(("title", "a"), "<i4")]),
        np.dtype({"names": ["a", "b"], "formats": ["i4", "i4"], "offsets": [0, 8], "itemsize": 16}),
        np.dtype([("a", "i1"), ("b", "f8")], align=True),
        np.dtype(("f8", (2, 3))),
        np.dtype("f8", metadata={"unit": "eV"}),
        np.dtype(np.longdouble),
    ],
    ids=str,
)
def test_numpy_dtype_objects(check, dtype):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. numpy's "metadata ... not saved"
        loaded = check({"dt": dtype, "in_list": [dtype]})
    dt = loaded["dt"]
    assert dt.__reduce__() == dtype.__reduce__()  # what pickle compares: every field
    assert (dt.isalignedstruct, dt.metadata, dt.shape) == (
        dtype.isalignedstruct,
        dtype.metadata,
        dtype.shape,
    )


_ALIGNED = np.dtype([("a", "i1"), ("b", "f8")], align=True)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: np.zeros(2, _ALIGNED),
        lambda: np.zeros(2, _ALIGNED)[0],
        lambda: np.zeros(2, np.dtype("f8", metadata={"unit": "eV"})),
    ],
    ids=["aligned_array", "aligned_scalar", "metadata_array"],
)
def test_array_dtype_flags_survive(roundtrip, factory):
    value = factory()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = roundtrip([value])[0]
    assert loaded.dtype.isalignedstruct == value.dtype.isalignedstruct
    assert loaded.dtype.metadata == value.dtype.metadata


def test_numpy_masked_array(check):
    arr = np.ma.masked_array([1.0, 2.0, 3.0], mask=[0, 1, 0], fill_value=-9.0)
    loaded = check([arr, arr])
    assert loaded[0] is loaded[1]
    assert loaded[0].mask.tolist() == [False, True, False]
    assert loaded[0].fill_value == -9.0
    assert loaded[0].sum() == 4.0


def test_numpy_matrix_and_recarray(check):
    mat = np.matrix([[1, 2], [3, 4]])
    rec = np.rec.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    loaded = check([mat, rec])
    assert (loaded[0] * loaded[0]).tolist() == [[7, 10], [15, 22]]
    assert loaded[1].a.tolist() == [1]


# -- Storable --------------------------------------------------------------------------


def test_storable_default_layout_keeps_sharing(check):
    x = [1, 2]
    obj = DefaultStorable(x, {"again": x})
    loaded = check([obj, x, obj])
    assert loaded[0].a is loaded[1] and loaded[0].b["again"] is loaded[1]
    assert loaded[0] is loaded[2]


def test_storable_custom_layout(check, store):
    obj = CustomStorable({"atoms": 3}, [1, 2, 3])
    loaded = check(obj)
    assert loaded.inits == 1
    store["cs"] = obj
    assert store["cs/input/steps"] == [1, 2, 3]
    assert store["cs/structure"] == {"atoms": 3}
    assert type(store["cs"]) is CustomStorable


def test_storable_in_a_cycle_through_a_list(check):
    obj = DefaultStorable(None, 1)
    obj.a = [obj]
    loaded = check(obj)
    assert loaded.a[0] is loaded


def test_storable_containing_itself_directly_is_refused(filename):
    # _restore builds the object from its parts, so no part can be the object itself
    obj = DefaultStorable(None, 1)
    obj.a = obj
    with pytest.raises(UnstorableError, match=r"x\[0\]/a.*contains itself"):
        tinystore.save({"x": [obj]}, filename)


@pytest.mark.parametrize("cls", [SelfInArgs, FreshListInArgs])
def test_reduce_arguments_containing_the_object_are_refused(filename, cls):
    # pickle recurses until RecursionError here; we must neither loop nor crash
    with pytest.raises(RecursionError):
        pickle.dumps(cls())
    with pytest.raises(UnstorableError, match=r"y\[1\]/a.*contains itself"):
        tinystore.save({"y": [0, cls()]}, filename)


def test_storable_reads_old_layout_version(filename, monkeypatch):
    tinystore.save(Versioned(1.5, unit="Ha"), filename)
    assert tinystore.load(filename).read_version == 1
    monkeypatch.setattr(Versioned, "_storage_version", 2)
    old = tinystore.load(filename)  # written under layout 1, read by the version-2 class
    assert (old.value, old.unit, old.read_version) == (1.5, "unknown", 1)
    tinystore.save(Versioned(2.5, unit="Ha"), filename)
    new = tinystore.load(filename)
    assert (new.value, new.unit, new.read_version) == (2.5, "Ha", 2)
    assert tinystore.load(filename, path="payload") == {"value": 2.5, "unit": "Ha"}


# -- partial access --------------------------------------------------------------------


def test_partial_access_to_parts(store):
    store["obj"] = Point(1, [2, 3])
    store["lst"] = [10, 11, 12, {"deep": [4, 5]}, 14]
    store["d"] = {"key": "value", "nested": {"k": (1, 2)}, "with space": 3}
    store["arr"] = {"a": np.arange(4.0)}
    assert store["obj/x"] == 1 and store["obj/y"] == [2, 3]
    assert store["obj/y/1"] == 3
    assert store["lst/3"] == {"deep": [4, 5]} and store["lst/4"] == 14
    assert store["lst/3/deep/0"] == 4
    assert store["d/key"] == "value" and store["d/nested/k"] == (1, 2)
    assert store["d/with space"] == 3
    assert_same_structure(np.arange(4.0), store["arr/a"])
    assert "obj/x" in store and "obj/zzz" not in store
    with pytest.raises(NodeNotFoundError):
        store["lst/99"]


def test_partial_access_resolves_shared_parts(store):
    x = [1, 2]
    store["pair"] = [x, {"y": x}]
    part = store["pair/1"]
    assert part == {"y": [1, 2]}
    assert store["pair/1/y"] == [1, 2]


def test_partial_access_to_a_part_that_refers_to_a_state_dict(store):
    params = {"k": 1}
    store["x"] = [SharedState(params), params]
    assert store["x/1"] == {"k": 1} and store["x/0/k"] == 1
    loaded = store["x"]
    assert loaded[0].params is loaded[1]


def test_partial_update_inside_a_shared_state_dict(store):
    params = {"k": 1}
    store["x"] = [SharedState(params), params]
    store["x/0/k"] = 2  # the state dict is one object: both holders see the update
    loaded = store["x"]
    assert loaded[1] == {"k": 2} and loaded[0].params is loaded[1]


def test_partial_access_on_reopened_file(filename):
    tinystore.save({"result": {"energy": -1.5, "forces": np.ones((2, 3))}}, filename)
    assert tinystore.load(filename, path="result/energy") == -1.5
    assert_same_structure(np.ones((2, 3)), tinystore.load(filename, path="result/forces"))


# -- loading gives new objects ---------------------------------------------------------


def test_loaded_objects_are_new_and_independent(filename):
    arr = np.arange(3.0)
    obj = {"list": [1], "arr": arr, "ba": bytearray(b"ab"), "obj": Point(1, [2]), "set": {1}}
    tinystore.save(obj, filename)
    arr[0] = 99.0  # mutating the original after saving does not change what was saved
    obj["list"].append("mutated")
    first = tinystore.load(filename)
    first["list"].append(2)
    first["arr"][1] = -1
    first["ba"][0] = 0
    first["obj"].y.append(3)
    first["set"].add(2)
    second = tinystore.load(filename)
    assert second["list"] == [1]
    assert second["arr"].tolist() == [0.0, 1.0, 2.0]
    assert second["ba"] == bytearray(b"ab")
    assert second["obj"].y == [2]
    assert second["set"] == {1}


def test_store_item_access_returns_copies(store):
    store["x"] = {"a": [1], "arr": np.zeros(2)}
    got = store["x"]
    got["a"].append(2)
    got["arr"][0] = 5
    assert store["x"]["a"] == [1] and store["x"]["arr"][0] == 0
    part = store["x/a"]
    part.append(3)
    assert store["x/a"] == [1]


# -- errors ----------------------------------------------------------------------------


def _local_function():
    def inner():
        return 1

    return inner


def _local_class():
    class Local:
        pass

    return Local


def _generator():
    yield 1


UNSTORABLE = {
    "lambda": lambda: lambda: 0,
    "local_function": _local_function,
    "local_class": _local_class,
    "local_class_instance": lambda: _local_class()(),
    "open_file": lambda: open(__file__, "rb"),  # noqa: SIM115 - closed by the test
    "generator": lambda: _generator(),
    "lock": lambda: threading.Lock(),
    "module_lambda_by_name": lambda: LAMBDA,
    "mappingproxy": lambda: types.MappingProxyType({"a": 1}),
    "memoryview": lambda: memoryview(b"abc"),
    "weakref": lambda: weakref.ref(Point),
    "module": lambda: math,
}

LAMBDA = lambda x: x  # noqa: E731 - stored by name fails: its __qualname__ is <lambda>


@pytest.mark.parametrize("factory", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_unstorable_error_names_the_path(filename, factory):
    bad = factory()
    try:
        obj = {"result": {"callbacks": [1, 2, bad]}}
        with pytest.raises(UnstorableError) as info:
            tinystore.save(obj, filename)
        assert isinstance(info.value, pickle.PicklingError)
        assert re.search(r"callbacks(\[2\]|/2)", str(info.value)), str(info.value)
    finally:
        if isinstance(bad, io.IOBase):
            bad.close()


@pytest.mark.parametrize("factory", UNSTORABLE.values(), ids=UNSTORABLE.keys())
def test_failed_save_writes_nothing(filename, factory):
    bad = factory()
    try:
        tinystore.save({"before": [1, 2]}, filename)
        with pytest.raises(UnstorableError):
            tinystore.save({"new": 1, "bad": Obj(inner=[bad])}, filename)
        assert tinystore.load(filename) == {"before": [1, 2]}
        with tinystore.open(filename) as s:
            s["kept"] = 1
            with pytest.raises(UnstorableError, match=r"attr"):
                s["group/item"] = {"fine": 1, "attr": bad}
            assert "group/item" not in s
            assert "group" not in s
            assert s["kept"] == 1
    finally:
        if isinstance(bad, io.IOBase):
            bad.close()


def test_unstorable_inside_object_attribute_path(store):
    with pytest.raises(UnstorableError) as info:
        store["run"] = Obj(settings={"hook": lambda: 0})
    assert "settings/hook" in str(info.value)


def test_missing_class_on_load_names_it(filename, monkeypatch):
    import objects_cases

    tinystore.save({"runs": [Point(1, 2)]}, filename)
    monkeypatch.delattr(objects_cases, "Point")
    with pytest.raises(UnloadableError, match="objects_cases:Point") as info:
        tinystore.load(filename)
    assert isinstance(info.value, pickle.UnpicklingError)


def test_failing_setstate_on_load_names_the_path(filename):
    tinystore.save({"runs": [1, FailsOnLoad()]}, filename)
    with pytest.raises(UnloadableError, match=r"runs(\[1\]|/1).*refusing to be loaded"):
        tinystore.load(filename)


def test_cloudpickle_fallback_only_for_the_offending_part(filename):
    obj = {"data": [1, 2, np.arange(3)], "f": lambda x: x + 1, "obj": Obj(g=lambda: "g")}
    tinystore.save(obj, filename, cloudpickle_fallback=True)
    kinds = node_kinds(stored_tree(filename))
    assert kinds["cloudpickle"] == 2, kinds
    loaded = tinystore.load(filename)
    assert loaded["f"](1) == 2 and loaded["obj"].g() == "g"
    assert_same_structure(obj["data"], loaded["data"])
    assert tinystore.load(filename, path="data/1") == 2
    with tinystore.open(filename, "r") as s:
        assert s["data/2"].tolist() == [0, 1, 2]
        assert s["obj/g"]() == "g"


def test_cloudpickle_fallback_keeps_sharing_with_the_fallback_part(filename):
    shared = [1]
    func = lambda: shared  # noqa: E731
    obj = [func, func, shared]
    tinystore.save(obj, filename, cloudpickle_fallback=True)
    # the list the function holds, met after it, joins it in the fallback stream
    assert node_kinds(stored_tree(filename))["cloudpickle"] == 2
    loaded = tinystore.load(filename)
    assert loaded[0] is loaded[1]
    assert loaded[0]() == [1]
    assert loaded[0]() is loaded[2]


def test_without_fallback_no_pickle_even_for_odd_objects(check, filename):
    check([SINGLETON, FalsyState(0), Empty(), MyList(), slice(None)])
    assert_no_pickle(filename)


# -- deep structures -------------------------------------------------------------------


def _chain(n):
    head = None
    for i in range(n):
        head = Node(i, head)
    return head


def test_deep_linked_list(roundtrip, filename):
    n = 100_000
    head = _chain(n)
    with pytest.raises(RecursionError):
        pickle.dumps(head)  # pickle recurses once per object; we use explicit stacks
    limit = sys.getrecursionlimit()
    loaded = roundtrip(head)
    assert sys.getrecursionlimit() == limit
    count, cur = 0, loaded
    while cur is not None:
        assert type(cur) is Node and cur.value == n - 1 - count
        count += 1
        cur = cur.next
    assert count == n
    assert_no_pickle(filename)


@pytest.mark.parametrize("depth", [1_000, 10_000])
def test_deep_nested_list(roundtrip, depth):
    root = cur = []
    for i in range(depth):
        nxt = [i]
        cur.append(nxt)
        cur = nxt
    loaded = roundtrip(root)
    for i in range(depth):
        assert len(loaded) in (1, 2)
        loaded = loaded[-1]
        assert loaded[0] == i
    assert loaded == [depth - 1]


def test_deep_nested_dicts_and_tuples(roundtrip):
    obj = "leaf"
    for i in range(3_000):
        obj = {"k": (obj, i)} if i % 2 else [obj]
    loaded = roundtrip(obj)
    assert_same_structure(obj, loaded)
