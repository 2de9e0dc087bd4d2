"""The record format: entry grammar, record bytes, metadata tables (no I/O).

Logically a storage is a tree of groups and leaves.  Physically each
*physical group* (the root, groups made by ``create_group`` and every value
assigned directly into a physical group but the small flat ones, see
``storage._in_place``) keeps **one record**: a JSON
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
                                       (n a *shape*: {"a": shape[0], "c": {keys: children}})
          | [children]                 the short form of {"@<d>": [children]}, d the
                                       first shape of the metadata table (1.3)
          | {"G": name, "g": 1}        a physical subgroup (``g``: made by create_group)
          | {"X": name, "k": kind,...} a leaf stored outside the record

Metadata that many nodes share (every tuple of a list of tuples has the
same) is written once, in the record's ``attrs`` table; a node's ``a`` is
then its index there.  From format 1.3 the table also holds *shapes*,
``[n, key0, key1, ...]``: the metadata ``n`` of a node and the keys of its
children (none: its children are a list), so that a small node whose key
tuple repeats writes its values only.  Small nodes written in place may hold
small nodes in place (down to :data:`MAX_INPLACE_DEPTH` levels below their
table node) and references ``{"@": i}`` to table nodes.

"""

from __future__ import annotations

from typing import Any, Iterator

import orjson

from tinystore._paths import safe_name
from tinystore.errors import (
    CorruptStoreError,
    FormatVersionError,
    NotAStoreError,
    UnsupportedValueError,
)
from tinystore.storage.base import LeafInfo
from tinystore.storage.checksum import check_seal, seal

#: 1.1: HDF5 files keep each leaf of a stored object at its logical path
#: (external names may be paths, ``"run1/forces"``), under the key itself.
#: 1.2: the object model's ``table`` nodes (lists stored column by column).
#: 1.3: shapes in the metadata table, bare-array entries, small nodes nested
#: in place (docs/format.rst, "Entries").
#: 1.4: table nodes through shapes, metadata entries derived from an earlier
#: one, shapes that name an earlier one's keys; a record that uses them holds
#: the mark ``"1.4"`` in its metadata table (see :func:`_short_forms`).
FORMAT_VERSION = (1, 4)
#: The mark of a record that uses the forms of format 1.4 (a string entry of
#: its metadata table, which a reader of 1.3 refuses: the record whole).
MARK = "1.4"
#: A node written in place is at most this many levels of in-place nodes
#: below the table node that holds it (readers refuse deeper ones: orjson
#: writes at most 254 levels of JSON, and each level takes two).
MAX_INPLACE_DEPTH = 64
#: Arrays and byte strings larger than this many bytes are stored outside the
#: record (a backend may set a lower limit for arrays: ``Physical.inline_array_limit``).
INLINE_LIMIT = 2048

GPath = tuple  # physical names from the root, e.g. ("jobs", "relax")


#: The JSON layout writes the children of a large node this many to a line.
LINE_CHILDREN = 8


def dumps_record(nodes: list, pretty: bool = False, attrs: list | None = None) -> bytes:
    """A record's bytes, sealed with its checksum (see ``storage/checksum.py``),
    in the short forms of format 1.4 where they apply (:func:`_short_forms`;
    ``nodes`` and ``attrs`` are not changed)."""
    nodes, attrs = _short_forms(nodes, attrs)
    try:
        return seal(_record_text(nodes, pretty, attrs))
    except orjson.JSONEncodeError as exc:  # only a damaged record read before nests so deep
        raise CorruptStoreError(f"a record cannot be written: {exc}") from exc


def _record_text(nodes: list, pretty: bool = False, attrs: list | None = None) -> bytes:
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
                text = b"{" + head + b'"c":[\n' + _lines(children, list(children), n) + b"\n]}"
            else:
                marked = dict(children)
                text = b"{" + head + b'"c":{\n' + _lines(children, marked, n) + b"\n}}"
        lines.append(text + (b"," if i < last else b""))
    lines.append(b"]}\n")
    return b"\n".join(lines)


def _lines(children: Any, marked: Any, n: int) -> bytes:
    """The children of a large node as JSON, ``n`` to a line, in one
    ``orjson.dumps`` call: the last of each line but the last is written as a
    fragment ending in a newline (``marked``: a copy of ``children`` to mark),
    a byte that compact JSON has nowhere else (strings escape it)."""
    keys = list(children) if type(children) is dict else range(len(children))
    for j in range(n - 1, len(keys) - 1, n):
        k = keys[j]
        marked[k] = orjson.Fragment(orjson.dumps(children[k]) + b"\n")
    return orjson.dumps(marked)[1:-1].replace(b"\n,", b",\n")


