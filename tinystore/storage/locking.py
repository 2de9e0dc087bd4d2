"""The cross-process lock that serialises access to a file-backed store."""

from __future__ import annotations

import os

import filelock

from tinystore.errors import StoreLockedError

#: Seconds to wait for another process before giving up (``lock_timeout=``).
DEFAULT_TIMEOUT = 60.0


class StoreLock:
    """An exclusive lock on ``path`` (a small lock file), re-entrant in-process.

    Writers and readers alike take it for the length of one operation, so a
    reader never sees a half-written object.  On read-only media, where the
    lock file cannot be created, read-only stores go on without it.
    """

    def __init__(self, path: str | os.PathLike, store: str, timeout: float, readonly: bool):
        self._lock = filelock.FileLock(os.fspath(path), timeout=timeout)
        self.store = store
        self.timeout = timeout
        self.readonly = readonly
        self._skipped = 0

    def acquire(self) -> None:
        try:
            self._lock.acquire()
        except filelock.Timeout:
            raise StoreLockedError(
                f"{self.store} is locked by another process; gave up after {self.timeout} s "
                "(pass lock_timeout=... to wait longer)"
            ) from None
        except OSError:
            if not self.readonly:
                raise
            self._skipped += 1  # read-only media: nobody can write there anyway

    def release(self) -> None:
        if self._skipped:
            self._skipped -= 1
        else:
            self._lock.release()
