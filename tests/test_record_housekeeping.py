"""Record-layer housekeeping: rollback keeps its notes when a removal fails;
a handle to a deleted group says it is stale."""

from __future__ import annotations

import os

import numpy as np
import pytest

import tinystore
from tinystore.errors import CorruptStoreError, StorageClosedError
from tinystore.storage import JSONDirStorage
from tinystore.storage.base import Tree


def test_rollback_keeps_the_journal_when_a_removal_fails(tmp_path):
    where = tmp_path / "store.json"
    s = JSONDirStorage(where, mode="w")
    s["obj"] = Tree({}, {"sub": Tree({}, {"a": 1})})  # "sub" is inside the record of "obj"
    physical = s._store.physical
    real_delete = physical.delete_external

    def failing_delete(gpath, name, entry):
        raise OSError("the disk said no")

    physical.delete_external = failing_delete
    # the array is written outside the record, then the bad part fails the write
    bad = Tree({}, {"big": np.arange(10_000.0), "bad": object()})
    with pytest.raises(TypeError):
        s["obj/sub/t"] = bad
    with s._store.session():
        notes = physical.read_journal()
    assert [kind for _, kind, _, _ in notes] == ["X"]  # the leftover is still noted
    name = notes[0][2]
    folder = where / notes[0][0][0]
    assert [f for f in os.listdir(folder) if f.startswith(name)]  # the failed write's file
    physical.delete_external = real_delete
    s["other"] = 1  # the next write session recovers: the leftover goes
    assert not [f for f in os.listdir(folder) if f.startswith(name)]
    with s._store.session():
        assert physical.read_journal() == []
    assert list(s) == ["obj", "other"] and s.read_tree("obj") == Tree(
        {}, {"sub": Tree({}, {"a": 1})}
    )
    s.close()


def test_rollback_clears_the_journal_when_removals_succeed(tmp_path):
    s = JSONDirStorage(tmp_path / "store.json", mode="w")
    with pytest.raises(TypeError):
        s["t"] = Tree({}, {"big": np.arange(10_000.0), "bad": object()})
    with s._store.session():
        assert s._store.physical.read_journal() == []
    s.close()


def test_a_handle_to_a_deleted_group_says_it_is_stale(filename):
    with tinystore.open(filename, "w") as s:
        g = s.create_group("g")
        g["x"] = 1
        inner = s.create_group("g/sub")
        del s["g"]
        for action in (
            lambda: g["x"],
            lambda: g.__setitem__("y", 2),
            lambda: list(g),
            lambda: inner["x"],
        ):
            with pytest.raises(StorageClosedError, match="no longer exists.*stale") as info:
                action()
            assert not isinstance(info.value, CorruptStoreError)
        s["g"] = 5  # the store itself is fine
        assert s["g"] == 5 and list(s) == ["g"]
