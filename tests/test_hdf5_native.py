"""HDF5 files show the user's tree (format 1.1): plain h5py finds every group
and every array stored as a dataset at its logical path, under its own key."""

from __future__ import annotations

import shutil
import subprocess

import h5py
import numpy as np
import orjson
import pandas as pd
import pytest

import tinystore
from tinystore.storage.hdf5 import SMALL_ARRAY_BYTES


def _tree(filename) -> dict:
    """Every object in the file: path -> "group" / "dataset"."""
    out = {}
    with h5py.File(filename, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(
                name, "group" if isinstance(obj, h5py.Group) else "dataset"
            )
        )
    return out


def test_plain_h5py_finds_groups_and_arrays_at_their_paths(tmp_path):
    fn = tmp_path / "native.h5"
    rng = np.random.default_rng(1)
    forces = rng.normal(size=(50, 3))
    energy = rng.normal(size=100)
    # 100 rows: every column is over SMALL_ARRAY_BYTES
    frame = pd.DataFrame({"Energy_eV": rng.normal(size=100), "converged": rng.random(100) > 0.5})
    with tinystore.open(fn, "w") as s:
        run = s.create_group("Results").create_group("run1")
        run["forces"] = forces
        s["Results/run1/Energy Trace"] = energy  # a path key, spaces and capitals
        s["Top"] = {"Nested": {"a:b\\c": forces}, "frame": frame}
        s["@odd"] = energy
    tree = _tree(fn)
    assert tree["Results"] == tree["Results/run1"] == "group"
    assert tree["Results/run1/forces"] == "dataset"
    assert tree["Top/Nested"] == "group"
    # DataFrame columns: datasets under the frame's group, named after the column
    assert tree["Top/frame/data/Energy_eV"] == tree["Top/frame/data/converged"] == "dataset"
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["Results/run1/forces"][()], forces)
        np.testing.assert_array_equal(f["Results/run1/Energy Trace"][()], energy)
        np.testing.assert_array_equal(f["Top/Nested/a:b\\c"][()], forces)
        np.testing.assert_array_equal(f["Top/frame/data/Energy_eV"][()], frame["Energy_eV"])
        np.testing.assert_array_equal(f["Top/frame/data/converged"][()], frame["converged"])
        assert f["Top/frame/data/converged"].dtype == np.bool_
        # '@' begins tinystore's own names: a key starting with it is written %40
        np.testing.assert_array_equal(f["%40odd"][()], energy)
        # the record of each physical group sits inside the group
        assert set(f["Results/run1"]) == {"@record", "forces", "Energy Trace"}
        assert orjson.loads(bytes(f["Results/run1/@record"][()]))["tinystore"] == [1, 4]
    with tinystore.open(fn, "r") as s:
        np.testing.assert_array_equal(s["Top/Nested/a:b\\c"], forces)
        pd.testing.assert_frame_equal(s["Top/frame"], frame)
        np.testing.assert_array_equal(s["@odd"], energy)


def test_demo_layout_is_the_users_tree(tmp_path):
    from tinystore.demo import Simulation, Structure

    structure = Structure(["Al"] * 4, np.zeros((4, 3)), np.eye(3) * 4.05)
    job = Simulation("md", structure, {"timestep_fs": 1.0, "temperature_K": 300.0})
    job.run(steps=100)
    fn = tmp_path / "job.h5"
    tinystore.save(job, fn)
    tree = _tree(fn)
    for path in (
        "input/structure/cell",  # 72 bytes: a dataset, over SMALL_ARRAY_BYTES
        "output/forces",
        "output/results/data/time_fs",
        "output/results/data/converged",
    ):
        assert tree[path] == "dataset", path
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["output/forces"][()], job.final_forces)
        np.testing.assert_array_equal(f["input/structure/cell"][()], structure.cell)


@pytest.mark.parametrize("nbytes", [SMALL_ARRAY_BYTES, SMALL_ARRAY_BYTES + 1])
def test_small_arrays_inline_only_up_to_the_threshold(tmp_path, nbytes):
    fn = tmp_path / "small.h5"
    value = np.arange(nbytes, dtype=np.uint8)
    with tinystore.open(fn, "w") as s:
        s["obj"] = {"a": value}
    assert ("obj/a" in _tree(fn)) == (nbytes > SMALL_ARRAY_BYTES)
    loaded = tinystore.load(fn, path="obj/a")
    assert loaded.dtype == value.dtype and np.array_equal(loaded, value)


