"""Seeing inside a store without building (or importing) anything.

:class:`NodeView` describes one stored node from its metadata only: kind,
Python type, recorded versions, shape/dtype of arrays, size, children.
``storage.node(path)``, ``storage.tree()``, ``storage.info()`` and the HTML
representation in notebooks are built on it.  Nothing is imported or
instantiated until :meth:`NodeView.to_object` is called.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterator

import numpy as np

from tinystore.errors import CorruptStoreError, TinystoreError
from tinystore.objects import contents, table
from tinystore.storage.base import GenericStorage, GroupTree, LeafInfo, Tree

__all__ = ["NodeView", "ColumnView", "render_tree", "render_html", "summarize"]

_BUILTIN_KINDS = {
    "list": "builtins.list",
    "tuple": "builtins.tuple",
    "dict": "builtins.dict",
    "set": "builtins.set",
    "frozenset": "builtins.frozenset",
    "ndarray": "numpy.ndarray",
    "dtype": "numpy.dtype",
}


_CONTAINERS = frozenset(["group", "list", "tuple", "dict", "set", "frozenset", "ndarray"])


def _dotted(name: str) -> str:
    return name.replace(":", ".") if type(name) is str else repr(name)  # (damaged: shown)


def describe(node: Any) -> tuple[str, str]:
    """``(kind, type name)`` of a stored node, from metadata only."""
    if type(node) is GroupTree:
        return "group", ""
    if type(node) is LeafInfo:
        return "leaf", node.type
    if type(node) is not Tree:
        t = type(node)
        module = "builtins" if t.__module__ == "builtins" else t.__module__
        return "leaf", f"{module}.{t.__qualname__}"
    attrs = node.attrs
    kind = attrs.get("t", "?")
    if type(kind) is not str:
        return "damaged", repr(kind)[:40]
    if kind in _BUILTIN_KINDS:
        return kind, _BUILTIN_KINDS[kind]
    if kind == "obj":
        return ("dataclass" if attrs.get("dc") else "object"), _dotted(attrs.get("c", "?"))
    if kind in ("storable", "enum", "recipe"):
        name = _dotted(attrs.get("c", "?"))
        return kind, f"{name}.{attrs['n']}" if kind == "enum" and "n" in attrs else name
    if kind == "global":
        return "global", _dotted(attrs.get("g", "?"))
    if kind == "reduce":
        return "reduce", _reduce_type(node)
    if kind == "ref":
        return "ref", f"-> #{attrs.get('r')}"
    if kind == "table":  # a list stored column by column (see tinystore.objects.table)
        return "list", "builtins.list"
    if kind == "leaf":
        return describe(node.children[0]) if node.children else ("leaf", "?")
    if kind == "cloudpickle":
        return "cloudpickle", "pickle bytes (fallback)"
    if kind == "group":
        return "group", "Storable group"
    return kind, kind


def _table_rows(node: Tree, kinds: Counter, types: Counter) -> Any:
    """A table node as the list of its rows for counting (see summarize); a
    table whose columns were not read counts its rows from its attrs."""
    expanded = table.as_list_node(node)
    if expanded is not None:
        return expanded
    rows = node.attrs.get("n")
    if type(rows) is int:
        name = node.attrs.get("c")
        kind = "tuple" if name is None else ("dataclass" if node.attrs.get("dc") else "object")
        kinds[kind] += rows
        types["builtins.tuple" if name is None else _dotted(str(name))] += rows
    return Tree({"t": "list"}, list(node.children.values()))


def _expand_table(storage: GenericStorage, path: str, node: Tree) -> Tree:
    """A ``table`` node as the list node of its rows: browsing shows a list,
    whatever its layout.  Columns stored outside the record are
    read for that; a damaged table stays as it is."""
    expanded = table.as_list_node(node)
    if expanded is None:  # a column that browsing did not read (LeafInfo)
        try:
            full = storage.read_tree(path)
        except (TinystoreError, OSError, KeyError, ValueError):
            full = None
        expanded = table.as_list_node(full) if type(full) is Tree else None
    return node if expanded is None else expanded


def _reduce_type(node: Tree) -> str:
    children = node.children
    func = children.get("f") if type(children) is dict else None
    if type(func) is Tree and func.attrs.get("t") == "global":
        name = func.attrs.get("g", "?")
        if name in ("copyreg:__newobj__", "copyreg:__newobj_ex__"):
            args = children.get("a")
            if type(args) is Tree and type(args.children) is list and args.children:
                cls = args.children[0]
                if type(cls) is Tree and cls.attrs.get("t") == "global":
                    return _dotted(cls.attrs.get("g", "?"))
        return _dotted(name)
    return "?"


def _leaf_shape(node: Any) -> tuple[tuple | None, Any, int]:
    if type(node) is LeafInfo:
        return node.shape, node.dtype, node.nbytes
    if type(node) is np.ndarray or isinstance(node, np.generic):
        return node.shape, node.dtype, node.nbytes
    if type(node) in (bytes, bytearray, str):
        return None, None, len(node)
    return None, None, 0


def _items(node: Any) -> list[tuple[str, Any]]:
    if not isinstance(node, Tree):
        return []
    c = node.children
    if node.attrs.get("t") == "leaf":
        return []
    return [(str(i), v) for i, v in enumerate(c)] if type(c) is list else list(c.items())


class NodeView:
    """A lazy, read-only view of one stored node.

    >>> import tinystore
    >>> with tinystore.open("memory://doc-view", mode="w") as s:
    ...     s["run"] = {"energy": -3.5, "forces": [0.1, 0.2]}
    ...     view = s.node("run")
    ...     view.kind, view.type, list(view)
    ...     view["forces"].to_object()
    ('dict', 'builtins.dict', ['energy', 'forces'])
    [0.1, 0.2]
    """

    def __init__(
        self,
        storage: GenericStorage,
        path: str,
        node: Any,
        versions: dict | None = None,
        locate: Any = None,
    ):
        self._storage = storage
        self.path = path
        #: True for a node inside a list stored as a table (see _expand_table)
        self.in_table = False
        stored = node
        if type(node) is Tree and node.attrs.get("t") == "table":
            node = _expand_table(storage, path, node)
        #: True for a list stored as a table (shown as the list of its rows)
        self.is_table = node is not stored
        self._node = node
        #: ``locate(anchor)``: the node a reference inside this object points at
        self._locate = locate if locate is not None else contents.anchor_finder(node)
        self.kind, self.type = describe(node)
        if self.type == "?" and self.kind == "reduce":
            self.type = contents.reduce_type(node, self._locate)
        self.attrs: dict = dict(stored.attrs) if isinstance(stored, Tree) else {}
        self.versions: dict = versions if versions is not None else self.attrs.get("versions", {})
        self.shape, self.dtype, self.nbytes = _leaf_shape(
            node.children[0] if self.kind == "leaf" and isinstance(node, Tree) else node
        )

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def children(self) -> list[NodeView]:
        return [self[k] for k, _ in _items(self._node)]

    def keys(self) -> list[str]:
        keys = [k for k, _ in _items(self._node)]
        for k in keys:
            if "/" in k:  # (tinystore writes such keys as values: only a crafted record names one)
                where = self.path or "/"
                raise CorruptStoreError(f"{where!r} holds a child named {k!r}; it is damaged")
        return keys

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(_items(self._node))

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __getitem__(self, key: Any) -> Any:
        if type(key) is not str and self.kind == "leaf" and self.shape is not None:
            # an array: h5py-style indexing reads only the part it selects
            return self._storage.read_slice(self.path, key)
        if type(key) is int:  # view["items"][3] for the item at index 3
            key = str(key)
        elif type(key) is not str:  # a selection of a node that is no array
            raise TypeError(f"{self.path!r} is not an array ({self.kind} {self.type}): no slicing")
        node = self._node
        locate = self._locate
        parts = key.split("/")
        for i, part in enumerate(parts):
            if type(node) is GroupTree:  # below it, each stored object has its anchors
                locate = None
            items = self._children_map() if node is self._node else dict(_items(node))
            if part not in items:
                if i:  # a column of a frame inside this node: ask that node's view
                    return self["/".join(parts[:i])]["/".join(parts[i:])]
                column = _column_view(self, part)
                if column is not None and len(parts) == 1:
                    return column
                raise KeyError(f"no node {part!r} under {self.path!r}")
            node = items[part]
            if locate is None:  # entering a stored object from its group
                locate = contents.anchor_finder(node)
        path = f"{self.path}/{key}" if self.path else key
        versions = {} if self.kind != "group" else None
        view = NodeView(self._storage, path, node, versions, locate)
        view.in_table = self.in_table or self.is_table
        return view

    def _children_map(self) -> dict:
        """``{key: node}`` of the children (made once per view)."""
        found = self.__dict__.get("_children")
        if found is None:
            found = self.__dict__["_children"] = dict(_items(self._node))
        return found

    def to_object(self) -> Any:
        """Build the stored object (imports its classes, runs constructors)."""
        if not self.path:
            return self._storage.codec.load_root(self._storage)
        return self._storage[self.path]

    @property
    def size(self) -> int:
        """Bytes of leaf payload stored below this node (arrays, bytes, strings)."""
        total = 0
        stack = [self._node]
        while stack:
            node = stack.pop()
            if isinstance(node, Tree):
                c = node.children
                stack.extend(c if type(c) is list else c.values())
            else:
                total += _leaf_shape(node)[2]
        return total

    def summary(self) -> str:
        """One line: kind, type, and what the node holds (value, shape, length, metadata)."""
        special = _special_summary(self)
        return special if special is not None else self._plain_summary()

    def _plain_summary(self) -> str:
        parts = [self.kind]
        if self.type and self.type != self.kind:
            parts.append(self.type)
        if self.shape is not None:
            parts.append(f"{self.dtype} {self.shape}")
        elif self.kind == "leaf" and not isinstance(self._node, (LeafInfo, Tree)):
            text = contents.short_repr(self._node, 40)
            parts.append(text if len(text) <= 40 else text[:37] + "...")
        elif isinstance(self._node, Tree) and (len(self) or self.kind in _CONTAINERS):
            parts.append(f"{len(self)} item" if len(self) == 1 else f"{len(self)} items")
        if self.versions:
            parts.append(_versions_text(self.versions))
        return "  ".join(parts)

    def tree(self, max_depth: int | None = None, max_children: int = 50) -> str:
        return render_tree(self, max_depth=max_depth, max_children=max_children)

    def __repr__(self) -> str:
        return f"<NodeView {('/' + self.path)!r}: {self.summary()}>"

    def _repr_html_(self) -> str:
        return render_html(self)

    # -- what the node holds, for people (see tinystore.objects.contents) ----------
    @property
    def metadata(self) -> dict:
        """Metadata a user set on this node (a group's ``attrs``); no internal tags."""
        return contents.metadata(self)

    @property
    def value(self) -> str | None:
        """The value of a small standard-library object (a date, Decimal, UUID, Path...)
        as text, rebuilt by safe loading; None for other nodes."""
        return contents.value_text(self)

    @property
    def length(self) -> int | None:
        """Items of a list, tuple or array node, rows of a DataFrame or Series."""
        frame = contents.frame_info(self)
        if frame is not None:
            return frame.rows
        if isinstance(self._node, Tree) and self.kind in ("dict", "set", "frozenset"):
            return len(self)
        return contents.length_of(self)

    @property
    def columns(self) -> list[ColumnView] | None:
        """The columns of a DataFrame node (views loading as Series), else None."""
        frame = contents.frame_info(self)
        if frame is None or self.kind != "pandas.DataFrame":
            return None
        return [ColumnView(self, frame, i) for i in range(len(frame.keys))]

    def preview(self, budget: contents.ReadBudget | None = None) -> str | None:
        """The first items of an array, column or leaf as short text (reads at most
        :data:`~tinystore.objects.contents.PREVIEW_READ_LIMIT` bytes)."""
        return contents.preview(self, budget)

    def details(self) -> dict:
        """What ``tinystore show`` prints: plain, JSON-compatible, no internal tags."""
        return _details(self)


def _versions_text(versions: dict) -> str:
    out = []
    for module, info in sorted(versions.items()):
        if isinstance(info, dict) and info.get("version"):
            out.append(f"{info.get('dist', module)} {info['version']}")
    return "[" + ", ".join(sorted(set(out))) + "]" if out else ""


def _entries(view: NodeView, max_children: int) -> list[tuple[str, NodeView | None, bool]]:
    keys = shown_keys(view)
    shown = keys[:max_children]
    more = len(keys) - len(shown)
    out = [(k, view[k], i == len(shown) - 1 and not more) for i, k in enumerate(shown)]
    if more:
        out.append((f"... {more} more", None, True))
    return out


def render_tree(view: NodeView, max_depth: int | None = None, max_children: int = 50) -> str:
    """Text tree of ``view`` and its descendants (at most ``max_children`` each)."""
    lines = [f"{'/' + view.path}  {view.summary()}"]
    stack = [(iter(_entries(view, max_children)), "", 0)]
    while stack:
        entries, prefix, depth = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        key, child, last = entry
        branch = "└── " if last else "├── "
        if child is None:
            lines.append(f"{prefix}{branch}{key}")
            continue
        lines.append(f"{prefix}{branch}{key}  {child.summary()}")
        if shown_keys(child) and (max_depth is None or depth + 1 < max_depth):
            pad = prefix + ("    " if last else "│   ")
            stack.append((iter(_entries(child, max_children)), pad, depth + 1))
    return "\n".join(lines)


def render_html(view: NodeView, max_children: int = 50) -> str:
    """A collapsible HTML tree for notebooks (see :mod:`tinystore.objects.html`)."""
    from tinystore.objects.html import render

    return render(view, max_children=max_children)


def summarize(view: NodeView) -> dict:
    """Counts and sizes below ``view``: node kinds, leaves, bytes, fallbacks."""
    kinds: Counter = Counter()
    types: Counter = Counter()
    leaf_bytes = 0
    versions: dict = {}
    stack = [view._node]
    while stack:
        node = stack.pop()
        if type(node) is Tree and node.attrs.get("t") == "table":
            node = _table_rows(node, kinds, types)
        kind, type_name = describe(node)
        kinds[kind] += 1
        if kind not in ("group", "ref"):
            types[type_name] += 1
        if isinstance(node, Tree):
            recorded = node.attrs.get("versions")
            if type(recorded) is dict:  # (anything else: damaged metadata, not counted)
                versions.update(recorded)
            if node.attrs.get("t") != "leaf":
                c = node.children
                stack.extend(c if type(c) is list else c.values())
            else:
                leaf_bytes += _leaf_shape(node.children[0])[2]
        else:
            leaf_bytes += _leaf_shape(node)[2]
    return {
        "nodes": sum(kinds.values()),
        "kinds": dict(kinds),
        "types": dict(types.most_common(20)),
        "leaf_bytes": leaf_bytes,
        "fallbacks": kinds.get("cloudpickle", 0),
        "versions": versions,
    }


# -- data, not internals (see tinystore.objects.contents) ---------------------------------
class ColumnView(NodeView):
    """A column of a stored DataFrame, reached by its own name (``"table/energy"``).

    Its children are its stored layout (``view.keys()`` of the column node);
    :meth:`to_object` loads it as a ``pandas.Series`` (the frame's index,
    the column's values and label), reading only that column.
    """

    def __init__(self, frame: NodeView, info: contents.FrameInfo, position: int):
        self.frame = frame
        self.position = position
        self.key = info.keys[position]
        self.label = info.labels[position]
        #: the view of the column's stored node (``table/data/energy``)
        self.stored = info.column(self.key)
        super().__init__(frame._storage, self.stored.path, self.stored._node, {})
        self.path = f"{frame.path}/{self.key}" if frame.path else self.key
        self.kind, self.type = "column", "pandas.Series"
        self.dtype = info.dtypes[position]
        self.rows = info.rows
        self.shape = None if self.rows is None else (self.rows,)

    def summary(self) -> str:
        rows = "?" if self.rows is None else self.rows
        return f"column {self.label!r}  {self.dtype or '?'}  {rows} rows"

    def preview(self, budget: contents.ReadBudget | None = None) -> str | None:
        return self.stored.preview(budget)

    def to_object(self) -> Any:
        """The column as a ``pandas.Series`` with the frame's index (imports pandas)."""
        from tinystore.objects.adapters.pandas import column_series

        storage, base = self._storage, self.frame.path
        index = storage[f"{base}/index" if base else "index"]
        labels = storage[f"{base}/columns" if base else "columns"]
        return column_series(storage[self.stored.path], index, labels[self.position])


def _column_view(view: NodeView, key: str) -> ColumnView | None:
    frame = contents.frame_info(view)
    if frame is None or view.kind != "pandas.DataFrame" or key not in frame.keys:
        return None
    return ColumnView(view, frame, frame.keys.index(key))


def shown_keys(view: NodeView) -> list[str]:
    """Children that tree() and the HTML view list: a frame's columns, no internals."""
    if type(view) is ColumnView or view.kind == "pandas.Series" or contents.folded(view):
        return []
    frame = contents.frame_info(view)
    if frame is not None:  # a DataFrame: its columns (a Series returned above)
        return list(frame.keys)
    return view.keys()


def _special_summary(view: NodeView) -> str | None:
    """summary() for values, frames, arrays, long strings and groups with metadata."""
    text = contents.special_summary(view)
    if text is not None and view.versions:
        text = f"{text}  {_versions_text(view.versions)}"
    extra = contents.leaf_text(view)
    meta = view.metadata
    if text is None and extra is None and not meta:
        return None
    text = text or view._plain_summary()
    if extra is not None:
        text = f"{text}  ({extra})"
    if meta:
        text = f"{text}  {contents.metadata_text(meta)}"
    return text


def _details(view: NodeView) -> dict:
    """The fields of ``tinystore show`` (see :meth:`NodeView.details`)."""
    out: dict = {"path": "/" + view.path, "kind": view.kind, "type": view.type}
    out["summary"] = view.summary()
    if view.shape is not None:
        out.update(shape=list(view.shape), dtype=str(view.dtype), nbytes=int(view.nbytes))
    frame = contents.frame_info(view)
    if frame is not None:
        out["rows"] = frame.rows
        out["index"] = frame.index_text()
        out["columns"] = [
            {"name": str(label), "dtype": dtype} for label, dtype in zip(frame.labels, frame.dtypes)
        ]
    elif view.length is not None:
        out["length"] = view.length
    value = view.value
    if value is not None:
        out["value"] = value
    keys = shown_keys(view)
    if keys and frame is None:
        out["children"] = keys[:50]
        out["children_count"] = len(keys)
    if view.metadata:
        out["metadata"] = view.metadata
    if view.versions:
        out["versions"] = view.versions
    out["size"] = view.size
    preview = view.preview() if value is None and frame is None else None
    if preview is not None:
        out["preview"] = preview
    return out
