"""A new HDF5 file that holds nothing but its root record (``tinystore.save``
of an object without datasets into a new file) is written by tinystore
itself (:mod:`tinystore.storage.hdf5_image`), byte for byte as HDF5 writes it.

Proved here against HDF5 itself: the bytes for every record length around
every boundary of both layouts (compact: the 8-byte alignment of the data
and of the header, the compact limit, the file crossing 4 KiB pages;
contiguous: the compact limit, powers of two and multiples of 2048 and 4096
around them, where the record or the file ends, up to the longest record
imaged) and for random lengths and contents; files saved either way are
equal, then updated by tinystore the same way into equal files, and read by
h5py, h5dump and tinystore's own reader.  Single assignments in an open
store go on rewriting its file as an image past the compact limit, and such a
rewrite killed or failing at any step leaves the old store or the new one.
What the fast path does not prove (a record over ``MAX_CONTIGUOUS_BYTES``, an
array dataset) is written by HDF5 as before.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinystore
from tinystore.storage import hdf5, hdf5_image, hdf5_records

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from hdf5_files import made_by_hdf5  # noqa: E402

LIMIT = hdf5.COMPACT_RECORD_BYTES
CAP = hdf5_image.MAX_CONTIGUOUS_BYTES
#: every length around every boundary: the 8-byte alignment of the layout
#: message (4 + n) and of the header (n), the file's end crossing 1, 2, 4 and
#: 8 KiB, and the compact limit
_EDGES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 67, 100, 255, 256, 257]
_EDGES += [n + d for n in (320, 1344, 3392, 7488) for d in range(-9, 10)]
_EDGES += [n + d for n in (4096, 32768, LIMIT) for d in range(-9, 1)]
#: contiguous records: past the compact limit; the record (and the file, 2048
#: bytes longer) ending around powers of two and multiples of 2048 and 4096;
#: the longest record imaged
_POWERS = [1 << k for k in range(16, CAP.bit_length())]
_CONTIGUOUS_EDGES = [LIMIT + d for d in range(1, 10)] + [CAP - 1, CAP]
_CONTIGUOUS_EDGES += [
    p + k + d for p in _POWERS for k in (-4096, -2048, 0, 2048, 4096) for d in (-1, 0, 1)
]
_CONTIGUOUS_EDGES = sorted({n for n in _CONTIGUOUS_EDGES if n <= CAP})
#: contiguous records shorter than tinystore writes: the layout holds there too
_SHORT_CONTIGUOUS = [1, 7, 8, 9, 2047, 2048, 2049, 4095, 4096, 4097, LIMIT]


def _by_hdf5(folder, record: bytes) -> bytes:
    """The file HDF5 writes for ``record`` as the root record of a new file."""
    return made_by_hdf5(folder, record)


def _contiguous_by_hdf5(folder, record: bytes) -> bytes:
    """The file HDF5 writes for ``record`` (of any length) as the contiguous
    root record of a new file."""
    return made_by_hdf5(folder, record, contiguous=True)


def _record(n: int, seed: int = 0) -> bytes:
    return random.Random(seed * 100_003 + n).randbytes(n)


def _head() -> bytes:
    """The template learnt from this HDF5 (whether or not it is proven)."""
    head = hdf5_image.template(hdf5._empty_file_image(), hdf5.EMPTY_ROOT)
    if head is None:
        pytest.skip("this HDF5 lays new files out otherwise: it writes them all")
    return head


@functools.cache
def _learnt_contiguous() -> bytes | None:
    sample = hdf5._CONTIGUOUS_SAMPLE
    return hdf5_image.template(hdf5._file_by_hdf5(sample), sample)


def _contiguous_head() -> bytes:
    """The template of contiguous records learnt from this HDF5 (whether or
    not it is proven), as :func:`hdf5._root_template` learns it."""
    head = _learnt_contiguous()
    if head is None:
        pytest.skip("this HDF5 lays contiguous records out otherwise: it writes them all")
    return head


#: tinystore writes new files itself with this HDF5 (a proven one, not Windows)
needs_fast = pytest.mark.skipif(
    not hdf5._writes_new_files(), reason="HDF5 writes every new file here"
)


@pytest.mark.parametrize("n", _EDGES)
def test_bytes_are_hdf5s_at_every_boundary(tmp_path, n):
    record = _record(n)
    assert hdf5_image.image(_head(), record) == _by_hdf5(tmp_path, record)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, LIMIT), seed=st.integers(0, 2**32), fill=st.sampled_from([None, 0, 32]))
def test_bytes_are_hdf5s_for_random_records(tmp_path_factory, n, seed, fill):
    record = _record(n, seed) if fill is None else bytes([fill]) * n  # (NULs: kept whole)
    folder = tmp_path_factory.mktemp("h")
    assert hdf5_image.image(_head(), record) == _by_hdf5(folder, record)


@pytest.mark.parametrize("n", _CONTIGUOUS_EDGES)
def test_contiguous_bytes_are_hdf5s_at_every_boundary(tmp_path, n):
    record = _record(n)
    made = _by_hdf5(tmp_path, record)
    assert hdf5_image.image(_contiguous_head(), record) == made
    assert len(made) == 2048 + n and made.endswith(record)


@pytest.mark.parametrize("n", _SHORT_CONTIGUOUS)
def test_shorter_contiguous_records_are_hdf5s_too(tmp_path, n):
    record = _record(n, 1)
    assert hdf5_image.image(_contiguous_head(), record) == _contiguous_by_hdf5(tmp_path, record)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(LIMIT + 1, CAP), seed=st.integers(0, 2**32), fill=st.sampled_from([None, 0]))
def test_contiguous_bytes_are_hdf5s_for_random_records(tmp_path_factory, n, seed, fill):
    record = _record(n, seed) if fill is None else bytes([fill]) * n  # (NULs: kept whole)
    folder = tmp_path_factory.mktemp("h")
    assert hdf5_image.image(_contiguous_head(), record) == _by_hdf5(folder, record)


@needs_fast
def test_the_empty_file_is_hdf5s():
    assert hdf5._root_image(hdf5.EMPTY_ROOT) == hdf5._empty_file_image()


@needs_fast
def test_records_out_of_the_class_are_left_to_hdf5(tmp_path):
    for n in (0, CAP + 1, hdf5.MAX_RECORD_BYTES):
        assert not hdf5._imaged(n) and hdf5._root_image(b"x" * min(n, CAP + 1)) is None
    for n in (1, LIMIT, LIMIT + 1, CAP):
        assert hdf5._imaged(n)
        assert hdf5._root_image(b"x" * n) == _by_hdf5(tmp_path, b"x" * n), n
    with pytest.raises(ValueError):
        hdf5_image.image(_head(), b"x" * (hdf5_image.MAX_BYTES + 1))
    with pytest.raises(ValueError):
        hdf5_image.image(_contiguous_head(), b"x" * (CAP + 1))
    with pytest.raises(ValueError):
        hdf5_image.image(_contiguous_head(), b"")


def test_a_template_of_another_layout_is_refused():
    made, record = hdf5._empty_file_image(), hdf5.EMPTY_ROOT
    assert hdf5_image.template(made, record) == _head()
    assert hdf5_image.template(made, record + b"x") is None  # not the record it holds
    assert hdf5_image.template(made + bytes(8), record) is None  # bytes past the header
    for at in (20, 291, 300, 464, 496, 504):  # (superblock, link, messages, layout)
        changed = bytearray(made)
        changed[at] ^= 1
        assert hdf5_image.template(bytes(changed), record) is None, at
    assert hdf5_image.template(made[:500], record) is None


def test_a_contiguous_template_of_another_layout_is_refused():
    record = hdf5._CONTIGUOUS_SAMPLE
    made = hdf5._file_by_hdf5(record)
    assert hdf5_image.template(made, record) == _contiguous_head()
    assert hdf5_image.template(made, record[:-1] + b"x") is None  # not the record it holds
    assert hdf5_image.template(made, record + b"x") is None
    assert hdf5_image.template(made + bytes(8), record) is None  # bytes past the record
    assert hdf5_image.template(made[:-1], record[:-1]) is None  # (its length is in the header)
    assert hdf5_image.template(made[:2000], record) is None
    # (superblock, link, header's size, layout message's size, class and
    # address, the null message, the free-space manager's header and sections)
    for at in (20, 291, 300, 440, 498, 505, 507, 528, 530, 704, 786):
        changed = bytearray(made)
        changed[at] ^= 1
        assert hdf5_image.template(bytes(changed), record) is None, at


# -- through tinystore: the same files either way, and HDF5 not asked --------

SMALL = [
    {"a": 1, "b": [1, 2.5, "x"], "c": None},
    {f"k{i}": i for i in range(1000)},
    {},
    None,
    "é" * 7000,
    [(i, str(i)) for i in range(300)],
    "x" * (LIMIT - 200),  # a record close to the compact limit
    np.arange(8),  # an array small enough to stay in its record
]
#: objects whose record is contiguous, up to the longest imaged
LARGE = [
    {f"key{i}": f"value number {i}" for i in range(4000)},  # a record of ~100 KB
    "x" * (LIMIT - 10),  # a record just past the compact limit
    {f"k{i}": f"{i:08d}" * 8 for i in range(5000)},  # ~400 KB
    "y" * (CAP - 100),  # close to the longest imaged
]


def _save_both(tmp_path, monkeypatch, value, name="x", **options) -> tuple[str, str]:
    """``value`` saved into a new file without HDF5 (which must then not be
    asked to make one) and with it; the two files."""
    fast, slow = str(tmp_path / f"{name}-fast.h5"), str(tmp_path / f"{name}-hdf5.h5")
    hdf5._root_template(True)  # (learnt once a process, from a file HDF5 makes)
    with monkeypatch.context() as m:

        def refuse(path):
            raise AssertionError("HDF5 was asked to make the file")

        m.setattr(hdf5, "_create_file", refuse)
        tinystore.save(value, fast, **options)
    with monkeypatch.context() as m:
        m.setattr(hdf5, "WRITE_NEW_FILES", False)
        tinystore.save(value, slow, **options)
    return fast, slow


def _same(a: str, b: str) -> None:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        assert fa.read() == fb.read()


def _equal(got, value) -> None:
    if isinstance(value, np.ndarray):
        assert type(got) is np.ndarray and got.dtype == value.dtype
        np.testing.assert_array_equal(got, value)
    else:
        assert type(got) is type(value) and got == value


@needs_fast
@pytest.mark.parametrize("value", SMALL, ids=range(len(SMALL)))
def test_a_small_save_writes_hdf5s_bytes_without_hdf5(tmp_path, monkeypatch, value):
    fast, slow = _save_both(tmp_path, monkeypatch, value)
    _same(fast, slow)
    _equal(tinystore.load(fast), value)
    with h5py.File(fast, "r") as f:
        assert list(f) == ["@record"] and f["@record"].id.get_create_plist().get_layout() == 0
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) + s for p in (fast, slow) for s in ("", ".lock")
    )


def _record_of(path: str) -> bytes:
    with h5py.File(path, "r") as f:
        return f["@record"][()]


@needs_fast
@pytest.mark.parametrize("value", LARGE, ids=range(len(LARGE)))
def test_a_save_of_a_contiguous_record_writes_hdf5s_bytes_without_hdf5(
    tmp_path, monkeypatch, value
):
    fast, slow = _save_both(tmp_path, monkeypatch, value)
    _same(fast, slow)
    _equal(tinystore.load(fast), value)
    record = _record_of(fast)
    assert LIMIT < len(record) <= CAP
    with h5py.File(fast, "r") as f:
        assert list(f) == ["@record"]
        assert f["@record"].id.get_create_plist().get_layout() == h5py.h5d.CONTIGUOUS
    # tinystore's own reader reads it (as a load does, HDF5 not opened)
    assert hdf5_records.read_record(fast, (), b"@record", hdf5.MAX_RECORD_BYTES) == record


@needs_fast
def test_the_contiguous_template_is_learnt_once_from_hdf5(tmp_path, monkeypatch):
    made = []
    real = hdf5._create_file
    monkeypatch.setattr(hdf5, "_create_file", lambda path: made.append(path) or real(path))
    hdf5._root_template.cache_clear()
    try:
        tinystore.save({"a": 1}, str(tmp_path / "small.h5"))  # (the empty file: made before)
        assert made == []
        for i in range(3):
            tinystore.save(LARGE[0], str(tmp_path / f"large{i}.h5"))
        assert len(made) == 1 and not made[0].startswith(str(tmp_path))  # its own file
    finally:
        hdf5._root_template.cache_clear()
    _equal(tinystore.load(str(tmp_path / "large2.h5")), LARGE[0])


@needs_fast
def test_a_durable_small_save_is_on_the_disk_before_its_rename(tmp_path, monkeypatch):
    from tinystore.storage import journal

    monkeypatch.setattr(journal, "TRACE", [])
    fast, slow = _save_both(tmp_path, monkeypatch, {"a": 1}, durable=True)
    _same(fast, slow)
    trace = [t for t in journal.TRACE if fast in t[1] or fast in t[2]]
    tmp = fast + hdf5.NEW_SUFFIX
    renamed = trace.index(("rename", fast, tmp))
    assert ("fsync", tmp, "") in trace[:renamed]


@needs_fast
def test_what_the_fast_path_does_not_prove_is_left_to_hdf5(tmp_path, monkeypatch):
    made = []
    real = hdf5._create_file

    def counting(path):
        made.append(path)
        return real(path)

    monkeypatch.setattr(hdf5, "_create_file", counting)
    big = "x" * CAP  # a record over the longest imaged
    tinystore.save(big, str(tmp_path / "big.h5"))
    tinystore.save({"arr": np.arange(100.0)}, str(tmp_path / "arr.h5"))  # a dataset
    with tinystore.open(str(tmp_path / "group.h5")) as s:  # made empty (without HDF5)
        s["g"] = {"a": 1}  # then updated by HDF5
    assert len(made) == 2
    with monkeypatch.context() as m:
        m.setattr(hdf5, "WRITE_NEW_FILES", False)
        for name, value in [("big2", big), ("arr2", {"arr": np.arange(100.0)})]:
            tinystore.save(value, str(tmp_path / f"{name}.h5"))
    _same(str(tmp_path / "big.h5"), str(tmp_path / "big2.h5"))
    _same(str(tmp_path / "arr.h5"), str(tmp_path / "arr2.h5"))
    made.clear()
    tinystore.save({"a": 1}, str(tmp_path / "big.h5"))  # an existing file: updated in place
    assert tinystore.load(str(tmp_path / "big.h5")) == {"a": 1}
    with tinystore.open(str(tmp_path / "big.h5"), "w") as s:  # emptied in place
        s["b"] = 2
    assert tinystore.load(str(tmp_path / "big.h5"), path="b") == 2
    assert made == []


class _NoOpen:
    """``h5py.h5f`` for tinystore's HDF5 module, refusing to open a file."""

    def __getattr__(self, name):
        return getattr(h5py.h5f, name)

    def open(self, *args, **kwargs):
        raise AssertionError("HDF5 was asked to open the file")


