"""The cross-process lock that serialises access to a file-backed store.

Readers take a shared lock, writers an exclusive one, so many processes read
one store at once and a writer excludes them all.  On POSIX this is ``flock``
on a descriptor kept open while the lock is held (about 10 µs per operation;
``filelock`` costs ~0.7 ms, which is paid on every read and write here);
elsewhere it is ``filelock.FileLock``, exclusive for readers too.

Rules that make the lock hold against deletion and hostile stores:

* A lock is taken on the lock file the path names *now*: after ``flock``
  succeeds, the descriptor's inode is compared with the path's, and the lock
  is taken again if the file was deleted or replaced meanwhile.  So
  :func:`tinystore.delete` may unlink the lock file while it holds the lock:
  a process that was waiting on the old file retries on the new one.
* The lock file is opened with ``O_NOFOLLOW`` and must be a regular file with
  one link: a symbolic link, FIFO, device or hard link raises
  :class:`~tinystore.errors.UnsafeStoreError` (nothing outside is created).
* A reader that may not open the lock file for writing (another user's
  store, a read-only directory) takes its shared lock on a read-only
  descriptor; only where no lock file exists and none can be made (read-only
  media) does a read-only store go on without one.
* Within one thread, the locks of several storages on one store are one
  lock: a read (``tinystore.load``) while this thread writes the store in a
  ``batch()`` goes ahead at once (it reads the last committed state), and a
  second writer, or a write while another storage of this thread reads,
  raises :class:`~tinystore.errors.StoreLockedError` at once instead of
  waiting for itself until the timeout.

The lock file also carries the store's *generation*: its first 8 bytes, a
counter every write session advances under the exclusive lock
(:meth:`StoreLock.new_generation`; a counter, not a random value, so that
the same operations leave byte-identical stores).  A process that finds the generation it
saw at the end of its last session (and the data file unchanged) knows that
nobody wrote since, and keeps the records it read (see
:meth:`StoreLock.generation`); anything else -- another value, a lock file
that is shorter, replaced or missing -- means "read everything again".
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from typing import Any

from tinystore.errors import StoreLockedError, UnsafeStoreError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Seconds to wait for another process before giving up (``lock_timeout=``).
DEFAULT_TIMEOUT = 60.0

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
#: errors of opening a lock file for writing that leave opening it for reading
_CANNOT_WRITE = (errno.EACCES, errno.EPERM, errno.EROFS)


class _Held:
    """One lock held by this thread: its descriptor (or filelock), mode and users."""

    __slots__ = ("fd", "fallback", "exclusive", "users")

    def __init__(self, fd: int | None, fallback: Any, exclusive: bool):
        self.fd = fd
        self.fallback = fallback
        self.exclusive = exclusive
        self.users = 1  # StoreLock objects of this thread sharing it

    def drop(self) -> None:
        if self.fallback is not None:
            if self.fallback.is_locked:
                self.fallback.release()
        elif self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)


#: (real path of the lock file, thread id) -> the lock this thread holds there
_HELD: dict[tuple[str, int], _Held] = {}


def beside(path: Any) -> str:
    """Where the lock and journal files of the store at ``path`` go: beside
    the store itself, whatever symbolic links lead to it (``<real path>.lock``),
    so every path to one store shares one lock and one journal."""
    return os.path.realpath(os.fspath(path))


def unsafe_file(path: str, why: str) -> UnsafeStoreError:
    return UnsafeStoreError(f"{path} {why}; refusing to use it (nothing outside a store is used)")


def check_regular(fd: int, path: str) -> os.stat_result:
    """``fstat(fd)``, if it is a regular file with one link; else UnsafeStoreError."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise unsafe_file(path, "is not a regular file (a FIFO, device or directory)")
    if st.st_nlink > 1:
        raise unsafe_file(path, f"is a hard link ({st.st_nlink} names for one file)")
    return st


