"""Single assignments and reads in an open store (issue 19, item 3).

The notebook pattern ``with tinystore.open(f) as s: for i in ...: s[f"step{i}"]
= {...}``, without ``batch()``: every assignment is a transaction of its own.
Compared with raw h5py writing the same as groups with attributes (the file
kept open).  Reads: the same keys read back through the handle that wrote
them, and through a new read-only handle (whose first read of a key must
read that key's record from the file).
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
from typing import Any, Callable

import tinystore
from benchmarks.files import remove_path

try:
    import h5py
except ImportError:  # pragma: no cover - h5py is a dependency of tinystore
    h5py = None

#: the clock of the loops (run.py --cpu sets it to the process's CPU time)
CLOCK = {"now": time.perf_counter}


def _value(i: int) -> dict:
    return {"step": i, "loss": 0.5 / (i + 1), "tag": "train"}


def _tinystore(location: str, n: int) -> dict:
    out = {}
    with tinystore.open(location, "w") as s:
        t = CLOCK["now"]()
        for i in range(n):
            s[f"step{i}"] = _value(i)
        out["write"] = (CLOCK["now"]() - t) / n
        t = CLOCK["now"]()
        for i in range(n):
            s[f"step{i}"]
        out["read"] = (CLOCK["now"]() - t) / n
    with tinystore.open(location, "r") as s:
        t = CLOCK["now"]()
        for i in range(n):
            s[f"step{i}"]
        out["read_new_handle"] = (CLOCK["now"]() - t) / n
    return out


def _raw_h5py(location: str, n: int) -> dict:
    out = {}
    with h5py.File(location, "w") as f:
        t = CLOCK["now"]()
        for i in range(n):
            group = f.create_group(f"step{i}")
            for key, value in _value(i).items():
                group.attrs[key] = value
        out["write"] = (CLOCK["now"]() - t) / n
        t = CLOCK["now"]()
        for i in range(n):
            dict(f[f"step{i}"].attrs)
        out["read"] = (CLOCK["now"]() - t) / n
    with h5py.File(location, "r") as f:
        t = CLOCK["now"]()
        for i in range(n):
            dict(f[f"step{i}"].attrs)
        out["read_new_handle"] = (CLOCK["now"]() - t) / n
    return out


ENGINES: dict[str, tuple[str, Callable[[str, int], dict]]] = {
    "ts.memory": ("memory://assign-bench", _tinystore),
    "ts.hdf5": ("s.h5", _tinystore),
    "ts.json": ("s.json", _tinystore),
    "h5py (raw)": ("raw.h5", _raw_h5py),
}


def measure(n: int, rounds: int, engines: list[str]) -> list[dict]:
    """Median seconds per operation over ``rounds`` runs of ``n`` assignments,
    the engines interleaved round by round (a fresh store every run)."""
    names = [e for e in ENGINES if e in engines or e == "h5py (raw)"]
    if h5py is None:
        names.remove("h5py (raw)")
    samples: dict[str, list[dict]] = {e: [] for e in names}
    tmpdir = tempfile.mkdtemp(prefix="tinystore-assign-")
    try:
        for r in range(rounds):
            for e in names[r % len(names) :] + names[: r % len(names)]:
                stem, run = ENGINES[e]
                location = stem if stem.startswith("memory://") else os.path.join(tmpdir, stem)
                samples[e].append(run(location, n))
                remove_path(location)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    rows = []
    for e in names:
        row: dict[str, Any] = {"engine": e, "n": n, "rounds": rounds}
        for key in ("write", "read", "read_new_handle"):
            row[key] = statistics.median(s[key] for s in samples[e])
        rows.append(row)
    raw = next((r for r in rows if r["engine"] == "h5py (raw)"), None)
    for row in rows:
        for key in ("write", "read", "read_new_handle"):
            row[key + "_x_raw"] = row[key] / raw[key] if raw else None
    return rows
