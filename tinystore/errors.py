"""The exceptions tinystore raises.

Every error is a :class:`TinystoreError` and also subclasses the builtin
exception a user would naturally catch, so existing ``except KeyError`` or
``except ValueError`` code keeps working::

    TinystoreError
    ├── NodeNotFoundError   (KeyError)      no node at that path
    ├── InvalidKeyError     (ValueError, TypeError) key or path not allowed
    ├── ReadOnlyError       (PermissionError) storage opened read-only
    ├── NotAStoreError      (OSError)       file/directory is not a tinystore store
    ├── StoreFullError      (OSError)       the disk filled up; the write was undone
    ├── CorruptStoreError   (OSError)       a stored node is damaged
    │   └── UnsafeStoreError                 a node leads outside the store (link, device)
    ├── FormatVersionError  (OSError)       written by a newer format version
    ├── StorageClosedError  (ValueError)    operation on a closed storage
    ├── StoreLockedError    (TimeoutError)  another process holds the store too long
    ├── ConflictError       (RuntimeError)  another writer committed first (icechunk)
    ├── UnsupportedValueError (TypeError)   value is not a leaf and no codec is set
    ├── SharedNodeError     (ValueError)    partial update would break a shared reference
    ├── UnstorableError     (pickle.PicklingError, TypeError) object cannot be stored
    ├── UnloadableError     (pickle.UnpicklingError) stored object cannot be rebuilt
    ├── UnsafeLoadError     (pickle.UnpicklingError) refused by ``safe=True``
    ├── VersionMismatchError (ImportError)  ``version_check="strict"`` failed
    └── BackendError        (ValueError)    unknown backend, suffix or option

and one warning, :class:`ConcurrentWriterWarning` (a ``UserWarning``).
"""

from __future__ import annotations

import pickle

__all__ = [
    "TinystoreError",
    "NodeNotFoundError",
    "InvalidKeyError",
    "ReadOnlyError",
    "NotAStoreError",
    "StoreFullError",
    "CorruptStoreError",
    "UnsafeStoreError",
    "FormatVersionError",
    "StorageClosedError",
    "StoreLockedError",
    "ConflictError",
    "ConcurrentWriterWarning",
    "UnsupportedValueError",
    "SharedNodeError",
    "UnstorableError",
    "UnloadableError",
    "UnsafeLoadError",
    "VersionMismatchError",
    "BackendError",
]


class TinystoreError(Exception):
    """Base class of every error raised by tinystore."""


class NodeNotFoundError(TinystoreError, KeyError):
    """No node exists at the given path; the message names the full path."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class InvalidKeyError(TinystoreError, ValueError, TypeError):
    """A key or path is not allowed (empty, ``.``/``..``, NUL, too long, ...)."""


class ReadOnlyError(TinystoreError, PermissionError):
    """A write was attempted on a storage opened read-only (mode ``"r"``)."""


class NotAStoreError(TinystoreError, OSError):
    """The file or directory exists but was not written by tinystore."""


class StoreFullError(TinystoreError, OSError):
    """A write failed for want of space (or another write error of the disk);
    everything the failed write changed was rolled back, and the store is as
    it was before it.  ``errno`` is that of the failure (``ENOSPC``)."""


class CorruptStoreError(TinystoreError, OSError):
    """A stored node cannot be read; the message names the damaged node."""


class UnsafeStoreError(CorruptStoreError):
    """A node of the store leads outside it (a symbolic, hard or external link,
    a virtual or externally stored dataset, a FIFO or device); it is refused,
    never followed.  The message names the node."""


class FormatVersionError(TinystoreError, OSError):
    """The store was written by a newer, incompatible format version."""


class StorageClosedError(TinystoreError, ValueError):
    """The storage (or the file behind it) has been closed."""


class StoreLockedError(TinystoreError, TimeoutError):
    """Another process kept the store locked longer than ``lock_timeout`` seconds;
    or (HDF5) another handle of this process (an ``h5py.File``) holds the file."""


class ConflictError(TinystoreError, RuntimeError):
    """Another writer committed to a transactional (icechunk) store first, and
    this operation could not be run again on its commit: nothing of it was
    committed.  Raised at the end of a ``batch()`` block that met another
    writer, and by an operation still conflicting after ``retry_timeout``."""


class ConcurrentWriterWarning(UserWarning):
    """Another process writes a store that is safe for one writer only (a
    local icechunk folder): a commit may be lost."""


class UnsupportedValueError(TinystoreError, TypeError):
    """A value that is not a storage leaf was given to a storage without codec."""


class SharedNodeError(TinystoreError, ValueError):
    """A partial update or delete would give parts that share an object different objects."""


class UnstorableError(TinystoreError, pickle.PicklingError, TypeError):
    """An object (or a part of it, named by path) cannot be stored.

    Also a :class:`TypeError`, which is what ``pickle`` raises for objects it
    cannot pickle (open files, ``staticmethod`` objects, ...): code written
    for pickle catches either.
    """


class UnloadableError(TinystoreError, pickle.UnpicklingError):
    """A stored object cannot be rebuilt (missing class, failing constructor)."""


class UnsafeLoadError(TinystoreError, pickle.UnpicklingError):
    """Loading with ``safe=True`` met something outside the allowlist."""


class VersionMismatchError(TinystoreError, ImportError):
    """Recorded and installed versions differ under ``version_check="strict"``."""


class BackendError(TinystoreError, ValueError):
    """Unknown backend name or file suffix, or an option a backend refuses."""
