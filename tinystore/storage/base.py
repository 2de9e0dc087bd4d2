"""The abstract, dict-like storage group every backend implements.

The user-facing side of :class:`GenericStorage` is a mutable mapping of
paths (``s["a/b/c"]``) with ``create_group``, ``list_nodes``/``list_groups``,
``get``, ``in``, ``len``, iteration in insertion order and a context
manager.  A backend implements only the *developer contract*, one key at a
time (tinybase's contract, with the single-key primitives underscored so the
base class can validate keys, walk paths and pass objects through the codec
once, for every backend):

``_get(key)``
    the leaf stored at ``key``, or a ``GenericStorage`` for a group or an
    object node; raises ``KeyError`` if there is none.
``_set(key, value)``
    store a leaf or a :class:`Tree` (a whole encoded subtree, in one call).
``_delete(key)``
    remove a child; raises ``KeyError`` if there is none.
``_create_group(key)``
    create (or return the existing) child group.
``_list()``
    ``[(key, is_group), ...]`` in insertion order.
``path``, ``attrs``, ``is_group``, ``readonly``, ``_close()``
    identity (``name`` is the last key of ``path``), metadata side channel
    and life cycle.

The storage layer knows nothing of Python objects: a backend stores leaves
(:mod:`tinystore.storage.leaves`) and trees of them.  Anything else is handed
to :attr:`GenericStorage.codec` (the object model, attached by
:func:`tinystore.open`), which turns it into a :class:`Tree` and back.
"""

from __future__ import annotations

import abc
import gc
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager, nullcontext
from typing import Any, Protocol

from tinystore._paths import split_path
from tinystore.errors import (
    InvalidKeyError,
    NodeNotFoundError,
    ReadOnlyError,
    UnsupportedValueError,
)
from tinystore.storage.leaves import is_leaf

__all__ = ["GenericStorage", "Tree", "GroupTree", "LeafInfo", "Codec"]


@contextmanager
def no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large tree is built or read.

    Every container created triggers collections that scan everything alive
    and find nothing (all of it is in use); for big objects that made saving
    and loading several times slower.  The previous state is restored.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Tree:
    """An encoded subtree: metadata ``attrs`` and ordered ``children``.

    ``children`` is a dict of key -> leaf or Tree, or a list (its keys are
    then the indices ``"0"``, ``"1"``, ...), which stores sequences compactly.
    ``attrs`` holds JSON-compatible values only (str keys; None, bool, int,
    float, str, lists and dicts of them).  A child may also be a container
    the codec declares in ``plain_nodes`` (see :class:`Codec`): it stands for
    a Tree with the attrs declared for its type and its items as children.
    Trees read from a store may share attrs dicts: treat them as read-only.
    """

    __slots__ = ("attrs", "children")

    def __init__(self, attrs: dict | None = None, children: dict | list | None = None):
        self.attrs = {} if attrs is None else attrs
        self.children = {} if children is None else children

    def items(self):
        c = self.children
        return zip(map(str, range(len(c))), c) if type(c) is list else c.items()

    def __repr__(self) -> str:
        return f"Tree(attrs={self.attrs!r}, children={self.children!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tree):
            return NotImplemented
        return self.attrs == other.attrs and self.children == other.children


def read_for_codec(storage: GenericStorage) -> Tree:
    """``storage._read_tree()`` for decoding: with the codec's ``plain_maker``
    (see :class:`Codec`) where the backend takes it."""
    if storage._takes_plain_nodes:
        return storage._read_tree(plain=getattr(storage.codec, "plain_maker", None))
    return storage._read_tree()


#: Metadata key that marks, for backends of the plain developer contract, a
#: node whose children were a sequence (they hold them as keys "0", "1", ...).
SEQUENCE_ATTR = "@seq"


