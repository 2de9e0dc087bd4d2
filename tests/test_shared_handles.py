"""Several handles on one store: each sees every write made through the others.

Memory stores used to give each handle its own cached records, and a write
through one handle was lost when another, with an older copy of the record,
wrote next.  Files always behaved; every test that is not about memory alone
runs on every backend.
"""

from __future__ import annotations

import itertools
import random
import sys
import threading

import numpy as np
import pytest

import tinystore
from tinystore.errors import StoreLockedError
from tinystore.storage import HDF5Storage, JSONDirStorage, MemoryStorage

_names = itertools.count()


@pytest.fixture
def name():
    n = f"shared-{next(_names)}"
    yield n
    MemoryStorage.drop(n)


def opener(location: str):
    """``opener(mode)`` opens another handle on ``location`` (no codec)."""
    if location.startswith("memory://"):
        return lambda mode="a": MemoryStorage(location, mode)
    if location.endswith(".h5"):
        return lambda mode="a": HDF5Storage(location, mode=mode)
    if location.endswith(".zarr"):
        from tinystore.storage.zarrstore import ZarrStorage

        return lambda mode="a": ZarrStorage(location, mode=mode)
    return lambda mode="a": JSONDirStorage(location, mode=mode)


def contents(s) -> dict:
    """What a handle sees: every key with its value (groups as nested dicts)."""
    out = {}
    for key in s:
        value = s[key]
        out[key] = contents(value) if isinstance(value, tinystore.GenericStorage) else value
    return out


def test_write_through_one_handle_survives_a_write_through_another(filename):
    a = opener(filename)("w")
    b = opener(filename)()
    a["k"] = 1
    b["j"] = 2
    a["k"] = 2
    for handle in (a, b, opener(filename)()):
        assert contents(handle) == {"k": 2, "j": 2}


