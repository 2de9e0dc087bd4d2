"""Many jobs, one store: simulated jobs on a dask cluster save into one icechunk store.

Used by ``notebooks/04_cluster.ipynb`` and the user guide.  The job function
and its result types live in this importable module, so that dask's worker
processes find them and tinystore stores the dataclass by its import path::

    from dask.distributed import Client, LocalCluster
    from tinystore.demo_cluster import run_jobs

    with LocalCluster(n_workers=4, processes=True, host="127.0.0.1") as cluster, \\
            Client(cluster) as client:
        run_jobs(client, "s3://bucket/project.icechunk", n_jobs=40)

Each job saves its result with one ``tinystore.save(..., path="jobs/<i>")``:
one icechunk session and one commit per job.  Two jobs that commit at the
same time do not overwrite each other: icechunk refuses the second commit
(a conditional write), and tinystore runs that save again on the new
snapshot.  No lock is taken, so the jobs may run on any number of machines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import tinystore


@dataclass
class JobSummary:
    """What a job reports besides its arrays and table."""

    job: int
    temperature_K: float
    final_energy_eV: float
    converged: bool


def simulate(i: int, atoms: int = 64, steps: int = 300) -> dict:
    """A made-up molecular-dynamics job: arrays, a DataFrame and a dataclass."""
    rng = np.random.default_rng(i)
    temperature = 300.0 + 10.0 * i
    drift = -0.002 * (1 + i % 5)
    energy = -3.5 * atoms + np.cumsum(rng.normal(drift, 0.01, steps))
    table = pd.DataFrame(
        {
            "step": np.arange(steps),
            "energy_eV": energy,
            "temperature_K": temperature + rng.normal(0, 4, steps),
        }
    )
    return {
        "positions": rng.uniform(0, 10, size=(atoms, 3)),
        "forces": rng.normal(0, 0.1, size=(steps, atoms, 3)),
        "table": table,
        "summary": JobSummary(i, temperature, float(energy[-1]), bool(i % 7 != 3)),
    }


def run_job(i: int, url: str, storage_options: dict | None = None) -> int:
    """Run job ``i`` and save its result into ``jobs/<i>`` of the store at ``url``."""
    options = {"storage_options": storage_options} if storage_options else {}
    tinystore.save(
        simulate(i), url, path=f"jobs/{i}", backend="icechunk", message=f"job {i}", **options
    )
    return i


def run_jobs(client: Any, url: str, n_jobs: int = 40, storage_options: dict | None = None) -> list:
    """Run ``n_jobs`` jobs on the dask ``client``'s cluster; their numbers, in order."""
    futures = client.map(run_job, range(n_jobs), url=url, storage_options=storage_options)
    return client.gather(futures)
