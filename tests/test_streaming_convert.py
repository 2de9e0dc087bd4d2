"""convert streams: memory holds one big leaf at a time, not the file."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
from conftest import HAVE_ZARR

import tinystore
import tinystore.cli

pytest.importorskip("resource")

LEAF = 1_250_000  # float64 items: 10 MB
N = 20  # 200 MB in all

MEASURE = r"""
import resource, sys
sys.path.insert(0, sys.argv[1])
import tinystore
import tinystore.cli
from tinystore.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = main(["convert", sys.argv[2], sys.argv[3], "--quiet"])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(code, (after - before) * 1024)
"""


def _big_file(filename):
    with tinystore.open(filename, "w") as s:
        s["run"] = {"frames": [None] * N, "step": 7}  # one object of 200 MB...
        for i in range(N):  # ...filled in one array at a time
            s[f"run/frames/{i}"] = np.full(LEAF, float(i))
        s["group/x"] = np.arange(1000.0)


PAIRS = [("big.h5", "big.json"), ("big.json", "big.h5")]
if HAVE_ZARR:  # zarr both ways: a source and a destination
    PAIRS += [("big.h5", "big.zarr"), ("big.zarr", "big.json")]


@pytest.mark.parametrize("src, dst", PAIRS)
def test_converting_200_mb_needs_far_less_memory(tmp_path, src, dst):
    if not src.endswith(".h5"):
        _big_file(tmp_path / "seed.h5")
        tinystore.cli.main(["convert", str(tmp_path / "seed.h5"), str(tmp_path / src), "--quiet"])
    else:
        _big_file(tmp_path / src)
    checkout = os.path.dirname(os.path.dirname(tinystore.__file__))
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, checkout, str(tmp_path / src), str(tmp_path / dst)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    code, extra = int(out[-2]), int(out[-1])
    assert code == 0
    assert extra < 60 * 2**20, f"{extra / 2**20:.0f} MB more at the peak"
    for i in (0, N - 1):
        got = tinystore.load(tmp_path / dst, path=f"run/frames/{i}")
        assert pickle.dumps(got) == pickle.dumps(np.full(LEAF, float(i)))
    assert tinystore.load(tmp_path / dst, path="run/step") == 7
    assert np.array_equal(tinystore.load(tmp_path / dst, path="group/x"), np.arange(1000.0))


def test_a_root_object_is_copied_leaf_by_leaf(tmp_path):
    obj = {"a": [np.arange(10000.0), {"b": b"x" * 5000, "c": 1}], "t": (np.zeros((100, 100)), "s")}
    tinystore.save(obj, tmp_path / "a.h5")
    assert tinystore.cli.main(["convert", str(tmp_path / "a.h5"), str(tmp_path / "b.json")]) == 0
    assert pickle.dumps(tinystore.load(tmp_path / "b.json")) == pickle.dumps(obj)


def test_keys_a_path_cannot_name_are_copied_whole(tmp_path):
    obj = {"a/b": np.arange(10000.0), "@x": [np.arange(5000.0)], "": np.ones(4000), "k": 1}
    tinystore.save(obj, tmp_path / "a.h5")
    assert tinystore.cli.main(["convert", str(tmp_path / "a.h5"), str(tmp_path / "b.json")]) == 0
    assert pickle.dumps(tinystore.load(tmp_path / "b.json")) == pickle.dumps(obj)
