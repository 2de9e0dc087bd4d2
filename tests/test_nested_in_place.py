"""Format 1.3: small nodes nested in place, shapes, bare-array entries.

A small node of a stored object is written inside its parent's entry, and
may hold small nodes in place itself (down to ``MAX_INPLACE_DEPTH`` levels
below its table node); a node whose key tuple was met before in its record
writes its values only, its keys being those of a *shape* of the record's
metadata table; the nodes of a record's first shape are bare JSON arrays
(docs/format.rst, "Entries").  Loading, browsing and updating by path work
into and out of these forms as for any node, on every backend, and sharing
is pickle's.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import orjson
import pytest

import tinystore
from tinystore.errors import CorruptStoreError
from tinystore.storage.record.format import MAX_INPLACE_DEPTH

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from conftest import OBJECT_BACKENDS  # noqa: E402
from crafting import read_record, write_record  # noqa: E402
from objects_cases import assert_same_structure, pickled  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
#: main when format 1.2 was the newest: its reader reads 1.3 files in a subprocess
FORMAT_1_2 = "735e29d"


def chain(depth: int) -> list:
    """Benchmark (f): each level a list ``[dict, next level]``."""
    root: list = []
    level = root
    for d in range(depth):
        inner: list = []
        level.append({"depth": d, "weight": d / 7})
        level.append(inner)
        level = inner
    return root


def keyed_chain(depth: int) -> dict:
    """Dicts in dicts whose key tuples never repeat."""
    root: dict = {}
    level = root
    for d in range(depth):
        inner: dict = {}
        level[f"k{d}"] = inner
        level["n"] = d
        level = inner
    return root


def _shared() -> list:
    s = {"x": 1}
    t = [2, 3]
    return [[s, [s, t]], {"p": s, "q": [t]}]


def _cyclic() -> list:
    outer: list = [1, [2, [3]]]
    outer[1][1].append(outer)
    d: dict = {"a": {"b": {}}}
    d["a"]["b"]["back"] = d["a"]
    return [outer, d]


def _recursive_tuple() -> tuple:
    inner: list = []
    t = (1, inner)
    inner.append(t)
    return (t, [t])


CASES = {
    "chain": chain(150),  # crosses MAX_INPLACE_DEPTH twice: nodes of the table in between
    "keyed chain": keyed_chain(100),
    "browse": {f"g{g}": {f"item_{j}": g + j / 10 for j in range(5)} for g in range(30)},
    "list of dicts": [{"a": i, "b": [i, (i, "x")]} for i in range(40)],
    "shared": _shared(),
    "cyclic": _cyclic(),
    "recursive tuple": _recursive_tuple(),
    "leaves that are not values": [{"b": b"xy", "n": [1, {"c": 1 + 2j}]}, [[np.int8(3)]]],
    "tagged scalars": [["ü\ud800", 2**70, float("nan"), -0.0], {"s": [float("inf")]}],
    "empty": [[], {}, [[{}]], ()],
    "keys met twice, other kinds": [{"a": 1}, {"a": (1,)}, {"a": [1]}, {"a": {"a": 2}}],
}


@pytest.mark.parametrize("backend", OBJECT_BACKENDS)
@pytest.mark.parametrize("name", list(CASES))
def test_nested_values_round_trip_as_pickle(name, roundtrip):
    obj = CASES[name]
    assert_same_structure(pickled(obj), roundtrip(obj), new=False)


def _record(filename: str) -> dict:
    return orjson.loads(read_record(filename))


def test_the_chain_is_nodes_in_place_with_a_table_node_every_64_levels(backend, filename):
    tinystore.save(chain(200), filename)
    rec = _record(filename)
    # 200 levels: a table node, then nodes in place down to MAX_INPLACE_DEPTH
    # levels below it, whose deepest list is the next table node
    assert len(rec["nodes"]) == 4
    assert [1, "depth", "weight"] in rec["attrs"]
    text = read_record(filename)
    assert text.count(b"depth") == 2  # the first dict, then the shape
    assert b'{"@0":[[1,0.14285714285714285],{"@0":[[2,' in text
    assert tinystore.load(filename) == chain(200)


def test_keys_are_named_once_per_record(backend, filename):
    obj = CASES["browse"]
    tinystore.save(obj, filename)
    text = read_record(filename)
    assert text.count(b"item_3") == 2  # the first dict, then the shape
    doc = orjson.loads(text)
    assert doc["attrs"] == [{"t": "dict"}, [0, *(f"item_{j}" for j in range(5))]]
    children = doc["nodes"][0]["c"]
    assert children["g0"] == {"@0": obj["g0"]}  # the first: as it is
    assert children["g1"] == list(obj["g1"].values())  # then: a bare array of the shape
    assert tinystore.load(filename) == obj


def test_a_node_in_place_that_refers_to_the_table_has_a_shape(backend, filename):
    """Dicts whose keys never repeat, nested deeper than a node in place
    may be: the one that refers to a node of the table is written through a
    shape (so that a reader of format 1.2 refuses the record)."""
    tinystore.save(keyed_chain(100), filename)
    doc = _record(filename)
    shapes = [a for a in doc["attrs"] if type(a) is list]
    assert shapes and all(len(s) == 3 for s in shapes)  # [n, "k<d>", "n"]
    assert tinystore.load(filename) == keyed_chain(100)


def _expected_after_updates() -> list:
    obj = chain(100)
    level = obj
    for _ in range(70):  # past the first table node below the top one
        level = level[1]
    level[0]["weight"] = "new"
    level[0]["extra"] = [1, 2]
    del level[0]["depth"]
    obj[1][1][0]["depth"] = -1
    obj[1][1][1].append("appended")
    return obj


def _deep(levels: int) -> str:
    return "/".join(["1"] * levels)


def test_paths_read_update_and_delete_inside_nodes_in_place(backend, filename):
    with tinystore.open(filename, "w") as s:
        s["c"] = chain(100)
    with tinystore.open(filename) as s:
        assert s[f"c/{_deep(2)}/0/depth"] == 2
        assert s[f"c/{_deep(70)}/0"] == {"depth": 70, "weight": 10.0}
        assert s.node(f"c/{_deep(2)}/0").to_object() == {"depth": 2, "weight": 2 / 7}
        assert len(s[f"c/{_deep(3)}"]) == 2
        s[f"c/{_deep(70)}/0/weight"] = "new"
        s[f"c/{_deep(70)}/0/extra"] = [1, 2]
        del s[f"c/{_deep(70)}/0/depth"]
        s["c/1/1/0/depth"] = -1
        s[f"c/{_deep(3)}/2"] = "appended"
    expected = _expected_after_updates()
    with tinystore.open(filename, "r") as s:
        assert s["c"] == expected
        assert s[f"c/{_deep(70)}/0"] == {"weight": "new", "extra": [1, 2]}
    assert tinystore.load(filename, path=f"c/{_deep(99)}") == [{"depth": 99, "weight": 99 / 7}, []]


def test_shared_parts_stay_shared_after_an_update_nearby(backend, filename):
    with tinystore.open(filename, "w") as s:
        s["x"] = _shared()
        s["x/1/r"] = 5  # in the dict that refers to the shared ones
    loaded = tinystore.load(filename, path="x")
    expected = _shared()
    expected[1]["r"] = 5
    assert_same_structure(pickled(expected), loaded, new=False)
    assert loaded[0][0] is loaded[0][1][0] is loaded[1]["p"]


def test_a_delete_renumbers_the_table_nodes_inside_nodes_in_place(backend, filename):
    """Deleting a part leaves table nodes unused; the record written next
    renumbers the table, references inside nodes in place too."""
    obj = {"a": chain(150), "b": chain(150), "c": keyed_chain(80)}
    tinystore.save(obj, filename)
    with tinystore.open(filename) as s:
        del s["a"]
    with tinystore.open(filename) as s:
        del s[f"b/{_deep(120)}"]  # a node of the table, inside nodes in place
    del obj["a"]
    level = obj["b"]
    for _ in range(119):
        level = level[1]
    del level[1]
    assert tinystore.load(filename) == obj


def test_saving_twice_gives_the_same_bytes(backend, filename):
    obj = {"f": chain(150), "i": CASES["browse"], "k": keyed_chain(70)}
    tinystore.save(obj, filename)
    first = read_record(filename)
    tinystore.save(obj, filename)
    assert read_record(filename) == first


def test_assignments_into_a_group_use_the_shapes_of_its_record(backend, filename):
    """A small flat value assigned into a group is an entry of the group's
    record: in the form of a shape the record has, else as in format 1.2
    (no shape is made for it, so the record stays readable by 1.2)."""
    with tinystore.open(filename, "w") as s:
        s["t"] = (1, 2)
        s["d"] = {"loss": 1.5, "acc": 1.0}
        s["e"] = {"loss": 2.5, "acc": 0.0}
    doc = _record(filename)
    assert all(type(a) is dict for a in doc["attrs"])
    assert doc["nodes"][0]["c"]["t"] == {"@0": [1, 2]}
    assert doc["nodes"][0]["c"]["e"] == {"@1": {"loss": 2.5, "acc": 0.0}}
    tinystore.save({f"step{i}": {"loss": i / 3, "acc": 0.5} for i in range(3)}, filename)
    with tinystore.open(filename) as s:
        s["step3"] = {"loss": 1.5, "acc": 1.0}  # the record's default shape: a bare array
        s["t"] = (1, 2)
    with tinystore.open(filename, "r") as s:
        assert s["t"] == (1, 2) and s["step3"] == {"loss": 1.5, "acc": 1.0}
        assert s["step2"] == {"loss": 2 / 3, "acc": 0.5}
    children = _record(filename)["nodes"][0]["c"]
    assert children["step3"] == [1.5, 1.0]
    assert children["t"] == {"@2": [1, 2]}


# -- a reader of format 1.2 ----------------------------------------------------------------
@pytest.fixture(scope="module")
def reader_1_2(tmp_path_factory):
    """The tinystore package of format 1.2, from this repository's history."""
    where = tmp_path_factory.mktemp("tinystore-1.2")
    archive = where / "src.tar"
    made = subprocess.run(
        ["git", "-C", str(CHECKOUT), "archive", "-o", str(archive), FORMAT_1_2, "tinystore"],
        capture_output=True,
    )
    if made.returncode:
        pytest.skip(f"commit {FORMAT_1_2} (format 1.2) is not in this checkout's history")
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return where


