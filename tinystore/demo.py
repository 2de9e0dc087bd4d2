"""``python -m tinystore demo``: save, browse, partially load/update and reload a job.

The classes here are a small but realistic simulation workflow: a
:class:`Structure` dataclass holding numpy arrays, a :class:`Simulation`
that subclasses :class:`tinystore.Storable` to lay itself out, a pandas
DataFrame of results and nested parameters.
"""

from __future__ import annotations

import copy
import pickle
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import tinystore


@dataclass
class Structure:
    """Atoms in a periodic cell."""

    species: list[str]
    positions: np.ndarray
    cell: np.ndarray
    pbc: tuple[bool, bool, bool] = (True, True, True)
    info: dict = field(default_factory=dict)


class Simulation(tinystore.Storable):
    """A molecular-dynamics job: input (structure, parameters) and output."""

    _storage_version = 1

    def __init__(self, name: str, structure: Structure, parameters: dict):
        self.name = name
        self.structure = structure
        self.parameters = parameters
        self.results: pd.DataFrame | None = None
        self.final_forces: np.ndarray | None = None

    def run(self, steps: int = 1000, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        t = np.arange(steps) * self.parameters["timestep_fs"]
        energy = -3.5 * len(self.structure.species) + np.cumsum(rng.normal(0, 1e-3, steps))
        self.results = pd.DataFrame(
            {
                "time_fs": t,
                "energy_eV": energy,
                "temperature_K": self.parameters["temperature_K"] + rng.normal(0, 5, steps),
                "converged": rng.random(steps) > 0.1,
            }
        )
        self.results.attrs["units"] = {"time_fs": "fs", "energy_eV": "eV"}
        self.final_forces = rng.normal(0, 0.1, self.structure.positions.shape)

    def _store(self, storage) -> None:
        storage["name"] = self.name
        inp = storage.create_group("input")
        inp["structure"] = self.structure
        inp["parameters"] = self.parameters
        out = storage.create_group("output")
        out["results"] = self.results
        out["forces"] = self.final_forces

    @classmethod
    def _restore(cls, storage, version: int) -> Simulation:
        job = cls(storage["name"], storage["input/structure"], storage["input/parameters"])
        job.results = storage["output/results"]
        job.final_forces = storage["output/forces"]
        return job


def make_job(atoms: int = 256) -> Simulation:
    rng = np.random.default_rng(42)
    structure = Structure(
        species=["Al"] * (atoms - 8) + ["Mg"] * 8,
        positions=rng.random((atoms, 3)) * 16.2,
        cell=np.eye(3) * 16.2,
        info={"source": "fcc supercell 4x4x4", "lattice_A": 4.05},
    )
    parameters = {
        "potential": "Al-Mg EAM (Mendelev 2009)",
        "temperature_K": 300.0,
        "timestep_fs": 1.0,
        "thermostat": {"kind": "langevin", "damping_fs": 100.0},
        "kpoints": (1, 1, 1),
    }
    job = Simulation("md_AlMg_300K", structure, parameters)
    job.run()
    return job


def _array_diff(name: str, x: np.ndarray | None, y: np.ndarray | None) -> list[str]:
    if x is None or y is None:
        return [] if x is y else [f"{name}: {x!r} != {y!r}"]
    if type(y) is not np.ndarray or x.dtype != y.dtype or x.shape != y.shape:
        return [f"{name}: {type(y).__name__} {getattr(y, 'dtype', '')} {getattr(y, 'shape', '')}"]
    if not np.array_equal(x, y):
        return [f"{name}: values differ"]
    if x.flags.f_contiguous != y.flags.f_contiguous:
        return [f"{name}: memory order differs"]
    return []


def differences(a: Simulation, b: Any) -> list[str]:
    """What differs between two jobs, field by field (empty: identical).

    A real comparison, not an ``assert``: it holds under ``python -O`` too.
    """
    if type(b) is not Simulation:
        return [f"type: {type(b).__qualname__} instead of Simulation"]
    if b is a:
        return ["the loaded job is the original object, not a copy"]
    out = []
    if a.name != b.name:
        out.append(f"name: {a.name!r} != {b.name!r}")
    if a.parameters != b.parameters or list(a.parameters) != list(b.parameters):
        out.append(f"parameters: {a.parameters!r} != {b.parameters!r}")
    sa, sb = a.structure, b.structure
    if type(sb) is not Structure:
        return [*out, f"structure: {type(sb).__qualname__} instead of Structure"]
    for field_name in ("species", "pbc", "info"):
        x, y = getattr(sa, field_name), getattr(sb, field_name)
        if x != y or type(x) is not type(y):
            out.append(f"structure.{field_name}: {x!r} != {y!r}")
    out += _array_diff("structure.positions", sa.positions, sb.positions)
    out += _array_diff("structure.cell", sa.cell, sb.cell)
    out += _array_diff("final_forces", a.final_forces, b.final_forces)
    if not isinstance(b.results, pd.DataFrame):
        return [*out, f"results: {type(b.results).__qualname__} instead of DataFrame"]
    if not (
        a.results.equals(b.results)
        and list(a.results.dtypes) == list(b.results.dtypes)
        and a.results.index.equals(b.results.index)
    ):
        out.append("results: the DataFrame differs")
    if a.results.attrs != b.results.attrs:
        out.append(f"results.attrs: {a.results.attrs!r} != {b.results.attrs!r}")
    return out


def _best_of(
    repeat: int, action: Callable[[], Any], setup: Callable[[], Any] = lambda: None
) -> float:
    """The fastest of ``repeat`` runs of ``action`` (each after an untimed
    ``setup``), in seconds: warm timing, without one-time costs."""
    best = float("inf")
    for _ in range(repeat):
        setup()
        t0 = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - t0)
    return best


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.2f} ms"


