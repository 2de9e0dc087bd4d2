"""A rollback journal that makes in-place file updates all-or-nothing.

HDF5 rewrites metadata in place, so a process killed while it writes can
leave a file that no longer opens (measured: "addr overflow" after SIGKILL
during a flush).  :class:`JournaledFile` is the file object h5py writes
through during a write session: before a byte of the file as it was at the
session's start is overwritten, the original bytes go to a journal file.  A
session that completes deletes the journal; :func:`roll_back` (run at the
next session) restores the original bytes and length if a journal is left
over -- SQLite's rollback journal, for any file format.

A small file is cheaper to save whole, before anything writes to it
(:func:`save_whole_file`): it can then be written without passing through
a Python file object, and :func:`roll_back` restores it all the same.

Journal layout: an 8-byte original length, then records of
``offset (8) | length (4) | original bytes``; a record cut short by a kill
is ignored (the data write it protects had not started yet).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import struct
from typing import Any

from tinystore.errors import StoreFullError, UnsafeStoreError

#: For tests of durable writes: when a list, every fsync, rename and unlink
#: done through the helpers below is appended to it as ``(call, path,
#: source)`` (``source``: a rename's old name), in the order they were made.
TRACE: list | None = None


def _note(call: str, path: str, source: str = "") -> None:
    if TRACE is not None:
        TRACE.append((call, os.fspath(path), os.fspath(source)))


def fsync_fd(fd: int, path: str) -> None:
    """``os.fsync(fd)`` (the file at ``path``): its data on the disk."""
    os.fsync(fd)
    _note("fsync", path)


def fsync_path(path: str) -> None:
    """fsync a file or directory by name (a directory: the names it holds).
    Windows cannot open directories; there, renames are durable on their own."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) * os.path.isdir(path))
    except (PermissionError, IsADirectoryError):
        return
    try:
        fsync_fd(fd, path)
    finally:
        os.close(fd)


def fsync_dir_of(path: str) -> None:
    fsync_path(os.path.dirname(os.path.abspath(path)))


def rename(src: str, dst: str) -> None:
    os.rename(src, dst)
    _note("rename", dst, src)


def unlink(path: str) -> None:
    os.unlink(path)
    _note("unlink", path)


#: Errors that say the disk (or the user's share of it) is full.
FULL_ERRNOS = frozenset(
    getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG") if hasattr(errno, name)
)


def check_space(path: str, nbytes: int) -> None:
    """Refuse (StoreFullError) to write ``nbytes`` beside ``path`` if the file
    system has not that much free space: a cheap first check, before anything
    is written; the writers still detect a failed write and roll it back.
    Costs one ``statvfs`` (about a microsecond)."""
    try:
        st = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except (AttributeError, OSError):  # no statvfs (Windows): the write will tell
        return
    free = st.f_bavail * st.f_frsize
    if nbytes > free:
        why = f"{nbytes} bytes to write, but only {free} free; nothing was changed"
        raise StoreFullError(errno.ENOSPC, why, path)


def full_error(exc: OSError, path: str) -> OSError:
    """``exc`` as a StoreFullError if it says the disk is full, else ``exc``."""
    if isinstance(exc, StoreFullError) or exc.errno not in FULL_ERRNOS:
        return exc
    return StoreFullError(exc.errno, f"{exc.strerror}; the write was undone", path)


def write_failure(path: str, failures: list) -> OSError:
    """The error to raise for a write session of ``path`` that met ``failures``
    (the first one is its cause) and was rolled back."""
    first = failures[0]
    code = getattr(first, "errno", None)
    if code is None and "No space left" in str(first):
        code = errno.ENOSPC
    message = f"writing failed ({first}); the store was rolled back to its last complete state"
    if code in FULL_ERRNOS:
        return StoreFullError(code, message, path)
    return OSError(code or errno.EIO, message, path)


_HEAD = struct.Struct("<Q")
_REC = struct.Struct("<QI")
PAGE = 4096


_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def pwrite_all(fd: int, data, offset: int) -> None:
    """Write all of ``data`` at ``offset`` (a short write is carried on)."""
    view = memoryview(data).cast("B")
    while view:
        done = os.pwrite(fd, view, offset)
        if done <= 0:
            raise OSError(errno.EIO, "the write wrote nothing")
        view, offset = view[done:], offset + done


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        done = os.write(fd, view)
        if done <= 0:
            raise OSError(errno.EIO, "the write wrote nothing")
        view = view[done:]


