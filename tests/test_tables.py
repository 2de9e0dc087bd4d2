"""Lists stored column by column (``table`` nodes, format 1.2).

Every test compares with pickle (``objects_cases.assert_same_structure``:
types, values, order and sharing), and says whether the list became a
table: the layout is what makes files small and fast, the comparison is
what keeps them exact.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import pickle
import struct
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from objects_cases import assert_same_structure, node_kinds, pickled

import tinystore
from tinystore.errors import UnloadableError, UnsupportedValueError
from tinystore.objects import decode, table
from tinystore.objects.codec import ObjectCodec
from tinystore.storage.base import Tree


class Particle:
    def __init__(self, label, mass, charge, position, active):
        self.label = label
        self.mass = mass
        self.charge = charge
        self.position = position
        self.active = active


class Holder:
    def __init__(self, item):
        self.item = item


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


class WithSetstate:
    def __init__(self, a):
        self.a = a

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.restored = True


class WithGetstate:
    def __init__(self, a):
        self.a = a

    def __getstate__(self):
        return {"a": self.a, "extra": 1}


class Abstract(abc.ABC):  # noqa: B024  (a metaclass: still saved by name)
    def __init__(self, a):
        self.a = a


@dataclasses.dataclass
class Point:
    x: float
    y: float
    name: str


Pair = namedtuple("Pair", "a b")


def particles(n=40):
    return [
        Particle(f"p{i}", 1.5 * i, i % 7 - 3, (0.1 * i, -0.0, 2.0**i), i % 2 == 0) for i in range(n)
    ]


def tuples(n=300):
    words = ["ab", "cd", "ef", "gh"]
    return [(i * 1000, i / 7, words[i % 4]) for i in range(n)]


def _kinds(filename) -> dict:
    with tinystore.open(filename, "r") as s:
        return node_kinds(s.read_tree())


def check(filename, obj, tables: int):
    """``obj`` round-trips as pickle copies it, stored with ``tables`` table nodes
    (nested tables, the columns of tuple fields, count too)."""
    expected = pickled(obj)
    tinystore.save(obj, filename)
    loaded = tinystore.load(filename)
    assert_same_structure(expected, loaded, new=False)
    assert _kinds(filename)["table"] == tables
    return loaded


# -- what becomes a table ---------------------------------------------------------------
def test_tuples_and_plain_instances_are_tables(filename):
    obj = {
        "tuples": tuples(),
        "particles": particles(),
        "points": [Point(i, -i, "x") for i in range(20)],
    }
    loaded = check(filename, obj, 4)  # particles' positions: a nested table
    assert loaded["tuples"] == tuples()
    assert [vars(p) for p in loaded["particles"]] == [vars(p) for p in particles()]
    assert loaded["points"][3] == Point(3, -3, "x")


def test_instances_of_a_class_with_a_metaclass(filename):
    rows = [Abstract(i) for i in range(20)]
    loaded = check(filename, rows, 1)
    assert type(loaded[3]) is Abstract and loaded[3].a == 3


def test_short_lists_keep_a_node_per_item(filename):
    check(filename, tuples(table.MIN_ROWS - 1), 0)
    check(filename, tuples(table.MIN_ROWS), 1)


@pytest.mark.parametrize(
    "rows",
    [
        [(i, 1.0) for i in range(20)] + [(20, 1)],  # an int among floats
        [(i, True) for i in range(20)] + [(20, 1)],  # an int among bools
        [(i, None if i % 2 else 1.5) for i in range(20)],  # None among floats
        [(i, 2**63) for i in range(20)],  # beyond int64
        [(i, "x" * 200) for i in range(20)],  # long strings keep their identity
        [(i, [i]) for i in range(20)],  # a list in a row
        [(i, (i, [1])) for i in range(20)],  # a list in a nested tuple
        [(i, ((i,),)) for i in range(20)],  # tuples two levels deep
        [(i, 1.0) for i in range(20)] + [(1, 1.0, 2)],  # rows of two lengths
        [()] * 20,  # no columns
        [Pair(i, i) for i in range(20)],  # a tuple subclass
        [Slotted(i, i) for i in range(20)],
        [WithGetstate(i) for i in range(20)],
        [WithSetstate(i) for i in range(20)],
        [Point(i, i, "a") for i in range(19)] + [(1, 2)],  # two types
    ],
    ids=[
        "int-float",
        "int-bool",
        "none",
        "bigint",
        "longstr",
        "list",
        "nestedlist",
        "deep",
        "lengths",
        "empty",
        "subclass",
        "slots",
        "getstate",
        "setstate",
        "twotypes",
    ],
)
def test_rows_of_other_shapes_keep_a_node_per_item(filename, rows):
    check(filename, rows, 0)


def test_an_extra_attribute_in_one_row_is_no_table(filename):
    rows = particles(20)
    rows[7].extra = 1
    check(filename, rows, 0)
    rows = particles(20)
    del rows[7].mass
    rows[7].mass = 1.0  # same names, another order
    check(filename, rows, 0)


def test_values_round_trip_exactly(filename):
    nan = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000123))[0]  # a nan payload
    rows = [
        (-0.0, nan, math.inf, -math.inf, 2**63 - 1, -(2**63), "", True, 5, "é\udcff")
        for _ in range(20)
    ]
    loaded = check(filename, rows, 1)
    for row in loaded:
        assert math.copysign(1, row[0]) == -1
        assert struct.pack("<d", row[1]) == struct.pack("<d", nan)
        assert row[2:4] == (math.inf, -math.inf)
        assert row[4:6] == (2**63 - 1, -(2**63)) and type(row[4]) is int
        assert row[6] == "" and row[7] is True and type(row[8]) is int
        assert row[9] == "é\udcff"


def test_one_tuples_bools_and_ints_keep_their_types(filename):
    rows = [(i % 2 == 0,) for i in range(30)]
    loaded = check(filename, rows, 1)
    assert all(type(r[0]) is bool for r in loaded)
    rows = [(i % 2, i * 1000, i * 10**6, i * 10**12) for i in range(30)]
    loaded = check(filename, rows, 1)
    assert loaded == rows and all(type(x) is int for r in loaded for x in r)


def test_coded_strings_load_shared_as_pickle_gives_them(filename):
    words = [f"word{i}" for i in range(4)]
    rows = [(words[i % 4],) for i in range(100)]
    loaded = check(filename, rows, 1)
    assert loaded[0][0] is loaded[4][0]


# -- sharing stays pickle's ---------------------------------------------------------------
def test_a_row_referenced_elsewhere_keeps_its_identity(filename):
    rows = tuples(40)
    loaded = check(filename, [rows, rows[3]], 0)
    assert loaded[1] is loaded[0][3]
    rows = particles(40)
    loaded = check(filename, [rows[5], rows], 0)
    assert loaded[0] is loaded[1][5]


def test_the_same_row_twice(filename):
    rows = tuples(40)
    rows[10] = rows[3]
    loaded = check(filename, rows, 0)
    assert loaded[10] is loaded[3]


def test_a_row_held_by_another_instance(filename):
    rows = particles(30)
    loaded = check(filename, {"rows": rows, "holder": Holder(rows[4])}, 0)
    assert loaded["holder"].item is loaded["rows"][4]


def test_a_cycle_through_rows(filename):
    rows = [Holder(None) for _ in range(20)]
    for r in rows:
        r.item = rows
    loaded = check(filename, rows, 0)
    assert loaded[0].item is loaded


def test_a_state_dict_or_a_nested_tuple_referenced_elsewhere(filename):
    rows = particles(30)
    loaded = check(filename, [rows, vars(rows[2])], 0)
    # (pickle's BUILD copies the state into the new __dict__: equal, not the same)
    assert loaded[1] == vars(loaded[0][2]) and loaded[1] is not vars(loaded[0][2])
    rows = particles(30)
    loaded = check(filename, [rows, rows[2].position], 0)
    assert loaded[1] is loaded[0][2].position
    rows = [(i, (i, 1.0)) for i in range(30)]
    loaded = check(filename, [rows, rows[6][1]], 0)
    assert loaded[1] is loaded[0][6][1]


class Later:
    """Gives its reduce arguments only when saved: a row reached through a list
    that nothing else held when the list was stored."""

    def __init__(self, get):
        self.get = get

    def __reduce__(self):
        return (Holder, (self.get(),))


@pytest.mark.parametrize(
    "make, get",
    [
        (tuples, lambda rows: rows[4]),
        (particles, lambda rows: rows[4]),
        (particles, lambda rows: vars(rows[4])),
        (particles, lambda rows: rows[4].position),
        (lambda: [(i, (i, 0.5)) for i in range(30)], lambda rows: rows[4][1]),
    ],
    ids=["tuple", "instance", "state", "nested", "nested-tuple"],
)
def test_a_row_met_again_after_its_table_stays_shared(filename, make, get):
    rows = make()
    obj = [rows, Later(lambda: get(rows)), Later(lambda: get(rows))]
    expected = pickled(obj)
    assert expected[1].item is expected[2].item  # (pickle shares it)
    tinystore.save(obj, filename)
    loaded = tinystore.load(filename)
    assert _kinds(filename)["table"] >= 1
    assert_same_structure(expected, loaded, new=False)
    assert loaded[1].item is loaded[2].item
    if type(get(rows)) is not dict:  # (a state dict is copied into the instance, as by pickle)
        assert loaded[1].item is get(loaded[0])
    # a part loaded alone finds the row in the table
    alone = tinystore.load(filename, path="1").item
    assert pickle.dumps(alone) == pickle.dumps(get(rows))


class LaterWithLambda(Later):
    def __reduce__(self):  # a lambda: only a cloudpickle fallback part stores it
        return (Holder, ((self.get(), lambda: 1),))


def test_a_fallback_part_refers_to_a_row_of_a_table(filename):
    rows = particles(30)
    obj = [rows, LaterWithLambda(lambda: rows[4])]
    tinystore.save(obj, filename, cloudpickle_fallback=True)
    kinds = _kinds(filename)
    assert kinds["table"] >= 1 and kinds["cloudpickle"] == 1
    loaded = tinystore.load(filename)
    assert loaded[1].item[0] is loaded[0][4]


def test_a_list_referenced_twice_stays_one_list(filename):
    rows = tuples(30)
    loaded = check(filename, {"a": rows, "b": rows}, 1)
    assert loaded["a"] is loaded["b"]


def test_no_tables_without_reference_counts(filename, monkeypatch):
    monkeypatch.setattr(table, "_BASE", None)  # as on an interpreter without getrefcount
    check(filename, tuples(30), 0)


_atoms = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    template=st.lists(_atoms, min_size=1, max_size=4),
    n=st.integers(0, 40),
    noise=st.lists(st.tuples(st.integers(0, 39), st.integers(0, 3), _atoms), max_size=3),
    share=st.booleans(),
)
def test_random_lists_of_tuples_match_pickle(filename, template, n, noise, share):
    rows = [tuple(type(x)(x) if x is not None else None for x in template) for _ in range(n)]
    rows = [tuple((v + i if type(v) is int else v) for v in row) for i, row in enumerate(rows)]
    for i, j, value in noise:  # a few values of other types
        if i < n and j < len(template):
            rows[i] = rows[i][:j] + (value,) + rows[i][j + 1 :]
    obj = [rows, rows[0] if share and rows else None]
    expected = pickled(obj)
    tinystore.save(obj, filename)
    assert_same_structure(expected, tinystore.load(filename), new=False)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.tuples(st.text(max_size=4), st.floats(), st.integers(-5, 5)), max_size=40),
    shared=st.lists(st.integers(0, 39), max_size=2),
)
def test_random_lists_of_objects_match_pickle(filename, values, shared):
    rows = [Particle(a, b, c, (b, b), c > 0) for a, b, c in values]
    obj = {"rows": rows, "again": [rows[i] for i in shared if i < len(rows)]}
    expected = pickled(obj)
    tinystore.save(obj, filename)
    assert_same_structure(expected, tinystore.load(filename), new=False)


# -- loading ----------------------------------------------------------------------------------
def test_a_class_that_gained_setstate_gets_it_called(filename, monkeypatch):
    rows = particles(20)
    tinystore.save(rows, filename)
    calls = []

    def setstate(self, state):
        calls.append(sorted(state))
        self.__dict__.update(state)

    monkeypatch.setattr(Particle, "__setstate__", setstate, raising=False)
    loaded = tinystore.load(filename)
    assert len(calls) == 20 and calls[0] == sorted(vars(rows[0]))
    monkeypatch.undo()
    assert pickle.dumps(loaded) == pickle.dumps(rows)


def test_a_reader_without_tables_says_the_file_is_newer(filename, monkeypatch):
    tinystore.save({"rows": tuples(30), "other": [1.5, "x"]}, filename)
    monkeypatch.delitem(decode._ENGINE_KINDS, "table")  # a 1.1 reader knows no tables
    with pytest.raises(UnloadableError, match="unknown node kind 'table'.*newer tinystore"):
        tinystore.load(filename)
    assert tinystore.load(filename, path="other") == [1.5, "x"]  # the rest reads


def test_the_layout_of_the_documented_example():
    node = ObjectCodec().encode([(i, i / 2, "a") for i in range(16)])
    assert node.attrs == {"t": "table", "n": 16, "k": ["i1", "f8", "si1"]}
    c = node.children
    assert c["c0"] == bytes(range(16)) and len(c["c1"]) == 128
    assert c["c1"] == struct.pack("<16d", *(i / 2 for i in range(16)))
    assert c["c2"].attrs == {"t": "list"} and c["c2"].children == [["a"], bytes(16)]


@pytest.mark.parametrize(
    "attrs, children",
    [
        ({"t": "table", "n": 3, "k": ["f8"]}, {"c0": b"\0" * 16}),  # two rows, not three
        ({"t": "table", "n": 2, "k": ["f8"]}, {"c0": b"\0" * 15}),  # a partial item
        ({"t": "table", "n": 2, "k": ["f8", "i1"]}, {"c0": b"\0" * 16}),  # a kind too many
        ({"t": "table", "n": 2, "k": ["si1"]}, {"c0": Tree({"t": "list"}, [["a"], b"\0\5"])}),
        ({"t": "table", "n": 2, "k": ["zz"]}, {"c0": b"\0\0"}),
    ],
    ids=["rows", "partial", "kinds", "codes", "kind"],
)
def test_damaged_tables_are_refused(attrs, children):
    with pytest.raises(UnloadableError, match="damaged|partial"):
        ObjectCodec().decode(Tree(attrs, children))


# -- browsing, partial loads and updates ---------------------------------------------------------
def test_browsing_a_table_shows_rows(filename, capsys):
    tinystore.save({"particles": particles(30), "pairs": tuples(3000)}, filename)
    with tinystore.open(filename, "r") as s:
        view = s.node("particles")
        assert (view.kind, view.type, view.length) == ("list", "builtins.list", 30)
        assert view.attrs["t"] == "table" and view.is_table  # the stored metadata
        row = s.node("particles/3")
        assert (row.kind, row.type) == ("object", "test_tables.Particle")
        assert set(row) == {"label", "mass", "charge", "position", "active"}
        assert s.node("particles/3/position").kind == "tuple"
        assert s.node("pairs").length == 3000  # its columns are outside the record
        assert s.node("pairs/2999/2").summary().endswith("'gh'")
        assert "test_tables.Particle" in s.tree(max_depth=2)
        assert s.info()["types"]["test_tables.Particle"] == 30
        assert "builtins.list" in s.node("pairs")._repr_html_()
        assert s["particles/3/mass"] == 4.5
        assert s["pairs/7"] == tuples(8)[7] and s["pairs/7/2"] == "gh"
        assert vars(s.node("particles/3").to_object()) == vars(particles(30)[3])
    assert tinystore.load(filename, path="pairs/2999") == tuples(3000)[2999]
    assert tinystore.load(filename, path="particles/3/position") == (0.30000000000000004, -0.0, 8.0)
    with pytest.raises(KeyError):
        tinystore.load(filename, path="pairs/3000")
    if "://" not in str(filename):
        from tinystore.cli import main

        assert main(["show", str(filename), "pairs/5"]) == 0
        assert "tuple" in capsys.readouterr().out


def test_a_table_saved_alone_shows_its_versions(filename):
    tinystore.save(particles(20), filename)
    with tinystore.open(filename, "r") as s:
        view = s.node()
        assert view.kind == "list" and view.length == 20
        assert "test_tables" in view.versions


def test_updates_inside_a_table_are_refused_clearly(filename):
    rows = tuples(30)
    tinystore.save({"pairs": rows}, filename)
    with tinystore.open(filename, "a") as s:
        for change in (
            lambda: s.__setitem__("pairs/3", (1, 2.0, "x")),
            lambda: s.__setitem__("pairs/3/1", 5.0),
            lambda: s.__delitem__("pairs/3"),
        ):
            with pytest.raises(UnsupportedValueError, match="'pairs' is stored as a table"):
                change()
        assert s["pairs"] == rows
        s["pairs"] = rows[:20]  # the whole list: fine
        assert s["pairs"] == rows[:20]


# -- files: size, determinism ---------------------------------------------------------------------
def _size(path: str) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and "lock" not in f.name)


@pytest.mark.parametrize("suffix", [".h5", ".json"])
def test_files_of_many_rows_are_no_larger_than_pickle(tmp_path, suffix):
    words = [f"w{i}" for i in range(32)]
    cases = {
        "objects": particles(200),
        "tuples": [(i * 37, i / 3, words[i % 32]) for i in range(10_000)],
    }
    for name, obj in cases.items():
        path = str(tmp_path / f"{name}{suffix}")
        tinystore.save(obj, path)
        assert _size(path) <= len(pickle.dumps(obj, protocol=4)), name


def test_the_same_rows_save_to_the_same_bytes(tmp_path):
    obj = {"a": tuples(3000), "b": particles(50)}
    paths = [tmp_path / "one.json", tmp_path / "two.json"]
    for p in paths:
        tinystore.save(obj, p)
    files = [sorted(f.relative_to(p) for f in p.rglob("*") if "lock" not in f.name) for p in paths]
    assert files[0] == files[1]
    for f in files[0]:
        if (paths[0] / f).is_file():
            assert (paths[0] / f).read_bytes() == (paths[1] / f).read_bytes(), f
    assert any(f.suffix == ".npy" for f in files[0])  # (big columns: arrays beside the record)
