"""``python -m tinystore demo``: save, browse, partially load/update and reload a job.

The classes here are a small but realistic simulation workflow: a
:class:`Structure` dataclass holding numpy arrays, a :class:`Simulation`
that subclasses :class:`tinystore.Storable` to lay itself out, a pandas
DataFrame of results and nested parameters.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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


def _same(a: Simulation, b: Simulation) -> None:
    assert type(b) is Simulation and b is not a
    assert a.name == b.name and a.parameters == b.parameters
    sa, sb = a.structure, b.structure
    assert type(sb) is Structure and sa.species == sb.species and sa.pbc == sb.pbc
    for x, y in (
        (sa.positions, sb.positions),
        (sa.cell, sb.cell),
        (a.final_forces, b.final_forces),
    ):
        assert x.dtype == y.dtype and np.array_equal(x, y)
    pd.testing.assert_frame_equal(a.results, b.results, check_exact=True)
    assert a.results.attrs == b.results.attrs


def run(directory: str | None = None) -> int:
    """Run the demo, printing what happens; returns a process exit code."""
    workdir = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="tinystore-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    job = make_job()
    t0 = time.perf_counter()
    blob = pickle.dumps(job)
    pickle.loads(blob)
    t_pickle = time.perf_counter() - t0
    print(f"pickle: {len(blob):,} bytes, save+load {t_pickle * 1e3:.1f} ms\n")

    for filename in (workdir / "md_job.h5", workdir / "md_job.json"):
        print(f"=== {filename.name} ===")
        t0 = time.perf_counter()
        tinystore.save(job, filename)
        t_save = time.perf_counter() - t0

        with tinystore.open(filename, mode="r") as s:
            print(s.tree(max_depth=4, max_children=6))
            view = s.node("input/structure/positions")
            print(f"\nbrowse without loading: {view!r}")
            positions = s["input/structure/positions"]  # partial load: only this array
            print(f"partial load of input/structure/positions: {positions.shape} {positions.dtype}")

        tinystore.save(350.0, filename, path="input/parameters/temperature_K")  # partial update
        job.parameters["temperature_K"] = 350.0

        t0 = time.perf_counter()
        back = tinystore.load(filename)
        t_load = time.perf_counter() - t0
        _same(job, back)
        size = (
            sum(p.stat().st_size for p in filename.rglob("*"))
            if filename.is_dir()
            else filename.stat().st_size
        )
        print(
            f"updated input/parameters/temperature_K -> {back.parameters['temperature_K']}; "
            f"full load equals the original: yes\n"
            f"save {t_save * 1e3:.1f} ms, load {t_load * 1e3:.1f} ms, {size:,} bytes\n"
        )
        job.parameters["temperature_K"] = 300.0
    print(f"demo files are in {workdir}")
    return 0