@needs_fast
def test_single_assignments_past_the_compact_limit_go_on_without_hdf5(tmp_path, monkeypatch):
    """An open store's root record growing past the compact limit: the file
    is still rewritten whole as an image (see ``test_hdf5_rewrite.py``), now
    of a contiguous record, byte for byte HDF5's."""
    store = str(tmp_path / "s.h5")
    hdf5._root_template(True)  # (learnt once a process, from a file HDF5 makes)
    expected = {"pad": "p" * (LIMIT - 500)}
    with tinystore.open(store, "w") as s:
        s["pad"] = expected["pad"]
        monkeypatch.setattr(hdf5, "h5f", _NoOpen())
        for i in range(30):
            s[f"step{i}"] = expected[f"step{i}"] = {"i": i, "loss": 0.5 / (i + 1)}
            assert s[f"step{i}"] == expected[f"step{i}"]
    monkeypatch.undo()
    record = _record_of(store)
    assert len(record) > LIMIT
    with open(store, "rb") as f:
        assert f.read() == _by_hdf5(tmp_path, record)
    with tinystore.open(store, "r") as s:
        got = {key: s[key] for key in s}
    assert list(got) == list(expected) and got == expected


def _contents(store: str) -> dict:
    with tinystore.open(store, "r") as s:
        return {key: s[key] for key in s}