_OLD_LOAD = """
import pickle, sys
sys.path.insert(0, sys.argv[1])  # the 1.2 package, not this one
import tinystore
from tinystore.storage.record.format import FORMAT_VERSION
assert FORMAT_VERSION == (1, 2), FORMAT_VERSION
try:
    value = tinystore.load(sys.argv[2], path=sys.argv[3] or None)
except Exception as exc:
    print(type(exc).__name__, exc)
else:
    sys.stdout.buffer.write(b"VALUE" + pickle.dumps(value))
"""


def _load_with_1_2(reader: Path, filename: str, path: str = "") -> bytes:
    done = subprocess.run(  # -I: isolated, no path from the environment
        [sys.executable, "-I", "-c", _OLD_LOAD, str(reader), filename, path],
        capture_output=True,
        cwd=str(reader),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_a_reader_of_format_1_2_refuses_records_with_shapes(reader_1_2, filename):
    """Every record that uses a 1.3 form has a shape in its metadata table,
    which a 1.2 reader refuses as a whole: never a wrong value.  Records
    without shapes (nodes in place nested only) it reads right."""
    tinystore.save({"f": chain(100), "plain": 1}, filename)
    out = _load_with_1_2(reader_1_2, filename)
    assert out.startswith(b"CorruptStoreError") and b"invalid metadata table" in out, out
    assert _load_with_1_2(reader_1_2, filename, "plain").startswith(b"CorruptStoreError")
    nested = {"a": {"b": {"c": 1, "d": "x"}, "e": 2.5}, "f": 3}  # no key tuple met twice
    tinystore.save(nested, filename)
    doc = _record(filename)
    assert all(type(a) is dict for a in doc["attrs"])
    assert doc["nodes"][0]["c"]["a"] == {"@0": {"b": {"@0": {"c": 1, "d": "x"}}, "e": 2.5}}
    out = _load_with_1_2(reader_1_2, filename)
    assert out.startswith(b"VALUE") and pickle.loads(out[5:]) == nested


# -- damaged records -----------------------------------------------------------------------
def _doc(attrs: list, children, version=(1, 3)) -> dict:
    return {"tinystore": list(version), "attrs": attrs, "nodes": [{"a": 0, "c": children}]}


_DICT = {"t": "dict"}
_LIST = {"t": "list"}


def _deep_entry(levels: int, bare: bool) -> list | dict:
    entry: list | dict = [1]
    for _ in range(levels):
        entry = [entry] if bare else {"@1": [entry]}
    return entry


HOSTILE = {
    "shape with fewer values": _doc([_DICT, [0, "a", "b"]], {"x": {"@1": [1]}}),
    "shape with more values": _doc([_DICT, [0, "a"]], {"x": {"@1": [1, 2]}}),
    "shape of values not a list": _doc([_DICT, [0, "a"]], {"x": {"@1": {"a": 1}}}),
    "bare array of values not fitting": _doc([_DICT, [0, "a"]], {"x": [1, 2, 3]}),
    "bare array without a shape": _doc([_DICT], {"x": [1, 2]}),
    "shape metadata out of the table": _doc([_DICT, [5, "a"]], {"x": {"@1": [1]}}),
    "shape metadata negative": _doc([_DICT, [-1, "a"]], {"x": {"@1": [1]}}),
    "shape of a shape": _doc([_DICT, [0, "a"], [1, "b"]], {"x": {"@2": [1]}}),
    "shape key not a string": _doc([_DICT, [0, 5]], {"x": {"@1": [1]}}),
    "shape keys repeated": _doc([_DICT, [0, "a", "a"]], {"x": {"@1": [1, 2]}}),
    "shape empty": _doc([_DICT, []], {"x": 1}),
    "shape metadata not an int": _doc([_DICT, ["0", "a"]], {"x": {"@1": [1]}}),
    "node whose metadata is a shape": {
        "tinystore": [1, 3],
        "attrs": [_DICT, [0, "a"]],
        "nodes": [{"a": 0, "c": {"x": {"@": 1}}}, {"a": 1, "c": {"a": 1}}],
    },
    "index out of the table inside a node in place": _doc([_DICT, _LIST, [1]], {"x": [[{"@": 9}]]}),
    "table node reached twice from nodes in place": {
        "tinystore": [1, 3],
        "attrs": [_DICT, _LIST, [1]],
        "nodes": [{"a": 0, "c": {"x": [{"@": 1}, [{"@": 1}]]}}, {"a": 1, "c": [1]}],
    },
    "nested too deep (bare arrays)": _doc(
        [_DICT, _LIST, [1]], {"x": _deep_entry(MAX_INPLACE_DEPTH + 5, bare=True)}
    ),
    "nested too deep (tags)": _doc([_DICT, _LIST], {"x": _deep_entry(100, bare=False)}),
    "nested too deep (nodes)": _doc(
        [_DICT], {"x": {"@": {"a": 0, "c": {"y": {"@": {"a": 0, "c": {}}}}}}}
    ),
}
# the last one: replaced below by one nested deeper than a reader takes
_node: dict = {"a": 0, "c": {}}
for _ in range(MAX_INPLACE_DEPTH + 3):
    _node = {"a": 0, "c": {"y": {"@": _node}}}
HOSTILE["nested too deep (nodes)"] = _doc([_DICT], {"x": {"@": _node}})


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_damaged_record_of_format_1_3_is_refused(case, backend, filename):
    with tinystore.open(filename, "w") as s:
        s["keep"] = {"v": 1}
        s["a"] = {"x": np.arange(3.0), "y": [1, [2]]}  # a physical group of its own
    write_record(filename, ("a",), HOSTILE[case])
    with pytest.raises(CorruptStoreError):
        tinystore.load(filename, path="a")
    with pytest.raises(CorruptStoreError):
        with tinystore.open(filename, "r") as s:
            s.node("a").to_object()
    assert tinystore.load(filename, path="keep") == {"v": 1}


@pytest.mark.parametrize("backend", ["memory", "hdf5", "json"])  # (zarr: one JSON document)
def test_a_damaged_record_is_never_written_back(backend, filename):
    """A record nested too deep for orjson to write again: an update of
    another part refuses it (CorruptStoreError), and the file stays."""
    with tinystore.open(filename, "w") as s:
        s["a"] = {"x": np.arange(3.0), "y": [1, [2]]}
    entry: list = [1]
    for _ in range(300):
        entry = [entry]
    doc = _doc([_DICT, _LIST, [1]], {"x": entry, "z": 1})
    write_record(filename, ("a",), json.dumps(doc).encode())  # (orjson writes 254 levels)
    before = read_record(filename, ("a",))
    with pytest.raises(CorruptStoreError):
        with tinystore.open(filename) as s:
            s["a/z"] = 2
    assert read_record(filename, ("a",)) == before


# -- crash safety ----------------------------------------------------------------------------
def _update_deep(store: str) -> None:
    with tinystore.open(store) as s:
        s[f"k/{_deep(70)}/0/weight"] = "new"


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
def test_an_update_inside_nodes_in_place_killed_at_every_step_is_old_or_new(tmp_path):
    store = str(tmp_path / "s.json")

    def make():
        with tinystore.open(store, "w") as s:
            s["k"] = chain(80)

    make()
    status, out = bw.forked(store, "count", job=_update_deep)
    assert status == 0, out
    steps = int(out.split()[1])
    old, new = chain(80), chain(80)
    level = new
    for _ in range(70):
        level = level[1]
    level[0]["weight"] = "new"
    for n in range(1, steps + 1):
        make()
        status, out = bw.forked(store, "kill", n, job=_update_deep)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        assert tinystore.load(store, path="k") in (old, new), n


# -- the examples of docs/format.rst ---------------------------------------------------------
DOC_EXAMPLES = [
    (
        [(1, 0.5, "a"), (2, 1.5, "b")],
        {
            "attrs": [{"t": "list"}, {"t": "tuple"}, [1]],
            "nodes": [{"a": 0, "c": [[1, 0.5, "a"], [2, 1.5, "b"]]}],
        },
    ),
    (
        {"g0": {"x": 1, "y": 2}, "g1": {"x": 3, "y": 4}, "g2": {"x": 5, "y": 6}},
        {
            "attrs": [{"t": "dict"}, [0, "x", "y"]],
            "nodes": [{"a": 0, "c": {"g0": {"@0": {"x": 1, "y": 2}}, "g1": [3, 4], "g2": [5, 6]}}],
        },
    ),
    (
        [{"depth": 0, "weight": 0.5}, [{"depth": 1, "weight": 0.25}, []]],
        {
            "attrs": [{"t": "list"}, {"t": "dict"}, [1, "depth", "weight"]],
            "nodes": [
                {
                    "a": 0,
                    "c": [{"@1": {"depth": 0, "weight": 0.5}}, {"@0": [[1, 0.25], {"@0": []}]}],
                }
            ],
        },
    ),
]


@pytest.mark.parametrize("obj, record", DOC_EXAMPLES, ids=["tuples", "dicts", "chain"])
def test_the_examples_of_the_format_page(obj, record, backend, filename):
    tinystore.save(obj, filename)
    doc = _record(filename)
    assert doc["tinystore"] == [1, 4]
    assert {k: doc[k] for k in ("attrs", "nodes")} == record
    assert tinystore.load(filename) == obj


def test_a_chain_of_plain_nodes_is_built_by_the_reader(backend, filename):
    """Nodes of builtin kinds whose children are all built are built by the
    record reader (the codec's ``plain_maker``), deepest first, table nodes
    too: the decoder gets the chain as one list.  A node with an anchor
    stays a node, and so do those that hold it."""
    from tinystore.storage.base import Tree

    shared = {"s": 1}
    tinystore.save([chain(200), [shared, [shared]]], filename)
    with tinystore.open(filename, "r") as s:
        tree = s.read_tree(plain=True)
    built, kept = tree.children
    assert type(built) is list and len(built) == 2 and type(built[1]) is list
    assert type(kept) is Tree and not tree.flat
    assert tinystore.load(filename)[0] == chain(200)


def test_table_rows_inside_nodes_in_place_are_reached_by_path(backend, filename):
    def rows():
        return [(i, i / 2, "a") for i in range(20)]

    with tinystore.open(filename, "w") as s:
        s["x"] = [{"rows": rows(), "k": 1}, [{"rows2": rows()}]]
        assert s["x/0/rows/3"] == (3, 1.5, "a") and s["x/1/0/rows2/4/1"] == 2.0
        assert s.node("x/1/0/rows2/5").to_object() == (5, 2.5, "a")
        s["x/0/k"] = 2
    assert tinystore.load(filename, path="x/1/0/rows2/5") == (5, 2.5, "a")
    assert tinystore.load(filename, path="x") == [{"rows": rows(), "k": 2}, [{"rows2": rows()}]]
