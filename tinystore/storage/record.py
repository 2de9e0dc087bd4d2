"""Record-packed storage: the physical layout shared by every built-in backend.

Logically a storage is a tree of groups and leaves.  Physically each
*physical group* (the root, groups made by ``create_group`` and every value
assigned directly into a physical group) keeps **one record**: a JSON
document that holds its own metadata and the whole subtree below it, down to
the next physical groups.  Small leaves are written inline; large arrays and
byte strings are written next to the record in the backend's native form
(HDF5 datasets, ``.npy`` files).  So storing a dict of 1,000 floats costs one
record write, not 1,000.

A record is a flat table of nodes (so that arbitrarily deep structures need
no deep JSON nesting)::

    {"tinystore": [1, 0], "attrs": [{attrs}, ...], "nodes": [node0, node1, ...]}
    node  = {"a": {attrs} | index, "c": {key: entry, ...} | [entry, ...], "g": 1}
    entry = plain JSON leaf | tagged leaf (see leaves.py)
          | {"@": index}               an inline node of this record
          | {"@": node}                a small node of plain values, in place
          | {"@<n>": children}         the same, short: {"a": n, "c": children}
          | {"G": name, "g": 1}        a physical subgroup (``g``: made by create_group)
          | {"X": name, "k": kind,...} a leaf stored outside the record

Metadata that many nodes share (every tuple of a list of tuples has the
same) is written once, in the record's ``attrs`` table; a node's ``a`` is
then its index there.

A backend provides a :class:`Physical` (read/write records and external
leaves); :class:`RecordStorage` does everything else, identically for all.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import MutableMapping
from typing import Any, Iterator

import numpy as np
import orjson

from tinystore._paths import check_key, safe_name
from tinystore.errors import (
    CorruptStoreError,
    FormatVersionError,
    InvalidKeyError,
    NotAStoreError,
    ReadOnlyError,
    StorageClosedError,
    UnsupportedValueError,
)
from tinystore.storage.base import GenericStorage, GroupTree, LeafInfo, Tree
from tinystore.storage.leaves import (
    INT64_MAX,
    INT64_MIN,
    array_meta,
    decode_inline,
    encode_inline,
    leaf_nbytes,
    with_flags,
)

FORMAT_VERSION = (1, 0)
#: Arrays and byte strings larger than this many bytes are stored outside the record.
INLINE_LIMIT = 2048

GPath = tuple  # physical names from the root, e.g. ("jobs", "relax")


class Physical(abc.ABC):
    """One open file, directory or memory store, as a backend sees it."""

    readonly: bool = False
    location: str = "?"
    #: True if other processes may change the store between sessions (files):
    #: cached records are then dropped when a session starts.
    shared: bool = False
    #: True to write records indented, one entry per line (for diffs under git).
    pretty: bool = False

    def begin(self, write: bool) -> None:
        """Start a session: take the cross-process lock, open handles."""

    def upgrade(self) -> None:
        """Turn the current read session into a write session."""

    def end(self) -> None:
        """End a session: flush and close handles, release the lock."""

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

    @abc.abstractmethod
    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        """The array (``entry["k"] == "A"``) or bytes stored as ``name``."""

    @abc.abstractmethod
    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        """Store an array or bytes as ``name``; may add fields to ``entry``."""

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
        """Make everything written so far durable (flush)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def reopen(self) -> None:
        raise StorageClosedError(f"{self.location} cannot be reopened")


#: The JSON layout writes the children of a large node this many to a line.
LINE_CHILDREN = 8


def dumps_record(nodes: list, pretty: bool = False, attrs: list | None = None) -> bytes:
    """A record's bytes; ``pretty``: a line per node, and a line per eight children
    of a large node.

    Lines, not indentation: a changed value changes one short line under git,
    and the file stays about as small as the compact form (a line per child
    would cost one ``orjson.dumps`` call per child: six times the compact
    form's time for a list of 10,000 tuples).  ``attrs``: the shared metadata
    table (omitted when empty).
    """
    if not pretty:
        if attrs:
            return orjson.dumps({"tinystore": list(FORMAT_VERSION), "attrs": attrs, "nodes": nodes})
        return orjson.dumps({"tinystore": list(FORMAT_VERSION), "nodes": nodes})
    dumps = orjson.dumps
    n = LINE_CHILDREN
    head = b'{"tinystore":' + dumps(list(FORMAT_VERSION))
    if attrs:
        head += b',"attrs":[\n' + b",\n".join(map(dumps, attrs)) + b"\n]"
    lines = [head + b',"nodes":[']
    last = len(nodes) - 1
    for i, node in enumerate(nodes):
        children = node.get("c")
        if children is None or len(children) <= n:
            text = dumps(node)
        else:
            head = b"".join(dumps(k) + b":" + dumps(v) + b"," for k, v in node.items() if k != "c")
            if type(children) is list:
                body = b",\n".join(
                    [dumps(children[j : j + n])[1:-1] for j in range(0, len(children), n)]
                )
                text = b"{" + head + b'"c":[\n' + body + b"\n]}"
            else:
                items = list(children.items())
                body = b",\n".join(
                    [dumps(dict(items[j : j + n]))[1:-1] for j in range(0, len(items), n)]
                )
                text = b"{" + head + b'"c":{\n' + body + b"\n}}"
        lines.append(text + (b"," if i < last else b""))
    lines.append(b"]}\n")
    return b"\n".join(lines)


