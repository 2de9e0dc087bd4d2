"""Classes and helpers for the object round-trip tests.

Objects are stored by import path, so every class and function a test stores
lives here at module level (pytest puts ``tests/`` on ``sys.path``; this
module is importable as ``objects_cases``).

:func:`assert_same_structure` walks an original object and its loaded copy in
parallel and checks exact types, values (bits for floats and arrays), key
order, and the *sharing structure*: an object reached twice in the original
must be one object in the copy, distinct objects must stay distinct, cycles
must close on the right object, and globals and enum members come back as
themselves.  Anything without a dedicated rule is compared through its
``__reduce_ex__`` (the same information pickle stores).
"""

from __future__ import annotations

import collections
import copyreg
import dataclasses
import datetime
import enum
import pickle
import types
from collections import Counter
from typing import Any, ClassVar

import numpy as np

import tinystore
from tinystore.objects.encode import PROTOCOL
from tinystore.storage.base import Tree
from tinystore.testing import assert_leaf_identical

# -- helpers ----------------------------------------------------------------------

#: Values compared by value only: they have no identity pickle keeps either
#: (pickle does not memoise numbers; short strings are interned at will).
_ATOMS = (type(None), bool, int, float, complex, str, bytes)

#: Objects that come back as themselves (pickle stores them by name).
_GLOBALS = (
    type,
    types.FunctionType,
    types.ModuleType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.ClassMethodDescriptorType,
    types.MemberDescriptorType,
    types.GetSetDescriptorType,
    np.ufunc,
    enum.Enum,
    type(Ellipsis),
    type(NotImplemented),
)


def _is_global(obj: Any) -> bool:
    if isinstance(obj, _GLOBALS) or any(obj is x for x in _SINGLETONS):
        return True
    if isinstance(obj, types.BuiltinFunctionType):
        # len, math.sqrt (bound to their module), not [].append (bound to a list)
        owner = getattr(obj, "__self__", None)
        return owner is None or isinstance(owner, types.ModuleType)
    return False


def _slot_names(cls: type) -> list[str]:
    names = []
    for klass in cls.__mro__:
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        for name in slots:
            if name in ("__dict__", "__weakref__"):
                continue
            if name.startswith("__") and not name.endswith("__"):
                name = f"_{klass.__name__.lstrip('_')}{name}"
            names.append(name)
    return names


_MISSING = object()

#: Objects that loading may legitimately return as themselves (pickle does too).
_SINGLETONS = (datetime.timezone.utc,)


def _reduce_value(obj: Any) -> Any:
    """What pickle asks the object for: ``copyreg.dispatch_table`` first, then ``__reduce_ex__``."""
    reducer = copyreg.dispatch_table.get(type(obj))
    return reducer(obj) if reducer is not None else obj.__reduce_ex__(4)


def _reduce_parts(rv: tuple) -> list:
    rv = rv + (None,) * (6 - len(rv))
    func, args, state, listitems, dictitems, setter = rv
    return [
        func,
        args,
        state,
        None if listitems is None else list(listitems),
        None if dictitems is None else list(dictitems),
        setter,
    ]


def _set_pairs(a, b, where: str, seen: dict) -> list:
    """Pair the elements of two sets: by identity already known, else by equality."""
    assert len(a) == len(b), f"{where}: {len(a)} != {len(b)} elements"
    rest_b = {id(y): y for y in b}
    pairs, rest_a = [], []
    for x in a:
        y = seen.get(id(x))
        if y is not None and id(y) in rest_b:
            pairs.append((x, rest_b.pop(id(y))))
        else:
            rest_a.append(x)
    by_value = {}
    for y in rest_b.values():
        by_value.setdefault(y, y)
    unmatched = []
    for x in rest_a:
        y = by_value.get(x, _MISSING)
        if y is _MISSING or id(y) not in rest_b:
            unmatched.append(x)
        else:
            pairs.append((x, rest_b.pop(id(y))))
    if unmatched:
        assert len(unmatched) == 1 == len(rest_b), f"{where}: cannot pair {unmatched!r}"
        pairs.append((unmatched[0], rest_b.popitem()[1]))
    return [(x, y, f"{where}{{{x!r:.30}}}") for x, y in pairs]


