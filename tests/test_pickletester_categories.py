"""The ground of CPython's ``pickletester.AbstractPickleTests``, in our own cases.

CPython's own pickle test suite sorts what a pickler must get right into
categories (one test method each).  For every category that concerns what
is stored, not how pickle's opcodes lay it out, this module has cases of its
own (written here, not taken from CPython), run through ``save``/``load`` on
every backend and compared with ``pickle.loads(pickle.dumps(obj, 4))``:
types, values, sharing and cycles must match, and nothing may be stored as
pickle bytes.  Where pickle refuses an object, tinystore must refuse it too,
with :class:`~tinystore.errors.UnstorableError` (a ``pickle.PicklingError``).

:data:`CATEGORIES` maps every test method of ``AbstractPickleTests`` to the
cases here that cover its ground, or to the reason it has none (opcode
layout, framing, protocol 5 buffers); :func:`test_every_category_is_mapped`
reads the installed ``test.pickletester`` when there is one, so a category
that a new Python adds fails here until it is covered.
"""

from __future__ import annotations

import builtins
import copyreg
import functools
import math
import operator
import os
import pickle
import sys
import time
import weakref

import numpy as np
import pytest

import tinystore
from tinystore.errors import UnloadableError, UnstorableError

PROTOCOL = 4


@pytest.fixture
def refused(filename):
    """``refused(obj)``: pickle refuses ``obj``, and so does tinystore (UnstorableError)."""

    def run(obj):
        with pytest.raises(Exception) as by_pickle:
            pickle.dumps(obj, protocol=PROTOCOL)
        with pytest.raises(UnstorableError) as by_us:
            tinystore.save(obj, filename)
        assert isinstance(by_us.value, pickle.PicklingError)
        return by_pickle.value, by_us.value

    return run


# -- classes the cases use (importable: stored by import path) ----------------------------


class Bag:
    """An instance whose attributes are whatever it is given."""

    def __init__(self, **attrs):
        self.__dict__.update(attrs)


class Key(Bag):
    """A hashable instance (hash by identity) that can hold the container it keys."""


class ListSub(list):
    pass


class DictSub(dict):
    pass


class SetSub(set):
    pass


class FrozenSub(frozenset):
    pass


class TupleSub(tuple):
    pass


class IntSub(int):
    pass


class FloatSub(float):
    pass


class ComplexSub(complex):
    pass


class StrSub(str):
    pass


class BytesSub(bytes):
    pass


class BytearraySub(bytearray):
    pass


class SlottedListSub(list):
    __slots__ = ("tag", "note")


class ListLike:
    """Rebuilt through reduce ``listitems``: ``extend`` (or ``append``) gets the items."""

    def __init__(self):
        self.items = []

    def append(self, item):
        self.items.append(item)

    def extend(self, items):
        self.items.extend(items)

    def __reduce__(self):
        return type(self), (), None, iter(self.items)


class DictLike:
    """Rebuilt through reduce ``dictitems``: ``__setitem__`` gets the pairs."""

    def __init__(self):
        self.pairs = {}

    def __setitem__(self, key, value):
        self.pairs[key] = value

    def __reduce__(self):
        return type(self), (), None, None, iter(self.pairs.items())


class SelfInState:
    """``__getstate__``/``__setstate__`` whose state holds the object itself."""

    def __init__(self):
        self.me = self
        self.tag = "s"

    def __getstate__(self):
        return {"me": self.me, "tag": self.tag}

    def __setstate__(self, state):
        self.__dict__.update(state)


class ByReduce:
    """``__reduce__`` with constructor arguments and a state dict."""

    def __init__(self, a, b=None):
        self.a, self.b = a, b
        self.calls = 0

    def __reduce__(self):
        return ByReduce, (self.a,), {"b": self.b, "calls": self.calls + 1}


class NewArgs(int):
    """``__new__`` needs more than the class: ``__getnewargs__`` gives it."""

    def __new__(cls, value, label):
        obj = super().__new__(cls, value)
        obj.label = label
        return obj

    def __getnewargs__(self):
        return int(self), self.label


class NewArgsEx:
    """``__new__`` with keyword-only arguments: ``__getnewargs_ex__``."""

    def __new__(cls, *args, scale, **rest):
        obj = super().__new__(cls)
        obj.args, obj.scale, obj.rest = args, scale, rest
        return obj

    def __getnewargs_ex__(self):
        return self.args, {"scale": self.scale, **self.rest}