def loads_record(data: bytes, where: str) -> Record:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptStoreError(f"the record of {where} is damaged: {exc}") from None
    if type(doc) is not dict or "tinystore" not in doc:
        raise NotAStoreError(f"{where} has no tinystore record; it was not written by tinystore")
    version = doc["tinystore"]
    if not (type(version) is list and version and type(version[0]) is int):
        raise CorruptStoreError(f"the record of {where} has an invalid format version")
    if version[0] > FORMAT_VERSION[0]:
        raise FormatVersionError(
            f"{where} was written in tinystore format {version[0]}.x; this tinystore reads "
            f"format {FORMAT_VERSION[0]}.x only: upgrade tinystore to read it"
        )
    nodes = doc.get("nodes")
    if type(nodes) is not list or not nodes or type(nodes[0]) is not dict:
        raise CorruptStoreError(f"the record of {where} has no valid node table")
    attrs = doc.get("attrs", [])
    if type(attrs) is not list or not all(type(a) is dict for a in attrs):
        raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
    return Record(nodes, attrs)


#: Records larger than this are refused as damaged: tinystore writes big data
#: outside records, so only a crafted or broken file gets here.
MAX_RECORD_BYTES = 1 << 30


_SCALARS = frozenset([str, int, bool, type(None)])


def own_attrs(attrs: dict) -> dict:
    """A private, JSON-exact copy of metadata (refusing what JSON cannot hold exactly)."""
    for value in attrs.values():
        if type(value) not in _SCALARS:
            break
    else:
        if all(type(k) is str for k in attrs):
            return dict(attrs)
    try:
        copy = orjson.loads(orjson.dumps(attrs))
    except TypeError as exc:
        raise UnsupportedValueError(f"metadata must be JSON-compatible: {exc}") from None
    stack = [(attrs, copy)]
    while stack:  # orjson writes nan/inf as null: refuse them rather than change them
        original, _ = stack.pop()
        values = original.values() if type(original) is dict else original
        for v in values:
            if type(v) is float and v - v != 0.0:
                raise UnsupportedValueError(f"metadata cannot hold {v!r}; store it as a value")
            if type(v) in (dict, list, tuple):
                stack.append((v, None))
    return copy


def copy_attrs(attrs: dict) -> dict:
    """A copy of stored metadata that the caller may change freely."""
    for value in attrs.values():
        if type(value) not in _SCALARS and type(value) is not float:
            return orjson.loads(orjson.dumps(attrs))
    return dict(attrs)


def _plain_children(children: Any) -> Any:
    """Children of plain values as entries (a copy); None if any is not plain.

    "Plain" is what a node written inside its parent's entry may hold: at
    most 64 values that are JSON values standing for themselves, or tagged
    scalars (non-ASCII or surrogate strings, big ints, non-finite floats).
    The common case costs one type test per value.
    """
    if len(children) > 64:
        return None
    is_list = type(children) is list
    for v in children if is_list else children.values():
        vt = type(v)
        if vt is str:
            if not v.isascii():
                break
        elif vt is int:
            if not INT64_MIN <= v <= INT64_MAX:
                break
        elif vt is float:
            if v - v != 0.0:
                break
        elif v is not None and vt is not bool:
            return None
    else:  # all JSON-exact
        if is_list:
            return list(children)
        for k in children:
            if type(k) is not str or not (k.isidentifier() and len(k) <= 63):
                check_key(k) if type(k) is str else _bad_key(k)
        return dict(children)
    for v in children if is_list else children.values():
        if type(v) not in _EMBED_LEAVES:
            return None
    if is_list:
        return [v if _json_exact(v) else encode_inline(v) for v in children]
    out = {}
    for k, v in children.items():
        if type(k) is not str or not (k.isidentifier() and len(k) <= 63):
            check_key(k) if type(k) is str else _bad_key(k)
        out[k] = v if _json_exact(v) else encode_inline(v)
    return out


def _json_exact(v: Any) -> bool:
    """True if plain JSON carries ``v`` exactly (no tagged entry needed)."""
    t = type(v)
    if t is str:
        return v.isascii()
    if t is int:
        return INT64_MIN <= v <= INT64_MAX
    if t is float:
        return v - v == 0.0
    return v is None or t is bool


def _bad_key(k: Any) -> None:
    raise InvalidKeyError(f"Tree keys must be str, not {type(k).__name__}")


def check_name(name: Any, where: str) -> str:
    """A physical name read from a file: refuse anything that could leave its group."""
    if (
        type(name) is not str
        or not name
        or name in (".", "..")
        or name.startswith("@")
        or any(c in name for c in "/\\\x00:")
        or len(name) > 255
    ):
        raise CorruptStoreError(f"{where} names an invalid file {name!r}; the record is damaged")
    return name


def _entry_names(entry: Any) -> Iterator[tuple[str, str, dict]]:
    if type(entry) is dict:
        if "X" in entry:
            yield "X", entry["X"], entry
        elif "G" in entry:
            yield "G", entry["G"], entry