def assert_same_structure(original: Any, loaded: Any, *, new: bool = True) -> None:
    """Assert ``loaded`` is an exact, isomorphic copy of ``original`` (see module doc).

    ``new``: also assert that no part of ``loaded`` (except globals, enum
    members, atoms and the empty tuple) *is* the corresponding original part.
    """
    seen: dict[int, Any] = {}  # id(original part) -> loaded part
    back: dict[int, Any] = {}  # id(loaded part) -> original part
    keep: list = []  # transient objects (reduce values) stay alive: ids stay unique
    stack: list = [(original, loaded, "<root>")]
    while stack:
        a, b, where = stack.pop()
        t = type(a)
        assert type(b) is t, f"{where}: type {type(b).__qualname__} != {t.__qualname__}"
        if t in _ATOMS or (isinstance(a, np.generic) and not a.dtype.hasobject):
            assert_leaf_identical(a, b)
            continue
        if t is np.dtype or isinstance(a, np.dtype):
            assert b == a and b.str == a.str and b.descr == a.descr, f"{where}: {b!r} != {a!r}"
            continue
        if _is_global(a):
            assert b is a, f"{where}: {b!r} is not the global {a!r}"
            continue
        rv = None
        if t not in _CONTAINERS:
            rv = _reduce_value(a)
            if isinstance(rv, str):  # stored by name, like a global
                assert b is a, f"{where}: {b!r} is not the global {a!r}"
                continue
        # sharing: the same original part maps to one loaded part, and back
        hit = seen.get(id(a))
        if hit is not None:
            assert hit is b, f"{where}: shared object {a!r:.60} was loaded as two objects"
            continue
        assert id(b) not in back, f"{where}: distinct objects were merged into {b!r:.60}"
        seen[id(a)] = b
        back[id(b)] = a
        keep.append((a, b))
        if new and not _constant(a):
            assert b is not a, f"{where}: loaded object is the original {a!r:.60}"
        if rv is None:
            stack.extend(_children(a, b, where, seen))
        elif isinstance(a, (set, frozenset)):
            # the reduce value lists set elements in iteration order, which may differ
            stack.extend(_set_pairs(a, b, where, seen))
            extra_a = [getattr(a, "__dict__", None), _slot_values(a)]
            extra_b = [getattr(b, "__dict__", None), _slot_values(b)]
            keep.append((extra_a, extra_b))
            stack.append((extra_a, extra_b, f"{where}.<state>"))
        else:
            rb = _reduce_value(b)
            assert isinstance(rb, tuple), f"{where}: reduce value {rb!r:.60} of the loaded object"
            ra, rb = _reduce_parts(rv), _reduce_parts(rb)
            keep.append((ra, rb))
            stack.append((ra, rb, f"{where}.<reduce>"))


_CONTAINERS = frozenset([list, tuple, dict, set, frozenset, bytearray, np.ndarray])


def _constant(obj: Any) -> bool:
    """Immutable values a loader may share with anything (``()``, constant tuples of atoms)."""
    return type(obj) is tuple and all(type(x) in _ATOMS for x in obj)


def _slot_values(obj: Any) -> dict:
    return {k: getattr(obj, k) for k in _slot_names(type(obj)) if hasattr(obj, k)}


def _children(a: Any, b: Any, where: str, seen: dict) -> list:
    t = type(a)
    if t is list or t is tuple:
        assert len(a) == len(b), f"{where}: length {len(b)} != {len(a)}"
        return [(x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b))]
    if t is dict:
        return _dict_pairs(a, b, where)
    if t is set or t is frozenset:
        return _set_pairs(a, b, where, seen)
    if t is bytearray:
        assert_leaf_identical(a, b)
        return []
    assert t is np.ndarray
    if not a.dtype.hasobject:
        assert_leaf_identical(a, b)
        return []
    assert b.dtype == a.dtype and b.shape == a.shape, f"{where}: {b.dtype}{b.shape}"
    order = lambda x: x.flags.f_contiguous and not x.flags.c_contiguous  # noqa: E731
    assert order(b) == order(a), f"{where}: memory order differs"
    return [(a[i], b[i], f"{where}[{i}]") for i in np.ndindex(a.shape)]


def _dict_pairs(a: dict, b: dict, where: str) -> list:
    assert len(a) == len(b), f"{where}: {len(b)} keys != {len(a)}"
    pairs = []
    for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items())):
        pairs.append((ka, kb, f"{where}.<key {i}>"))
        pairs.append((va, vb, f"{where}[{ka!r:.30}]"))
    return pairs


