"""Zarr v3 backend: a local folder or object storage (S3, GCS, Azure).

The store is a real Zarr v3 hierarchy.  Large arrays and byte strings are
Zarr arrays (zarr's default chunking and compression) named after their keys
under the groups that hold them, so ``zarr.open_group``, xarray and
``dask.array.from_zarr`` read them without tinystore.

The records (one per physical group, see :mod:`tinystore.storage.record`)
are all kept in one object: the attributes of the root group's
``zarr.json``, under ``"tinystore"``::

    {"format": [1, 0], "records": {"": root record, "jobs": record, ...}}

On object storage, requests are what costs (tens of milliseconds each), so
this layout makes the whole tree of records one request to read and one to
write: loading a small object is one GET, saving it one PUT, and browsing a
store of a thousand groups still one GET.  It also makes every commit
atomic: arrays are written under new names first, then the single PUT of the
root ``zarr.json`` switches every record at once, so a reader sees the store
before or after a save, never a mix.  A sub-group gets its own (plain)
``zarr.json`` when it first holds an array: zarr writes it, so that plain
zarr can walk down to the array.

Concurrency (see docs/guarantees.rst): on a local folder a lock file beside
the folder (``<folder>.lock``) serialises every operation, as for the other
file backends.  Object storage has no locks: a writer takes a *lease*, an
object ``<store>.lease`` created with a conditional put (``If-None-Match``),
and a second writer that finds a live lease is refused
(:class:`~tinystore.errors.StoreLockedError`) instead of overwriting the
first one's records.  Readers take no lease.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tinystore.errors import (
    BackendError,
    CorruptStoreError,
    NotAStoreError,
    StoreLockedError,
)
from tinystore.storage.leaves import array_from_bytes, dtype_from_json, with_flags
from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock, beside
from tinystore.storage.record import (
    FORMAT_VERSION,
    MAX_RECORD_BYTES,
    GPath,
    Physical,
    RecordStorage,
    dumps_record,
)

MODES = ("r", "r+", "a", "w", "w-", "x")
#: URL schemes this backend opens (through obstore, or fsspec if obstore is missing)
SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss")
#: Seconds a writer's lease on object storage stays valid without being renewed.
DEFAULT_LEASE_TTL = 600.0
#: Names zarr gives a meaning to inside a group: a leaf named so is stored as "%name".
_ZARR_NAMES = frozenset(["zarr.json", ".zarray", ".zgroup", ".zattrs", ".zmetadata", "c"])
_GROUP_DOC = b'{"zarr_format":3,"node_type":"group","attributes":{}}'
_ROOT_HEAD = b'{"zarr_format":3,"node_type":"group","attributes":{"tinystore":'
_EMPTY_ROOT = dumps_record([{"g": 1, "c": {}}])
#: The writer's lease on object storage (an object zarr ignores, there during writes only)
LEASE = "@tinystore.lease"
_INSTALL = "the zarr backend needs the zarr package: pip install 'tinystore[zarr]'"
_INSTALL_URL = (
    "zarr stores on object storage need zarr and obstore (or fsspec): pip install 'tinystore[s3]'"
)


def _zarr():
    try:
        import zarr
    except ImportError:
        raise BackendError(_INSTALL) from None
    return zarr


def _sync(coro: Any) -> Any:
    from zarr.core.sync import sync

    return sync(coro)


def _is_url(location: str) -> bool:
    head, sep, _ = location.partition("://")
    return bool(sep) and head.lower() in SCHEMES


def _normal_url(url: str) -> str:
    """``url`` with the scheme obstore knows (``gcs://`` is ``gs://``), no trailing /."""
    scheme, _, rest = url.partition("://")
    scheme = {"gcs": "gs", "s3a": "s3"}.get(scheme.lower(), scheme.lower())
    rest = rest.strip("/")
    if not rest:
        raise BackendError(f"{url!r} names no bucket")
    return f"{scheme}://{rest}"


def _object_store(url: str, options: dict, readonly: bool) -> Any:
    """A zarr store for ``url``: obstore's if installed, else fsspec's."""
    _zarr()
    try:
        from obstore.store import from_url
    except ImportError:
        from_url = None
    if from_url is not None:
        from zarr.storage import ObjectStore

        try:
            return ObjectStore(from_url(url, **options), read_only=readonly)
        except Exception as exc:  # obstore's errors: bad option, missing account ...
            raise BackendError(f"cannot open {url!r}: {exc}") from None
    try:
        from zarr.storage import FsspecStore

        return FsspecStore.from_url(url, storage_options=options or None, read_only=readonly)
    except ImportError:
        raise BackendError(_INSTALL_URL) from None


def _buffer(data: bytes) -> Any:
    from zarr.core.buffer import default_buffer_prototype

    return default_buffer_prototype().buffer.from_bytes(data)


class _ZarrPhysical(Physical):
    """A zarr store seen as records and external leaves (see the module doc)."""

    shared = True

    def __init__(
        self,
        location: str,
        mode: str,
        storage_options: dict | None = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        store_wrapper: Any = None,
        check: bool = True,
    ):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self.location = location
        self.readonly = mode == "r"
        self.lock_timeout = lock_timeout
        self.lease_ttl = lease_ttl
        self._lease: bytes | None = None
        self._lease_taken = 0.0
        self._lock: StoreLock | None = None
        self._journal_path: str | None = None
        self._journal: Any = None
        self._doc: dict | None = None  # the parsed root document of this session
        self._doc_raw: bytes | None = None  # its bytes
        self._parents: set[str] = set()  # groups whose zarr.json this handle wrote
        self._pending: dict[str, bytes] = {}  # records written, not yet committed
        self._dropped: set[str] = set()  # groups deleted since the root was read
        #: the mode whose checks wait for the first session (``check=False``)
        self._unchecked: str | None = None
        self.lease_key: str | None = None
        self._connect(location, mode, storage_options, store_wrapper)
        if check:
            self._open(mode)
        else:  # tinystore.save/load: the first session opens (one request fewer)
            self._unchecked = mode

    def _connect(
        self, location: str, mode: str, storage_options: dict | None, store_wrapper: Any
    ) -> None:
        """Make ``self.store`` (and the lock or lease): the seam a subclass
        with another way of reaching the same layout replaces (icechunk)."""
        if _is_url(location):
            url = _normal_url(location)
            self.store = _object_store(url, dict(storage_options or {}), self.readonly)
            self.lease_key = LEASE
        else:
            self._open_local(location, mode, storage_options)
        if store_wrapper is not None:
            self.store = store_wrapper(self.store)

    def _open_local(self, location: str, mode: str, storage_options: dict | None) -> None:
        zarr = _zarr()
        if storage_options:
            raise BackendError("storage_options are for object storage URLs, not local folders")
        root = Path(location)
        if root.exists() and not root.is_dir():
            raise NotAStoreError(f"{root} is a file, not a zarr folder")
        if mode in ("r", "r+") and not root.is_dir():
            raise FileNotFoundError(f"no such file or directory: {location!r}")
        if not self.readonly:  # (a dangling symbolic link: the folder it names)
            root.resolve().mkdir(parents=True, exist_ok=True)
        self.lease_key = None
        self.store = zarr.storage.LocalStore(root, read_only=self.readonly)
        path = beside(root)  # through a symbolic link: the folder's own
        self._lock = StoreLock(path + ".lock", location, self.lock_timeout, self.readonly)
        self._journal_path = path + ".journal"

    @staticmethod
    def _key(*parts: str) -> str:
        """The store key of a path of physical names (escaped where zarr needs it)."""
        return "/".join(_escape(p) for p in parts if p)

    # -- raw object access ------------------------------------------------------
    def _get(self, key: str) -> bytes | None:
        from zarr.core.buffer import default_buffer_prototype

        buf = _sync(self.store.get(key, default_buffer_prototype()))
        return None if buf is None else buf.to_bytes()

    def _set(self, key: str, data: bytes) -> None:
        _sync(self.store.set(key, _buffer(data)))

    def _delete_prefix(self, prefix: str) -> None:
        _sync(self.store.delete_dir(prefix))

    def _wipe(self) -> None:
        """Delete everything in the store but the lease."""
        self._parents.clear()
        if self.lease_key is None:  # a local folder has no lease inside
            self._delete_prefix("")
            return
        for name in self._list_dir(""):
            if name != self.lease_key:
                _sync(self.store.delete(name))
                self._delete_prefix(name)

    def _list_dir(self, prefix: str) -> list[str]:
        async def collect():
            return [k async for k in self.store.list_dir(prefix)]

        return _sync(collect())

    # -- opening ------------------------------------------------------------------
    def _open(self, mode: str) -> None:
        if self._lock is not None:
            self._lock.acquire(shared=mode == "r")
        try:
            doc = self._read_doc()
            if mode in ("r", "r+") and doc is None:
                raise FileNotFoundError(f"no tinystore zarr store at {self.location}")
            if mode in ("w-", "x") and doc is not None:
                raise FileExistsError(f"{self.location} already exists (mode {mode!r})")
            if mode == "w" or doc is None:
                self._create(doc is not None)
                doc = self._read_doc()
            self._doc = doc
        finally:
            if self._lock is not None:
                self._lock.release()

    def _create(self, ours: bool) -> None:
        """Make an empty store here (mode "w": in place of this one)."""
        if not ours and any(name != self.lease_key for name in self._list_dir("")):
            raise NotAStoreError(
                f"{self.location} holds data that tinystore did not write (no tinystore "
                "zarr.json); refusing to use it"
            )
        if not ours:  # a conditional create: two writers creating it at once both succeed
            self._write_doc({"": _EMPTY_ROOT}, create=True)
            return
        took = self._lease is None
        self._take_lease()
        try:
            self._wipe()
            self._write_doc({"": _EMPTY_ROOT})
        finally:
            if took:
                self._release_lease()

    def _read_doc(self) -> dict | None:
        """The root document: ``{"records": {path: record}}``, or None."""
        data = self._get("zarr.json")
        self._doc_raw = data
        if data is None:
            return None
        if len(data) > MAX_RECORD_BYTES:
            raise CorruptStoreError(f"the zarr.json of {self.location} is too large")
        try:
            doc = orjson.loads(data)
            ours = doc["attributes"]["tinystore"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise NotAStoreError(
                f"{self.location} is a zarr store that tinystore did not write "
                "(its root zarr.json has no tinystore attribute); refusing to use it"
            ) from None
        if type(ours) is not dict or type(ours.get("records")) is not dict:
            raise CorruptStoreError(f"the tinystore attribute of {self.location} is damaged")
        version = ours.get("format")
        if type(version) is list and version and type(version[0]) is int:
            if version[0] > FORMAT_VERSION[0]:
                from tinystore.errors import FormatVersionError

                raise FormatVersionError(
                    f"{self.location} was written in tinystore format {version[0]}.x; "
                    "upgrade tinystore to read it"
                )
        return ours

    def _write_doc(self, records: dict, create: bool = False) -> None:
        """One PUT of the root zarr.json holding every record (already JSON bytes)."""
        parts = [_ROOT_HEAD, b'{"format":', orjson.dumps(list(FORMAT_VERSION))]
        parts.append(b',"records":{')
        parts.append(b",".join(orjson.dumps(k) + b":" + v for k, v in records.items()))
        parts.append(b"}}}}")
        data = b"".join(parts)
        if create:
            _sync(self.store.set_if_not_exists("zarr.json", _buffer(data)))
        else:
            self._set("zarr.json", data)

    # -- sessions, lock and lease ---------------------------------------------
    def begin(self, write: bool) -> None:
        if self._lock is not None:  # readers share it, a writer holds it alone
            self._lock.acquire(shared=not write)
        try:
            self._doc = None  # read again: another process may have written
            self._pending.clear()
            self._dropped.clear()
            if write:
                self._take_lease()
            if self._unchecked is not None:
                self._open(self._unchecked)  # the checks deferred by check=False
                self._unchecked = None
        except BaseException:
            self._release_lease()
            if self._lock is not None:
                self._lock.release()
            raise

    def upgrade(self) -> None:
        """A read session starts writing: take the lease, and refuse if another
        writer changed the store since this session read it (its reads are stale)."""
        if self._lock is not None:  # a local folder: shared to exclusive (count stays one)
            self._lock.acquire()
            self._lock.release()
        if self._lease is not None or self.lease_key is None:
            return
        read = self._doc_raw if self._doc is not None else None
        self._take_lease()
        if read is not None:
            self._doc = None
            self._current()
            if self._doc_raw != read:
                self._release_lease()
                raise StoreLockedError(
                    f"{self.location} was changed by another writer while this operation "
                    "read it; nothing was written: do it again"
                )

    def end(self) -> None:
        try:
            self._pending.clear()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            self._release_lease()
        finally:
            if self._lock is not None:
                self._lock.release()

    def _take_lease(self) -> None:
        """Refuse to write while another writer holds the store (object storage)."""
        if self.lease_key is None or self._lease is not None:
            return
        me = orjson.dumps(
            {
                "owner": uuid.uuid4().hex,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + self.lease_ttl,
            }
        )
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.05
        while True:
            try:
                _sync(self.store.set_if_not_exists(self.lease_key, _buffer(me)))
            except Exception as exc:  # a store without conditional writes
                raise BackendError(
                    f"cannot take the write lease of {self.location}: {exc}"
                ) from None
            if self._get(self.lease_key) == me:
                self._lease = me
                self._lease_taken = time.monotonic()
                return
            if self._lease_expired():
                continue
            if time.monotonic() >= deadline:
                raise StoreLockedError(
                    f"{self.location} is being written by another writer "
                    f"({self._lease_owner()}); gave up after {self.lock_timeout} s. "
                    f"If that writer died, its lease expires by itself (lease_ttl), or delete "
                    f"{self.lease_key!r} by hand"
                )
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _lease_info(self) -> dict:
        data = self._get(self.lease_key)
        try:
            info = orjson.loads(data) if data is not None else {}
        except orjson.JSONDecodeError:
            info = {}
        return info if type(info) is dict else {}

    def _lease_expired(self) -> bool:
        """True (and the lease removed) if the lease found there has expired."""
        info = self._lease_info()
        expires = info.get("expires")
        if not info or (type(expires) in (int, float) and expires < time.time()):
            with contextlib.suppress(Exception):
                _sync(self.store.delete(self.lease_key))
            return True
        return False

    def _lease_owner(self) -> str:
        info = self._lease_info()
        return f"host {info.get('host', '?')}, pid {info.get('pid', '?')}"

    def _check_lease(self) -> None:
        """Before a commit: renew a lease past half its life, or refuse if it was lost
        (its writer ran longer than ``lease_ttl`` and another writer took over)."""
        if self._lease is None or time.monotonic() - self._lease_taken < self.lease_ttl / 2:
            return
        if self._get(self.lease_key) != self._lease:
            self._lease = None
            raise StoreLockedError(
                f"this writer's lease on {self.location} expired (lease_ttl={self.lease_ttl} s) "
                "and another writer took it; nothing of this transaction was committed"
            )
        renewed = orjson.loads(self._lease)
        renewed["expires"] = time.time() + self.lease_ttl
        self._lease = orjson.dumps(renewed)
        self._set(self.lease_key, self._lease)
        self._lease_taken = time.monotonic()

    def _release_lease(self) -> None:
        if self._lease is None:
            return
        self._lease = None
        with contextlib.suppress(Exception):  # it expires by itself
            _sync(self.store.delete(self.lease_key))

    # -- journal (local folders: a file beside the folder) ---------------------
    def journal(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        if self._journal_path is None:
            return
        if self._journal is None:
            self._journal = open(self._journal_path, "ab")
        self._journal.write(orjson.dumps([list(gpath), kind, name, entry]) + b"\n")
        self._journal.flush()

    def read_journal(self) -> list:
        if self._journal_path is None:
            return []
        try:
            with open(self._journal_path, "rb") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return []
        notes = []
        for line in lines:
            try:
                gpath, kind, name, entry = orjson.loads(line)
                notes.append((tuple(gpath), kind, name, entry))
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # the last line of a killed process may be cut short
        return notes

    def clear_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._journal_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._journal_path)

    # -- records -------------------------------------------------------------
    def _current(self) -> dict:
        if self._doc is None:
            doc = self._read_doc()
            if doc is None:
                raise CorruptStoreError(f"the root zarr.json of {self.location} is missing")
            self._doc = doc
        return self._doc

    def read_record(self, gpath: GPath) -> bytes | None:
        path = "/".join(gpath)
        pending = self._pending.get(path)
        if pending is not None:
            return pending
        record = self._current()["records"].get(path)
        if record is None or path in self._dropped:
            return None
        return orjson.dumps(record)

    def write_record(self, gpath: GPath, data: bytes) -> None:
        self._pending["/".join(gpath)] = data

    def commit(self) -> None:
        """Write the records of this transaction: one PUT of the root zarr.json.

        Only the records reachable from the root are kept: those of groups
        deleted or replaced go with the commit that drops them.
        """
        if not self._pending:
            return
        self._check_lease()
        parsed = dict(self._current()["records"])
        parsed.update({k: orjson.loads(v) for k, v in self._pending.items()})
        records = {}
        stack = [""]
        while stack:
            path = stack.pop()
            record = parsed.get(path)
            if record is None or path in records:
                continue
            records[path] = self._pending.get(path) or orjson.dumps(record)
            stack.extend(f"{path}/{name}" if path else name for name in _subgroups(record))
        self._write_doc(records)
        self._doc = {"records": {k: parsed[k] for k in records}}
        self._pending.clear()
        self._dropped.clear()

    # -- external leaves -------------------------------------------------------
    def _leaf_key(self, gpath: GPath, name: str) -> str:
        return self._key(*gpath, name)

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        key = self._leaf_key(gpath, name)
        tag = uuid.uuid4().hex[:16]
        entry["zid"] = tag  # checked on reading: a name reused meanwhile is caught
        attrs = {"tinystore_id": tag}
        if type(value) is not np.ndarray:
            data = np.frombuffer(bytes(value), np.uint8)
        elif _native(value.dtype):
            data = value
        else:  # zarr has no such data type: the raw bytes, rebuilt from the entry
            data = np.frombuffer(value.tobytes(order=entry.get("o", "C")), np.uint8)
            entry["zr"] = 1
        try:
            meta = self._array_metadata(data, attrs, [f"{name}_{i}" for i in range(data.ndim)])
        except (TypeError, ValueError):  # a data type zarr turns down after all: raw bytes
            data = np.frombuffer(value.tobytes(order=entry.get("o", "C")), np.uint8)
            entry["zr"] = 1
            meta = self._array_metadata(data, attrs, [f"{name}_0"])
        self._write_array(gpath, key, data, meta)

    @staticmethod
    def _array_metadata(data: np.ndarray, attrs: dict, dims: list) -> Any:
        """The metadata zarr gives such an array by default, made in memory."""
        zarr = _zarr()
        from zarr.storage import MemoryStore

        with warnings.catch_warnings():  # "no Zarr v3 specification yet" (strings, records)
            warnings.simplefilter("ignore")
            return zarr.create_array(
                MemoryStore(),
                shape=data.shape,
                dtype=data.dtype,
                attributes=attrs,
                dimension_names=dims,  # own names: xarray needs some, shared ones clash
            ).metadata

    def _write_array(self, gpath: GPath, key: str, data: np.ndarray, meta: Any) -> None:
        """A Zarr array, written with no request but its own.

        ``zarr.create_array`` on the store would first look for existing nodes
        at the array and at each parent, then create each parent (about two
        requests per level); here the metadata was made in memory, the
        parents' ``zarr.json`` are written once per handle, and every chunk is
        written even if empty, so that chunks left by a killed writer under
        this (unreferenced, hence free) name are all replaced.
        """
        zarr = _zarr()
        from zarr.core.buffer import default_buffer_prototype
        from zarr.storage import StorePath

        for name, buf in meta.to_buffer_dict(default_buffer_prototype()).items():
            self._set(f"{key}/{name}", buf.to_bytes())
        self._ensure_parents(gpath)
        array = zarr.AsyncArray(
            metadata=meta,
            store_path=StorePath(self.store, key),
            config={"write_empty_chunks": True},
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            zarr.Array(array)[...] = data

    def _ensure_parents(self, gpath: GPath) -> None:
        """The groups above an array have a ``zarr.json`` (plain zarr walks through them)."""
        for i in range(1, len(gpath) + 1):
            path = self._key(*gpath[:i])
            if path not in self._parents:
                _sync(self.store.set_if_not_exists(f"{path}/zarr.json", _buffer(_GROUP_DOC)))
                self._parents.add(path)

    def _open_leaf(self, gpath: GPath, name: str, entry: dict) -> Any:
        """The zarr array of an external leaf, checked to be the one its record wrote."""
        zarr = _zarr()
        key = self._leaf_key(gpath, name)
        try:
            arr = zarr.open_array(self.store, path=key, mode="r", zarr_format=3)
        except (FileNotFoundError, KeyError, zarr.errors.ArrayNotFoundError):
            raise CorruptStoreError(
                f"array {key!r} of {self.location} is missing (deleted by a writer meanwhile?)"
            ) from None
        if "zid" in entry and arr.attrs.get("tinystore_id") != entry["zid"]:
            raise CorruptStoreError(
                f"array {key!r} of {self.location} was replaced by another writer while "
                "this one was being read; read again"
            )
        return arr

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        key = self._leaf_key(gpath, name)
        data = self._open_leaf(gpath, name, entry)[...]
        if entry["k"] != "A":
            return data.tobytes()
        if entry.get("zr"):
            return array_from_bytes(data.tobytes(), entry)
        expected = dtype_from_json(entry["d"])
        shape = tuple(entry["s"])
        if (
            data.shape != shape
            or data.dtype.str[1:] != expected.str[1:]
            or (data.dtype.names is not None and data.dtype.names != expected.names)
        ):
            raise CorruptStoreError(
                f"array {key!r} holds {data.dtype}{data.shape}, but the record says "
                f"{expected}{shape}"
            )
        if data.dtype.str == expected.str:
            # the same bytes: the fields of a union over an int, or the scalar type
            # of np.record (which == ignores), come back from the record
            if (
                data.dtype != expected
                or data.dtype.type is not expected.type
                or data.dtype.names != expected.names
            ):
                data = data.view(expected)
        else:
            data = data.astype(expected)  # byte order
        if entry.get("o") == "F":
            data = np.asfortranarray(data)
        return data

    def read_external_slice(self, gpath: GPath, name: str, entry: dict, selection: Any) -> Any:
        """The selection of a zarr array: only the chunks it touches are read.
        Selections zarr reads with another meaning than numpy's (or cannot
        make: negative steps, several index arrays) read the whole array."""
        sel = _orthogonal(selection)
        if sel is None or entry["k"] != "A" or entry.get("zr"):
            return super().read_external_slice(gpath, name, entry, selection)
        arr = self._open_leaf(gpath, name, entry)
        dtype = dtype_from_json(entry["d"])
        if arr.shape != tuple(entry["s"]) or arr.dtype != dtype or arr.dtype.names is not None:
            return super().read_external_slice(gpath, name, entry, selection)
        try:
            part = arr.oindex[sel]
        except Exception:  # noqa: BLE001 - numpy's answer (an IndexError, say) on the whole
            return super().read_external_slice(gpath, name, entry, selection)
        if all(type(s) is int for s in sel):
            return part[()]  # a scalar, as numpy gives
        return part.view(with_flags(dtype, entry))

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        self._delete_prefix(self._leaf_key(gpath, name))

    # -- groups ------------------------------------------------------------------
    def create_group(self, gpath: GPath) -> None:
        """Nothing to write: a group's record goes into the root zarr.json."""
        self._dropped.discard("/".join(gpath))

    def delete_group(self, gpath: GPath) -> None:
        path = "/".join(gpath)
        self._delete_prefix(self._key(*gpath))
        self._dropped.add(path)  # out of the records at the next commit
        key = self._key(*gpath)
        self._parents = {p for p in self._parents if p != key and not p.startswith(key + "/")}

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        groups = self._current()["records"]
        prefix = "/".join(gpath)
        out = []
        for name in self._list_dir(self._key(*gpath)):
            if name == "zarr.json" or name.startswith("@") or name.endswith(".lease"):
                continue
            if name.startswith("%"):
                name = name[1:]
            path = f"{prefix}/{name}" if prefix else name
            out.append(("G", name, {}) if path in groups else ("X", name, {"k": "A"}))
        for path in groups:  # groups that hold no array yet have no objects
            head, _, name = path.rpartition("/")
            if path and head == prefix and all(n != name for _, n, _ in out):
                out.append(("G", name, {}))
        return out

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def reopen(self) -> None:
        if self._read_doc() is None:
            raise FileNotFoundError(f"no tinystore zarr store at {self.location}")


def _escape(name: str) -> str:
    """A physical name as a zarr node name: ``%`` before names zarr gives a meaning to."""
    if name in _ZARR_NAMES or name.startswith(("__", "%")):
        return "%" + name
    return name


def _orthogonal(selection: Any) -> tuple | None:
    """``selection`` as a zarr orthogonal selection that means what it means to
    numpy (ints, positive-step slices, ``...`` and at most one 1-D index
    array, then without ints), or None."""
    sel = selection if type(selection) is tuple else (selection,)
    out: list = []
    arrays = 0
    for s in sel:
        if s is Ellipsis or (type(s) is slice and (s.step is None or s.step > 0)):
            out.append(s)
        elif isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)):
            out.append(int(s))
        elif isinstance(s, (list, np.ndarray)):
            index = np.asarray(s)
            if index.ndim != 1 or index.dtype.kind not in "biu" or not index.size:
                return None
            arrays += 1
            out.append(index)
        else:
            return None
    ints = sum(type(s) is int for s in out)
    if arrays > 1 or (arrays and ints) or sum(s is Ellipsis for s in out) > 1:
        return None
    return tuple(out)


def _subgroups(record: Any) -> list[str]:
    """The names of the physical sub-groups a record refers to."""
    names = []
    nodes = record.get("nodes") if type(record) is dict else None
    for node in nodes if type(nodes) is list else ():
        children = node.get("c") if type(node) is dict else None
        if type(children) is dict:
            children = children.values()
        for entry in children if type(children) in (list, type({}.values())) else ():
            if type(entry) is dict and type(entry.get("G")) is str:
                names.append(entry["G"])
    return names


def _native(dtype: np.dtype) -> bool:
    """True if zarr stores arrays of ``dtype`` as such (else: their raw bytes)."""
    if not dtype.itemsize or dtype.hasobject:
        return False
    if dtype.names is not None and len(dtype.fields) != len(dtype.names):
        return False  # fields with titles
    if dtype.names is None:
        return (
            dtype.kind in "biufcmMSU"
            and dtype.subdtype is None
            and dtype.itemsize <= 16
            and (dtype.kind != "f" or dtype.itemsize <= 8)
            and (dtype.kind != "c" or dtype.itemsize <= 16)
        )
    # records: only packed ones of native fields, in order (zarr drops padding)
    offset = 0
    for name in dtype.names:
        field, at = dtype.fields[name][:2]
        if at != offset or not _native(field) or field.names is not None:
            return False
        offset += field.itemsize
    return offset == dtype.itemsize and not dtype.isalignedstruct


class ZarrStorage(RecordStorage):
    """A storage in a Zarr v3 hierarchy: a local folder or object storage.

    ``location``: a folder (``run.zarr``) or a URL (``s3://bucket/run.zarr``,
    ``gs://...``, ``az://...``).  ``storage_options``: passed to obstore's
    ``from_url`` (or fsspec's), e.g. ``{"endpoint": ..., "region": ...}``;
    without it the standard environment variables (``AWS_ENDPOINT_URL``,
    ``AWS_ACCESS_KEY_ID`` ...) are used.  ``lock_timeout``: seconds to wait
    for another writer (local lock, or lease on object storage);
    ``lease_ttl``: how long a writer's lease stays valid if its process dies.
    ``store_wrapper``: a function applied to the zarr store before use (for
    instance one that counts requests).  ``check=False``: the store is
    looked at (and created) by the first operation, not now (``tinystore.save``
    and ``load`` pass it: one request fewer).
    """

    def __init__(
        self,
        location: str | os.PathLike,
        mode: str = "a",
        storage_options: dict | None = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
        lease_ttl: float = DEFAULT_LEASE_TTL,
        store_wrapper: Any = None,
        check: bool = True,
    ):
        self._init_root(
            _ZarrPhysical(
                os.fspath(location),
                mode,
                storage_options,
                lock_timeout,
                lease_ttl,
                store_wrapper,
                check,
            )
        )


def is_zarr_store(location: str) -> bool:
    """True if the local folder ``location`` is a tinystore zarr store."""
    try:
        with open(os.path.join(os.fspath(location), "zarr.json"), "rb") as f:
            return b'"tinystore"' in f.read(200)
    except OSError:
        return False


def remove_zarr_store(
    location: str, storage_options: dict | None = None, lock_timeout: float | None = None
) -> None:
    """Delete a whole tinystore zarr store (refusing anything else), under its
    lock (a local folder) or lease (object storage)."""
    location = os.fspath(location)
    timeout = DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout
    if not _is_url(location):
        if not os.path.exists(location):
            raise FileNotFoundError(f"no such file or directory: {location!r}")
        if not is_zarr_store(location):
            raise NotAStoreError(f"refusing to delete {location}: it is not a tinystore zarr store")
        import shutil

        base = beside(location)
        lock = StoreLock(base + ".lock", location, timeout, readonly=False)
        lock.acquire()
        try:
            shutil.rmtree(location)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(base + ".journal")
            lock.unlink()
        finally:
            lock.release()
        return
    physical = _ZarrPhysical(location, "r+", storage_options, lock_timeout=timeout)
    physical._take_lease()
    try:
        physical._wipe()
    finally:
        physical._release_lease()
