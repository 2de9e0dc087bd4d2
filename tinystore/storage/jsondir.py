"""JSON-directory backend: a directory tree you can read with any editor.

Each physical group is a directory holding its record as ``@record.json``;
large arrays are ``.npy`` files (read with ``allow_pickle=False``) and large
byte strings ``.bin`` files beside it.  Every user key is encoded into a safe
file name (:func:`tinystore._paths.safe_name`), so no key can escape the root
or collide with another on a case-insensitive file system.  Records are
written to a temporary name and renamed, so a killed process never leaves a
half-written record in place; array and byte files go straight to their new
names, which nothing refers to before the record that names them is written.
A transaction that replaces several records (a ``batch()`` into several
groups) lists them first in ``@commit.json``, its commit point, so the next
writer finishes it if the process dies: all old or all new
(``_DirPhysical.write_records``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import shutil
import stat
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.lib.format as npy
import orjson

from tinystore.errors import (
    BackendError,
    CorruptStoreError,
    InvalidKeyError,
    NotAStoreError,
    UnsafeStoreError,
)
from tinystore.storage.checksum import Sum64
from tinystore.storage.journal import (
    check_space,
    fsync_fd,
    fsync_path,
    full_error,
    rename,
    unlink,
)
from tinystore.storage.leaves import array_from_bytes, dtype_from_json, with_flags
from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock, check_regular, unsafe_file
from tinystore.storage.record import (
    MAX_RECORD_BYTES,
    GPath,
    Physical,
    RecordStorage,
    check_name,
    dumps_record,
)
from tinystore.storage.record.physical import open_cached

RECORD = "@record.json"
#: The previous record, for the moment a new one takes its place (see write_record)
PREVIOUS = "@record.prev.json"
TMP_PREFIX = "@tmp-"
_TMP_NAME = re.compile(r"@tmp-[0-9a-f]{32}")
LOCK = "@lock"
JOURNAL = "@journal"
#: A commit of several existing records under way: which temporary replaces
#: which record (see write_records)
INTENT = "@commit.json"
MODES = ("r", "r+", "a", "w", "w-", "x")
#: The record of an empty store
EMPTY_ROOT = dumps_record([{"g": 1, "c": {}}], pretty=True)


def _subfolder(parent: str, name: str) -> str:
    """The group directory ``name`` in ``parent``, checked to be one."""
    path = os.path.join(parent, name)
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(f"no group directory {path}") from None
    except OSError as exc:
        raise _os_error(exc, path) from None
    if stat.S_ISLNK(mode):
        raise unsafe_file(path, "is a symbolic link, not a group directory")
    if not stat.S_ISDIR(mode):
        raise CorruptStoreError(f"{path} is not a group directory")
    return path


def empty_but_lock(root: str) -> None:
    """Remove everything in the store directory ``root`` but its lock file
    (held by the caller); links are removed, never followed."""
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name == LOCK:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def is_store_dir(path: str | os.PathLike) -> bool:
    """True if ``path`` is a directory written by this backend.

    Called without the store's lock: a writer may be replacing the root
    record meanwhile, which it does by two renames (see ``write_record``), so
    the record is looked for, then the previous record, then the record again
    (a record is always in one place or the other, or, killed writer, the
    previous one stays).
    """
    record = os.path.join(path, RECORD)
    previous = os.path.join(path, PREVIOUS)
    for _ in range(3):  # another write may begin between two looks
        if os.path.isfile(record) or os.path.isfile(previous) or os.path.isfile(record):
            return True
        if not os.path.isdir(path):
            return False
    return False


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_SAFE_FLAGS = _NOFOLLOW | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _os_error(exc: OSError, path: str, writing: bool = False) -> Exception:
    """A tinystore error for what the file system says of a node of the store."""
    if exc.errno == errno.ELOOP:
        return unsafe_file(path, "is a symbolic link (or a loop of them)")
    if exc.errno == errno.ENAMETOOLONG:
        why = f"{path}: the path is longer than this file system allows (groups nested too deep)"
        return InvalidKeyError(why) if writing else CorruptStoreError(why)
    return exc


def open_in_store(path: str) -> int:
    """A descriptor of the regular file ``path`` of a store, read-only.

    Never follows a symbolic link (``O_NOFOLLOW``), never blocks on a FIFO
    (``O_NONBLOCK``), and refuses anything but a regular file with one link
    (a FIFO, a device, a hard link to a file elsewhere): nothing outside the
    store is read.  FileNotFoundError if there is none.
    """
    try:
        fd = os.open(path, os.O_RDONLY | _SAFE_FLAGS | _BINARY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise _os_error(exc, path) from None
    try:
        check_regular(fd, path)
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def create_in_store(path: str, append: bool = False, fresh: bool = False) -> int:
    """A new regular file ``path`` of a store, for writing (``append``: the
    journal, kept if it is there).  Whatever sat at that name before (a link
    to a file elsewhere, say) is removed first, never written through
    (``fresh``: a name nothing had, a temporary one: ``O_EXCL`` alone)."""
    flags = os.O_WRONLY | os.O_CREAT | _SAFE_FLAGS | _BINARY
    if append:
        flags |= os.O_APPEND
    else:
        if not fresh:
            _unlink(path)
        flags |= os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        raise _os_error(exc, path, writing=True) from None
    try:
        check_regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_npy(f: Any, value: np.ndarray) -> bool:
    """Write ``value`` as ``np.save`` does, its data straight from its memory
    (np.save's ``tofile`` costs ~50 µs more); False if only np.save can."""
    if value.dtype.hasobject or not value.itemsize or not value.size:
        return False
    if value.flags.c_contiguous:
        data = value.reshape(-1).view(np.uint8)
    elif value.flags.f_contiguous:  # np.save writes these in Fortran order
        data = value.T.reshape(-1).view(np.uint8)
    else:
        return False
    header = io.BytesIO()
    try:
        npy.write_array_header_1_0(header, npy.header_data_from_array_1_0(value))
    except (ValueError, UnicodeEncodeError):  # a header that needs .npy 2.0 or 3.0
        return False
    f.write(header.getvalue())
    f.write(data)
    return True


def _npy_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype of the .npy file of an array of ``dtype``: itself, or raw bytes
    (``V<itemsize>``) if .npy cannot describe it (overlapping or out-of-order
    fields); the record has the dtype either way."""
    if dtype.names is None:
        return dtype
    try:
        with warnings.catch_warnings():  # metadata: kept in the record
            warnings.simplefilter("ignore", UserWarning)
            npy.dtype_to_descr(dtype)
    except ValueError:
        return np.dtype((np.void, dtype.itemsize))
    return dtype


def _npy_header(dtype: np.dtype, shape: tuple, fortran_order: bool) -> bytes:
    """The header np.save writes for such an array (format 1.0), or b"" if none."""
    header = io.BytesIO()
    meta = {"descr": npy.dtype_to_descr(dtype), "fortran_order": fortran_order, "shape": shape}
    try:
        npy.write_array_header_1_0(header, meta)
    except (ValueError, UnicodeEncodeError):
        return b""
    return header.getvalue()


#: Bytes read at a time when a leaf is summed as it is read (well within a CPU's cache)
PIECE = 512 * 1024


def _read_into(f: Any, buf: np.ndarray, summer: Sum64 | None) -> int:
    """``f.readinto(buf)`` (``buf``: uint8); with ``summer``, a piece at a time,
    each summed right after it is read.  The bytes read."""
    if summer is None:
        return f.readinto(buf)
    view = memoryview(buf)
    done = 0
    while done < len(buf):
        n = f.readinto(view[done : done + PIECE])
        if not n:
            break
        summer.update(buf[done : done + n])
        done += n
    return done


def _read_npy_header(f: Any) -> tuple | None:
    """``(shape, fortran_order, dtype)`` of an .npy file of format 1.0 or 2.0
    (numpy's public readers), else None; ``f`` is left at the data."""
    version = npy.read_magic(f)
    if version == (1, 0):
        return npy.read_array_header_1_0(f)
    if version == (2, 0):
        return npy.read_array_header_2_0(f)
    return None


def _check_header(path: str, header: tuple, expected: np.dtype, shape: tuple) -> None:
    if header[2] != expected or header[0] != shape:
        raise CorruptStoreError(
            f"{path} holds {header[2]}{header[0]}, but the record says {expected}{shape}"
        )


class _DirPhysical(Physical):
    """A directory tree; records are written to a temporary name and renamed."""

    shared = True
    pretty = True

    def __init__(
        self,
        dirname: str | os.PathLike,
        mode: str,
        lock_timeout: float,
        durable: bool = False,
        check: bool = True,
    ):
        self.durable = bool(durable)
        #: directories whose names changed and are not on the disk yet (durable)
        self._unsynced: dict[str, None] = {}
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self.root = Path(dirname)
        self._root = os.fspath(dirname)  # string paths: pathlib costs ~5 µs a join
        self.location = os.fspath(dirname)
        self.readonly = mode == "r"
        self._lock = StoreLock(
            os.path.join(self._root, LOCK), self.location, lock_timeout, self.readonly
        )
        self._journal: Any = None
        self._folders: dict[GPath, str] = {}  # group directories checked this session
        #: a killed writer's commit, as readers see it: {group: its new record's file}
        self._pending: dict[GPath, str] = {}
        #: (generation, root record identity) at the end of this handle's last
        #: session and at the start of this one (see _HDF5Physical.begin)
        self._stamp: tuple | None = None
        self._seen: tuple | None = None
        self._sessions = 0  # sessions ended
        #: this handle removed the temporary files in a write session, and
        #: nobody (nor a failed session of its own) wrote since: none are left
        self._swept = False
        #: this write session builds a store that has no record yet (see
        #: _begin_unchecked): nothing to journal, list or recover, and if the
        #: session ends without its record the directory goes
        self._fresh = False
        #: the mode whose checks wait for the first session (``check=False``)
        self._unchecked: str | None = None
        if not check:
            self._unchecked = mode
            return
        ours = self._look(mode)
        created = not self.readonly and not os.path.exists(self._root)
        if not self.readonly:  # (a dangling symbolic link: the directory it names)
            self.root.resolve().mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
            try:
                if mode == "w" and ours:
                    self._empty_root()
                if not is_store_dir(self._root):
                    self._clear_abandoned()
                    self.write_record((), EMPTY_ROOT)
            finally:
                self._lock.release()
        except OSError:
            if created:  # a full disk, say: no half-made store is left behind
                self._remove_new_root()
            raise

    def _look(self, mode: str) -> bool:
        """The checks of ``mode`` that need no lock; True if the directory is a store.

        A directory without a record is taken as a new store if it holds
        only names beginning with ``@`` or a lock file (``@lock``: the first
        save of a store, killed before its record was in place, left it; see
        :meth:`_clear_abandoned`); any other directory is refused.
        """
        root = self._root
        try:
            is_dir: bool | None = stat.S_ISDIR(os.stat(root).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            is_dir = None
        if is_dir is False:
            raise NotAStoreError(f"{root} is a file, not a tinystore directory")
        ours = bool(is_dir) and is_store_dir(root)
        if is_dir and not ours and not self._takeable(root):
            raise NotAStoreError(
                f"{root} is a directory that tinystore did not write (no {RECORD}); "
                "refusing to use it"
            )
        if mode in ("r", "r+") and not ours:
            if not os.path.lexists(root):
                raise FileNotFoundError(f"no such file or directory: {self.location!r}")
            raise FileNotFoundError(f"no tinystore directory at {root}")
        if mode in ("w-", "x") and ours:
            raise FileExistsError(f"{root} already exists (mode {mode!r})")
        return ours

    @staticmethod
    def _takeable(root: str) -> bool:
        """True if the directory ``root``, which has no record, may become a store."""
        with os.scandir(root) as entries:
            names = [entry.name for entry in entries]
        return LOCK in names or all(name.startswith("@") for name in names)

    def _clear_abandoned(self) -> None:
        """No record, lock held exclusively: anything but ``@`` names was left by
        a first save killed before its record was in place (it journals
        nothing, see :meth:`journal`), and goes."""
        with os.scandir(self._root) as entries:
            names = [entry.name for entry in entries]
        if any(not name.startswith("@") for name in names):
            self._empty_root()
            return
        for name in names:  # what a killed writer leaves (a link goes, not what it names)
            if name.startswith(TMP_PREFIX) or name in (JOURNAL, INTENT):
                _unlink(os.path.join(self._root, name))

    def _unmake(self) -> None:
        """Remove the store this session was making (the lock held exclusively):
        the directory goes unless another process put a file in it meanwhile."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if not is_store_dir(self._root):
            empty_but_lock(self._root)
            self._lock.unlink()
            os.rmdir(os.path.realpath(self._root))  # (through a link: what it names)

    def _remove_new_root(self) -> None:
        """Remove the root this instance created, if it holds only the lock."""
        with contextlib.suppress(OSError):
            _unlink(os.path.join(self._root, LOCK))
            os.rmdir(os.path.realpath(self._root))  # (made through a link: what it names)

    def _empty_root(self) -> None:
        """Mode "w": everything but the lock goes; a store holding a symbolic
        link is refused first, before anything is removed."""
        for folder, dirs, files in os.walk(self._root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                if os.path.islink(path):
                    raise unsafe_file(path, "is a symbolic link; mode 'w' refuses this store")
        empty_but_lock(self._root)

    # sessions
    def begin(self, write: bool) -> None:
        if self._unchecked is not None:
            self._begin_unchecked(write)
            return
        self._begin(write)

    def _begin_unchecked(self, write: bool) -> None:
        """The first session of a handle opened with ``check=False`` (``save``,
        ``load``): the checks of its mode, then the session.

        A store that does not exist yet is made by this session (``_fresh``):
        the directory and its lock, then, at the commit, its record, which
        makes it a store.  Until then readers find no store, and a writer
        killed before it leaves a directory without a record that the next
        writer empties (:meth:`_clear_abandoned`); a session that fails
        removes the directory (:meth:`end`).  So a new store costs its
        directory, lock file and record, with no journal and no empty record
        written first.
        """
        mode, self._unchecked = self._unchecked, None
        made = False
        if write and not os.path.exists(self._root):
            target = os.path.realpath(self._root)  # (a dangling symbolic link: what it names)
            parent = os.path.dirname(target)
            if not os.path.isdir(parent):
                os.makedirs(parent, exist_ok=True)
            try:
                os.mkdir(target)
                made = True
            except FileExistsError:
                pass  # made meanwhile by another process: checked as any other
        try:
            ours = False if made else self._look(mode)
            self._lock.acquire(shared=not write)
        except BaseException:
            if made:
                self._remove_new_root()
            raise
        try:
            if not write:
                if not made and not is_store_dir(self._root):
                    # looked at before the lock: a writer removed the store, or is
                    # making it anew, meanwhile (its record not in place yet)
                    raise FileNotFoundError(f"no tinystore directory at {self._root}")
                self._begin_read()
                return
            if mode == "w" and ours:
                self._empty_root()
            if not self._has_record(()):  # (the lock held: one look is enough)
                self._start_fresh()
                return
            if made and mode in ("w-", "x"):  # another process made it a store meanwhile
                raise FileExistsError(f"{self._root} already exists (mode {mode!r})")
            self._begin_write()
        except BaseException:
            self._lock.release()
            if made:
                self._remove_new_root()
            raise

    def _start_fresh(self) -> None:
        """A write session that builds a store without a record (see
        :meth:`_begin_unchecked`); the lock is held exclusively."""
        self._clear_abandoned()
        self._lock.new_generation()
        self._seen = None
        self.shared = True
        self._swept = True
        self._fresh = True

    def _begin(self, write: bool) -> None:
        self._lock.acquire(shared=not write)
        try:
            # unchanged since this handle's last session: its cached records hold
            self._seen = None if self._stamp is None else self._now()
            self.shared = self._seen is None or self._seen != self._stamp
            self._swept = self._swept and not self.shared
            self._stamp = None
            if write:
                self._begin_write()
            else:
                self._begin_read()
        except BaseException:
            self._lock.release()
            raise

    def _begin_read(self) -> None:
        # readers never write: they read what the next writer will finish
        self._pending = self._read_intent()

    def _begin_write(self) -> None:
        self._lock.new_generation()
        self._finish_commit()  # (one lstat when there is no intent)
        # the root's previous record, if a writer was killed while it replaced
        # it (one lstat: write_record journals no "P" note for the root)
        if os.path.lexists(os.path.join(self._root, PREVIOUS)):
            self._settle_previous(())
        self._sweep()

    def upgrade(self) -> None:
        self._lock.acquire()  # shared to exclusive (the session's count stays one)
        self._lock.release()
        self._pending = {}
        now = self._now()
        self.shared = now is None or now != self._seen  # another writer came in
        self._swept = self._swept and not self.shared
        self._begin_write()

    def _sweep(self) -> None:
        """Remove what killed writers left, unless this handle did since
        anybody last wrote (the root's listing is O(keys))."""
        if not self._swept:
            self._remove_temporaries()
            self._swept = True

    def _now(self) -> tuple | None:
        """The store's generation and its root record's identity, or None."""
        generation = self._lock.generation()
        if generation is None:
            return None
        try:
            st = os.stat(os.path.join(self._root, RECORD), follow_symlinks=False)
        except OSError:
            return None
        return (generation, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def forget(self) -> None:
        self._stamp = None
        self._swept = False

    def end(self) -> None:
        self._folders.clear()
        self._pending = {}
        try:
            if self._fresh:  # the first save failed before its record was in place
                self._fresh = False
                with contextlib.suppress(OSError):
                    self._unmake()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            if self._sessions:  # not after the first: most handles have one session only
                self._stamp = self._now()  # still under the lock: nobody wrote since
            self._sessions += 1
        finally:
            self._lock.release()

    def _remove_temporaries(self) -> None:
        # temporary files live in the root only, so this is one directory listing;
        # holding the lock, nobody else can be writing one now
        with os.scandir(self._root) as entries:
            for entry in entries:
                if entry.name.startswith(TMP_PREFIX):  # a link goes, not what it names
                    _unlink(entry.path)

    def journal(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        if self._fresh:  # a killed first save leaves no record: all of it goes
            return
        self.journal_line([list(gpath), kind, name, entry])

    def journal_line(self, note: list) -> None:
        if self._journal is None:
            fd = create_in_store(os.path.join(self._root, JOURNAL), append=True)
            self._journal = os.fdopen(fd, "ab")
        try:
            self._journal.write(orjson.dumps(note) + b"\n")
            self._journal.flush()
        except OSError as exc:
            raise full_error(exc, os.path.join(self._root, JOURNAL)) from None

    def read_journal(self) -> list:
        if self._fresh:
            return []
        try:
            fd = open_in_store(os.path.join(self._root, JOURNAL))
        except FileNotFoundError:
            return []
        with os.fdopen(fd, "rb") as f:
            lines = f.read().splitlines()
        notes = []
        previous = False
        for line in lines:
            try:
                note = orjson.loads(line)
                if note[0] == "P":  # a record replaced (see write_record)
                    self._settle_previous(tuple(note[1]))
                    previous = True
                    continue
                gpath, kind, name, entry = note
            except (orjson.JSONDecodeError, ValueError, TypeError, IndexError, KeyError):
                continue  # the last line of a killed process may be cut short
            notes.append((tuple(gpath), kind, name, entry))
        if previous and not notes:
            self.clear_journal()
        return notes

    def _settle_previous(self, gpath: GPath) -> None:
        """After a writer killed while it replaced the record of ``gpath``: the
        previous record goes if the new one is in place, else it is the record
        again (readers read it meanwhile).  No ``@record.prev.json`` stays."""
        try:
            folder = self._folder(tuple(check_name(p, "the journal") for p in gpath))
        except (FileNotFoundError, CorruptStoreError):
            return
        previous = os.path.join(folder, PREVIOUS)
        if not os.path.lexists(previous):
            return
        if os.path.lexists(os.path.join(folder, RECORD)):
            _unlink(previous)
        else:
            rename(previous, os.path.join(folder, RECORD))

    def clear_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        _unlink(os.path.join(self._root, JOURNAL))

    def _folder(self, gpath: GPath) -> str:
        """The directory of the group ``gpath``, each step of it checked to be a
        real directory (a symbolic link is refused, never followed); checked once
        a session.  FileNotFoundError if there is none."""

        def step(parent: str, j: int) -> str:
            return _subfolder(parent, gpath[j])

        return open_cached(self._folders, gpath, self._root, step)

    def _write_temporary(self, data: bytes) -> str:
        """A new file in the root holding ``data``; its path."""
        tmp = os.path.join(self._root, f"{TMP_PREFIX}{uuid.uuid4().hex}")
        try:
            fd = create_in_store(tmp, fresh=True)
            try:
                view = memoryview(data)
                while view:  # os.write: no file object (~10 µs)
                    view = view[os.write(fd, view) :]
                if self.durable:
                    fsync_fd(fd, tmp)
            finally:
                os.close(fd)
        except OSError as exc:
            _unlink(tmp)
            raise full_error(exc, tmp) from None
        except BaseException:
            _unlink(tmp)
            raise
        return tmp

    def read_record(self, gpath: GPath) -> bytes | None:
        if self._fresh and not gpath:  # a store being made: empty until its commit
            return EMPTY_ROOT
        try:
            folder = self._folder(gpath)
        except FileNotFoundError:
            return None
        if self._pending:  # a killed writer's commit: its new record, wherever it is now
            pending = self._pending.get(gpath)
            data = None if pending is None else self._read_file(pending)
            if data is not None:
                return data
        data = self._read_file(os.path.join(folder, RECORD))
        if data is None:  # a writer was killed between the two renames of write_record
            data = self._read_file(os.path.join(folder, PREVIOUS))
        return data

    @staticmethod
    def _read_file(path: str) -> bytes | None:
        try:
            fd = open_in_store(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except IsADirectoryError:
            raise CorruptStoreError(f"{path} is a directory, not a record") from None
        except UnsafeStoreError as exc:
            if os.path.isdir(path) and not os.path.islink(path):
                raise CorruptStoreError(f"{path} is a directory, not a record") from None
            raise exc from None
        try:  # os.read: no file object (~10 µs)
            size = os.fstat(fd).st_size
            if size > MAX_RECORD_BYTES:
                raise CorruptStoreError(f"{path} claims {size} bytes; refusing to read it")
            data = os.read(fd, size + 1)  # one call, unless the size changed meanwhile
            if len(data) == size:
                return data
            parts = [data]
            while parts[-1] and sum(map(len, parts)) <= MAX_RECORD_BYTES:
                parts.append(os.read(fd, 1 << 20))
            return b"".join(parts)
        finally:
            os.close(fd)

    def write_record(self, gpath: GPath, data: bytes) -> None:
        """Replace a record atomically, without renaming over an existing file.

        ext4 (and others) write a file's data out at once when it is renamed
        over an existing one (~0.1-0.2 ms).  So the old record steps aside to
        a free name first, the new one (complete, under a temporary name)
        takes its place, and the old one goes.  A reader that finds no record
        (a writer killed between the two renames) reads the previous one,
        which is still complete: every record is old or new, never partial.
        """
        folder = self._folder(gpath)
        target = os.path.join(folder, RECORD)
        previous = os.path.join(folder, PREVIOUS)
        tmp = self._write_temporary(data)
        if self.durable:  # what the record names is on the disk before the record
            self._sync_names()
        if gpath and os.path.lexists(target):  # a killed writer's next successor settles it
            self.journal_line(["P", list(gpath)])  # (the root's: see _begin_write)
        try:
            os.rename(target, previous)
        except FileNotFoundError:
            pass  # a new group (or only the previous record is left: it stays until the end)
        except BaseException:
            _unlink(tmp)
            raise
        try:
            rename(tmp, target)
        except BaseException:
            _unlink(tmp)
            if not os.path.exists(target):
                with contextlib.suppress(OSError):
                    os.rename(previous, target)
            raise
        if self._fresh and not gpath:  # the store exists now (see _begin_unchecked)
            self._fresh = False
            if self.durable:  # and its name in its parent directory
                self._note_names(os.path.dirname(os.path.abspath(self._root)))
        if self.durable:
            self._note_names(folder, self._root)
            self._sync_names()  # this record on the disk before its parent's (commit order)
        with contextlib.suppress(OSError):  # the new record holds: the journal's "P" note
            _unlink(previous)  # has the next writer remove it

    # -- a commit of several records: one transaction ---------------------
    def write_records(self, records: list[tuple[GPath, bytes]]) -> None:
        """Replace several records as one, whatever moment the process dies at.

        The records of new groups are written first (nothing names them yet).
        If more than one existing record is replaced, each new one is written
        under a temporary name, then the intent file ``@commit.json`` lists
        them (written whole and renamed into place: the commit point), then
        each record is replaced, and the intent goes.  A writer killed before
        the intent is in place leaves the old records (its temporaries are
        removed); after, the next writer finishes the renames
        (:meth:`_finish_commit`) and readers meanwhile read the new records
        where they are (:meth:`read_record`): all old or all new.
        """
        if len(records) == 1:  # the common save: its record alone (new groups have none)
            self.write_record(*records[0])
            return
        old = [self._has_record(gp) for gp, _ in records]
        if sum(old) < 2:
            for gpath, data in records:
                self.write_record(gpath, data)  # each atomic, the replaced one last
            return
        for (gpath, data), replaces in zip(records, old):
            if not replaces:
                self.write_record(gpath, data)  # new groups: nothing names them yet
        steps = self._prepare_commit([item for item, replaces in zip(records, old) if replaces])
        done = 0  # the intent is in place: the commit point
        try:
            for gpath, tmp in steps:
                self._replace(gpath, tmp)
                done += 1
        except BaseException:
            self._undo_commit(steps[: done + 1])
            raise
        self._end_commit(steps)

    def _has_record(self, gpath: GPath) -> bool:
        folder = self._folder(gpath)
        return os.path.lexists(os.path.join(folder, RECORD)) or os.path.lexists(
            os.path.join(folder, PREVIOUS)
        )

    def _prepare_commit(self, replaced: list) -> list[tuple[GPath, str]]:
        """The new records under temporary names, then the intent naming them."""
        temps: list[str] = []
        try:
            for _, data in replaced:
                temps.append(self._write_temporary(data))
            steps = [(gp, tmp) for (gp, _), tmp in zip(replaced, temps)]
            intent = [[list(gp), os.path.basename(tmp)] for gp, tmp in steps]
            tmp = self._write_temporary(orjson.dumps(intent))
            temps.append(tmp)
            if self.durable:  # what the intent names, and the files they name, first
                self._note_names(self._root)
                self._sync_names()
            rename(tmp, os.path.join(self._root, INTENT))
        except BaseException:
            for tmp in temps:
                _unlink(tmp)
            raise
        if self.durable:
            fsync_path(self._root)
        return steps

    def _replace(self, gpath: GPath, tmp: str) -> None:
        """The old record steps aside, the new one (at ``tmp``) takes its place."""
        folder = self._folder(gpath)
        with contextlib.suppress(FileNotFoundError):
            rename(os.path.join(folder, RECORD), os.path.join(folder, PREVIOUS))
        rename(tmp, os.path.join(folder, RECORD))
        self._note_names(folder)

    def _undo_commit(self, steps: list[tuple[GPath, str]]) -> None:
        """An error (not a kill) half-way: each step undone in reverse, every
        state between is one the intent still finishes, then the intent goes."""
        for gpath, tmp in reversed(steps):
            folder = self._folder(gpath)
            record, previous = os.path.join(folder, RECORD), os.path.join(folder, PREVIOUS)
            if not os.path.lexists(tmp):  # the new record is in place
                rename(record, tmp)
            if not os.path.lexists(record) and os.path.lexists(previous):
                rename(previous, record)
        unlink(os.path.join(self._root, INTENT))
        self._remove_temporaries()

    def _end_commit(self, steps: list[tuple[GPath, str]]) -> None:
        """Every new record in place (durable: on the disk): the old ones go,
        then the intent.  The transaction holds already: if a removal fails,
        the intent stays and the next writer removes what is left."""
        if self.durable:
            self._note_names(self._root)
            self._sync_names()
        try:
            for gpath, _ in steps:
                with contextlib.suppress(FileNotFoundError):
                    unlink(os.path.join(self._folder(gpath), PREVIOUS))
            unlink(os.path.join(self._root, INTENT))
            if self.durable:  # lost in a power cut, the next writer removes it again
                fsync_path(self._root)
        except OSError:
            pass

    def _read_intent(self) -> dict[GPath, str]:
        """``{group: path of its new record}`` from a killed writer's intent, or {}."""
        path = os.path.join(self._root, INTENT)
        if not os.path.lexists(path):
            return {}
        data = self._read_file(path)
        if data is None:
            return {}
        try:
            pending = {}
            for gpath, name in orjson.loads(data):
                if type(name) is not str or not _TMP_NAME.fullmatch(name):
                    raise ValueError(f"it names {name!r}, not a temporary file")
                gp = tuple(check_name(part, path) for part in gpath)
                pending[gp] = os.path.join(self._root, name)
            return pending
        except (orjson.JSONDecodeError, ValueError, TypeError) as exc:
            raise CorruptStoreError(f"{path} is not a commit intent: {exc}") from None

    def _finish_commit(self) -> None:
        """Finish the commit of a writer killed after its intent was in place
        (run again if killed meanwhile: each step is one or done)."""
        pending = self._read_intent()
        if not pending:
            return
        steps = []
        for gpath, tmp in pending.items():
            try:
                folder = self._folder(gpath)
            except FileNotFoundError:
                continue
            if os.path.lexists(tmp):  # not in place yet (if it is, tmp is gone)
                rename(tmp, os.path.join(folder, RECORD))
                self._note_names(folder, self._root)
            steps.append((gpath, tmp))
        self._end_commit(steps)
        if self.durable:
            self._sync_names()

    def _note_names(self, *folders: str) -> None:
        if self.durable:
            for folder in folders:
                self._unsynced[folder] = None

    def _sync_names(self) -> None:
        """fsync every directory whose names changed, in the order they changed."""
        unsynced, self._unsynced = self._unsynced, {}
        for folder in unsynced:
            fsync_path(folder)

    def commit(self) -> None:
        if self.durable:
            self._sync_names()

    def _file(self, gpath: GPath, name: str, entry: dict) -> str:
        return os.path.join(self._folder(gpath), name + (".npy" if entry["k"] == "A" else ".bin"))

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        return self._read_external(gpath, name, entry, None)

    def read_external_summed(self, gpath: GPath, name: str, entry: dict) -> tuple:
        """An array is read a piece at a time, each piece summed while it is in
        the CPU cache (a second pass over a big array would read it from memory)."""
        summer = Sum64() if entry["k"] == "A" and "h" in entry else None
        value = self._read_external(gpath, name, entry, summer)
        if summer is None or summer.length != value.nbytes:  # not read in pieces after all
            return value, None
        return value, summer.hexdigest()

    def _read_external(self, gpath: GPath, name: str, entry: dict, summer: Any) -> Any:
        path = self._file(gpath, name, entry)
        fd = open_in_store(path)
        if entry["k"] != "A":
            with os.fdopen(fd, "rb") as f:
                return f.read()
        dtype = dtype_from_json(entry["d"])
        expected = _npy_dtype(dtype)  # what the file holds
        shape = tuple(entry["s"])
        count = 1
        for n in shape:
            count *= n
        nbytes = expected.itemsize * count
        try:
            with os.fdopen(fd, "rb") as f:
                # shape and dtype are checked against the record before any data
                # is read (or memory claimed): the header we would have written
                # is compared first, numpy parses any other (~15 µs)
                known = _npy_header(expected, shape, entry.get("o") == "F")
                if known and f.read(len(known)) == known:
                    header = (shape, None, expected)
                else:
                    f.seek(0)
                    header = _read_npy_header(f)
                if header is not None and nbytes:
                    # the data goes straight into the array it becomes: the bytes
                    # as written (structured copies would drop padding bytes)
                    _check_header(path, header, expected, shape)
                    if os.fstat(f.fileno()).st_size - f.tell() < nbytes:
                        raise CorruptStoreError(f"{path} is shorter than its header says")
                    flat = np.empty(count, with_flags(dtype, entry))
                    if _read_into(f, flat.view(np.uint8), summer) != nbytes:
                        raise CorruptStoreError(f"{path} is shorter than its header says")
                    return flat.reshape(shape, order=entry.get("o", "C"))
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptStoreError(
                f"{path} is not a plain .npy array as recorded: {exc}"
            ) from None
        arr = self._read_npy_other(path, entry, expected, shape)
        return arr if expected is dtype else arr.view(with_flags(dtype, entry))

    def read_external_slice(self, gpath: GPath, name: str, entry: dict, selection: Any) -> Any:
        """The selection of an ``.npy`` file, through a memory map: only the
        pages the selection touches are read."""
        dtype = dtype_from_json(entry["d"])
        expected = _npy_dtype(dtype)
        shape = tuple(entry["s"])
        if expected is not dtype or not expected.itemsize or not all(shape):
            return super().read_external_slice(gpath, name, entry, selection)
        path = self._file(gpath, name, entry)
        with os.fdopen(open_in_store(path), "rb") as f:
            try:
                header = _read_npy_header(f)
                if header is None:  # a format only np.load reads: read it whole
                    return super().read_external_slice(gpath, name, entry, selection)
                _check_header(path, header, expected, shape)
                if bool(header[1]) != (entry.get("o") == "F"):
                    raise CorruptStoreError(f"{path} is not in the order its record says")
                data = np.memmap(
                    f, with_flags(dtype, entry), "r", f.tell(), shape, "F" if header[1] else "C"
                )
            except (ValueError, OSError, EOFError) as exc:
                raise CorruptStoreError(
                    f"{path} is not a plain .npy array as recorded: {exc}"
                ) from None
        part = data[selection]
        return np.array(part) if isinstance(part, np.ndarray) else part

    def _read_npy_other(self, path: str, entry: dict, expected: np.dtype, shape: tuple) -> Any:
        """An empty array, or one whose header only numpy's np.load reads (format 3.0)."""
        try:
            if expected.itemsize and all(shape):
                header = np.load(path, mmap_mode="r", allow_pickle=False)
            else:
                header = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise CorruptStoreError(f"{path} is not a plain .npy array as recorded: {exc}") from exc
        _check_header(path, (header.shape, None, header.dtype), expected, shape)
        offset = getattr(header, "offset", None)
        if offset is None:  # empty: np.load read it already
            return np.array(header, order="K", copy=True)
        del header
        raw = bytearray(expected.itemsize * int(np.prod(shape)))
        with open(path, "rb") as f:
            f.seek(offset)
            if f.readinto(raw) != len(raw):
                raise CorruptStoreError(f"{path} is shorter than its header says")
        return array_from_bytes(raw, entry)

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        # Written in place, not to a temporary name: the name is new (nothing
        # refers to it until the record is written) and already in the journal,
        # so a killed process leaves no half-written file that anything reads.
        path = self._file(gpath, name, entry)
        check_space(path, value.nbytes if isinstance(value, np.ndarray) else len(value))
        try:
            self._write_file(path, value)
        except OSError as exc:  # a full disk: the partial file goes (nothing names it)
            with contextlib.suppress(OSError):
                _unlink(path)
            raise full_error(exc, path) from None

    def _write_file(self, path: str, value: Any) -> None:
        with os.fdopen(create_in_store(path), "wb") as f:
            if type(value) is not np.ndarray:
                f.write(value)
                return
            value = value.view(_npy_dtype(value.dtype))
            if not _write_npy(f, value):
                with warnings.catch_warnings():  # non-Latin-1 field names need .npy 3.0
                    warnings.simplefilter("ignore", UserWarning)
                    np.save(f, value, allow_pickle=False)
            if self.durable:
                f.flush()
                fsync_fd(f.fileno(), path)
                self._note_names(os.path.dirname(path))

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(gpath, name, entry))  # a link goes, not what it names

    def create_group(self, gpath: GPath) -> None:
        path = os.path.join(self._folder(gpath[:-1]), gpath[-1])
        self._remove_entry(path)  # left by a killed process: the name is unused, so it is stale
        try:
            os.mkdir(path)
        except OSError as exc:
            raise _os_error(exc, path, writing=True) from None
        self._note_names(os.path.dirname(path))

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        if self._fresh and not gpath:
            return []  # emptied when the session began
        out = []
        with os.scandir(self._folder(gpath)) as entries:
            for child in entries:
                name = child.name
                if name.startswith("@"):
                    continue
                if child.is_dir(follow_symlinks=False):
                    out.append(("G", name, {}))
                elif name.endswith(".npy"):
                    out.append(("X", name[:-4], {"k": "A"}))
                elif name.endswith(".bin"):
                    out.append(("X", name[:-4], {"k": "B"}))
                elif child.is_symlink():  # removed as a group is: the link only
                    out.append(("G", name, {}))
        return out

    def delete_group(self, gpath: GPath) -> None:
        self._remove_entry(os.path.join(self._folder(gpath[:-1]), gpath[-1]))

    def _remove_entry(self, path: str) -> None:
        """Remove ``path``: a real directory with all it holds, anything else
        (a link to a folder elsewhere included) as a name only."""
        self._folders.clear()
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        except OSError as exc:
            raise _os_error(exc, path, writing=True) from None
        if stat.S_ISDIR(mode):
            shutil.rmtree(path)  # it never follows the links inside
        else:
            _unlink(path)

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
    wait for another process (seconds).  ``durable=True``: each file is
    fsynced before the record that names it, and each directory whose names
    changed before the parent record is replaced, so a write survives power
    loss; by default a write survives the death of the process, not of the
    machine.

    >>> import tempfile, os
    >>> d = os.path.join(tempfile.mkdtemp(), "example.json")
    >>> with JSONDirStorage(d, mode="w") as s:
    ...     s["energy"] = -3.5
    >>> JSONDirStorage(d, mode="r")["energy"]
    -3.5
    """

    def __init__(
        self,
        dirname: str | os.PathLike,
        mode: str = "a",
        lock_timeout: float = DEFAULT_TIMEOUT,
        durable: bool = False,
        check: bool = True,
    ):
        self._init_root(_DirPhysical(dirname, mode, lock_timeout, durable, check))