def _show_one_file(filename: Path) -> None:
    """Steps 2 and 3 on one file: browse without loading, then load one part."""
    with tinystore.open(filename, mode="r") as s:
        print(s.tree(max_depth=3, max_children=5))
        view = s.node("input/structure/positions")
        print(
            f"\n  s.node('input/structure/positions') -> kind {view.kind!r}, type {view.type!r}, "
            f"shape {view.shape}, dtype {view.dtype}: seen without reading the array"
        )
        t0 = time.perf_counter()
        positions = s["input/structure/positions"]
        took = time.perf_counter() - t0
        print(
            f"  s['input/structure/positions'] -> {type(positions).__name__} {positions.shape}: "
            f"only this array was read ({took * 1e3:.2f} ms)"
        )


def run(directory: str | None = None, repeat: int = 5) -> int:
    """Run the demo, printing what happens; returns a process exit code
    (1 if a loaded job differs from what was saved).

    Files go to ``directory`` (kept) or to a temporary folder (removed).
    """
    if directory is not None:
        workdir = Path(directory)
        workdir.mkdir(parents=True, exist_ok=True)
        return _run_in(workdir, repeat, keep=True)
    with tempfile.TemporaryDirectory(prefix="tinystore-demo-") as tmp:
        return _run_in(Path(tmp), repeat, keep=False)


def _run_in(workdir: Path, repeat: int, keep: bool) -> int:
    # one story, told in numbered steps; each step prints what a newcomer should notice
    job = make_job()
    print(
        f"tinystore {tinystore.__version__} demo: a molecular-dynamics job with "
        f"{len(job.structure.species)} atoms and {len(job.results)} steps (a Storable class "
        "holding a dataclass, numpy arrays, a DataFrame and nested parameters).\n"
    )
    files = {"hdf5": workdir / "md_job.h5", "json": workdir / "md_job.json"}
    first_use = {}
    print("1. tinystore.save(job, filename) -- the backend is chosen by the suffix")
    for name, filename in files.items():
        t0 = time.perf_counter()
        tinystore.save(job, filename)
        first_use[name] = time.perf_counter() - t0
        print(f"   {filename.name:12} {_size(filename):>9,} bytes")

    print(
        "\n2. What is inside, read without building the job "
        f"(`tinystore tree {files['hdf5'].name}`):"
    )
    print("   kinds, types and shapes come from the file; none of the job's classes is used\n")
    _show_one_file(files["hdf5"])

    print("\n3. Update one part in place, then load everything back and compare:")
    expected = copy.deepcopy(job)  # the original stays as it was saved
    expected.parameters["temperature_K"] = 350.0
    failed = False
    for name, filename in files.items():
        tinystore.save(350.0, filename, path="input/parameters/temperature_K")
        back = tinystore.load(filename)
        found = differences(expected, back)
        failed = failed or bool(found)
        verdict = "identical to the original (with the update)" if not found else "DIFFERENT:"
        print(f"   {name:5} temperature_K = {back.parameters['temperature_K']}; {verdict}")
        for line in found:
            print(f"         {line}")
    untouched = differences(make_job(), job)
    if untouched:
        failed = True
        print(f"   the original job changed while being saved: {untouched}")

    _print_timings(job, files, first_use, repeat, workdir)
    print(
        "\nTry: `tinystore ls FILE`, `tinystore show FILE output/forces`, "
        "`tinystore verify FILE`, or open a file with h5py / a text editor (JSON)."
    )
    if keep:
        print(f"The demo files are in {workdir}")
    else:
        print("(The demo's temporary files are removed; `tinystore demo --dir DIR` keeps them.)")
    return 1 if failed else 0


def _print_timings(job, files: dict, first_use: dict, repeat: int, workdir: Path) -> None:
    print(f"\n4. Speed and size (warm: the best of {repeat} runs), against pickle:")
    blob = pickle.dumps(job)
    rows = [
        (
            "pickle",
            _best_of(repeat, lambda: pickle.dumps(job)),
            _best_of(repeat, lambda: pickle.loads(blob)),
            len(blob),
        )
    ]
    for name, filename in files.items():
        scratch = workdir / f"timing{filename.suffix}"

        def fresh(f=scratch) -> None:  # each timed save makes a new file, as the first did
            if f.exists():
                tinystore.delete(f)

        save = _best_of(repeat, lambda f=scratch: tinystore.save(job, f), setup=fresh)
        load = _best_of(repeat, lambda f=scratch: tinystore.load(f))
        rows.append((name, save, load, _size(scratch)))
        tinystore.delete(scratch)
    print(f"   {'':8}{'save':>11}{'load':>11}{'size':>14}")
    for name, save, load, size in rows:
        print(f"   {name:8}{_ms(save)}{_ms(load)}{size:>11,} B")
    once = ", ".join(f"{name} {_ms(t).strip()}" for name, t in first_use.items())
    print(
        f"   The first save of each backend took longer ({once}): one-time costs such as\n"
        "   importing h5py are paid once per process, not per file."
    )
