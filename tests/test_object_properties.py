"""Property tests: random nested objects with shared references and cycles round-trip
exactly on every backend (issue 7, item 6).

Hypothesis builds a random nested object (lists, tuples, dicts with str, int
and tuple keys, sets and frozensets of hashables, numpy arrays of random
dtypes, shapes and memory orders, big ints, floats with nan and -0.0, strings
with lone surrogates, bytes, bytearrays), then inserts references to parts
already built into its mutable containers: the same list in two places, a
dict that contains itself, a tuple reached through the list it contains, an
object array holding shared lists.  The object is saved with
:func:`tinystore.save` and loaded with :func:`tinystore.load`, and
:func:`assert_same` compares it with the original: exact types, values (floats
bit for bit), dtype, shape and memory order, dict key order, and the sharing
structure (a part shared in the original is one object in the copy, distinct
mutable parts stay distinct).  ``pickle`` is the reference: every example is
first checked against pickle's own round trip, so the comparison asks no more
than pickle gives.
"""

from __future__ import annotations

import itertools
import os
import pickle
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinystore
from tinystore.storage import MemoryStorage

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from strategies import dtypes, in_layout, small_arrays  # noqa: E402

# ---------------------------------------------------------------------------
# the comparison
MUTABLE = (list, dict, set, bytearray, np.ndarray)
#: immutable containers whose identity pickle keeps (its memo), so shared stays shared
IDENTITY_KEPT = (tuple, frozenset)


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def canon(x):
    """A hashable, nan-aware, identity-free key of a hashable value (to match set elements)."""
    t = type(x)
    if t is float:
        return (t.__name__, _float_bits(x))
    if t is complex:
        return (t.__name__, _float_bits(x.real), _float_bits(x.imag))
    if t is tuple:
        return (t.__name__, tuple(canon(v) for v in x))
    if t is frozenset:
        return (t.__name__, tuple(sorted(repr(canon(v)) for v in x)))
    if isinstance(x, np.generic):
        return (t.__name__, x.dtype.str, x.tobytes())
    return (t.__name__, x)


def _array_order(a: np.ndarray) -> str:
    if a.flags.c_contiguous:
        return "C"
    return "F" if a.flags.f_contiguous else "C"  # a non-contiguous array loads C-ordered


