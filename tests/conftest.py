"""Shared fixtures: every object-level test runs on every backend."""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import settings

import tinystore

# CI runs the property tests on fixed examples, so a run is reproducible (a
# developer's runs keep exploring new ones); TINYSTORE_EXPLORE=1 lifts it.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") and not os.environ.get("TINYSTORE_EXPLORE"):
    settings.load_profile("ci")

BACKENDS = ["memory", "hdf5", "json"]
_names = itertools.count()


def location(backend: str, tmp_path) -> str:
    if backend == "memory":
        return f"memory://test-{next(_names)}"
    if backend == "hdf5":
        return str(tmp_path / "store.h5")
    return str(tmp_path / "store.json")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def filename(backend, tmp_path):
    """A fresh store location for the parametrised backend (removed afterwards)."""
    loc = location(backend, tmp_path)
    yield loc
    if backend == "memory":
        tinystore.MemoryStorage.drop(loc)


@pytest.fixture
def store(filename):
    """An open, empty storage with the object codec, on every backend."""
    with tinystore.open(filename, mode="w") as s:
        yield s


@pytest.fixture
def roundtrip(filename):
    """``roundtrip(obj, **save_kw) -> loaded``: save to a file, reopen it, load."""

    def run(obj, **kw):
        tinystore.save(obj, filename, **kw)
        return tinystore.load(filename)

    return run