class IntWithNew(int):
    """A C ``__new__`` (int's) overridden by a Python one that takes a second argument."""

    def __new__(cls, value, offset=0):
        return super().__new__(cls, value + offset)


class ReduceBeatsReduceEx:
    """Only ``__reduce__``: ``object.__reduce_ex__`` must call it."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        return ReduceBeatsReduceEx, (self.v * 10,)


class ReduceExBeatsReduce:
    """Both: ``__reduce_ex__`` wins, and gets the protocol."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        raise AssertionError("pickle calls __reduce_ex__ first")

    def __reduce_ex__(self, protocol):
        return ReduceExBeatsReduce, (f"{self.v}@{protocol}",)


class ReduceExCallsBase:
    """``__reduce_ex__`` that defers to ``object.__reduce_ex__``."""

    def __init__(self, v):
        self.v = v

    def __reduce_ex__(self, protocol):
        self.protocol = protocol
        return object.__reduce_ex__(self, protocol)


class ReduceCallsBase:
    """``__reduce__`` that defers to ``object.__reduce__`` (protocol 0/1 style copyreg form)."""

    def __init__(self, v):
        self.v = v

    def __reduce__(self):
        return object.__reduce__(self)


class AnyAttribute:
    """``__getattr__`` answers every name that is not a dunder."""

    def __init__(self):
        self.real = 1

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return f"<{name}>"


class Meta(type):
    pass


class WithMeta(metaclass=Meta):
    def __init__(self):
        self.x = [1]


Dynamic = type("Dynamic", (Bag,), {"kind": "made by type()"})


class Outer:
    class Middle:
        class Inner:
            def __init__(self, v=1):
                self.v = v

            def get(self):
                return self.v

            @classmethod
            def make(cls):
                return cls(5)

    def method(self):
        return "m"

    @classmethod
    def cmethod(cls):
        return cls

    @staticmethod
    def smethod(x):
        return x + 1


class Looping:
    """Its qualified name goes through an attribute that leads back to its module."""


Looping.mod = sys.modules[__name__]
Looping.__qualname__ = "Looping.mod.Looping"


class Ext1(Bag):
    pass


class Ext2(Bag):
    pass


class Ext4(Bag):
    pass


_EXTENSIONS = [(Ext1, 0xF1), (Ext2, 0xFFF2), (Ext4, 0x7FFF_FFF4)]


@pytest.fixture
def extensions():
    """Register copyreg extension codes (1, 2 and 4 bytes) for the Ext* classes."""
    for cls, code in _EXTENSIONS:
        copyreg.add_extension(__name__, cls.__qualname__, code)
    yield
    for cls, code in _EXTENSIONS:
        copyreg.remove_extension(__name__, cls.__qualname__, code)


class MutatesDict:
    """Its ``__reduce__`` adds a key to a dict that is being stored."""

    target: dict = {}

    def __reduce__(self):
        MutatesDict.target[len(MutatesDict.target) + 100] = "added"
        return MutatesDict, ()


class ShrinksList:
    """Its ``__reduce__`` empties a list that is being stored."""

    target: list = []

    def __reduce__(self):
        ShrinksList.target.clear()
        return ShrinksList, ()


class BadIterators:
    """``__reduce__`` whose listitems/dictitems are not iterators."""

    def __init__(self, which):
        self.which = which

    def __reduce__(self):
        if self.which == "list":
            return BadIterators, ("list",), None, [1, 2]
        return BadIterators, ("dict",), None, None, [("k", 1)]


# -- the cases --------------------------------------------------------------------------------


def _attrs(obj, **attrs):
    obj.__dict__.update(attrs)
    return obj


def _recursive(kind):
    """The recursive structures of the ``test_recursive_*`` categories, by name."""
    if kind == "list":
        x = []
        x.append(x)
        return x
    if kind == "list_subclass":
        x = ListSub()
        x.append(x)
        x.me = x
        return x
    if kind == "list_like":
        x = ListLike()
        x.append(x)
        return x
    if kind in ("tuple_and_list", "tuple_and_list_subclass", "tuple_and_list_like"):
        inner = {"tuple_and_list": list, "tuple_and_list_subclass": ListSub}.get(kind, ListLike)()
        t = (inner, 1)
        inner.append(t)
        return t
    if kind == "dict":
        x = {}
        x["self"] = x
        return x
    if kind == "dict_subclass":
        x = DictSub()
        x[1] = x
        x.me = x
        return x
    if kind == "dict_like":
        x = DictLike()
        x["self"] = x
        return x
    if kind in ("tuple_and_dict", "tuple_and_dict_subclass", "tuple_and_dict_like"):
        inner = {"tuple_and_dict": dict, "tuple_and_dict_subclass": DictSub}.get(kind, DictLike)()
        t = (inner,)
        inner["t"] = t
        return t
    if (
        kind.endswith("dict_key")
        or kind.endswith("dict_subclass_key")
        or kind.endswith("_like_key")
    ):
        return _recursive_key(kind)
    if kind == "set":
        s = set()
        k = Key(owner=s)
        s.add(k)
        return s
    if kind == "inst":
        b = Bag()
        b.me = b
        return b
    if kind == "multi":
        lst = []
        d = {1: lst}
        b = Bag(d=d)
        lst.append(b)
        return lst
    if kind == "inst_state":
        return SelfInState()
    if kind == "tuple_and_inst_state":
        s = SelfInState()
        t = (s,)
        s.me = t
        return t
    raise KeyError(kind)


