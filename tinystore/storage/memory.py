"""In-memory backend: records and arrays held in a process-wide registry.

Everything is copied in and out, so nothing a caller holds aliases what is
stored.  Named stores (``MemoryStorage("results")``, or ``memory://results``
with :func:`tinystore.open`) can be reopened anywhere in the process until
:func:`MemoryStorage.drop` removes them.

Every handle opened on one name shares that name's one :class:`_Shared`
state, so each sees every write made through the others.  Handles keep the
records they parsed (the cache of :class:`RecordStorage`); the state counts
its changes, and a handle whose count is behind drops its cache when its
next session starts.  Sessions of different handles take turns, as the
cross-process lock makes them do on files: another thread waits, and the
thread that already holds a session through one handle gets
:class:`~tinystore.errors.StoreLockedError` from another (waiting for itself
would never end).
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

import numpy as np

from tinystore.errors import BackendError, NodeNotFoundError, StoreLockedError
from tinystore.storage.leaves import array_from_bytes, dtype_from_json, with_flags
from tinystore.storage.locking import DEFAULT_TIMEOUT
from tinystore.storage.record import GPath, Physical, RecordStorage, dumps_record


class _Shared:
    """The one state of a named memory store, shared by all its handles."""

    def __init__(self) -> None:
        self.groups: dict[GPath, dict] = {}
        self.generation = 0  # counts changes; a handle behind it has a stale cache
        self.lock = threading.Lock()  # held by the one session that runs now
        self.thread: int | None = None  # the thread of that session
        self.reset()

    def reset(self) -> None:
        """Empty the store (mode ``"w"``): every handle sees it empty."""
        self.groups.clear()
        self.groups[()] = {"record": dumps_record([{"g": 1, "c": {}}]), "ext": {}}
        self.generation += 1

    def acquire(self, name: str) -> None:
        me = threading.get_ident()
        if not self.lock.acquire(blocking=False):
            if self.thread == me:
                raise StoreLockedError(
                    f"memory store {name!r} is held by another handle in this thread "
                    "(inside its hold() or batch() block); use that handle, or close the block"
                )
            if not self.lock.acquire(timeout=DEFAULT_TIMEOUT):
                raise StoreLockedError(
                    f"memory store {name!r} is held by another thread; "
                    f"gave up after {DEFAULT_TIMEOUT} s"
                )
        self.thread = me

    def release(self) -> None:
        self.thread = None
        self.lock.release()


_REGISTRY: dict[str, _Shared] = {}
_LOCK = threading.Lock()
_ANONYMOUS = itertools.count()
MODES = ("r", "r+", "a", "w", "w-", "x")


class _MemoryPhysical(Physical):
    def __init__(self, name: str, mode: str):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        with _LOCK:
            state = _REGISTRY.get(name)
            if mode in ("r", "r+") and state is None:
                raise NodeNotFoundError(f"no memory store named {name!r}")
            if mode in ("w-", "x") and state is not None:
                raise BackendError(f"memory store {name!r} already exists (mode {mode!r})")
            fresh = state is None
            if fresh:
                state = _REGISTRY[name] = _Shared()
        self._state = state
        self._groups = state.groups
        self._seen = -1  # the generation this handle's cache reflects
        self.name = name
        self.readonly = mode == "r"
        self.location = f"memory://{name}"
        if mode == "w" and not fresh:
            state.acquire(name)  # not while another handle is half-way through
            try:
                state.reset()
            finally:
                state.release()

    def begin(self, write: bool) -> None:
        state = self._state
        state.acquire(self.name)
        # RecordStorage drops its cached records when a session starts on a
        # ``shared`` physical: so this handle does exactly when another wrote.
        self.shared = self._seen != state.generation
        self._seen = state.generation

    def end(self) -> None:
        self._state.release()

    def _changed(self) -> None:
        """Count a change; this handle's cache already holds it."""
        state = self._state
        state.generation += 1
        self._seen = state.generation

    def _group(self, gpath: GPath) -> dict:
        return self._groups[gpath]

    def read_record(self, gpath: GPath) -> bytes | None:
        group = self._groups.get(gpath)
        return None if group is None else group["record"]

    def write_record(self, gpath: GPath, data: bytes) -> None:
        self._group(gpath)["record"] = data
        self._changed()

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        raw = self._group(gpath)["ext"][name]
        if entry["k"] == "A":
            return array_from_bytes(raw, entry)
        return bytes(raw)

    def read_external_slice(self, gpath: GPath, name: str, entry: dict, selection: Any) -> Any:
        """The selection of the stored bytes, copied (the rest is not copied)."""
        raw = self._group(gpath)["ext"][name]
        dtype = with_flags(dtype_from_json(entry["d"]), entry)
        shape = tuple(entry["s"])
        stored = np.frombuffer(raw, dtype, count=int(np.prod(shape, dtype=np.int64)))
        part = stored.reshape(shape, order=entry.get("o", "C"))[selection]
        return part.copy() if isinstance(part, np.ndarray) else part

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        if type(value) is np.ndarray:
            raw = value.tobytes(order=entry.get("o", "C"))
        else:
            raw = bytes(value)
        self._group(gpath)["ext"][name] = raw
        self._changed()

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        self._group(gpath)["ext"].pop(name, None)
        self._changed()

    def create_group(self, gpath: GPath) -> None:
        self._groups[gpath] = {"record": None, "ext": {}}
        self._changed()

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        n = len(gpath)
        out = [("X", name, {"k": "A"}) for name in self._group(gpath)["ext"]]
        out += [("G", k[-1], {}) for k in self._groups if len(k) == n + 1 and k[:n] == gpath]
        return out

    def delete_group(self, gpath: GPath) -> None:
        n = len(gpath)
        for key in [k for k in self._groups if k[:n] == gpath]:
            del self._groups[key]
        self._changed()

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        with _LOCK:
            if _REGISTRY.get(self.name) is not self._state:
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