def _assign_list(store: str) -> None:
    with tinystore.open(store) as s:
        s["new"] = ["n", 2, 3.5]  # (kept in the root record)


@pytest.mark.slow
@needs_fast
@pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
@pytest.mark.parametrize("pad", [LIMIT - 100, LIMIT])  # (compact to contiguous; contiguous)
@pytest.mark.parametrize("action", ["kill", "raise"])
def test_a_contiguous_rewrite_killed_or_failing_at_every_step_leaves_old_or_new(
    tmp_path, action, pad
):
    """A single assignment that rewrites the file as the image of a
    contiguous record (see ``test_hdf5_rewrite.py``), killed or failing at
    every step: a reader finds the old store or the new one; the next writer
    puts back what a killed one left."""
    store = str(tmp_path / "s.h5")
    old = {"pad": "p" * pad, "keep": "kept"}
    new = {**old, "new": ["n", 2, 3.5]}

    def make() -> None:
        with tinystore.open(store, "w") as s:
            for key, value in old.items():
                s[key] = value

    hdf5._root_template(True)  # (learnt once a process, from a file HDF5 makes)
    make()
    status, out = bw.forked(store, "count", job=_assign_list)
    assert status == 0 and out.startswith("ok"), out
    steps = int(out.split()[1])
    record = _record_of(store)  # the new store: an image of a contiguous record
    with open(store, "rb") as f:
        assert len(record) > LIMIT and f.read() == hdf5._root_image(record)
    seen = []
    for n in range(1, steps + 1):
        make()
        status, out = bw.forked(store, action, n, job=_assign_list)
        if action == "kill":
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        else:
            assert status == 0 and out.startswith("failed"), (n, out)
        got = _contents(store)  # a reader: the old store or the new one
        assert got in (old, new), n
        seen.append(got == new)
        _assign_list(store)  # the next writer puts back what a killed one left
        assert _contents(store) == new
        assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.h5.lock"], n
    assert seen == [False] * steps  # the journal's removal is the last step


