"""Shared fixtures: every object-level test runs on every backend."""

from __future__ import annotations

import contextlib
import itertools
import logging
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

try:
    import zarr  # noqa: F401
except ImportError:  # without the zarr extra, the zarr backends are not tested (test_zarr says so)
    HAVE_ZARR = False
else:
    HAVE_ZARR = True
try:
    import moto.server  # noqa: F401
    import obstore  # noqa: F401
except ImportError:
    HAVE_S3 = False
else:
    HAVE_S3 = HAVE_ZARR

try:
    import distributed  # noqa: F401
    import icechunk  # noqa: F401
except ImportError:  # without the icechunk extra, the icechunk backend is not tested
    HAVE_ICECHUNK = False
else:
    HAVE_ICECHUNK = HAVE_S3

if os.environ.get("CI") and not (HAVE_S3 and HAVE_ICECHUNK):
    # CI installs ".[all,test]": the zarr and icechunk backends are tested there, on S3
    # too, never skipped
    raise pytest.UsageError(
        "CI needs zarr, obstore, icechunk, distributed and moto[server]: install '.[all,test]'"
    )

#: ``backend`` of every test that takes it; "zarr" is a local folder
BACKENDS = ["memory", "hdf5", "json"] + (["zarr"] if HAVE_ZARR else [])
#: The backends that keep a store in files on a local disk (space, reads, damage)
FILE_BACKENDS = [b for b in BACKENDS if b != "memory"]
#: The object suites (round trip, pickle parity) run on the reference backend
#: too: the developer contract alone, with the base class's slow defaults.
OBJECT_BACKENDS = BACKENDS + ["reference"] + (["icechunk"] if HAVE_ICECHUNK else [])
register_backend(REFERENCE)
#: "zarr-s3": a zarr store on a local S3 server (moto), for the object suites
#: only (every request is an HTTP round trip): OBJECT_BACKENDS + S3_BACKENDS
S3_BACKENDS = ["zarr-s3"] if HAVE_S3 else []
#: icechunk on the S3 server, for the pickle-parity suite (its layout code is the
#: zarr backend's, which runs every object suite on S3; the round-trip suite runs
#: on a local icechunk folder): a commit costs several requests, so it is slow
ICECHUNK_S3 = [pytest.param("icechunk-s3", marks=pytest.mark.slow)] if HAVE_ICECHUNK else []
#: backends whose locations are on the S3 server
ON_S3 = ("zarr-s3", "icechunk-s3")
_names = itertools.count()


def s3_location(s3: dict, name: str, prefix: str = "test") -> str:
    """A fresh location on the S3 server: ``s3://<bucket>/<prefix>-<n>/<name>``."""
    return f"s3://{s3['bucket']}/{prefix}-{next(_names)}/{name}"


def local_or_s3(request, tmp_path, name: str) -> str:
    """For a fixture parametrised ``["local", "s3"]``: a fresh folder ``name``
    under ``tmp_path``, or a fresh prefix on the session's S3 server."""
    if request.param == "local":
        return str(tmp_path / name)
    return s3_location(request.getfixturevalue("s3_server"), name)


def location(backend: str, tmp_path, s3: dict | None = None) -> str:
    if backend == "memory":
        return f"memory://test-{next(_names)}"
    if backend == "reference":
        return f"reference://test-{next(_names)}"
    if backend == "hdf5":
        return str(tmp_path / "store.h5")
    if backend == "zarr":
        return str(tmp_path / "store.zarr")
    if backend == "zarr-s3":
        return s3_location(s3, "store.zarr")
    if backend == "icechunk":
        return str(tmp_path / "store.icechunk")
    if backend == "icechunk-s3":
        return s3_location(s3, "store.icechunk")
    return str(tmp_path / "store.json")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def s3_server():
    """A local S3 server (moto) for the session, with a bucket, reached through the
    standard AWS environment variables (no ``storage_options`` needed):
    ``{"endpoint": url, "bucket": name}``."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        import boto3

        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="tinystore-tests")
        yield {"endpoint": endpoint, "bucket": "tinystore-tests"}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server.stop()


@pytest.fixture
def filename(backend, tmp_path, request):
    """A fresh store location for the parametrised backend (removed afterwards)."""
    s3 = request.getfixturevalue("s3_server") if backend in ON_S3 else None
    loc = location(backend, tmp_path, s3)
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


@pytest.fixture
def parity(roundtrip, filename):
    """``parity(obj) -> loaded``: ``obj`` saved and loaded on the backend is
    isomorphic to pickle's copy of it (``objects_cases.assert_same_structure``),
    and the store holds no pickle."""
    from objects_cases import assert_no_pickle, assert_same_structure, pickled

    def run(obj):
        expected = pickled(obj)
        loaded = roundtrip(obj)
        assert_same_structure(expected, loaded, new=False)
        assert_no_pickle(filename)
        return loaded

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
