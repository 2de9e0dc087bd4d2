"""Checksums: every record and external leaf carries one; damage is found and named."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from conftest import FILE_BACKENDS
from helpers.crafting import (
    external_file_span,
    flip_byte,
    read_record,
    write_external,
    write_record,
)

import tinystore
from tinystore.cli import main
from tinystore.errors import CorruptStoreError
from tinystore.storage.checksum import Sum64, leaf_sum, sum64

FORCES = np.random.default_rng(3).random((500, 3))


def _populate(filename):
    with tinystore.open(filename, "w") as s:
        s["runs/a/forces"] = FORCES
        s["runs/a/energy"] = 12345.25
        s["blob"] = b"\x01" * 5000
        s["steps"] = list(range(10))


def _external(filename, gpath, key):
    doc = orjson.loads(read_record(filename, gpath))
    return doc["nodes"][0]["c"][key]


def _gpath(filename):
    """The physical group of runs/a (names are the backend's)."""
    root = orjson.loads(read_record(filename, ()))
    runs = root["nodes"][0]["c"]["runs"]["G"]
    a = orjson.loads(read_record(filename, (runs,)))["nodes"][0]["c"]["a"]["G"]
    return (runs, a)


def test_records_and_leaves_carry_checksums(filename):
    _populate(filename)
    gpath = _gpath(filename)
    entry = _external(filename, gpath, "forces")
    assert entry["h"] == leaf_sum(FORCES)
    assert _external(filename, (), "blob")["h"] == sum64(b"\x01" * 5000)
    for record in (read_record(filename, ()), read_record(filename, gpath)):
        body, tail = record.rsplit(b',"h":"', 1)
        assert tail.rstrip(b"\n") == sum64(body).encode() + b'"}'


def test_a_flipped_byte_in_array_data_is_found_and_named(filename, capsys):
    _populate(filename)
    gpath = _gpath(filename)
    name = _external(filename, gpath, "forces")["X"]
    damaged = FORCES.copy()
    damaged.reshape(-1).view(np.uint8)[1234] ^= 0x10
    write_external(filename, gpath, name, damaged, in_place=True)
    with pytest.raises(CorruptStoreError, match=f"{name}.*damaged.*checksum"):
        tinystore.load(filename, path="runs/a/forces")
    assert tinystore.load(filename, path="runs/a/energy") == 12345.25  # the rest loads
    # a slice reads part of the array: it has no checksum to check
    part = tinystore.load(filename, path="runs/a/forces", slice=np.s_[50:52])
    assert np.array_equal(part, damaged[50:52]) and not np.array_equal(part, FORCES[50:52])
    if "://" not in filename:
        assert main(["verify", filename, "--quiet"]) == 1
        out = capsys.readouterr().out
        assert "DAMAGED /runs/a/forces" in out and "1 damaged" in out


@pytest.mark.parametrize("backend", FILE_BACKENDS)
@pytest.mark.parametrize("where", [0.0, 0.5, 0.999])
def test_a_flipped_byte_on_disk_is_found_and_named(filename, backend, where, capsys):
    """One byte of the stored array, flipped in the file itself (zarr: in a
    compressed chunk, which then decodes wrong or not at all)."""
    _populate(filename)
    gpath = _gpath(filename)
    name = _external(filename, gpath, "forces")["X"]
    path, offset, size = external_file_span(filename, gpath, name)
    flip_byte(path, offset + int(where * size))
    with pytest.raises(CorruptStoreError, match=f"{name}.*/runs/a.*(damaged|cannot be read)"):
        tinystore.load(filename, path="runs/a/forces")
    assert tinystore.load(filename, path="runs/a/energy") == 12345.25
    assert main(["verify", filename, "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED /runs/a/forces" in out and "1 damaged" in out


def test_a_flipped_byte_in_a_record_is_found_and_named(filename, capsys):
    _populate(filename)
    gpath = _gpath(filename)
    record = read_record(filename, gpath)
    assert record.count(b"12345.25") == 1
    write_record(filename, gpath, record.replace(b"12345.25", b"12345.35"))  # still valid JSON
    with pytest.raises(CorruptStoreError, match="'/runs/a'.*checksum"):
        tinystore.load(filename, path="runs/a/energy")
    assert tinystore.load(filename, path="steps") == list(range(10))
    if "://" not in filename:
        assert main(["verify", filename, "--quiet"]) == 1
        out = capsys.readouterr().out
        assert "DAMAGED /runs/a" in out and "checksum" in out


def _strip_checksums(filename, gpath):
    doc = orjson.loads(read_record(filename, gpath))
    doc.pop("h")
    for node in doc["nodes"]:
        for entry in (node.get("c") or {}).values():
            if type(entry) is dict:
                entry.pop("h", None)
    write_record(filename, gpath, doc)


def test_files_without_checksums_load_and_verify(filename, capsys):
    _populate(filename)
    gpath = _gpath(filename)
    for g in ((), gpath[:1], gpath):
        _strip_checksums(filename, g)
    assert np.array_equal(tinystore.load(filename, path="runs/a/forces"), FORCES)
    with tinystore.open(filename, "r") as s:
        assert s["blob"] == b"\x01" * 5000
        assert len(s.unchecked) == 2  # the records and leaves read: the root, the blob
    if "://" not in filename:
        assert main(["verify", filename, "--quiet"]) == 0
        out = capsys.readouterr().out
        assert "no checksum: leaf" in out and "5 without a checksum" in out


def test_sum64_sees_any_single_flipped_byte():
    data = bytearray(np.random.default_rng(4).bytes(1003))
    reference = sum64(bytes(data))
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            data[i] ^= bit
            assert sum64(bytes(data)) != reference
            data[i] ^= bit
    assert sum64(bytes(data)) == reference
    assert sum64(bytes(data) + b"\x00") != reference  # the length counts


def test_checksums_of_arrays_in_either_order_and_non_contiguous():
    a = np.arange(60.0).reshape(6, 10)
    assert leaf_sum(np.asfortranarray(a), "F") == sum64(a.tobytes("F"))
    assert leaf_sum(a[::2, ::3], "C") == sum64(a[::2, ::3].tobytes())
    assert leaf_sum(np.zeros(3, "i4,f8")) is None  # padding bytes need not survive HDF5


def test_sum64_a_piece_at_a_time_is_sum64_of_the_whole():
    data = np.random.default_rng(7).bytes(1003)
    for cuts in ([], [3], [1, 2, 3, 500], [8, 16, 1000], [5, 13, 21, 1002]):
        summer, start = Sum64(), 0
        for cut in [*cuts, len(data)]:
            summer.update(data[start:cut])
            start = cut
        assert summer.hexdigest() == sum64(data) and summer.length == len(data)
    assert Sum64().hexdigest() == sum64(b"")


def test_json_sums_an_array_while_reading_it(tmp_path, monkeypatch):
    """The checksum of a .npy leaf is taken piece by piece as it is read (no
    second pass): it is what the record holds, and it alone decides."""
    from tinystore.storage import jsondir

    monkeypatch.setattr(jsondir, "PIECE", 4096)  # many pieces, the last one short
    folder = tmp_path / "run.json"
    data = np.random.default_rng(8).random(10_001)
    tinystore.save({"x": data}, folder)
    with tinystore.open(folder, "r") as s:
        entry = orjson.loads(read_record(str(folder), ()))["nodes"][0]["c"]["x"]
        physical = s._store.physical
        value, summed = physical.read_external_summed((), entry["X"], entry)
        assert summed == entry["h"] and np.array_equal(value, data)
        checked = []
        monkeypatch.setattr(
            "tinystore.storage.record.transactions.leaf_sum",
            lambda *a: checked.append(a) or "0" * 16,
        )
        assert np.array_equal(s["x"], data) and checked == []  # never summed again