def _short_forms(nodes: list, attrs: list | None) -> tuple[list, list | None]:
    """The node and metadata tables of a record as written (format 1.4):

    * a table node whose metadata and keys another table node of the record
      has too is written ``{"a": s, "c": [values]}``, ``s`` the shape of its
      metadata and keys (added to the table where it lacks it);
    * a metadata dict that differs from an earlier one only in int values
      (the anchor ``id`` of each instance of a class, the ``r`` of each
      ``ref``) is written ``[b, {those items}]``, ``b`` the earlier one;
    * a shape with the keys (at least two) of an earlier shape is written
      ``[n, s]``, ``s`` the earlier shape;
    * among the values of a node of a shape, the entry of an external array
      is ``{"XA": [name, dtype, shape, checksum]}`` (:func:`_short_leaf`).

    The table keeps every index; where any of these forms is used, it holds
    :data:`MARK` (appended), which a reader of format 1.3 refuses.
    """
    table = attrs or []
    nodes, table = _shape_nodes(nodes, table)
    out = _derive_entries(table)
    if out is attrs or (not out and not attrs):
        return nodes, attrs
    if MARK not in out:
        out = [*out, MARK]
    return nodes, out


#: About what a shape of its own costs a node (``[n, s],``), see :func:`_shape_nodes`.
SHAPE_BYTES = 12


def _shape_nodes(nodes: list, table: list) -> tuple[list, list]:
    """Table nodes whose keys another table node has too, in the form of a
    shape (see :func:`_short_forms`): where their metadata repeats with them,
    or where the keys take more than a shape of their own costs
    (:data:`SHAPE_BYTES`: an instance with an anchor has metadata of its
    own); the table, with the shapes it lacked appended."""
    if len(nodes) < 2:
        return nodes, table
    sizes: dict = {}  # number of keys -> how many nodes have that many
    for node in nodes:
        c = node.get("c")
        if type(c) is dict and c and type(node.get("a")) is int:
            sizes[len(c)] = sizes.get(len(c), 0) + 1
    keyed: dict = {}  # keys -> how many nodes have them
    pairs: dict = {}  # (metadata, keys) -> how many nodes have them
    for node in nodes:
        c = node.get("c")
        if type(c) is dict and c and sizes.get(len(c), 0) > 1 and type(node.get("a")) is int:
            keys = tuple(c)
            keyed[keys] = keyed.get(keys, 0) + 1
            pair = (node["a"], *keys)
            pairs[pair] = pairs.get(pair, 0) + 1
    repeated = {
        pair: -1
        for pair, count in pairs.items()
        if keyed[pair[1:]] > 1
        and (count > 1 or sum(map(len, pair[1:])) + 3 * (len(pair) - 1) > SHAPE_BYTES)
    }
    if not repeated:
        return nodes, table
    for i, entry in enumerate(table):
        if type(entry) is list and len(entry) > 1 and tuple(entry) in repeated:
            repeated[tuple(entry)] = i
    table = list(table)
    for key, i in repeated.items():
        if i == -1:
            repeated[key] = len(table)
            table.append(list(key))
    out = list(nodes)
    for j, node in enumerate(nodes):
        c = node.get("c")
        if type(c) is dict and c and type(node.get("a")) is int:
            s = repeated.get((node["a"], *c))
            if s is not None:
                node = out[j] = dict(node)
                node["a"] = s
                node["c"] = [
                    _short_leaf(e) if type(e) is dict and "X" in e else e for e in c.values()
                ]
    return out, table


#: The keys of the entry of an external array that :func:`_short_leaf` shortens.
_ARRAY_KEYS = ("X", "k", "d", "s", "h")


def _short_leaf(entry: dict) -> dict:
    """The entry of an external array among the values of a node of a shape:
    ``{"XA": [name, dtype, shape, checksum]}`` where it has nothing else
    (format 1.4); any other entry as it is."""
    if len(entry) != 5 or entry.get("k") != "A" or tuple(entry) != _ARRAY_KEYS:
        return entry
    return {"XA": [entry["X"], entry["d"], entry["s"], entry["h"]]}