def _recursive_key(kind):
    """A container keyed by an object that holds the container."""
    base = kind.removeprefix("tuple_and_").removesuffix("_key")
    container = {"dict": dict, "dict_subclass": DictSub}.get(base, DictLike)()
    key = Key()
    container[key] = "value"
    if kind.startswith("tuple_and_"):
        t = (container,)
        key.owner = t
        return t
    key.owner = container
    return container


def _recursive_with_inst(kind):
    """``test_recursive_<container>_and_inst``: an instance inside a container, holding it."""
    b = Key()
    container = {
        "list": lambda: [b],
        "tuple": lambda: (b,),
        "dict": lambda: {"b": b},
        "set": lambda: {b},
        "frozenset": lambda: frozenset([b]),
        "list_subclass": lambda: ListSub([b]),
        "tuple_subclass": lambda: TupleSub([b]),
        "dict_subclass": lambda: DictSub(b=b),
        "set_subclass": lambda: SetSub([b]),
        "frozenset_subclass": lambda: FrozenSub([b]),
    }[kind]()
    b.owner = container
    return container


RECURSIVE = [
    "list",
    "list_subclass",
    "list_like",
    "tuple_and_list",
    "tuple_and_list_subclass",
    "tuple_and_list_like",
    "dict",
    "dict_subclass",
    "dict_like",
    "tuple_and_dict",
    "tuple_and_dict_subclass",
    "tuple_and_dict_like",
    "dict_key",
    "dict_subclass_key",
    "dict_like_key",
    "tuple_and_dict_key",
    "tuple_and_dict_subclass_key",
    "tuple_and_dict_like_key",
    "set",
    "inst",
    "multi",
    "inst_state",
    "tuple_and_inst_state",
]
RECURSIVE_WITH_INST = [
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "list_subclass",
    "tuple_subclass",
    "dict_subclass",
    "set_subclass",
    "frozenset_subclass",
]


def _int_boundaries():
    out = [0, 1, -1]
    for bits in (7, 8, 15, 16, 31, 32, 53, 63, 64, 127, 128, 255, 256, 1023, 1024):
        p = 2**bits
        out += [p - 1, p, p + 1, -p - 1, -p, -p + 1]
    return out


def _long_ints():
    # sizes around pickle's LONG1 (< 256 bytes) / LONG4 limit, well under the
    # 4300-digit str conversion limit (bigger ones: issue 13 item 1)
    out = []
    for nbytes in (2, 9, 100, 254, 255, 256, 257, 1000):
        v = 2 ** (8 * nbytes - 1)
        out += [v - 1, v, -v, -v - 1, v * 3 + 12345]
    return out


_FLOATS = [
    0.0,
    -0.0,
    float("nan"),
    -float("nan"),
    float("inf"),
    -float("inf"),
    5e-324,  # the smallest subnormal
    2.2250738585072014e-308,  # the smallest normal
    sys.float_info.max,
    sys.float_info.epsilon,
    0.1,
    1 / 3,
    1e16,
    1e22,
    -1.5e-7,
    123456789.125,
    2.0**53 + 2,
]

_STRINGS = [
    "",
    "ascii",
    "<\\>",
    "\x00nul\x00",
    "é ü ñ",
    "\u20ac\uffff",
    "\U0001f600\U0010ffff",  # high planes
    "\ud800",  # a lone surrogate: pickle's UTF-8 with surrogatepass keeps it
    "\udfff\ud800x",
    "a\ud83d\ude00b",  # a surrogate pair written as two code points
    "line\nbreak\r\n\ttab",
    "x" * 10_000,
    "\U0001f600" * 300,
]