def _sessions(store: str) -> None:
    """A new file's first sessions that write more than a root record."""
    with tinystore.open(store, check=False) as s:
        s["a"] = 1
        assert s["a"] == 1
        s["arr"] = np.arange(100.0)
        s["g"] = {"x": [1, 2]}


def _contiguous_then_more(store: str) -> None:
    """A session that writes a contiguous root record, then a dataset."""
    with tinystore.open(store, check=False) as s:
        s["big"] = LARGE[0]
        s["arr"] = np.arange(100.0)


@pytest.mark.parametrize(
    "job",
    [
        _sessions,
        lambda store: tinystore.save({"a": np.arange(1000)}, store),
        lambda store: tinystore.save({"a": 1}, store, path="deep/er"),
        lambda store: tinystore.save([(i, str(i)) for i in range(3000)], store),  # a subgroup
        lambda store: tinystore.save({"big": LARGE[0], "arr": np.arange(1000)}, store),
        _contiguous_then_more,
    ],
)
def test_sessions_that_write_more_give_hdf5s_files(tmp_path, monkeypatch, job):
    fast, slow = str(tmp_path / "fast.h5"), str(tmp_path / "slow.h5")
    job(fast)
    monkeypatch.setattr(hdf5, "WRITE_NEW_FILES", False)
    job(slow)
    _same(fast, slow)


