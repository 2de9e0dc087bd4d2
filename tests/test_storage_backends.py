"""Every built-in backend passes the shipped conformance suite."""

import itertools

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
