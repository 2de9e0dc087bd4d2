"""``StorageTests``: the conformance suite every storage backend must pass.

Use it from a backend's test module::

    from tinystore.testing import StorageTests

    class TestMyBackend(StorageTests):
        def make_opener(self, tmp_path):
            path = tmp_path / "store.my"
            return lambda mode: MyStorage(path, mode=mode)

``make_opener`` returns a function ``mode -> GenericStorage`` that opens the
*same* store each time it is called (modes ``"w"``, ``"a"``, ``"r"``), so the
suite can close and reopen it to check persistence.
"""

from __future__ import annotations

import math
import struct
import sys
from typing import Any, Callable

import numpy as np
import pytest

from tinystore.errors import (
    NodeNotFoundError,
    ReadOnlyError,
    StorageClosedError,
    TinystoreError,
)
from tinystore.storage.base import GenericStorage, Tree

__all__ = ["StorageTests", "LEAF_CASES", "assert_leaf_identical"]


def _structured():
    dt = np.dtype([("id", "<i4"), ("pos", ">f8", (3,)), ("tag", "S4"), ("name", "<U3")])
    arr = np.zeros(4, dtype=dt)
    arr["id"] = [1, 2, 3, 4]
    arr["pos"] = np.arange(12.0).reshape(4, 3)
    arr["tag"] = [b"a", b"bb", b"ccc", b"dddd"]
    arr["name"] = ["x", "yé", "z\u0394", ""]
    return arr