def assert_same(original, loaded, *, numpy_exact: bool = True) -> None:
    """``loaded`` is an exact copy of ``original``, sharing and cycles included.

    ``numpy_exact=False`` checks numpy arrays and scalars by type and shape
    only: pickle itself loses the byte order of 0-d arrays (``>i2`` loads as
    ``<i2``), and it is the reference for everything else.
    """
    seen: dict[int, object] = {}  # id(original part) -> loaded part
    back: dict[int, object] = {}  # id(loaded part) -> original part
    stack = [(original, loaded, "<root>")]
    while stack:
        a, b, where = stack.pop()
        t = type(a)
        assert type(b) is t, f"{where}: type {type(b).__name__} != {t.__name__}"
        if isinstance(a, MUTABLE + IDENTITY_KEPT) and not (isinstance(a, IDENTITY_KEPT) and not a):
            hit = seen.get(id(a))
            if hit is not None:
                assert hit is b, f"{where}: a shared {t.__name__} was loaded as two objects"
                continue
            if isinstance(a, MUTABLE):
                assert id(b) not in back, f"{where}: distinct {t.__name__}s were merged"
                assert b is not a, f"{where}: the loaded object is the original"
            seen[id(a)] = b
            back[id(b)] = a
        if t is float:
            assert _float_bits(a) == _float_bits(b), f"{where}: {b!r} != {a!r}"
        elif t is complex:
            assert (_float_bits(a.real), _float_bits(a.imag)) == (
                _float_bits(b.real),
                _float_bits(b.imag),
            ), f"{where}: {b!r} != {a!r}"
        elif t in (list, tuple):
            assert len(b) == len(a), f"{where}: length {len(b)} != {len(a)}"
            stack.extend((x, y, f"{where}[{i}]") for i, (x, y) in enumerate(zip(a, b)))
        elif t is dict:
            assert len(b) == len(a), f"{where}: {len(b)} keys != {len(a)}"
            for i, ((ka, va), (kb, vb)) in enumerate(zip(a.items(), b.items())):
                stack.append((ka, kb, f"{where}.key{i}"))  # key order, key types
                stack.append((va, vb, f"{where}[{ka!r:.30}]"))
        elif t in (set, frozenset):
            assert len(b) == len(a), f"{where}: {len(b)} elements != {len(a)}"
            groups_a: dict = {}
            groups_b: dict = {}
            for x in a:
                groups_a.setdefault(canon(x), []).append(x)
            for y in b:
                groups_b.setdefault(canon(y), []).append(y)
            assert {k: len(v) for k, v in groups_a.items()} == {
                k: len(v) for k, v in groups_b.items()
            }, f"{where}: elements differ"
            for key, xs in groups_a.items():
                if len(xs) == 1:  # equal elements (distinct nans) cannot be told apart
                    stack.append((xs[0], groups_b[key][0], f"{where}{{{xs[0]!r:.30}}}"))
        elif t is np.ndarray and not numpy_exact:
            assert b.shape == a.shape, f"{where}: shape {b.shape} != {a.shape}"
            if a.dtype.hasobject:
                stack.extend(zip(a.ravel("K"), b.ravel("K"), itertools.repeat(where)))
        elif isinstance(a, np.generic) and not numpy_exact:
            pass
        elif t is np.ndarray:
            assert b.dtype == a.dtype and b.dtype.str == a.dtype.str, (
                f"{where}: {b.dtype} != {a.dtype}"
            )
            assert b.shape == a.shape, f"{where}: shape {b.shape} != {a.shape}"
            assert _array_order(b) == _array_order(a), f"{where}: memory order"
            assert b.flags.writeable
            if a.dtype.hasobject:
                stack.extend(
                    (x, y, f"{where}[{i}]")
                    for i, (x, y) in enumerate(zip(a.ravel("K"), b.ravel("K")))
                )
            else:
                assert b.tobytes() == a.tobytes(), f"{where}: array data differ"
        elif isinstance(a, np.generic):
            assert b.dtype.str == a.dtype.str and b.tobytes() == a.tobytes(), (
                f"{where}: {b!r} != {a!r}"
            )
        else:  # None, bool, int, str, bytes, bytearray
            assert b == a, f"{where}: {b!r:.60} != {a!r:.60}"
            if t is str:
                assert len(b) == len(a)


# ---------------------------------------------------------------------------
# strategies
# structured dtypes without field titles (HDF5 drops titles: test_storage_stateful.py)
arrays = small_arrays(dtypes(titles=False, max_bytes=5, max_chars=3))
big_arrays = st.builds(
    in_layout,
    st.sampled_from(["<f8", ">i4", "<c16", "u1"]).flatmap(
        lambda dt: hnp.arrays(
            np.dtype(dt),
            st.sampled_from([(2100,), (40, 70), (3, 40, 30)]),
            fill=hnp.from_dtype(np.dtype(dt)),
        )
    ),
    st.integers(0, 2),
)
# includes np.bytes_(b"") and np.str_(""), whose dtypes have size 0
numpy_scalars = (
    dtypes(titles=False, max_bytes=5, max_chars=3)
    .flatmap(lambda dt: hnp.arrays(dt, ()))
    .map(lambda a: a[()])
)

texts = st.text(st.characters(exclude_categories=()), max_size=12)  # lone surrogates too
floats = st.floats() | st.sampled_from([float("nan"), -0.0, 0.0, float("inf"), 5e-324])
ints = (
    st.integers()
    | st.integers(min_value=-(2**200), max_value=2**200)
    | st.sampled_from([2**63, -(2**63) - 1, 2**64])
)