def _long_leaf(entry: dict, where: str) -> dict:
    """The entry :func:`_short_leaf` shortened, in full."""
    values = entry["XA"]
    if len(entry) != 1 or type(values) is not list or len(values) != 4:
        raise CorruptStoreError(f"{where} holds an invalid array entry; the record is damaged")
    name, dtype, shape, checksum = values
    return {"X": name, "k": "A", "d": dtype, "s": shape, "h": checksum}


def _exactly(value: Any) -> Any:
    """What an entry derived from another must share with it for ``value``
    (see :func:`_derive_entries`): nothing for an int; a float bit for bit
    (``-0.0 == 0.0``, but a derived entry must not lose the sign); else the
    value itself."""
    if type(value) is int:
        return None
    return value.hex() if type(value) is float else value


def _derive_entries(table: list) -> list:
    """The metadata table with the derived entries of :func:`_short_forms`
    (``table`` itself if none applies)."""
    out = None
    bases: dict = {}  # a dict's items, its int values left out -> the first such dict
    keyed: dict = {}  # the keys of a shape -> the first shape with them
    for i, entry in enumerate(table):
        te = type(entry)
        if te is dict:
            if len(entry) < 2 or int not in set(map(type, entry.values())):
                continue  # (nothing to derive it from, nor to derive from it)
            try:
                key = tuple((k, type(v), _exactly(v)) for k, v in entry.items())
                b = bases.setdefault(key, i)
            except TypeError:  # a list or dict among its values
                continue
            if b == i:
                continue
            base = table[b]
            short: list = [b, {k: v for k, v in entry.items() if base[k] != v}]
            if len(orjson.dumps(short)) < len(orjson.dumps(entry)):
                out = list(table) if out is None else out
                out[i] = short
        elif te is list and len(entry) > 2:
            s = keyed.setdefault(tuple(entry[1:]), i)
            if s != i:
                out = list(table) if out is None else out
                out[i] = [entry[0], s]
    return table if out is None else out


def _long_forms(nodes: list, attrs: list, where: str) -> None:
    """Undo :func:`_short_forms` in a record just read (in place): derived
    entries and shapes named by another's keys in full, then table nodes of
    a shape as nodes of metadata and keyed children (only in a record
    holding :data:`MARK`)."""
    marked = False
    for i, entry in enumerate(attrs):
        te = type(entry)
        if te is str:
            _check_mark(entry, where)
            marked = True
        elif te is list and len(entry) == 2 and type(entry[1]) is dict:
            b = entry[0]
            if type(b) is not int or not 0 <= b < i or type(attrs[b]) is not dict:
                raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
            base = attrs[b]
            if not all(k in base for k in entry[1]):
                raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
            attrs[i] = {**base, **entry[1]}
    for i, entry in enumerate(attrs):
        if type(entry) is list and len(entry) == 2 and type(entry[1]) is int:
            s = entry[1]
            if not 0 <= s < i or type(attrs[s]) is not list or len(attrs[s]) < 2:
                raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
            attrs[i] = [entry[0], *attrs[s][1:]]
    if marked:
        _keyed_nodes(nodes, attrs, where)


def _check_mark(mark: str, where: str) -> None:
    """Refuse a record marked as needing a newer format than this one reads."""
    major, _, minor = mark.partition(".")
    if not (major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()):
        raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
    if (int(major), int(minor)) > FORMAT_VERSION:
        raise FormatVersionError(
            f"{where} uses forms of tinystore format {mark}; this tinystore reads format "
            f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]} and older: upgrade tinystore to read it"
        )


def _keyed_nodes(nodes: list, attrs: list, where: str) -> None:
    """Table nodes whose ``a`` is a shape with keys, as nodes of its metadata
    with keyed children (in place)."""
    for j, node in enumerate(nodes):
        if type(node) is not dict:
            continue
        s = node.get("a")
        if type(s) is not int or not 0 <= s < len(attrs):
            continue
        shape = attrs[s]
        c = node.get("c")
        if type(shape) is not list or len(shape) < 2 or type(c) is not list:
            continue  # (a list shape: refused as any node whose metadata is a shape)
        if len(c) != len(shape) - 1 or not all(type(k) is str for k in shape[1:]):
            raise CorruptStoreError(
                f"{where} holds a node whose values do not fit its shape #{s}; "
                "the record is damaged"
            )
        node = nodes[j] = dict(node)
        node["a"] = shape[0]
        node["c"] = {
            k: _long_leaf(e, where) if type(e) is dict and "XA" in e else e
            for k, e in zip(shape[1:], c)
        }


