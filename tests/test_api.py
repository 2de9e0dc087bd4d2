"""The user API: save/load/delete/open, backends, browsing, partial load and update, versions."""

from __future__ import annotations

import functools
import importlib
import os
import sys
import warnings

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import (
    BackendError,
    NodeNotFoundError,
    NotAStoreError,
    SharedNodeError,
    VersionMismatchError,
)
from tinystore.objects import versions
from tinystore.storage.base import GenericStorage


class Counting:
    """Wraps a storage's physical layer and counts what is read and written."""

    def __init__(self, physical):
        self._physical = physical
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name):
        attr = getattr(self._physical, name)
        if callable(attr) and (name.startswith("read_") or name.startswith("write_")):

            def wrapped(*args, **kw):  # a leaf summed while read is a leaf read
                self.calls.append((name.removesuffix("_summed"), args[:2]))
                return attr(*args, **kw)

            return wrapped
        return attr

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.calls if n == name)


def counting(storage: GenericStorage) -> Counting:
    store = storage._store
    store.physical = Counting(store.physical)
    store.records.clear()
    return store.physical


def test_save_load_delete(filename):
    obj = {"energy": -3.5, "forces": np.arange(3000.0).reshape(1000, 3), "steps": [1, (2, 3)]}
    tinystore.save(obj, filename)
    back = tinystore.load(filename)
    assert back.keys() == obj.keys() and back["steps"] == [1, (2, 3)]
    assert np.array_equal(back["forces"], obj["forces"]) and back["forces"] is not obj["forces"]
    tinystore.delete(filename, path="forces")
    assert list(tinystore.load(filename)) == ["energy", "steps"]
    tinystore.delete(filename)
    with pytest.raises((FileNotFoundError, KeyError)):
        tinystore.load(filename)


def test_several_objects_in_one_file(filename):
    tinystore.save([1, 2], filename, path="a")
    tinystore.save({"x": 1}, filename, path="jobs/relax/output")
    tinystore.save("replaced", filename, path="a")
    assert tinystore.load(filename, path="a") == "replaced"
    assert tinystore.load(filename, path="jobs/relax/output") == {"x": 1}
    with pytest.raises(NodeNotFoundError, match="pass path"):
        tinystore.load(filename)
    with tinystore.open(filename, "r") as s:
        assert s.list_groups() == ["jobs"] and s.list_nodes() == ["a"]


def test_backend_namespace(backend, filename):
    ns = getattr(tinystore.backends, backend)
    assert {"hdf5", "json", "memory"} <= set(dir(tinystore.backends))
    ns.dump({"k": 1}, filename)
    assert ns.load(filename) == {"k": 1}
    with ns.open(filename, "r") as s:
        assert s["k"] == 1
    ns.delete(filename)


def test_backend_choice_and_errors(tmp_path):
    with pytest.raises(BackendError, match="hdf5.*json.*memory"):
        tinystore.save(1, tmp_path / "x.unknown")
    with pytest.raises(BackendError, match="available"):
        tinystore.save(1, tmp_path / "x.h5", backend="nope")
    tinystore.save(1, tmp_path / "plain", backend="json")
    assert tinystore.load(tmp_path / "plain") == 1  # an existing tinystore directory is detected
    tinystore.save(2, "anything", backend="memory")
    assert tinystore.load("anything", backend="memory") == 2
    tinystore.MemoryStorage.drop("anything")


def test_delete_refuses_foreign_files(tmp_path):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(NotAStoreError):
        tinystore.delete(foreign)
    with pytest.raises(NotAStoreError):
        tinystore.open(foreign)
    directory = tmp_path / "notes.json"
    directory.mkdir()
    (directory / "todo.txt").write_text("keep me")
    with pytest.raises(NotAStoreError):
        tinystore.delete(directory)
    with pytest.raises(NotAStoreError):
        tinystore.save(1, directory)
    assert foreign.exists() and (directory / "todo.txt").read_text() == "keep me"