hashable_atoms = st.one_of(
    st.none(),
    st.booleans(),
    ints,
    floats,
    st.complex_numbers(),
    texts,
    st.binary(max_size=12),
)
hashables = st.recursive(
    hashable_atoms,
    lambda inner: (
        st.tuples(inner, inner)
        | st.lists(inner, max_size=3).map(tuple)
        | st.frozensets(inner, max_size=3)
    ),
    max_leaves=5,
)
dict_keys = st.one_of(
    st.sampled_from(
        [
            "a",
            "b",
            "x_1",
            "0",
            "1",
            "",
            ".",
            "..",
            "a/b",
            "with space",
            "é",
            "\ud800",
            "Z" * 70,
        ]
    ),
    texts,
    ints,
    st.lists(hashable_atoms, max_size=3).map(tuple),
)
atoms = st.one_of(
    hashable_atoms,
    st.binary(min_size=2049, max_size=2100),
    st.text(min_size=130, max_size=140),
    st.binary(max_size=20).map(bytearray),
    arrays,
    big_arrays,
    numpy_scalars,
)


def _containers(inner):
    return st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(dict_keys, inner, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    )


trees = st.recursive(atoms, _containers, max_leaves=12)


def _parts(obj) -> list:
    """Every part of ``obj`` (containers, elements, keys), each once, in a stable order."""
    out, seen, stack = [], set(), [obj]
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        out.append(x)
        if type(x) in (list, tuple, set, frozenset):
            stack.extend(reversed(list(x)))
        elif type(x) is dict:
            for k, v in reversed(list(x.items())):
                stack.extend([v, k])
        elif type(x) is np.ndarray and x.dtype.hasobject:
            stack.extend(x.ravel("K"))
    return out


def _hashable(x) -> bool:
    try:
        hash(x)
    except TypeError:
        return False
    return True


@st.composite
def shared_objects(draw):
    """A random object, then references to its parts inserted into its containers."""
    root = draw(st.lists(trees, min_size=1, max_size=4))  # a list: somewhere to insert
    keep = []  # objects made here stay alive, so that ids stay unique
    for _ in range(draw(st.integers(0, 10))):
        parts = _parts(root)
        targets = [p for p in parts if type(p) in (list, dict, set)]
        target = draw(st.sampled_from(targets))
        source = draw(st.sampled_from(parts))
        how = draw(st.integers(0, 3))
        if type(target) is set:
            if _hashable(source) and type(source) in (
                tuple,
                frozenset,
                str,
                bytes,
                int,
            ):
                target.add(source)
            continue
        if how == 1:  # through a tuple: cycles that pass through an immutable
            source = (source, draw(hashable_atoms))
        elif how == 2:  # through an object array
            arr = np.empty(2, dtype=object)
            arr[0], arr[1] = source, draw(st.sampled_from(parts))
            source = arr
        keep.append(source)
        if type(target) is list:
            target.insert(draw(st.integers(0, len(target))), source)
        else:
            key = draw(dict_keys)
            if how == 3 and _hashable(source):
                key = source  # a shared key
            target[key] = source
    return root


# ---------------------------------------------------------------------------
# the test
_names = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("properties")


def _location(backend: str, workdir) -> str:
    n = next(_names)
    if backend == "memory":
        return f"memory://properties-{os.getpid()}-{n}"
    return str(workdir / (f"obj{n}.h5" if backend == "hdf5" else f"obj{n}.json"))


def _remove(backend: str, loc: str) -> None:
    if backend == "memory":
        MemoryStorage.drop(loc)
    elif os.path.isdir(loc):
        shutil.rmtree(loc)
    else:
        for path in (loc, loc + ".lock"):
            if os.path.exists(path):
                os.unlink(path)


EXAMPLES = {"memory": 400, "hdf5": 150, "json": 150}