def test_replaced_arrays_keep_their_own_names(tmp_path):
    """A replacement is written beside the old value, then takes its name."""
    fn = tmp_path / "replace.h5"
    tinystore.save({"a": {"x": np.arange(100.0)}}, fn)
    tinystore.save({"a": {"x": np.arange(100.0) * 2}}, fn)  # the whole file again
    with tinystore.open(fn) as s:
        s["a/x"] = np.arange(30.0)  # one leaf in place
        with s.batch():
            s["a/x"] = np.arange(40.0)
            s["a/x"] = np.arange(50.0)
    assert _tree(fn) == {"@record": "dataset", "a": "group", "a/x": "dataset"}
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["a/x"][()], np.arange(50.0))
    np.testing.assert_array_equal(tinystore.load(fn, path="a/x"), np.arange(50.0))
    # a folder replaced by an array of its name, and back
    tinystore.save({"a": np.arange(100.0)}, fn)
    assert _tree(fn) == {"@record": "dataset", "a": "dataset"}
    tinystore.save({"a": {"x": np.arange(100.0)}}, fn)
    assert _tree(fn) == {"@record": "dataset", "a": "group", "a/x": "dataset"}


def test_deleted_leaves_leave_no_empty_groups(tmp_path):
    fn = tmp_path / "delete.h5"
    with tinystore.open(fn, "w") as s:
        s["obj"] = {"deep": {"deeper": {"x": np.ones(100)}}, "keep": np.ones(100)}
        del s["obj/deep"]
    assert _tree(fn) == {
        "@record": "dataset",
        "obj": "group",
        "obj/@record": "dataset",
        "obj/keep": "dataset",
    }


def test_xarray_reads_a_stored_array(tmp_path):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    fn = tmp_path / "xr.h5"
    forces = np.arange(30.0).reshape(10, 3)
    with tinystore.open(fn, "w") as s:
        s.create_group("results").create_group("run1")["forces"] = forces
    ds = xr.open_dataset(fn, engine="h5netcdf", group="results/run1", phony_dims="sort")
    np.testing.assert_array_equal(ds["forces"].values, forces)
    ds.close()


def test_replaced_groups_keep_their_own_names(tmp_path):
    """A physical group replaced by another: the old one is moved aside, and
    removed at the commit; a failed write moves it back."""
    fn = tmp_path / "groups.h5"
    with tinystore.open(fn, "w") as s:
        s["c"] = {"y": np.zeros(30), "sub": {"q": np.ones(10)}}
        s["c"] = {"y": np.ones(30)}
        s["x"] = np.ones(100)  # a dataset replaced by a group and back
        s["x"] = {"inner": np.ones(100)}
        with s.batch():
            s["h"] = {"v": np.ones(20)}
            s["h"] = {"v": np.zeros(20)}
            handle = s["h"]  # a handle made before the commit stays valid
        with pytest.raises(tinystore.errors.UnstorableError), s.batch():
            s["c"] = {"y": np.full(30, 7.0)}
            s["bad"] = lambda: 0
    assert _tree(fn) == {
        "@record": "dataset",
        **{f"{g}": "group" for g in ("c", "h", "x")},
        **{f"{g}/@record": "dataset" for g in ("c", "h", "x")},
        "c/y": "dataset",
        "h/v": "dataset",
        "x/inner": "dataset",
    }
    np.testing.assert_array_equal(handle["v"], np.zeros(20))
    with tinystore.open(fn, "r") as s:
        assert list(s["c"]) == ["y"]
        np.testing.assert_array_equal(s["c/y"], np.ones(30))
        np.testing.assert_array_equal(s["x/inner"], np.ones(100))