def test_open_dict_like(store):
    store["structure"] = {"cell": np.eye(3), "species": ["Al", "Mg"]}
    job = store.create_group("jobs/relax")
    job["input"] = {"cutoff": 450.0, "kpoints": (4, 4, 4)}
    store["jobs/relax/output"] = [1.5, 2.5]
    assert isinstance(store["jobs"], GenericStorage) and store["jobs"].is_group
    assert store["jobs/relax/input/kpoints"] == (4, 4, 4)
    assert store["structure/species/1"] == "Mg"
    assert store.get("nope", 3) == 3 and "jobs/relax/output" in store
    assert store._ipython_key_completions_() == ["structure", "jobs"]
    a, b = store["structure"], store["structure"]
    assert a is not b and a["cell"] is not b["cell"]
    del store["structure"]
    assert list(store) == ["jobs"]


def test_partial_load_reads_only_that_part(filename, backend):
    big = {f"array{i}": np.full((200, 100), float(i)) for i in range(20)}
    big["meta"] = {"name": "run", "tags": ["a", "b"]}
    tinystore.save(big, filename)
    with tinystore.open(filename, "r") as s:
        phys = counting(s)
        arr = s["array7"]
        assert np.all(arr == 7.0)
        assert phys.count("read_external") == 1
        assert s["meta/tags/1"] == "b"
        assert phys.count("read_external") == 1
    assert tinystore.load(filename, path="array3")[0, 0] == 3.0


def test_partial_update(filename):
    sim = {"structure": {"cell": np.eye(3), "positions": np.zeros((500, 3))}, "energy": -1.0}
    tinystore.save(sim, filename)
    new_cell = np.eye(3) * 2
    tinystore.save(new_cell, filename, path="structure/cell")
    with tinystore.open(filename) as s:
        phys = counting(s)
        s["energy"] = -2.0
        assert phys.count("write_external") == 0  # the big array is not rewritten
    back = tinystore.load(filename)
    assert np.array_equal(back["structure"]["cell"], new_cell)
    assert back["energy"] == -2.0 and back["structure"]["positions"].shape == (500, 3)
    assert list(back) == ["structure", "energy"]


def test_partial_update_refuses_to_break_sharing(filename):
    shared = [1, 2]
    tinystore.save({"a": shared, "b": shared, "c": [3]}, filename)
    with tinystore.open(filename) as s:
        with pytest.raises(SharedNodeError, match="shared with b"):
            s["a"] = 1
        with pytest.raises(SharedNodeError):
            del s["a"]
        s["a/0"] = 5  # changing the shared object itself is fine: both see it
        s["c"] = {"new": [4]}
    back = tinystore.load(filename)
    assert back["a"] is back["b"] and back["a"] == [5, 2] and back["c"] == {"new": [4]}


def test_partial_update_keeps_anchor_ids_unique(filename):
    x = [0]
    tinystore.save({"p": [x, x]}, filename)
    y = ["y"]
    tinystore.save([y, y], filename, path="q")
    back = tinystore.load(filename)
    assert back["p"][0] is back["p"][1] and back["p"][0] == [0]
    assert back["q"][0] is back["q"][1] and back["q"][0] == ["y"]


def test_node_views_do_not_build_anything(filename):
    tinystore.save({"forces": np.zeros((100, 3)), "f": np.add, "n": [1, 2]}, filename)
    with tinystore.open(filename, "r") as s:
        phys = counting(s)
        view = s.node("forces")
        assert view.kind == "leaf" and view.type == "numpy.ndarray"
        assert view.shape == (100, 3) and view.dtype == np.float64 and view.nbytes == 2400
        assert phys.count("read_external") == 0
        root = s.node()
        assert root.kind == "dict" and list(root) == ["forces", "f", "n"]
        assert root["f"].kind == "global" and root["f"].type == "numpy.add"
        assert root.versions["numpy"]["version"] == np.__version__
        assert root["n"].to_object() == [1, 2]
        text = s.tree()
        assert "forces" in text and "(100, 3)" in text and "numpy.add" in text
        html = s._repr_html_()
        assert "<details" in html and "forces" in html
        info = s.info()
        assert info["fallbacks"] == 0 and info["leaf_bytes"] >= 2400


