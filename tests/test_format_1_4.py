"""Format 1.4: shorter records for many objects of one class.

Table nodes whose metadata and keys repeat are written through a shape (the
keys once per record), metadata entries that differ from an earlier one in
int values only (the anchor ``id`` of each instance, the ``r`` of each
``ref``) name that entry and the values, a shape with an earlier shape's keys
names that shape, and the entry of an external array among the values of a
node of a shape is one list; a record that uses these forms holds the mark
``"1.4"`` in its metadata table, which a reader of format 1.3 refuses
(docs/format.rst, "Entries").  Readers undo the forms as they read a record:
loading, browsing and updating by path see the nodes they always saw, on
every backend, and sharing is pickle's.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import orjson
import pytest

import tinystore
from tinystore.errors import CorruptStoreError, FormatVersionError
from tinystore.storage.record.format import MARK

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from conftest import OBJECT_BACKENDS  # noqa: E402
from crafting import read_record, write_record  # noqa: E402
from objects_cases import assert_same_structure, pickled  # noqa: E402

CHECKOUT = Path(__file__).resolve().parent.parent
#: main when format 1.3 was the newest: its reader reads 1.4 files in a subprocess
FORMAT_1_3 = "3c3163b6b3ce9c762a7d172395db59e93e9ef45d"


class Tag:
    """An object of JSON values only (a node in place), shared: an anchor each."""

    def __init__(self, step: int):
        self.step = step
        self.label = "frame"
        self.ok = True


class Calc:
    def __init__(self, energy: float, forces: np.ndarray, owner: Frame):
        self.energy = energy
        self.forces = forces
        self.owner = owner  # a reference back: the frame has an anchor, this a ref


class Frame:
    """What an ``ase.Atoms`` with a calculator is to tinystore: arrays above
    64 bytes (HDF5 datasets), one above 2048 (an external file on JSON too),
    small ones in the record, an object referring back, shared objects."""

    def __init__(self, step: int, rng: np.random.Generator):
        self.positions = rng.random((90, 3))  # 2160 bytes
        self.numbers = np.arange(step, step + 12)  # 96 bytes
        self.pbc = np.array([True, False, True])
        self.tag = Tag(step)
        self.again = self.tag
        self.calc = Calc(float(step) / 3, rng.random((4, 3)), self)


def frames(n: int = 6) -> list:
    rng = np.random.default_rng(5)
    return [Frame(i, rng) for i in range(n)]


def _record(filename: str, gpath: tuple = ()) -> dict:
    return orjson.loads(read_record(filename, gpath))


def _beside(filename: str, name: str) -> str:
    """Another store in the folder of ``filename``, of its backend."""
    path = Path(filename)
    return str(path.with_name(name + path.suffix))


def _same(expected, loaded) -> None:
    assert_same_structure(pickled(expected), loaded, new=False)


@pytest.mark.parametrize("backend", OBJECT_BACKENDS)
def test_frames_round_trip_as_pickle(roundtrip):
    obj = frames()
    loaded = roundtrip(obj)
    _same(obj, loaded)
    assert loaded[2].calc.owner is loaded[2] and loaded[2].tag is loaded[2].again


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_the_record_uses_the_forms_of_1_4(backend, filename):
    tinystore.save(frames(), filename)
    text = read_record(filename)
    doc = orjson.loads(text)
    attrs, nodes = doc["attrs"], doc["nodes"]
    assert doc["tinystore"] == [1, 4] and attrs[-1] == MARK
    shapes = {i for i, a in enumerate(attrs) if type(a) is list and type(a[0]) is int}
    # every frame a table node of one shape: its attribute names once in the record
    shaped = [n for n in nodes if n.get("a") in shapes]
    assert len(shaped) >= 6 and all(type(n["c"]) is list for n in shaped)
    assert text.count(b'"positions","numbers"') == 1 and text.count(b'"owner"') == 1
    # the anchors of the tags and frames, the refs: an earlier entry and the ints
    derived = [a for a in attrs if type(a) is list and len(a) == 2 and type(a[1]) is dict]
    assert {"id"} in [set(a[1]) for a in derived] and {"r"} in [set(a[1]) for a in derived]
    assert text.count(b"test_format_1_4:Tag") == text.count(b"test_format_1_4:Frame") == 1
    # the frames' shapes (one per anchor): the keys of the first one
    assert [a for a in attrs if type(a) is list and len(a) == 2 and type(a[1]) is int]
    # arrays: one list each among the values of a node of a shape
    assert text.count(b'{"XA":["') == (18 if backend == "hdf5" else 6)  # HDF5: above 64 bytes
    assert b'"k":"A"' not in text


def test_every_array_is_a_dataset_at_its_logical_path(tmp_path):
    filename = str(tmp_path / "f.h5")
    obj = frames()
    tinystore.save(obj, filename)
    with h5py.File(filename, "r") as f:
        for i, frame in enumerate(obj):
            assert np.array_equal(f[f"{i}/positions"][()], frame.positions)
            assert np.array_equal(f[f"{i}/numbers"][()], frame.numbers)
            assert np.array_equal(f[f"{i}/calc/forces"][()], frame.calc.forces)


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_saving_twice_and_rewriting_give_the_same_bytes(backend, filename):
    obj = frames()
    tinystore.save(obj, filename)
    first = read_record(filename)
    again = _beside(filename, "again")
    tinystore.save(obj, again)
    assert read_record(again) == first
    with tinystore.open(filename) as s:  # a record read and written again: the same forms
        s["5/pbc"] = np.array([False, False, False])
        s["5/pbc"] = obj[5].pbc
    assert read_record(filename) == first


def test_paths_read_update_and_delete_inside_nodes_of_a_shape(backend, filename):
    obj = frames()
    tinystore.save(obj, filename)
    new = np.full((90, 3), 0.5)
    with tinystore.open(filename) as s:
        assert s["2/calc/energy"] == 2 / 3
        assert np.array_equal(s["3/positions"], obj[3].positions)
        assert s.node("1/tag").to_object().step == 1
        s["3/positions"] = new
        s["4/tag/label"] = "changed"
        del s["1/numbers"]
        s["0/extra"] = 7
    obj[3].positions = new
    obj[4].tag.label = "changed"
    del obj[1].numbers
    obj[0].extra = 7
    loaded = tinystore.load(filename)
    _same(obj, loaded)
    assert loaded[4].again is loaded[4].tag


def test_groups_and_records_of_one_store_each_use_the_forms(backend, filename):
    with tinystore.open(filename, "w") as s:
        s.create_group("run")
        s["run/frames"] = frames(3)
        s["plain"] = {"a": 1}
    loaded = tinystore.load(filename, path="run/frames")
    _same(frames(3), loaded)
    assert tinystore.load(filename, path="plain") == {"a": 1}


# -- a reader of format 1.3 --------------------------------------------------------------
@pytest.fixture(scope="module")
def reader_1_3(tmp_path_factory):
    """The tinystore package of format 1.3, from this repository's history."""
    where = tmp_path_factory.mktemp("tinystore-1.3")
    archive = where / "src.tar"
    made = subprocess.run(
        ["git", "-C", str(CHECKOUT), "archive", "-o", str(archive), FORMAT_1_3, "tinystore"],
        capture_output=True,
    )
    if made.returncode:
        pytest.skip(f"commit {FORMAT_1_3} (format 1.3) is not in this checkout's history")
    with tarfile.open(archive) as tar:
        tar.extractall(where, filter="data")
    return where