def test_a_failed_transaction_in_a_new_file_then_a_small_save(tmp_path, monkeypatch):
    """A session rolled back (abort) after HDF5 made its file, then writing
    only its root record, gives the file that record alone gives."""

    class Boom(Exception):
        pass

    def job(store):
        with tinystore.open(store, check=False) as s:
            with pytest.raises(Boom), s.batch():
                s["arr"] = np.arange(100.0)
                raise Boom
            s["a"] = 1

    fast, slow = str(tmp_path / "fast.h5"), str(tmp_path / "slow.h5")
    job(fast)
    monkeypatch.setattr(hdf5, "WRITE_NEW_FILES", False)
    job(slow)
    _same(fast, slow)
    assert tinystore.load(fast, path="a") == 1
    assert not os.path.exists(fast + hdf5.NEW_SUFFIX)


def _update(store: str) -> None:
    with tinystore.open(store) as s:
        s["more"] = {"b": 2.5}
        s["arr"] = np.arange(50.0)
    with tinystore.open(store) as s:
        del s["a"]
        s["text"] = "t" * 300
    tinystore.compact(store)


@pytest.mark.parametrize("size", [100, LIMIT, 100_000])  # (compact; contiguous)
def test_files_written_without_hdf5_are_updated_as_hdf5s(tmp_path, monkeypatch, size):
    value = {"a": 1, "s": "x" * size}
    fast, slow = _save_both(tmp_path, monkeypatch, value)
    _update(fast)
    _update(slow)
    _same(fast, slow)
    got = tinystore.load(fast)
    assert got.keys() == {"s", "more", "arr", "text"} and got["more"] == {"b": 2.5}
    assert got["s"] == "x" * size
    np.testing.assert_array_equal(got["arr"], np.arange(50.0))
    with h5py.File(fast, "r") as f:
        assert f["arr"][()].tolist() == list(np.arange(50.0))


