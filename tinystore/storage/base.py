"""The abstract, dict-like storage group every backend implements.

A backend implements only the **developer contract** (the seed's, with
tinybase's listing), one key at a time:

``__getitem__(key)``
    the leaf stored at ``key``, or a ``GenericStorage`` for a child group;
    ``KeyError`` if there is none.
``_set(key, value)``
    store ``value`` at ``key`` if the backend can store it natively,
    replacing what was there; raise ``TypeError`` otherwise (the base class
    then decomposes the value into groups and leaves it can store).
``__delitem__(key)``
    remove a leaf or a group; ``KeyError`` if there is none.
``create_group(key)``
    create (or return the existing) child group.
``name``
    the key of this group in its parent (``""`` for the root).
``list_nodes()`` / ``list_groups()``
    keys of the leaves / of the child groups.

How the base class stands between the user and the backend: a subclass's
contract methods are moved, when the class is created
(:meth:`GenericStorage.__init_subclass__`), to ``_contract_<name>``
(``_contract_getitem``, ``_contract_delitem``, ``_contract_create_group``,
``_contract_list_nodes``, ``_contract_list_groups``), and the public names
get the base class's user API, which takes paths (``"a/b/c"``), validates
them (:mod:`tinystore._paths`), passes values through the codec and calls
the backend's methods one key at a time.  So ``s["x"]`` is the stored
*object* on every backend, while the backend wrote a single-key
``__getitem__``.

Everything a backend *may* add for speed is an optional capability, named
in :attr:`GenericStorage.supports` (data, like zarr's ``supports_writes``);
the base class has a correct, slower default for each (see
``docs/extending.rst``).  Metadata (an object's type and version, sharing,
the order of keys, group attrs) is kept by the base class in a leaf under
the reserved key :data:`META_KEY`; keys starting with
:data:`tinystore._paths.RESERVED_PREFIX` are refused for users, so it never
collides with theirs.

The storage layer knows nothing of Python objects: it stores leaves
(:mod:`tinystore.storage.leaves`), groups and trees of them.  Anything else
is handed to :attr:`GenericStorage.codec` (the object model, attached by
:func:`tinystore.open`), which turns it into a :class:`Tree` and back
through the :class:`Codec` protocol.
"""

from __future__ import annotations

import abc
import gc
from collections.abc import Iterator, MutableMapping
from contextlib import nullcontext
from typing import Any, Callable, ClassVar, Protocol

import numpy as np
import orjson

from tinystore._paths import RESERVED_PREFIX, check_key, join_path, split_path
from tinystore.errors import (
    CorruptStoreError,
    InvalidKeyError,
    NodeNotFoundError,
    ReadOnlyError,
    StorageClosedError,
    UnsupportedValueError,
)
from tinystore.storage.leaves import decode_inline, encode_inline, is_leaf

__all__ = ["GenericStorage", "Tree", "GroupTree", "LeafInfo", "Codec", "META_KEY"]