def loads_record(data: bytes, where: str) -> Record:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise CorruptStoreError(f"the record of {where} is damaged: {exc}") from exc
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
    # after the JSON and its version: those errors say more (where, what to do)
    checked = check_seal(data, where)
    nodes = doc.get("nodes")
    if type(nodes) is not list or not nodes or type(nodes[0]) is not dict:
        raise CorruptStoreError(f"the record of {where} has no valid node table")
    attrs = doc.get("attrs", [])
    if type(attrs) is not list:
        raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
    if attrs:
        _long_forms(nodes, attrs, where)
    shapes = _check_table(attrs, where)
    rec = Record(nodes, attrs)
    rec.shapes = shapes
    rec.checked = checked
    return rec


def _check_table(attrs: list, where: str) -> dict | None:
    """The shapes of a metadata table, ``{index: keys or None}`` (None: no
    shape); refuses a table that is not dicts and valid shapes."""
    shapes = None
    for i, a in enumerate(attrs):
        if type(a) is dict or type(a) is str:  # (a string: a mark, see _long_forms)
            continue
        if (
            type(a) is not list
            or not a
            or type(a[0]) is not int
            or not 0 <= a[0] < len(attrs)
            or type(attrs[a[0]]) is not dict
            or not all(type(k) is str for k in a[1:])
            or len(set(a[1:])) != len(a) - 1
        ):
            raise CorruptStoreError(f"the record of {where} has an invalid metadata table")
        if shapes is None:
            shapes = {}
        shapes[i] = tuple(a[1:]) if len(a) > 1 else None
    return shapes


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
        raise UnsupportedValueError(f"metadata must be JSON-compatible: {exc}") from exc
    stack: list = [attrs]
    while stack:  # orjson writes nan/inf as null: refuse them rather than change them
        original = stack.pop()
        values = original.values() if type(original) is dict else original
        for v in values:
            if type(v) is float and v - v != 0.0:
                raise UnsupportedValueError(f"metadata cannot hold {v!r}; store it as a value")
            if type(v) in (dict, list, tuple):
                stack.append(v)
    return copy


def copy_attrs(attrs: dict) -> dict:
    """A copy of stored metadata that the caller may change freely."""
    for value in attrs.values():
        if type(value) not in _SCALARS and type(value) is not float:
            return orjson.loads(orjson.dumps(attrs))
    return dict(attrs)


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


def file_name(key: str) -> str:
    """The physical name of a key in a file system (:func:`safe_name`), never
    one of the names an external leaf's file gets (``.npy``, ``.bin``)."""
    base = safe_name(key, limit=100)
    if base.endswith((".npy", ".bin")):  # would collide with the file of an external
        base = base[:-4] + "%2e" + base[-3:]
    return base


def _entry_names(entry: Any) -> Iterator[tuple[str, str, dict]]:
    if type(entry) is dict:
        if "X" in entry:
            yield "X", entry["X"], entry
        elif "G" in entry:
            yield "G", entry["G"], entry


