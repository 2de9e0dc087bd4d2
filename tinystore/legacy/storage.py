"""A read-only storage over an h5io / pyiron_base HDF5 file.

:class:`LegacyStorage` presents the file through the :class:`GenericStorage`
interface: ``s[path]`` loads plain data (see :mod:`tinystore.legacy.reader`),
``s.node(path)`` gives a :class:`LegacyView` (kind, type, shape, flags,
children, ``to_object()``), ``s.tree()`` and ``s.info()`` report what is
lossy or opaque.  Keys are the logical ones (``key_energy`` is ``energy``,
``idx_3`` is ``3``, ``forces__index_2`` is ``forces``).
"""

from __future__ import annotations

import html
import os
from collections import Counter
from typing import Any, Iterator

import h5py

from tinystore._paths import join_path
from tinystore.errors import ReadOnlyError
from tinystore.legacy import reader
from tinystore.storage.base import GenericStorage, LeafInfo

__all__ = ["LegacyStorage", "LegacyView", "open_legacy"]

#: datasets up to this size are read for previews while browsing
_PREVIEW_BYTES = 256
#: group kinds that load as one value: no item count in summaries
_NO_COUNT = ("lost", "dataframe", "ndarray", "sparse")


def open_legacy(location: Any, mode: str = "r", **options: Any) -> LegacyStorage:
    """The backend opener: ``mode`` ``"r"`` (``"a"`` is taken as ``"r"``)."""
    if mode not in ("r", "a"):
        raise ReadOnlyError(
            f"{location}: h5io / pyiron files are read-only in tinystore (mode {mode!r}); "
            "convert them with `tinystore convert` to write"
        )
    options.pop("check", None)  # the HDF5 backend's option, when it handed the file on
    if options:
        raise TypeError(f"unexpected keyword arguments {sorted(options)}")
    path = os.fspath(location)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path!r}")
    return LegacyStorage(h5py.File(path, "r"), "", None)


