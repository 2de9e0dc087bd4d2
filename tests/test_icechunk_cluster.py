"""A dask cluster writes one icechunk store on the S3 server; the client browses it.

Four worker processes run 40 simulated jobs (tinystore.demo_cluster); each
saves arrays, a DataFrame and a dataclass into ``jobs/<i>`` with one commit,
with no lock of ours: conflicting commits are run again on the new snapshot.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("icechunk", reason="the icechunk extra is missing: pip install '.[icechunk]'")
distributed = pytest.importorskip("distributed", reason="dask[distributed] is in the test extra")

import dask.array as da  # noqa: E402

import tinystore  # noqa: E402
from tinystore.demo_cluster import JobSummary, run_jobs, simulate  # noqa: E402

_names = itertools.count()


@pytest.mark.slow
def test_forty_jobs_on_four_worker_processes_write_one_store(s3_server):
    url = f"s3://{s3_server['bucket']}/cluster-{next(_names)}/project.icechunk"
    with (
        distributed.LocalCluster(
            n_workers=4,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert run_jobs(client, url, n_jobs=40) == list(range(40))
        pids = client.run(lambda: __import__("os").getpid())
        assert len(set(pids.values())) == 4

        # every job is there, once, each in a commit of its own
        history = tinystore.history(url)
        jobs = [s for s in history if s.message.startswith("job ")]
        assert sorted(s.message for s in jobs) == sorted(f"job {i}" for i in range(40))
        assert all(s.changed == (f"jobs/{s.message.split()[1]}",) for s in jobs)

        with tinystore.open(url, "r") as s:
            assert sorted(s["jobs"], key=int) == [str(i) for i in range(40)]
            assert "summary" in s.tree("jobs/7")
            # a partial load: one job's dataclass, one column of its table
            expected = simulate(7)
            assert s["jobs/7/summary"] == expected["summary"]
            assert isinstance(s["jobs/7/summary"], JobSummary)
        energy = tinystore.load(url, path="jobs/7/table/energy_eV")
        pd.testing.assert_series_equal(energy, expected["table"]["energy_eV"])

        # a stored array as a dask array, read chunk by chunk by the workers
        with tinystore.open(url, "r") as s:
            lazy = da.from_zarr(s.zarr_array("jobs/12/forces"))
        forces = simulate(12)["forces"]
        assert lazy.shape == forces.shape
        assert np.isclose(client.compute(lazy.sum()).result(), forces.sum())
        np.testing.assert_array_equal(lazy[5].compute(), forces[5])
