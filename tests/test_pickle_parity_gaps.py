"""Pickle parity: the gaps of issue #13, items 1-6 and 8, on every backend.

Each case is compared with ``pickle.loads(pickle.dumps(obj, 4))``: same
types, values and, where pickle keeps or breaks identity (classes made by
a copyreg reducer, ``type(None)``), the same identity.  Every object here
is stored as nodes: no case may use the cloudpickle fallback.
"""

from __future__ import annotations

import copyreg
import dataclasses
import os
import pickle
import subprocess
import sys
import textwrap
import typing

import numpy as np
import pytest
from conftest import location
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from objects_cases import (
    Node,
    assert_no_pickle,
    node_kinds,
    pickled,
    stored_tree,
)

import tinystore
import tinystore.objects.encode as encode_module
from tinystore.errors import CorruptStoreError, UnstorableError
from tinystore.storage.leaves import decode_inline, dtype_from_json, encode_inline

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "helpers"))
from procs import child_env  # noqa: E402

PROTOCOL = 4


# -- 1. ints of any size ------------------------------------------------------------


def _big(digits: int, sign: int = 1) -> int:
    return sign * (10 ** (digits - 1) + 12345)


@pytest.mark.parametrize("digits", [5_000, 100_000, 1_000_000])
def test_ints_of_any_size(roundtrip, filename, digits):
    big, negative = _big(digits), _big(digits, -1)
    value = {"big": big, "neg": [negative, 2**70, -1], "key": {big: "v"}, "set": {negative}}
    expected = pickle.loads(pickle.dumps(value, PROTOCOL))
    loaded = roundtrip(value)
    # compared by hand: repr() of such ints fails, so assertion messages would too
    assert type(loaded["big"]) is int and loaded["big"] == expected["big"] == big
    assert [type(x) for x in loaded["neg"]] == [int, int, int]
    assert loaded["neg"] == expected["neg"] == [negative, 2**70, -1]
    assert list(loaded["key"]) == list(expected["key"]) == [big]
    assert loaded["set"] == expected["set"] == {negative}
    assert_no_pickle(filename)


def test_big_int_attribute_and_browsing(filename):
    big = _big(10_000)
    tinystore.save({"n": Node(big), "l": [big, -big]}, filename)
    assert tinystore.load(filename, path="n/value") == big
    with tinystore.open(filename, "r") as s:
        text = s.tree()  # no decimal conversion of the value (Python refuses it)
        details = [s.node(p).details() for p in ("n/value", "l", "l/0")]
        html = s._repr_html_()
    assert "int of 33216 bits" in text and "int of 33216 bits" in html
    assert "int of 33216 bits" in details[0]["preview"]
    assert details[1]["preview"].startswith("[<int of")  # cut to the cell width


def test_int_entries_small_stay_compact_big_become_hex():
    assert encode_inline(2**63 - 1) == 2**63 - 1  # plain JSON
    assert encode_inline(-(2**70)) == {"L": str(-(2**70))}  # decimal, as before
    big = -_big(1_000)
    entry = encode_inline(big)
    assert entry == {"H": format(big, "x")} and entry["H"].startswith("-")
    assert decode_inline(entry) == big


def test_decimal_entries_load_whatever_the_int_limit():
    old = sys.get_int_max_str_digits()
    try:
        sys.set_int_max_str_digits(0)
        text = str(_big(6_000, -1))  # written in decimal by older versions
        sys.set_int_max_str_digits(640)
        assert decode_inline({"L": text}) == _big(6_000, -1)
        assert decode_inline({"L": "-" + "9" * 700}) == -(10**700 - 1)
    finally:
        sys.set_int_max_str_digits(old)


# -- 2. type(None), type(...), type(NotImplemented) ---------------------------------------


@dataclasses.dataclass
class Annotated:
    name: typing.Optional[str] = None
    size: int | None = None


def test_singleton_types_are_themselves(parity, filename):
    singletons = [type(None), type(...), type(NotImplemented)]
    obj = [*singletons, type(None)]
    loaded, expected = parity(obj), pickled(obj)
    for got, want, original in zip(loaded, expected, singletons):
        assert got is want is original
    kinds = node_kinds(stored_tree(filename))
    assert kinds["reduce"] >= 3 and kinds["cloudpickle"] == 0
    assert tinystore.load(filename, safe=True)[0] is type(None)