def for_contract(tree: Tree, plain: dict | None) -> Tree:
    """``tree`` as the developer contract's ``_set`` takes it: only leaves and
    Trees (the codec's plain containers become Trees), and children always a
    dict, a sequence marked by :data:`SEQUENCE_ATTR` (undone by ``_read_tree``).
    A new tree; ``tree`` is left as it is."""
    plain = plain or {}
    root = Tree()
    stack = [(tree, root)]
    while stack:
        src, dst = stack.pop()
        c = src.children
        dst.attrs = dict(src.attrs)
        if type(c) is list:
            dst.attrs[SEQUENCE_ATTR] = 1
        out = {}
        for k, v in enumerate(c) if type(c) is list else c.items():
            vt = type(v)
            if vt in plain:
                v = Tree(plain[vt], dict(v) if vt is dict else list(v))
                vt = Tree
            if vt is Tree:
                sub = Tree()
                stack.append((v, sub))
                v = sub
            out[str(k) if type(c) is list else k] = v
        dst.children = out
    return root


class GroupTree(Tree):
    """A group (root or ``create_group``) in a tree read for browsing only."""

    __slots__ = ()


class LeafInfo:
    """A leaf that was not read (browsing): its type name, shape, dtype and size."""

    __slots__ = ("type", "shape", "dtype", "nbytes")

    def __init__(self, type: str, shape: tuple | None = None, dtype: Any = None, nbytes: int = 0):
        self.type = type
        self.shape = shape
        self.dtype = dtype
        self.nbytes = nbytes

    def __repr__(self) -> str:
        if self.shape is not None:
            return f"<{self.type} {self.dtype} {self.shape}>"
        return f"<{self.type} of {self.nbytes} bytes>"


class Codec(Protocol):
    """What a storage needs from an object model.

    Two optional attributes let small containers skip being Trees (a list of
    10,000 tuples is then 10,000 tuples, not 10,000 Trees, on the way in and
    out):

    * ``plain_nodes``: ``{type: attrs}``; ``encode`` may leave a container of
      such a type in a tree as it is, standing for a node with those attrs
      and its items (leaves) as children.
    * ``plain_maker(attrs)``: for the attrs of a small node of plain values,
      ``(build, children_type)``: ``build`` makes, from the node's children
      (a ``children_type``, list or dict, which it must not keep), the value
      to put in the tree instead of a Tree; or None to get a Tree (as for
      children of the other type).  Storages that read trees faster so may
      use it.
    """

    def encode(self, obj: Any, storage: GenericStorage, path: str) -> Any: ...

    def check_replace(self, storage: GenericStorage, path: str) -> Any: ...

    def decode(self, node: Any, storage: GenericStorage) -> Any: ...


