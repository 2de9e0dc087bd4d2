"""The command-line tool: every command, its output and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
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
    assert "2 nodes read (2 leaves, 16,000 bytes), 0 damaged" in capsys.readouterr().out
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
    assert result.stdout.count("identical to the original (with the update)") == 2
    assert (tmp_path / "md_job.h5").exists() and (tmp_path / "md_job.json").is_dir()
    assert f"The demo files are in {tmp_path}" in result.stdout


def test_demo_under_python_O_prints_the_tree_once_and_cleans_up(tmp_path):
    result = subprocess.run(
        [sys.executable, "-O", "-m", "tinystore", "demo"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=child_env(TMPDIR=str(tmp_path)),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("identical to the original (with the update)") == 2  # checked, not asserted
    assert out.count("storable  tinystore.demo.Simulation") == 1  # the tree, once
    assert "warm" in out and "first save" in out  # warm timings, first use apart
    for engine in ("pickle", "hdf5", "json"):
        assert any(line.split()[:1] == [engine] and "ms" in line for line in out.splitlines())
    assert list(tmp_path.iterdir()) == []  # the temporary folder is gone


def test_demo_reports_a_wrong_load(tmp_path, monkeypatch, capsys):
    from tinystore import demo

    real_load = tinystore.load

    def damaged_load(filename, **kw):
        job = real_load(filename, **kw)
        if filename.suffix == ".json" and not kw:
            job.final_forces = job.final_forces.astype("float32")
        return job

    monkeypatch.setattr(demo.tinystore, "load", damaged_load)
    assert demo.run(str(tmp_path), repeat=1) == 1
    out = capsys.readouterr().out
    assert "hdf5  temperature_K = 350.0; identical" in out
    assert "json  temperature_K = 350.0; DIFFERENT" in out and "final_forces" in out


def test_demo_differences_are_real():
    from tinystore.demo import differences, make_job

    a, b = make_job(atoms=16), make_job(atoms=16)
    assert differences(a, b) == []
    assert differences(a, a) == ["the loaded job is the original object, not a copy"]
    b.structure.positions = np.asfortranarray(b.structure.positions)
    assert differences(a, b) == ["structure.positions: memory order differs"]
    b = make_job(atoms=16)
    b.parameters = dict(reversed(list(b.parameters.items())))
    assert differences(a, b)[0].startswith("parameters")
    b = make_job(atoms=16)
    b.results = b.results.astype({"converged": "int64"})
    assert differences(a, b) == ["results: the DataFrame differs"]
    b = make_job(atoms=16)
    b.structure.pbc = [True, True, True]
    assert differences(a, b)[0].startswith("structure.pbc")


# -- scripts, pipes and progress ----------------------------------------------------------------
def test_json_output_of_ls_tree_show(stored, capsys):
    assert main(["ls", str(stored), "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    by_name = {entry["name"]: entry for entry in listing}
    assert set(by_name) == {"positions", "params", "f"}
    assert by_name["positions"]["shape"] == [50, 3] and by_name["positions"]["dtype"] == "float64"
    assert by_name["positions"]["type"] == "numpy.ndarray"
    assert by_name["params"]["kind"] == "dict" and by_name["params"]["children"] == 1

    assert main(["tree", str(stored), "--json", "--depth", "1"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["path"] == "" and {n["name"] for n in tree["nodes"]} == set(by_name)
    params = next(n for n in tree["nodes"] if n["name"] == "params")
    assert "nodes" not in params  # depth 1: the children of params are not listed
    assert main(["tree", str(stored), "--json"]) == 0
    tree = json.loads(capsys.readouterr().out)
    params = next(n for n in tree["nodes"] if n["name"] == "params")
    assert [n["name"] for n in params["nodes"]] == ["T"]

    assert main(["show", str(stored), "params/T", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == "/params/T" and shown["preview"] == "300.0"
    assert main(["show", str(stored), "", "--json"]) == 0
    assert "numpy" in json.loads(capsys.readouterr().out)["versions"]


def test_json_tree_says_how_many_children_it_left_out(tmp_path, capsys):
    fn = tmp_path / "many.h5"
    tinystore.save({f"k{i}": i for i in range(30)}, fn)
    assert main(["tree", str(fn), "--json", "--max-children", "5"]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert len(tree["nodes"]) == 5 and tree["more"] == 25


def test_a_closed_pipe_is_quiet_and_exits_0(tmp_path):
    fn = tmp_path / "big.h5"
    tinystore.save({f"key{i}": {"x": i, "y": [i, i]} for i in range(3000)}, fn)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinystore", "tree", str(fn)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=child_env(),
    )
    first = proc.stdout.readline()  # like `| head -1`: read one line, then go away
    proc.stdout.close()
    stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert first and stderr == b""


def _convert_with_stderr(src, dst, stderr, tmp_path):
    return subprocess.run(
        [sys.executable, "-m", "tinystore", "convert", str(src), str(dst)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        cwd=tmp_path,
        env=child_env(),
        timeout=120,
    )


def test_progress_is_not_written_to_a_pipe_or_file(stored, tmp_path):
    log = tmp_path / "err.log"
    with open(log, "wb") as err:
        proc = _convert_with_stderr(stored, tmp_path / "c1.json", err, tmp_path)
    assert proc.returncode == 0 and log.read_bytes() == b""
    proc = _convert_with_stderr(stored, tmp_path / "c2.json", subprocess.PIPE, tmp_path)
    assert proc.returncode == 0 and proc.stderr == b""
    # the summary counts leaves and bytes, not just top-level nodes
    assert b"1,200 bytes" in proc.stdout or b"bytes" in proc.stdout


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_on_a_terminal_counts_bytes(tmp_path):
    src = tmp_path / "src.h5"
    tinystore.save({f"a{i}": np.zeros(100_000) for i in range(5)}, src)
    master, slave = os.openpty()
    try:
        proc = _convert_with_stderr(src, tmp_path / "dst.json", slave, tmp_path)
    finally:
        os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    assert proc.returncode == 0
    assert b"\rconvert: 0.00B" in seen  # a bar in bytes, cleared at the end
    assert b"5 leaves, 4,000,000 bytes" in proc.stdout


def test_convert_summary_counts_leaves_inside_objects(tmp_path, capsys):
    src = tmp_path / "one.h5"
    tinystore.save({"a": np.zeros(10), "b": {"c": np.ones(5), "d": "xy"}}, src)
    assert main(["convert", str(src), str(tmp_path / "one.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 leaves, 122 bytes" in out


def test_show_prints_values_and_metadata_not_internal_tags(tmp_path, capsys):
    import datetime
    from decimal import Decimal

    fn = tmp_path / "p.json"
    with tinystore.open(fn, "w") as s:
        job = s.create_group("job")
        job.attrs["status"] = "done"
        job["when"] = datetime.datetime(2024, 5, 1, 12, 30)
        job["price"] = Decimal("1.25")
    for path, expected in [
        ("job", "metadata: {'status': 'done'}"),
        ("job/when", "value:    2024-05-01 12:30:00"),
        ("job/price", "value:    1.25"),
    ]:
        assert main(["show", str(fn), path]) == 0
        out = capsys.readouterr().out
        assert expected in out
        assert "'t'" not in out and "@" not in out and "reduce internals" not in out
        assert main(["show", str(fn), path, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert "t" not in data and data["path"] == "/" + path


def test_counts_are_worded_for_people(tmp_path, capsys):
    """One node is "1 node"; counts have thousands separators (as bytes do)."""
    src, dst = tmp_path / "one.h5", tmp_path / "one.json"
    tinystore.save([{"i": i} for i in range(1500)], src)
    assert main(["convert", "--quiet", str(src), str(dst)]) == 0
    assert "copied 1 node (1,500 leaves, " in capsys.readouterr().out
    assert main(["verify", "--quiet", str(dst)]) == 0
    assert "1 node read (1,500 leaves, " in capsys.readouterr().out


def test_ls_and_json_list_what_tree_lists(filename, capsys):
    """A DataFrame's children are its columns by name in ``ls`` and ``--json``
    too, as in the text tree (not its stored layout: index, columns, data)."""
    if filename.startswith("memory://"):
        pytest.skip("the CLI opens files")
    frame = pd.DataFrame({"energy": [1.5, 2.5], "label": ["a", "b"]})
    tinystore.save({"table": frame, "s": frame["energy"]}, filename)
    assert main(["ls", filename, "table"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["energy", "label"]
    assert "column 'energy'  float64  2 rows" in listed[0]
    assert main(["ls", "--json", filename, "table"]) == 0
    assert [n["path"] for n in json.loads(capsys.readouterr().out)] == [
        "table/energy",
        "table/label",
    ]
    assert main(["tree", "--json", filename]) == 0
    tree = {n["name"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    assert [n["name"] for n in tree["table"]["nodes"]] == ["energy", "label"]
    assert (
        tree["table"]["children"] == 2 and tree["s"]["children"] == 0 and tree["s"]["nodes"] == []
    )


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for command in ("ls", "tree", "show", "convert", "verify", "demo"):
        assert command in out


def test_show_of_a_group_has_no_empty_lines(tmp_path, capsys):
    fn = tmp_path / "g.h5"
    with tinystore.open(fn, "w") as s:
        s.create_group("jobs")["x"] = 1
    assert main(["show", str(fn), "jobs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.split(":", 1)[1].strip() for line in lines)