def stored_tree(filename: str) -> Tree:
    """The encoded tree of the object saved at the root of ``filename``."""
    with tinystore.open(filename, "r") as s:
        return s.read_tree()


def node_kinds(node: Any) -> Counter:
    """How many nodes of each kind (``attrs["t"]``) a tree holds."""
    kinds: Counter = Counter()
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is not Tree:
            continue
        kinds[n.attrs.get("t")] += 1
        c = n.children
        stack.extend(c if type(c) is list else c.values())
    return kinds


def pickled(obj: Any) -> Any:
    """pickle's copy of ``obj``, by the protocol tinystore stores by: the reference."""
    return pickle.loads(pickle.dumps(obj, protocol=PROTOCOL))


def assert_no_pickle(filename: str) -> None:
    kinds = node_kinds(stored_tree(filename))
    assert kinds["cloudpickle"] == 0, f"a pickle leaf was written: {kinds}"


# -- plain classes ------------------------------------------------------------------


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm2(self):
        return self.x * self.x + self.y * self.y

    @classmethod
    def origin(cls):
        return cls(0, 0)

    @staticmethod
    def helper(v):
        return v * 3


class Node:
    """A linked list cell."""

    def __init__(self, value, next=None):
        self.value = value
        self.next = next


class Empty:
    """No attributes: pickle's state is None and ``__setstate__`` is not called."""

    def __setstate__(self, state):
        self.setstate_called_with = state


class Hashable:
    """Value-hashable, so it can sit in sets and dict keys."""

    def __init__(self, key):
        self.key = key

    def __eq__(self, other):
        return type(other) is Hashable and other.key == self.key

    def __hash__(self):
        return hash(self.key)


def module_function(x):
    return x + 1


# -- subclasses of builtins with state --------------------------------------------


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyStr(str):
    pass


class MyBytes(bytes):
    pass


class MyTuple(tuple):
    pass


class MySet(set):
    pass


class MyFrozenset(frozenset):
    pass


class MyOrderedDict(collections.OrderedDict):
    pass


class SlottedList(list):
    __slots__ = ("tag",)


# -- the reduce protocol ------------------------------------------------------------


class Reduce2:
    """``__reduce__`` -> (callable, args)."""

    def __init__(self, a, b):
        self.a, self.b = a, b

    def __reduce__(self):
        return Reduce2, (self.a, self.b)


class Reduce3:
    """(callable, args, state): state is a dict applied without ``__setstate__``."""

    def __init__(self, a):
        self.a = a

    def __reduce__(self):
        return Reduce3, (self.a,), {"extra": self.__dict__.get("extra")}


class ListLike:
    """listitems: rebuilt with ``extend``."""

    def __init__(self):
        self.items = []
        self.extended = 0

    def extend(self, items):
        self.extended += 1
        self.items.extend(items)

    def __reduce__(self):
        return ListLike, (), None, iter(self.items)


class AppendOnly:
    """listitems on an object with ``append`` only."""

    def __init__(self):
        self.items = []

    def append(self, item):
        self.items.append(item)

    def __reduce__(self):
        return AppendOnly, (), None, iter(self.items)


class DictLike:
    """dictitems: rebuilt with ``__setitem__``, in order."""

    def __init__(self):
        self.pairs = []

    def __setitem__(self, key, value):
        self.pairs.append((key, value))

    def __reduce__(self):
        return DictLike, (), {"tag": getattr(self, "tag", None)}, None, iter(self.pairs)


def set_state_via_setter(obj, state):
    obj.via_setter = state


class WithStateSetter:
    """The sixth reduce item: ``state_setter(obj, state)`` instead of ``__setstate__``."""

    def __init__(self, value):
        self.value = value

    def __setstate__(self, state):  # must not be used: the state_setter wins
        raise AssertionError("__setstate__ called instead of the state_setter")

    def __reduce__(self):
        return WithStateSetter, (None,), self.value, None, None, set_state_via_setter


class ReduceEx:
    """``__reduce_ex__(protocol)`` is given pickle's protocol."""

    def __init__(self, protocol=None):
        self.protocol = protocol

    def __reduce_ex__(self, protocol):
        return ReduceEx, (protocol,)


class Singleton:
    """``__reduce__`` returns a name: the module-level object is stored by name."""

    def __reduce__(self):
        return "SINGLETON"


SINGLETON = Singleton()