@pytest.mark.skipif(shutil.which("h5ls") is None, reason="h5ls (hdf5-tools) not installed")
def test_h5ls_shows_the_users_tree(tmp_path):
    fn = tmp_path / "run.h5"
    with tinystore.open(fn, "w") as s:
        s.create_group("results").create_group("run1")["forces"] = np.ones((10, 3))
        s["results/run1/Energy"] = {"trace": np.arange(20.0)}
    out = subprocess.run(["h5ls", "-r", str(fn)], capture_output=True, text=True, check=True)
    lines = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert lines["/results/run1"] == lines["/results/run1/Energy"] == "Group"
    assert lines["/results/run1/forces"] == lines["/results/run1/Energy/trace"] == "Dataset"


def test_keys_that_give_one_hdf5_name(tmp_path):
    """``@x`` is written ``%40x``; the key ``%40x`` then gets ``~1``."""
    fn = tmp_path / "names.h5"
    with tinystore.open(fn, "w") as s:
        s["obj"] = {"@x": np.zeros(20), "%40x": np.ones(20)}
    assert {k for k in _tree(fn) if k.startswith("obj/")} == {
        "obj/@record",
        "obj/%40x",
        "obj/%40x~1",
    }
    with tinystore.open(fn, "r") as s:
        np.testing.assert_array_equal(s["obj/@x"], np.zeros(20))
        np.testing.assert_array_equal(s["obj/%40x"], np.ones(20))


def test_leaves_of_deep_objects_stop_at_the_folder_depth(tmp_path):
    """Below MAX_FOLDER_DEPTH keys, leaves go into the folder at that depth."""
    from tinystore.storage.record.packing import MAX_FOLDER_DEPTH

    fn = tmp_path / "deep.h5"
    deep = leaf = {}
    for i in range(MAX_FOLDER_DEPTH + 5):
        leaf["x"] = np.full(10, float(i))
        leaf[f"k{i}"] = {}
        leaf = leaf[f"k{i}"]
    tinystore.save(deep, fn)
    datasets = [k for k, kind in _tree(fn).items() if kind == "dataset" and k != "@record"]
    assert len(datasets) == MAX_FOLDER_DEPTH + 5
    assert max(k.count("/") for k in datasets) == MAX_FOLDER_DEPTH
    top = "/".join(f"k{i}" for i in range(MAX_FOLDER_DEPTH))
    assert {k for k in datasets if k.startswith(top + "/")} == {
        f"{top}/x",
        *(f"{top}/x~{n}" for n in range(1, 5)),
    }
    loaded = tinystore.load(fn)
    for i in range(MAX_FOLDER_DEPTH + 5):
        np.testing.assert_array_equal(loaded["x"], np.full(10, float(i)))
        loaded = loaded[f"k{i}"]