def _leaf_cases() -> list[tuple[str, Any]]:
    rng = np.random.default_rng(0)
    cases: list[tuple[str, Any]] = [
        ("none", None),
        ("true", True),
        ("false", False),
        ("int0", 0),
        ("int_neg", -17),
        ("int64_max", 2**63 - 1),
        ("int64_min", -(2**63)),
        ("int_big", 3**200),
        ("int_big_neg", -(7**99)),
        ("float", 0.1),
        ("float_nan", float("nan")),
        ("float_inf", float("inf")),
        ("float_ninf", float("-inf")),
        ("float_negzero", -0.0),
        ("float_tiny", 5e-324),
        ("float_max", sys.float_info.max),
        ("complex", 1.5 - 2.25j),
        ("complex_nan", complex(float("nan"), -0.0)),
        ("str_empty", ""),
        ("str", "hello"),
        ("str_unicode", "Grüße, \u4e16\u754c \U0001f600"),
        ("str_nul", "a\x00b"),
        ("str_surrogate", "x\ud800y\udfff"),
        ("str_long", "abc" * 100_000),
        ("bytes_empty", b""),
        ("bytes", bytes(range(256))),
        ("bytes_big", bytes(rng.integers(0, 256, 100_000, dtype=np.uint8))),
        ("bytearray", bytearray(b"\x00\xffmutable")),
        ("bytearray_big", bytearray(50_000)),
    ]
    dtypes = [
        "?",
        "i1",
        "i2",
        "i4",
        "i8",
        "u1",
        "u2",
        "u4",
        "u8",
        "f2",
        "f4",
        "f8",
        "c8",
        "c16",
        ">i4",
        ">f8",
        ">c16",
        "M8[ns]",
        "M8[D]",
        "m8[s]",
        "S5",
        "U4",
        "V3",
    ]
    for dt in dtypes:
        for n in (3, 5000):
            arr = np.zeros(n, dtype=dt)
            raw = rng.integers(0, 256, arr.nbytes, dtype=np.uint8).tobytes()
            arr = np.frombuffer(bytearray(raw), dtype=dt).copy()
            if arr.dtype.kind == "?":
                arr = rng.integers(0, 2, n).astype(bool)
            elif arr.dtype.kind == "U":
                arr = np.array([f"s{i % 97}\u00e9" for i in range(n)], dtype=dt)
            cases.append((f"array_{dt}_{n}", arr))
    if hasattr(np, "longdouble"):
        cases.append(("array_longdouble", np.linspace(0, 1, 7, dtype=np.longdouble)))
    cases += [
        ("array_0d", np.array(3.5)),
        ("array_0d_int", np.array(7, dtype=np.int16)),
        ("array_empty", np.zeros((0,), dtype="f8")),
        ("array_empty_2d", np.zeros((0, 3), dtype="i4")),
        ("array_empty_3d", np.zeros((2, 0, 4), dtype="c8")),
        ("array_fortran", np.asfortranarray(np.arange(24.0).reshape(4, 6))),
        ("array_fortran_big", np.asfortranarray(rng.random((300, 40)))),
        ("array_c_3d", rng.random((5, 6, 7))),
        ("array_noncontig", np.arange(100.0)[::3]),
        ("array_structured", _structured()),
        ("array_structured_big", np.repeat(_structured(), 500)),
        ("array_nan_payload", np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f", "<f8").copy()),
        ("np_float64", np.float64(2.5)),
        ("np_float32", np.float32(-1.25)),
        ("np_float16", np.float16(0.5)),
        ("np_int8", np.int8(-5)),
        ("np_uint64", np.uint64(2**64 - 1)),
        ("np_bool", np.bool_(True)),
        ("np_complex64", np.complex64(1 + 2j)),
        ("np_datetime64", np.datetime64("2024-02-29T12:00:00.123456789")),
        ("np_timedelta64", np.timedelta64(90, "m")),
        ("np_str", np.str_("zeta\u03b6")),
        ("np_bytes", np.bytes_(b"raw")),
        ("np_void", _structured()[1]),
        ("np_nan", np.float64("nan")),
    ]
    return cases


#: ``(id, value)`` pairs covering every leaf kind every backend must store exactly.
LEAF_CASES = _leaf_cases()


def _float_bits(x: float) -> bytes:
    return struct.pack("<d", x)


def assert_leaf_identical(expected: Any, actual: Any) -> None:
    """Assert same type, value and bits (dtype, shape, memory order for arrays)."""
    assert type(actual) is type(expected), f"type {type(actual)} != {type(expected)}"
    if type(expected) is float:
        assert _float_bits(actual) == _float_bits(expected), f"{actual!r} != {expected!r}"
    elif type(expected) is complex:
        assert _float_bits(actual.real) == _float_bits(expected.real)
        assert _float_bits(actual.imag) == _float_bits(expected.imag)
    elif type(expected) is np.ndarray:
        assert actual.dtype == expected.dtype, f"dtype {actual.dtype} != {expected.dtype}"
        assert actual.dtype.str == expected.dtype.str
        assert actual.shape == expected.shape
        f_order = expected.flags.f_contiguous and not expected.flags.c_contiguous
        assert bool(actual.flags.f_contiguous and not actual.flags.c_contiguous) == f_order
        assert actual.tobytes() == expected.tobytes()
        assert actual.flags.writeable
    elif isinstance(expected, np.generic):
        assert actual.dtype == expected.dtype and actual.dtype.str == expected.dtype.str
        assert actual.tobytes() == expected.tobytes()
    else:
        assert actual == expected
        if type(expected) is str:
            assert len(actual) == len(expected)


class StorageTests:
    """The storage contract.  Subclass it and implement :meth:`make_opener`."""

    def make_opener(self, tmp_path) -> Callable[[str], GenericStorage]:
        raise NotImplementedError("return a function mode -> storage (see module docs)")

    @pytest.fixture
    def opener(self, tmp_path) -> Callable[[str], GenericStorage]:
        opened: list[GenericStorage] = []
        make = self.make_opener(tmp_path)

        def open_(mode: str = "a") -> GenericStorage:
            s = make(mode)
            opened.append(s)
            return s

        yield open_
        for s in opened:
            try:
                s.close()
            except TinystoreError:
                pass

    @pytest.fixture
    def storage(self, opener) -> GenericStorage:
        return opener("w")

    def reopen(self, storage: GenericStorage, opener, mode: str = "r") -> GenericStorage:
        storage.close()
        return opener(mode)

    # -- leaves -------------------------------------------------------------
    @pytest.mark.parametrize("case", LEAF_CASES, ids=[c[0] for c in LEAF_CASES])
    def test_leaf_roundtrip(self, storage, opener, case):
        key, value = case
        storage[key] = value
        assert_leaf_identical(value, storage[key])
        storage = self.reopen(storage, opener)
        assert_leaf_identical(value, storage[key])

    def test_all_leaves_in_one_group(self, storage, opener):
        g = storage.create_group("leaves")
        for key, value in LEAF_CASES:
            g[key] = value
        storage = self.reopen(storage, opener)
        assert list(storage["leaves"]) == [k for k, _ in LEAF_CASES]
        for key, value in LEAF_CASES:
            assert_leaf_identical(value, storage["leaves"][key])

    def test_loaded_values_are_copies(self, storage):
        arr = np.arange(10.0)
        big = np.arange(10_000.0)
        ba = bytearray(b"abc")
        storage["a"], storage["big"], storage["ba"] = arr, big, ba
        arr[0] = big[0] = 99.0
        ba[0] = 0
        for key in ("a", "big"):
            out = storage[key]
            assert out[0] == 0.0
            out[1] = -1.0
            assert storage[key][1] == 1.0
        assert storage["ba"] == bytearray(b"abc")

    def test_tree_roundtrip(self, storage, opener):
        tree = Tree(
            {"kind": "demo", "n": 3, "nested": {"x": [1, 2]}},
            {
                "a": 1,
                "seq": Tree({}, [1, "two", Tree({"k": 1}, {"x": np.arange(5000)}), None]),
                "empty": Tree(),
            },
        )
        storage["t"] = tree
        storage = self.reopen(storage, opener)
        node = storage["t"]
        assert isinstance(node, GenericStorage) and not node.is_group
        back = node.read_tree()
        assert back.attrs == tree.attrs
        assert list(back.children) == ["a", "seq", "empty"]
        seq = back.children["seq"]
        assert seq.children[:2] == [1, "two"] and seq.children[3] is None
        assert_leaf_identical(np.arange(5000), seq.children[2].children["x"])
        assert storage["t/seq/1"] == "two"
        assert_leaf_identical(np.arange(5000), storage["t/seq/2/x"])
        assert list(storage["t/seq"]) == ["0", "1", "2", "3"]
        assert dict(storage["t/seq/2"].attrs) == {"k": 1}

    def test_deep_tree(self, storage, opener):
        depth = 5000
        tree = leaf = Tree({"level": 0})
        for i in range(1, depth):
            child = Tree({"level": i})
            leaf.children["next"] = child
            leaf = child
        leaf.children["end"] = "bottom"
        storage["deep"] = tree
        storage = self.reopen(storage, opener)
        back = storage["deep"].read_tree()
        n = 0
        while "next" in back.children:
            assert back.attrs["level"] == n
            back = back.children["next"]
            n += 1
        assert n == depth - 1 and back.children["end"] == "bottom"

    # -- groups and paths ----------------------------------------------------
    def test_groups_and_paths(self, storage, opener):
        job = storage.create_group("jobs/relax")
        job["energy"] = -1.5
        storage["jobs/relax/steps"] = 12
        storage["jobs/md/temperature"] = 300.0
        assert isinstance(storage["jobs"], GenericStorage)
        assert storage["jobs"].is_group
        assert storage["jobs"].list_groups() == ["relax", "md"]
        assert storage["jobs/relax"].list_nodes() == ["energy", "steps"]
        assert storage["jobs/relax"]["energy"] == -1.5
        assert storage["jobs"]["relax/steps"] == 12
        assert storage["jobs/relax"].name == "relax"
        assert storage["jobs/relax"].path == "jobs/relax"
        assert "jobs/relax/energy" in storage and "jobs/nothing" not in storage
        assert "jobs/relax/energy/deeper" not in storage
        storage = self.reopen(storage, opener)
        assert storage["jobs/md/temperature"] == 300.0
        assert storage.list_groups() == ["jobs"] and storage.list_nodes() == []

    def test_create_group_is_idempotent_but_not_over_values(self, storage):
        g1 = storage.create_group("g")
        g1["x"] = 1
        g2 = storage.create_group("g")
        assert g2["x"] == 1
        assert storage.require_group("g")["x"] == 1
        storage["v"] = 1
        with pytest.raises(ValueError):
            storage.create_group("v")
        assert storage["v"] == 1

    def test_mapping_protocol(self, storage):
        for i, key in enumerate(["z", "a", "m", "b"]):
            storage[key] = i
        assert list(storage) == ["z", "a", "m", "b"]
        assert list(storage.keys()) == ["z", "a", "m", "b"]
        assert list(storage.values()) == [0, 1, 2, 3]
        assert list(storage.items())[1] == ("a", 1)
        assert len(storage) == 4
        assert storage.get("a") == 1 and storage.get("nope") is None
        assert storage.get("nope", 5) == 5 and storage.get("g/x", 6) == 6
        assert storage._ipython_key_completions_() == ["z", "a", "m", "b"]
        storage.update({"u": 1, "v": 2}, w=3)
        assert list(storage)[-3:] == ["u", "v", "w"]

    def test_insertion_order_survives_reopen(self, storage, opener):
        keys = [f"k{i}" for i in np.random.default_rng(1).permutation(50)]
        g = storage.create_group("g")
        for key in keys:
            g[key] = key
        storage = self.reopen(storage, opener)
        assert list(storage["g"]) == keys

    def test_overwrite(self, storage, opener):
        storage["a"] = 1
        storage["b"] = 2
        storage["a"] = np.arange(10_000)
        storage["a"] = "text"
        storage["g/x"] = np.arange(10_000)
        storage["g"] = 5  # a group replaced by a value
        storage["t"] = Tree({}, {"big": np.arange(10_000.0)})
        storage["t"] = Tree({}, {"big": np.arange(5.0)})
        storage = self.reopen(storage, opener)
        assert storage["a"] == "text" and storage["g"] == 5
        assert list(storage) == ["a", "b", "g", "t"]
        assert_leaf_identical(np.arange(5.0), storage["t/big"])

    def test_delete(self, storage, opener):
        storage["a"] = 1
        storage["big"] = np.arange(10_000)
        storage["g/h/x"] = 1
        storage["t"] = Tree({}, [1, 2, 3])
        del storage["a"]
        del storage["big"]
        del storage["g/h"]
        del storage["t/1"]
        with pytest.raises(KeyError, match="g/nothing"):
            del storage["g/nothing"]
        storage = self.reopen(storage, opener, "a")
        assert list(storage) == ["g", "t"]
        assert list(storage["g"]) == []
        assert list(storage["t"]) == ["0", "1"] and storage["t/1"] == 3
        storage["big"] = np.arange(3)
        assert list(storage["big"]) == [0, 1, 2]

    def test_missing_key_names_full_path(self, storage):
        storage["g/x"] = 1
        with pytest.raises(KeyError, match="g/y"):
            storage["g/y"]
        with pytest.raises(NodeNotFoundError, match="nothing/at/all"):
            storage["nothing/at/all"]
        with pytest.raises(KeyError, match="g/x/deeper"):
            storage["g/x/deeper"]
        with pytest.raises(KeyError, match="g/y"):
            storage["g"]["y"]

    def test_unicode_and_case_keys(self, storage, opener):
        keys = [
            "Energy",
            "energy",
            "ENERGY",
            "\u00e9t\u00e9",
            "e\u0301te\u0301",
            "\U0001f600",
            "with space",
            "C:\\x",
            "CON",
            "con",
            "nul.txt",
            "a.b",
            ".hidden",
            "x" * 200,
            "@record",
            "@record.json",
            "%41",
            "^a",
            "tab\tnew\nline",
        ]
        g = storage.create_group("keys")
        for i, key in enumerate(keys):
            g[key] = i
            g.create_group("groups/" + key)[key] = i
        storage = self.reopen(storage, opener)
        assert list(storage["keys"]) == keys[:1] + ["groups"] + keys[1:]
        for i, key in enumerate(keys):
            assert storage["keys"][key] == i
            assert storage["keys/groups"][key][key] == i
        assert [k for k in storage["keys"] if k != "groups"] == keys

    @pytest.mark.parametrize(
        "key",
        [
            "",
            ".",
            "..",
            "/abs",
            "a//b",
            "a/",
            "a/../b",
            "x\x00y",
            "y" * 256,
            "é" * 128,
            "s\ud800",
            "@ts:meta",
            "g/@ts:x",
        ],
    )
    def test_invalid_keys(self, storage, key):
        with pytest.raises(ValueError):
            storage[key] = 1
        with pytest.raises(ValueError):
            storage[key]
        with pytest.raises(ValueError):
            storage.create_group(key)
        assert key not in storage
        assert list(storage) == []

    def test_non_str_keys(self, storage):
        with pytest.raises(TypeError):
            storage[3] = 1
        with pytest.raises(TypeError):
            storage[("a",)]

    # -- metadata -------------------------------------------------------------
    def test_attrs_side_channel(self, storage, opener):
        g = storage.create_group("g")
        g.attrs["units"] = "eV"
        g.attrs["meta"] = {"n": [1, 2]}
        g["units"] = 5
        storage.attrs["title"] = "root"
        storage = self.reopen(storage, opener)
        assert dict(storage["g"].attrs) == {"units": "eV", "meta": {"n": [1, 2]}}
        assert list(storage["g"]) == ["units"] and storage["g/units"] == 5
        assert storage.attrs["title"] == "root"
        assert "title" not in storage
        storage = self.reopen(storage, opener, "a")
        del storage["g"].attrs["units"]
        assert dict(storage["g"].attrs) == {"meta": {"n": [1, 2]}}
        with pytest.raises(TypeError):
            storage["g"].attrs["bad"] = object()

    # -- modes and life cycle ----------------------------------------------
    def test_readonly_refuses_writes(self, storage, opener):
        storage["a"] = 1
        storage["g/b"] = 2
        storage = self.reopen(storage, opener, "r")
        assert storage.readonly
        for action in (
            lambda: storage.__setitem__("c", 1),
            lambda: storage.__setitem__("g/b", 3),
            lambda: storage.__delitem__("a"),
            lambda: storage.create_group("h"),
            lambda: storage["g"].__setitem__("x", 1),
            lambda: storage["g"].attrs.__setitem__("x", 1),
        ):
            with pytest.raises(PermissionError):
                action()
        with pytest.raises(ReadOnlyError):
            storage["d"] = 4
        assert list(storage) == ["a", "g"] and storage["g/b"] == 2

    def test_mode_w_truncates(self, storage, opener):
        storage["a"] = 1
        storage = self.reopen(storage, opener, "w")
        assert list(storage) == []

    def test_context_manager_and_close(self, opener):
        with opener("w") as s:
            s["x"] = 1
            g = s.create_group("g")
        with pytest.raises(StorageClosedError):
            s["x"]
        with pytest.raises(ValueError):
            g["y"] = 1
        s.open()
        assert s["x"] == 1
        s.close()

    def test_failed_write_changes_nothing(self, storage, opener):
        storage["keep"] = 1
        bad = Tree({}, {"ok": np.arange(10_000), "bad": object()})
        with pytest.raises(TypeError):
            storage["t"] = bad
        with pytest.raises(TypeError):
            storage["keep"] = bad
        assert "t" not in storage and storage["keep"] == 1
        storage = self.reopen(storage, opener)
        assert list(storage) == ["keep"] and storage["keep"] == 1

    def test_batch(self, storage, opener):
        with storage.batch():
            for i in range(100):
                storage[f"k{i}"] = i
        storage = self.reopen(storage, opener)
        assert [storage[f"k{i}"] for i in range(100)] == list(range(100))

    def test_floats_survive(self, storage):
        storage["x"] = 0.1 + 0.2
        assert storage["x"] == 0.1 + 0.2 and not math.isnan(storage["x"])