class Registered:
    """Stored through ``copyreg.pickle`` (``copyreg.dispatch_table``)."""

    def __init__(self, value):
        self.value = value
        self.derived = value * 2

    def __reduce__(self):  # must not be used: the dispatch table wins
        raise AssertionError("__reduce__ used instead of copyreg.dispatch_table")


def _reduce_registered(obj):
    return Registered, (obj.value,)


copyreg.pickle(Registered, _reduce_registered)


class NewArgs:
    """``__new__`` needs arguments, given by ``__getnewargs__`` (copyreg.__newobj__)."""

    def __new__(cls, a, b):
        self = super().__new__(cls)
        self.a, self.b = a, b
        self.new_args = (a, b)
        return self

    def __getnewargs__(self):
        return self.a, self.b


class NewArgsEx:
    """``__new__`` with keyword-only arguments: ``__getnewargs_ex__`` (copyreg.__newobj_ex__)."""

    def __new__(cls, a, *, b):
        self = super().__new__(cls)
        self.a, self.b = a, b
        return self

    def __getnewargs_ex__(self):
        return (self.a,), {"b": self.b}


class TupleState:
    """State that is not a dict: a tuple, through ``__getstate__``/``__setstate__``."""

    def __init__(self, x, y):
        self.x, self.y = x, y

    def __getstate__(self):
        return (self.x, self.y)

    def __setstate__(self, state):
        self.x, self.y = state
        self.restored = True


class FalsyState:
    """A falsy ``__getstate__`` value that is not None: pickle still calls ``__setstate__``."""

    def __init__(self, value=0):
        self.value = value

    def __getstate__(self):
        return self.value

    def __setstate__(self, state):
        self.value = state
        self.setstate_called = True


class FalsyStateNoSetstate:
    """A falsy state without ``__setstate__``: nothing is applied (like pickle)."""

    def __init__(self):
        self.marker = "from __init__"

    def __getstate__(self):
        return {}


class CycleThroughSetstate:
    """The state refers back to the object; it is rebuilt through ``__setstate__``."""

    def __init__(self):
        self.children = []

    def __getstate__(self):
        return (self.children,)

    def __setstate__(self, state):
        (self.children,) = state


class Child:
    def __init__(self, parent):
        self.parent = parent


# -- slots --------------------------------------------------------------------------


class Slotted:
    __slots__ = ("x", "y")

    def __init__(self, x, y=_MISSING):
        self.x = x
        if y is not _MISSING:
            self.y = y


class SlottedWithDict:
    __slots__ = ("x", "__dict__")

    def __init__(self, x):
        self.x = x


class SlottedChild(Slotted):
    __slots__ = ("z", "__private")

    def __init__(self, x, y, z):
        super().__init__(x, y)
        self.z = z
        self.__private = -z


class DictSlotsPair:
    """``__getstate__`` returns pickle's ``(dict, slots)`` pair itself."""

    __slots__ = ("s", "__dict__")

    def __init__(self, s, d):
        self.s = s
        self.d = d

    def __getstate__(self):
        return ({"d": self.d}, {"s": self.s})


# -- dataclasses --------------------------------------------------------------------

POST_INIT_CALLS: list = []


@dataclasses.dataclass
class Inner:
    x: int
    values: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Outer:
    name: str
    inner: Inner
    table: dict = dataclasses.field(default_factory=dict)
    computed: int = dataclasses.field(init=False, default=0)
    scale: dataclasses.InitVar[int] = 1

    def __post_init__(self, scale):
        POST_INIT_CALLS.append(self.name)
        self.computed = self.inner.x * scale


@dataclasses.dataclass(frozen=True)
class Frozen:
    a: int
    b: tuple


@dataclasses.dataclass(slots=True)
class SlotsDataclass:
    a: int
    b: list


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlotsDataclass:
    a: int
    b: str


# -- enums ----------------------------------------------------------------------------


class Color(enum.Enum):
    RED = 1
    GREEN = "green"
    BLUE = (1, 2)


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Perm(enum.Flag):
    R = 4
    W = 2
    X = 1


class Bits(enum.IntFlag):
    A = 1
    B = 2
    C = 4


# -- Storable -------------------------------------------------------------------------


class DefaultStorable(tinystore.Storable):
    def __init__(self, a, b):
        self.a = a
        self.b = b


