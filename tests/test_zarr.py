"""The zarr backend: plain zarr/dask/xarray read what it writes, requests per
operation, one writer at a time on object storage, URLs and credentials, convert.

The conformance and object suites run on it through conftest (``zarr`` on a
local folder, ``zarr-s3`` on the moto server of the ``s3_server`` fixture).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

import tinystore
from tinystore.errors import BackendError, NotAStoreError, StoreLockedError

zarr = pytest.importorskip("zarr", reason="the zarr extra is not installed (pip install .[zarr])")

from tinystore.storage.zarrstore import LEASE, ZarrStorage  # noqa: E402
from tinystore.testing.zarr_requests import CountingStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from conftest import local_or_s3, s3_location  # noqa: E402
from procs import child_env  # noqa: E402


@pytest.fixture(params=["local", "s3"])
def where(request, tmp_path):
    """A fresh zarr store location: a local folder, or a prefix on the S3 server."""
    return local_or_s3(request, tmp_path, "run.zarr")


@pytest.fixture
def s3_url(s3_server):
    return s3_location(s3_server, "run.zarr", "zarr")


def plain(where: str, read_only: bool = True):
    """What plain zarr, dask and xarray open ``where`` with: a local folder's
    path, or on S3 a ``zarr.storage.ObjectStore`` over obstore's ``S3Store``
    pointed at the moto server (obstore is what tinystore uses: no s3fs)."""
    if "://" not in where:
        return where
    from obstore.store import S3Store

    bucket, _, prefix = where.removeprefix("s3://").partition("/")
    s3 = S3Store(
        bucket,
        prefix=prefix,
        endpoint=os.environ["AWS_ENDPOINT_URL"],  # set by the s3_server fixture
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        client_options={"allow_http": True},
    )
    return zarr.storage.ObjectStore(s3, read_only=read_only)


class Counter:
    """``store_wrapper=`` for ZarrStorage: counts the requests of each opening."""

    def __init__(self):
        self.log: list = []

    def __call__(self, store):
        return CountingStore(store, self.log)

    def reads(self) -> int:
        return CountingStore(None, self.log).reads()

    def writes(self) -> int:
        return CountingStore(None, self.log).writes()

    def keys(self) -> set:
        return {key for _, key in self.log}


SMALL = {"energy": -3.5, "steps": [1, 2, 3], "name": "relax", "done": True}


# -- plain zarr, dask and xarray read stored arrays ---------------------------------------------
def test_plain_zarr_dask_and_xarray_read_stored_arrays(where):
    big = np.arange(200_000, dtype="f8").reshape(400, 500)
    with tinystore.open(where, "w") as s:
        s["jobs/relax"] = {"forces": big, "energy": -1.5}
        s.attrs["code"] = "vasp"
    group = zarr.open_group(plain(where), mode="r")
    stored = group["jobs/relax/forces"]
    assert stored.shape == big.shape and stored.dtype == big.dtype
    np.testing.assert_array_equal(stored[...], big)
    assert stored.compressors  # zarr's default compression
    da = pytest.importorskip("dask.array", reason="dask is in the test extra")
    lazy = da.from_zarr(plain(where), component="jobs/relax/forces")
    assert float(lazy.sum().compute()) == float(big.sum())
    xr = pytest.importorskip("xarray", reason="xarray is in the test extra")
    ds = xr.open_zarr(plain(where), group="jobs/relax", consolidated=False)
    np.testing.assert_array_equal(ds["forces"].values, big)
    assert tinystore.load(where, path="jobs/relax")["energy"] == -1.5


def test_bytes_and_unusual_arrays_round_trip(where):
    values = {
        "blob": bytes(range(256)) * 40,
        "be": np.arange(3000, dtype=">i4"),
        "fortran": np.asfortranarray(np.arange(6000.0).reshape(60, 100)),
        "longdouble": np.arange(1000, dtype=np.longdouble),
        "strings": np.array(["é" * 10] * 300),
        "zarr.json": np.arange(1000.0),  # names zarr gives a meaning to
        "c": np.arange(1000.0),
    }
    tinystore.save(values, where)
    back = tinystore.load(where)
    for key, value in values.items():
        if isinstance(value, bytes):
            assert back[key] == value and type(back[key]) is bytes
        else:
            assert back[key].dtype == value.dtype and back[key].shape == value.shape
            np.testing.assert_array_equal(back[key], value)
            assert back[key].flags.f_contiguous == value.flags.f_contiguous
    assert zarr.open_group(plain(where), mode="r")["%zarr.json"][0] == 0.0


def test_keys_zarr_reserves_as_groups(where):
    with tinystore.open(where, "w") as s:
        s["zarr.json"] = {"c": np.arange(1000.0), "__x": np.ones(1000)}
        s.create_group("c")["zarr.json"] = np.zeros(1000)
        s["%2e"] = np.full(1000, 2.0)
    with tinystore.open(where, "r") as s:
        assert s["zarr.json/c"][999] == 999.0 and s["zarr.json/__x"].sum() == 1000
        assert s["c/zarr.json"].sum() == 0 and s["%2e"][0] == 2.0
        assert sorted(s) == ["%2e", "c", "zarr.json"]
    del tinystore.open(where, "r+")["zarr.json"]
    assert sorted(tinystore.open(where, "r")) == ["%2e", "c"]
    assert zarr.open_group(plain(where), mode="r")["%c/%zarr.json"].shape == (1000,)


# -- requests per operation ----------------------------------------------------------------
def test_small_object_costs_few_requests(s3_url):
    count = Counter()
    tinystore.save(SMALL, s3_url, store_wrapper=count)  # a new store: created first
    assert count.writes() <= 4
    count.log.clear()
    tinystore.save(SMALL, s3_url, store_wrapper=count)
    assert count.writes() <= 3, count.log  # lease, the root zarr.json, lease released
    assert count.reads() <= 4, count.log
    count.log.clear()
    assert tinystore.load(s3_url, store_wrapper=count) == SMALL
    assert count.writes() == 0 and count.reads() <= 2, count.log


def test_browsing_a_thousand_groups_is_one_request(s3_url):
    with tinystore.open(s3_url, "w") as s, s.batch():
        for i in range(1000):
            s.create_group(f"run{i}")["result"] = {"energy": float(i)}
    count = Counter()
    with tinystore.open(s3_url, "r", store_wrapper=count) as s:
        text = s.tree(max_children=2000)  # the whole tree: every record
        assert count.writes() == 0 and count.reads() <= 2, count.log  # opening, then the tree
        count.log.clear()
        names = list(s)  # each operation reads the records again: a request or two
        assert count.reads() <= 2, count.log
    assert len(names) == 1000 and "run999" in text
    count.log.clear()
    assert tinystore.load(s3_url, path="run500/result", store_wrapper=count) == {"energy": 500.0}
    assert count.reads() <= 2, count.log


def test_partial_load_reads_only_its_path(s3_url):
    arrays = {f"a{i}": np.full(5000, float(i)) for i in range(5)}
    with tinystore.open(s3_url, "w") as s:
        s["x"] = arrays
        s["y"] = arrays
    count = Counter()
    value = tinystore.load(s3_url, path="y/a3", store_wrapper=count)
    np.testing.assert_array_equal(value, arrays["a3"])
    assert count.writes() == 0
    assert all(key == "zarr.json" or key.startswith("y/a3/") for key in count.keys()), count.log
    assert count.reads() <= 3, count.log  # the records, the array's metadata, its one chunk


def test_arrays_cost_their_chunks_and_metadata_only(s3_url):
    tinystore.save({"v": 1}, s3_url, path="first")
    arrays = {"x": np.arange(50_000.0), "y": np.ones((100, 100))}
    count = Counter()
    tinystore.save(arrays, s3_url, path="runs/r1", store_wrapper=count)
    chunks = [key for m, key in count.log if m == "set" and "/c/" in key]
    metadata = [key for m, key in count.log if m == "set" and key.endswith("/zarr.json")]
    parents = [key for m, key in count.log if m == "set_if_not_exists" and key != LEASE]
    assert sorted(metadata) == ["runs/r1/x/zarr.json", "runs/r1/y/zarr.json"]
    assert sorted(parents) == ["runs/r1/zarr.json", "runs/zarr.json"]  # once per handle
    assert count.writes() == len(chunks) + 2 + 2 + 3, count.log  # + lease, records, lease gone
    assert count.reads() <= 2, count.log  # the lease, the records
    group = zarr.open_group(plain(s3_url), mode="r")
    np.testing.assert_array_equal(group["runs/r1/x"][...], arrays["x"])


def test_local_folder_counts_the_same(tmp_path):
    loc = str(tmp_path / "run.zarr")
    tinystore.save(SMALL, loc)
    count = Counter()
    tinystore.save(SMALL, loc, store_wrapper=count)
    assert count.writes() <= 1, count.log  # no lease: a lock file beside the folder
    count.log.clear()
    assert tinystore.load(loc, store_wrapper=count) == SMALL
    assert count.reads() <= 2, count.log


# -- one writer at a time on object storage ------------------------------------------------
def test_second_writer_is_refused_not_interleaved(s3_url):
    tinystore.save({"v": 1}, s3_url)
    first = ZarrStorage(s3_url, lock_timeout=0)
    second = ZarrStorage(s3_url, lock_timeout=0)
    with first.batch():
        first["a"] = 1
        with pytest.raises(StoreLockedError, match="another writer"):
            second["b"] = 2
        assert "b" not in first
    second["b"] = 2  # the first one is done: its lease is gone
    with ZarrStorage(s3_url, "r") as r:
        assert r["a"] == 1 and r["b"] == 2


def test_expired_lease_of_a_dead_writer_is_taken_over(s3_url, s3_server):
    tinystore.save({"v": 1}, s3_url)
    s = ZarrStorage(s3_url, lock_timeout=0)
    dead = {"owner": "x", "host": "gone", "pid": 1, "expires": time.time() - 1}
    s._store.physical._set(LEASE, orjson.dumps(dead))
    s["w"] = 2
    assert ZarrStorage(s3_url, "r")["w"] == 2
    live = dict(dead, expires=time.time() + 60)
    s._store.physical._set(LEASE, orjson.dumps(live))
    with pytest.raises(StoreLockedError, match="host gone"):
        s["w"] = 3


def test_a_long_writer_renews_its_lease_or_refuses_to_commit(s3_url):
    tinystore.save({"v": 1}, s3_url)
    count = Counter()
    s = ZarrStorage(s3_url, lock_timeout=0, lease_ttl=0.5, store_wrapper=count)
    with s.batch():
        s["a"] = 1
        time.sleep(0.3)  # past half the lease's life: the commit renews it
    assert ("set", LEASE) in count.log
    assert ZarrStorage(s3_url, "r")["a"] == 1
    with pytest.raises(StoreLockedError, match="expired"):
        with s.batch():
            s["b"] = 2
            time.sleep(0.6)  # expired: another writer takes the store over
            other = ZarrStorage(s3_url, lock_timeout=0)
            other["c"] = 3
    with ZarrStorage(s3_url, "r") as r:
        assert "b" not in r and r["c"] == 3


def test_a_read_that_turns_into_a_write_refuses_stale_reads(s3_url):
    tinystore.save({"v": 1}, s3_url)
    s = ZarrStorage(s3_url, lock_timeout=0)
    with s.hold():
        assert s["v"] == 1  # read without a lease
        ZarrStorage(s3_url, lock_timeout=0)["v"] = 2  # another writer commits meanwhile
        with pytest.raises(StoreLockedError, match="changed by another writer"):
            s["w"] = s["v"] + 1
    assert "w" not in ZarrStorage(s3_url, "r")
    with s.hold():  # nobody else wrote this time: the upgrade goes through
        s["w"] = s["v"] + 1
    assert ZarrStorage(s3_url, "r")["w"] == 3


def test_readers_see_a_save_whole_or_not_at_all(s3_url):
    tinystore.save({"x": np.zeros(10_000), "n": 0}, s3_url)
    writer = ZarrStorage(s3_url, lock_timeout=0)
    with writer.batch():
        writer["x"] = np.ones(10_000)  # its array is written now, under a new name
        writer["n"] = 1
        reader = tinystore.load(s3_url)  # takes no lease
        assert reader["n"] == 0 and reader["x"].sum() == 0
    after = tinystore.load(s3_url)
    assert after["n"] == 1 and after["x"].sum() == 10_000


# -- locations, credentials, refusals ----------------------------------------------------------
def test_suffix_and_urls_choose_the_zarr_backend(tmp_path, s3_url):
    from tinystore.storage.registry import choose_backend

    assert choose_backend(str(tmp_path / "x.zarr")).name == "zarr"
    for url in ("s3://b/x.zarr", "gs://b/x", "gcs://b/x", "az://c/x", "abfs://c/x"):
        assert choose_backend(url).name == "zarr"
    assert choose_backend("memory://x").name == "memory"
    assert tinystore.backends.zarr.name == "zarr"
    tinystore.backends.zarr.dump(SMALL, s3_url)
    assert tinystore.backends.zarr.load(s3_url) == SMALL


def test_object_storage_refuses_file_backends_suffixes(s3_server):
    with pytest.raises(BackendError, match="local files only"):
        tinystore.save(SMALL, f"s3://{s3_server['bucket']}/run.h5")


def test_storage_options_without_environment(s3_server, monkeypatch):
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ALLOW_HTTP", raising=False)
    options = {
        "endpoint": s3_server["endpoint"],
        "access_key_id": "testing",
        "secret_access_key": "testing",
        "region": "us-east-1",
        "client_options": {"allow_http": True},
    }
    url = s3_location(s3_server, "run.zarr", "options")
    tinystore.save(SMALL, url, storage_options=options)
    assert tinystore.load(url, storage_options=options) == SMALL


def test_fsspec_when_obstore_is_missing(s3_url, monkeypatch):
    """Without obstore, URLs go through fsspec (s3fs), which reads the same variables."""
    pytest.importorskip("s3fs", reason="s3fs is in the s3-fsspec extra (not in all)")
    monkeypatch.setitem(sys.modules, "obstore", None)
    monkeypatch.setitem(sys.modules, "obstore.store", None)
    big = np.arange(5000.0)
    with tinystore.open(s3_url, "w") as s:
        assert type(s._store.physical.store).__name__ == "FsspecStore"
        s["x"] = {"a": big, "b": 1}
    assert tinystore.load(s3_url, path="x/b") == 1
    np.testing.assert_array_equal(tinystore.load(s3_url, path="x/a"), big)


def test_foreign_zarr_stores_are_refused(where):
    zarr.open_group(plain(where, read_only=False), mode="w").create_array(
        "data", shape=(3,), dtype="f8"
    )
    with pytest.raises(NotAStoreError, match="did not write"):
        tinystore.open(where, "a")
    with pytest.raises(NotAStoreError):
        tinystore.save(SMALL, where)
    assert "data" in zarr.open_group(plain(where), mode="r")  # untouched


def test_modes(where):
    with pytest.raises(FileNotFoundError):
        tinystore.open(where, "r")
    tinystore.save({"old": 1}, where)
    with pytest.raises(FileExistsError):
        tinystore.open(where, "w-")
    with tinystore.open(where, "w") as s:
        assert list(s) == []
        s["new"] = np.arange(5000)
    assert list(tinystore.open(where, "r")) == ["new"]


def test_delete_whole_store(where):
    tinystore.save({"x": np.arange(5000)}, where)
    tinystore.delete(where)
    with pytest.raises(FileNotFoundError):
        tinystore.open(where, "r")


def test_convert_hdf5_to_s3_and_back(tmp_path, s3_url):
    from tinystore.cli import main

    src = tmp_path / "run.h5"
    obj = {"forces": np.arange(30_000.0).reshape(100, 300), "meta": {"code": "x"}, "n": 3}
    with tinystore.open(src, "w") as s:
        s["job"] = obj
        s.attrs["project"] = "p"
    assert main(["convert", str(src), s3_url, "--quiet"]) == 0
    back = tmp_path / "back.h5"
    assert main(["convert", s3_url, str(back), "--quiet"]) == 0
    for loc in (s3_url, back):
        with tinystore.open(loc, "r") as s:
            loaded = s["job"]
            assert s.attrs["project"] == "p"
        np.testing.assert_array_equal(loaded["forces"], obj["forces"])
        assert loaded["meta"] == obj["meta"] and loaded["n"] == 3


def test_tinystore_imports_without_zarr(tmp_path):
    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "import tinystore\n"
        "from tinystore.errors import BackendError\n"
        "assert tinystore.backends.zarr.name == 'zarr'\n"
        "try:\n"
        f"    tinystore.save(1, {str(tmp_path / 'x.zarr')!r})\n"
        "except BackendError as e:\n"
        "    print(e)\n"
    )
    env = child_env()  # the tinystore these tests import
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "pip install 'tinystore[zarr]'" in out.stdout
