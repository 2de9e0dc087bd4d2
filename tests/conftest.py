"""Shared fixtures: every object-level test runs on every backend."""

from __future__ import annotations

import contextlib
import itertools
import os
from pathlib import Path

import pytest
from hypothesis import settings

import tinystore
from tinystore.storage.reference import SPEC as REFERENCE
from tinystore.storage.registry import register_backend

# CI runs the property tests on fixed examples, so a run is reproducible (a
# developer's runs keep exploring new ones); TINYSTORE_EXPLORE=1 lifts it.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI") and not os.environ.get("TINYSTORE_EXPLORE"):
    settings.load_profile("ci")

BACKENDS = ["memory", "hdf5", "json"]
#: The object suites (round trip, pickle parity) run on the reference backend
#: too: the developer contract alone, with the base class's slow defaults.
OBJECT_BACKENDS = BACKENDS + ["reference"]
register_backend(REFERENCE)
_names = itertools.count()


def location(backend: str, tmp_path) -> str:
    if backend == "memory":
        return f"memory://test-{next(_names)}"
    if backend == "reference":
        return f"reference://test-{next(_names)}"
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
    if backend == "reference":
        with contextlib.suppress(FileNotFoundError):
            REFERENCE.remover(loc)


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


# -- the suite tests the installed package -----------------------------------------------------
CHECKOUT = Path(__file__).resolve().parent.parent
IMPORTED_FROM = Path(tinystore.__file__).resolve().parent


def pytest_report_header(config):
    return f"tinystore {tinystore.__version__} imported from {IMPORTED_FROM}"


if os.environ.get("CI") and IMPORTED_FROM.is_relative_to(CHECKOUT):
    # CI must test what users install: a checkout on sys.path would hide a
    # module missing from the wheel (it happened: tinystore.objects)
    raise pytest.UsageError(
        f"tinystore was imported from the checkout ({IMPORTED_FROM}), not from the installed "
        "package; run the tests as README.rst says (from outside the checkout)"
    )
