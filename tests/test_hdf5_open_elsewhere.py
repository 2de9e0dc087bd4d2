"""An HDF5 file held open by h5py in the same process (the user guide reads
arrays that way) is not a damaged file: HDF5 opens a file once per process
and refuses a second open with other settings.  tinystore says so, with
``StoreLockedError``, and works again once the other handle is closed."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import CorruptStoreError, StoreLockedError

CALLS = {
    "load": lambda fn: tinystore.load(fn, path="x"),
    "open r": lambda fn: tinystore.open(fn, "r")["x"],
    "save": lambda fn: tinystore.save(1, fn, path="y"),
    "browse": lambda fn: tinystore.open(fn, "r").tree(),
}


@pytest.mark.parametrize("size", [100, 100_000])  # journaled whole / page by page
@pytest.mark.parametrize("how", [{"mode": "r"}, {"mode": "r", "locking": False}, {"mode": "a"}])
@pytest.mark.parametrize("call", list(CALLS))
def test_a_file_held_by_h5py_is_busy_not_damaged(tmp_path, size, how, call):
    fn = str(tmp_path / "run.h5")
    x = np.arange(float(size))
    tinystore.save({"x": x}, fn)
    f = h5py.File(fn, **how)
    try:
        with pytest.raises(StoreLockedError, match="another HDF5 handle") as caught:
            CALLS[call](fn)
        assert not isinstance(caught.value, CorruptStoreError)
        np.testing.assert_array_equal(f["x"][()], x)  # the handle still works
    finally:
        f.close()
    CALLS[call](fn)  # closed: tinystore opens it again
    with tinystore.open(fn, "r") as s:
        np.testing.assert_array_equal(s["x"], x)
        assert list(s) in (["x"], ["x", "y"])
