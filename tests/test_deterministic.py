"""The same object saved by different processes gives byte-identical files.

The hash of a str changes with ``PYTHONHASHSEED``, and so does the order a
set of strings iterates in; tinystore writes set elements in a canonical
order (``tinystore.objects.order``), HDF5 files without timestamps, and
nothing that depends on ids.
"""

from __future__ import annotations

import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinystore
from tinystore.objects.order import canonical_order

HELPERS = Path(__file__).parent / "helpers"
sys.path.insert(0, str(HELPERS))
import deterministic  # noqa: E402
from procs import child_env  # noqa: E402


def _save_in_process(out: Path, seed: str) -> dict[str, bytes]:
    """Run tests/helpers/deterministic.py with ``PYTHONHASHSEED=seed``; every file it wrote."""
    out.mkdir()
    subprocess.run(
        [sys.executable, str(HELPERS / "deterministic.py"), str(out)],
        env=child_env(PYTHONHASHSEED=seed),
        check=True,
        timeout=300,
    )
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


def test_files_are_byte_identical_across_hash_seeds(tmp_path):
    runs = [_save_in_process(tmp_path / seed, seed) for seed in ("0", "1", "2")]
    first = runs[0]
    assert {"obj.h5", "obj.json/@record.json", "memory.bin"} <= set(first)
    for other in runs[1:]:
        assert sorted(other) == sorted(first)
        differ = [name for name in first if other[name] != first[name]]
        assert differ == []
    # the seeds do change the iteration order of the sets saved (else this proves nothing)
    orders = {
        subprocess.run(
            [sys.executable, "-c", "print(list({f'word{i}' for i in range(40)}))"],
            env=dict(os.environ, PYTHONHASHSEED=seed),
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "2")
    }
    assert len(orders) == 3


@pytest.mark.parametrize("name", ["obj.h5", "obj.json"])
def test_the_deterministic_files_load_back_equal(tmp_path, name):
    _save_in_process(tmp_path / "run", "3")
    loaded = tinystore.load(tmp_path / "run" / name)
    _assert_same(loaded, deterministic.build())
    run = loaded["run"]
    assert run.options["set"] is run.options["again"]  # sharing survives
    assert loaded["text"] in run.options["set"]


def _assert_same(got, want):
    """Type and value, recursively (instances by their ``__dict__``)."""
    assert type(got) is type(want)
    if isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _assert_same(g, w)
    elif isinstance(want, (set, frozenset)):
        assert got == want
        assert sorted(map(repr, map(type, got))) == sorted(map(repr, map(type, want)))
    elif hasattr(want, "__dict__"):
        _assert_same(vars(got), vars(want))
    else:
        assert got == want


# -- the canonical order ----------------------------------------------------------
def test_canonical_order_does_not_depend_on_insertion():
    # 0 and 8 land in one slot of a small set: iteration follows insertion
    first, second = {0}, {8}
    first.add(8)
    second.add(0)
    assert list(first) != list(second)
    assert canonical_order(first) == canonical_order(second) == [0, 8]


def test_canonical_order_across_kinds():
    items = [
        None,
        False,
        -3,
        2.5,
        1 + 2j,
        7,
        "a",
        "b",
        b"a",
        ("a", 1),
        ("a", 0.5),
        (None, b"x"),
        frozenset({"z", 1}),
        frozenset(),
    ]
    want = [
        None,
        -3,
        False,
        1 + 2j,
        2.5,
        7,
        "a",
        "b",
        b"a",
        (None, b"x"),
        ("a", 0.5),
        ("a", 1),
        frozenset(),
        frozenset({"z", 1}),
    ]
    for seed in range(5):
        shuffled = items[:]
        np.random.default_rng(seed).shuffle(shuffled)
        got = canonical_order(set(shuffled))
        assert got == want and [type(x) for x in got] == [type(x) for x in want]


def test_several_nans_keep_their_bits_in_order():
    nan = float("nan")
    neg = -float("nan")
    got = canonical_order({nan, neg, 1.0})
    assert got[0] == 1.0 and all(math.isnan(x) for x in got[1:])
    assert sorted(math.copysign(1, x) for x in got[1:]) == [-1.0, 1.0]
    assert got == canonical_order({neg, 1.0, nan})  # the same objects, either way in


class _Opaque:
    def __init__(self, n):
        self.n = n


def test_unorderable_elements_keep_the_iteration_order():
    items = {_Opaque(1), _Opaque(2), "a"}
    assert canonical_order(items) == list(items)


# -- what is stored is still the set, on every backend --------------------------------
class Labels(set):
    pass


def test_sets_round_trip_on_every_backend(roundtrip):
    nan = float("nan")
    labels = Labels({"b", "a", "c"})
    labels.note = "kept"
    obj = {
        "mixed": {None, 1, 2.5, "x", b"y", (1, "z"), 3j, nan},
        "frozen": frozenset({frozenset({"a"}), frozenset()}),
        "opaque": frozenset({_OpaqueValue(1), _OpaqueValue(2)}),
        "subclass": labels,
    }
    loaded = roundtrip(obj)
    reference = pickle.loads(pickle.dumps(obj))
    assert type(loaded["mixed"]) is set

    def numbers_aside(s):  # NaN equals nothing, not even itself: count it apart
        return {x for x in s if x == x}, sum(1 for x in s if x != x)

    assert numbers_aside(loaded["mixed"]) == numbers_aside(reference["mixed"])
    assert numbers_aside(loaded["mixed"]) == (obj["mixed"] - {nan}, 1)
    assert loaded["frozen"] == reference["frozen"] and type(loaded["frozen"]) is frozenset
    assert loaded["opaque"] == obj["opaque"]
    assert type(loaded["subclass"]) is Labels and loaded["subclass"] == {"a", "b", "c"}
    assert loaded["subclass"].note == "kept"


class _OpaqueValue:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return type(other) is _OpaqueValue and other.n == self.n

    def __hash__(self):
        return hash(self.n)
