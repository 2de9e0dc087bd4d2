"""Transactions: the state shared by the groups of one open store.

Record cache, sessions (lock and handles), commit, rollback, recovery from
an interrupted transaction, and the physical writes of leaves and groups.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from tinystore.errors import (
    CorruptStoreError,
    NotAStoreError,
    ReadOnlyError,
    StorageClosedError,
)
from tinystore.storage.base import Tree
from tinystore.storage.checksum import leaf_sum
from tinystore.storage.leaves import (
    array_meta,
    decode_inline,
    encode_inline,
    leaf_nbytes,
    with_flags,
)
from tinystore.storage.record import packing
from tinystore.storage.record.format import (
    INLINE_LIMIT,
    GPath,
    Record,
    _at,
    _children_entries,
    _entry_names,
    _target,
    dumps_record,
    loads_record,
)
from tinystore.storage.record.physical import Physical


class _Store:
    """State shared by all groups of one open storage: cache and transactions."""

    def __init__(self, physical: Physical):
        self.physical = physical
        self.records: dict[GPath, Record] = {}
        self.sessions = 0
        self.session_write = False
        self.failed = False  # an exception left a write session
        self.depth = 0
        self.garbage: list[tuple[GPath, str, str, dict]] = []
        self.written: list[tuple[GPath, str, str, dict]] = []
        #: physical names removed early (see ``discard``): the session is aborted on a failure
        self.freed: list[tuple[GPath, str]] = []
        #: True once a transaction committed in the current write session
        self.committed = False
        #: True while the running transaction may free replaced data at once
        self.free_early = False
        #: records and external leaves read without a checksum (older files)
        self.unchecked: set[str] = set()
        #: replaced data moved aside to free its name (``nested`` backends, see
        #: ``_set_aside``): ``(gpath, kind, name, moved to)``, moved back on a rollback
        self.moves: list[tuple[GPath, str, str, str]] = []
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise StorageClosedError(f"{self.physical.location} is closed; call .open() first")

    def session(self, write: bool = False) -> _Session:
        """Hold the store (lock and handles) for a group of operations."""
        return _Session(self, write)

    def _enter(self, write: bool) -> None:
        """The start of a session (see :meth:`session`): the first takes the store."""
        self.check_open()
        physical = self.physical
        if write and physical.readonly:
            raise ReadOnlyError(f"{physical.location} is open read-only")
        if self.sessions == 0:
            physical.begin(write)
            self.session_write = write
            self.committed = False
            if physical.shared:
                self.records.clear()  # another process may have written meanwhile
            if write:
                try:
                    self._recover()
                except BaseException:
                    physical.end()
                    raise
        elif write and not self.session_write:
            physical.upgrade()
            self.session_write = True
            if physical.shared:  # the lock was shared: another process may have written
                self.records.clear()
        self.sessions += 1

    def _leave(self, failed: bool) -> None:
        """The end of a session (``failed``: by an exception); the last lets the store go."""
        if failed:
            self.failed = self.failed or self.session_write
        self.sessions -= 1
        if self.sessions == 0:
            self.session_write = False
            failed, self.failed = self.failed, False
            self.physical.end()
            if failed:  # a write failed in this session: the next one reads all again
                self.physical.forget()

    def _recover(self) -> None:
        """Remove what an interrupted transaction wrote but never referenced."""
        notes = self.physical.read_journal()
        for gpath, kind, name, entry in notes:
            try:
                self.physical.check_name(name, "the journal", kind)
                for part in gpath:
                    self.physical.check_name(part, "the journal", "G")
                used = name in self._record(tuple(gpath)).names
            except (CorruptStoreError, NotAStoreError, StorageClosedError, OSError, KeyError):
                continue  # its group is gone: deleting that group removed it too
            if not used:
                with contextlib.suppress(OSError, KeyError):
                    self._remove(tuple(gpath), kind, name, entry)
        if notes:
            self.physical.clear_journal()
            self.physical.commit()

    def record(self, gpath: GPath) -> Record:
        if self.sessions:
            return self._record(gpath)
        with self.session():
            return self._record(gpath)

    def _record(self, gpath: GPath) -> Record:
        self.check_open()
        rec = self.records.get(gpath)
        if rec is None:
            where = self.describe(gpath)
            try:
                data = self.physical.read_record(gpath)
            except MemoryError:
                raise CorruptStoreError(f"the record of {where} is too large to read") from None
            if data is None:
                if gpath and not self._linked(gpath):
                    raise StorageClosedError(
                        f"{where} no longer exists (it was deleted or replaced); "
                        "this handle to it is stale"
                    )
                raise CorruptStoreError(f"the record of {where} is missing")
            rec = loads_record(data, where)
            if not rec.checked:
                self.unchecked.add(f"the record of {where}")
            self.records[gpath] = rec
        return rec

    def _linked(self, gpath: GPath) -> bool:
        """True if the parent of physical group ``gpath`` still refers to it."""
        return gpath[-1] in self._record(gpath[:-1]).names

    def describe(self, gpath: GPath) -> str:
        inner = "/".join(gpath)
        return f"group '/{inner}' of {self.physical.location}"

    def transaction(self) -> _Transaction:
        """All-or-nothing writes: records are written once, at the end."""
        return _Transaction(self)

    def _begin(self) -> None:
        """The start of a transaction (see :meth:`transaction`), in a write session."""
        self._enter(True)
        if self.depth == 0:
            # the first transaction of its session can be undone by aborting
            # the session, so the data it replaces may be freed before the
            # new is written (the file needs one copy of it, not two)
            try:
                self.free_early = self.physical.can_abort and not self.committed
            except BaseException:
                self._leave(True)
                raise
        self.depth += 1

    def _finish(self, failed: bool) -> None:
        """The end of a transaction: the outermost commits (or rolls back if
        ``failed``), then the session ends."""
        try:
            self.depth -= 1
            if self.depth == 0:
                if failed:
                    self._rollback()
                else:
                    self._commit()
        except BaseException:
            self._leave(True)
            raise
        self._leave(failed)

    def _commit(self) -> None:
        dirty = [(gp, rec) for gp, rec in self.records.items() if rec.dirty]
        dirty.sort(key=lambda item: -len(item[0]))  # children before their parents
        pretty = self.physical.pretty
        try:
            # all records encoded before any is written; then written as one
            # (a batch into several groups is one transaction: Physical.write_records)
            self.physical.write_records(
                [(gp, dumps_record(rec.canonical(), pretty, rec.attrs)) for gp, rec in dirty]
            )
            self.physical.commit()  # a flush (the commit point of a backend that buffers)
        except BaseException:
            self._rollback()
            raise
        for _, rec in dirty:
            rec.dirty = False
        self.written.clear()  # the records name it now: never rolled back
        self.committed = True
        self.free_early = False
        self.freed.clear()  # their names were released as they went
        self.moves.clear()
        garbage, self.garbage = self.garbage, []
        removed = True  # committed: a failure now leaves garbage, never an error
        for gpath, kind, name, entry in garbage:
            try:
                self._remove(gpath, kind, name, entry)
            except Exception:
                removed = False  # the journal keeps it: the next write session removes it
                continue
            rec = self.records.get(gpath)
            if rec is not None and rec._names is not None:
                rec.release(name)
        if removed:
            with contextlib.suppress(OSError):
                self.physical.clear_journal()
        self.physical.commit()

    def _rollback(self) -> None:
        """Forget unwritten changes and remove what this transaction wrote."""
        if self.free_early or self.freed:
            self._abort()
            return
        for gpath, rec in list(self.records.items()):
            if rec.dirty:
                del self.records[gpath]
        removed = True
        for gpath, kind, name, entry in reversed(self.written):
            try:
                self._remove(gpath, kind, name, entry)
            except Exception:
                removed = False  # the journal keeps it: the next write session removes it
            self.records.pop(gpath, None)  # its name set may hold names now unused
        for gpath, kind, name, moved in reversed(self.moves):
            try:
                self._move(gpath, kind, moved, name)
            except Exception:
                removed = False
            self.records.pop(gpath, None)
        self.moves.clear()
        self.written.clear()
        self.garbage.clear()
        if removed:
            with contextlib.suppress(Exception):
                self.physical.clear_journal()

    def _abort(self) -> None:
        """Roll back a transaction that owned its session: the file goes back
        to the start of the session (it may have freed replaced data)."""
        self.records.clear()
        self.written.clear()
        self.garbage.clear()
        self.freed.clear()
        self.moves.clear()
        self.free_early = False
        self.physical.abort()

    def _set_aside(self, gpath: GPath, rec: Record, kind: str, name: str, entry: dict) -> None:
        """Schedule physical ``name`` (of ``kind``) of group ``gpath``, whose
        record is ``rec``, for deletion, and release the name for what replaces it.

        The first transaction of a write session removes it now (see
        :meth:`transaction`); later ones keep it until the commit, on a
        ``nested`` backend moved to a spare name (``%40old``, ``%40old~1``...
        in the group), so that what replaces it takes its own name; a
        rollback moves it back.
        """
        physical = self.physical
        if self.free_early:  # see transaction(): aborting the session undoes it
            self._remove(gpath, kind, name, entry)
            self.freed.append((gpath, name))
            rec.release(name)
            return
        if physical.nested:
            aside = rec.new_name(("%40old",))
            self.moves.append((gpath, kind, name, aside))
            self._move(gpath, kind, name, aside)
            rec.release(name)
            name = aside
        self.garbage.append((gpath, kind, name, entry))
        # noted before the commit, so a crash after it cannot leave it behind
        physical.journal(gpath, kind, name, entry)

    def _move(self, gpath: GPath, kind: str, name: str, new: str) -> None:
        if kind == "X":
            self.physical.rename_external(gpath, name, new, {})
            return
        self.physical.rename_group(gpath, name, new)
        sub = gpath + (name,)
        for gp in [gp for gp in self.records if gp[: len(sub)] == sub]:
            del self.records[gp]  # cached under the path it no longer has

    def _remove(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        self.physical.check_name(name, self.describe(gpath), kind)
        if kind == "X":
            self.physical.delete_external(gpath, name, entry)
        else:
            self.physical.delete_group(gpath + (name,))
            for gp in [gp for gp in self.records if gp[: len(gpath) + 1] == gpath + (name,)]:
                del self.records[gp]

    def discard(self, gpath: GPath, entry: Any) -> None:
        """Schedule everything physical below ``entry`` for deletion at commit."""
        rec = self.records[gpath]
        rec.names  # noqa: B018 - computed now, while the old names are still listed
        stack = [entry]
        while stack:
            e = stack.pop()
            if type(e) is not dict and type(e) is not list:
                continue
            at = _at(e, rec, self.describe(gpath))
            if at is not None:
                stack.extend(_children_entries(_target(rec.nodes, at)))
                if type(at) is int:  # a node of the table becomes garbage
                    rec.compact = False
            else:
                for kind, name, ent in _entry_names(e):
                    self.physical.check_name(name, self.describe(gpath), kind)
                    self._set_aside(gpath, rec, kind, name, ent)

    def sweep(self) -> list[str]:
        """Remove every physical name no record refers to (left by a killed
        process on a backend without a rollback journal); their paths."""
        removed = []
        with self.transaction():
            stack: list[GPath] = [()]
            while stack:
                gpath = stack.pop()
                used = {}
                for node in self._record(gpath).nodes:
                    for entry in _children_entries(node) if node is not None else ():
                        for kind, name, _ in _entry_names(entry):
                            used[name] = kind
                for kind, name, entry in self.physical.list_names(gpath):
                    if used.get(name) != kind:
                        self._remove(gpath, kind, name, entry)
                        removed.append("/".join(gpath + (name,)))
                    elif kind == "G":
                        stack.append(gpath + (name,))
        return removed

    # -- writing trees -------------------------------------------------
    def leaf_entry(self, gpath: GPath, rec: Record, key: str, value: Any, inner: Any = None) -> Any:
        """The entry of a leaf ``key`` of the node at path ``inner`` (a
        :func:`packing.path_cell`) of a record."""
        limit = self.physical.inline_array_limit if type(value) is np.ndarray else INLINE_LIMIT
        if leaf_nbytes(value) <= limit:
            return encode_inline(value)
        physical = self.physical
        if physical.nested:
            parts = tuple(map(physical.physical_name, packing.path_keys(inner) + (key,)))
            name = rec.new_name(parts)
        else:
            name = rec.new_name((physical.physical_name(key),))
        if type(value) is np.ndarray:
            entry = {"X": name, "k": "A"}
            entry.update(array_meta(value))
        else:
            entry = {"X": name, "k": "B" if type(value) is bytes else "BA", "n": len(value)}
        checksum = leaf_sum(value, entry.get("o", "C"))
        if checksum is not None:
            entry["h"] = checksum
        self.written.append((gpath, "X", name, entry))
        self.physical.journal(gpath, "X", name, entry)
        self.physical.write_external(gpath, name, value, entry)
        return entry

    def new_physical(
        self,
        gpath: GPath,
        rec: Record,
        key: str,
        tree: Tree,
        group: bool,
        plain: dict | None = None,
        exact: bool = False,
    ) -> dict:
        name = rec.new_name((self.physical.physical_name(key),))
        sub = gpath + (name,)
        entry = {"G": name, "g": 1} if group else {"G": name}
        self.written.append((gpath, "G", name, entry))
        self.physical.journal(gpath, "G", name, entry)
        self.physical.create_group(sub)
        subrec = Record([])
        subrec._names = set()
        packing.add_tree(self, sub, subrec, tree, group=group, plain=plain, exact=exact)
        subrec.dirty = True
        self.records[sub] = subrec
        return entry

    # -- reading -------------------------------------------------------
    def value(self, gpath: GPath, entry: Any) -> Any:
        if type(entry) is not dict:
            if type(entry) is list:  # a node, never a value (callers look first)
                where = self.describe(gpath)
                raise CorruptStoreError(f"{where} holds a node where a value belongs")
            return entry
        if "X" in entry:
            return self.external(gpath, entry)
        return decode_inline(entry)

    def external(self, gpath: GPath, entry: dict) -> Any:
        if not self.sessions:
            with self.session():
                return self.external(gpath, entry)
        try:
            self.physical.check_name(entry["X"], self.describe(gpath))
            value, summed = self.physical.read_external_summed(gpath, entry["X"], entry)
            if entry.get("k") != "A" and "n" in entry and len(value) != entry["n"]:
                raise CorruptStoreError(
                    f"external leaf {entry['X']!r} of {self.describe(gpath)} has {len(value)} "
                    f"bytes, but the record says {entry['n']}"
                )
            self._check_sum(gpath, entry, value, summed)
            if entry.get("k") == "A" and ("al" in entry or "m" in entry):
                value = value.view(with_flags(value.dtype, entry))
            return bytearray(value) if entry.get("k") == "BA" else value
        except (CorruptStoreError, StorageClosedError):
            raise
        except MemoryError:
            raise CorruptStoreError(
                f"external leaf {entry.get('X')!r} of {self.describe(gpath)} claims more "
                "memory than this machine has; the file is damaged or crafted"
            ) from None
        except Exception as exc:
            raise CorruptStoreError(
                f"external leaf {entry.get('X')!r} of {self.describe(gpath)} cannot be read: {exc}"
            ) from exc

    def external_slice(self, gpath: GPath, entry: dict, selection: Any) -> Any:
        """``selection`` of the external array ``entry``, reading what it needs."""
        with self.session():
            self.physical.check_name(entry["X"], self.describe(gpath))
            try:
                return self.physical.read_external_slice(gpath, entry["X"], entry, selection)
            except (CorruptStoreError, StorageClosedError, IndexError, TypeError):
                raise
            except Exception as exc:
                raise CorruptStoreError(
                    f"external leaf {entry['X']!r} of {self.describe(gpath)} cannot be read: {exc}"
                ) from exc

    def _check_sum(self, gpath: GPath, entry: dict, value: Any, summed: str | None = None) -> None:
        """Compare an external leaf just read with the checksum its record holds
        (``summed``: the checksum the backend took while reading it, if any)."""
        expected = entry.get("h")
        if expected is None:
            self.unchecked.add(f"leaf {entry['X']!r} of {self.describe(gpath)}")
            return
        if summed is None:
            summed = leaf_sum(value, entry.get("o", "C"))
        if summed != expected:
            raise CorruptStoreError(
                f"external leaf {entry['X']!r} of {self.describe(gpath)} is damaged "
                "(its checksum does not match its record)"
            )

    def read_tree(
        self, gpath: GPath, index: Any, lazy: bool = False, plain: Any = None, depth: int = 0
    ) -> Tree:
        """The subtree at node ``index`` of a record, every leaf read.

        ``lazy``: for browsing; external leaves become :class:`LeafInfo`
        (nothing but the records is read) and groups :class:`GroupTree`.
        ``plain``: the codec's ``plain_maker`` (see
        :class:`~tinystore.storage.base.Codec`), applied to small nodes of
        plain values; ``depth``: the levels in place of node ``index`` below
        its table node (the limit counts from there).
        """
        with self.session():
            return packing.read_tree(self, gpath, index, lazy, plain, depth)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.records.clear()
            self.physical.close()


class _Session:
    """The context of :meth:`_Store.session` (a class: cheaper than a generator,
    and sessions are entered several times per operation)."""

    __slots__ = ("store", "write")

    def __init__(self, store: _Store, write: bool):
        self.store = store
        self.write = write

    def __enter__(self) -> None:
        self.store._enter(self.write)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.store._leave(kind is not None)


class _Transaction:
    """The context of :meth:`_Store.transaction`."""

    __slots__ = ("store",)

    def __init__(self, store: _Store):
        self.store = store

    def __enter__(self) -> None:
        self.store._begin()

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.store._finish(kind is not None)
