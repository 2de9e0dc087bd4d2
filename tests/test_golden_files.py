"""Golden files: stores written by earlier tinystore formats keep loading.

``tests/data/golden/<version>/`` holds files written by the tinystore of that
format version (made by running this module as a script: ``python
tests/test_golden_files.py 1.0`` at the commit that wrote that format).  They
are never regenerated: each test loads one and compares it with the object
built here, value, type, dtype, order and sharing, with pickle as the
reference.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tinystore
from tinystore.demo import Structure

GOLDEN = Path(__file__).parent / "data" / "golden"
VERSIONS = ["1.0", "1.1", "1.2", "1.3", "1.4"]
BACKEND_FILES = {"hdf5": "{name}.h5", "json": "{name}_json"}


def golden_object(version: str = "1.1") -> dict:
    """Groups-free content: nested objects, arrays big and small, frames, sharing;
    from 1.2 on, lists that are table nodes too; from 1.3 on, small nodes
    nested in place, shapes and bare arrays."""
    out = _golden_object()
    if version not in ("1.0", "1.1"):
        out["tables"] = _tables()
    if version not in ("1.0", "1.1", "1.2"):
        out["nesting"] = _nesting()
    if version not in ("1.0", "1.1", "1.2", "1.3"):
        out["short"] = _short()
    return out


def _short() -> dict:
    """Format 1.4: instances of one class with arrays (table nodes of a shape,
    short array entries), each with an anchor (derived metadata entries and
    shapes) and referred to (refs)."""
    rng = np.random.default_rng(14)
    frames = []
    for i in range(5):
        frame = argparse.Namespace(positions=rng.normal(size=(20, 3)), numbers=np.arange(i, i + 20))
        frame.energy = i / 3
        frame.me = frame
        frames.append(frame)
    return {"frames": frames, "again": frames[2]}


def _nesting() -> dict:
    """Format 1.3: a chain of [dict, next] 100 deep (table nodes every 64
    levels), dicts of one key tuple (a shape, bare arrays), dicts whose
    keys never repeat nested deeper than nodes in place may be (a node in
    place referring to the table), sharing and a cycle among them."""
    chain: list = []
    level = chain
    for d in range(100):
        inner: list = []
        level.extend([{"depth": d, "weight": d / 7}, inner])
        level = inner
    keyed: dict = {}
    at = keyed
    for d in range(70):
        at[f"k{d}"] = at = {"n": d} if d % 2 else {}
    shared = {"s": 1}
    items = [f"item_{j}" for j in range(4)]
    cycle: list = [1, [2]]
    cycle[1].append(cycle)
    return {
        "chain": chain,
        "browse": {f"g{g}": {item: g - j / 3 for j, item in enumerate(items)} for g in range(5)},
        "keyed": keyed,
        "shared": [[shared, (shared, [shared])], {"again": shared}],
        "cycle": cycle,
        "odd": [["ünï", 2**70, float("inf"), None, True], {"t": (1, (2, (3,)))}],
    }


def _tables() -> dict:
    """Lists stored column by column (table nodes, format 1.2): tuples and
    plain instances; numbers inline and external, strings plain and coded."""
    rng = np.random.default_rng(12)
    words = ["alpha", "beta", "gamma", "ünï"]
    big = [(i, float(x), words[i % 4], bool(i % 3)) for i, x in enumerate(rng.normal(size=400))]
    people = [
        argparse.Namespace(name=f"n{i}", height=1.5 + i / 100, pos=(i, -i, 0.5), ok=i % 2 == 0)
        for i in range(40)
    ]
    return {
        "pairs": [(i, i * 0.5, f"w{i % 5}") for i in range(20)],
        "big": big,  # a float column of 3200 bytes: an array outside the record
        "people": people,
        "edge": [(-0.0, float("nan"), float("inf"), 2**63 - 1, -(2**63), "") for _ in range(16)],
    }


def _golden_object() -> dict:
    rng = np.random.default_rng(16)
    shared = [1, 2.5, "three"]
    frame = pd.DataFrame(
        {
            "time_fs": np.arange(400) * 0.5,
            "Energy_eV": rng.normal(size=400),
            "converged": rng.random(400) > 0.1,
            "label": [f"s{i % 7}" for i in range(400)],
        }
    )
    frame.attrs["units"] = {"time_fs": "fs"}
    return {
        "energy_eV": -3.5,
        "Positions": rng.normal(size=(100, 3)),  # 2400 bytes: a dataset in 1.0
        "cell": np.eye(3) * 4.05,  # 72 bytes: inline in 1.0
        "tiny": np.arange(4, dtype=np.int16),
        "fortran": np.asfortranarray(rng.normal(size=(30, 20))),
        "records": np.zeros(300, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        "blob": bytes(range(256)) * 12,
        "small_bytes": b"abc",
        "nested": {"run 1": {"forces": rng.normal(size=(200, 3)), "steps": (1, 2, 3)}},
        "shared": [shared, shared, {"again": shared}],
        "set": {1, 2, 3},
        "complex": 1 + 2j,
        "big_int": 2**100,
        "structure": Structure(["Al"] * 4, rng.normal(size=(4, 3)), np.eye(3) * 4.05),
        "frame": frame,
        "ünïcode key": "välue",
        "@at": 1,
    }


def fill_groups(s) -> None:
    """Content made with the storage API: groups, path keys and attrs."""
    rng = np.random.default_rng(61)
    run = s.create_group("Results").create_group("run1")
    run.attrs["temperature_K"] = 300
    run["forces"] = rng.normal(size=(500, 3))
    run["energy"] = -1.25
    s["Results/run1/params"] = {"cutoff": 4.5, "kpoints": (3, 3, 3)}
    s["Results"].attrs["note"] = "golden"
    s["top"] = rng.normal(size=10)
    s.create_group("empty")


def _path(version: str, backend: str, name: str) -> Path:
    return GOLDEN / version / BACKEND_FILES[backend].format(name=name)


def _copy(version: str, backend: str, name: str, tmp_path: Path) -> Path:
    """A copy to work on: the golden files stay as written (no lock files either)."""
    src = _path(version, backend, name)
    dst = tmp_path / src.name
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
    return dst


def write(version: str) -> None:
    folder = GOLDEN / version
    folder.mkdir(parents=True, exist_ok=True)
    for backend in BACKEND_FILES:
        tinystore.save(golden_object(version), _path(version, backend, "object"), backend=backend)
        with tinystore.open(_path(version, backend, "groups"), "w", backend=backend) as s:
            fill_groups(s)


CASES = [(v, b) for v in VERSIONS for b in BACKEND_FILES]


@pytest.mark.parametrize(("version", "backend"), CASES)
def test_golden_object_loads(version, backend, tmp_path):
    loaded = tinystore.load(_copy(version, backend, "object", tmp_path), backend=backend)
    expected = golden_object(version)
    assert list(loaded) == list(expected)
    if "short" in expected:
        from objects_cases import assert_same_structure, pickled

        short = loaded.pop("short")
        assert_same_structure(pickled(expected.pop("short")), short, new=False)
        assert short["again"] is short["frames"][2] is short["frames"][2].me
    if "nesting" in expected:  # (str objects: a load may share equal keys, pickle may not)
        from objects_cases import assert_same_structure, pickled

        nesting = loaded.pop("nesting")
        assert_same_structure(pickled(expected.pop("nesting")), nesting, new=False)
        shared = nesting["shared"]
        assert shared[0][0] is shared[0][1][0] is shared[0][1][1][0] is shared[1]["again"]
        assert nesting["cycle"][1][1] is nesting["cycle"]
    frame = loaded.pop("frame")
    pd.testing.assert_frame_equal(frame, expected.pop("frame"))
    assert frame.attrs == {"units": {"time_fs": "fs"}}
    structure, want = loaded.pop("structure"), expected.pop("structure")
    assert type(structure) is Structure
    assert structure.species == want.species and structure.pbc == want.pbc
    assert structure.info == want.info
    for name in ("positions", "cell"):
        got, ref = getattr(structure, name), getattr(want, name)
        assert got.dtype == ref.dtype and np.array_equal(got, ref)
    # pickle is the reference: same types, values, dtypes, memory order and sharing
    assert pickle.dumps(loaded) == pickle.dumps(expected)
    assert loaded["shared"][0] is loaded["shared"][1] is loaded["shared"][2]["again"]
    assert loaded["fortran"].flags.f_contiguous


@pytest.mark.parametrize(("version", "backend"), CASES)
def test_golden_groups_load(version, backend, tmp_path):
    rng = np.random.default_rng(61)
    with tinystore.open(_copy(version, backend, "groups", tmp_path), "r", backend=backend) as s:
        assert list(s) == ["Results", "top", "empty"]
        assert s.list_groups() == ["Results", "empty"]
        assert s["Results"].list_groups() == ["run1"]
        assert dict(s["Results"].attrs) == {"note": "golden"}
        run = s["Results/run1"]
        assert dict(run.attrs) == {"temperature_K": 300}
        forces = run["forces"]
        np.testing.assert_array_equal(forces, rng.normal(size=(500, 3)))
        assert forces.dtype == np.float64
        assert run["energy"] == -1.25
        assert s["Results/run1/params"] == {"cutoff": 4.5, "kpoints": (3, 3, 3)}
        np.testing.assert_array_equal(s["top"], rng.normal(size=10))
        assert list(s["empty"]) == []


@pytest.mark.parametrize(("version", "backend"), CASES)
def test_golden_files_update(version, backend, tmp_path):
    """An old file takes writes of the current format and reads both back."""
    dst = _copy(version, backend, "groups", tmp_path)
    with tinystore.open(dst, "a", backend=backend) as s:
        s["Results/run2"] = {"forces": np.ones((100, 3)), "cell": np.eye(3)}
        s["top"] = np.arange(1000)
    with tinystore.open(dst, "r", backend=backend) as s:
        np.testing.assert_array_equal(s["Results/run2/forces"], np.ones((100, 3)))
        np.testing.assert_array_equal(s["Results/run2/cell"], np.eye(3))
        np.testing.assert_array_equal(s["top"], np.arange(1000))
        assert s["Results/run1/energy"] == -1.25


if __name__ == "__main__":
    write(sys.argv[1])


@pytest.mark.parametrize(("version", "backend"), CASES)
@pytest.mark.parametrize("name", ["object", "groups"])
def test_golden_files_are_of_their_version(version, backend, name):
    """The files are what that version wrote (never regenerated by a later one)."""
    import json

    import h5py

    path = _path(version, backend, name)
    if backend == "hdf5":
        with h5py.File(path, "r") as f:
            record = bytes(f["@record"][()])
    else:
        record = (path / "@record.json").read_bytes()
    assert json.loads(record)["tinystore"] == [int(p) for p in version.split(".")]


@pytest.mark.parametrize("version", VERSIONS)
def test_golden_hdf5_layout_of_each_version(version):
    """1.0 kept a stored object's arrays flat in its group, under mangled
    names; 1.1 keeps them at their logical paths under their own keys (and
    both load, above); 1.2 adds table nodes, whose big columns are arrays."""
    import h5py

    datasets: set = set()

    def add(name, obj):  # returns None: visititems goes on
        if isinstance(obj, h5py.Dataset):
            datasets.add(name)

    with h5py.File(_path(version, "hdf5", "object"), "r") as f:
        f.visititems(add)
    with h5py.File(_path(version, "hdf5", "groups"), "r") as f:
        if version != "1.0":
            forces = np.random.default_rng(61).normal(size=(500, 3))
            np.testing.assert_array_equal(f["Results/run1/forces"][()], forces)
        else:
            assert "Results" not in f
    native = {
        "Positions",
        "cell",
        "nested/run 1/forces",
        "frame/data/Energy_eV",
        "frame/data/converged",
        "structure/cell",
    }
    if version not in ("1.0", "1.1"):  # a big column of a table node is an array h5py reads
        assert {"tables/big/c1"} <= datasets
        assert not {"tables/big/c0", "tables/people/height"} & datasets  # inline
    if version not in ("1.0", "1.1", "1.2", "1.3"):  # arrays in nodes of a shape
        assert {"short/frames/0/positions", "short/frames/4/numbers"} <= datasets
    if version != "1.0":
        assert native <= datasets
    else:
        assert not native & datasets
        assert {"^positions", "forces", "^energy_e^v"} <= datasets


def test_compact_rewrites_a_1_0_hdf5_file_in_the_current_layout(tmp_path):
    import h5py

    dst = _copy("1.0", "hdf5", "groups", tmp_path)
    tinystore.compact(dst)
    with h5py.File(dst, "r") as f:
        forces = np.random.default_rng(61).normal(size=(500, 3))
        np.testing.assert_array_equal(f["Results/run1/forces"][()], forces)
        assert sorted(f["Results/run1"]) == ["@record", "forces", "params"]
    with tinystore.open(dst, "r") as s:
        assert s["Results/run1/params"] == {"cutoff": 4.5, "kpoints": (3, 3, 3)}
        assert dict(s["Results/run1"].attrs) == {"temperature_K": 300}
