"""tinystore: store any picklable Python object in browsable, hierarchical storage.

>>> import tinystore
>>> tinystore.save({"energy": -3.5, "steps": [1, 2, 3]}, "memory://doc-init")
>>> tinystore.load("memory://doc-init", path="steps")
[1, 2, 3]
"""

from tinystore import backends, errors
from tinystore._api import delete, history, load, open, save, tag
from tinystore._compact import compact
from tinystore.objects.codec import ObjectCodec
from tinystore.objects.recipe import Recipe
from tinystore.objects.registry import Adapter, register_adapter, register_reducer
from tinystore.objects.storable import Storable
from tinystore.storage import GenericStorage, HDF5Storage, JSONDirStorage, MemoryStorage, Tree

__version__ = "0.1.0"

__all__ = [
    "save",
    "load",
    "delete",
    "compact",
    "history",
    "tag",
    "open",
    "backends",
    "errors",
    "Storable",
    "Recipe",
    "Adapter",
    "register_adapter",
    "register_reducer",
    "ObjectCodec",
    "GenericStorage",
    "HDF5Storage",
    "JSONDirStorage",
    "MemoryStorage",
    "Tree",
    "__version__",
]
