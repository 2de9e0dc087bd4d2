"""tinystore.compact / ``tinystore compact``: space back, content unchanged."""

from __future__ import annotations

import os
import pickle

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.cli import main
from tinystore.errors import BackendError

MB8 = 1_000_000


def content():
    rng = np.random.default_rng(5)
    return {"x": rng.random(50_000), "params": {"cutoff": 4.5, "tags": ("a", b"b")}, "n": [1, 2]}


def same(a, b):
    return pickle.dumps(a, protocol=5) == pickle.dumps(b, protocol=5)


def test_compact_keeps_the_content(filename):
    with tinystore.open(filename, "w") as s:
        for key, value in content().items():
            s[key] = value
        s.create_group("runs/a")["e"] = np.arange(5000.0)
        s.attrs["owner"] = "me"
    done = tinystore.compact(filename)
    assert done["removed"] == []
    with tinystore.open(filename, "r") as s:
        assert dict(s.attrs) == {"owner": "me"}
        assert np.array_equal(s["runs/a/e"], np.arange(5000.0))
        got = {k: s[k] for k in ("x", "params", "n")}
    assert same(got, content())


def _without_free_space_tracking(filename):
    """The file as tinystore wrote it before free-space tracking (h5py's defaults)."""
    old = str(filename) + ".old"
    with h5py.File(filename, "r") as src, h5py.File(old, "w") as dst:
        for name in src:
            src.copy(src[name], dst, name=name)
    os.replace(old, filename)


def test_compact_shrinks_an_old_hdf5_file_and_it_stops_growing(tmp_path):
    filename = tmp_path / "old.h5"
    data = np.random.default_rng(0).random(MB8)
    tinystore.save({"x": data, "y": 1}, filename)
    one_copy = os.path.getsize(filename)
    _without_free_space_tracking(filename)
    with h5py.File(filename, "a") as f:  # space used once, in an earlier session
        f["junk"] = np.zeros((3, MB8))
        f["after"] = np.zeros(1000)  # so the space is not at the end of the file
    with h5py.File(filename, "a") as f:
        del f["junk"]
    assert os.path.getsize(filename) > 3 * one_copy  # such files never give it back
    done = tinystore.compact(filename)
    assert done["before"] > 3 * one_copy and done["after"] < 1.2 * one_copy
    assert os.path.getsize(filename) == done["after"]
    for i in range(5):
        tinystore.save(data - i, filename, path="x")
    assert os.path.getsize(filename) < 1.5 * one_copy
    assert np.array_equal(tinystore.load(filename, path="x"), data - 4)
    assert tinystore.load(filename, path="y") == 1
    with h5py.File(filename, "r") as f:
        assert f.id.get_create_plist().get_file_space_strategy()[1]
    assert sorted(os.listdir(tmp_path)) == ["old.h5", "old.h5.lock"]


def test_compact_removes_orphans_of_a_json_directory(tmp_path):
    folder = tmp_path / "run.json"
    tinystore.save(content(), folder)
    np.save(folder / "orphan.npy", np.arange(10))
    (folder / "lost.bin").write_bytes(b"x" * 100)
    (folder / "gone").mkdir()
    (folder / "gone" / "@record.json").write_text("{}")
    (folder / "notes.txt").write_text("mine")  # not a name tinystore writes: kept
    done = tinystore.compact(folder)
    assert sorted(done["removed"]) == ["gone", "lost", "orphan"]
    assert done["after"] < done["before"]
    assert not (folder / "orphan.npy").exists() and not (folder / "gone").exists()
    assert (folder / "notes.txt").read_text() == "mine"
    assert same(tinystore.load(folder), content())