@pytest.mark.skipif(shutil.which("h5dump") is None, reason="h5dump (hdf5-tools) not installed")
@pytest.mark.parametrize("pad", [0, LIMIT])  # (compact; contiguous)
def test_h5dump_reads_a_file_written_without_hdf5(tmp_path, monkeypatch, pad):
    fast, slow = _save_both(tmp_path, monkeypatch, {"a": "hello h5dump", "pad": "p" * pad})
    outs = []
    for path in (fast, slow):
        proc = subprocess.run(["h5dump", path], capture_output=True, text=True, check=True)
        outs.append(proc.stdout.replace(path, "FILE"))
    assert outs[0] == outs[1]
    assert "hello h5dump" in outs[0] and 'DATASET "@record"' in outs[0]


def _physical_session(store: str, more: bool, pad: int = 0) -> list:
    """One write session of a new file at the storage's level: its root
    record (``pad`` bytes longer), read back; then (``more``) a group with
    its own record."""
    from tinystore.storage.record.format import dumps_record

    phys = hdf5._HDF5Physical(store, "a", None, None, 10.0, check=False)
    root = dumps_record([{"g": 1, "c": {"x": "v" * pad}}])
    seen = []
    phys.begin(True)
    try:
        seen.append(phys.read_record(()))  # the empty record of a new file
        phys.write_record((), root)
        seen += [phys.read_record(()), phys.read_record(("g",))]
        if more:
            phys.create_group(("g",))
            phys.write_record(("g",), hdf5.EMPTY_ROOT)
            seen += [phys.read_record(()), phys.read_record(("g",))]
    finally:
        phys.end()
    return seen


@pytest.mark.parametrize("pad", [0, LIMIT])  # (compact; contiguous)
@pytest.mark.parametrize("more", [False, True])
def test_a_session_writing_its_root_record_first_then_more(tmp_path, monkeypatch, more, pad):
    fast, slow = str(tmp_path / "fast.h5"), str(tmp_path / "slow.h5")
    seen = _physical_session(fast, more, pad)
    monkeypatch.setattr(hdf5, "WRITE_NEW_FILES", False)
    assert _physical_session(slow, more, pad) == seen
    _same(fast, slow)
    assert seen[0] == hdf5.EMPTY_ROOT and seen[1] != seen[0] and seen[2] is None
    if more:
        assert seen[3] == seen[1] and seen[4] == hdf5.EMPTY_ROOT


def test_an_hdf5_the_tests_did_not_prove_writes_every_file(tmp_path, monkeypatch):
    monkeypatch.setattr(hdf5, "PROVEN_HDF5", frozenset())
    hdf5._root_template.cache_clear()
    try:
        assert not hdf5._writes_new_files() and hdf5._root_image(b"x") is None
        assert not hdf5._imaged(1) and hdf5._root_image(b"x" * (LIMIT + 1)) is None
        made = []
        real = hdf5._create_file
        monkeypatch.setattr(hdf5, "_create_file", lambda path: made.append(path) or real(path))
        tinystore.save({"a": 1}, str(tmp_path / "x.h5"))
        assert len(made) == 1 and tinystore.load(str(tmp_path / "x.h5")) == {"a": 1}
        tinystore.save(LARGE[0], str(tmp_path / "y.h5"))
        assert len(made) == 2 and tinystore.load(str(tmp_path / "y.h5")) == LARGE[0]
    finally:
        hdf5._root_template.cache_clear()