@pytest.mark.parametrize("backend_name", ["memory", "hdf5", "json"])
def test_random_objects_roundtrip_exactly(backend_name, workdir):
    @settings(
        max_examples=int(
            EXAMPLES[backend_name] * float(os.environ.get("TINYSTORE_PROPERTY_SCALE", "1"))
        ),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(obj=shared_objects())
    def roundtrip(obj):
        # the reference: the comparison asks no more of tinystore than pickle gives
        assert_same(obj, pickle.loads(pickle.dumps(obj, protocol=4)), numpy_exact=False)
        loc = _location(backend_name, workdir)
        try:
            tinystore.save(obj, loc)
            loaded = tinystore.load(loc)
        finally:
            _remove(backend_name, loc)
        assert_same(obj, loaded)

    roundtrip()


@pytest.mark.parametrize("backend_name", ["memory", "hdf5", "json"])
def test_saving_over_a_stored_object_replaces_it(backend_name, workdir):
    """The second save of a location leaves nothing of the first one behind."""

    @settings(
        max_examples=int(
            EXAMPLES[backend_name] // 3 * float(os.environ.get("TINYSTORE_PROPERTY_SCALE", "1"))
        ),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(first=shared_objects(), second=shared_objects())
    def overwrite(first, second):
        loc = _location(backend_name, workdir)
        try:
            tinystore.save(first, loc)
            tinystore.save(second, loc)
            loaded = tinystore.load(loc)
            if backend_name == "json":  # nothing of the first save is left
                files = sorted(p for _, _, fs in os.walk(loc) for p in fs)
                tinystore.save(second, loc + "-fresh.json")
                fresh = sorted(p for _, _, fs in os.walk(loc + "-fresh.json") for p in fs)
                _remove(backend_name, loc + "-fresh.json")
                assert len(files) == len(fresh), (files, fresh)
        finally:
            _remove(backend_name, loc)
        assert_same(second, loaded)

    overwrite()


@pytest.mark.parametrize("value", [np.bytes_(b""), np.str_("")], ids=["bytes_", "str_"])
def test_empty_numpy_string_scalar_in_object(roundtrip, value):
    # once saved, but unreadable: "numpy scalar of |S0 has 1 bytes"
    assert_same([value, (value,)], roundtrip([value, (value,)]))


# ---------------------------------------------------------------------------
# the comparison itself must catch what it claims to (a test that would still
# pass with the feature broken is a bug)
def test_assert_same_catches_differences():
    shared = [1]
    cases = [
        ([shared, shared], [[1], [1]]),  # sharing lost
        ([[1], [1]], [shared, shared]),  # distinct merged
        ({"a": 1, "b": 2}, {"b": 2, "a": 1}),  # key order
        ((1,), [1]),  # type
        ([0.0], [-0.0]),  # sign of zero
        ([float("nan")], [float("inf")]),
        (np.zeros((2, 3)), np.zeros((2, 3), order="F")),  # memory order
        (np.zeros(3, "<i4"), np.zeros(3, ">i4")),  # byte order
        ({1: "a"}, {"1": "a"}),  # key type
        ({(1, 2)}, {(1, 3)}),
    ]
    cyclic = []
    cyclic.append(cyclic)
    copy_of_cyclic = [[]]
    cases.append((cyclic, copy_of_cyclic))
    for original, loaded in cases:
        with pytest.raises(AssertionError):
            assert_same(original, loaded)
    # equal-looking set elements (distinct nan tuples) are not paired up wrongly
    shared_nan = (None, complex("nan+nanj"))
    twins = [shared_nan, frozenset([shared_nan, (None, complex("nan+nanj"))])]
    assert_same(twins, pickle.loads(pickle.dumps(twins)))
    nan = float("nan")
    assert_same(
        [nan, {(nan, 1)}, {nan: -0.0}],
        [float("nan"), {(float("nan"), 1)}, {float("nan"): -0.0}],
    )
    assert_same(cyclic, pickle.loads(pickle.dumps(cyclic)))


class _StrSubclass(str):
    pass


_KEYS = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,70}", fullmatch=True),  # identifiers, some too long
    st.text(max_size=5),  # anything, incl. "", ".", "/", surrogates
    st.integers(-3, 3),
    st.booleans(),
    st.builds(_StrSubclass, st.from_regex(r"[a-z]{1,5}", fullmatch=True)),
)


@given(st.lists(_KEYS, max_size=40))
def test_bulk_key_check_agrees_with_the_key_rule(keys):
    from tinystore.objects.encode import all_keys, is_key

    d = dict.fromkeys(keys)
    assert all_keys(d) == all(map(is_key, d))


@pytest.mark.parametrize(
    "odd",
    [_StrSubclass("zz"), "a b", "a/b", "x" * 64, "", ".", "..", 1, True, "é", "\ud800", None],
)
def test_bulk_key_check_on_many_keys_and_one_odd_key(odd):
    from tinystore.objects.encode import all_keys, is_key

    d = {**{f"k{i}": i for i in range(20)}, odd: 1}
    assert all_keys(d) == all(map(is_key, d)) == is_key(odd)