def _builtin_exceptions():
    out = []
    special = {
        "UnicodeDecodeError": ("utf-8", b"\xff", 0, 1, "bad"),
        "UnicodeEncodeError": ("ascii", "\xff", 0, 1, "bad"),
        "UnicodeTranslateError": ("\xff", 0, 1, "bad"),
        "BaseExceptionGroup": ("group", [ValueError(1)]),
        "ExceptionGroup": ("group", [ValueError(1), TypeError("t")]),
    }
    for name, cls in sorted(vars(builtins).items()):
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        args = special.get(name, ("message", 2))
        try:
            exc = cls(*args)
        except TypeError:
            continue
        out.append(exc)
    return out


def _more_exceptions():
    oserr = OSError(2, "No such file", "a.txt")
    imp = ImportError("no module", name="mod", path="/p")
    stop = StopIteration([1, 2])
    syn = SyntaxError("bad", ("f.py", 1, 2, "x = ", 1, 3))
    attr = _attrs(KeyError("k"), note=[1])
    chained = ValueError("outer")
    chained.__cause__ = TypeError("inner")  # not pickled: pickle drops __cause__
    return [oserr, imp, stop, syn, attr, chained]


_shared = [1, 2]
_obj = Bag(v=3)

CASES = {
    # test_misc, test_roundtrip_equality: a mix of everything builtin
    "misc": lambda: {
        "ints": [0, 1, -5, 2**40],
        "floats": (1.5, -0.0),
        "complex": [1 + 2j, complex(-0.0, float("inf"))],
        "text": ["a", b"b", bytearray(b"c")],
        "none": None,
        "bools": (True, False),
        "set": {1, "two", (3,)},
        "frozenset": frozenset({4, 5}),
        "nested": [[[], ()], {"k": {}}],
        "shared": [_shared, _shared, (_shared,)],
        "instance": Bag(a=[1], b={"c": (2,)}),
    },
    # test_unicode, test_unicode_high_plane
    "unicode": lambda: list(_STRINGS),
    "unicode_keys": lambda: Bag(**{"é": 1, "\U0001f600": 2, "_\u20ac": 3}),
    # test_bytes
    "bytes": lambda: [b"", bytes(range(256)), b"\x00" * 3, bytes(range(256)) * 40],
    # test_bytearray, test_bytearray_memoization_bug
    "bytearray": lambda: [bytearray(), bytearray(range(256)), bytearray(b"x" * 5000)],
    "bytearray_shared_and_equal": lambda: (lambda b: [b, b, bytearray(b"abc"), bytearray(b"abc")])(
        bytearray(b"abc")
    ),
    "bytes_subclasses": lambda: [
        _attrs(BytesSub(b"xy"), tag=1),
        _attrs(BytearraySub(b"zz"), tag=[2]),
    ],
    # test_ints, test_long, test_long1, test_long4, test_proto
    "int_boundaries": _int_boundaries,
    "long_ints": _long_ints,
    # test_float, test_float_format
    "floats": lambda: list(_FLOATS),
    "float_and_complex_subclasses": lambda: [
        _attrs(FloatSub(-0.0), tag="neg zero"),
        _attrs(ComplexSub(1, -2), tag=None),
    ],
    # test_short_tuples, test_newobj_tuple
    "short_tuples": lambda: [(), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), ((),), (_shared, _shared)],
    "tuple_subclass": lambda: _attrs(TupleSub([1, [2]]), tag="t"),
    # test_singletons, test_ellipsis, test_notimplemented
    "singletons": lambda: [None, True, False, ..., NotImplemented, [None, ..., NotImplemented]],
    # test_newobj_list, test_newobj_generic: builtin subclasses with attributes
    "builtin_subclasses": lambda: [
        _attrs(ListSub([1, [2]]), tag="l"),
        _attrs(DictSub(a=1), tag="d"),
        _attrs(SetSub({1, 2}), tag="s"),
        _attrs(FrozenSub({3}), tag="f"),
        _attrs(IntSub(7), tag="i"),
        _attrs(StrSub("text"), tag="str"),
    ],
    "builtin_subclass_holding_itself": lambda: (lambda x: _attrs(x, me=x))(ListSub([0])),
    # test_newobj_list_slots
    "list_subclass_with_slots": lambda: (lambda x: (setattr(x, "tag", [1]), x)[1])(
        SlottedListSub([1, 2])
    ),
    # test_newobj_overridden_new
    "c_new_overridden": lambda: _attrs(IntWithNew(5, offset=2), extra="e"),
    # test_simple_newobj, test_complex_newobj, test_complex_newobj_ex
    "getnewargs": lambda: NewArgs(3, "three"),
    "getnewargs_ex": lambda: NewArgsEx(1, [2], scale=0.5, unit="m"),
    # test_reduce, test_getinitargs (Python 2's __getinitargs__: constructor arguments)
    "reduce_args_and_state": lambda: ByReduce([1], b={"x": 2}),
    # test_reduce_overrides_default_reduce_ex, test_reduce_ex_called,
    # test_reduce_ex_overrides_reduce, test_reduce_ex_calls_base, test_reduce_calls_base
    "reduce_only": lambda: ReduceBeatsReduceEx(4),
    "reduce_ex_wins": lambda: ReduceExBeatsReduce("v"),
    "reduce_ex_calls_base": lambda: ReduceExCallsBase(1),
    "reduce_calls_base": lambda: ReduceCallsBase([1]),
    # test_bad_getattr
    "getattr_answers_everything": AnyAttribute,
    # test_metaclass, test_dynamic_class
    "metaclass": lambda: [Meta, WithMeta, WithMeta()],
    "dynamic_class": lambda: [Dynamic, _attrs(Dynamic(), a=1)],
    # test_structseq
    "structseq": lambda: [time.gmtime(0), time.localtime(86400 * 365), os.stat(__file__)],
    # test_builtin_types
    "builtin_types": lambda: [int, float, list, dict, set, frozenset, bytes, object, type, slice],
    # test_builtin_exceptions
    "builtin_exceptions": _builtin_exceptions,
    "exceptions_with_attributes": _more_exceptions,
    # test_builtin_functions
    "builtin_functions": lambda: [len, abs, getattr, math.sqrt, functools.reduce, operator.add],
    # test_py_methods
    "python_methods": lambda: [
        Outer().method,
        Outer.cmethod,
        Outer.smethod,
        Outer.method,
        Outer.Middle.Inner,
        Outer.Middle.Inner.get,
        Outer.Middle.Inner(2).get,
        Outer.Middle.Inner.make,
    ],
    # test_c_methods
    "c_methods": lambda: [
        "abc".upper,
        [1, 2].index,
        {1: 2}.get,
        str.upper,
        list.append,
        dict.fromkeys,
        str.maketrans,
        bytearray.maketrans,
        int.__add__,
        (5).__add__,
        set.__contains__,
    ],
    # test_nested_names, test_recursive_nested_names
    "nested_names": lambda: [Outer.Middle, Outer.Middle.Inner, Outer.Middle.Inner(3)],
    "recursive_nested_name": lambda: [Looping, SelfNamed, Bag(cls=SelfNamed)],
    # test_list_chunking, test_dict_chunking, test_set_chunking (pickle's batches of 1000)
    "chunked_sizes": lambda: (
        [list(range(n)) for n in (0, 1, 999, 1000, 1001, 2500)]
        + [{i: str(i) for i in range(n)} for n in (999, 1000, 1001)]
        + [set(range(n)) for n in (999, 1000, 1001, 2500)]
        + [frozenset(range(1001))]
    ),
    # test_appends_on_non_lists, test_setitems_on_non_dicts
    "appends_on_non_list": lambda: (lambda x: (x.extend(range(1500)), x)[1])(ListLike()),
    "setitems_on_non_dict": lambda: (lambda x: [x.__setitem__(i, -i) for i in range(1500)] and x)(
        DictLike()
    ),
    # test_many_puts_and_gets
    "many_shared_references": lambda: (lambda objs: [objs[i % 50] for i in range(2000)] + objs)(
        [Bag(i=i) for i in range(50)]
    ),
    # test_large_pickles (a few MB; pickle's own test goes much further)
    "large": lambda: [bytes(3_000_000), list(range(200_000)), "s" * 1_000_000],
    # test_buffers_numpy, test_in_band_buffers (numpy arrays in every memory layout)
    "numpy_layouts": lambda: [
        np.arange(12.0).reshape(3, 4),
        np.asfortranarray(np.arange(12).reshape(3, 4)),
        np.arange(20)[::3],
        np.arange(12).reshape(3, 4).T,
        np.zeros((0, 3)),
        np.array(5.0),
    ],
}


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_category(parity, factory):
    parity(factory())