class StoreLock:
    """A shared or exclusive lock on ``path`` (a small lock file), re-entrant in-process.

    ``acquire(shared=True)`` for a read session, ``acquire()`` for a write
    session; ``readonly`` stores always lock shared.  See the module docs.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        store: str,
        timeout: float,
        readonly: bool,
        real: bool = False,
    ):
        self.path = os.fspath(path)
        self.store = store
        self.timeout = timeout
        self.readonly = readonly
        self._count = 0
        self._exclusive = False
        self._held: _Held | None = None
        #: the lock file's real path, which names it for this process's threads;
        #: ``real``: ``path`` is one already (made from :func:`beside`)
        self._key = self.path if real else ""

    # -- errors --------------------------------------------------------
    def _locked(self) -> StoreLockedError:
        return StoreLockedError(
            f"{self.store} is locked by another process; gave up after {self.timeout} s "
            "(pass lock_timeout=... to wait longer)"
        )

    def _in_use(self, held: _Held) -> StoreLockedError:
        doing = "written" if held.exclusive else "read"
        return StoreLockedError(
            f"{self.store} is being {doing} by another open storage of this thread (an "
            "unfinished batch(), hold() or session); a write now would wait for itself. "
            "Use that storage, or finish its block first"
        )

    # -- acquire / release ---------------------------------------------
    def acquire(self, shared: bool = False) -> None:
        shared = shared or self.readonly
        if self._count:
            if not shared and not self._exclusive:
                self._upgrade()
            self._count += 1
            return
        if not self._key:
            self._key = os.path.realpath(self.path)
        key = (self._key, threading.get_ident())
        held = _HELD.get(key)
        if held is not None:
            if not shared:  # a second writer, or a write while this thread reads
                raise self._in_use(held)
            held.users += 1
        else:
            held = self._take(shared)
            _HELD[key] = held
        self._held = held
        self._exclusive = not shared
        self._count = 1

    def release(self) -> None:
        if self._count == 0:
            return
        self._count -= 1
        if self._count:
            return
        held, self._held = self._held, None
        self._exclusive = False
        if held is None:
            return
        held.users -= 1
        if held.users == 0:
            key = (self._key, threading.get_ident())
            if _HELD.get(key) is held:
                del _HELD[key]
            held.drop()

    @property
    def exclusive(self) -> bool:
        """True while this lock is held exclusively (a write session)."""
        return self._count > 0 and self._exclusive

    def unlink(self) -> None:
        """Remove the lock file while holding it exclusively (deleting the store):
        processes waiting on it take the lock on a new file, see :meth:`_take`."""
        if not self.exclusive:
            raise RuntimeError("the lock file is removed only while held exclusively")
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    # -- the generation (see the module docs) -------------------------
    def generation(self) -> bytes | None:
        """The generation now in the lock file (held), or None if there is none."""
        held = self._held
        if held is None or held.fd is None or held.users > 1:
            # shared with another storage of this thread, which may be half-way
            # through a write session: what this one reads now proves nothing
            return None
        try:
            value = os.pread(held.fd, 8, 0)
        except OSError:
            return None
        return value if len(value) == 8 else None

    def new_generation(self) -> bytes | None:
        """Write a new generation (held exclusively) and return it; None if it
        cannot be written -- then the file holds none, so nobody trusts a cache."""
        held = self._held
        if held is None or held.fd is None or not self._exclusive:
            return None
        try:
            old = os.pread(held.fd, 8, 0)
            count = int.from_bytes(old, "little") + 1 if len(old) == 8 else 1
            value = (count % 2**64).to_bytes(8, "little")
            if os.pwrite(held.fd, value, 0) == 8:
                return value
        except OSError:
            pass
        os.ftruncate(held.fd, 0)  # frees blocks, so it works on a full disk too
        return None

    # -- the system calls ----------------------------------------------
    def _take(self, shared: bool) -> _Held:
        if fcntl is None:
            import filelock

            lock = filelock.FileLock(self.path, timeout=self.timeout)
            try:
                lock.acquire()
            except filelock.Timeout:
                raise self._locked() from None
            return _Held(None, lock, True)
        deadline = time.monotonic() + self.timeout
        while True:
            fd = self._open_fd(shared)
            if fd is None:  # read-only media without a lock file: nobody writes there
                return _Held(None, None, False)
            try:
                self._flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX, deadline)
                if self._current(fd):
                    return _Held(fd, None, not shared)
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # deleted or replaced while we waited: lock the file there now

    def _current(self, fd: int) -> bool:
        """True if ``fd`` is the file at :attr:`path` (not one deleted meanwhile)."""
        mine = os.fstat(fd)
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)

    def _open_fd(self, shared: bool) -> int | None:
        """The lock file, opened without following links; checked to be a plain file."""
        flags = _NOFOLLOW | _CLOEXEC | _NONBLOCK
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise unsafe_file(self.path, "is a symbolic link") from None
            if isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(f"{self.store} does not exist (any more)") from None
            if not shared or exc.errno not in _CANNOT_WRITE:
                raise
            fd = self._open_readonly()
            if fd is None:
                return None
        try:
            check_regular(fd, self.path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _open_readonly(self) -> int | None:
        try:
            return os.open(self.path, os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK)
        except FileNotFoundError:
            if self.readonly:
                return None
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise unsafe_file(self.path, "is a symbolic link") from None
            raise

    def _flock(self, fd: int, how: int, deadline: float) -> None:
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, how | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise self._locked() from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    def _upgrade(self) -> None:
        """Shared to exclusive, for a write inside a read session of this storage.

        ``flock`` converts by dropping the shared lock first, so two processes
        that both upgrade never deadlock (one waits for the other); the caller
        must read the store again afterwards (another writer may have come in).
        """
        held = self._held
        if held is None or held.users > 1:
            raise self._in_use(held or _Held(None, None, False))
        if held.fd is not None and not held.exclusive:
            try:
                self._flock(held.fd, fcntl.LOCK_EX, time.monotonic() + self.timeout)
            except StoreLockedError:
                try:  # back to the read session the caller still holds
                    self._flock(held.fd, fcntl.LOCK_SH, time.monotonic() + self.timeout)
                except StoreLockedError:
                    self._count = 1
                    self.release()  # lost: the caller's end of session is then a no-op
                raise
        held.exclusive = True
        self._exclusive = True
