"""Child process for tests/test_full_disk.py: saves into a nearly full file system.

``python fill_disk.py FOLDER BACKEND SCENARIO STEP [nomargin]``: for every amount of free
space from 0 to what the save needs (plus HDF5's margin) in steps of STEP
bytes, the store is put back as it was, the file system filled to leave that
much, the save tried, the filler removed and the store loaded.  Prints one
JSON line per level: what the save said and what the store then holds.
``nomargin``: HDF5 writes with no free space kept in hand (the check before
writing passes whenever the data itself fits), so that the failures HDF5
meets while it writes, and reports late, are what the sweep exercises.
``many``: the new data is also 80 small arrays, whose metadata (object
headers, links: not counted by the check before each write) outgrows the
space the old data frees: without it, HDF5 never meets the full disk.
Runs all levels in one process, so that what HDF5 leaves behind after a
failed write (and at exit) is part of the test: a crash fails it.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import traceback

import numpy as np

import tinystore

OLD = {"a": np.arange(1000.0), "items": list(range(3000))}
NEW = {"a": np.ones(30_000), "items": list(range(5000, 8000))}
PART = np.full(30_000, 2.5)  # the partial update: OLD["a"] replaced


def expected(scenario: str, success: bool):
    if scenario == "new":
        return NEW if success else None
    if scenario == "whole":
        return NEW if success else OLD
    if success:
        return {**OLD, "a": PART}
    return OLD


def save(scenario: str, store: str, backend: str) -> None:
    if scenario == "partial":
        tinystore.save(PART, store, path="a", backend=backend)
    else:
        tinystore.save(NEW, store, backend=backend)


def same(a, b) -> bool:
    if isinstance(a, dict):
        return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return type(b) is list and len(a) == len(b) and all(map(same, a, b))
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and np.array_equal(a, b)
    return type(a) is type(b) and a == b


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def fill(folder: str, leave: int) -> str:
    filler = os.path.join(folder, "filler")
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave))
    return filler


def level(folder: str, backend: str, scenario: str, leave: int) -> dict:
    store = os.path.join(folder, "store.h5" if backend == "hdf5" else "store.json")
    for name in os.listdir(folder):
        remove(os.path.join(folder, name))
    if scenario != "new":
        tinystore.save(OLD, store, backend=backend)
    filler = fill(folder, leave)
    try:
        save(scenario, store, backend)
        said = "ok"
    except OSError as exc:
        said = f"{type(exc).__name__}: {exc}"[:200]
    except Exception as exc:  # noqa: BLE001 - reported, and failed by the test
        said = f"UNEXPECTED {type(exc).__name__}: {exc}"[:200]
        traceback.print_exc()  # to stderr, which the test shows
    os.unlink(filler)
    if os.path.exists(store):
        try:
            loaded = tinystore.load(store, backend=backend)
        except Exception as exc:  # noqa: BLE001
            return {"leave": leave, "said": said, "holds": f"{type(exc).__name__}: {exc}"[:200]}
    else:
        loaded = None
    want = expected(scenario, said == "ok")
    holds = "as expected" if same(want, loaded) else "WRONG"
    if scenario == "new" and said != "ok" and loaded is not None:
        holds = "WRONG: a failed new store exists"
    return {"leave": leave, "said": said, "holds": holds}


def main() -> None:
    global NEW, PART
    folder, backend, scenario, step = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    if "nomargin" in sys.argv[5:]:
        from tinystore.storage import hdf5

        hdf5.SPACE_MARGIN = 0
    if "many" in sys.argv[5:]:
        # many datasets: their object headers and links (HDF5's metadata, which
        # the check before each write does not count) outgrow the space the old
        # data frees, so HDF5 meets the full disk while it writes them
        parts = [np.full(300, float(i)) for i in range(80)]
        NEW = {**NEW, "parts": parts}
        PART = [PART, *parts]
    top = 800_000 if backend == "hdf5" else 400_000
    for leave in range(0, top, step):
        print(json.dumps(level(folder, backend, scenario, leave)), flush=True)


if __name__ == "__main__":
    main()