class Record:
    """A parsed record: its node and metadata tables and the physical names it uses."""

    __slots__ = ("nodes", "attrs", "_attr_index", "_names", "dirty", "compact")

    def __init__(self, nodes: list, attrs: list | None = None):
        self.nodes = nodes
        #: metadata shared by several nodes; a node's ``"a"`` may be an index here
        self.attrs = [] if attrs is None else attrs
        self._attr_index: dict | None = None  # serialised attrs -> index
        self._names: set | None = None
        self.dirty = False
        self.compact = True  # nodes are in canonical order, unreferenced-free

    def intern(self, attrs: dict) -> int:
        """The index of (a JSON-exact copy of) ``attrs`` in the metadata table."""
        index = self._attr_index
        if index is None:
            index = self._attr_index = {orjson.dumps(a): i for i, a in enumerate(self.attrs)}
        copy = own_attrs(attrs)
        key = orjson.dumps(copy)
        i = index.get(key)
        if i is None:
            i = index[key] = len(self.attrs)
            self.attrs.append(copy)
        return i

    def node_attrs(self, node: dict, where: str = "a record") -> dict:
        """The metadata of ``node`` as stored (do not change it)."""
        a = node.get("a")
        if type(a) is int:
            try:
                if a < 0:
                    raise IndexError
                return self.attrs[a]
            except IndexError:
                raise CorruptStoreError(
                    f"a node of {where} refers to metadata #{a}, which its record lacks; "
                    "the record is damaged"
                ) from None
        return a if a else {}

    @property
    def names(self) -> set:
        if self._names is None:
            names = set()
            for node in self.nodes:
                if node is None:  # being filled in by add_tree
                    continue
                for entry in _children_entries(node):
                    for _, name, _ in _entry_names(entry):
                        names.add(name)
            self._names = names
        return self._names

    def new_name(self, key: str) -> str:
        base = safe_name(key, limit=100)
        if base.endswith((".npy", ".bin")):  # would collide with the file of an external
            base = base[:-4] + "%2e" + base[-3:]
        name, i = base, 0
        names = self.names
        while name in names:
            i += 1
            name = f"{base}~{i}"
        names.add(name)
        return name

    def canonical(self) -> list:
        """The node table renumbered in canonical order, garbage dropped."""
        if self.compact:
            return self.nodes
        old = self.nodes
        new: list = [None]
        stack = [(0, 0)]
        while stack:
            oi, ni = stack.pop()
            node = dict(old[oi])
            children = node.get("c")
            pending = []
            if type(children) is list:
                children = list(children)
                for j, e in enumerate(children):
                    if type(e) is dict and type(e.get("@")) is int:
                        pending.append((e["@"], len(new)))
                        children[j] = {"@": len(new)}
                        new.append(None)
            elif children:
                children = dict(children)
                for k, e in children.items():
                    if type(e) is dict and type(e.get("@")) is int:
                        pending.append((e["@"], len(new)))
                        children[k] = {"@": len(new)}
                        new.append(None)
            node["c"] = children if children is not None else {}
            new[ni] = node
            stack.extend(reversed(pending))
        self.nodes = new
        self.compact = True
        return new


def _target(nodes: list, at: Any) -> dict:
    """The node an ``{"@": ...}`` entry stands for: a table index, or the node itself."""
    return at if type(at) is dict else nodes[at]


def _at(entry: Any, where: str = "a record") -> Any:
    """What a node entry points at: a table index or a node; None for any other entry.

    ``{"@": i}`` and ``{"@": node}`` say so directly; the short form of a small
    node, ``{"@<n>": children}``, stands for ``{"a": <n>, "c": children}``.
    """
    if type(entry) is not dict:
        return None
    at = entry.get("@")
    if at is not None:
        return at
    if len(entry) == 1:
        (tag,) = entry
        if tag[:1] == "@":
            n = tag[1:]
            if not (n.isascii() and n.isdigit()):
                raise CorruptStoreError(f"{where} holds an invalid node entry {tag!r:.40}")
            return {"a": int(n), "c": entry[tag]}
    return None


_EMBED_LEAVES = frozenset([str, int, float, bool, type(None)])


def _children_entries(node: dict) -> Any:
    c = node.get("c")
    if not c:
        return ()
    return c if type(c) is list else c.values()


def _child_entry(node: dict, key: str) -> Any:
    c = node.get("c")
    if type(c) is list:
        if key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
            i = int(key)
            if i < len(c):
                return c[i]
        raise KeyError(key)
    if c is None:
        raise KeyError(key)
    return c[key]