@pytest.mark.parametrize("factory", CASES.values(), ids=CASES.keys())
def test_category_shared_twice(parity, factory):
    obj = factory()
    loaded = parity({"a": obj, "b": [obj]})
    assert loaded["a"] is loaded["b"][0] or type(obj) in (int, float, str, bytes)


@pytest.mark.parametrize("kind", RECURSIVE)
def test_recursive(parity, kind):
    parity(_recursive(kind))


@pytest.mark.parametrize("kind", RECURSIVE_WITH_INST)
def test_recursive_with_instance(parity, kind):
    loaded = parity(_recursive_with_inst(kind))
    (member,) = loaded.values() if isinstance(loaded, dict) else loaded
    assert member.owner is loaded


def test_recursive_identity_kept(roundtrip):
    x = []
    x.append(x)
    loaded = roundtrip(x)
    assert loaded[0] is loaded


def test_negative_zero_and_nan_bits(roundtrip):
    loaded = roundtrip([-0.0, float("nan"), 5e-324])
    assert math.copysign(1.0, loaded[0]) == -1.0
    assert math.isnan(loaded[1]) and loaded[2] == 5e-324


def test_surrogates_kept(roundtrip):
    loaded = roundtrip(["\ud800", "a\ud83d\ude00b"])
    assert loaded == ["\ud800", "a\ud83d\ude00b"] and len(loaded[1]) == 4