def test_info_counts_fallbacks(filename):
    tinystore.save({"cb": lambda x: x}, filename, cloudpickle_fallback=True)
    with tinystore.open(filename, "r") as s:
        assert s.info()["fallbacks"] == 1
        assert s.node("cb").kind == "cloudpickle"
    assert tinystore.load(filename)["cb"](3) == 3


@pytest.fixture
def versioned_module(tmp_path, monkeypatch):
    """A module on sys.path whose source can be changed between save and load."""
    source = tmp_path / "vmod_tinystore_test.py"
    source.write_text(
        "CALLS = []\n"
        "class Thing:\n"
        "    def __init__(self, x): self.x = x\n"
        "    def __setstate__(self, state):\n"
        "        CALLS.append(state)\n"
        "        self.__dict__.update(state)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("vmod_tinystore_test")
    yield module, source
    sys.modules.pop("vmod_tinystore_test", None)
    _clear_version_caches()


def _clear_version_caches():
    versions._spec_origin.cache_clear()
    versions._file_hash.cache_clear()
    versions._git_state.cache_clear()


def test_versions_recorded_and_checked(filename, versioned_module):
    module, source = versioned_module
    tinystore.save({"thing": module.Thing(1)}, filename)
    with tinystore.open(filename, "r") as s:
        recorded = s.node().versions["vmod_tinystore_test"]
        assert len(recorded["sha256"]) == 64
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tinystore.load(filename, version_check="strict")["thing"].x == 1
    source.write_text(source.read_text() + "\n# edited\n")  # seen without clearing caches
    module.CALLS.clear()
    with pytest.raises(VersionMismatchError, match="vmod_tinystore_test: sha256"):
        tinystore.load(filename, version_check="strict")
    assert module.CALLS == []  # refused before anything was built
    with pytest.warns(versions.VersionWarning, match="vmod_tinystore_test"):
        tinystore.load(filename)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tinystore.load(filename, version_check="ignore")["thing"].x == 1
    seen = []
    tinystore.load(filename, version_check=seen.extend)
    assert [m.module for m in seen] == ["vmod_tinystore_test"]
    with pytest.raises(VersionMismatchError):
        tinystore.load(filename, path="thing", version_check="strict")  # partial loads too


def test_version_lookup_is_cached(filename, monkeypatch):
    """A module's source is hashed once per process while its file stays as it is."""
    hashed = []
    real = versions._file_hash.__wrapped__

    def spy(path, stamp):
        hashed.append(path)
        return real(path, stamp)

    monkeypatch.setattr(versions, "_file_hash", functools.lru_cache(maxsize=None)(spy))
    from collections import OrderedDict

    tinystore.save([OrderedDict(a=i) for i in range(50)] + [np.add] * 3, filename)
    tinystore.save([np.multiply] * 10, filename)
    assert hashed.count(np.__file__) == 1


def test_unsafe_files_refused_by_safe_loading(filename, tmp_path):
    sentinel = tmp_path / "sentinel"
    tinystore.save({"cmd": os.system}, filename)
    with pytest.raises(tinystore.errors.UnsafeLoadError, match="posix:system|os:system"):
        tinystore.load(filename, safe=True)
    tinystore.save({"cb": lambda: sentinel.write_text("ran")}, filename, cloudpickle_fallback=True)
    with pytest.raises(tinystore.errors.UnsafeLoadError):
        tinystore.load(filename, safe=True)
    assert not sentinel.exists()
    from decimal import Decimal

    tinystore.save({"d": Decimal("1.5"), "x": [1, 2]}, filename)
    assert tinystore.load(filename, safe=True) == {"d": Decimal("1.5"), "x": [1, 2]}
    with pytest.raises(ValueError, match="exact"):
        tinystore.load(filename, safe=True, allow=["numpy.*"])


def make_cell(a: float, cubic: bool = False) -> dict:
    """A stand-in for a structure generator such as ase.build.bulk."""
    CALLS.append((a, cubic))
    return {"cell": np.eye(3) * a, "cubic": cubic}


CALLS: list = []


def test_recipe_stores_the_call_not_the_result(filename):
    CALLS.clear()
    recipe = tinystore.Recipe(make_cell, 4.05, cubic=True)
    with tinystore.open(filename, "w") as s:
        s["structure"] = recipe
        assert CALLS == []  # storing does not call it
        view = s.node("structure")
        assert view.kind == "recipe" and view.type == "test_api.make_cell"
        assert view["args"]["0"].to_object() == 4.05
        assert view["kwargs"]["cubic"].to_object() is True
        assert CALLS == []  # browsing does not call it either
        structure = s["structure"]
    assert CALLS == [(4.05, True)]
    assert structure["cubic"] is True and np.array_equal(structure["cell"], np.eye(3) * 4.05)
    with pytest.raises(tinystore.errors.UnsafeLoadError, match="make_cell"):
        tinystore.load(filename, path="structure", safe=True)
    assert CALLS == [(4.05, True)]
    loaded = tinystore.load(filename, path="structure", safe=True, allow=["test_api:make_cell"])
    assert loaded["cubic"] is True


def test_recipe_needs_an_importable_function(filename):
    with pytest.raises(tinystore.errors.UnstorableError):
        tinystore.save(tinystore.Recipe(lambda: 1), filename)
    with pytest.raises(TypeError):
        tinystore.Recipe(3)


def test_reducers_per_call_and_process_wide(filename):
    from fractions import Fraction

    def as_text(value):
        return (Fraction, (str(value),))

    tinystore.save({"f": Fraction(1, 3)}, filename, reducers={Fraction: as_text})
    with tinystore.open(filename, "r") as s:
        assert s.node("f")["a"]["0"].to_object() == "1/3"
    assert tinystore.load(filename)["f"] == Fraction(1, 3)
    tinystore.register_reducer(Fraction, as_text)
    try:
        tinystore.save({"f": Fraction(2, 3)}, filename)
        with tinystore.open(filename, "r") as s:
            assert s.node("f")["a"]["0"].to_object() == "2/3"
    finally:
        tinystore.register_reducer(Fraction, None)


def test_third_party_backend_by_entry_point(monkeypatch):
    from tinystore.storage import registry

    spec = registry.BackendSpec("thirdparty", registry._open_memory, (".tp",))

    class EP:
        name = "thirdparty"

        @staticmethod
        def load():
            return spec

    monkeypatch.setattr(
        registry, "entry_points", lambda group: [EP()] if group == "tinystore.backends" else []
    )
    monkeypatch.setattr(registry, "_SPECS", None)
    assert "thirdparty" in dir(tinystore.backends)
    tinystore.backends.thirdparty.dump([1, 2], "x.tp")
    assert tinystore.load("x.tp") == [1, 2]
    tinystore.MemoryStorage.drop("x.tp")
    monkeypatch.setattr(registry, "_SPECS", None)


def test_loading_a_missing_file_leaves_nothing_behind(tmp_path):
    with pytest.raises(FileNotFoundError):
        tinystore.load(tmp_path / "missing.h5")
    with pytest.raises(FileNotFoundError):
        tinystore.load(tmp_path / "missing.json")
    assert list(tmp_path.iterdir()) == []


def test_public_surface_is_small_and_importable():
    expected = (
        "save load delete compact history tag open backends errors Storable Recipe Adapter "
        "register_adapter "
        "register_reducer ObjectCodec GenericStorage HDF5Storage JSONDirStorage MemoryStorage "
        "Tree __version__"
    )
    assert sorted(tinystore.__all__) == sorted(expected.split())
    for name in tinystore.__all__:
        assert getattr(tinystore, name) is not None
    for name in tinystore.errors.__all__:
        error = getattr(tinystore.errors, name)
        if issubclass(error, Warning):  # ConcurrentWriterWarning: a UserWarning
            assert issubclass(error, UserWarning)
            continue
        assert issubclass(error, tinystore.errors.TinystoreError)
        assert error is tinystore.errors.TinystoreError or len(error.__mro__) > 3  # a builtin too