class _Store:
    """State shared by all groups of one open storage: cache and transactions."""

    def __init__(self, physical: Physical):
        self.physical = physical
        self.records: dict[GPath, Record] = {}
        self.sessions = 0
        self.session_write = False
        self.depth = 0
        self.garbage: list[tuple[GPath, str, str, dict]] = []
        self.written: list[tuple[GPath, str, str, dict]] = []
        self.closed = False

    def check_open(self) -> None:
        if self.closed:
            raise StorageClosedError(f"{self.physical.location} is closed; call .open() first")

    @contextlib.contextmanager
    def session(self, write: bool = False) -> Iterator[None]:
        """Hold the store (lock and handles) for a group of operations."""
        self.check_open()
        physical = self.physical
        if write and physical.readonly:
            raise ReadOnlyError(f"{physical.location} is open read-only")
        if self.sessions == 0:
            physical.begin(write)
            self.session_write = write
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
        try:
            yield
        finally:
            self.sessions -= 1
            if self.sessions == 0:
                self.session_write = False
                physical.end()

    def _recover(self) -> None:
        """Remove what an interrupted transaction wrote but never referenced."""
        notes = self.physical.read_journal()
        for gpath, kind, name, entry in notes:
            try:
                check_name(name, "the journal")
                for part in gpath:
                    check_name(part, "the journal")
                used = name in self._record(tuple(gpath)).names
            except (CorruptStoreError, NotAStoreError, OSError, KeyError):
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
                raise CorruptStoreError(f"the record of {where} is missing")
            rec = loads_record(data, where)
            self.records[gpath] = rec
        return rec

    def describe(self, gpath: GPath) -> str:
        inner = "/".join(gpath)
        return f"group '/{inner}' of {self.physical.location}"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing writes: records are written once, at the end."""
        with self.session(write=True):
            self.depth += 1
            try:
                yield
            except BaseException:
                self.depth -= 1
                if self.depth == 0:
                    self._rollback()
                raise
            self.depth -= 1
            if self.depth == 0:
                self._commit()

    def _commit(self) -> None:
        dirty = [(gp, rec) for gp, rec in self.records.items() if rec.dirty]
        dirty.sort(key=lambda item: -len(item[0]))  # children before their parents
        try:
            for gpath, rec in dirty:
                self.physical.write_record(
                    gpath, dumps_record(rec.canonical(), self.physical.pretty, rec.attrs)
                )
                rec.dirty = False
            self.physical.commit()
        except BaseException:
            self._rollback()
            raise
        self.written.clear()
        garbage, self.garbage = self.garbage, []
        if garbage:
            self.physical.commit()  # the new state is durable before the old goes
        for gpath, kind, name, entry in garbage:
            self._remove(gpath, kind, name, entry)
            rec = self.records.get(gpath)
            if rec is not None and rec._names is not None:
                rec._names.discard(name)
        self.physical.clear_journal()
        self.physical.commit()

    def _rollback(self) -> None:
        """Forget unwritten changes and remove what this transaction wrote."""
        for gpath, rec in list(self.records.items()):
            if rec.dirty:
                del self.records[gpath]
        for gpath, kind, name, entry in reversed(self.written):
            with contextlib.suppress(Exception):
                self._remove(gpath, kind, name, entry)
            self.records.pop(gpath, None)  # its name set may hold names now unused
        self.written.clear()
        self.garbage.clear()
        with contextlib.suppress(Exception):
            self.physical.clear_journal()

    def _remove(self, gpath: GPath, kind: str, name: str, entry: dict) -> None:
        check_name(name, self.describe(gpath))
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
            if type(e) is not dict:
                continue
            at = _at(e, self.describe(gpath))
            if at is not None:
                stack.extend(_children_entries(_target(rec.nodes, at)))
                rec.compact = False
            else:
                for kind, name, ent in _entry_names(e):
                    check_name(name, self.describe(gpath))
                    self.garbage.append((gpath, kind, name, ent))
                    # noted before the commit, so a crash after it cannot leave it behind
                    self.physical.journal(gpath, kind, name, ent)

    # -- writing trees -------------------------------------------------
    def leaf_entry(self, gpath: GPath, rec: Record, key: str, value: Any) -> Any:
        if leaf_nbytes(value) <= INLINE_LIMIT:
            return encode_inline(value)
        name = rec.new_name(key)
        if type(value) is np.ndarray:
            entry = {"X": name, "k": "A"}
            entry.update(array_meta(value))
        else:
            entry = {"X": name, "k": "B" if type(value) is bytes else "BA", "n": len(value)}
        self.written.append((gpath, "X", name, entry))
        self.physical.journal(gpath, "X", name, entry)
        self.physical.write_external(gpath, name, value, entry)
        return entry

    def add_tree(
        self,
        gpath: GPath,
        rec: Record,
        tree: Tree,
        group: bool = False,
        plain: dict | None = None,
    ) -> int:
        """Append ``tree`` to the node table of ``rec``; return its index.

        ``plain``: ``{type: attrs}`` of containers the codec left in the tree
        as they are (see :class:`~tinystore.storage.base.Codec`); each stands
        for a node with those attrs and its items as children.
        """
        nodes = rec.nodes
        root = len(nodes)
        nodes.append(None)
        stack = [(tree, root)]
        # metadata table index by id() of the attrs dict: trees of one save share
        # attrs dicts (every tuple of a list has the same); they are alive till we return
        interned: dict[int, int] = {}
        tags: dict[int, str] = {}  # the same, as the tag of a small node's entry
        intern = rec.intern
        plain = plain or {}
        ptags: dict[type, tuple] = {}  # type of a non-Tree child -> (short tag, attrs) or Nones
        while stack:
            t, idx = stack.pop()
            a = t.attrs
            if type(a) is not dict:
                raise UnsupportedValueError(f"Tree.attrs must be a dict, not {type(a)}")
            if a:
                ai = interned.get(id(a))
                if ai is None:
                    ai = interned[id(a)] = intern(a)
                node: dict = {"a": ai}
            else:
                node = {}
            children = t.children
            pending: list = []
            is_list = type(children) is list
            out: Any = [] if is_list else {}
            for k, v in enumerate(children) if is_list else children.items():
                # the common leaves inline, without a call each (this loop is hot)
                vt = type(v)
                if vt is str:
                    e = v if v.isascii() else encode_inline(v)
                elif vt is int:
                    e = v if INT64_MIN <= v <= INT64_MAX else encode_inline(v)
                elif vt is float:
                    e = v if v - v == 0.0 else encode_inline(v)
                elif v is None or vt is bool:
                    e = v
                elif vt is Tree:
                    e = self._node_entry(
                        v, v.attrs, v.children, nodes, pending, tags, interned, intern
                    )
                else:  # a plain container the codec left as it is, or a leaf
                    known = ptags.get(vt)
                    if known is None:
                        known = self._plain_type(plain.get(vt), tags, interned, intern)
                        ptags[vt] = known
                    tag, va = known
                    if tag is not None and len(v) <= 64:
                        # a small container of JSON values: the short form (the hot path;
                        # _plain_children's first loop, inline: a call per tuple costs 20%)
                        items: Any = v
                        if vt is dict:
                            items = v.values()
                            for x in v:
                                if type(x) is not str or not (x.isidentifier() and len(x) <= 63):
                                    items = ()  # other keys: checked the general way below
                                    break
                        for x in items:
                            xt = type(x)
                            if xt is str:
                                if not x.isascii():
                                    break
                            elif xt is int:
                                if not INT64_MIN <= x <= INT64_MAX:
                                    break
                            elif xt is float:
                                if x - x != 0.0:
                                    break
                            elif x is not None and xt is not bool:
                                break
                        else:
                            if items or not v:
                                e = {tag: dict(v) if vt is dict else list(v)}
                                if is_list:
                                    out.append(e)
                                    continue
                                if type(k) is not str or not (k.isidentifier() and len(k) <= 63):
                                    check_key(k) if type(k) is str else _bad_key(k)
                                out[k] = e
                                continue
                    if va is not None:  # a plain container: a node like any other
                        v = Tree(va, dict(v) if vt is dict else list(v))
                        e = self._node_entry(
                            v, va, v.children, nodes, pending, tags, interned, intern
                        )
                    else:
                        if not is_list and type(k) is not str:
                            raise InvalidKeyError(f"Tree keys must be str, not {type(k).__name__}")
                        try:
                            e = self.leaf_entry(gpath, rec, str(k), v)
                        except TypeError:
                            raise UnsupportedValueError(
                                f"cannot store {vt.__name__} at {k!r}: not a leaf or Tree"
                            ) from None
                if is_list:
                    out.append(e)
                else:
                    if type(k) is not str or not (k.isidentifier() and len(k) <= 63):
                        check_key(k) if type(k) is str else _bad_key(k)
                    out[k] = e
            node["c"] = out
            nodes[idx] = node
            stack.extend(reversed(pending))
        if group:
            nodes[root]["g"] = 1
        return root

    @classmethod
    def _plain_type(cls, va: Any, tags: dict, interned: dict, intern: Any) -> tuple:
        """``(short tag, attrs)`` of the nodes a plain container type stands for
        (``(None, None)``: not such a type, a leaf)."""
        if va is None:
            return None, None
        if type(va) is not dict or not va:
            raise UnsupportedValueError(f"the codec's plain_nodes attrs must be a dict: {va!r}")
        return cls._tag(va, tags, interned, intern), va

    @staticmethod
    def _tag(va: dict, tags: dict, interned: dict, intern: Any) -> str:
        """The short tag of nodes with attrs ``va``: its index in the metadata table."""
        tag = tags.get(id(va))
        if tag is None:
            ai = interned.get(id(va))
            if ai is None:
                ai = interned[id(va)] = intern(va)
            tag = tags[id(va)] = f"@{ai}"
        return tag

    @classmethod
    def _node_entry(cls, v, va, vc, nodes, pending, tags, interned, intern) -> dict:
        """The entry of Tree ``v``: written in place if small and plain, else a table node."""
        plain = _plain_children(vc) if type(va) is dict and type(vc) in (list, dict) else None
        if plain is not None:  # a small node of plain values: in place
            if not va:
                return {"@": {"c": plain}}
            return {cls._tag(va, tags, interned, intern): plain}
        pending.append((v, len(nodes)))
        nodes.append(None)
        return {"@": len(nodes) - 1}

    def new_physical(
        self,
        gpath: GPath,
        rec: Record,
        key: str,
        tree: Tree,
        group: bool,
        plain: dict | None = None,
    ) -> dict:
        name = rec.new_name(key)
        sub = gpath + (name,)
        entry = {"G": name, "g": 1} if group else {"G": name}
        self.written.append((gpath, "G", name, entry))
        self.physical.journal(gpath, "G", name, entry)
        self.physical.create_group(sub)
        subrec = Record([])
        subrec._names = set()
        self.add_tree(sub, subrec, tree, group=group, plain=plain)
        subrec.dirty = True
        self.records[sub] = subrec
        return entry

    # -- reading -------------------------------------------------------
    def value(self, gpath: GPath, entry: Any) -> Any:
        if type(entry) is not dict:
            return entry
        if "X" in entry:
            return self.external(gpath, entry)
        return decode_inline(entry)

    def external(self, gpath: GPath, entry: dict) -> Any:
        if not self.sessions:
            with self.session():
                return self.external(gpath, entry)
        try:
            check_name(entry["X"], self.describe(gpath))
            value = self.physical.read_external(gpath, entry["X"], entry)
            if entry.get("k") != "A" and "n" in entry and len(value) != entry["n"]:
                raise CorruptStoreError(
                    f"external leaf {entry['X']!r} of {self.describe(gpath)} has {len(value)} "
                    f"bytes, but the record says {entry['n']}"
                )
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
            ) from None

    def read_tree(self, gpath: GPath, index: Any, lazy: bool = False, plain: Any = None) -> Tree:
        """The subtree at node ``index`` of a record, every leaf read.

        ``lazy``: for browsing; external leaves become :class:`LeafInfo`
        (nothing but the records is read) and groups :class:`GroupTree`.
        ``plain``: the codec's ``plain_maker`` (see
        :class:`~tinystore.storage.base.Codec`), applied to small nodes of
        plain values.
        """
        with self.session():
            return self._read_tree(gpath, index, lazy, plain)

    def _read_tree(self, gpath: GPath, index: Any, lazy: bool, plain: Any = None) -> Tree:
        rec = self.record(gpath)
        root = GroupTree() if lazy and _target(rec.nodes, index).get("g") else Tree()
        stack = [(gpath, rec, index, root)]
        seen: set = set()
        # one copy of each shared metadata dict per read (per record): the trees
        # of this read share it, as the nodes of the record do
        shared: dict[GPath, dict] = {}
        while stack:
            gp, rec, i, t = stack.pop()
            known = shared.get(gp)
            if known is None:
                known = shared[gp] = {}
            try:
                node = i if type(i) is dict else rec.nodes[i]
                a = node.get("a")
                if type(a) is int:
                    attrs = known.get(a)
                    if attrs is None:
                        attrs = known[a] = copy_attrs(rec.node_attrs(node, self.describe(gp)))
                    t.attrs = attrs
                else:
                    t.attrs = copy_attrs(a) if a else {}
                children = node.get("c")
                if children is None:
                    children = {}
            except (IndexError, TypeError, AttributeError):
                raise CorruptStoreError(f"node table of {self.describe(gp)} is damaged") from None
            if type(children) not in (list, dict) or type(t.attrs) is not dict:
                raise CorruptStoreError(f"node table of {self.describe(gp)} is damaged")
            if type(children) is list:
                out: Any = list(children)
                pairs: Any = enumerate(children)
            else:
                out = dict(children)
                pairs = children.items()
            for k, e in pairs:
                if type(e) is dict:
                    if len(e) == 1:
                        (tag,) = e
                        short = known.get(tag)  # a short tag met before needs no checks
                        if short is None and tag[:1] == "@" and tag != "@":
                            where = self.describe(gp)
                            attrs = copy_attrs(rec.node_attrs(_at(e, where), where))
                            made = plain(attrs) if plain is not None else None
                            make, takes = made if made is not None else (None, None)
                            short = known[tag] = (attrs, make, takes)
                        if short is not None:
                            # a small node in place (short form): plain JSON values, hot path
                            attrs, make, takes = short
                            c = e[tag]
                            tc = type(c)
                            if tc is list or tc is dict:
                                for x in c if tc is list else c.values():
                                    if type(x) is dict:
                                        break
                                else:
                                    if tc is takes:
                                        try:
                                            out[k] = make(c)
                                        except Exception as exc:
                                            raise CorruptStoreError(
                                                f"a node of {self.describe(gp)} cannot be "
                                                f"rebuilt: {exc}"
                                            ) from None
                                    else:
                                        out[k] = Tree(attrs, c[:] if tc is list else dict(c))
                                    continue
                            sub = Tree()
                            out[k] = sub
                            stack.append((gp, rec, _at(e, self.describe(gp)), sub))
                            continue
                    if "@" in e:
                        index = e["@"]
                        if type(index) is not dict:
                            if (gp, index) in seen or type(index) is not int or index <= 0:
                                raise CorruptStoreError(
                                    f"the node table of {self.describe(gp)} is damaged (node "
                                    f"{index!r} is reached twice or is invalid)"
                                )
                            seen.add((gp, index))
                        sub = GroupTree() if lazy and _target(rec.nodes, index).get("g") else Tree()
                        out[k] = sub
                        stack.append((gp, rec, index, sub))
                    elif "G" in e:
                        sub = GroupTree() if lazy and e.get("g") else Tree()
                        out[k] = sub
                        sgp = gp + (check_name(e["G"], self.describe(gp)),)
                        if len(sgp) > 10_000:
                            raise CorruptStoreError(f"{self.describe(gp)} nests groups endlessly")
                        stack.append((sgp, self.record(sgp), 0, sub))
                    elif lazy and "X" in e:
                        out[k] = _leaf_info(e)
                    else:
                        out[k] = self.value(gp, e)
            t.children = out
        return root

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.records.clear()
            self.physical.close()


def _leaf_info(entry: dict) -> LeafInfo:
    from tinystore.storage.leaves import dtype_from_json

    if entry.get("k") == "A":
        dtype = dtype_from_json(entry["d"])
        shape = tuple(entry["s"])
        n = 1
        for d in shape:
            n *= d
        return LeafInfo("numpy.ndarray", shape, dtype, n * dtype.itemsize)
    kind = "bytearray" if entry.get("k") == "BA" else "bytes"
    return LeafInfo(kind, nbytes=entry.get("n", 0))


class _Attrs(MutableMapping):
    """The metadata side channel of one group (JSON-compatible values)."""

    def __init__(self, storage: RecordStorage):
        self._s = storage

    def _data(self) -> dict:
        s = self._s
        store = s._store
        return store.record(s._gpath).node_attrs(s._node(), store.describe(s._gpath))

    def __getitem__(self, key: str) -> Any:
        value = self._data()[key]
        return copy_attrs({key: value})[key] if type(value) in (dict, list) else value

    def __iter__(self):
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def _write(self, change) -> None:
        s = self._s
        if not s.is_group:
            raise ReadOnlyError("the metadata of a stored object is written by the object model")
        with s._store.transaction():
            rec = s._store.record(s._gpath)
            node = s._node(materialize=True)
            attrs = dict(rec.node_attrs(node))
            change(attrs)
            node["a"] = own_attrs(attrs)
            rec.dirty = True

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise InvalidKeyError("attribute names must be str")
        self._write(lambda a: a.__setitem__(key, value))

    def __delitem__(self, key: str) -> None:
        if key not in self._data():
            raise KeyError(key)
        self._write(lambda a: a.__delitem__(key))

    def __repr__(self) -> str:
        return f"<attrs {self._data()!r}>"


class RecordStorage(GenericStorage):
    """A group of a record-packed store; base class of the built-in backends.

    Subclasses create their :class:`Physical` in ``__init__`` and call
    :meth:`_init_root`; every group object of one open store shares it.
    """

    _store: _Store
    _gpath: GPath
    _inner: tuple

    def _init_root(self, physical: Physical, path: str = "") -> None:
        self._store = _Store(physical)
        self._gpath = ()
        self._inner = ()
        self._path = ""

    @classmethod
    def _view(cls, parent: RecordStorage, gpath: GPath, inner: tuple, key: str) -> RecordStorage:
        view = cls.__new__(cls)
        view._store = parent._store
        view._gpath = gpath
        view._inner = inner
        view._path = f"{parent._path}/{key}" if parent._path else key
        view.codec = parent.codec
        view.__dict__.update({k: v for k, v in parent.__dict__.items() if k.startswith("_opt_")})
        return view

    def _root(self) -> RecordStorage:
        root = self._view(self, (), (), "")
        root._path = ""
        return root

    # -- node resolution ------------------------------------------------
    def _node(self, materialize: bool = False) -> dict:
        """This group's node; ``materialize``: give an embedded node a table entry
        first, so that it can be changed (and its children become any node)."""
        rec = self._store.record(self._gpath)
        node = rec.nodes[0]
        for key in self._inner:
            try:
                entry = _child_entry(node, key)
            except KeyError:
                entry = None
            at = _at(entry, self._store.describe(self._gpath))
            if at is None:
                raise StorageClosedError(f"{self!r} no longer exists (it was replaced or deleted)")
            if materialize and type(at) is dict:
                entry.clear()
                entry["@"] = len(rec.nodes)
                rec.nodes.append(at)
                rec.compact = False
            node = _target(rec.nodes, at)
        return node

    @property
    def path(self) -> str:
        return self._path

    @property
    def attrs(self) -> MutableMapping:
        return _Attrs(self)

    @property
    def is_group(self) -> bool:
        return bool(self._node().get("g"))

    @property
    def readonly(self) -> bool:
        return self._store.physical.readonly

    def _where(self) -> str:
        return self._store.physical.location

    def __repr__(self) -> str:
        closed = " (closed)" if self._store.closed else ""
        return f"<{type(self).__name__} '/{self._path}' in {self._where()!r}{closed}>"

    # -- plain containers (see base.Codec) ------------------------------------
    _takes_plain_nodes = True

    def _plain_nodes(self) -> dict | None:
        return getattr(self.codec, "plain_nodes", None)

    # -- developer contract ----------------------------------------------
    def _get(self, key: str) -> Any:
        entry = _child_entry(self._node(), key)
        if type(entry) is dict:
            if _at(entry, self._store.describe(self._gpath)) is not None:
                return self._view(self, self._gpath, self._inner + (key,), key)
            if "G" in entry:
                name = check_name(entry["G"], self._store.describe(self._gpath))
                return self._view(self, self._gpath + (name,), (), key)
        return self._store.value(self._gpath, entry)

    def _peek(self, key: str) -> Any:
        entry = _child_entry(self._node(), key)
        if type(entry) is dict and "X" in entry:
            return _leaf_info(entry)
        return self._get(key)

    def _list(self) -> list[tuple[str, bool]]:
        node = self._node()
        children = node.get("c")
        if children is None:
            children = {}
        nodes = self._store.record(self._gpath).nodes
        where = self._store.describe(self._gpath)
        out = []
        pairs = enumerate(children) if type(children) is list else children.items()
        for k, e in pairs:
            is_group = False
            if type(e) is dict:
                if "G" in e:
                    is_group = bool(e.get("g"))
                else:
                    at = _at(e, where)
                    if at is not None:
                        is_group = bool(_target(nodes, at).get("g"))
            out.append((str(k), is_group))
        return out

    def __contains__(self, path: object) -> bool:
        with self._store.session():
            try:
                parent, key = self._lookup(path)  # type: ignore[arg-type]
                _child_entry(parent._node(), key)
            except (KeyError, InvalidKeyError):
                return False
            return True

    def _put(self, key: str, make_entry) -> None:
        store = self._store
        with store.transaction():
            rec = store.record(self._gpath)
            node = self._node(materialize=True)
            children = node.get("c")
            if children is None:
                children = node["c"] = {}
            try:
                old = _child_entry(node, key)
                exists = True
            except KeyError:
                exists = False
                if type(children) is list and key != str(len(children)):
                    raise InvalidKeyError(
                        f"{self._full(key)!r}: this node holds a sequence; its keys are the "
                        f"indices 0..{len(children) - 1} (or {len(children)} to append)"
                    ) from None
            if exists:
                store.discard(self._gpath, old)
            entry = make_entry(store, rec)
            if type(children) is list:
                if exists:
                    children[int(key)] = entry
                else:
                    children.append(entry)
            else:
                children[key] = entry
            rec.compact = False
            rec.dirty = True

    def _set(self, key: str, value: Any) -> None:
        physical_level = not self._inner

        def make_entry(store: _Store, rec: Record) -> Any:
            if type(value) is Tree:
                if physical_level:
                    return store.new_physical(
                        self._gpath, rec, key, value, group=False, plain=self._plain_nodes()
                    )
                return {"@": store.add_tree(self._gpath, rec, value, plain=self._plain_nodes())}
            try:
                return store.leaf_entry(self._gpath, rec, key, value)
            except TypeError:
                raise UnsupportedValueError(
                    f"cannot store {type(value).__name__} at {self._full(key)!r}"
                ) from None

        self._put(key, make_entry)

    def _create_group(self, key: str) -> GenericStorage:
        self._check_writable()
        if self._inner or not self.is_group:
            raise InvalidKeyError(f"cannot create group {self._full(key)!r} inside a stored object")
        self._put(key, lambda store, rec: store.new_physical(self._gpath, rec, key, Tree(), True))
        return self._get(key)

    def _delete(self, key: str) -> None:
        store = self._store
        with store.transaction():
            rec = store.record(self._gpath)
            node = self._node(materialize=True)
            old = _child_entry(node, key)
            store.discard(self._gpath, old)
            children = node["c"]
            if type(children) is list:
                children.pop(int(key))
            else:
                del children[key]
            rec.compact = False
            rec.dirty = True

    def _read_tree(self, lazy: bool = False, plain: Any = None) -> Tree:
        index: Any = 0
        if self._inner:
            rec = self._store.record(self._gpath)
            node = rec.nodes[0]
            for key in self._inner:
                index = _at(_child_entry(node, key), self._store.describe(self._gpath))
                node = _target(rec.nodes, index)
        return self._store.read_tree(self._gpath, index, lazy, plain)

    def _replace_root(self, tree: Tree) -> None:
        """Make ``tree`` the whole content of the store (``tinystore.save``)."""
        if self._gpath or self._inner:
            raise InvalidKeyError("only the root of a store can be replaced")
        store = self._store
        with store.transaction():
            # everything stored so far goes: list it physically (no need to parse the record)
            old = store.physical.list_names(())
            for kind, name, entry in old:
                store.garbage.append(((), kind, name, entry))
                store.physical.journal((), kind, name, entry)
            new = Record([])
            new._names = {name for _, name, _ in old}  # taken until they are deleted
            store.add_tree((), new, tree, plain=self._plain_nodes())
            new.dirty = True
            store.records[()] = new

    def batch(self):
        """Group many writes into one: records are written once, at the end.

        The store stays locked for the whole block, so other processes see
        all of its writes or none.
        """
        return self._store.transaction()

    def hold(self):
        """Keep the store open and locked for a block of reads (faster, consistent)."""
        return self._store.session()

    def _session(self, write: bool = False):
        return self._store.session(write)

    def _transaction(self):
        return self._store.transaction()

    def _close(self) -> None:
        self._store.close()

    def _reopen(self) -> None:
        if self._store.closed:
            self._store.physical.reopen()
            self._store.closed = False

    def flush(self) -> None:
        """Write everything pending to the file now.

        Every operation (or ``batch()`` block) already ends with its writes on
        disk, so for the built-in backends this has nothing left to do.
        """
        self._store.check_open()
        self._store.physical.commit()