def test_attribute_names_are_interned(roundtrip):
    # test_attribute_name_interning: a loaded instance's attribute names are interned
    name = "".join(["not", "_", "a", "_", "literal"])
    obj = Bag(**{name: 1, "x": 2})
    loaded = roundtrip([obj, Bag(**{name: 3})])
    for inst in loaded:
        for key in vars(inst):
            assert key is sys.intern(key)


def test_copyreg_extensions(parity, extensions):
    # test_global_ext1/2/4: classes with copyreg extension codes of 1, 2 and 4 bytes
    assert b"\x82" in pickle.dumps(Ext1, PROTOCOL)  # EXT1: pickle really uses the code
    parity([Ext1, Ext2, Ext4, Ext1(a=1), Ext2(b=[2]), Ext4()])


def test_reduce_bad_iterators_refused(refused):
    # test_reduce_bad_iterator: listitems/dictitems that are not iterators
    for which in ("list", "dict"):
        refused(BadIterators(which))


def test_local_lookup_error_refused(refused):
    # test_local_lookup_error: local functions and classes are not importable
    def local():
        pass

    class Local:
        pass

    for obj in (local, Local, Local()):
        _, error = refused(obj)
        assert "<locals>" in str(error) or "local" in str(error)


def test_proxy_stores_its_referent(parity):
    # test_newobj_proxies: a weakref.proxy forwards __reduce_ex__ to its referent,
    # whose class (not the proxy type) is stored
    referents = [_attrs(ListSub([1]), tag=2), _attrs(DictSub(a=1), t=3), Bag(b=[4])]
    loaded = parity([weakref.proxy(x) for x in referents])
    assert [type(x) for x in loaded] == [ListSub, DictSub, Bag]


def test_picklebuffer_needs_protocol_5(refused):
    # test_in_band_buffers / test_picklebuffer_error: PickleBuffer needs protocol 5
    refused(pickle.PickleBuffer(b"abc"))


def test_reduce_that_mutates_a_dict_being_stored(filename):
    # test_evil_class_mutating_dict / test_evil_pickler_mutating_collection:
    # a __reduce__ that changes the container being stored must give an error
    # (or a consistent result), never a crash or a wrong file
    target = MutatesDict.target = {i: MutatesDict() for i in range(3)}
    try:
        pickle.dumps(target, PROTOCOL)
    except RuntimeError:
        pass
    target = MutatesDict.target = {i: MutatesDict() for i in range(3)}
    try:
        tinystore.save(target, filename)
    except (UnstorableError, RuntimeError):
        return
    loaded = tinystore.load(filename)
    assert set(loaded) <= set(target) and all(type(v) is MutatesDict for v in loaded.values())


def test_reduce_that_empties_a_list_being_stored(filename):
    target = ShrinksList.target = [ShrinksList(), 1, 2, 3]
    try:
        tinystore.save(target, filename)
    except (UnstorableError, RuntimeError):
        return
    loaded = tinystore.load(filename)
    assert type(loaded) is list and type(loaded[0]) is ShrinksList


