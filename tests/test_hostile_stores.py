"""Crafted stores that point outside themselves: nothing outside is read, written,
created or deleted, and every refusal is a tinystore error naming the node.

Each case builds a small store (an array ``arr``, bytes ``blob`` and a dict
``obj`` in its own group) beside an ``outside`` folder, then replaces one node
by a link (HDF5 external/soft links, virtual datasets, external raw storage;
symbolic and hard links, FIFOs and devices in a JSON directory).  Every
operation is tried on it -- reads (also ``safe=True`` and browsing), partial
writes, deletes, whole saves, whole deletes -- and the ``outside`` folder must
be byte for byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import (
    CorruptStoreError,
    InvalidKeyError,
    TinystoreError,
    UnsafeStoreError,
)

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import fork_available, run_one  # noqa: E402

ARR = np.arange(1000.0)
BLOB = b"x" * 5000
OBJ = {"a": np.arange(1000.0), "b": 1}
SECRET = np.full(1000, 7.0)  # what a followed link would return


def _build(backend: str, tmp_path: Path) -> tuple[str, Path]:
    store = str(tmp_path / ("store.h5" if backend == "hdf5" else "store.json"))
    tinystore.save(ARR, store, path="arr")
    tinystore.save(BLOB, store, path="blob")
    tinystore.save(OBJ, store, path="obj")
    outside = tmp_path / "outside"
    outside.mkdir()
    np.save(outside / "secret.npy", SECRET)
    (outside / "secret.bin").write_bytes(SECRET.tobytes())
    (outside / "journal.txt").write_bytes(b"not a journal\n")
    docs = outside / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("keep me")
    with h5py.File(outside / "secret.h5", "w") as f:
        f["arr"] = SECRET
        f["blob"] = np.frombuffer(BLOB, np.uint8)
    if backend == "hdf5":
        with h5py.File(store, "r") as src, h5py.File(outside / "secret.h5", "a") as dst:
            src.copy("obj", dst)
    else:
        shutil.copytree(Path(store) / "obj", outside / "objcopy")
    return store, outside


def _snapshot(folder: Path) -> dict:
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root, name)
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = path.read_bytes()
    return out


# -- the crafted cases ----------------------------------------------------------------------------
def _h5_replace(store: str, name: str, link) -> None:
    with h5py.File(store, "a") as f:
        del f[name]
        f[name] = link


def _h5_virtual(store: str, outside: Path) -> None:
    layout = h5py.VirtualLayout(shape=(1000,), dtype="<f8")
    layout[:] = h5py.VirtualSource(str(outside / "secret.h5"), "arr", shape=(1000,))
    with h5py.File(store, "a") as f:
        del f["arr"]
        f.create_virtual_dataset("arr", layout)


def _h5_external_raw(store: str, outside: Path) -> None:
    with h5py.File(store, "a") as f:
        del f["arr"]
        f.create_dataset("arr", (1000,), "<f8", external=[(str(outside / "secret.bin"), 0, 8000)])


def _h5_hard_cycle(store: str, outside: Path) -> None:
    with h5py.File(store, "a") as f:
        f["obj/loop"] = f["obj"]  # the group inside itself
        doc = json.loads(f["obj/@record"][()])
        doc["nodes"][0]["c"]["loop"] = {"G": "loop"}
        del f["obj/@record"]
        f["obj/@record"] = np.bytes_(json.dumps(doc))


HDF5_CASES = {
    "external link dataset": (
        "arr",
        lambda s, o: _h5_replace(s, "arr", h5py.ExternalLink(str(o / "secret.h5"), "/arr")),
    ),
    "external link group": (
        "obj",
        lambda s, o: _h5_replace(s, "obj", h5py.ExternalLink(str(o / "secret.h5"), "/obj")),
    ),
    "external link record": (
        "obj",
        lambda s, o: _h5_replace(
            s, "obj/@record", h5py.ExternalLink(str(o / "secret.h5"), "/obj/@record")
        ),
    ),
    "soft link dangling": ("arr", lambda s, o: _h5_replace(s, "arr", h5py.SoftLink("/missing"))),
    "soft link out of the file": ("arr", lambda s, o: _h5_soft_out(s, o)),
    "soft link loop": ("obj", lambda s, o: _h5_replace(s, "obj", h5py.SoftLink("/obj"))),
    "virtual dataset": ("arr", _h5_virtual),
    "external raw storage": ("arr", _h5_external_raw),
    "hard link cycle": ("obj", _h5_hard_cycle),
}


def _h5_soft_out(store: str, outside: Path) -> None:
    with h5py.File(store, "a") as f:
        f["elsewhere"] = h5py.ExternalLink(str(outside / "secret.h5"), "/")
        del f["arr"]
        f["arr"] = h5py.SoftLink("/elsewhere/arr")
    # tinystore's record does not name "elsewhere": it is listed as a stray leaf


def _json_link(store: str, rel: str, target) -> None:
    path = Path(store, rel)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    os.symlink(target, path)


def _json_hardlink(store: str, rel: str, target: Path) -> None:
    Path(store, rel).unlink()
    os.link(target, Path(store, rel))


def _json_fifo(store: str, rel: str) -> None:
    Path(store, rel).unlink()
    os.mkfifo(Path(store, rel))


JSON_CASES = {
    "symlink npy": ("arr", lambda s, o: _json_link(s, "arr.npy", o / "secret.npy")),
    "symlink bin": ("blob", lambda s, o: _json_link(s, "blob.bin", o / "secret.bin")),
    "symlink to /dev/zero": ("blob", lambda s, o: _json_link(s, "blob.bin", "/dev/zero")),
    "dangling symlink": ("arr", lambda s, o: _json_link(s, "arr.npy", o / "nothing.npy")),
    "symlink loop file": ("arr", lambda s, o: _json_link(s, "arr.npy", "arr.npy")),
    "hard link npy": ("arr", lambda s, o: _json_hardlink(s, "arr.npy", o / "secret.npy")),
    "group dir symlink": ("obj", lambda s, o: _json_link(s, "obj", o / "objcopy")),
    "group dir symlink to docs": ("obj", lambda s, o: _json_link(s, "obj", o / "docs")),
    "group dir symlink loop": ("obj", lambda s, o: _json_link(s, "obj", "obj")),
    "record symlink": (
        "obj",
        lambda s, o: _json_link(s, "obj/@record.json", o / "objcopy" / "@record.json"),
    ),
    "fifo record": ("obj", lambda s, o: _json_fifo(s, "obj/@record.json")),
    "fifo npy": ("arr", lambda s, o: _json_fifo(s, "arr.npy")),
    "journal symlink": (None, lambda s, o: _json_link(s, "@journal", o / "journal.txt")),
    "lock symlink": (None, lambda s, o: _json_link(s, "@lock", o / "journal.txt")),
    "dangling lock symlink": (None, lambda s, o: _json_link(s, "@lock", o / "newlock")),
}


def _operations(store: str, node: str | None) -> dict:
    """name -> a call on the crafted store; ``node``: the node the case damaged."""
    node = node or "arr"
    return {
        "load": lambda: tinystore.load(store, path=node),
        "load safe": lambda: tinystore.load(store, path=node, safe=True),
        "browse": lambda: tinystore.open(store, "r").tree(),
        "write into": lambda: tinystore.save(2, store, path=f"{node}/b" if node == "obj" else node),
        "replace": lambda: tinystore.save(np.arange(2000.0), store, path=node),
        "delete node": lambda: tinystore.delete(store, path=node),
        "save whole": lambda: tinystore.save({"new": 1}, store),
        "mode w": lambda: tinystore.open(store, "w").close(),
        "delete store": lambda: tinystore.delete(store),
    }


READS = {"load", "load safe", "browse"}
OPERATIONS = list(_operations("", None))


def _check(store: str, outside: Path, node: str | None, op: str, tmp_path: Path) -> None:
    before = _snapshot(outside)
    around = sorted(p.name for p in tmp_path.iterdir())
    call = _operations(store, node)[op]
    try:
        result = call()
    except TinystoreError as exc:
        if node is not None and isinstance(exc, UnsafeStoreError):
            assert node in str(exc) or "elsewhere" in str(exc) or "loop" in str(exc)
        result = exc
    except Exception as exc:  # a raw OSError / RuntimeError is a failure
        pytest.fail(f"{op}: raised {type(exc).__name__}, not a tinystore error: {exc}")
    if op in READS and node is not None:
        # never another file's bytes: a refusal (or, browsing, no data at all)
        assert isinstance(result, CorruptStoreError) or op == "browse", result
        if op == "browse" and not isinstance(result, Exception):
            assert "7." not in result
    assert _snapshot(outside) == before, f"{op} changed a file outside the store"
    extra = {"store.h5.lock", "store.h5.journal", "store.h5", "store.json"}
    assert set(sorted(p.name for p in tmp_path.iterdir())) <= set(around) | extra


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("case", list(HDF5_CASES))
def test_hdf5_links_never_lead_outside(case, op, tmp_path):
    store, outside = _build("hdf5", tmp_path)
    node, craft = HDF5_CASES[case]
    craft(store, outside)
    _check(store, outside, node, op, tmp_path)


@pytest.mark.parametrize("op", OPERATIONS)
@pytest.mark.parametrize("case", list(JSON_CASES))
def test_json_links_never_lead_outside(case, op, tmp_path):
    if "fifo" in case and not fork_available():
        pytest.skip("needs fork to guard against a hang")
    store, outside = _build("json", tmp_path)
    node, craft = JSON_CASES[case]
    craft(store, outside)
    if "fifo" in case:  # a FIFO opened for reading would block forever: run it apart
        outcome = run_one(lambda: _check(store, outside, node, op, tmp_path), timeout=30)
        assert outcome.status == "done", f"{op} on a FIFO: {outcome}"
        assert outcome.result is None, outcome.result
        return
    _check(store, outside, node, op, tmp_path)


@pytest.mark.parametrize("case", ["external link dataset", "virtual dataset", "soft link loop"])
def test_hdf5_refusals_name_the_node(case, tmp_path):
    store, outside = _build("hdf5", tmp_path)
    node, craft = HDF5_CASES[case]
    craft(store, outside)
    with pytest.raises(UnsafeStoreError, match=node):
        tinystore.load(store, path=node, safe=True)
    assert tinystore.load(store, path="blob") == BLOB  # the rest stays readable


def test_hdf5_hard_link_cycle_is_refused_at_once(tmp_path):
    store, outside = _build("hdf5", tmp_path)
    _h5_hard_cycle(store, outside)
    with pytest.raises(UnsafeStoreError, match="hard links"):
        tinystore.load(store, path="obj")


@pytest.mark.parametrize(
    "case", ["symlink npy", "hard link npy", "group dir symlink", "symlink loop file"]
)
def test_json_refusals_name_the_node(case, tmp_path):
    store, outside = _build("json", tmp_path)
    node, craft = JSON_CASES[case]
    craft(store, outside)
    with pytest.raises(UnsafeStoreError, match=node):
        tinystore.load(store, path=node, safe=True)
    assert tinystore.load(store, path="blob") == BLOB


def test_json_mode_w_refuses_a_store_holding_a_symlinked_folder(tmp_path):
    store, outside = _build("json", tmp_path)
    _json_link(store, "obj", outside / "docs")
    before = _snapshot(outside)
    with pytest.raises(UnsafeStoreError, match="obj"):
        tinystore.open(store, "w")
    assert _snapshot(outside) == before
    assert tinystore.load(store, path="arr").tolist() == ARR.tolist()  # nothing removed


def test_json_over_long_nested_paths_are_a_tinystore_error(tmp_path):
    """A chain of group directories whose path is longer than PATH_MAX."""
    store, _ = _build("json", tmp_path)
    name = "n" * 200
    fd = os.open(store, os.O_RDONLY)
    record = Path(store, "@record.json")
    doc = json.loads(record.read_bytes())
    doc["nodes"][0]["c"]["deep"] = {"G": name, "g": 1}
    record.write_text(json.dumps(doc))
    try:
        for _ in range(30):  # 30 x 201 bytes > 4096
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = child
            body = {"tinystore": [1, 0], "nodes": [{"g": 1, "c": {"x": {"G": name, "g": 1}}}]}
            w = os.open("@record.json", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
            os.write(w, json.dumps(body).encode())
            os.close(w)
    finally:
        os.close(fd)
    with pytest.raises(CorruptStoreError):
        tinystore.open(store, "r").tree()
    with pytest.raises(CorruptStoreError):
        tinystore.load(store, path="deep/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x/x")


def test_invalid_key_error_for_writes_too_deep_for_the_file_system(tmp_path):
    store = str(tmp_path / "store.json")
    tinystore.save(1, store, path="x")
    with tinystore.open(store) as s:
        g = s
        with pytest.raises(InvalidKeyError, match="longer than this file system"):
            for i in range(40):
                g = g.create_group(f"{i}" + "k" * 150)