class Record:
    """A parsed record: its node and metadata tables and the physical names it uses."""

    __slots__ = (
        "nodes",
        "attrs",
        "_attr_index",
        "_names",
        "_prefixes",
        "dirty",
        "compact",
        "checked",
        "shapes",
    )

    def __init__(self, nodes: list, attrs: list | None = None):
        self.nodes = nodes
        #: metadata shared by several nodes; a node's ``"a"`` may be an index here
        self.attrs = [] if attrs is None else attrs
        self._attr_index: dict | None = None  # serialised attrs -> index
        self._names: set | None = None
        self._prefixes: dict | None = None  # the folders of names that are paths
        self.dirty = False
        self.compact = True  # nodes are in canonical order, unreferenced-free
        self.checked = True  # read with a checksum that matched (or written by us)
        #: the shapes of the metadata table: {index: keys, or None for a list}
        #: (None: the table has no shape; the first shape is the default one)
        self.shapes: dict | None = None

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

    def shape(self, n: int, keys: tuple | None) -> int:
        """The index of the shape ``[n, *keys]`` in the metadata table (added if
        new): nodes of metadata ``n`` whose children have these keys (None:
        whose children are a list)."""
        index = self._attr_index
        if index is None:
            index = self._attr_index = {orjson.dumps(a): i for i, a in enumerate(self.attrs)}
        entry = [n, *keys] if keys else [n]
        key = orjson.dumps(entry)
        i = index.get(key)
        if i is None:
            i = index[key] = len(self.attrs)
            self.attrs.append(entry)
            if self.shapes is None:
                self.shapes = {}
            self.shapes[i] = keys or None
        return i

    def find_shape(self, n: int, keys: tuple) -> int | None:
        """The index of the shape ``[n, *keys]`` if the table has it."""
        if self.shapes is None:
            return None
        index = self._attr_index
        if index is None:
            index = self._attr_index = {orjson.dumps(a): i for i, a in enumerate(self.attrs)}
        return index.get(orjson.dumps([n, *keys]))

    @property
    def default(self) -> int | None:
        """The default shape (of bare-array entries): the table's first shape."""
        shapes = self.shapes
        return next(iter(shapes)) if shapes else None

    def short_node(self, i: int, children: Any, where: str = "a record") -> dict:
        """The node a short entry ``{"@<i>": children}`` stands for."""
        shapes = self.shapes
        if shapes is None or i not in shapes:
            return {"a": i, "c": children}
        keys = shapes[i]
        if type(children) is not list or (keys is not None and len(children) != len(keys)):
            raise CorruptStoreError(
                f"{where} holds a node whose values do not fit its shape #{i}; "
                "the record is damaged"
            )
        n = self.attrs[i][0]
        return {"a": n, "c": children if keys is None else dict(zip(keys, children))}

    def bare_node(self, children: list, where: str = "a record") -> dict:
        """The node a bare-array entry stands for (a node of the default shape)."""
        d = self.default
        if d is None:
            raise CorruptStoreError(
                f"{where} holds a list where an entry belongs (its record has no shape); "
                "the record is damaged"
            )
        return self.short_node(d, children, where)

    def node_attrs(self, node: dict, where: str = "a record") -> dict:
        """The metadata of ``node`` as stored (do not change it)."""
        a = node.get("a")
        if type(a) is int:
            try:
                if a < 0 or type(self.attrs[a]) is not dict:
                    raise IndexError
                return self.attrs[a]
            except IndexError:
                raise CorruptStoreError(
                    f"a node of {where} refers to metadata #{a}, which its record lacks; "
                    "the record is damaged"
                ) from None
        if type(a) is dict:
            return a
        if not a:
            return {}
        raise CorruptStoreError(f"a node of {where} holds metadata that is no dict; it is damaged")

    @property
    def names(self) -> set:
        if self._names is None:
            names = set()
            for node in self.nodes:
                if node is None:  # being filled in by add_tree
                    continue
                for entry in _children_entries(node):
                    for _, name, _ in _entry_names(entry):
                        if type(name) is not str:
                            raise CorruptStoreError(
                                f"a record names a file by a {type(name).__name__}; it is damaged"
                            )
                        names.add(name)
            self._names = names
        return self._names

    @property
    def prefixes(self) -> dict:
        """The proper prefixes of the names that are paths (``"a"`` of
        ``"a/b"``), each with the number of names under it."""
        if self._prefixes is None:
            self._prefixes = {}
            for name in self.names:
                if "/" in name:
                    self._add_prefixes(name, 1)
        return self._prefixes

    def _add_prefixes(self, name: str, step: int) -> None:
        prefixes = self._prefixes
        parts = name.split("/")
        for i in range(1, len(parts)):
            prefix = "/".join(parts[:i])
            count = prefixes.get(prefix, 0) + step
            if count > 0:
                prefixes[prefix] = count
            else:
                prefixes.pop(prefix, None)

    def release(self, name: str) -> None:
        """Forget physical name ``name`` (removed, or moved aside): free for reuse."""
        names = self.names
        if name in names:
            names.discard(name)
            if self._prefixes is not None and "/" in name:
                self._add_prefixes(name, -1)

    def new_name(self, parts: tuple) -> str:
        """A name no entry of this record uses: ``parts`` (physical names) joined
        by ``/``, with ``~n`` appended to a part where the name is taken.  A
        folder may be shared by several names; a name is never a folder."""
        names, prefixes = self.names, self.prefixes
        path = ""
        last = len(parts) - 1
        for i, part in enumerate(parts):
            name, n = part, 0
            while True:
                full = f"{path}/{name}" if path else name
                if full not in names and (i < last or full not in prefixes):
                    break
                n += 1
                name = f"{part}~{n}"
            path = full
        names.add(path)
        if last:
            self._add_prefixes(path, 1)
        return path

    def canonical(self) -> list:
        """The node table renumbered in canonical order, garbage dropped: a
        node's table children (also those inside its nodes written in place,
        in the order of their entries) get consecutive indices when the node
        is visited, depth first, as :func:`~.packing.add_tree` numbers them."""
        if self.compact:
            return self.nodes
        old = self.nodes
        new: list = [None]
        stack = [(0, 0)]
        while stack:
            oi, ni = stack.pop()
            node = dict(old[oi])
            children = node.get("c")
            pending: list = []
            node["c"] = {} if children is None else self._renumber(children, new, pending, 0)
            new[ni] = node
            stack.extend(reversed(pending))
        self.nodes = new
        self.compact = True
        return new

    def _renumber(self, children: Any, new: list, pending: list, depth: int) -> Any:
        """A copy of ``children`` whose references to table nodes (here and in
        the nodes written in place among them) point into ``new``."""
        if depth > MAX_INPLACE_DEPTH:
            raise CorruptStoreError("a record nests nodes in place too deep; it is damaged")
        is_list = type(children) is list
        out = list(children) if is_list else dict(children)
        for k, e in enumerate(children) if is_list else children.items():
            te = type(e)
            if te is list:
                out[k] = self._renumber(e, new, pending, depth + 1)
            elif te is dict and len(e) == 1:
                (tag,) = e
                if type(tag) is not str or tag[:1] != "@":
                    continue
                at = e[tag]
                if tag == "@":
                    if type(at) is int:
                        pending.append((at, len(new)))
                        out[k] = {"@": len(new)}
                        new.append(None)
                    elif type(at) is dict and at.get("c"):
                        inner = dict(at)
                        inner["c"] = self._renumber(at["c"], new, pending, depth + 1)
                        out[k] = {"@": inner}
                elif type(at) in (list, dict):
                    out[k] = {tag: self._renumber(at, new, pending, depth + 1)}
        return out