def test_replacements_after_a_commit_keep_their_own_names(tmp_path):
    """Later writes of a session move what they replace aside (``%40old``),
    remove it at their commit, and move it back if they fail."""
    fn = tmp_path / "held.h5"
    old_k = np.random.default_rng(3).random(100)
    with tinystore.open(fn, "w") as s, s.hold():
        s["obj"] = {"run": {"x": np.arange(100.0)}, "k": old_k}
        s["g"] = {"y": np.ones(30)}
        s["obj/run/x"] = np.arange(50.0)  # a leaf in a folder
        s["g"] = {"y": np.zeros(30)}  # a physical group
        s["obj/run"] = np.arange(20.0)  # a folder, by a dataset of its name
        with pytest.raises(tinystore.errors.UnstorableError), s.batch():
            s["obj/k"] = np.zeros(100)
            s["g"] = {"z": np.ones(10)}
            s["obj/run"] = {"x": np.ones(30)}
            s["bad"] = lambda: 0
        s["obj/new"] = np.ones(9)  # the session goes on after the rollback
    assert _tree(fn) == {
        "@record": "dataset",
        "g": "group",
        "g/@record": "dataset",
        "g/y": "dataset",
        "obj": "group",
        "obj/@record": "dataset",
        "obj/k": "dataset",
        "obj/new": "dataset",
        "obj/run": "dataset",
    }
    with h5py.File(fn, "r") as f:
        np.testing.assert_array_equal(f["obj/run"][()], np.arange(20.0))
        np.testing.assert_array_equal(f["obj/k"][()], old_k)
        np.testing.assert_array_equal(f["g/y"][()], np.zeros(30))
    with tinystore.open(fn, "r") as s:
        assert list(s) == ["obj", "g"]
        obj = s["obj"]
        assert list(obj) == ["run", "k", "new"]
        np.testing.assert_array_equal(obj["k"], old_k)
        np.testing.assert_array_equal(obj["run"], np.arange(20.0))
        assert list(s["g"]) == ["y"]


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
def test_format_doc_shows_what_h5dump_prints_for_the_demo(tmp_path):
    import pathlib
    import re
    import sys

    subprocess.run(
        [sys.executable, "-m", "tinystore", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        check=True,
        cwd=pathlib.Path(tinystore.__file__).parent.parent,
    )
    out = subprocess.run(
        ["h5dump", "-H", "md_job.h5"], capture_output=True, text=True, check=True, cwd=tmp_path
    ).stdout
    doc = (pathlib.Path(__file__).parent.parent / "docs" / "format.rst").read_text()
    block = doc[doc.index('    HDF5 "md_job.h5" {') :]
    block = block[: block.index("\n\n")]
    listed = [line[4:] for line in block.splitlines()]

    def shape(lines):  # the record's length changes with the demo's numbers
        return [re.sub(r"STRSIZE \d+", "STRSIZE n", line) for line in lines]

    assert shape(listed) == shape(out.strip().splitlines())


def test_a_leftover_in_the_way_of_moving_aside_is_replaced(tmp_path):
    """``%40old`` left in a group (a removal that failed after its commit) is
    no record's: moving replaced data aside takes its place."""
    fn = tmp_path / "left.h5"
    with tinystore.open(fn, "w") as s:
        s["obj"] = {"x": np.arange(100.0), "g": {"y": np.ones(20)}}
        s["top"] = {"y": np.ones(20)}
    with h5py.File(fn, "a") as f:
        f["obj/%40old"] = np.zeros(3)
        f.create_group("%40old")
    with tinystore.open(fn) as s, s.hold():
        s["obj/k"] = 1  # a commit: later writes move what they replace aside
        s["obj/x"] = np.arange(50.0)
        s["top"] = {"z": np.zeros(20)}
    assert _tree(fn) == {
        "@record": "dataset",
        "obj": "group",
        "obj/@record": "dataset",
        "obj/x": "dataset",
        "obj/g": "group",
        "obj/g/y": "dataset",
        "top": "group",
        "top/@record": "dataset",
        "top/z": "dataset",
    }
    np.testing.assert_array_equal(tinystore.load(fn, path="obj/x"), np.arange(50.0))
    np.testing.assert_array_equal(tinystore.load(fn, path="top/z"), np.zeros(20))


def test_names_hdf5_cannot_take_are_escaped(tmp_path):
    """Only what HDF5 cannot take as a name is escaped.  The storage API
    refuses such keys anyway (``/``, ``.``, ``..``, empty, NUL): the escapes
    are for keys that reach the backend some other way."""
    from tinystore.storage.hdf5 import _check_part, hdf5_name

    odd = {"a/b": "a%2fb", ".": "%2e", "..": "%2e%2e", "": "%", "x\x00y": "x%00y"}
    assert {key: hdf5_name(key) for key in odd} == odd
    assert hdf5_name("lone\ud800").isascii()
    from tinystore.storage.base import Tree

    with tinystore.open(tmp_path / "odd.h5", "w") as s:
        for key in odd:
            with pytest.raises(tinystore.errors.InvalidKeyError):
                s["obj"] = Tree({}, {key: np.ones(20)})
    keys = ["@at", "fine name", "ünï", "a.b", "..x", "%2e", "tab\there", "a:b\\c"]
    for key in keys:
        _check_part(hdf5_name(key), "test")
    arrays = {key: np.full(20, float(i)) for i, key in enumerate(keys)}
    fn = tmp_path / "names.h5"
    tinystore.save({"obj": arrays}, fn)
    names = {k[len("obj/") :] for k, kind in _tree(fn).items() if k.startswith("obj/")}
    # the key itself but for the leading @; "%2e" is taken by no other key
    assert names == {"%40at", *keys[1:]}
    loaded = tinystore.load(fn)["obj"]
    assert list(loaded) == keys
    for key, value in arrays.items():
        np.testing.assert_array_equal(loaded[key], value)