class CustomStorable(tinystore.Storable):
    """Lays itself out with a sub-group; ``__init__`` is run on restore."""

    def __init__(self, structure, steps):
        self.structure = structure
        self.steps = steps
        self.inits = getattr(self, "inits", 0) + 1

    def _store(self, storage):
        storage["structure"] = self.structure
        storage.create_group("input")["steps"] = self.steps

    @classmethod
    def _restore(cls, storage, version):
        return cls(storage["structure"], storage["input/steps"])


class Versioned(tinystore.Storable):
    """Layout 1: ``{"value": v}``; layout 2: ``{"payload": {"value": v, "unit": u}}``."""

    _storage_version: ClassVar[int] = 1

    def __init__(self, value, unit="eV"):
        self.value = value
        self.unit = unit

    def _store(self, storage):
        if type(self)._storage_version == 1:
            storage["value"] = self.value
        else:
            storage["payload"] = {"value": self.value, "unit": self.unit}

    @classmethod
    def _restore(cls, storage, version):
        if version == 1:
            obj = cls(storage["value"], unit="unknown")
        else:
            payload = storage["payload"]
            obj = cls(payload["value"], payload["unit"])
        obj.read_version = version
        return obj


# -- more reduce-protocol cases (pickle parity) --------------------------------------------


class CallCounting(list):
    """A list subclass that records how pickle's loader filled it."""

    def append(self, item):
        self.__dict__.setdefault("calls", []).append("append")
        super().append(item)

    def extend(self, items):
        self.__dict__.setdefault("calls", []).append(f"extend({len(items)})")
        super().extend(items)


class SharedState:
    """``__getstate__`` hands out a dict that others hold too; ``__setstate__`` keeps it."""

    def __init__(self, params):
        self.params = params

    def __getstate__(self):
        return self.params

    def __setstate__(self, state):
        self.params = state


class PairState:
    """A custom 2-tuple of dicts state (not pickle's (dict, slots) pair)."""

    def __init__(self, first, second):
        self.first, self.second = first, second

    def __getstate__(self):
        return self.first, self.second

    def __setstate__(self, state):
        self.first, self.second = state


class DropsCache:
    """``__getstate__`` leaves out a cache; ``__setstate__`` rebuilds it."""

    def __init__(self, values):
        self.values = values
        self.cache = sum(values)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["cache"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.cache = sum(self.values)


class ReduceWithBoundMethod:
    """The reduce callable is a classmethod of the class."""

    def __init__(self, data):
        self.data = data

    @classmethod
    def from_data(cls, data):
        obj = cls(data)
        obj.via_classmethod = True
        return obj

    def __reduce__(self):
        return type(self).from_data, (self.data,)


class ReduceExString:
    """``__reduce_ex__`` itself returns a name."""

    def __reduce_ex__(self, protocol):
        return "REDUCE_EX_SINGLETON"


REDUCE_EX_SINGLETON = ReduceExString()


class StateNone:
    """``__getstate__`` returns None explicitly: no BUILD, ``__setstate__`` not called."""

    def __init__(self):
        self.x = 1

    def __getstate__(self):
        return None

    def __setstate__(self, state):
        raise AssertionError("__setstate__ called for a None state")


class Weakrefable:
    __slots__ = ("a", "__weakref__")

    def __init__(self, a):
        self.a = a


class CustomError(Exception):
    def __init__(self, message, code):
        super().__init__(message, code)
        self.code = code


class Meta(type):
    pass


class WithMeta(metaclass=Meta):
    pass


class Container:
    class Nested:
        def __init__(self, v):
            self.v = v


class OddDictKeys:
    """An instance ``__dict__`` whose keys cannot be child names."""

    def __init__(self):
        setattr(self, "a/b", 1)
        setattr(self, "", 2)
        setattr(self, "x" * 300, 3)


class SelfInArgs:
    """Its reduce arguments hold the object itself: nothing can be rebuilt first."""

    def __reduce__(self):
        return SelfInArgs, (self,)


class FreshListInArgs:
    """Reduce arguments hold the object inside a new list on every call."""

    def __reduce__(self):
        return FreshListInArgs, ([self],)


class BadReduce:
    """``__reduce__`` returns what it is given: pickle refuses all of these."""

    def __init__(self, value):
        self.value = value

    def __reduce__(self):
        return self.value


class FailsOnLoad:
    """``__setstate__`` raises: loading must say where."""

    def __init__(self):
        self.x = 1

    def __setstate__(self, state):
        raise ValueError("refusing to be loaded")