_OLD_LOAD = """
import pickle, sys
sys.path.insert(0, sys.argv[1])  # the 1.3 package, not this one
import tinystore
from tinystore.storage.record.format import FORMAT_VERSION
assert FORMAT_VERSION == (1, 3), FORMAT_VERSION
for filename, path in zip(sys.argv[2::2], sys.argv[3::2]):
    try:
        value = tinystore.load(filename, path=path or None)
    except Exception as exc:
        print(type(exc).__name__, str(exc).replace("\\n", " "))
    else:
        print("VALUE", pickle.dumps(value).hex())
"""


def _load_with_1_3(reader: Path, *loads: tuple[str, str]) -> list[str]:
    """What a 1.3 reader gives for each ``(filename, path)``, in one process:
    ``"VALUE <pickle, hex>"`` or the error's class and message."""
    args = [x for pair in loads for x in pair]
    done = subprocess.run(  # -I: isolated, no path from the environment
        [sys.executable, "-I", "-c", _OLD_LOAD, str(reader), *args],
        capture_output=True,
        cwd=str(reader),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().splitlines()


def _value(line: str):
    assert line.startswith("VALUE "), line
    return pickle.loads(bytes.fromhex(line[6:]))


def _refused(line: str) -> bool:
    return line.startswith("CorruptStoreError") and "invalid metadata table" in line


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_a_reader_of_format_1_3_refuses_records_with_the_forms_of_1_4(reader_1_3, filename):
    """A record that uses a 1.4 form holds the mark, which a 1.3 reader
    refuses with the record: never a wrong value; other records (written by
    this tinystore, format [1, 4] too) it reads right.  Derived metadata and
    shapes without any node of a shape are marked all the same."""
    plain = {"frames": [[i, float(i)] for i in range(3)], "plain": 1}
    unmarked = _beside(filename, "unmarked")
    tinystore.save(plain, unmarked)
    assert MARK not in _record(unmarked).get("attrs", [])
    with tinystore.open(filename, "w") as s:
        s["frames"] = [{"x": np.arange(20), "n": i} for i in range(3)]  # table nodes of a shape
        s["plain"] = 1
    assert MARK in _record(filename, ("frames",))["attrs"]
    tags = _beside(filename, "tags")
    obj = [[tag, tag] for tag in map(Tag, range(3))]  # anchors: derived entries only
    tinystore.save(obj, tags)
    doc = _record(tags)
    assert MARK in doc["attrs"] and len(doc["nodes"]) == 1  # every tag in place
    assert [1, {"id": 1}] in doc["attrs"] and [2, {"r": 1}] in doc["attrs"]
    out = _load_with_1_3(
        reader_1_3,
        (unmarked, ""),
        (filename, "frames"),
        (filename, "frames/1"),
        (filename, "plain"),  # in a record without them
        (tags, ""),
    )
    assert _value(out[0]) == plain
    assert _refused(out[1]) and _refused(out[2]), out
    assert _value(out[3]) == 1
    assert _refused(out[4]), out
    loaded = tinystore.load(tags)
    _same(obj, loaded)
    assert loaded[1][0] is loaded[1][1]


# -- damaged records ----------------------------------------------------------------------
_DICT = {"t": "dict"}
_OBJ = {"t": "dict", "id": 0}


def _doc(attrs: list, nodes: list) -> dict:
    return {"tinystore": [1, 4], "attrs": attrs, "nodes": nodes}


def _top(children) -> dict:
    return {"a": 0, "c": children}


HOSTILE = {
    "derived from a later entry": _doc([_DICT, [2, {"id": 1}], _OBJ, MARK], [_top({})]),
    "derived from itself": _doc([_DICT, [1, {"id": 1}], MARK], [_top({})]),
    "derived from a shape": _doc([_DICT, [0, "a"], [1, {"id": 1}], MARK], [_top({})]),
    "derived with a key its base lacks": _doc([_OBJ, [0, {"x": 1}], MARK], [_top({})]),
    "derived from an index not an int": _doc([_OBJ, ["0", {"id": 1}], MARK], [_top({})]),
    "keys of a later shape": _doc([_DICT, [0, 2], [0, "a", "b"], MARK], [_top({})]),
    "keys of a metadata entry": _doc([_DICT, [0, 0], MARK], [_top({})]),
    "keys of a list shape": _doc([_DICT, [0], [0, 1], MARK], [_top({})]),
    "values not fitting the shape of a node": _doc(
        [_DICT, [0, "a", "b"], MARK], [_top({"x": {"@": 1}}), {"a": 1, "c": [1]}]
    ),
    "invalid short array entry": _doc(
        [_DICT, [0, "a"], MARK], [_top({"x": {"@": 1}}), {"a": 1, "c": [{"XA": ["a", "<f8"]}]}]
    ),
    "short array entry with other keys": _doc(
        [_DICT, [0, "a"], MARK],
        [_top({"x": {"@": 1}}), {"a": 1, "c": [{"XA": ["a", "<f8", [2], "0"], "k": "B"}]}],
    ),
    "short array entry outside a node of a shape": _doc(
        [_DICT, MARK], [_top({"x": {"XA": ["a", "<f8", [2], "0"]}})]
    ),
    "short array entry naming a parent": _doc(
        [_DICT, [0, "a"], MARK],
        [_top({"x": {"@": 1}}), {"a": 1, "c": [{"XA": ["../a", "<f8", [2], "0"]}]}],
    ),
    "node of a shape without the mark": _doc(
        [_DICT, [0, "a"]], [_top({"x": {"@": 1}}), {"a": 1, "c": [1]}]
    ),
    "mark that is no version": _doc([_DICT, "1.x"], [_top({})]),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_damaged_record_of_format_1_4_is_refused(case, backend, filename):
    tinystore.save({"x": 1}, filename)
    write_record(filename, (), HOSTILE[case])
    with pytest.raises(CorruptStoreError):
        tinystore.load(filename)


def test_a_record_marked_by_a_newer_format_is_refused(backend, filename):
    tinystore.save({"x": 1}, filename)
    write_record(filename, (), _doc([_DICT, "1.9"], [_top({"x": 1})]))
    with pytest.raises(FormatVersionError, match="format 1.9"):
        tinystore.load(filename)
    write_record(filename, (), _doc([_DICT, "1.2"], [_top({"x": 1})]))
    assert tinystore.load(filename) == {"x": 1}  # an older mark: nothing more to read


def test_the_example_of_the_format_page(tmp_path):
    obj = [{"x": np.zeros(10), "n": 1}, {"x": np.ones(10), "n": 2}]
    filename = str(tmp_path / "example.h5")
    tinystore.save(obj, filename)
    doc = _record(filename)
    del doc["h"]
    assert doc == {
        "tinystore": [1, 4],
        "attrs": [{"t": "list"}, {"t": "dict"}, [1, "x", "n"], "1.4"],
        "nodes": [
            {"a": 0, "c": [{"@": 1}, {"@": 2}]},
            {"a": 2, "c": [{"XA": ["0/x", "<f8", [10], "0000000000000050"]}, 1]},
            {"a": 2, "c": [{"XA": ["1/x", "<f8", [10], "7f60000000000050"]}, 2]},
        ],
    }
    _same(obj, tinystore.load(filename))


@pytest.mark.parametrize("name", ["small_dict", "objects", "tuples", "nested", "browse_tree"])
def test_the_benchmark_workloads_use_no_form_of_1_4(name, tmp_path):
    """Their records are what format 1.3 wrote (but for the version)."""
    if str(CHECKOUT) not in sys.path:
        sys.path.append(str(CHECKOUT))  # after site-packages, as benchmarks/run.py
    from benchmarks import workloads

    obj = getattr(workloads, name)(workloads.SMOKE)
    for filename in (str(tmp_path / "w.h5"), str(tmp_path / "w.json")):
        tinystore.save(obj, filename)
        doc = _record(filename)
        assert MARK not in doc.get("attrs", []), name


def test_a_derived_entry_keeps_every_float_bit_for_bit():
    """Entries that differ in an int only are derived from one another; a
    float that compares equal but is another number (``-0.0``, ``0.0``)
    keeps each entry whole."""
    from tinystore.storage.record.format import dumps_record, loads_record

    attrs = [
        {"t": "x", "id": 1, "f": 0.0},
        {"t": "x", "id": 2, "f": -0.0},
        {"t": "x", "id": 3, "f": 0.0},
    ]
    nodes = [{"a": 0, "c": {}}]
    data = dumps_record(nodes, attrs=[dict(a) for a in attrs])
    assert b'[0,{"id":3}]' in data  # the third is derived from the first
    got = loads_record(data, "test").attrs
    assert got[:3] == attrs and got[3:] == [MARK]
    assert [str(a["f"]) for a in got[:3]] == ["0.0", "-0.0", "0.0"]