class LegacyStorage(GenericStorage):
    """One group of a legacy file (the root, or a group below it).

    The developer contract gives, for a key, the child storage of an HDF5
    group (``is_group`` only for plain groups; dicts, lists, objects are
    stored *values*) or the loaded value of a dataset.  Values reach the user
    through the codec seam: ``read_tree`` of a value gives a
    :class:`LegacyNode`, and :class:`LegacyCodec` (which wraps whatever codec
    :func:`tinystore.open` attaches) loads it with the reader under the
    codec's ``safe``/``allow``, and gives views, ``info()`` and the root value.
    """

    #: "trees" only to say that no tinystore metadata leaf is to be looked for
    #: (nothing is ever written: every write raises ReadOnlyError)
    supports = frozenset(["ordered", "node_meta", "paths", "root", "read_tree", "trees"])

    def __init__(self, h5: Any, path: str, root: LegacyStorage | None):
        self._h5 = h5
        self._path = path
        self._root_storage = root or self
        self._info = reader.classify(h5) if path else reader.Info("group", "")
        self._legacy_codec: LegacyCodec | None = None

    # -- the codec seam: whatever tinystore.open attaches is wrapped
    @property  # type: ignore[override]
    def codec(self) -> LegacyCodec | None:
        return self._root_storage._legacy_codec

    @codec.setter
    def codec(self, value: Any) -> None:
        if value is not None and not isinstance(value, LegacyCodec):
            value = LegacyCodec(value)
        self._root_storage._legacy_codec = value

    def _policy(self) -> reader.Policy:
        inner = getattr(self.codec, "inner", None)
        return reader.Policy.from_options(getattr(inner, "safe", None), getattr(inner, "allow", ()))

    # -- developer contract (read-only) -------------------------------------------
    def __getitem__(self, key: str) -> Any:
        obj = reader.resolve(self._h5, key)
        if isinstance(obj, h5py.Group):
            return LegacyStorage(obj, join_path(self._path, key), self._root_storage)
        return reader.load(obj, self._policy())

    def _set(self, key: str, value: Any) -> None:
        self._check_writable()

    def __delitem__(self, key: str) -> None:
        self._check_writable()

    def create_group(self, key: str) -> GenericStorage:
        self._check_writable()
        raise AssertionError  # pragma: no cover - _check_writable raised

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    def list_nodes(self) -> list[str]:
        return [key for key, is_group in self._list() if not is_group]

    def list_groups(self) -> list[str]:
        return [key for key, is_group in self._list() if is_group]

    # -- capabilities
    def _list(self) -> list[tuple[str, bool]]:
        out = []
        for key, name in reader.children(self._h5, self._info):
            obj = self._h5[name]
            is_group = isinstance(obj, h5py.Group) and reader.classify(obj, False).kind == "group"
            out.append((key, is_group))
        return out

    def _read_tree(self, lazy: bool, maker: Any = None) -> Any:
        return LegacyNode(self._h5)

    def _root(self) -> GenericStorage:
        return self._root_storage

    @property
    def path(self) -> str:
        return self._path

    @property
    def attrs(self) -> dict:
        return {"kind": self._info.kind, "type": self._info.type, **self._info.meta}

    @property
    def is_group(self) -> bool:
        return self._info.kind == "group"

    @property
    def readonly(self) -> bool:
        return True

    @property
    def location(self) -> str:
        return f"{self._root_storage._h5.filename} (h5io / pyiron)"

    def _check_writable(self) -> None:
        raise ReadOnlyError(
            f"{self!r} is an h5io / pyiron file, read-only in tinystore; "
            "convert it with `tinystore convert` to write"
        )

    def _close(self) -> None:
        if self._root_storage is self and self._h5.id.valid:
            self._h5.close()

    def __repr__(self) -> str:
        return f"<LegacyStorage {('/' + self.path)!r}>"

    def _load_root(self) -> Any:
        """What :func:`tinystore.load` returns without ``path``: the only
        top-level node (an h5io file's ``/h5io``, a pyiron file's job), else
        the whole file as a dict."""
        top = list(self._h5.keys())
        if len(top) == 1:
            return reader.load(self._h5[top[0]], self._policy())
        return reader.load(self._h5, self._policy())

    def _view(self, path: str) -> LegacyView:
        if not path:
            return LegacyView(self, self.path, self._h5)
        parent, key = self._lookup(path)
        try:
            obj = reader.resolve(parent._h5, key)  # type: ignore[attr-defined]
        except KeyError:
            raise self._missing(path) from None
        return LegacyView(self, join_path(self.path, path), obj)