@pytest.mark.parametrize(
    "hint",
    [
        typing.Optional[int],
        int | None,
        typing.Union[int, str, None],
        typing.Optional[typing.List[int]],
        dict[str, int | None],
    ],
    ids=["Optional", "pipe", "Union", "Optional_List", "dict_of_pipe"],
)
def test_type_hints_with_none(parity, hint):
    obj = {"hint": hint, "again": hint}
    loaded, expected = parity(obj), pickled(obj)
    assert loaded["hint"] == expected["hint"] == hint
    assert type(loaded["hint"]) is type(hint)
    assert loaded["hint"] is loaded["again"]


def test_dataclass_type_hints(parity):
    hints = typing.get_type_hints(Annotated)
    obj = [hints, Annotated("a", 3)]
    loaded, expected = parity(obj), pickled(obj)
    assert loaded[0] == expected[0] == hints
    assert (loaded[1].name, loaded[1].size) == ("a", 3)


# -- 3. copyreg before "class by import path" ---------------------------------------------


class FactoryMeta(type):
    """A metaclass whose classes are rebuilt by a factory (registered with copyreg)."""


FACTORY_CALLS: list = []


class FactoryBase:
    pass


def make_class(name: str, value: int) -> type:
    FACTORY_CALLS.append(name)
    return FactoryMeta(name, (FactoryBase,), {"value": value, "__module__": __name__})


def _reduce_factory_class(cls: type):
    return make_class, (cls.__name__, cls.value)


copyreg.pickle(FactoryMeta, _reduce_factory_class)

#: importable by name too: pickle still goes through the reducer (a new class)
ByName = make_class("ByName", 7)


def test_copyreg_reducer_of_a_metaclass_wins_over_the_name(roundtrip, filename):
    FACTORY_CALLS.clear()
    pickled = pickle.loads(pickle.dumps([ByName, ByName], PROTOCOL))
    assert FACTORY_CALLS == ["ByName"]  # pickle's order: the reducer, not the name
    FACTORY_CALLS.clear()
    loaded = roundtrip([ByName, ByName])
    assert FACTORY_CALLS == ["ByName"]  # rebuilt once, by the factory
    for copy in (pickled, loaded):
        assert copy[0] is copy[1] and copy[0] is not ByName
        assert type(copy[0]) is FactoryMeta and copy[0].value == 7
    assert_no_pickle(filename)


def test_factory_classes_and_their_instances(roundtrip, filename):
    cls = make_class("Made", 3)
    obj = cls()
    obj.attr = [1, 2]
    value = {"cls": cls, "obj": obj, "again": obj}
    pickled = pickle.loads(pickle.dumps(value, PROTOCOL))
    loaded = roundtrip(value)
    for copy in (pickled, loaded):
        assert type(copy["cls"]) is FactoryMeta and copy["cls"] is not cls
        assert type(copy["obj"]) is copy["cls"] and copy["obj"] is copy["again"]
        assert copy["cls"].value == 3 and copy["obj"].attr == [1, 2]
    assert_no_pickle(filename)


def test_sympy_undefined_function(roundtrip, filename):
    sympy = pytest.importorskip("sympy")
    f = sympy.Function("f")
    x = sympy.Symbol("x")
    expr = f(x) + 2 * x
    value = [f, f, expr, sympy.Derivative(f(x), x)]
    pickled = pickle.loads(pickle.dumps(value, PROTOCOL))
    loaded = roundtrip(value)
    for copy in (pickled, loaded):
        assert copy[0] == f and copy[0] is copy[1] and type(copy[0]) is type(f)
        assert copy[2] == expr and copy[3] == sympy.Derivative(f(x), x)
        assert copy[2].subs(x, 1) == f(1) + 2
    assert_no_pickle(filename)


def test_class_without_module_says_so(filename):
    orphan = type("Orphan", (), {"__module__": None})
    with pytest.raises(pickle.PicklingError):
        pickle.dumps(orphan)
    with pytest.raises(UnstorableError, match="has no module") as info:
        tinystore.save({"x": [orphan]}, filename)
    assert "__main__" not in str(info.value) and "x[0]" in str(info.value)


class Tagged:
    """Stored by an adapter that lists it in ``types``, and registered with copyreg."""

    def __init__(self, value, via="made"):
        self.value, self.via = value, via


class TaggedByPredicate(Tagged):
    """Picked by the same adapter's ``accepts``, and registered with copyreg."""


def _rebuild_tagged(cls, value):
    return cls(value, "copyreg")


def _reduce_tagged(obj):
    return _rebuild_tagged, (type(obj), obj.value)