def test_repeated_strings(roundtrip):
    # test_unicode_memoization, test_bytes_memoization: a str or bytes met twice.
    # Long ones stay one object; short ones (under 128 characters) are stored
    # as values: equal copies (only ``is`` could tell them apart)
    long_s, long_b = "\u20ac" * 200, b"\xff" * 300
    short_s, short_b = "x\\yz\n", b"xyz"
    loaded = roundtrip([long_s, long_s, long_b, long_b, short_s, short_s, short_b, short_b])
    assert loaded[0] is loaded[1] and loaded[2] is loaded[3]
    assert loaded[0] == long_s and loaded[2] == long_b
    assert loaded[4:] == [short_s, short_s, short_b, short_b]


class SetstateNone:
    """``__setstate__ = None``: pickle stores it, and fails to load it."""

    def __getstate__(self):
        return 1

    __setstate__ = None


def test_setstate_set_to_none_fails_on_load(filename):
    # test_pickle_setstate_None
    with pytest.raises((TypeError, AttributeError)):
        pickle.loads(pickle.dumps(SetstateNone(), PROTOCOL))
    tinystore.save(SetstateNone(), filename)
    with pytest.raises(UnloadableError):
        tinystore.load(filename)


class SelfNamed:
    """Its qualified name goes through an attribute that is the class itself."""


SelfNamed.ref = SelfNamed
SelfNamed.__qualname__ = "SelfNamed.ref"


def test_singleton_types(parity):
    # test_singleton_types
    parity([type(None), type(...), type(NotImplemented)])


def test_ints_beyond_the_str_digits_limit(parity):
    # test_long with ints far beyond the 4300-digit int<->str limit
    parity([10**5000, -(7**20000)])


def test_newobj_not_a_class_refused(refused):
    # test_newobj_not_class: copyreg.__newobj__ with something that is not a class
    class NotAClassArg:
        def __reduce__(self):
            return copyreg.__newobj__, (len,)

    refused(NotAClassArg())


# -- the map of pickletester's categories ----------------------------------------------------

_NA_OPCODES = "n/a: the opcodes or byte layout pickle writes"
_NA_BUFFERS = "n/a: protocol 5 out-of-band buffers (tinystore stores arrays natively)"