class LegacyNode:
    """What ``read_tree`` gives for a node of a legacy file: its h5py object."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj


class LegacyCodec:
    """The codec of a :class:`LegacyStorage`: the reader behind the codec seam.

    ``inner`` is the codec :func:`tinystore.open` made; its ``safe`` and
    ``allow`` choose what loading may import or unpickle.
    """

    plain_nodes: dict = {}

    def __init__(self, inner: Any):
        self.inner = inner

    @staticmethod
    def plain_maker(attrs: dict) -> None:
        return None

    def encode(self, obj: Any, storage: Any, path: str) -> Any:
        storage._check_writable()

    def check_replace(self, storage: Any, path: str) -> None:
        storage._check_writable()

    def decode(self, node: Any, storage: Any) -> Any:
        if isinstance(node, LegacyNode):
            return reader.load(node.obj, storage._policy())
        return node  # a leaf (datasets are loaded by the storage)

    def view(self, storage: LegacyStorage, path: str = "") -> LegacyView:
        return storage._view(path)

    def info(self, storage: LegacyStorage, path: str = "") -> dict:
        """Counts, types and bytes below ``path``, and what is ``lost`` (h5io
        dropped it at write time) or ``opaque`` (pickled, not unpickled)."""
        return summarize(storage._view(path))

    def load_root(self, storage: LegacyStorage) -> Any:
        return storage._load_root()


class LegacyView:
    """A lazy, read-only view of one node of a legacy file (metadata only)."""

    def __init__(self, storage: LegacyStorage, path: str, obj: Any):
        self._storage = storage
        self._obj = obj
        self.path = path
        self._info = reader.classify(obj) if path else reader.Info("group", "")
        self.kind = self._info.kind
        self.type = self._info.type
        self.versions: dict = {}
        self.attrs: dict = dict(self._info.meta)
        if self._info.lost:
            self.attrs["lost"] = f"h5io wrote no data for this {self.type}"
        if self._info.opaque:
            self.attrs["opaque"] = self._info.opaque
        self.shape, self.dtype, self.nbytes = self._info.shape, self._info.dtype, self._info.nbytes
        self._keys: list | None = None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def metadata(self) -> dict:
        """What the file says about this node beyond kind and type (pyiron's
        ``NAME``/``VERSION``..., the layout, lost and opaque flags)."""
        return self.attrs

    def details(self) -> dict:
        """What ``tinystore show`` prints: plain, JSON-compatible."""
        out: dict = {"path": "/" + self.path, "kind": self.kind, "type": self.type}
        out["summary"] = self.summary()
        if self.shape is not None:
            out["shape"] = list(self.shape)
            if self.dtype is not None:
                out.update(dtype=str(self.dtype), nbytes=int(self.nbytes))
        if self.kind == "leaf" and self.nbytes <= _PREVIEW_BYTES:
            out["value"] = repr(self.value())
        keys = self.keys()
        if keys:
            out["children"] = keys[:50]
            out["children_count"] = len(keys)
        if self.metadata:
            out["metadata"] = self.metadata
        out["size"] = self.size
        return out

    @property
    def lost(self) -> bool:
        return self._info.lost

    @property
    def opaque(self) -> str:
        return self._info.opaque

    def _items(self) -> list[tuple[str, str]]:
        if self._keys is None:
            obj = self._obj
            self._keys = reader.children(obj, self._info) if isinstance(obj, h5py.Group) else []
        return self._keys

    def keys(self) -> list[str]:
        return [k for k, _ in self._items()]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._items())

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    @property
    def children(self) -> list[LegacyView]:
        return [self[k] for k in self.keys()]

    def __getitem__(self, key: str | int) -> LegacyView:
        view = self
        for part in str(key).split("/"):
            names = dict(view._items())
            if part not in names:
                raise KeyError(f"no node {part!r} under {view.path!r}")
            path = f"{view.path}/{part}" if view.path else part
            view = LegacyView(self._storage, path, view._obj[names[part]])
        return view

    def to_object(self) -> Any:
        """Load this node (plain data unless the storage was opened with
        ``safe=False`` or ``allow=``)."""
        if not self.path:
            return self._storage._load_root()
        return reader.load(self._obj, self._storage._policy())

    def value(self) -> Any:
        """The value of a small plain leaf (None for anything else)."""
        if self.kind == "leaf" and self.nbytes <= _PREVIEW_BYTES:
            return reader.load(self._obj, reader.Policy())
        return None

    @property
    def size(self) -> int:
        return summarize(self)["leaf_bytes"]

    def summary(self) -> str:
        parts = [self.kind]
        if self.type and self.type != self.kind:
            parts.append(self.type)
        if self.shape is not None:
            parts.append(
                f"{self.dtype} {self.shape}" if self.dtype is not None else str(self.shape)
            )
        elif self.kind == "leaf":
            text = repr(self.value()) if self.nbytes <= _PREVIEW_BYTES else ""
            parts.append(text if len(text) <= 40 else text[:37] + "...")
        elif isinstance(self._obj, h5py.Group) and self.kind not in _NO_COUNT:
            parts.append(f"{len(self)} item" if len(self) == 1 else f"{len(self)} items")
        if self.lost:
            parts.append("LOST by h5io at write time")
        if self.opaque:
            size = f"{self.nbytes} bytes, " if self.nbytes else ""
            parts.append(f"{size}opaque ({self.opaque}, not unpickled)")
        return "  ".join(p for p in parts if p)

    def tree(self, max_depth: int | None = None, max_children: int = 50) -> str:
        """A text tree of this node and its descendants."""
        return render_tree(self, max_depth=max_depth, max_children=max_children)

    def _repr_html_(self) -> str:
        return render_html(self)

    def __repr__(self) -> str:
        return f"<LegacyView {('/' + self.path)!r}: {self.summary()}>"

    @property
    def _node(self) -> Any:
        """The preview value of a small leaf, else a :class:`LeafInfo` (the CLI shows it)."""
        if self.kind == "leaf" and self.nbytes <= _PREVIEW_BYTES:
            return self.value()
        return self.as_leafinfo()

    def as_leafinfo(self) -> LeafInfo:
        return LeafInfo(self.type, self.shape, self.dtype, self.nbytes)


def _entries(view: LegacyView, max_children: int) -> list[tuple[str, LegacyView | None]]:
    keys = view.keys()
    out: list = [(k, view[k]) for k in keys[:max_children]]
    if len(keys) > max_children:
        out.append((f"... {len(keys) - max_children} more", None))
    return out


def render_tree(view: LegacyView, max_depth: int | None = None, max_children: int = 50) -> str:
    """Text tree of ``view`` and its descendants (at most ``max_children`` each)."""
    lines = [f"/{view.path}  {view.summary()}"]
    stack = [(_entries(view, max_children), 0, "", 0)]
    while stack:
        entries, i, prefix, depth = stack.pop()
        if i == len(entries):
            continue
        stack.append((entries, i + 1, prefix, depth))
        key, child = entries[i]
        last = i == len(entries) - 1
        if child is None:
            lines.append(f"{prefix}└── {key}")
            continue
        lines.append(f"{prefix}{'└── ' if last else '├── '}{key}  {child.summary()}")
        if len(child) and (max_depth is None or depth + 1 < max_depth):
            pad = prefix + ("    " if last else "│   ")
            stack.append((_entries(child, max_children), 0, pad, depth + 1))
    return "\n".join(lines)


def render_html(view: LegacyView, max_children: int = 200) -> str:
    """A collapsible HTML tree (``<details>`` elements) for notebooks."""

    def label(v: LegacyView, key: str) -> str:
        summary = html.escape(v.summary())
        return f"<b>{html.escape(key)}</b> <span style='color:#666'>{summary}</span>"

    out = [f"<div class='tinystore-tree'><details open><summary>{label(view, '/' + view.path)}"]
    out.append("</summary><ul>")
    stack: list = [iter(_entries(view, max_children))]
    while stack:
        entry = next(stack[-1], None)
        if entry is None:
            stack.pop()
            out.append("</ul></details></li>" if stack else "</ul></details></div>")
            continue
        key, child = entry
        if child is None:
            out.append(f"<li>{html.escape(key)}</li>")
        elif len(child):
            out.append(f"<li><details><summary>{label(child, key)}</summary><ul>")
            stack.append(iter(_entries(child, max_children)))
        else:
            out.append(f"<li>{label(child, key)}</li>")
    return "".join(out)


def summarize(view: LegacyView) -> dict:
    """What ``info()`` returns for a legacy node: tinystore's keys plus
    ``lost`` and ``opaque`` (lists of ``{"path", "type"}``) and ``layouts``."""
    kinds: Counter = Counter()
    types: Counter = Counter()
    layouts: Counter = Counter()
    lost, opaque = [], []
    leaf_bytes = 0
    stack = [view]
    while stack:
        v = stack.pop()
        kinds[v.kind] += 1
        if v.kind != "group":
            types[v.type] += 1
        if "layout" in v.attrs:
            layouts[v.attrs["layout"]] += 1
        if v.lost:
            lost.append({"path": v.path, "type": v.type})
        if v.opaque:
            opaque.append({"path": v.path, "type": v.type, "pickle": v.opaque})
        if isinstance(v._obj, h5py.Dataset):
            leaf_bytes += v.nbytes
        else:
            stack.extend(reversed(v.children))
    return {
        "nodes": sum(kinds.values()),
        "kinds": dict(kinds),
        "types": dict(types.most_common(20)),
        "leaf_bytes": leaf_bytes,
        "fallbacks": len(opaque),
        "versions": {},
        "format": "legacy (h5io / pyiron_base)",
        "layouts": dict(layouts),
        "lost": lost,
        "opaque": opaque,
    }