class TaggedAdapter(tinystore.Adapter):
    kind, types = "test_pickle_parity_gaps.Tagged", (Tagged,)

    def accepts(self, cls):
        return issubclass(cls, TaggedByPredicate)

    def encode(self, obj):
        return {}, {"value": obj.value}

    def decode(self, attrs, children, remember):
        values = yield children
        return Tagged(values["value"], "adapter")


tinystore.register_adapter(TaggedAdapter())
copyreg.pickle(Tagged, _reduce_tagged)
copyreg.pickle(TaggedByPredicate, _reduce_tagged)


def test_copyreg_comes_between_exact_and_predicate_adapters(roundtrip):
    loaded = roundtrip([Tagged(1), TaggedByPredicate(2)])
    assert (type(loaded[0]), loaded[0].via, loaded[0].value) == (Tagged, "adapter", 1)
    pickled = pickle.loads(pickle.dumps(TaggedByPredicate(2), PROTOCOL))
    for copy in (loaded[1], pickled):
        assert (type(copy), copy.via, copy.value) == (TaggedByPredicate, "copyreg", 2)


# -- 4. "cannot be stored" is a TypeError, like pickle's ----------------------------------


def _unpicklables(tmp_path):
    handle = open(tmp_path / "open.txt", "w")  # noqa: SIM115 - closed by the caller
    return [staticmethod(len), classmethod(len), handle], handle


def test_unstorable_error_caught_like_pickles(filename, tmp_path):
    values, handle = _unpicklables(tmp_path)
    try:
        for value in values:
            with pytest.raises(TypeError):
                pickle.dumps(value, PROTOCOL)
            with pytest.raises(TypeError, match=r"at x\[1\]"):
                tinystore.save({"x": [1, value]}, filename)
            with pytest.raises(pickle.PicklingError, match=r"at x\[1\]"):
                tinystore.save({"x": [1, value]}, filename)
            with pytest.raises(UnstorableError):
                tinystore.save(value, filename)
    finally:
        handle.close()


# -- 5. __newobj__ and __newobj_ex__ are not called -------------------------------------

NEWOBJ_CALLS: list = []


def __newobj__(cls, value):  # two parameters: calling it with the reduce args fails
    NEWOBJ_CALLS.append(value)
    return cls.__new__(cls)


def __newobj_ex__(cls, args, kwargs):  # noqa: N807
    NEWOBJ_CALLS.append((args, kwargs))
    return cls.__new__(cls, *args, **kwargs)


class ViaNewobj:
    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.new_args = (args, kwargs)
        return obj

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __reduce__(self):
        return __newobj__, (type(self), self.a, self.b), {"a": self.a, "b": self.b}


class ViaNewobjEx(ViaNewobj):
    def __reduce__(self):
        return __newobj_ex__, (type(self), (self.a,), {"b": self.b}), {"a": self.a, "b": self.b}


class ViaLocalNewobj(ViaNewobj):
    def __reduce__(self):
        def __newobj__(cls, *args):  # local: pickle never stores it, nor may we
            raise AssertionError("never called")

        return __newobj__, (type(self), self.a), {"a": self.a, "b": self.b}


class WrongNewobjClass(ViaNewobj):
    def __reduce__(self):
        return __newobj__, (ViaNewobj, self.a)


@pytest.mark.parametrize(
    "obj, new_args",
    [
        (ViaNewobj(1, [2]), ((1, [2]), {})),
        (ViaNewobjEx(1, [2]), ((1,), {"b": [2]})),
        (ViaLocalNewobj(1, [2]), ((1,), {})),
    ],
    ids=["newobj", "newobj_ex", "local_newobj"],
)
def test_newobj_convention(roundtrip, filename, obj, new_args):
    NEWOBJ_CALLS.clear()
    expected = pickle.loads(pickle.dumps([obj, obj], PROTOCOL))
    loaded = roundtrip([obj, obj])
    assert_no_pickle(filename)
    assert NEWOBJ_CALLS == []  # neither pickle nor tinystore calls the function
    for copy in (loaded, expected):
        assert copy[0] is copy[1] and type(copy[0]) is type(obj)
        assert copy[0].new_args == new_args and (copy[0].a, copy[0].b) == (1, [2])
    assert tinystore.load(filename, path="0/s/b") == [2]  # browsable: its state


