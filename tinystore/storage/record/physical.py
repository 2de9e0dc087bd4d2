"""The :class:`Physical` interface: one open file, directory or memory store."""

from __future__ import annotations

import abc
from typing import Any, Callable

from tinystore.errors import StorageClosedError
from tinystore.storage.record.format import INLINE_LIMIT, GPath, check_name, file_name


class Physical(abc.ABC):
    """One open file, directory or memory store, as a backend sees it."""

    readonly: bool = False
    location: str = "?"
    #: True if other processes may change the store between sessions (files):
    #: cached records are then dropped when a session starts.
    shared: bool = False
    #: True to write records indented, one entry per line (for diffs under git).
    pretty: bool = False
    #: True if a leaf inside a stored object is stored at its path in the
    #: object (``"run1/forces"``): external names may then be paths.
    nested: bool = False
    #: Arrays of more bytes than this are stored outside the record.
    inline_array_limit: int = INLINE_LIMIT

    def physical_name(self, key: str) -> str:
        """The name (before ``~n`` for uniqueness) of a key's group or leaf."""
        return file_name(key)

    def check_name(self, name: Any, where: str, kind: str = "X") -> str:
        """A physical name read from a record or journal (``kind`` ``"X"``: a
        leaf, ``"G"``: a group): refuse anything that could leave its group."""
        return check_name(name, where)

    def begin(self, write: bool) -> None:
        """Start a session: take the cross-process lock, open handles.

        A file backend sets :attr:`shared` here: False when it can tell that
        nobody changed the store since its own last session ended (see
        :mod:`tinystore.storage.locking`, the generation), so that the
        records read then are still good.
        """

    def forget(self) -> None:
        """A session failed: what it leaves cached proves nothing about the file."""

    def upgrade(self) -> None:
        """Turn the current read session into a write session."""

    def end(self) -> None:
        """End a session: flush and close handles, release the lock."""

    def abort(self) -> bool:
        """Undo every write of the current write session (the file as it was
        when the session began), if this backend can; True if it did.

        A backend that can lets a transaction that is the first of its session
        free replaced data before writing the new (see ``_Store.discard``).
        """
        return False

    #: True if :meth:`abort` can undo a write session (HDF5's rollback journal).
    can_abort: bool = False

    def journal(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        """Note a physical name about to be written (found again after a crash)."""

    def read_journal(self) -> list:
        """``[(gpath, kind, name, entry), ...]`` noted by an interrupted transaction."""
        return []

    def clear_journal(self) -> None:
        """Forget the notes of a transaction that completed."""

    @abc.abstractmethod
    def read_record(self, gpath: GPath) -> bytes | None:
        """The record bytes of a physical group, or None if there is none."""

    @abc.abstractmethod
    def write_record(self, gpath: GPath, data: bytes) -> None:
        """Replace the record of a physical group (atomically where possible)."""

    def write_records(self, records: list[tuple[GPath, bytes]]) -> None:
        """Replace the records of a transaction as one: all of them, or none if
        this raises (children come before their parents).

        This default keeps the records it replaces and puts them back if a
        write fails; a backend whose writes a killed process could leave half
        done (the JSON directory) overrides it.  A group whose record is new
        needs nothing back: its parent's record, replaced too, names it.
        """
        if len(records) < 2:
            for gpath, data in records:
                self.write_record(gpath, data)
            return
        done: list[tuple[GPath, bytes | None]] = []
        last = len(records) - 1
        try:
            for i, (gpath, data) in enumerate(records):
                if i < last:  # the last one written, nothing needs putting back
                    done.append((gpath, self.read_record(gpath)))
                self.write_record(gpath, data)
        except BaseException:
            for gpath, old in reversed(done):
                if old is not None:
                    self.write_record(gpath, old)
            raise

    @abc.abstractmethod
    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        """The array (``entry["k"] == "A"``) or bytes stored as ``name``."""

    def read_external_summed(self, gpath: GPath, name: str, entry: dict) -> tuple:
        """``(read_external(...), checksum)``: backends that sum a leaf's bytes
        while reading them (see :class:`~tinystore.storage.checksum.Sum64`)
        return the checksum of what they read; None, the default, has it
        computed afterwards, in a second pass."""
        return self.read_external(gpath, name, entry), None

    def read_external_slice(self, gpath: GPath, name: str, entry: dict, selection: Any) -> Any:
        """``read_external(...)[selection]`` for an array; backends that can
        read only the bytes the selection needs override it."""
        return self.read_external(gpath, name, entry)[selection]

    @abc.abstractmethod
    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        """Store an array or bytes as ``name``; may add fields to ``entry``."""

    def rename_external(self, gpath: GPath, name: str, new: str, entry: dict) -> None:
        """Move external ``name`` to ``new`` (backends with ``nested`` only)."""
        raise NotImplementedError

    def rename_group(self, gpath: GPath, name: str, new: str) -> None:
        """Move physical subgroup ``name`` of ``gpath`` to ``new`` (``nested`` only)."""
        raise NotImplementedError

    @abc.abstractmethod
    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None: ...

    @abc.abstractmethod
    def create_group(self, gpath: GPath) -> None: ...

    @abc.abstractmethod
    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        """What a physical group holds: ``("X", name, entry)`` externals, ``("G", name, {})``."""

    @abc.abstractmethod
    def delete_group(self, gpath: GPath) -> None: ...

    def commit(self) -> None:
        """Hand everything written so far to the operating system (a flush).

        It survives the process being killed; a power cut only with the
        backend's ``durable=True``, which adds ``fsync`` (HDF5 and JSON).
        """

    @abc.abstractmethod
    def close(self) -> None: ...

    def reopen(self) -> None:
        raise StorageClosedError(f"{self.location} cannot be reopened")


def open_cached(cache: dict, gpath: GPath, root: Any, step: Callable[[Any, int], Any]) -> Any:
    """The handle of the physical group ``gpath`` (a directory, an HDF5
    group), opened from the nearest group in ``cache`` (else ``root``) one
    level at a time, ``step(parent, j)`` opening and checking ``gpath[j]``;
    each level is cached on the way, so a walk is linear in the depth."""
    handle = cache.get(gpath)
    if handle is not None:
        return handle
    i = len(gpath) - 1
    while i > 0 and gpath[:i] not in cache:
        i -= 1
    handle = cache[gpath[:i]] if i > 0 else root
    for j in range(max(i, 0), len(gpath)):
        handle = step(handle, j)
        cache[gpath[: j + 1]] = handle
    return handle