#: Every test method of ``pickletester.AbstractPickleTests`` (Python 3.10 to 3.13) ->
#: the cases here that cover its ground, or why it has none.
CATEGORIES = {
    "test_misc": "CASES[misc]",
    "test_roundtrip_equality": "CASES[misc]",
    **{f"test_recursive_{k}": "RECURSIVE" for k in RECURSIVE},
    **{f"test_recursive_{k}_and_inst": "RECURSIVE_WITH_INST" for k in RECURSIVE_WITH_INST},
    "test_recursive_dict_and_inst": "RECURSIVE_WITH_INST",
    "test_unicode": "CASES[unicode], test_surrogates_kept",
    "test_unicode_high_plane": "CASES[unicode]",
    "test_bytes": "CASES[bytes]",
    "test_bytearray": "CASES[bytearray]",
    "test_bytearray_memoization_bug": "CASES[bytearray_shared_and_equal]",
    "test_bytes_memoization": "test_repeated_strings, CASES[bytearray_shared_and_equal]",
    "test_ints": "CASES[int_boundaries]",
    "test_long": "CASES[long_ints], test_ints_beyond_the_str_digits_limit",
    "test_float": "CASES[floats], test_negative_zero_and_nan_bits",
    "test_float_format": "CASES[floats]",
    "test_reduce": "CASES[reduce_args_and_state]",
    "test_getinitargs": "CASES[reduce_args_and_state]",
    "test_metaclass": "CASES[metaclass]",
    "test_dynamic_class": "CASES[dynamic_class]",
    "test_structseq": "CASES[structseq]",
    "test_ellipsis": "CASES[singletons]",
    "test_notimplemented": "CASES[singletons]",
    "test_singleton_types": "test_singleton_types",
    "test_builtin_types": "CASES[builtin_types]",
    "test_builtin_exceptions": "CASES[builtin_exceptions]",
    "test_builtin_functions": "CASES[builtin_functions]",
    "test_proto": "CASES[int_boundaries]",
    "test_long1": "CASES[long_ints]",
    "test_long4": "CASES[long_ints]",
    "test_short_tuples": "CASES[short_tuples]",
    "test_singletons": "CASES[singletons]",
    "test_newobj_tuple": "CASES[tuple_subclass]",
    "test_newobj_list": "CASES[builtin_subclasses]",
    "test_newobj_generic": "CASES[builtin_subclasses]",
    "test_newobj_proxies": "test_proxy_stores_its_referent",
    "test_newobj_overridden_new": "CASES[c_new_overridden]",
    "test_newobj_not_class": "test_newobj_not_a_class_refused",
    "test_global_ext1": "test_copyreg_extensions",
    "test_global_ext2": "test_copyreg_extensions",
    "test_global_ext4": "test_copyreg_extensions",
    "test_list_chunking": "CASES[chunked_sizes]",
    "test_dict_chunking": "CASES[chunked_sizes]",
    "test_set_chunking": "CASES[chunked_sizes]",
    "test_simple_newobj": "CASES[getnewargs]",
    "test_complex_newobj": "CASES[getnewargs]",
    "test_complex_newobj_ex": "CASES[getnewargs_ex]",
    "test_newobj_list_slots": "CASES[list_subclass_with_slots]",
    "test_reduce_overrides_default_reduce_ex": "CASES[reduce_only]",
    "test_reduce_ex_called": "CASES[reduce_ex_wins]",
    "test_reduce_ex_overrides_reduce": "CASES[reduce_ex_wins]",
    "test_reduce_ex_calls_base": "CASES[reduce_ex_calls_base]",
    "test_reduce_calls_base": "CASES[reduce_calls_base]",
    "test_bad_getattr": "CASES[getattr_answers_everything]",
    "test_reduce_bad_iterator": "test_reduce_bad_iterators_refused",
    "test_many_puts_and_gets": "CASES[many_shared_references]",
    "test_attribute_name_interning": "test_attribute_names_are_interned",
    "test_pickle_to_2x": "n/a: Python 2 compatibility of the opcodes",
    "test_large_pickles": "CASES[large]",
    "test_int_pickling_efficiency": _NA_OPCODES,
    "test_appends_on_non_lists": "CASES[appends_on_non_list]",
    "test_setitems_on_non_dicts": "CASES[setitems_on_non_dict]",
    "test_framing_many_objects": _NA_OPCODES,
    "test_framing_large_objects": _NA_OPCODES,
    "test_optional_frames": _NA_OPCODES,
    "test_framed_write_sizes_with_delayed_writer": _NA_OPCODES,
    "test_nested_names": "CASES[nested_names]",
    "test_recursive_nested_names": "CASES[recursive_nested_name]",
    "test_recursive_nested_names2": "CASES[recursive_nested_name]",
    "test_unicode_memoization": "test_repeated_strings",
    "test_bytearray_memoization": "CASES[bytearray_shared_and_equal]",
    "test_pickle_setstate_None": "test_setstate_set_to_none_fails_on_load",
    "test_py_methods": "CASES[python_methods]",
    "test_c_methods": "CASES[c_methods]",
    "test_compat_pickle": "n/a: Python 2 module names (fix_imports)",
    "test_local_lookup_error": "test_local_lookup_error_refused",
    "test_in_band_buffers": "CASES[numpy_layouts], test_picklebuffer_needs_protocol_5",
    "test_oob_buffers": _NA_BUFFERS,
    "test_oob_buffers_writable_to_readonly": _NA_BUFFERS,
    "test_picklebuffer_error": "test_picklebuffer_needs_protocol_5",
    "test_buffer_callback_error": _NA_BUFFERS,
    "test_buffers_error": _NA_BUFFERS,
    "test_inband_accept_default_buffers_argument": _NA_BUFFERS,
    "test_buffers_numpy": "CASES[numpy_layouts]",
    "test_evil_class_mutating_dict": "test_reduce_that_mutates_a_dict_being_stored",
    "test_evil_pickler_mutating_collection": "test_reduce_that_empties_a_list_being_stored",
}


def _pickletester_methods():
    try:
        from test.pickletester import AbstractPickleTests
    except Exception:  # the test package is not installed with every Python
        return None
    return sorted(n for n in dir(AbstractPickleTests) if n.startswith("test_"))


def test_every_category_is_mapped():
    methods = _pickletester_methods()
    if methods is None:
        pytest.skip("test.pickletester is not installed with this Python")
    missing = [m for m in methods if m not in CATEGORIES]
    assert not missing, f"pickletester categories with no case here: {missing}"


def test_the_map_names_real_cases():
    names = set(globals())
    for method, where in CATEGORIES.items():
        if where.startswith("n/a"):
            continue
        for ref in where.split(", "):
            if ref.startswith("CASES["):
                assert ref[6:-1] in CASES, (method, ref)
            else:
                assert ref in names or ref in ("RECURSIVE", "RECURSIVE_WITH_INST"), (method, ref)
    for k in RECURSIVE:
        assert f"test_recursive_{k}" in CATEGORIES
