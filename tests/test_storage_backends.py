"""Every built-in backend passes the shipped conformance suite."""

import itertools

import pytest
from conftest import s3_location

from tinystore.storage import HDF5Storage, JSONDirStorage, MemoryStorage
from tinystore.testing import StorageTests

_names = itertools.count()


class OnS3:
    """Mixin: the test class's stores go on the session's S3 server (moto)."""

    @pytest.fixture(autouse=True)
    def _server(self, s3_server):
        self.s3 = s3_server


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

    class TestZarrS3Storage(OnS3, StorageTests):
        """On a local S3 server (moto), found through the AWS environment variables."""

        def make_opener(self, tmp_path):
            url = s3_location(self.s3, "store.zarr", "conformance")
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
    class TestIcechunkS3Storage(OnS3, StorageTests):
        """On the local S3 server (moto): icechunk's own S3 storage, configured
        from the AWS environment variables."""

        def make_opener(self, tmp_path):
            url = s3_location(self.s3, "store.icechunk", "conformance")
            return lambda mode: IcechunkStorage(url, mode=mode)