class JournaledFile(io.RawIOBase):
    """A read/write file whose overwrites are journaled first (see module docs).

    The file and its journal are unbuffered descriptors (``pread``/``pwrite``
    at a position kept here): a journal record is in the OS when its
    ``write`` returns, before the data write it protects begins, with no
    buffer to flush, and each call of HDF5 costs one or two system calls.
    """

    def __init__(self, path: str, journal_path: str, durable: bool = False):
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | _BINARY | _CLOEXEC)
        self._path = path
        self._journal_path = journal_path
        self._durable = durable
        #: the first write error: after one, nothing more is written (a page
        #: whose journaling failed must never be overwritten), and it is raised
        #: again at :meth:`check`, however HDF5 reported it
        self.failure: OSError | None = None
        self._length = os.fstat(self._fd).st_size
        self._pos = 0
        self._saved: set[int] = set()  # pages already in the journal
        self._journal: int | None = None
        try:
            self._journal = _create_journal_fd(journal_path)
            _write_all(self._journal, _HEAD.pack(self._length))
        except OSError as exc:  # nothing written to the file yet: the journal goes
            os.close(self._fd)
            if self._journal is not None:
                with contextlib.suppress(OSError):
                    os.close(self._journal)
            with contextlib.suppress(OSError):
                os.unlink(journal_path)
            if exc.errno in FULL_ERRNOS:
                raise StoreFullError(exc.errno, f"no space for the journal: {exc}", path) from exc
            raise
        if durable:  # the journal's name on the disk before the file changes
            fsync_fd(self._journal, journal_path)
            fsync_dir_of(journal_path)

    # the file-object protocol h5py's "fileobj" driver uses
    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            self._pos = offset
        elif whence == io.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = os.fstat(self._fd).st_size + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        data = os.pread(self._fd, len(view), self._pos)
        n = len(data)
        view[:n] = data
        self._pos += n
        return n

    def _save(self, start: int, end: int) -> None:
        """Journal the original bytes of [start, end) that are not journaled yet."""
        end = min(end, self._length)
        if start >= end:
            return
        saved = self._saved
        records = []
        for page in range(start // PAGE, (end - 1) // PAGE + 1):
            if page not in saved:
                offset = page * PAGE
                original = os.pread(self._fd, min(PAGE, self._length - offset), offset)
                records.append(_REC.pack(offset, len(original)) + original)
                saved.add(page)
        if records:  # in the OS (no buffer) before the data is overwritten
            _write_all(self._journal, b"".join(records))
            if self._durable:  # and on the disk
                fsync_fd(self._journal, self._journal_path)

    def _failing(self, exc: OSError) -> OSError:
        if self.failure is None:
            self.failure = exc
        return exc

    def write(self, data) -> int:
        if self.failure is not None:
            raise OSError(self.failure.errno, f"an earlier write failed: {self.failure}")
        try:
            start = self._pos
            size = memoryview(data).nbytes
            self._save(start, start + size)
            pwrite_all(self._fd, data, start)
        except OSError as exc:
            raise self._failing(exc) from None
        self._pos = start + size
        return size

    def truncate(self, size: int | None = None) -> int:
        if self.failure is not None:
            raise OSError(self.failure.errno, f"an earlier write failed: {self.failure}")
        try:
            size = self._pos if size is None else size
            self._save(size, self._length)
            os.ftruncate(self._fd, size)
        except OSError as exc:
            raise self._failing(exc) from None
        return size

    def flush(self) -> None:
        pass  # nothing is buffered here

    def check(self) -> None:
        """Raise the first write error of the session, if there was one."""
        if self.failure is not None:
            raise self.failure

    def close(self) -> None:
        """Close the file, but keep the journal: :meth:`commit` removes it."""
        if not self.closed:
            super().close()
            os.close(self._fd)
            os.close(self._journal)

    def commit(self) -> None:
        """The file is complete: forget the journal (durable: the file's data on
        the disk first, then the journal's removal)."""
        if self._durable and not self.closed:
            fsync_fd(self._fd, self._path)
        self.close()
        unlink(self._journal_path)
        if self._durable:
            fsync_dir_of(self._journal_path)


class RolledBackFile(io.RawIOBase):
    """The file as :func:`roll_back` would leave it, read without writing a byte.

    For readers that find a journal left by a killed writer but may not write
    (read-only stores): they see the last complete state, and the journal
    stays for the next writer to play back.
    """

    def __init__(self, path: str, journal_path: str):
        super().__init__()
        data = _read_journal(journal_path)
        self._f = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._length = os.fstat(self._f.fileno()).st_size
        self._patches: list[tuple[int, bytes]] = []
        if len(data) >= _HEAD.size:  # else the journal was cut before the file changed
            (self._length,) = _HEAD.unpack_from(data)
            pos = _HEAD.size
            while pos + _REC.size <= len(data):
                offset, size = _REC.unpack_from(data, pos)
                pos += _REC.size
                if pos + size > len(data):
                    break
                self._patches.append((offset, data[pos : pos + size]))
                pos += size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        start = self._pos
        n = max(0, min(len(view), self._length - start))
        self._f.seek(start)
        got = self._f.readinto(view[:n]) or 0
        view[got:n] = bytes(n - got)  # roll_back's truncate would extend with zeros
        for offset, original in self._patches:
            lo, hi = max(start, offset), min(start + n, offset + len(original))
            if lo < hi:
                view[lo - start : hi - start] = original[lo - offset : hi - offset]
        self._pos = start + n
        return n

    def close(self) -> None:
        if not self.closed:
            super().close()
            self._f.close()


def _read_journal(journal_path: str) -> bytes:
    """The journal's bytes; a journal that is a link or not a regular file is
    refused (it would restore another file's bytes into the store)."""
    try:
        fd = os.open(
            journal_path,
            os.O_RDONLY
            | getattr(os, "O_NOFOLLOW", 0)
            | getattr(os, "O_NONBLOCK", 0)
            | getattr(os, "O_BINARY", 0),
        )
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeStoreError(f"{journal_path} is a symbolic link; refusing it") from None
        raise
    with os.fdopen(fd, "rb") as j:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafeStoreError(f"{journal_path} is not a regular file; refusing it")
        return j.read()


def _create_journal_fd(journal_path: str) -> int:
    """A new, empty journal (a descriptor); whatever had its name (a link
    elsewhere) is replaced."""
    try:
        os.unlink(journal_path)
    except FileNotFoundError:
        pass
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(journal_path, flags | _BINARY | _CLOEXEC, 0o644)


def _create_journal(journal_path: str):
    """:func:`_create_journal_fd`, as a file object."""
    return os.fdopen(_create_journal_fd(journal_path), "wb")


def put_in_place(new: str, path: str, durable: bool = False) -> None:
    """Rename the complete file ``new`` to ``path`` (the commit point of a file
    written whole under a temporary name); ``durable``: its bytes on the disk
    before the rename, and the rename on the disk after it."""
    if durable:
        fsync_path(new)
    rename(new, path)
    if durable:
        fsync_dir_of(path)


def save_whole_file(path: str, journal_path: str, limit: int, durable: bool = False) -> bool:
    """Journal all of ``path`` if it has at most ``limit`` bytes; True if it did.

    Once this returns True, ``path`` may be changed in any way until the
    journal is removed: :func:`roll_back` restores it byte for byte.
    ``durable``: the journal is on the disk (data and name) before it returns.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > limit:
            return False
        try:
            # in the OS (closed) before the caller writes a byte of the file
            with _create_journal(journal_path) as journal:
                journal.write(_HEAD.pack(size) + _REC.pack(0, size))
                _copy_file(f, journal, size)
                if durable:
                    journal.flush()
                    fsync_fd(journal.fileno(), journal_path)
        except OSError as exc:  # a full disk, say: the file is untouched, the journal goes
            _journal_failed(exc, path, journal_path)
    if durable:
        fsync_dir_of(journal_path)
    return True


def _copy_file(source: Any, target: Any, size: int) -> None:
    """Append the ``size`` bytes of the file object ``source`` (from its
    start) to the file object ``target``: in the kernel where it can
    (``copy_file_range``: ~3x faster than through Python for 250 KB), else
    read and written."""
    target.flush()
    done = 0
    copy = getattr(os, "copy_file_range", None)
    if copy is not None:
        try:
            while done < size:
                n = copy(source.fileno(), target.fileno(), size - done, done)
                if n <= 0:
                    break
                done += n
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise
        target.seek(0, os.SEEK_END)  # (copy_file_range moved the descriptor's offset)
    if done < size:  # no copy_file_range here, or not between these files
        source.seek(done)
        rest = source.read(size - done)
        if len(rest) != size - done:
            raise OSError(errno.EIO, f"{source.name} changed while it was journaled")
        target.write(rest)


def _journal_failed(exc: OSError, path: str, journal_path: str) -> None:
    """Remove a journal that could not be written; raise why."""
    with contextlib.suppress(OSError):
        os.unlink(journal_path)
    if exc.errno in FULL_ERRNOS:
        raise StoreFullError(exc.errno, f"no space for the journal: {exc}", path) from exc
    raise exc


def finish_whole_file(path: str, journal_path: str, durable: bool = False) -> None:
    """End a session that :func:`save_whole_file` began: the file is complete
    (durable: on the disk first), then the journal goes."""
    if durable:
        fsync_path(path)
    unlink(journal_path)
    if durable:
        fsync_dir_of(journal_path)


def roll_back(path: str, journal_path: str) -> bool:
    """Undo an interrupted session from its journal; True if there was one."""
    try:
        data = _read_journal(journal_path)
    except FileNotFoundError:
        return False
    if len(data) >= _HEAD.size:
        (length,) = _HEAD.unpack_from(data)
        with open(path, "r+b") as f:
            pos = _HEAD.size
            while pos + _REC.size <= len(data):
                offset, size = _REC.unpack_from(data, pos)
                pos += _REC.size
                if pos + size > len(data):
                    break  # cut short by the kill: its data write never began
                f.seek(offset)
                f.write(data[pos : pos + size])
                pos += size
            f.truncate(length)
            f.flush()
            os.fsync(f.fileno())  # restored on the disk before the journal goes
    os.unlink(journal_path)
    return True
