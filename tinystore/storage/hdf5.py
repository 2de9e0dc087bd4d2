"""HDF5 backend (h5py).

Each physical group is an HDF5 group holding its record as the string
dataset ``@record``; large arrays are HDF5 datasets (in their own dtype when
HDF5 has it, else as raw bytes with the dtype kept in the record), so any
HDF5 tool can read them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from tinystore.errors import BackendError, CorruptStoreError, NotAStoreError
from tinystore.storage.journal import JournaledFile, roll_back
from tinystore.storage.leaves import array_from_bytes, dtype_from_json
from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock
from tinystore.storage.record import (
    MAX_RECORD_BYTES,
    GPath,
    Physical,
    RecordStorage,
    dumps_record,
)

RECORD = "@record"
MODES = ("r", "r+", "a", "w", "w-", "x")


def _native_ok(dtype: np.dtype) -> bool:
    """True if HDF5 holds this dtype natively (h5py round-trips it exactly)."""
    if dtype.fields is not None:
        # h5py drops field titles and the aligned flag: such dtypes go as raw bytes
        if dtype.isalignedstruct or any(len(f) > 2 for f in dtype.fields.values()):
            return False
        return all(_native_ok(f[0]) for f in dtype.fields.values())
    if dtype.subdtype is not None:
        return _native_ok(dtype.subdtype[0])
    return dtype.kind in "biufc" or (dtype.kind == "S" and dtype.itemsize > 0)


class _HDF5Physical(Physical):
    """An HDF5 file, opened for the length of each session only.

    Between sessions the file is closed, so it is complete on disk and other
    processes may use it; within a session this process holds the lock.
    """

    shared = True

    def __init__(
        self,
        filename: str | os.PathLike,
        mode: str,
        compression: Any,
        compression_opts: Any,
        lock_timeout: float,
    ):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self.filename = os.fspath(filename)
        self.location = self.filename
        self.readonly = mode == "r"
        self._file: Any = None
        self._raw: JournaledFile | None = None
        self._journal_path = self.filename + ".journal"
        self._dataset_options: dict = {}
        if compression is not None:
            self._dataset_options = {"compression": compression}
            if compression_opts is not None:
                self._dataset_options["compression_opts"] = compression_opts
        path = Path(self.filename)
        if path.is_dir():
            raise NotAStoreError(f"{self.filename} is a directory, not an HDF5 file")
        if mode in ("r", "r+") and not path.exists():
            raise FileNotFoundError(f"no such file: {self.filename}")  # and leave no lock file
        if not self.readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = StoreLock(self.filename + ".lock", self.filename, lock_timeout, self.readonly)
        self._lock.acquire()
        try:
            self._recover()
            self._prepare(mode)
        finally:
            self._lock.release()

    def _prepare(self, mode: str) -> None:
        """Apply h5py's mode semantics once, and check the file is ours."""
        path = Path(self.filename)
        exists = path.exists()
        if mode in ("r", "r+") and not exists:
            raise FileNotFoundError(f"no such file: {self.filename}")
        if mode in ("w-", "x") and exists:
            raise FileExistsError(f"{self.filename} already exists (mode {mode!r})")
        if mode == "w" and exists:
            self._check_ours_or_empty(path)
        if self.readonly and exists and path.stat().st_size == 0:
            raise NotAStoreError(f"{self.filename} is an empty file, not a tinystore file")
        if mode == "w" or not exists or path.stat().st_size == 0:
            with h5py.File(self.filename, "w", locking=False) as f:
                f.create_dataset(RECORD, data=np.bytes_(dumps_record([{"g": 1, "c": {}}])))
            return
        self._file = self._h5open("r")
        try:
            if RECORD not in self._file:
                raise NotAStoreError(
                    f"{self.filename} is an HDF5 file, but not a tinystore file (it has no "
                    f"{RECORD!r} record)"
                )
        finally:
            self._file.close()
            self._file = None

    def _h5open(self, mode: str) -> h5py.File:
        try:
            return h5py.File(self.filename, mode, locking=False)
        except FileNotFoundError:
            raise FileNotFoundError(f"no such file: {self.filename}") from None
        except OSError as exc:
            if os.path.exists(self.filename) and not h5py.is_hdf5(self.filename):
                raise NotAStoreError(f"{self.filename} is not an HDF5 file") from None
            raise CorruptStoreError(f"{self.filename} cannot be opened: {exc}") from None

    def _check_ours_or_empty(self, path: Path) -> None:
        if path.stat().st_size == 0:
            return
        if not h5py.is_hdf5(self.filename):
            raise NotAStoreError(
                f"refusing to overwrite {self.filename}: it is not a tinystore file"
            )
        with self._h5open("r") as f:
            if RECORD not in f:
                raise NotAStoreError(
                    f"refusing to overwrite {self.filename}: it is not a tinystore file"
                )

    # sessions: reads open the file directly; writes go through a rollback
    # journal, so a killed writer leaves the file as its last session did
    def begin(self, write: bool) -> None:
        self._lock.acquire()
        try:
            self._recover()
            self._file = self._open_writer() if write else self._h5open("r")
        except BaseException:
            self._lock.release()
            raise

    def _recover(self) -> None:
        if os.path.exists(self._journal_path) and not self.readonly:
            roll_back(self.filename, self._journal_path)

    def _open_writer(self) -> h5py.File:
        self._raw = JournaledFile(self.filename, self._journal_path)
        try:
            return h5py.File(self._raw, "r+")
        except BaseException:
            self._raw.close()
            roll_back(self.filename, self._journal_path)
            self._raw = None
            raise

    def upgrade(self) -> None:
        self._file.close()
        self._file = self._open_writer()

    def end(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
                if self._raw is not None:
                    self._raw.commit()
        finally:
            self._file = None
            self._raw = None
            self._lock.release()

    def _group(self, gpath: GPath) -> h5py.Group:
        return self._file["/".join(gpath)] if gpath else self._file

    def read_record(self, gpath: GPath) -> bytes | None:
        try:
            group = self._group(gpath)
        except KeyError:
            return None
        if not isinstance(group, h5py.Group):
            raise CorruptStoreError(f"/{'/'.join(gpath)} in {self.filename} is not a group")
        ds = group.get(RECORD)
        if ds is None:
            return None
        if not isinstance(ds, h5py.Dataset) or ds.shape != () or ds.dtype.kind != "S":
            raise CorruptStoreError(f"{RECORD} in group /{'/'.join(gpath)} is not a record")
        if ds.dtype.itemsize > MAX_RECORD_BYTES:
            raise CorruptStoreError(f"{RECORD} in group /{'/'.join(gpath)} is too large")
        return bytes(ds[()])

    def write_record(self, gpath: GPath, data: bytes) -> None:
        group = self._group(gpath)
        if RECORD in group:
            del group[RECORD]
        group.create_dataset(RECORD, data=np.bytes_(data))

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        ds = self._group(gpath).get(name)
        where = f"dataset {name!r} in /{'/'.join(gpath)}"
        if not isinstance(ds, h5py.Dataset):
            raise CorruptStoreError(f"{where} is missing or not a dataset")
        if entry["k"] != "A":
            if ds.dtype != np.uint8 or ds.ndim != 1:
                raise CorruptStoreError(f"{where} does not hold bytes")
            return ds[()].tobytes()
        dtype = dtype_from_json(entry["d"])
        if entry.get("r"):
            expected = (int(np.prod(entry["s"], dtype=np.float64)) * dtype.itemsize,)
            expected_dtype = np.dtype(np.uint8)
        else:
            expected, expected_dtype = tuple(entry["s"]), dtype
        if ds.shape != expected or ds.dtype != expected_dtype:
            raise CorruptStoreError(
                f"{where} holds {ds.dtype}{ds.shape}, but the record says "
                f"{expected_dtype}{expected}"
            )
        data = ds[()]
        if entry.get("r"):
            return array_from_bytes(np.asarray(data).tobytes(), entry)
        arr = np.asarray(data)
        if entry.get("o") == "F":
            arr = np.asfortranarray(arr)
        return arr

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        group = self._group(gpath)
        if name in group:  # left by a killed process: the name is unused
            del group[name]
        if type(value) is not np.ndarray:
            group.create_dataset(name, data=np.frombuffer(bytes(value), dtype=np.uint8))
            return
        if _native_ok(value.dtype) and value.size:
            group.create_dataset(name, data=value, **self._dataset_options)
        elif _native_ok(value.dtype):
            group.create_dataset(name, shape=value.shape, dtype=value.dtype)
        else:
            raw = np.frombuffer(value.tobytes(order=entry.get("o", "C")), dtype=np.uint8)
            group.create_dataset(name, data=raw, **self._dataset_options)
            entry["r"] = 1

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        group = self._group(gpath)
        if name in group:
            del group[name]

    def create_group(self, gpath: GPath) -> None:
        parent = self._group(gpath[:-1])
        if gpath[-1] in parent:  # left by a killed process: the name is unused
            del parent[gpath[-1]]
        parent.create_group(gpath[-1])

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        out = []
        for name, obj in self._group(gpath).items():
            if name != RECORD:
                kind = "G" if isinstance(obj, h5py.Group) else "X"
                out.append((kind, name, {"k": "A"} if kind == "X" else {}))
        return out

    def delete_group(self, gpath: GPath) -> None:
        parent = self._group(gpath[:-1])
        if gpath[-1] in parent:
            del parent[gpath[-1]]

    def commit(self) -> None:
        self._file.flush()

    def close(self) -> None:
        pass  # the file is open only during sessions

    def reopen(self) -> None:
        if not os.path.exists(self.filename):
            raise FileNotFoundError(f"no such file: {self.filename}")


class HDF5Storage(RecordStorage):
    """A storage in an HDF5 file.

    ``mode`` is h5py's: ``"r"`` read-only, ``"r+"`` read/write (must exist),
    ``"a"`` read/write (created if missing), ``"w"`` create or truncate
    (refuses files tinystore did not write), ``"w-"``/``"x"`` create (must not
    exist).  ``compression`` (e.g. ``"gzip"``, ``"lzf"``) applies to the
    arrays stored as datasets.

    The file is opened for each operation and closed after it, under a
    cross-process lock (the file ``<filename>.lock`` beside it), so several
    processes can use one file.  Writes go through a rollback journal
    (``<filename>.journal`` while a write is under way), so a killed process
    leaves the file as it was after its last complete write.  ``lock_timeout`` is how long to wait
    for another process (seconds); ``storage.hold()`` / ``storage.batch()``
    keep the file open for a block of reads / writes.

    >>> import tempfile, os
    >>> fn = os.path.join(tempfile.mkdtemp(), "example.h5")
    >>> with HDF5Storage(fn, mode="w") as s:
    ...     s["energy"] = -3.5
    >>> HDF5Storage(fn, mode="r")["energy"]
    -3.5
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        mode: str = "a",
        compression: Any = None,
        compression_opts: Any = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
    ):
        self._init_root(_HDF5Physical(filename, mode, compression, compression_opts, lock_timeout))
