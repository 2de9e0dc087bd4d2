"""The reference backend: the developer contract alone, on dicts in memory.

It implements only the abstract methods of
:class:`~tinystore.storage.base.GenericStorage` and declares no optional
capability, so everything else (paths, the object codec, metadata, key
order, sharing checks) comes from the base class.  It stores only simple
leaves, as copies; anything else makes ``_set`` raise ``TypeError``, and the
base class decomposes it.  ``docs/extending.rst`` walks through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tinystore.storage.base import GenericStorage
from tinystore.storage.registry import BackendSpec

__all__ = ["DictStorage", "open_store", "SPEC"]

_SCALARS = (type(None), bool, float, str, bytes)


def _simple_copy(value: Any) -> Any:
    """A copy of ``value`` if it is a simple leaf; else ``TypeError``."""
    t = type(value)
    if t in _SCALARS or (t is int and -(2**63) <= value < 2**63):
        return value  # immutable
    if t is np.ndarray and value.dtype.kind in "biufc" and not value.dtype.metadata:
        return value.copy(order="K")  # Fortran order stays Fortran order
    raise TypeError(f"DictStorage does not store {t.__name__} natively")


class DictStorage(GenericStorage):
    """A handle on a group of a store kept in dicts (nothing but the contract).

    ``items``: the group's dict (key -> leaf, or dict for a child group), to
    open a second handle on the same data; a new, empty store by default.
    """

    def __init__(self, name: str = "", items: dict | None = None):
        self._name = name
        self._items: dict[str, Any] = {} if items is None else items

    def __getitem__(self, key: str) -> Any:
        value = self._items[key]
        return DictStorage(key, value) if type(value) is dict else _simple_copy(value)

    def _set(self, key: str, value: Any) -> None:
        self._items[key] = _simple_copy(value)

    def __delitem__(self, key: str) -> None:
        del self._items[key]

    def create_group(self, key: str) -> GenericStorage:
        if type(self._items.get(key)) is not dict:
            self._items[key] = {}
        return DictStorage(key, self._items[key])

    @property
    def name(self) -> str:
        return self._name

    def list_nodes(self) -> list[str]:
        return [k for k, v in self._items.items() if type(v) is not dict]

    def list_groups(self) -> list[str]:
        return [k for k, v in self._items.items() if type(v) is dict]


_STORES: dict[str, dict] = {}


def open_store(location: str, mode: str = "a") -> DictStorage:
    """The store named ``location``, kept for the life of the process (an opener
    for :func:`tinystore.storage.registry.register_backend`)."""
    if mode in ("r", "r+") and location not in _STORES:
        raise FileNotFoundError(f"no store named {location!r}")
    if mode == "w" or location not in _STORES:
        _STORES[location] = {}
    return DictStorage(items=_STORES[location]).open(mode)  # type: ignore[return-value]


def _remove_store(location: str) -> None:
    if _STORES.pop(location, None) is None:
        raise FileNotFoundError(f"no store named {location!r}")


#: The backend, ready for ``register_backend(SPEC)``: locations ``reference://name``.
SPEC = BackendSpec(
    "reference",
    open_store,
    remover=_remove_store,
    detect=lambda location: str(location).startswith("reference://"),
    schemes=("reference",),
    description="the reference backend (dicts in memory; the developer contract only)",
)
