"""Benchmark workloads for issue 6, built deterministically from a seeded RNG.

The classes live here, at module level of an importable module
(``benchmarks.workloads``), so that every engine can store them by import
path, as pickle does.  Every builder takes a :class:`Sizes` so the same code
makes the full-size, ``--quick`` and ``--smoke`` variants.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

MiB = 1024 * 1024
SEED = 20240606


@dataclass(frozen=True)
class Sizes:
    """How big each workload is (full size: the numbers of issue 6)."""

    small_dict_items: int = 1_000  # (a)
    dataclass_bytes: int = 10 * MiB  # (b)
    n_objects: int = 200  # (c)
    dataframe_rows: int = 100_000  # (d)
    n_tuples: int = 10_000  # (e)
    nesting_depth: int = 1_000  # (f)
    big_arrays: int = 100  # (g), (h)
    big_array_bytes: int = 2 * MiB  # (g), (h): 100 x 2 MiB ~ 200 MiB
    browse_groups: int = 1_000  # (i): 1,000 dicts ...
    browse_items: int = 10  # (i): ... of 10 items = 10,000 nodes


FULL = Sizes()
SMOKE = Sizes(
    small_dict_items=20,
    dataclass_bytes=64 * 1024,
    n_objects=5,
    dataframe_rows=50,
    n_tuples=20,
    nesting_depth=10,
    big_arrays=3,
    big_array_bytes=16 * 1024,
    browse_groups=5,
    browse_items=3,
)


def rng(salt: int = 0) -> np.random.Generator:
    return np.random.default_rng(SEED + salt)


# ---------------------------------------------------------------- classes


@dataclass
class SimulationResult:
    """(b): a dataclass holding numpy arrays (and a little metadata)."""

    name: str
    positions: np.ndarray  # float64 (n, 3)
    forces: np.ndarray  # float32 (n, 3)
    species: np.ndarray  # int64 (n,)
    energies: np.ndarray  # float64 (n_steps,)
    converged: np.ndarray  # bool (n_steps,)
    temperature: float = 300.0

    def array_bytes(self) -> int:
        """Bytes held in numpy arrays (the "object size" for the memory target)."""
        return sum(
            value.nbytes
            for value in (getattr(self, f.name) for f in dataclasses.fields(self))
            if isinstance(value, np.ndarray)
        )


class Particle:
    """(c): a plain class instance with five attributes (pickled via ``__dict__``)."""

    def __init__(self, label, mass, charge, position, active):
        self.label = label
        self.mass = mass
        self.charge = charge
        self.position = position
        self.active = active

    def __eq__(self, other):
        return type(other) is Particle and vars(self) == vars(other)


# ---------------------------------------------------------------- builders


def _word(r: np.random.Generator, lo: int = 3, hi: int = 12) -> str:
    letters = r.integers(97, 123, size=int(r.integers(lo, hi)))
    return bytes(letters.astype(np.uint8)).decode("ascii")


def small_dict(sizes: Sizes) -> dict:
    """(a) 1,000 small mixed values: int, float, short str, None, bool, small tuple."""
    r = rng(1)
    out = {}
    for i in range(sizes.small_dict_items):
        kind = i % 6
        if kind == 0:
            value = int(r.integers(-(10**6), 10**6))
        elif kind == 1:
            value = float(r.normal())
        elif kind == 2:
            value = _word(r)
        elif kind == 3:
            value = None
        elif kind == 4:
            value = bool(r.integers(0, 2))
        else:
            value = (int(r.integers(0, 100)), float(r.random()), _word(r, 2, 5))
        out[f"key_{i:04d}"] = value
    return out


def array_dataclass(sizes: Sizes) -> SimulationResult:
    """(b) a dataclass holding ``sizes.dataclass_bytes`` of numpy arrays."""
    r = rng(2)
    # per atom: positions 24 B + forces 12 B + species 8 B = 44 B; steps: 8 + 1 = 9 B
    n_steps = 1_000
    n_atoms = (sizes.dataclass_bytes - 9 * n_steps) // 44
    obj = SimulationResult(
        name="relaxation-42",
        positions=r.normal(size=(n_atoms, 3)),
        forces=r.normal(size=(n_atoms, 3)).astype(np.float32),
        species=r.integers(0, 90, size=n_atoms),
        energies=np.cumsum(r.normal(size=n_steps)),
        converged=r.random(n_steps) < 0.5,
    )
    return obj


def objects(sizes: Sizes) -> list:
    """(c) 200 plain class instances with 5 attributes each."""
    r = rng(3)
    return [
        Particle(
            label=f"p{i}-{_word(r, 2, 6)}",
            mass=float(r.uniform(1, 200)),
            charge=int(r.integers(-3, 4)),
            position=tuple(float(x) for x in r.normal(size=3)),
            active=bool(r.integers(0, 2)),
        )
        for i in range(sizes.n_objects)
    ]


def dataframe(sizes: Sizes) -> pd.DataFrame:
    """(d) rows x 6 columns: float64, int64, int32, bool, datetime64[ns], str (object)."""
    r = rng(4)
    n = sizes.dataframe_rows
    words = np.array([_word(r, 3, 10) for _ in range(64)], dtype=object)
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    return pd.DataFrame(
        {
            "energy": r.normal(size=n),
            "step": np.arange(n, dtype=np.int64) * 7,
            "count": r.integers(0, 10**6, size=n).astype(np.int32),
            "ok": r.random(n) < 0.9,
            "time": start + r.integers(0, 10**15, size=n).astype("timedelta64[ns]"),
            "label": words[r.integers(0, len(words), size=n)],
        }
    )


def tuples(sizes: Sizes) -> list:
    """(e) 10,000 small tuples (int, float, short str)."""
    r = rng(5)
    ints = r.integers(0, 10**6, size=sizes.n_tuples)
    floats = r.normal(size=sizes.n_tuples)
    words = [_word(r, 2, 6) for _ in range(32)]
    return [(int(ints[i]), float(floats[i]), words[i % len(words)]) for i in range(sizes.n_tuples)]


def nested(sizes: Sizes) -> list:
    """(f) 1,000 levels: each level a list [dict, next level]."""
    r = rng(6)
    root: list = []
    level = root
    for depth in range(sizes.nesting_depth):
        inner: list = []
        level.append({"depth": depth, "weight": float(r.random())})
        level.append(inner)
        level = inner
    return root


def big_file(sizes: Sizes) -> dict:
    """(g), (h) ~200 MiB: 100 arrays of 2 MiB plus a small ``meta`` dict."""
    r = rng(7)
    n = sizes.big_array_bytes // 8
    out: dict = {"meta": {"name": "run-0001", "step": 0, "units": "eV"}}
    for i in range(sizes.big_arrays):
        out[f"array_{i:03d}"] = r.normal(size=n)
    return out


def browse_tree(sizes: Sizes) -> dict:
    """(i) a dict of 1,000 dicts of 10 items (10,000 leaf nodes)."""
    r = rng(8)
    return {
        f"group_{g:04d}": {
            f"item_{j:02d}": float(x) for j, x in enumerate(r.normal(size=sizes.browse_items))
        }
        for g in range(sizes.browse_groups)
    }
