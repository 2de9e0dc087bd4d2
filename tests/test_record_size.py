"""docs/format.rst, "Size and inspectability": what keeps records small and
what stays readable, checked on the record bytes of the JSON and HDF5 backends."""

from __future__ import annotations

import base64
import json
import os
import pickle
import struct
import sys
from pathlib import Path

import h5py
import pytest

import tinystore

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
sys.path.insert(0, str(Path(__file__).parent / "helpers"))


class Sample:
    def __init__(self, label, mass_in_amu, charge):
        self.label = label
        self.mass_in_amu = mass_in_amu
        self.charge = charge


@pytest.fixture(params=["hdf5", "json"])
def record_of(request, tmp_path):
    """Save a value, return the root record's text (as a reader sees it)."""

    def save_and_read(value):
        if request.param == "json":
            where = tmp_path / "store.json"
            tinystore.save(value, where)
            return (where / "@record.json").read_bytes()
        where = tmp_path / "store.h5"
        tinystore.save(value, where)
        with h5py.File(where, "r") as f:
            data = f["@record"][()]
        return data if isinstance(data, bytes) else data.tobytes()

    return save_and_read


def _json(record: bytes) -> dict:
    """The record as any JSON reader reads it (its text is UTF-8 JSON)."""
    return json.loads(record.decode("utf-8"))


def test_records_are_utf8_json_text(record_of):
    record = record_of({"energy": -1.5, "name": "Fe₂O₃", "steps": [1, 2, 3]})
    assert _json(record)["tinystore"][:1] == [1]
    assert "Fe₂O₃" in record.decode("utf-8")


def test_floats_are_written_shortest(record_of):
    values = [0.1, 1 / 3, 2.5e20, 1e-300, -0.0, 123456.789, 5e-324]
    # the number tokens exactly as written (json hands each float's text over)
    tokens: list[str] = []
    json.loads(record_of({"values": values}).decode("utf-8"), parse_float=tokens.append)
    assert [float(t) for t in tokens] == values
    # each one as Python's repr (an exponent may drop its "+"): no longer digit string
    assert [t.replace("e+", "e") for t in tokens] == [repr(f).replace("e+", "e") for f in values]


def test_a_class_path_is_written_once_per_record(record_of):
    # rows of different attributes: a node per row, the class path in the metadata table
    rows = [Sample(f"p{i}", float(i), i % 3) for i in range(40)]
    for i, row in enumerate(rows):
        row.__dict__[f"extra{i}"] = i
    record = record_of(rows)
    assert record.count(b"test_record_size:Sample") == 1


def test_attribute_names_of_a_table_are_written_once(record_of):
    rows = [Sample(f"p{i}", float(i), i % 3) for i in range(40)]
    record = record_of(rows)
    assert record.count(b"mass_in_amu") == 1
    assert record.count(b"test_record_size:Sample") == 1


def test_small_table_columns_are_base64_bytes_in_the_record(record_of):
    rows = [(i, i / 2, "a") for i in range(16)]
    record = _json(record_of(rows))
    blobs = []

    def walk(x):
        if isinstance(x, dict):
            if set(x) == {"B"}:
                blobs.append(base64.b64decode(x["B"]))
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(record["nodes"])
    assert struct.pack("<16d", *(i / 2 for i in range(16))) in blobs
    assert bytes(range(16)) in blobs  # the ints 0..15, one byte each (i1)


def test_records_are_not_compressed(record_of):
    record = record_of({f"key_{i:04d}": i * 1.5 for i in range(200)})
    assert b"key_0199" in record  # names readable in the bytes as written


def _pickled_size(value) -> int:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))  # (f) is 1,000 levels deep: so is pickle
    try:
        return len(pickle.dumps(value, protocol=5))
    finally:
        sys.setrecursionlimit(limit)


WORKLOADS = ["objects", "tuples", "small_dict", "nested", "browse_tree"]


@pytest.mark.parametrize("workload", WORKLOADS)
def test_benchmark_workloads_stay_within_one_and_a_half_pickle(tmp_path, workload):
    import workloads

    value = getattr(workloads, workload)(workloads.Sizes())
    pickled = _pickled_size(value)
    for name in ("store.h5", "store.json"):
        where = tmp_path / name
        tinystore.save(value, where)
        if where.is_dir():
            size = sum(f.stat().st_size for f in where.rglob("*") if f.is_file())
        else:
            size = os.path.getsize(where)
        assert size <= 1.5 * pickled, (name, size, pickled)


@pytest.mark.parametrize("backend", ["memory", "zarr"])
@pytest.mark.parametrize("workload", ["nested", "browse_tree"])
def test_records_of_nested_workloads_are_as_small_on_every_backend(workload, backend, filename):
    """(f) and (i) on the backends the benchmark does not measure: their
    records (all they hold) stay within 1.5x pickle too."""
    import workloads
    from conftest import HAVE_ZARR
    from crafting import read_record
    from objects_cases import assert_same_structure

    if backend == "zarr" and not HAVE_ZARR:
        pytest.skip("zarr is not installed")
    value = getattr(workloads, workload)(workloads.Sizes())
    tinystore.save(value, filename)
    assert len(read_record(filename)) <= 1.5 * _pickled_size(value)
    assert_same_structure(value, tinystore.load(filename), new=False)