@pytest.mark.parametrize("handles", [2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_interleaved_operations_on_several_handles(filename, handles, seed):
    """Random writes, partial updates, deletes and groups through several
    handles; after every step every handle sees exactly the model."""
    rng = random.Random(seed)
    hs = [tinystore.open(filename, mode="w" if i == 0 else "a") for i in range(handles)]
    model: dict = {}
    groups: set = set()
    for step in range(60):
        h = rng.choice(hs)
        op = rng.choice(["set", "set", "update", "delete", "group", "group_set"])
        key = f"k{rng.randrange(6)}"
        if op == "set" and key not in groups:
            value = {"step": step, "items": [step, str(step)], "a": np.arange(step % 5)}
            h[key] = value
            model[key] = value
        elif op == "update" and key in model and key not in groups:
            h[f"{key}/items/0"] = -step  # a partial update of a stored object
            model[key]["items"][0] = -step
        elif op == "delete" and key in model:
            del h[key]
            del model[key]
            groups.discard(key)
        elif op == "group" and key not in model:
            h.create_group(key)
            model[key] = {}
            groups.add(key)
        elif op == "group_set" and key in groups:
            h[f"{key}/x{step}"] = step
            model[key][f"x{step}"] = step
        for other in hs:
            seen = contents(other)
            assert list(seen) == list(model)
            for k, v in model.items():
                _assert_same(seen[k], v)


def _assert_same(got, want):
    assert type(got) is type(want)
    if isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    else:
        assert got == want


def test_groups_made_through_one_handle_are_usable_through_another(filename):
    a = tinystore.open(filename, mode="w")
    b = tinystore.open(filename)
    c = tinystore.open(filename)
    a.create_group("jobs/relax")
    b["jobs/relax/input"] = {"steps": 10}
    job = c["jobs/relax"]
    job["output"] = np.ones(3)
    assert a.list_groups() == ["jobs"] and a["jobs"].list_groups() == ["relax"]
    assert a["jobs/relax/input"] == {"steps": 10}
    assert np.array_equal(b["jobs/relax/output"], np.ones(3))
    del a["jobs/relax/input"]
    assert list(b["jobs/relax"]) == ["output"] and list(job) == ["output"]
    assert "jobs/relax/input" not in c


def test_large_leaves_outside_the_record_are_shared(filename):
    """Arrays too big for the record are stored beside it: replacing one
    through another handle removes the old one, and nobody reads it."""
    a = opener(filename)("w")
    b = opener(filename)()
    a["big"] = np.arange(10_000)
    assert np.array_equal(b["big"], np.arange(10_000))
    b["big"] = np.arange(10_000) * 2
    assert np.array_equal(a["big"], np.arange(10_000) * 2)
    del a["big"]
    assert "big" not in b and list(b) == []


def test_batch_is_seen_whole_by_the_other_handles(filename):
    a = opener(filename)("w")
    b = opener(filename)()
    b["before"] = 0
    with a.batch():
        for i in range(20):
            a[f"k{i}"] = i
    b["after"] = 1
    expected = {"before": 0, **{f"k{i}": i for i in range(20)}, "after": 1}
    assert contents(a) == expected and contents(b) == expected


def test_failed_batch_leaves_the_other_handles_state(filename):
    a = opener(filename)("w")
    b = opener(filename)()
    b["keep"] = 1
    with pytest.raises(RuntimeError), a.batch():
        a["gone"] = 1
        raise RuntimeError("abandoned")
    assert contents(a) == {"keep": 1}
    b["more"] = 2
    a["mine"] = 3
    assert contents(a) == {"keep": 1, "more": 2, "mine": 3} == contents(b)


@pytest.mark.parametrize("block", ["batch", "hold"])
def test_another_handle_inside_a_block_is_refused_not_lost(name, block):
    """Inside one handle's ``batch()``/``hold()`` the store is held, as a file
    is locked: another handle in the same thread is refused at once (it could
    only wait for itself), and nothing it tried is lost or half-done."""
    a = MemoryStorage(name, "w")
    b = MemoryStorage(name)
    a["k"] = 1
    with getattr(a, block)():
        a["k"]  # noqa: B018 - the block's cache now holds the record
        with pytest.raises(StoreLockedError, match=name):
            b["j"] = 2
        with pytest.raises(StoreLockedError):
            b["k"]  # noqa: B018
        if block == "batch":
            a["k"] = 2
    b["j"] = 3
    expected = {"k": 2 if block == "batch" else 1, "j": 3}
    assert contents(a) == expected == contents(b)


def test_hold_sees_writes_made_before_it(filename):
    a = opener(filename)("w")
    b = opener(filename)()
    a["x"] = 1
    with b.hold():
        assert b["x"] == 1
    a["x"] = 2
    with b.hold():
        assert b["x"] == 2
        assert b["x"] == 2


def test_mode_w_empties_the_store_for_every_handle(filename):
    a = opener(filename)("w")
    a["x"] = 1
    b = opener(filename)("w")
    assert list(a) == [] and list(b) == []
    a["y"] = 2
    assert contents(b) == {"y": 2}


def test_save_and_load_see_open_handles_writes(filename):
    loc = filename
    tinystore.save({"a": 1, "b": [1, 2]}, loc)
    s = tinystore.open(loc)
    assert s["b"] == [1, 2]
    tinystore.save({"a": 2}, loc)  # replaces the whole store under the open handle
    assert list(s) == ["a"] and s["a"] == 2
    s["a"] = 3
    assert tinystore.load(loc) == {"a": 3}


def test_handles_in_threads_take_turns(name):
    """Two threads writing through their own handles lose nothing: each
    session waits for the other's, as on a locked file."""
    MemoryStorage(name, "w")
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, mid-transaction
    errors = []

    def work(tag):
        try:
            s = MemoryStorage(name)
            for i in range(200):
                s[f"{tag}{i}"] = i
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(tag,)) for tag in "ab"]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    keys = set(MemoryStorage(name))
    assert keys == {f"{tag}{i}" for tag in "ab" for i in range(200)}