class GenericStorage(MutableMapping, abc.ABC):
    """Abstract hierarchical storage: a group of named leaves, objects and groups."""

    #: The object model that turns non-leaf values into trees and back; set
    #: by :func:`tinystore.open`.  ``None``: only leaves and trees are stored.
    codec: Codec | None = None

    # ------------------------------------------------------------------
    # developer contract
    @abc.abstractmethod
    def _get(self, key: str) -> Any:
        """Leaf at ``key`` or a storage for the group/object node there."""

    @abc.abstractmethod
    def _set(self, key: str, value: Any) -> None:
        """Store a leaf or a :class:`Tree` at ``key`` (replacing what was there)."""

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Remove ``key``; raise ``KeyError`` if it does not exist."""

    @abc.abstractmethod
    def _create_group(self, key: str) -> GenericStorage:
        """Create the child group ``key``, or return it if it exists."""

    @abc.abstractmethod
    def _list(self) -> list[tuple[str, bool]]:
        """``(key, is_group)`` for every child, in insertion order."""

    @property
    def name(self) -> str:
        """The last key of :attr:`path` (``""`` for the root)."""
        return self.path.rsplit("/", 1)[-1]

    @property
    @abc.abstractmethod
    def path(self) -> str:
        """Path of this group from the root of its file, ``""`` for the root."""

    @property
    @abc.abstractmethod
    def attrs(self) -> MutableMapping:
        """Metadata of this group, kept apart from its keys."""

    @property
    def is_group(self) -> bool:
        """True for groups (root, ``create_group``); False for stored objects."""
        return True

    @property
    def readonly(self) -> bool:
        return False

    def _close(self) -> None:
        """Release the file behind this storage (backends override)."""

    def _session(self, write: bool = False) -> Any:
        """Context that holds the backend (lock, handles) over one user operation."""
        return nullcontext()

    def _transaction(self) -> Any:
        """Context in which writes happen all together or not at all (if supported)."""
        return nullcontext()

    def _reopen(self) -> None:
        """Open the file again after :meth:`close` (backends override)."""

    def _root(self) -> GenericStorage | None:
        """The root group of the file this group belongs to, if the backend knows it."""
        return None

    #: True if ``_set`` accepts the codec's plain containers in trees (see
    #: :class:`Codec`); otherwise they are turned into Trees before ``_set``.
    _takes_plain_nodes = False

    def _read_tree(self, lazy: bool = False, plain: Any = None) -> Tree:
        """This node as a Tree with every leaf read (backends may speed it up).

        ``lazy=True`` is for browsing: groups come back as :class:`GroupTree`
        and a backend may give :class:`LeafInfo` for leaves it did not read.
        ``plain``: the codec's ``plain_maker``, which a backend may apply.
        """
        root = (GroupTree if lazy and self.is_group else Tree)(dict(self.attrs), {})
        stack = [(self, root)]
        trees = [root]
        while stack:
            storage, tree = stack.pop()
            for key, _ in storage._list():
                value = storage._get(key)
                if isinstance(value, GenericStorage):
                    cls = GroupTree if lazy and value.is_group else Tree
                    child = cls(dict(value.attrs), {})
                    stack.append((value, child))
                    trees.append(child)
                    value = child
                tree.children[key] = value
        for tree in trees:  # sequences, as for_contract marked them
            if tree.attrs.pop(SEQUENCE_ATTR, None):
                tree.children = list(tree.children.values())
        return root

    # ------------------------------------------------------------------
    # user interface, the same for every backend
    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyError(f"{self!r} is read-only; open it with mode 'a' to write")

    def _full(self, path: str) -> str:
        return f"{self.path}/{path}" if self.path else path

    def _walk(
        self, parts: list[str], *, create: bool = False, full: list[str] | None = None
    ) -> GenericStorage:
        node = self
        for i, key in enumerate(parts):
            try:
                child = node._get(key)
            except KeyError:
                if not create:
                    raise self._not_found(full or parts, i) from None
                child = node._create_group(key)
            if not isinstance(child, GenericStorage):
                raise self._not_found(full or parts, i, f"is a {type(child).__name__} leaf")
            node = child
        return node

    def _not_found(
        self, parts: list[str], i: int, why: str = "does not exist"
    ) -> NodeNotFoundError:
        wanted = self._full("/".join(parts))
        at = self._full("/".join(parts[: i + 1]))
        detail = "" if i == len(parts) - 1 and why == "does not exist" else f" ({at!r} {why})"
        return NodeNotFoundError(f"no node {wanted!r} in {self._where()}{detail}")

    def _where(self) -> str:
        return repr(self)

    def _lookup(self, path: str) -> tuple[GenericStorage, str]:
        parts = split_path(path)
        return self._walk(parts[:-1], full=parts), parts[-1]

    def __getitem__(self, path: str) -> Any:
        with self._session(), no_gc():
            return self._getitem(path)

    def _getitem(self, path: str) -> Any:
        parent, key = self._lookup(path)
        try:
            value = parent._get(key)
        except KeyError:
            raise NodeNotFoundError(f"no node {self._full(path)!r} in {self._where()}") from None
        if isinstance(value, GenericStorage) and not value.is_group and self.codec is not None:
            return self.codec.decode(read_for_codec(value), value)
        return value

    def _encode(self, value: Any, path: str) -> Any:
        if type(value) is Tree:
            return value if self._takes_plain_nodes else for_contract(value, None)
        if self.codec is not None:
            node = self.codec.encode(value, self, path)
            if not self._takes_plain_nodes and type(node) is Tree:
                node = for_contract(node, getattr(self.codec, "plain_nodes", None))
            return node
        if is_leaf(value):
            return value
        raise UnsupportedValueError(
            f"{type(value).__name__} is not a storage leaf and this storage has no "
            "object codec; open it with tinystore.open() to store any object"
        )

    def __setitem__(self, path: str, value: Any) -> None:
        self._check_writable()
        parts = split_path(path)
        with self._session(write=True), no_gc():
            node = self._encode(value, self._full(path))
            with self._transaction():  # parents created on the way go too if the write fails
                self._walk(parts[:-1], create=True)._set(parts[-1], node)

    def __delitem__(self, path: str) -> None:
        self._check_writable()
        with self._session(write=True):
            self._delitem(path)

    def _delitem(self, path: str) -> None:
        parent, key = self._lookup(path)
        if self.codec is not None and not parent.is_group:
            self.codec.check_replace(self, self._full(path))
        try:
            parent._delete(key)
        except KeyError:
            raise NodeNotFoundError(f"no node {self._full(path)!r} in {self._where()}") from None

    def __contains__(self, path: object) -> bool:
        with self._session():
            try:
                parent, key = self._lookup(path)  # type: ignore[arg-type]
            except (InvalidKeyError, NodeNotFoundError):
                return False
            return any(k == key for k, _ in parent._list())

    def __iter__(self) -> Iterator[str]:
        with self._session():
            return iter([key for key, _ in self._list()])

    def __len__(self) -> int:
        with self._session():
            return len(self._list())

    def get(self, path: str, default: Any = None) -> Any:
        """``self[path]`` if it exists, else ``default``."""
        try:
            return self[path]
        except NodeNotFoundError:
            return default

    def create_group(self, path: str) -> GenericStorage:
        """Create the group at ``path`` (and its parents); return it.

        An existing group is returned as it is, so notebook cells can be
        re-run; a stored value at ``path`` raises ``ValueError``.
        """
        self._check_writable()
        parts = split_path(path)
        with self._session(write=True):
            parent = self._walk(parts[:-1], create=True)
            try:
                existing = parent._get(parts[-1])
            except KeyError:
                return parent._create_group(parts[-1])
            is_group = isinstance(existing, GenericStorage) and existing.is_group
        if is_group:
            return existing
        raise InvalidKeyError(
            f"cannot create group {self._full(path)!r}: a value is stored there; delete it first"
        )

    require_group = create_group

    def list_nodes(self) -> list[str]:
        """Keys of the stored values (leaves and objects), in insertion order."""
        with self._session():
            return [key for key, is_group in self._list() if not is_group]

    def list_groups(self) -> list[str]:
        """Keys of the child groups, in insertion order."""
        with self._session():
            return [key for key, is_group in self._list() if is_group]

    def update(self, other: Any = (), /, **kw: Any) -> None:  # type: ignore[override]
        """Store many items; backends may write them in one batch."""
        with self.batch():
            MutableMapping.update(self, other, **kw)

    def batch(self):
        """Context manager that groups writes (backends may defer them)."""
        return nullcontext(self)

    def _ipython_key_completions_(self) -> list[str]:
        return list(self)

    def _peek(self, key: str) -> Any:
        """Like ``_get``, but may return :class:`LeafInfo` instead of reading a big leaf."""
        return self._get(key)

    # browsing (the object model interprets the metadata)
    def _codec_or_raise(self) -> Codec:
        if self.codec is None:
            raise UnsupportedValueError(
                "browsing needs the object model; open the storage with tinystore.open()"
            )
        return self.codec

    def node(self, path: str = "") -> Any:
        """A lazy view of the node at ``path``: kind, type, versions, shape, children.

        Nothing is imported or built until the view's ``to_object()`` is called.
        """
        with self._session():
            return self._codec_or_raise().view(self, path)

    def tree(self, path: str = "", max_depth: int | None = None, max_children: int = 50) -> str:
        """A text tree of the node at ``path`` (the whole storage by default)."""
        return self.node(path).tree(max_depth=max_depth, max_children=max_children)

    def info(self, path: str = "") -> dict:
        """Counts and sizes: nodes by kind, types, leaf bytes, fallbacks, versions."""
        with self._session():
            return self._codec_or_raise().info(self, path)

    def _repr_html_(self) -> str:
        if self.codec is None:
            return f"<pre>{repr(self)}</pre>"
        return self.node()._repr_html_()

    # life cycle
    def close(self) -> None:
        """Close the file behind this storage (and every group of it)."""
        self._close()

    def open(self) -> GenericStorage:
        """Open the storage again after :meth:`close`; returns ``self``."""
        self._reopen()
        return self

    def __enter__(self) -> GenericStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'/' + self.path!r}>"

    # a storage is a live handle, not a value
    __hash__ = object.__hash__

    def __eq__(self, other: object) -> bool:
        return self is other
