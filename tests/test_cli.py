"""The command-line tool: every command, its output and exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinystore
from tinystore.cli import main

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402


@pytest.fixture
def stored(tmp_path):
    fn = tmp_path / "run.h5"
    tinystore.save({"positions": np.zeros((50, 3)), "params": {"T": 300.0}, "f": np.add}, fn)
    return fn


def test_ls_tree_show(stored, capsys):
    assert main(["ls", str(stored)]) == 0
    out = capsys.readouterr().out
    assert "positions\tleaf  numpy.ndarray  float64 (50, 3)" in out
    assert main(["tree", str(stored), "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "params  dict" in out and "T" not in out
    assert main(["show", str(stored), "positions"]) == 0
    out = capsys.readouterr().out
    assert "shape:    (50, 3)" in out and "dtype:    float64" in out
    assert main(["show", str(stored), "params/T"]) == 0
    assert "value:    300.0" in capsys.readouterr().out
    assert main(["show", str(stored), ""]) == 0
    assert "version:  numpy" in capsys.readouterr().out


def test_errors_have_exit_codes(stored, tmp_path, capsys):
    assert main(["tree", str(tmp_path / "missing.h5")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["show", str(stored), "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"not hdf5 at all")
    assert main(["ls", str(bad)]) == 1
    assert "not an HDF5 file" in capsys.readouterr().err


@pytest.mark.parametrize("dst_name", ["copy.json", "copy.h5"])
def test_convert_is_exact(stored, tmp_path, dst_name, capsys):
    dst = tmp_path / dst_name
    assert main(["convert", str(stored), str(dst), "--quiet"]) == 0
    a, b = tinystore.load(stored), tinystore.load(dst)
    assert a.keys() == b.keys() and b["f"] is np.add
    assert np.array_equal(a["positions"], b["positions"])
    assert main(["convert", str(stored), str(dst), "--quiet"]) == 1  # refuses to overwrite


def test_convert_groups_and_attrs(tmp_path):
    src = tmp_path / "project.json"
    with tinystore.open(src, "w") as s:
        s.attrs["title"] = "project"
        job = s.create_group("jobs/relax")
        job.attrs["status"] = "done"
        job["energy"] = -3.5
        s["jobs/relax/structure"] = {"cell": np.eye(3)}
    dst = tmp_path / "project.h5"
    assert main(["convert", str(src), str(dst), "--quiet"]) == 0
    with tinystore.open(dst, "r") as s:
        assert s.attrs["title"] == "project"
        assert s["jobs/relax"].attrs["status"] == "done"
        assert s["jobs/relax/energy"] == -3.5
        assert np.array_equal(s["jobs/relax/structure"]["cell"], np.eye(3))


def test_verify_reports_damage(tmp_path, capsys):
    fn = tmp_path / "store.json"
    with tinystore.open(fn, "w") as s:
        s["good"] = {"x": np.arange(1000)}
        s["bad"] = {"y": np.arange(1000)}
    assert main(["verify", str(fn)]) == 0
    assert "2 nodes read, 0 damaged" in capsys.readouterr().out
    (npy,) = (fn / "bad").glob("*.npy")
    npy.write_bytes(b"garbage")
    assert main(["verify", str(fn)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED /bad" in out and "1 damaged" in out


def test_module_entry_point_runs_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tinystore", "demo", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "full load equals the original: yes" in result.stdout
    assert (tmp_path / "md_job.h5").exists() and (tmp_path / "md_job.json").is_dir()
