"""The storage layer: groups, leaves and backends.  Knows nothing of objects."""

from tinystore.storage.base import GenericStorage, Tree
from tinystore.storage.hdf5 import HDF5Storage
from tinystore.storage.jsondir import JSONDirStorage
from tinystore.storage.leaves import is_leaf
from tinystore.storage.memory import MemoryStorage
from tinystore.storage.record import RecordStorage

__all__ = [
    "GenericStorage",
    "Tree",
    "RecordStorage",
    "MemoryStorage",
    "HDF5Storage",
    "JSONDirStorage",
    "is_leaf",
]
