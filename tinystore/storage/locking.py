"""The cross-process lock that serialises access to a file-backed store."""

from __future__ import annotations

import os
import time

from tinystore.errors import StoreLockedError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

#: Seconds to wait for another process before giving up (``lock_timeout=``).
DEFAULT_TIMEOUT = 60.0


class StoreLock:
    """An exclusive lock on ``path`` (a small lock file), re-entrant in-process.

    Writers and readers alike take it for the length of one operation, so a
    reader never sees a half-written object.  On read-only media, where the
    lock file cannot be created, read-only stores go on without it.

    On POSIX this is ``flock`` on a descriptor kept open while the lock is
    held (about 10 µs per operation; ``filelock`` costs ~0.7 ms, which is paid
    on every read and write here); elsewhere it is ``filelock.FileLock``.
    """

    def __init__(self, path: str | os.PathLike, store: str, timeout: float, readonly: bool):
        self.path = os.fspath(path)
        self.store = store
        self.timeout = timeout
        self.readonly = readonly
        self._count = 0
        self._fd: int | None = None
        self._fallback = None
        if fcntl is None:
            import filelock

            self._fallback = filelock.FileLock(self.path, timeout=timeout)

    def _locked(self) -> StoreLockedError:
        return StoreLockedError(
            f"{self.store} is locked by another process; gave up after {self.timeout} s "
            "(pass lock_timeout=... to wait longer)"
        )

    def acquire(self) -> None:
        if self._count:
            self._count += 1
            return
        try:
            self._acquire()
        except StoreLockedError:
            raise
        except OSError:
            if not self.readonly:
                raise
            # read-only media: nobody can write there anyway
        self._count = 1

    def _acquire(self) -> None:
        if self._fallback is not None:
            import filelock

            try:
                self._fallback.acquire()
            except filelock.Timeout:
                raise self._locked() from None
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise self._locked() from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
            except BaseException:
                os.close(fd)
                raise
        self._fd = fd

    def release(self) -> None:
        if self._count == 0:
            return
        self._count -= 1
        if self._count:
            return
        if self._fallback is not None:
            if self._fallback.is_locked:
                self._fallback.release()
        elif self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
