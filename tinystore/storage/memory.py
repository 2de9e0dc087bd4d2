"""In-memory backend: records and arrays held in a process-wide registry.

Everything is copied in and out, so nothing a caller holds aliases what is
stored.  Named stores (``MemoryStorage("results")``, or ``memory://results``
with :func:`tinystore.open`) can be reopened anywhere in the process until
:func:`MemoryStorage.drop` removes them.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np

from tinystore.errors import BackendError, NodeNotFoundError
from tinystore.storage.leaves import array_from_bytes
from tinystore.storage.record import GPath, Physical, RecordStorage, dumps_record

_REGISTRY: dict[str, dict] = {}
_LOCK = threading.Lock()
_ANONYMOUS = itertools.count()
MODES = ("r", "r+", "a", "w", "w-", "x")


class _MemoryPhysical(Physical):
    def __init__(self, name: str, mode: str):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        with _LOCK:
            exists = name in _REGISTRY
            if mode in ("r", "r+") and not exists:
                raise NodeNotFoundError(f"no memory store named {name!r}")
            if mode in ("w-", "x") and exists:
                raise BackendError(f"memory store {name!r} already exists (mode {mode!r})")
            if mode == "w" or not exists:
                _REGISTRY[name] = {(): {"record": dumps_record([{"g": 1, "c": {}}]), "ext": {}}}
            self._groups = _REGISTRY[name]
        self.name = name
        self.readonly = mode == "r"
        self.location = f"memory://{name}"

    def _group(self, gpath: GPath) -> dict:
        return self._groups[gpath]

    def read_record(self, gpath: GPath) -> bytes | None:
        group = self._groups.get(gpath)
        return None if group is None else group["record"]

    def write_record(self, gpath: GPath, data: bytes) -> None:
        self._group(gpath)["record"] = data

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        raw = self._group(gpath)["ext"][name]
        if entry["k"] == "A":
            return array_from_bytes(raw, entry)
        return bytes(raw)

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        if type(value) is np.ndarray:
            raw = value.tobytes(order=entry.get("o", "C"))
        else:
            raw = bytes(value)
        self._group(gpath)["ext"][name] = raw

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        self._group(gpath)["ext"].pop(name, None)

    def create_group(self, gpath: GPath) -> None:
        self._groups[gpath] = {"record": None, "ext": {}}

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        n = len(gpath)
        out = [("X", name, {"k": "A"}) for name in self._group(gpath)["ext"]]
        out += [("G", k[-1], {}) for k in self._groups if len(k) == n + 1 and k[:n] == gpath]
        return out

    def delete_group(self, gpath: GPath) -> None:
        n = len(gpath)
        for key in [k for k in self._groups if k[:n] == gpath]:
            del self._groups[key]

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        with _LOCK:
            if _REGISTRY.get(self.name) is not self._groups:
                raise NodeNotFoundError(f"memory store {self.name!r} was dropped")


class MemoryStorage(RecordStorage):
    """A storage kept in memory, optionally under a name that can be reopened.

    >>> s = MemoryStorage("example", mode="w")
    >>> s["x"] = 1.5
    >>> MemoryStorage("example")["x"]
    1.5
    >>> MemoryStorage.drop("example")
    """

    def __init__(self, name: str | None = None, mode: str = "a"):
        if name is None:
            name = f"anonymous-{next(_ANONYMOUS)}"
        if name.startswith("memory://"):
            name = name[len("memory://") :]
        self._init_root(_MemoryPhysical(name, mode))

    @staticmethod
    def drop(name: str) -> None:
        """Forget the named store (its open storages see it no more)."""
        if name.startswith("memory://"):
            name = name[len("memory://") :]
        with _LOCK:
            _REGISTRY.pop(name, None)

    @staticmethod
    def exists(name: str) -> bool:
        if name.startswith("memory://"):
            name = name[len("memory://") :]
        return name in _REGISTRY

    @staticmethod
    def names() -> list[str]:
        """Names of the memory stores that exist in this process."""
        return sorted(_REGISTRY)
