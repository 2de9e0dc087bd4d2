"""Every built-in backend passes the shipped conformance suite."""

import itertools

import pytest

from tinystore.storage import HDF5Storage, JSONDirStorage, MemoryStorage
from tinystore.testing import StorageTests

_names = itertools.count()


class TestMemoryStorage(StorageTests):
    def make_opener(self, tmp_path):
        name = f"conformance-{next(_names)}"
        return lambda mode: MemoryStorage(name, mode=mode)


class TestHDF5Storage(StorageTests):
    def make_opener(self, tmp_path):
        return lambda mode: HDF5Storage(tmp_path / "store.h5", mode=mode)


class TestHDF5StorageCompressed(StorageTests):
    def make_opener(self, tmp_path):
        return lambda mode: HDF5Storage(tmp_path / "store.h5", mode=mode, compression="gzip")


class TestJSONDirStorage(StorageTests):
    def make_opener(self, tmp_path):
        return lambda mode: JSONDirStorage(tmp_path / "store.json", mode=mode)


class TestReferenceStorage(StorageTests):
    """The one-file reference backend: the developer contract only."""

    def make_opener(self, tmp_path):
        from tinystore.storage.reference import open_store

        name = f"reference://conformance-{next(_names)}"
        return lambda mode: open_store(name, mode)


try:
    import zarr  # noqa: F401
except ImportError:  # the zarr extra is missing: tests/test_zarr.py says so
    pass
else:
    from tinystore.storage.zarrstore import ZarrStorage

    class TestZarrStorage(StorageTests):
        def make_opener(self, tmp_path):
            return lambda mode: ZarrStorage(tmp_path / "store.zarr", mode=mode)

    class TestZarrS3Storage(StorageTests):
        """On a local S3 server (moto), found through the AWS environment variables."""

        @pytest.fixture(autouse=True)
        def _server(self, s3_server):
            self.bucket = s3_server["bucket"]

        def make_opener(self, tmp_path):
            url = f"s3://{self.bucket}/conformance-{next(_names)}/store.zarr"
            return lambda mode: ZarrStorage(url, mode=mode, lock_timeout=0)


try:
    import icechunk  # noqa: F401
except ImportError:  # the icechunk extra is missing: tests/test_icechunk.py says so
    pass
else:
    from tinystore.storage.icechunkstore import IcechunkStorage

    class TestIcechunkStorage(StorageTests):
        def make_opener(self, tmp_path):
            return lambda mode: IcechunkStorage(tmp_path / "store.icechunk", mode=mode)

    @pytest.mark.slow
    class TestIcechunkS3Storage(StorageTests):
        """On the local S3 server (moto): icechunk's own S3 storage, configured
        from the AWS environment variables."""

        @pytest.fixture(autouse=True)
        def _server(self, s3_server):
            self.bucket = s3_server["bucket"]

        def make_opener(self, tmp_path):
            url = f"s3://{self.bucket}/conformance-{next(_names)}/store.icechunk"
            return lambda mode: IcechunkStorage(url, mode=mode)