class no_gc:  # noqa: N801 - used as a function: ``with no_gc():``
    """Pause the cyclic garbage collector while a large tree is built or read.

    Every container created triggers collections that scan everything alive
    and find nothing (all of it is in use); for big objects that made saving
    and loading several times slower.  The previous state is restored.
    (A class, not a generator: it is entered several times per operation.)
    """

    __slots__ = ("enabled",)

    def __enter__(self) -> None:
        self.enabled = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
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

    Two declarations let each side skip a walk the other side has done
    (see :class:`Codec`); None/False (the default) claims nothing, and
    whoever changes ``children`` after setting one resets it:

    * ``others`` (set by a codec with ``plain_exact``): None, or the keys
      (list indices) of the children that are *not* JSON-exact atoms, in
      the order of the children; every other child is one (an ASCII
      ``str``, an ``int`` of 64 bits, a finite ``float``, ``bool``,
      ``None``), and every key is a valid key.  A storage then copies the
      children at once and looks at the listed ones only.
    * ``flat`` (set by a storage that reads a tree): True if no child is a
      Tree, so the codec need not look for one.
    """

    __slots__ = ("attrs", "children", "others", "flat")

    def __init__(self, attrs: dict | None = None, children: dict | list | None = None):
        self.attrs = {} if attrs is None else attrs
        self.children = {} if children is None else children
        self.others: list | None = None
        self.flat = False

    def items(self):
        c = self.children
        return zip(map(str, range(len(c))), c) if type(c) is list else c.items()

    def __repr__(self) -> str:
        return f"Tree(attrs={self.attrs!r}, children={self.children!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tree):
            return NotImplemented
        return self.attrs == other.attrs and self.children == other.children


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
    """What a storage needs from an object model: the whole seam, declared.

    Storage calls exactly these; the object model uses only the public
    methods of :class:`GenericStorage` (its user API plus the seam methods
    :meth:`~GenericStorage.read_tree`, :meth:`~GenericStorage.replace_root`,
    :meth:`~GenericStorage.root_group`,
    :meth:`~GenericStorage.enclosing_object`, :attr:`~GenericStorage.location`).

    * ``encode(obj, storage, path)``: a leaf or a :class:`Tree` for ``obj``,
      about to be stored at ``path`` (from the root of ``storage``'s file).
    * optional ``load_inside(storage, path)``: ``(True, object)`` for a path
      inside a stored object that has no stored node of its own (a row of a
      list stored as a table), else ``(False, None)``; ``storage[path]`` asks
      it before raising :class:`~tinystore.errors.NodeNotFoundError`.
    * ``check_replace(storage, path)``: before a partial update or delete
      inside a stored object; raises if it would break sharing.
    * ``decode(node, storage)``: the object for a node read by
      ``storage.read_tree(plain=True)``.
    * ``view(storage, path)`` / ``info(storage, path)``: browsing
      (``storage.node()``, ``storage.info()``).
    * ``plain_nodes``: ``{type: attrs}``; ``encode`` may leave a container
      of such a type in a tree as it is, standing for a node with those attrs
      and its items (leaves) as children: a ``dict`` for keyed children,
      any other type for a sequence.
    * ``plain_maker(attrs)``: for the attrs of a small node of plain values,
      ``(build, children_type)``: ``build`` makes, from the node's children
      (a ``children_type``, list or dict, which it must not keep), the value
      to put in the tree instead of a Tree; or None to get a Tree.  Storages
      that read trees faster so may use it.

    * ``plain_exact`` (optional, default False): True promises that every
      value in those containers is one plain JSON carries exactly (an ASCII
      ``str``, an ``int`` of 64 bits, a finite ``float``, ``bool``,
      ``None``); record storages then write a container without checking
      each value again.  Such a codec may also declare, on a Tree it
      encodes, which children are not JSON-exact atoms (``Tree.others``):
      the storage copies the other children at once, without a look at
      each.  The other way, a storage that reads a tree marks the Trees with
      no Tree child (``Tree.flat``), so the codec need not look for one.

    With these, a list of 10,000 tuples is 10,000 tuples on the way in
    and out, not 10,000 Trees, and a dict of 1,000 numbers is looked at
    once on the way in (by the codec) and once on the way out.
    """

    plain_nodes: dict

    def encode(self, obj: Any, storage: GenericStorage, path: str) -> Any: ...

    def check_replace(self, storage: GenericStorage, path: str) -> Any: ...

    def decode(self, node: Any, storage: GenericStorage) -> Any: ...

    def view(self, storage: GenericStorage, path: str) -> Any: ...

    def info(self, storage: GenericStorage, path: str) -> dict: ...

    def plain_maker(self, attrs: dict) -> tuple[Callable[[Any], Any], type] | None: ...


#: The leaf in which the base class keeps a node's metadata on backends that
#: have no native metadata (a JSON string: see :func:`_dump_meta`).
META_KEY = RESERVED_PREFIX + "meta"
#: The leaf holding a leaf the backend could not store natively (encoded).
DATA_KEY = RESERVED_PREFIX + "data"

#: Contract method name -> the base class method that takes its public name.
_CONTRACT = {
    "__getitem__": "_api_getitem",
    "__delitem__": "_api_delitem",
    "create_group": "_api_create_group",
    "list_nodes": "_api_list_nodes",
    "list_groups": "_api_list_groups",
}


def _contract_name(name: str) -> str:
    return "_contract_" + name.strip("_")


def _dump_meta(meta: dict) -> str:
    """Metadata as the JSON string kept under :data:`META_KEY`.

    Keys: ``a`` the node's attrs, ``o`` 1 for a stored object's node (absent:
    a group), ``s`` 1 if its children are a sequence, ``k`` the order of its
    keys, ``l`` 1 for a leaf kept encoded under :data:`DATA_KEY`.
    """
    try:
        return orjson.dumps(meta).decode()
    except TypeError as exc:
        raise UnsupportedValueError(f"metadata must be JSON-compatible: {exc}") from exc


class GenericStorage(MutableMapping, abc.ABC):
    """Abstract hierarchical storage: a group of named leaves, objects and groups."""

    #: The object model that turns non-leaf values into trees and back; set
    #: by :func:`tinystore.open`.  ``None``: only leaves and trees are stored.
    codec: Codec | None = None

    #: Optional capabilities of the backend (see ``docs/extending.rst``):
    #:
    #: ``"trees"``: ``_set`` takes a whole :class:`Tree` in one call;
    #: ``"plain_nodes"``: ... including the codec's plain containers;
    #: ``"ordered"``: ``_list()`` gives ``[(key, is_group), ...]`` in insertion order;
    #: ``"node_meta"``: ``is_group`` and ``attrs`` are the backend's own;
    #: ``"paths"``: ``path`` is the backend's own;
    #: ``"root"``: ``_root()`` gives the root group of the file;
    #: ``"sessions"``: ``_session(write)`` and ``_transaction()`` contexts;
    #: ``"peek"``: ``_peek(key)`` may give :class:`LeafInfo` for a big leaf;
    #: ``"read_tree"``: ``_read_tree(lazy, plain)`` reads a node at once;
    #: ``"replace_root"``: ``_replace_root(tree)`` replaces the whole store;
    #: ``"flush"``: ``_flush()`` writes pending data.
    supports: ClassVar[frozenset] = frozenset()

    # set by the base class on the groups a backend hands out (unless "paths"/"root")
    _ts_path: str = ""
    _ts_root: GenericStorage | None = None
    # the state of a root handle on backends without "sessions" (see open/close)
    _ts_closed: bool = False
    _ts_readonly: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Move the subclass's contract methods aside and give their public
        names the user API (see the module docstring)."""
        super().__init_subclass__(**kwargs)
        for name, api in _CONTRACT.items():
            impl = cls.__dict__.get(name)
            if impl is not None and not getattr(impl, "_ts_api", False):
                setattr(cls, _contract_name(name), impl)
                setattr(cls, name, getattr(GenericStorage, api))

    # ------------------------------------------------------------------
    # the developer contract
    @abc.abstractmethod
    def __getitem__(self, key: str) -> Any:
        """The leaf at ``key``, or the child group (a storage); ``KeyError`` if none."""

    @abc.abstractmethod
    def _set(self, key: str, value: Any) -> None:
        """Store ``value`` at ``key`` natively, or raise ``TypeError``."""

    @abc.abstractmethod
    def __delitem__(self, key: str) -> None:
        """Remove ``key`` (a leaf or a group); ``KeyError`` if it does not exist."""

    @abc.abstractmethod
    def create_group(self, key: str) -> GenericStorage:
        """Create the child group ``key``, or return it if it exists."""

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """The key of this group in its parent (``""`` for the root)."""

    @abc.abstractmethod
    def list_nodes(self) -> list[str]:
        """Keys of the leaves of this group."""

    @abc.abstractmethod
    def list_groups(self) -> list[str]:
        """Keys of the child groups of this group."""

    # ------------------------------------------------------------------
    # what a backend may override (each with a default that works on the contract)
    @property
    def path(self) -> str:
        """Path of this group from the root of its file, ``""`` for the root."""
        return self._ts_path

    @property
    def location(self) -> str:
        """Where this storage lives, for messages (a file name, a URL)."""
        return repr(self.root_group())

    @property
    def readonly(self) -> bool:
        """True if this handle refuses writes (``open(mode="r")``)."""
        return self.root_group()._ts_readonly

    @property
    def is_group(self) -> bool:
        """True for groups (root, ``create_group``); False for stored objects."""
        meta = self._meta()
        return not (meta.get("o") or meta.get("l"))

    @property
    def attrs(self) -> MutableMapping:
        """Metadata of this group, kept apart from its keys."""
        return _MetaAttrs(self)

    def _close(self) -> None:
        """Release the file behind this storage (backends override)."""

    def _reopen(self) -> None:
        """Open the file again after :meth:`close` (backends override)."""

    def _session(self, write: bool = False) -> Any:
        return nullcontext()

    def _transaction(self) -> Any:
        return nullcontext()

    # ------------------------------------------------------------------
    # the seam: what the object model uses besides the user API
    def root_group(self) -> GenericStorage:
        """The root group of the file this group belongs to."""
        if "root" in self.supports:
            return self._root()
        return self._ts_root if self._ts_root is not None else self

    def enclosing_object(self, path: str) -> GenericStorage | None:
        """The outermost stored object (not a group) on the way from the root of
        the file to ``path`` (from that root; ``path`` itself included), or
        None if there is none (or the path does not exist)."""
        node = self.root_group()
        if not node.is_group:
            return node
        for key in split_path(path) if path else ():
            try:
                node = node._child(key)
            except KeyError:
                return None
            if not isinstance(node, GenericStorage):
                return None
            if not node.is_group:
                return node
        return None

    def read_slice(self, path: str, selection: Any) -> Any:
        """``selection`` (numpy indexing: slices, ints, ``...``, index lists,
        boolean masks) of the array leaf stored at ``path``, reading only the
        bytes it needs where the backend can (HDF5 hyperslabs, a memory map of
        an ``.npy`` file); other backends read the array and index it.
        ``TypeError`` if the node is not an array."""
        with self._hold_session():
            parent, key = self._lookup(path)
            try:
                return parent._slice(key, selection)
            except KeyError:
                raise self._missing(path) from None

    def _slice(self, key: str, selection: Any) -> Any:
        """The capability behind :meth:`read_slice` (this default reads it all)."""
        value = self._child(key)
        if type(value) is not np.ndarray:
            raise TypeError(f"{join_path(self.path, key)!r} is not an array")
        part = value[selection]
        return part.copy() if isinstance(part, np.ndarray) and part.base is not None else part

    def read_tree(self, path: str = "", *, lazy: bool = False, plain: bool = False) -> Any:
        """The node at ``path`` as stored: a :class:`Tree` (or a leaf), nothing decoded.

        ``lazy=True`` is for browsing: groups come back as :class:`GroupTree`
        and a backend may give :class:`LeafInfo` for leaves it did not read.
        ``plain=True``: let the codec's ``plain_maker`` build small plain nodes.
        """
        with self._hold_session():
            if not path:
                return self._tree_of(lazy, plain)
            parent, key = self._lookup(path)
            try:
                if lazy and "peek" in parent.supports:
                    value = parent._peek(key)
                else:
                    value = parent._child(key)
            except KeyError:
                raise self._missing(path) from None
            if isinstance(value, GenericStorage):
                return value._tree_of(lazy, plain)
            return value

    def replace_root(self, tree: Tree) -> None:
        """Make ``tree`` the whole content of the store (``tinystore.save``)."""
        self._check_writable()
        if self.path:
            raise InvalidKeyError("only the root of a store can be replaced")
        with self._write_session():
            if "replace_root" in self.supports:
                self._replace_root(tree)
                return
            _check_node(tree, self._plain_nodes())
            with self._transaction():
                for key in self._contract_list_nodes() + self._contract_list_groups():
                    self._contract_delitem(key)
                self._write_node(self, tree, self._plain_nodes(), root=True)

    def hold(self) -> Any:
        """Keep the store open and locked for a block of reads (faster, consistent)."""
        return self._hold_session()

    def batch(self) -> Any:
        """Group many writes: on backends with transactions, all or nothing, at once."""
        return self._transaction() if "sessions" in self.supports else nullcontext(self)

    def atomic(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as one transaction, as in a :meth:`batch` block.

        A backend whose writers resolve conflicts by running the transaction
        again on another writer's commit (icechunk) may call ``fn`` several
        times: it must do nothing but read and write this store.
        """
        with self.batch():
            return fn(*args)

    def flush(self) -> None:
        """Write everything pending to the file now."""
        if "flush" in self.supports:
            self._flush()

    # ------------------------------------------------------------------
    # the user interface, the same for every backend
    def _api_getitem(self, path: str) -> Any:
        """The object stored at ``path``, or a storage for a group."""
        with self._hold_session(), no_gc():
            try:
                parent, key = self._lookup(path)
                try:
                    value = parent._child(key)
                except KeyError:
                    raise self._missing(path) from None
            except NodeNotFoundError:
                # a part of a stored object that has no node of its own (a row
                # of a list stored column by column): the codec may find it
                inside = getattr(self.codec, "load_inside", None)
                found, value = inside(self, path) if inside is not None else (False, None)
                if not found:
                    raise
                return value
            if isinstance(value, GenericStorage) and not value.is_group and self.codec is not None:
                return self.codec.decode(value._tree_of(False, True), value)
            return value

    def __setitem__(self, path: str, value: Any) -> None:
        self._check_writable()
        parts = split_path(path)
        with self._write_session(), no_gc():
            if type(value) is Tree or self.codec is None:
                node = value  # trees are stored as they are (tinystore.cli convert)
            else:
                node = self.codec.encode(value, self, join_path(self.path, path))
            with self._transaction():  # parents created on the way go too if the write fails
                self._walk(parts[:-1], create=True)._store_node(parts[-1], node)

    def _api_delitem(self, path: str) -> None:
        """Delete the node at ``path`` (a value, a part of one, or a group)."""
        self._check_writable()
        with self._write_session():
            parent, key = self._lookup(path)
            if self.codec is not None and not parent.is_group:
                self.codec.check_replace(self, join_path(self.path, path))
            with self._transaction():
                try:
                    parent._remove(key)
                except KeyError:
                    raise self._missing(path) from None

    def _api_create_group(self, path: str) -> GenericStorage:
        """Create the group at ``path`` (and its parents); return it.

        An existing group is returned as it is, so notebook cells can be
        re-run; a stored value at ``path`` raises ``InvalidKeyError``.
        """
        self._check_writable()
        parts = split_path(path)
        with self._write_session():
            parent = self._walk(parts[:-1], create=True)
            try:
                existing = parent._child(parts[-1])
            except KeyError:
                return parent._new_group(parts[-1])
            if isinstance(existing, GenericStorage) and existing.is_group:
                return existing
        raise InvalidKeyError(
            f"cannot create group {join_path(self.path, path)!r}: a value is stored there; "
            "delete it first"
        )

    _api_create_group._ts_api = True  # type: ignore[attr-defined]
    _api_getitem._ts_api = True  # type: ignore[attr-defined]
    _api_delitem._ts_api = True  # type: ignore[attr-defined]

    def require_group(self, path: str) -> GenericStorage:
        """Like :meth:`create_group` (an existing group is returned)."""
        return self.create_group(path)

    def _api_list_nodes(self) -> list[str]:
        """Keys of the stored values (leaves and objects), in insertion order."""
        with self._hold_session():
            return [key for key, is_group in self._keys() if not is_group]

    def _api_list_groups(self) -> list[str]:
        """Keys of the child groups, in insertion order."""
        with self._hold_session():
            return [key for key, is_group in self._keys() if is_group]

    _api_list_nodes._ts_api = True  # type: ignore[attr-defined]
    _api_list_groups._ts_api = True  # type: ignore[attr-defined]

    def __contains__(self, path: object) -> bool:
        with self._hold_session():
            try:
                parent, key = self._lookup(path)  # type: ignore[arg-type]
                parent._child(key)
            except (InvalidKeyError, NodeNotFoundError, KeyError):
                return False
            return True

    def __iter__(self) -> Iterator[str]:
        with self._hold_session():
            return iter([key for key, _ in self._keys()])

    def __len__(self) -> int:
        with self._hold_session():
            return len(self._keys())

    def get(self, path: str, default: Any = None) -> Any:
        """``self[path]`` if it exists, else ``default``."""
        try:
            return self[path]
        except NodeNotFoundError:
            return default

    def update(self, other: Any = (), /, **kw: Any) -> None:  # type: ignore[override]
        """Store many items; backends may write them in one batch."""
        with self.batch():
            MutableMapping.update(self, other, **kw)

    def _ipython_key_completions_(self) -> list[str]:
        return list(self)

    # browsing: the object model's (see tinystore.objects.browse)
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
        with self._hold_session():
            return self._codec_or_raise().view(self, path)

    def tree(self, path: str = "", max_depth: int | None = None, max_children: int = 50) -> str:
        """A text tree of the node at ``path`` (the whole storage by default)."""
        return self.node(path).tree(max_depth=max_depth, max_children=max_children)

    def info(self, path: str = "") -> dict:
        """Counts and sizes: nodes by kind, types, leaf bytes, fallbacks, versions."""
        with self._hold_session():
            return self._codec_or_raise().info(self, path)

    def _repr_html_(self) -> str:
        if self.codec is None:
            return f"<pre>{repr(self)}</pre>"
        return self.node()._repr_html_()

    # life cycle
    def close(self) -> None:
        """Close the file behind this storage (and every group of it)."""
        self.root_group()._ts_closed = True
        self._close()

    def open(self, mode: str | None = None) -> GenericStorage:
        """Open the storage again after :meth:`close`; returns ``self``.

        ``mode="r"`` makes the handle read-only, any other mode writable (for
        backends without modes of their own: the built-in ones take the mode
        when they are opened).
        """
        root = self.root_group()
        root._ts_closed = False
        if mode is not None:
            root._ts_readonly = mode == "r"
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

    # ------------------------------------------------------------------
    # internals: paths, sessions
    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyError(f"{self!r} is read-only; open it with mode 'a' to write")

    def _hold_session(self) -> Any:
        if "sessions" in self.supports:
            return self._session()
        self._check_open()
        return nullcontext()

    def _write_session(self) -> Any:
        if "sessions" in self.supports:
            return self._session(write=True)
        self._check_open()
        return nullcontext()

    def _check_open(self) -> None:
        if self.root_group()._ts_closed:
            raise StorageClosedError(f"{self.location} is closed; call .open() first")

    def _plain_nodes(self) -> dict:
        return self.codec.plain_nodes if self.codec is not None else {}

    def _plain_exact(self) -> bool:
        """True if the codec promises ``plain_exact`` (see :class:`Codec`)."""
        return self.codec is not None and getattr(self.codec, "plain_exact", False) is True

    def _missing(self, path: str) -> NodeNotFoundError:
        return NodeNotFoundError(f"no node {join_path(self.path, path)!r} in {self.location}")

    def _walk(self, parts: list[str], *, create: bool = False, full: Any = None) -> GenericStorage:
        node = self
        for i, key in enumerate(parts):
            try:
                child = node._child(key)
            except KeyError:
                if not create:
                    raise self._not_found(full or parts, i) from None
                child = node._new_group(key)
            if not isinstance(child, GenericStorage):
                raise self._not_found(full or parts, i, f"is a {type(child).__name__} leaf")
            node = child
        return node

    def _not_found(self, parts: list[str], i: int, why: str = "does not exist") -> Exception:
        wanted = join_path(self.path, "/".join(parts))
        at = join_path(self.path, "/".join(parts[: i + 1]))
        detail = "" if i == len(parts) - 1 and why == "does not exist" else f" ({at!r} {why})"
        return NodeNotFoundError(f"no node {wanted!r} in {self.location}{detail}")

    def _lookup(self, path: str) -> tuple[GenericStorage, str]:
        parts = split_path(path)
        return self._walk(parts[:-1], full=parts), parts[-1]

    # ------------------------------------------------------------------
    # internals: one key, through the contract (and the capabilities)
    def _adopt(self, child: GenericStorage, key: str) -> GenericStorage:
        """A group the backend handed out, knowing its path, root and codec."""
        if "paths" not in self.supports:
            child._ts_path = join_path(self.path, key)
        if "root" not in self.supports:
            child._ts_root = self.root_group()
        child.codec = self.codec
        return child

    def _child(self, key: str) -> Any:
        """The leaf at ``key`` or the storage of the node there; ``KeyError``."""
        value = self._contract_getitem(key)
        if isinstance(value, GenericStorage):
            value = self._adopt(value, key)
            if "trees" not in self.supports:  # maybe a leaf the base class encoded
                meta = value._meta()
                if meta.get("l"):
                    return _decode_leaf(value)
        return value

    def _meta(self) -> dict:
        """The metadata the base class keeps for this node ({} if none)."""
        try:
            raw = self._contract_getitem(META_KEY)
        except KeyError:
            return {}
        try:
            meta = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise CorruptStoreError(f"the metadata of {self!r} is damaged: {exc}") from exc
        return meta if type(meta) is dict else {}

    def _set_meta(self, meta: dict) -> None:
        if meta:
            self._set(META_KEY, _dump_meta(meta))
        elif META_KEY in self._contract_list_nodes():
            self._contract_delitem(META_KEY)

    def _keys(self) -> list[tuple[str, bool]]:
        """``[(key, is_group), ...]`` of this node, in insertion order."""
        if "ordered" in self.supports:
            return self._list()
        meta = self._meta()
        out = []
        for key in self._ordered_keys(meta):
            value = self._contract_getitem(key)
            out.append((key, isinstance(value, GenericStorage) and value.is_group))
        return out

    def _ordered_keys(self, meta: dict) -> list[str]:
        groups = self._contract_list_groups()
        present = [
            k for k in self._contract_list_nodes() + groups if not k.startswith(RESERVED_PREFIX)
        ]
        if meta.get("s"):
            return sorted(present, key=int)
        known = set(present)
        order = [k for k in meta.get("k", ()) if k in known]
        listed = set(order)
        return order + [k for k in present if k not in listed]

    def _new_group(self, key: str) -> GenericStorage:
        if not self.is_group:
            raise InvalidKeyError(
                f"cannot create group {join_path(self.path, key)!r} inside a stored object"
            )
        if "ordered" not in self.supports:
            self._note_key(key)
        return self._adopt(self._contract_create_group(key), key)

    def _note_key(self, key: str) -> None:
        """Record ``key`` in this node's key order (backends without ``"ordered"``)."""
        meta = self._meta()
        if meta.get("s"):
            n = len(self._ordered_keys(meta))
            if not (key.isdigit() and int(key) <= n and (key == "0" or key[0] != "0")):
                raise InvalidKeyError(
                    f"{join_path(self.path, key)!r}: this node holds a sequence; its keys are "
                    f"the indices 0..{n - 1} (or {n} to append)"
                )
            return
        order = meta.get("k", [])
        if key not in order:
            meta["k"] = order + [key]
            self._set_meta(meta)

    def _store_node(self, key: str, node: Any) -> None:
        """Store an encoded ``node`` (a leaf or Tree) at ``key``, replacing what was there."""
        plain = self._plain_nodes()
        nt = type(node)
        if nt is Tree or nt in plain:
            if "trees" in self.supports:
                if nt is not Tree or "plain_nodes" not in self.supports:
                    node = _without_plain(node, plain)
                self._set(key, node)
                return
        elif "trees" in self.supports:
            self._set(key, node)  # native leaves and TypeError: the backend's
            return
        _check_node(node, plain)  # a failed write changes nothing: check all first
        self._replace_child(key)
        self._write_node(self, node, plain, key=key)

    def _replace_child(self, key: str) -> None:
        """Before a write at ``key`` on a backend without ``"trees"``: note a new key,
        remove an old group (a leaf is replaced by ``_set``)."""
        try:
            old = self._contract_getitem(key)
        except KeyError:
            self._note_key(key)
            return
        if isinstance(old, GenericStorage):
            self._contract_delitem(key)

    def _write_node(
        self, parent: GenericStorage, node: Any, plain: dict, key: str = "", root: bool = False
    ) -> None:
        """Decompose ``node`` into the groups and leaves the backend stores
        (``root``: into ``parent`` itself, for :meth:`replace_root`)."""
        stack = [(parent, key, node, root)]
        while stack:
            group, k, value, inplace = stack.pop()
            vt = type(value)
            if vt in plain:
                value = Tree(plain[vt], dict(value) if vt is dict else list(value))
                vt = Tree
            if vt is not Tree:
                try:
                    group._set(k, value)
                    continue
                except TypeError:
                    if not is_leaf(value):
                        raise UnsupportedValueError(
                            f"cannot store {vt.__name__} at {join_path(group.path, k)!r}"
                        ) from None
                child = group._contract_create_group(k)
                child._set(DATA_KEY, orjson.dumps(encode_inline(value)).decode())
                child._set(META_KEY, _dump_meta({"l": 1}))
                continue
            child = group if inplace else group._contract_create_group(k)
            meta: dict = {"o": 1}
            if value.attrs:
                meta["a"] = value.attrs
            children = value.children
            if type(children) is list:
                meta["s"] = 1
                items = [(str(i), v) for i, v in enumerate(children)]
            else:
                for name in children:
                    check_key(name) if type(name) is str else _bad_key(name)
                meta["k"] = list(children)
                items = list(children.items())
            child._set(META_KEY, _dump_meta(meta))
            stack.extend((child, ck, cv, False) for ck, cv in reversed(items))

    def _remove(self, key: str) -> None:
        """Delete ``key`` (``KeyError`` if absent), keeping the key order."""
        if "ordered" in self.supports:
            self._contract_delitem(key)
            return
        meta = self._meta()
        keys = self._ordered_keys(meta)
        if key not in keys:
            raise KeyError(key)
        self._contract_delitem(key)
        if meta.get("s"):  # the later items move up one place, as in a list
            for i in range(int(key) + 1, len(keys)):
                self._move(str(i), str(i - 1))
        elif key in meta.get("k", ()):
            meta["k"] = [k for k in meta["k"] if k != key]
            self._set_meta(meta)

    def _move(self, src: str, dst: str) -> None:
        value = self._child(src)
        node = value._tree_of(False, False) if isinstance(value, GenericStorage) else value
        self._contract_delitem(src)
        self._write_node(self, node, {}, key=dst)

    def _tree_of(self, lazy: bool, plain: bool) -> Tree:
        """This node as a Tree, every leaf read (``lazy``: for browsing)."""
        if "read_tree" in self.supports:
            maker = self.codec.plain_maker if plain and self.codec is not None else None
            return self._read_tree(lazy, maker)
        meta = self._meta()
        group = lazy and not meta.get("o")
        root = (GroupTree if group else Tree)(dict(meta.get("a", {})), {})
        stack = [(self, root, meta)]
        while stack:
            storage, tree, meta = stack.pop()
            children = {}
            for key in storage._ordered_keys(meta):
                value = storage._contract_getitem(key)
                if isinstance(value, GenericStorage):
                    sub = value._meta()
                    if sub.get("l"):
                        value = _decode_leaf(value)
                    else:
                        cls = GroupTree if lazy and not sub.get("o") else Tree
                        child = cls(dict(sub.get("a", {})), {})
                        stack.append((value, child, sub))
                        value = child
                children[key] = value
            tree.children = list(children.values()) if meta.get("s") else children
        return root


def _decode_leaf(storage: GenericStorage) -> Any:
    """A leaf the base class stored encoded (see ``_write_node``)."""
    return decode_inline(orjson.loads(storage._contract_getitem(DATA_KEY)))


def _check_node(node: Any, plain: dict) -> None:
    """Raise if ``node`` holds anything but leaves, Trees (with valid keys and
    JSON-compatible attrs) and the codec's plain containers of leaves."""
    stack = [node]
    while stack:
        value = stack.pop()
        vt = type(value)
        if vt is Tree or vt in plain:
            children = value.children if vt is Tree else value
            if vt is Tree:
                _dump_meta(value.attrs)
            if type(children) is dict:
                for name in children:
                    check_key(name) if type(name) is str else _bad_key(name)
                stack.extend(children.values())
            else:
                stack.extend(children)
        elif not is_leaf(value):
            raise UnsupportedValueError(f"cannot store {vt.__name__}: not a leaf or Tree")


def _bad_key(key: Any) -> None:
    raise InvalidKeyError(f"Tree keys must be str, not {type(key).__name__}")


def _without_plain(tree: Any, plain: dict) -> Tree:
    """``tree`` with the codec's plain containers turned into Trees (a new tree)."""
    vt = type(tree)
    if vt in plain:
        tree = Tree(plain[vt], dict(tree) if vt is dict else list(tree))
    root = Tree(tree.attrs, None)
    stack = [(tree, root)]
    while stack:
        src, dst = stack.pop()
        c = src.children
        out: Any = [] if type(c) is list else {}
        for k, v in enumerate(c) if type(c) is list else c.items():
            t = type(v)
            if t in plain:
                v = Tree(plain[t], dict(v) if t is dict else list(v))
                t = Tree
            if t is Tree:
                sub = Tree(v.attrs, None)
                stack.append((v, sub))
                v = sub
            if type(out) is list:
                out.append(v)
            else:
                out[k] = v
        dst.children = out
    return root


class _MetaAttrs(MutableMapping):
    """The attrs of a group on a backend without native metadata (in its meta leaf)."""

    def __init__(self, storage: GenericStorage):
        self._s = storage

    def _data(self) -> dict:
        return self._s._meta().get("a", {})

    def __getitem__(self, key: str) -> Any:
        return self._data()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data()))

    def __len__(self) -> int:
        return len(self._data())

    def _change(self, change: Callable[[dict], None]) -> None:
        s = self._s
        s._check_writable()
        meta = s._meta()
        if meta.get("o") or meta.get("l"):
            raise ReadOnlyError("the metadata of a stored object is written by the object model")
        attrs = dict(meta.get("a", {}))
        change(attrs)
        if attrs:
            meta["a"] = attrs
        else:
            meta.pop("a", None)
        s._set_meta(meta)

    def __setitem__(self, key: str, value: Any) -> None:
        if type(key) is not str:
            raise InvalidKeyError("attribute names must be str")
        self._change(lambda a: a.__setitem__(key, value))

    def __delitem__(self, key: str) -> None:
        if key not in self._data():
            raise KeyError(key)
        self._change(lambda a: a.__delitem__(key))

    def __repr__(self) -> str:
        return f"<attrs {self._data()!r}>"
