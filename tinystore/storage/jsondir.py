"""JSON-directory backend: a directory tree you can read with any editor.

Each physical group is a directory holding its record as ``@record.json``;
large arrays are ``.npy`` files (read with ``allow_pickle=False``) and large
byte strings ``.bin`` files beside it.  Every user key is encoded into a safe
file name (:func:`tinystore._paths.safe_name`), so no key can escape the root
or collide with another on a case-insensitive file system.  Files are
written to a temporary name and renamed, so a killed process never leaves a
half-written file in place.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tinystore.errors import BackendError, CorruptStoreError, NotAStoreError
from tinystore.storage.leaves import array_from_bytes, dtype_from_json
from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock
from tinystore.storage.record import (
    MAX_RECORD_BYTES,
    GPath,
    Physical,
    RecordStorage,
    dumps_record,
)

RECORD = "@record.json"
TMP_PREFIX = "@tmp-"
LOCK = "@lock"
JOURNAL = "@journal"
MODES = ("r", "r+", "a", "w", "w-", "x")


def is_store_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory written by this backend."""
    return os.path.isfile(os.path.join(path, RECORD))


class _DirPhysical(Physical):
    """A directory tree; every file is written to a temporary name and renamed."""

    shared = True
    pretty = True

    def __init__(self, dirname: str | os.PathLike, mode: str, lock_timeout: float):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self.root = Path(dirname)
        self.location = os.fspath(dirname)
        self.readonly = mode == "r"
        root = self.root
        if root.exists() and not root.is_dir():
            raise NotAStoreError(f"{root} is a file, not a tinystore directory")
        ours = is_store_dir(root)
        if root.is_dir() and not ours and any(not p.name.startswith("@") for p in root.iterdir()):
            raise NotAStoreError(
                f"{root} is a directory that tinystore did not write (no {RECORD}); "
                "refusing to use it"
            )
        if mode in ("r", "r+") and not ours:
            raise FileNotFoundError(f"no tinystore directory at {root}")
        if mode in ("w-", "x") and ours:
            raise FileExistsError(f"{root} already exists (mode {mode!r})")
        if not self.readonly:
            root.mkdir(parents=True, exist_ok=True)
        self._lock = StoreLock(root / LOCK, self.location, lock_timeout, self.readonly)
        self._journal: Any = None
        self._lock.acquire()
        try:
            if mode == "w" and ours:
                for child in root.iterdir():
                    if child.name != LOCK:
                        shutil.rmtree(child) if child.is_dir() else child.unlink()
            if not is_store_dir(root):
                self.write_record((), dumps_record([{"g": 1, "c": {}}], pretty=True))
        finally:
            self._lock.release()

    # sessions
    def begin(self, write: bool) -> None:
        self._lock.acquire()
        if write:
            try:
                self._remove_temporaries()
            except BaseException:
                self._lock.release()
                raise

    def end(self) -> None:
        try:
            if self._journal is not None:
                self._journal.close()
                self._journal = None
        finally:
            self._lock.release()

    def _remove_temporaries(self) -> None:
        # temporary files live in the root only, so this is one directory listing;
        # holding the lock, nobody else can be writing one now
        for child in self.root.iterdir():
            if child.name.startswith(TMP_PREFIX):
                child.unlink(missing_ok=True)

    def journal(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        if self._journal is None:
            self._journal = open(self.root / JOURNAL, "ab")
        self._journal.write(orjson.dumps([list(gpath), kind, name, entry]) + b"\n")
        self._journal.flush()

    def read_journal(self) -> list:
        try:
            lines = (self.root / JOURNAL).read_bytes().splitlines()
        except FileNotFoundError:
            return []
        notes = []
        for line in lines:
            try:
                gpath, kind, name, entry = orjson.loads(line)
            except (orjson.JSONDecodeError, ValueError, TypeError):
                continue  # the last line of a killed process may be cut short
            notes.append((tuple(gpath), kind, name, entry))
        return notes

    def clear_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        (self.root / JOURNAL).unlink(missing_ok=True)

    def _dir(self, gpath: GPath) -> Path:
        return self.root.joinpath(*gpath)

    def _replace(self, target: Path, write) -> None:
        tmp = self.root / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                write(f)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def read_record(self, gpath: GPath) -> bytes | None:
        path = self._dir(gpath) / RECORD
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size > MAX_RECORD_BYTES:
                    raise CorruptStoreError(f"{path} claims {size} bytes; refusing to read it")
                return f.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            raise CorruptStoreError(f"{path} is a directory, not a record") from None

    def write_record(self, gpath: GPath, data: bytes) -> None:
        self._replace(self._dir(gpath) / RECORD, lambda f: f.write(data))

    def _file(self, gpath: GPath, name: str, entry: dict) -> Path:
        return self._dir(gpath) / (name + (".npy" if entry["k"] == "A" else ".bin"))

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        path = self._file(gpath, name, entry)
        if entry["k"] != "A":
            return path.read_bytes()
        expected = dtype_from_json(entry["d"])
        shape = tuple(entry["s"])
        try:
            # a memory map reads only the header: shape and dtype are checked
            # against the record before any data is read (or memory claimed)
            if expected.itemsize and all(shape):
                header = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                header = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptStoreError(
                f"{path} is not a plain .npy array as recorded: {exc}"
            ) from None
        if header.dtype != expected or header.shape != shape:
            raise CorruptStoreError(
                f"{path} holds {header.dtype}{header.shape}, but the record says {expected}{shape}"
            )
        offset = getattr(header, "offset", None)
        if offset is None:  # empty: np.load read it already
            return np.array(header, order="K", copy=True)
        del header
        # the bytes as written (structured copies would drop padding bytes)
        nbytes = expected.itemsize * int(np.prod(shape))
        raw = bytearray(nbytes)
        with open(path, "rb") as f:
            f.seek(offset)
            if f.readinto(raw) != nbytes:
                raise CorruptStoreError(f"{path} is shorter than its header says")
        arr = array_from_bytes(raw, entry)
        return arr

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        path = self._file(gpath, name, entry)
        if type(value) is np.ndarray:

            def save(f) -> None:
                with warnings.catch_warnings():  # non-Latin-1 field names need .npy 3.0
                    warnings.simplefilter("ignore", UserWarning)
                    np.save(f, value, allow_pickle=False)

            self._replace(path, save)
        else:
            self._replace(path, lambda f: f.write(value))

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        self._file(gpath, name, entry).unlink(missing_ok=True)

    def create_group(self, gpath: GPath) -> None:
        path = self._dir(gpath)
        if path.exists():  # left by a killed process: the name is unused, so it is stale
            shutil.rmtree(path)
        path.mkdir()

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        out = []
        for child in self._dir(gpath).iterdir():
            name = child.name
            if name.startswith("@"):
                continue
            if child.is_dir():
                out.append(("G", name, {}))
            elif name.endswith(".npy"):
                out.append(("X", name[:-4], {"k": "A"}))
            elif name.endswith(".bin"):
                out.append(("X", name[:-4], {"k": "B"}))
        return out

    def delete_group(self, gpath: GPath) -> None:
        shutil.rmtree(self._dir(gpath), ignore_errors=True)

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        if not is_store_dir(self.root):
            raise FileNotFoundError(f"no tinystore directory at {self.root}")


class JSONDirStorage(RecordStorage):
    """A storage in a directory of JSON records (and ``.npy`` files).

    ``mode`` works as for :class:`~tinystore.storage.hdf5.HDF5Storage`.
    Operations take a cross-process lock (``@lock`` in the directory), so
    several processes can share one store; ``lock_timeout`` is how long to
    wait for another process (seconds).

    >>> import tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "example.json")
    >>> with JSONDirStorage(d, mode="w") as s:
    ...     s["energy"] = -3.5
    >>> JSONDirStorage(d, mode="r")["energy"]
    -3.5
    """

    def __init__(
        self, dirname: str | os.PathLike, mode: str = "a", lock_timeout: float = DEFAULT_TIMEOUT
    ):
        self._init_root(_DirPhysical(dirname, mode, lock_timeout))