def test_newobj_with_the_wrong_class_is_refused_like_pickle(filename):
    with pytest.raises(pickle.PicklingError, match="wrong class"):
        pickle.dumps(WrongNewobjClass(1, 2), PROTOCOL)
    with pytest.raises(UnstorableError, match=r"__newobj__ at x has the wrong class"):
        tinystore.save({"x": WrongNewobjClass(1, 2)}, filename)


# -- 6. every dtype numpy can build ------------------------------------------------------


def _same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """Equal, and equal in every attribute numpy keeps (``==`` ignores alignment,
    and the scalar type: ``numpy.record`` or a union's ``int32``)."""
    if a.type is not b.type:
        return False
    if a != b or (a.itemsize, a.isalignedstruct, a.names) != (
        b.itemsize,
        b.isalignedstruct,
        b.names,
    ):
        return False
    if a.subdtype is not None:
        return a.shape == b.shape and _same_dtype(a.base, b.base)
    if a.names is None:
        return a.str == b.str
    try:
        if a.descr != b.descr:
            return False
    except ValueError:  # overlapping or out-of-order fields have no descr
        pass
    if list(a.fields) != list(b.fields):
        return False
    return all(
        a.fields[k][1:] == b.fields[k][1:] and _same_dtype(a.fields[k][0], b.fields[k][0])
        for k in a.fields
    )


NESTED_DTYPES = {
    "nested_subarray": np.dtype([("a", (">f4", (2, 2)), (1,))]),
    "subarray_of_struct": np.dtype([("a", ([("x", "<i2")], (2,)), (3,))]),
    "aligned": np.dtype([("a", "i1"), ("b", "<f8")], align=True),
    "aligned_titles": np.dtype([(("T", "a"), "i1"), ("b", "<f8")], align=True),
    "nested_aligned": np.dtype(
        [("x", np.dtype([("a", "i1"), ("b", ">f8")], align=True)), ("y", "i1")]
    ),
    "aligned_outer": np.dtype([("x", [("a", "i1"), ("b", "<f8")]), ("y", "i1")], align=True),
    "reversed_offsets": np.dtype(
        {"names": ["a", "b"], "formats": ["<i4", "<u2"], "offsets": [4, 0]}
    ),
    "overlapping": np.dtype({"names": ["a", "b"], "formats": ["<i4", "<i2"], "offsets": [0, 0]}),
    "padded": np.dtype({"names": ["a"], "formats": ["<i4"], "offsets": [2], "itemsize": 12}),
    "titles": np.dtype([(("title", "a"), "<i4"), ("b", "S3")]),
    "deep": np.dtype([("a", [("b", [("c", ("<i2", (2,)), (2,))])])]),
    # fields over another scalar type: numpy.record (recarrays), or a union
    "record": np.dtype((np.record, [("x", "<i8"), ("y", "<U1")])),
    "record_aligned": np.dtype(
        (np.record, {"names": ["a", "b"], "formats": ["u1", "<f8"]}), align=True
    ),
    "record_inside": np.dtype([("r", (np.record, [("q", "<i2")])), ("s", "i1")]),
    "union": np.dtype(("<i4", [("lo", "<i2"), ("hi", "<i2")])),
}


def _filled(dtype: np.dtype, n: int) -> np.ndarray:
    arr = np.zeros(n, dtype)
    raw = arr.view(np.uint8)
    raw[...] = np.arange(raw.size, dtype=np.uint64) % 251  # every byte, padding too
    _valid_strings(arr)
    return arr