def _target(nodes: list, at: Any) -> dict:
    """The node an ``{"@": ...}`` entry stands for: a table index, or the node itself."""
    if type(at) is dict:
        return at
    if type(at) is int and 0 <= at < len(nodes):
        node = nodes[at]
        if type(node) is dict:
            return node
    raise CorruptStoreError(
        f"a record refers to node {at!r:.40}, which its node table lacks; the record is damaged"
    )


def _at(entry: Any, rec: Record, where: str = "a record") -> Any:
    """What a node entry points at: a table index or a node; None for any other entry.

    ``{"@": i}`` and ``{"@": node}`` say so directly; the short form of a small
    node, ``{"@<n>": children}``, stands for ``{"a": <n>, "c": children}``
    (``n`` a shape of ``rec``: its metadata, and its keys for the children),
    a bare array for the short form of the record's default shape.
    """
    te = type(entry)
    if te is list:
        return rec.bare_node(entry, where)
    if te is not dict:
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
            return rec.short_node(int(n), entry[tag], where)
    return None


def _children_entries(node: dict) -> Any:
    c = node.get("c")
    if not c:
        return ()
    if type(c) is list:
        return c
    if type(c) is dict:
        return c.values()
    raise CorruptStoreError(f"a node's children are a {type(c).__name__}; the record is damaged")


def _child_entry(node: dict, key: str) -> Any:
    c = node.get("c")
    if type(c) is list:
        if key.isascii() and key.isdigit() and (key == "0" or key[0] != "0"):
            i = int(key)
            if i < len(c):
                return c[i]
        raise KeyError(key)
    if type(c) is dict:
        return c[key]
    if c is None:
        raise KeyError(key)
    raise CorruptStoreError(f"a node's children are a {type(c).__name__}; the record is damaged")


def _leaf_info(entry: dict) -> LeafInfo:
    from tinystore.storage.leaves import dtype_from_json

    if entry.get("k") == "A":
        dtype = dtype_from_json(entry["d"])
        shape = entry.get("s")
        if type(shape) is not list or not all(type(d) is int and d >= 0 for d in shape):
            raise CorruptStoreError(f"an array entry has an invalid shape {shape!r:.40}")
        n = 1
        for d in shape:
            n *= d
        return LeafInfo("numpy.ndarray", tuple(shape), dtype, n * dtype.itemsize)
    kind = "bytearray" if entry.get("k") == "BA" else "bytes"
    nbytes = entry.get("n", 0)
    if type(nbytes) is not int or nbytes < 0:
        raise CorruptStoreError(f"a bytes entry has an invalid size {nbytes!r:.40}")
    return LeafInfo(kind, nbytes=nbytes)
