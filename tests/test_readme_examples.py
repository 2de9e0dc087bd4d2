"""The README's examples of reading files without tinystore, slicing and
time travel, run as written (the rest of the README is held by the tests
of each feature)."""

import numpy as np
import pytest

import tinystore


@pytest.fixture
def project(tmp_path):
    path = str(tmp_path / "project.h5")
    with tinystore.open(path) as s:
        s.create_group("jobs/relax")
        s["jobs/relax/output"] = {"forces": np.ones((5, 3)), "energy": np.arange(100.0)}
        s["frames"] = np.arange(1000.0).reshape(100, 10)
    return path


def test_h5py_reads_an_array_at_its_logical_path(project):
    h5py = pytest.importorskip("h5py")
    with h5py.File(project, "r") as f:
        forces = f["jobs/relax/output/forces"][...]
    assert forces.dtype == np.float64 and np.array_equal(forces, np.ones((5, 3)))


def test_xarray_opens_a_group_of_arrays(project):
    xarray = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    with xarray.open_dataset(project, group="jobs/relax/output", engine="h5netcdf") as ds:
        assert np.array_equal(ds["forces"].values, np.ones((5, 3)))
        assert np.array_equal(ds["energy"].values, np.arange(100.0))


def test_slices_as_the_readme_writes_them(project):
    expected = np.arange(1000.0).reshape(100, 10)[0:10]
    with tinystore.open(project, "r") as s:
        assert np.array_equal(s.node("frames")[0:10], expected)
    assert np.array_equal(tinystore.load(project, path="frames", slice=(slice(0, 10),)), expected)


def test_history_tag_and_version_as_the_readme_writes_them(tmp_path):
    pytest.importorskip("icechunk")
    url = str(tmp_path / "scan.icechunk")
    tinystore.save({"e": 1.0}, url, path="jobs/17", message="relaxed, 450 eV")
    newest = tinystore.history(url)[0]
    assert newest.message == "relaxed, 450 eV" and newest.changed == ("jobs/17",)
    assert newest.id and newest.time
    tinystore.tag(url, "paper-v1")
    tinystore.save({"e": 2.0}, url, path="jobs/17")
    assert tinystore.load(url, path="jobs/17", version="paper-v1") == {"e": 1.0}
    assert tinystore.load(url, path="jobs/17") == {"e": 2.0}
