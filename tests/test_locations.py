"""Locations as users type them: ``~``, ``file://`` URLs, other URL schemes, typos."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import BackendError, NotAStoreError

FILE_SUFFIXES = {"hdf5": ".h5", "json": ".json"}
OBJ = {"energy": -3.5, "forces": np.arange(6.0).reshape(2, 3), "tags": ("a", "b")}


def _same(a, b):
    assert a.keys() == b.keys() and a["energy"] == b["energy"] and a["tags"] == b["tags"]
    assert a["forces"].dtype == b["forces"].dtype and np.array_equal(a["forces"], b["forces"])


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return home


@pytest.mark.parametrize("kind", FILE_SUFFIXES)
@pytest.mark.parametrize("as_path", [False, True], ids=["str", "Path"])
def test_tilde_is_the_home_folder(home, kind, as_path):
    name = "~/runs/x" + FILE_SUFFIXES[kind]
    location = Path(name) if as_path else name
    tinystore.save(OBJ, location)
    assert (home / "runs" / ("x" + FILE_SUFFIXES[kind])).exists()
    assert not Path("~").exists()  # nothing called "~" in the working folder
    _same(tinystore.load(location), OBJ)
    with tinystore.open(location, "r") as s:
        assert s.node("").kind
    tinystore.delete(location)
    assert not (home / "runs" / ("x" + FILE_SUFFIXES[kind])).exists()


@pytest.mark.parametrize("kind", FILE_SUFFIXES)
def test_file_urls_are_local_paths(tmp_path, kind):
    target = tmp_path / "my runs" / ("x" + FILE_SUFFIXES[kind])
    url = target.as_uri()  # file:///.../my%20runs/x.h5
    assert "%20" in url
    tinystore.save(OBJ, url)
    assert target.exists()
    _same(tinystore.load(str(target)), OBJ)
    _same(tinystore.load(url), OBJ)
    assert tinystore.load("file://localhost" + url[len("file://") :], path="energy") == -3.5
    tinystore.delete(url)
    assert not target.exists()


@pytest.mark.parametrize("kind", FILE_SUFFIXES)
def test_short_file_urls_are_local_paths_not_a_folder_called_file(tmp_path, monkeypatch, kind):
    """RFC 8089's ``file:/abs/path`` (no ``//``) is the same file, not
    ``./file:/abs/path``."""
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "runs" / ("x" + FILE_SUFFIXES[kind])
    url = "file:" + target.as_uri()[len("file://") :]
    tinystore.save(OBJ, url)
    assert target.exists() and not (tmp_path / "file:").exists()
    _same(tinystore.load(str(target)), OBJ)
    _same(tinystore.load(url), OBJ)


def test_file_urls_of_other_hosts_are_refused(tmp_path):
    with pytest.raises(BackendError, match="another host"):
        tinystore.save(1, "file://server/share/x.h5")


@pytest.mark.parametrize("url", ["http://example.org/x.h5", "ftp://host/run.json", "hdfs://n/x"])
def test_unknown_url_schemes_are_refused_before_anything_is_created(tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    calls = [
        lambda: tinystore.save({"a": 1}, url),
        lambda: tinystore.load(url),
        lambda: tinystore.open(url, "a"),
        lambda: tinystore.delete(url),
        lambda: tinystore.backends.hdf5.dump(1, url),
    ]
    scheme = url.split(":")[0]
    for call in calls:
        with pytest.raises(BackendError) as info:
            call()
        message = str(info.value)
        assert f"{scheme}://" in message
        for name in ("hdf5", "json", "memory"):
            assert name in message  # the available backends are named
    assert list(tmp_path.iterdir()) == []  # no folder called "s3:" or anything else


@pytest.mark.parametrize("name", ["nope", "nope.h5", "nope.json", "sub/nope.h5"])
def test_a_mistyped_name_opened_for_reading_says_no_such_file(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    for call in (
        lambda: tinystore.load(name),
        lambda: tinystore.open(name, "r"),
        lambda: tinystore.open(name, "r+"),
        lambda: tinystore.delete(name, path="x"),
        lambda: tinystore.delete(name),
    ):
        with pytest.raises(FileNotFoundError, match="no such file"):
            call()
    assert list(tmp_path.iterdir()) == []


def test_reading_a_foreign_hdf5_file_leaves_no_lock_file(tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["x"] = np.arange(3)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(NotAStoreError):
        tinystore.load(foreign)
    with pytest.raises(NotAStoreError):
        tinystore.open(foreign, "r")
    with pytest.raises(NotAStoreError):
        tinystore.load(foreign, path="x")
    assert sorted(os.listdir(tmp_path)) == before
    with h5py.File(foreign, "r") as f:  # and the file is untouched
        assert list(f) == ["x"]


def test_reading_a_foreign_folder_leaves_no_lock_file(tmp_path):
    foreign = tmp_path / "data.json"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises((NotAStoreError, FileNotFoundError)):
        tinystore.load(foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("url", ["s3://bucket/run.h5", "gs://bucket/run.json", "az://c/x"])
def test_object_storage_urls_never_become_local_files(tmp_path, monkeypatch, url):
    """The zarr backend takes s3:// gs:// az:// (or says which extra it needs);
    the file backends refuse them; nothing local is created either way."""
    monkeypatch.chdir(tmp_path)
    calls = [
        lambda: tinystore.save({"a": 1}, url),
        lambda: tinystore.open(url, "a"),
        lambda: tinystore.backends.hdf5.dump(1, url),
        lambda: tinystore.backends.json.dump(1, url),
        lambda: tinystore.backends.memory.dump(1, url),
    ]
    for call in calls:
        with pytest.raises(BackendError):
            call()
    assert list(tmp_path.iterdir()) == []
