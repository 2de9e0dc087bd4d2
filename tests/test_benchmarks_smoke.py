"""The benchmark script runs end to end (tiny sizes, one sample): it runs, not how fast."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "run.py")
WORKLOADS = [
    ("a", "small-dict"),
    ("b", "dataclass-arrays"),
    ("c", "objects"),
    ("d", "dataframe"),
    ("e", "tuples"),
    ("f", "nested"),
    ("g", "partial-load"),
    ("h", "partial-update"),
    ("i", "browse"),
]
ALWAYS = ["ts.memory", "ts.hdf5", "ts.json", "pickle"]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "smoke.json"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--json", str(out)],
        capture_output=True,
        check=False,
        text=True,
        cwd=str(tmp_path_factory.getbasetemp()),  # works from anywhere
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_every_workload_has_a_row_per_engine(smoke_run):
    stdout, data = smoke_run
    engines = data["environment"]["engines"]
    assert set(ALWAYS) <= set(engines)
    for letter, name in WORKLOADS:
        for engine in engines:
            row = re.compile(
                rf"^\({letter}\) {re.escape(name)}\s+{re.escape(engine)}\b", re.MULTILINE
            )
            assert row.search(stdout), f"no row for ({letter}) {name} / {engine}"
    cells = {(r["workload"], r["engine"]): r for r in data["results"]}
    assert len(cells) == len(WORKLOADS) * len(engines)


def test_tinystore_and_pickle_measure_every_workload(smoke_run):
    _, data = smoke_run
    for r in data["results"]:
        if r["engine"] not in ALWAYS:
            continue  # optional engines may time out or be n/a
        assert r["status"] == "ok", r
        if r["letter"] in "abcdef":
            assert r["save_s"] > 0 and r["load_s"] > 0 and r["size_bytes"] > 0, r
        else:
            assert r["op_s"] > 0, r
        if r["engine"] != "pickle":
            assert r["ratios"], r


def test_peak_memory_and_targets_are_reported(smoke_run):
    stdout, data = smoke_run
    assert "Peak memory while saving (b)" in stdout
    assert "Targets of issues 6 and 19" in stdout
    measured = {row["engine"]: row for row in data["peak_memory"]}
    for engine in ALWAYS:
        assert measured[engine]["tracemalloc_peak_bytes"] >= 0
    assert {t["engine"] for t in data["targets"]} == {"ts.memory", "ts.hdf5", "ts.json"}


def test_only_selects_workloads_and_engines(capsys):
    sys.path.append(ROOT)  # after site-packages: only `benchmarks` comes from the checkout
    try:
        from benchmarks import run
    finally:
        sys.path.remove(ROOT)
    result = run.main(["--smoke", "--only", "a,json", "--only", "partial-load"])
    rows = {(r["letter"], r["engine"]) for r in result["results"]}
    assert rows == {(w, e) for w in "ag" for e in ("ts.json", "pickle")}
    assert result["peak_memory"] == []
    assert result["assignments"] == []
    assert "(g) partial-load" in capsys.readouterr().out


def _smoke(script: str, out) -> subprocess.CompletedProcess:
    """Run ``benchmarks/<script> --smoke --json out`` from out's folder; it succeeds."""
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", script), "--smoke", "--json", str(out)],
        capture_output=True,
        check=False,
        text=True,
        cwd=str(out.parent),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_zarr_benchmark_compares_with_plain_zarr_and_counts_requests(tmp_path):
    pytest.importorskip("zarr", reason="the zarr extra is not installed")
    pytest.importorskip("moto.server", reason="moto[server] is in the test extra")
    out = tmp_path / "zarr.json"
    _smoke("zarr_bench.py", out)
    rows = json.loads(out.read_text())["rows"]
    assert {r["target"] for r in rows} == {"local", "s3"}
    for r in rows:
        assert r["tinystore"]["requests"] > 0 and r["zarr"]["requests"] > 0
        if r["operation"].startswith("browse"):  # one request, where zarr needs one per node
            assert r["tinystore"]["requests"] <= 2 < r["zarr"]["requests"]


def test_checksum_benchmark_reports_the_cost_of_checking(tmp_path):
    out = tmp_path / "checksums.json"
    proc = _smoke("checksum_cost.py", out)
    rows = json.loads(out.read_text())
    assert {r["backend"] for r in rows} == {"HDF5", "JSON"}
    assert {r["file"].rstrip(" *") for r in rows} >= {
        "one 8 MB float64 array",
        "10 arrays of 800 KB",
    }
    for r in rows:
        assert r["checked"] > 0 and r["unchecked"] > 0 and "cost" in r
    assert "cost" in proc.stdout


@pytest.mark.slow
def test_the_icechunk_benchmark_runs_and_loses_no_commit(tmp_path):
    pytest.importorskip("icechunk", reason="the icechunk extra is missing")
    out = tmp_path / "ice.json"
    proc = _smoke("icechunk_bench.py", out)
    data = json.loads(out.read_text())
    assert [row["writers"] for row in data["commits"]] == [1, 2]
    assert all(row["missing"] == 0 and row["commits"] == row["saves"] for row in data["commits"])
    assert set(data["small_save_ms"]) == {"local", "s3"}
    assert "commits per second" in proc.stdout and "a small save" in proc.stdout


def test_single_assignments_are_measured_against_h5py(smoke_run):
    stdout, data = smoke_run
    assert "Single operations in an open store" in stdout
    rows = {r["engine"]: r for r in data["assignments"]}
    assert set(rows) == {"ts.memory", "ts.hdf5", "ts.json", "h5py (raw)"}
    for row in rows.values():
        for key in ("write", "read", "read_new_handle"):
            assert row[key] > 0 and row[key + "_x_raw"] > 0
        assert re.search(rf"^{re.escape(row['engine'])}\s", stdout, re.MULTILINE)
    targets = {(t["target"], t["engine"]) for t in data["targets"]}
    for engine in ("ts.hdf5", "ts.json"):
        assert ("one assignment in an open store <= 3x h5py", engine) in targets


def test_real_objects_tier_runs_on_what_is_installed(capsys):
    sys.path.append(ROOT)
    try:
        from benchmarks import real_objects
    finally:
        sys.path.remove(ROOT)
    rows = real_objects.main(["--smoke"])
    out = capsys.readouterr().out
    for row in rows:
        assert row["save_load_s"] > 0 and row["size"] > 0
        assert f"{row['object']:<22} {row['engine']:<11}" in out
    measured = {row["object"] for row in rows}
    skipped = out.split("skipped (not installed): ")[-1].split("\n")[0].split(", ")
    assert measured | (set(skipped) if "skipped" in out else set()) == set(real_objects.OBJECTS)
