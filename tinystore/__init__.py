"""tinystore: store any picklable Python object in browsable, hierarchical storage."""

from tinystore import errors
from tinystore.storage import GenericStorage, HDF5Storage, JSONDirStorage, MemoryStorage, Tree

__version__ = "0.1.0"

__all__ = [
    "errors",
    "GenericStorage",
    "HDF5Storage",
    "JSONDirStorage",
    "MemoryStorage",
    "Tree",
    "__version__",
]