def _valid_strings(arr: np.ndarray) -> None:
    """Unicode fields hold code points (pickle refuses others in object arrays)."""
    for name in arr.dtype.names or ():
        part = arr[name]
        if part.dtype.names is not None:
            _valid_strings(part)
        elif part.dtype.kind == "U":
            part[...] = "é\U0001d11e"[: part.dtype.itemsize // 4]


def _check_dtype_values(roundtrip, dtype: np.dtype) -> None:
    n_big = 4096 // max(dtype.itemsize, 1) + 1  # stored outside its record
    objects = np.zeros(2, [("o", object), ("v", dtype)])
    objects["o"] = [None, "x"]
    objects["v"] = _filled(dtype, 2)
    value = {
        "dtype": dtype,
        "small": _filled(dtype, 2),
        "big": _filled(dtype, n_big),
        "scalar": _filled(dtype, 1)[0],
        "objects": objects,
    }
    try:
        expected = pickle.loads(pickle.dumps(value, PROTOCOL))
    except UnicodeDecodeError:  # overlapping str fields: no valid value for both
        reject()
    loaded = roundtrip(value)
    assert _same_dtype(loaded["dtype"], expected["dtype"]) and _same_dtype(loaded["dtype"], dtype)
    for key in ("small", "big", "scalar"):
        assert type(loaded[key]) is type(expected[key]), key
        assert _same_dtype(loaded[key].dtype, expected[key].dtype), key
        assert loaded[key].tobytes() == expected[key].tobytes(), key
    assert _same_dtype(loaded["objects"].dtype, expected["objects"].dtype)
    assert loaded["objects"]["o"].tolist() == [None, "x"]
    # padding bytes of object arrays are not kept by pickle either: the fields
    assert _field_bytes(loaded["objects"]["v"]) == _field_bytes(expected["objects"]["v"])


def _field_bytes(arr: np.ndarray) -> list:
    """The bytes of every (nested) field of a structured array, padding left out."""
    if arr.dtype.names is None:
        return [arr.tobytes()]
    return [b for name in arr.dtype.names for b in _field_bytes(arr[name])]


@pytest.mark.parametrize("dtype", NESTED_DTYPES.values(), ids=NESTED_DTYPES.keys())
def test_nested_dtypes_round_trip(roundtrip, filename, dtype):
    _check_dtype_values(roundtrip, dtype)
    assert_no_pickle(filename)


@pytest.mark.parametrize("na", [{}, {"na_object": None}], ids=["plain", "na_none"])
def test_string_dtype(roundtrip, filename, na):
    """numpy's new-style StringDType: no description, stored by its reduce value."""
    dtype = np.dtypes.StringDType(**na)
    items = [["a", "é\U0001d11e" * 50], ["", None if na else "z"]]
    arr = np.asfortranarray(np.array(items, dtype=dtype))
    value = {"dtype": dtype, "arr": arr, "again": arr}
    expected = pickle.loads(pickle.dumps(value, PROTOCOL))
    loaded = roundtrip(value)
    assert type(loaded["dtype"]) is type(dtype) and loaded["dtype"] == expected["dtype"]
    got, want = loaded["arr"], expected["arr"]
    assert got.dtype == want.dtype == dtype and got.tolist() == want.tolist() == items
    assert got.flags.f_contiguous and got is loaded["again"]
    assert_no_pickle(filename)


def test_metadata_of_nested_dtypes_kept_by_dtype_objects(roundtrip):
    inner = np.dtype("<f8", metadata={"unit": "eV"})
    dtype = np.dtype([("a", inner), ("b", (inner, (2,)))])
    expected = pickle.loads(pickle.dumps(dtype, PROTOCOL))
    loaded = roundtrip([dtype])[0]
    assert _same_dtype(loaded, expected)
    for dt in (loaded, expected):
        assert dt.fields["a"][0].metadata == {"unit": "eV"}
        assert dt.fields["b"][0].base.metadata == {"unit": "eV"}


def test_damaged_big_int_and_dtype_entries_are_named():
    for entry in ({"H": "zz"}, {"H": "1_0"}, {"H": 5}, {"L": "12a"}):
        with pytest.raises(CorruptStoreError, match="damaged leaf entry"):
            decode_inline(entry)
    for descr in ({"names": 5}, {"base": "<f8"}, {"names": ["a"], "formats": ["<f8"]}):
        with pytest.raises(CorruptStoreError, match="invalid stored dtype"):
            dtype_from_json(descr)
    with pytest.raises(CorruptStoreError, match="Python objects"):
        dtype_from_json({"base": "|O", "shape": [2]})


_SIMPLE = st.sampled_from(["i1", "<i4", ">u2", ">f8", "<f2", "<c8", "S3", ">U2", "<M8[s]", "V3"])


def _build(fields, align, layout, pad):
    """A structured dtype from ``(name, format, title)`` fields, or None if numpy refuses."""
    names = [f"f{i}" for i in range(len(fields))]
    formats = [f[0] for f in fields]
    titles = [f"t{i}" if f[1] else None for i, f in enumerate(fields)]
    spec = {"names": names, "formats": formats}
    if any(titles):
        spec["titles"] = titles
    if layout:  # explicit offsets: gaps, reversed, or all at 0 (overlapping)
        sizes = [np.dtype(f).itemsize for f in formats]
        if layout == "reversed":
            ends = np.cumsum(sizes[::-1])
            offsets = list((ends - sizes[::-1])[::-1])
        elif layout == "overlap":
            offsets = [0] * len(fields)
        else:
            offsets = [int(sum(sizes[:i])) + 8 * i for i in range(len(fields))]
        spec["offsets"] = [int(o) for o in offsets]
        spec["itemsize"] = max([o + s for o, s in zip(offsets, sizes)] + [0]) + pad
    try:
        return np.dtype(spec, align=align)
    except (ValueError, TypeError):
        return None


def _extend(inner):
    subarray = st.tuples(inner, st.lists(st.integers(1, 3), min_size=1, max_size=2)).map(
        lambda t: np.dtype((t[0], tuple(t[1])))
    )
    fields = st.lists(st.tuples(inner | subarray, st.booleans()), min_size=1, max_size=3)
    layout = st.sampled_from([None, None, "gaps", "reversed", "overlap"])
    structured = st.builds(_build, fields, st.booleans(), layout, st.integers(0, 8))
    return structured.filter(lambda d: d is not None)


ANY_DTYPE = st.recursive(_SIMPLE.map(np.dtype), _extend, max_leaves=6).filter(
    lambda d: d.names is not None
)


@pytest.mark.parametrize("backend_name", ["memory", "hdf5", "json"])
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(dtype=ANY_DTYPE)
def test_any_structured_dtype_round_trips(tmp_path, backend_name, dtype):
    where = location(backend_name, tmp_path)

    def roundtrip(obj):
        tinystore.save(obj, where)
        return tinystore.load(where)

    _check_dtype_values(roundtrip, dtype)


# -- 8. endless depth ---------------------------------------------------------------------


class Endless:
    """Each state is a new instance: never ends (pickle: RecursionError)."""

    def __getstate__(self):
        return {"next": Endless()}


class EndlessReduce:
    def __reduce__(self):
        return EndlessReduce, (), None, iter([EndlessReduce()])


def _chain(n: int):
    head = None
    for i in range(n):
        head = Node(i, head)
    return head


@pytest.mark.parametrize(
    "factory, endless",
    [(Endless, True), (EndlessReduce, True), (lambda: _chain(60), False)],
    ids=["getstate", "reduce", "chain"],
)
def test_depth_limit_names_the_path(filename, monkeypatch, factory, endless):
    monkeypatch.setattr(encode_module, "MAX_DEPTH", 50)
    obj = factory()
    if endless:
        with pytest.raises(RecursionError):
            pickle.dumps({"x": [obj]}, PROTOCOL)
    with pytest.raises(UnstorableError, match=r"more than 50 levels deep") as info:
        tinystore.save({"x": [obj]}, filename, cloudpickle_fallback=True)
    assert str(info.value).startswith("cannot store ")
    assert " at x[0]/" in str(info.value) and "more levels" in str(info.value)


def test_structures_up_to_the_limit_are_stored(roundtrip, monkeypatch):
    monkeypatch.setattr(encode_module, "MAX_DEPTH", 50)
    loaded = roundtrip(_chain(50))  # a linked list as long as the limit
    count = 0
    while loaded is not None:
        loaded, count = loaded.next, count + 1
    assert count == 50


def test_the_limit_is_what_the_docs_say():
    assert encode_module.MAX_DEPTH == 300_000
    docs = os.path.join(os.path.dirname(__file__), "..", "docs", "guarantees.rst")
    with open(docs, encoding="utf-8") as f:
        assert "300,000 levels" in f.read()


_ENDLESS_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import tinystore
    sys.path.insert(0, {tests!r})
    from test_pickle_parity_gaps import Endless
    with open("/proc/self/status") as f:
        size = next(int(line.split()[1]) for line in f if line.startswith("VmSize:")) * 1024
    cap = size + {cap} * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    try:
        tinystore.save({{"x": Endless()}}, {where!r})
    except tinystore.errors.UnstorableError as exc:
        print("UNSTORABLE", str(exc)[:300])
    """
)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="needs RLIMIT_AS and /proc")
def test_endless_object_stops_under_a_memory_cap(backend, tmp_path):
    """The real limit, in a child process capped at 1 GB more than it starts
    with (saving 300,000 levels takes about 350 MB): if the limit were gone,
    the child would fail with MemoryError, not take the machine's memory."""
    where = location(backend, tmp_path)
    tests = os.path.dirname(os.path.abspath(__file__))
    script = _ENDLESS_SCRIPT.format(tests=tests, cap=1024, where=where)
    env = child_env()  # the tinystore under test; the script finds this module itself
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "UNSTORABLE cannot store Endless at x/next/next" in done.stdout
    assert "more than 300,000 levels deep" in done.stdout