def test_compact_removes_an_orphan_dataset_of_an_hdf5_file(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save(content(), filename)
    with h5py.File(filename, "a") as f:
        f["lost"] = np.arange(100_000.0)
    before = os.path.getsize(filename)
    done = tinystore.compact(filename)
    assert done["removed"] == ["lost"] and done["after"] < before - 700_000
    assert same(tinystore.load(filename), content())


def test_a_failed_compact_leaves_the_file_as_it_was(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save(content(), filename)
    inode = os.stat(filename).st_ino
    with pytest.raises((BackendError, ValueError)):
        tinystore.compact(filename, compression="no-such-filter")
    assert os.stat(filename).st_ino == inode  # never replaced
    assert same(tinystore.load(filename), content())
    assert sorted(os.listdir(tmp_path)) == ["run.h5", "run.h5.lock"]


def test_compact_with_compression(tmp_path):
    filename = tmp_path / "run.h5"
    tinystore.save({"z": np.zeros(200_000)}, filename)
    done = tinystore.compact(filename, compression="gzip")
    assert done["after"] < done["before"] / 10
    assert np.array_equal(tinystore.load(filename, path="z"), np.zeros(200_000))


def test_cli_compact(tmp_path, capsys):
    filename = tmp_path / "run.h5"
    tinystore.save(content(), filename)
    assert main(["compact", str(filename)]) == 0
    out = capsys.readouterr().out
    assert "bytes before" in out and str(filename) in out
    assert same(tinystore.load(filename), content())


def _local(filename) -> str:
    if "://" in str(filename):
        pytest.skip("compact of a store that is not a local file or folder")
    return str(filename)


def test_compact_keeps_the_permissions_of_the_store(filename):
    """A file shared with a group stays readable by it (the copy that
    replaces an HDF5 file gets the mode of the file it replaces)."""
    filename = _local(filename)
    tinystore.save(content(), filename)
    os.chmod(filename, 0o640)
    mode = os.stat(filename).st_mode
    tinystore.compact(filename)
    assert os.stat(filename).st_mode == mode
    assert same(tinystore.load(filename), content())


def test_compact_through_a_symbolic_link_compacts_its_target(filename, tmp_path):
    """``compact link.h5`` compacts the store the link points to, and the
    link stays a link (it is not replaced by a copy of its own)."""
    filename = _local(filename)
    tinystore.save(content(), filename)
    with tinystore.open(filename) as s:
        s["x"] = np.zeros(10)  # space to give back in an HDF5 file
    link = tmp_path / ("link" + os.path.splitext(filename)[1])
    os.symlink(filename, link)
    done = tinystore.compact(link)
    assert os.path.islink(link) and os.readlink(link) == filename
    assert done["after"] == os.path.getsize(filename) or os.path.isdir(filename)
    expected = {**content(), "x": np.zeros(10)}
    assert same(tinystore.load(filename), expected)
    assert same(tinystore.load(link), expected)


def test_compact_gives_back_what_replacements_in_one_hold_left(tmp_path):
    """The user guide's caveat: replacements of a large array among small
    writes in one ``hold()`` fragment the free space; compact gives it back,
    and saves outside ``hold()`` keep the file at about one copy."""
    filename = tmp_path / "held.h5"
    tinystore.save({"x": np.zeros(MB8), "y": np.zeros(1000)}, filename, path="obj")
    one_copy = os.path.getsize(filename)
    s = tinystore.open(filename)
    with s.hold():
        s["obj/k"] = 1  # a commit: later writes move what they replace aside
        for i in range(10):
            s["obj/x"] = np.full(MB8, float(i))
            s["obj/y"] = np.full(1000, float(i))
    held = os.path.getsize(filename)
    assert held > 1.8 * one_copy  # the caveat is real (not a promise)
    tinystore.compact(filename)
    assert os.path.getsize(filename) < 1.2 * one_copy
    for i in range(10):
        tinystore.save(np.full(MB8, float(i)), filename, path="obj/x")
    assert os.path.getsize(filename) < 1.5 * one_copy
    obj = tinystore.load(filename, path="obj")
    assert list(obj) == ["x", "y", "k"]
    np.testing.assert_array_equal(obj["x"], np.full(MB8, 9.0))
    np.testing.assert_array_equal(obj["y"], np.full(1000, 9.0))
