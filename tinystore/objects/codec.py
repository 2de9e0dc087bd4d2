"""The object codec a storage uses to store any object: encode + decode + options."""

from __future__ import annotations

import sys
from typing import Any, Callable, Iterable, Iterator

import tinystore.objects.adapters  # noqa: F401  (registers the built-in adapters)
import tinystore.objects.recipe  # noqa: F401
import tinystore.objects.storable  # noqa: F401
from tinystore._paths import join_path
from tinystore.errors import (
    NodeNotFoundError,
    SharedNodeError,
    TinystoreError,
    UnsafeLoadError,
    UnsupportedValueError,
)
from tinystore.objects import table
from tinystore.objects.browse import NodeView, summarize
from tinystore.objects.budget import check_call as check_budget
from tinystore.objects.contents import anchor_finder
from tinystore.objects.decode import PLAIN_KINDS, Decoder
from tinystore.objects.encode import PLAIN_NODES, Encoder
from tinystore.objects.versions import PYTHON, check_versions, record_versions
from tinystore.storage.base import GenericStorage, Tree
from tinystore.storage.base import no_gc as _no_gc

#: Classes and functions that ``safe=True`` loading may *call* to rebuild an
#: object (exact ``module:qualname`` names, never prefixes).  None of them can
#: be made to run code, touch files, or allocate more than the file holds.
SAFE_CALLABLES = frozenset(
    [
        "builtins:complex",
        "builtins:range",
        "builtins:slice",
        "collections:OrderedDict",
        "collections:defaultdict",
        "collections:deque",
        "collections:Counter",
        "datetime:datetime",
        "datetime:date",
        "datetime:time",
        "datetime:timedelta",
        "datetime:timezone",
        "decimal:Decimal",
        "fractions:Fraction",
        "uuid:UUID",
        "pathlib:PurePosixPath",
        "pathlib:PureWindowsPath",
        "pathlib:PosixPath",
        "pathlib:WindowsPath",
        "pathlib:Path",
        "numpy:dtype",
    ]
)
#: Callables that turn any iterable into a container: only stored data may feed them.
_MATERIALISING = frozenset(["collections:deque", "collections:Counter"])


def _name_of(obj: Any) -> str | None:
    """``module:qualname`` of a class or function, if that name leads back to it."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if type(module) is not str or type(qualname) is not str:
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is obj else None


#: ``copyreg.__newobj__(cls, *args)`` calls ``cls.__new__``: allowed for these classes.
_NEWOBJ = frozenset(["copyreg:__newobj__", "copyreg:__newobj_ex__"])

#: Names ``safe=True`` loading may *import* (as values, or for the calls above).
SAFE_GLOBALS = (
    SAFE_CALLABLES
    | _NEWOBJ
    | frozenset(
        [
            "builtins:list",
            "builtins:dict",
            "builtins:tuple",
            "builtins:set",
            "builtins:frozenset",
            "builtins:bytearray",
            "builtins:object",
            "builtins:Ellipsis",
            "builtins:NotImplemented",
            "builtins:type",  # called only as type(None), type(...), type(NotImplemented)
        ]
    )
)


def _singleton_type_args(args: Any) -> bool:
    """True for the arguments of ``type(None)``, ``type(...)``, ``type(NotImplemented)``."""
    return type(args) is tuple and len(args) == 1 and any(args[0] is x for x in _SINGLETONS)


_SINGLETONS = (None, ..., NotImplemented)


def _child(node: Any, key: str) -> Any:
    if type(node) is not Tree:
        return None
    c = node.children
    if type(c) is list:
        i = table.item_index(key, len(c))
        return None if i is None else c[i]
    return c.get(key)


def _refuse_inside_table(path: str, table_parts: list) -> None:
    raise UnsupportedValueError(
        f"cannot replace or delete {path!r} in place: the list at "
        f"{'/'.join(table_parts)!r} is stored as a table (column by column, see "
        "docs/format.rst); save the whole list instead"
    )


def _scan_sharing(root: Tree, target: Any) -> tuple[int, list[str]]:
    """Largest anchor in ``root``; references from outside ``target`` into it."""
    inside = {
        node.attrs["id"]
        for node in _trees(target)
        if "id" in node.attrs and node.attrs.get("t") != "ref"
    }
    top = -1
    hits: list = []
    # (node, index of parent entry, key) with a parent table, so paths are built only on a hit
    parents: list = []
    stack2: list = [(root, -1, "")]
    while stack2:
        node, parent, key = stack2.pop()
        if type(node) is not Tree:
            continue
        attrs = node.attrs
        anchor = attrs.get("id")
        if type(anchor) is int and anchor > top:
            top = anchor
        if node is target:
            continue
        me = len(parents)
        parents.append((parent, key))
        if any(p in inside for p in _pointers(attrs)):
            parts = []
            i = me
            while i > 0:  # up to the root (index 0), whose key is ""
                i, k = parents[i]
                parts.append(k)
            hits.append("/".join(reversed(parts)))
        c = node.children
        items = enumerate(c) if type(c) is list else c.items()
        stack2.extend((child, me, str(k)) for k, child in items)
    return top, hits


def _pointers(attrs: dict) -> list:
    """The anchors a node refers to: a ref's target, an alias, and what a
    cloudpickle part needs (the parts before it, the objects it refers to)."""
    kind = attrs.get("t")
    if kind == "ref":
        return [attrs.get("r")]
    if kind == "cloudpickle":
        refs = attrs.get("refs")
        out = [attrs.get("st"), attrs.get("prev"), *(refs if type(refs) is list else ())]
        return [a for a in out if a is not None and a != attrs.get("id")]
    alias = attrs.get("alias")
    return [] if alias is None else [alias]


def _trees(tree: Any) -> Iterator[Tree]:
    """Every Tree node in ``tree`` (itself included), without recursion."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is Tree:
            yield node
            c = node.children
            stack.extend(c if type(c) is list else c.values())


def _max_anchor(tree: Any) -> int:
    anchors = (node.attrs.get("id") for node in _trees(tree))
    return max((a for a in anchors if type(a) is int), default=-1)


def _table_row(storage: GenericStorage, path: str) -> Any:
    """The node of a row of a table (or of a part of that row) at ``path``, read
    from the table's columns (only the row's item of those outside the
    record); None if ``path`` is not inside a table."""
    parts = path.split("/")
    for cut in range(len(parts) - 1, 0, -1):
        head = "/".join(parts[:cut])
        try:
            node = storage.read_tree(head, lazy=True)
        except NodeNotFoundError:
            continue
        if type(node) is not Tree or node.attrs.get("t") != "table":
            return None

        def read(keys: tuple, i: int, head: str = head) -> Any:
            return storage.read_slice("/".join((head, *keys)), slice(i, i + 1))

        row = table.row_node(node, parts[cut], read)
        for key in parts[cut + 1 :]:
            row = _child(row, key)
        return row
    return None


def _view_inside(codec: ObjectCodec, storage: GenericStorage, path: str) -> NodeView | None:
    """A node reached by a name the stored layout does not use, e.g. a DataFrame
    column by its own name (``"table/energy"`` for ``table/data/energy``):
    the view of its parent, asked for the last part."""
    head, _, last = path.rpartition("/")
    if not head and storage.is_group:
        return None  # a group's children are all stored nodes
    try:
        return codec.view(storage, head)[last]
    except (NodeNotFoundError, KeyError):
        return None


def _enclosing_locator(storage: GenericStorage, path: str) -> Callable[[int], Any] | None:
    """For browsing a node inside a stored object: ``locate(anchor)`` over that
    whole object (read for browsing on first use), so references resolve."""
    head = path.rpartition("/")[0]
    outer = storage.root_group().enclosing_object(join_path(storage.path, head))
    if outer is None:
        return None  # the node is a whole stored object: its view finds its anchors
    cache: list = []

    def locate(anchor: int) -> Any:
        if not cache:
            cache.append(anchor_finder(outer.read_tree(lazy=True)))
        return cache[0](anchor)

    return locate


class ObjectCodec:
    """Encodes any picklable object into a :class:`Tree` and back.

    ``cloudpickle_fallback``: store parts that cannot be decomposed as
    cloudpickle bytes instead of raising.  ``reducers``: ``{type: reducer}``
    used before everything else, like ``pickle.Pickler.dispatch_table``.
    ``safe``: import only :data:`SAFE_GLOBALS` plus ``allow`` (exact
    ``"module:qualname"`` names) and never unpickle.
    """

    def __init__(
        self,
        *,
        cloudpickle_fallback: bool = False,
        reducers: dict | None = None,
        safe: bool = False,
        allow: Iterable[str] = (),
        version_check: Any = "warn",
    ):
        self.version_check = version_check
        self.cloudpickle_fallback = cloudpickle_fallback
        self.reducers = dict(reducers or {})
        self.safe = safe
        self.allow = frozenset(allow)
        if safe or self.allow:
            bad = [name for name in self.allow if ":" not in name or name.endswith("*")]
            if bad:
                raise ValueError(
                    f"allow= takes exact 'module:qualname' names, not {bad!r}; prefixes "
                    "and wildcards are not safe"
                )

    #: containers the encoder may leave in trees as they are (see storage.base.Codec)
    plain_nodes = PLAIN_NODES
    plain_exact = True  # see encode._exact_plain

    @staticmethod
    def plain_maker(attrs: dict) -> tuple[Callable[[Any], Any], type] | None:
        """How to rebuild a small node of plain values with these attrs straight
        from its children (see storage.base.Codec): the builtin containers."""
        kind = attrs.get("t")
        if len(attrs) != 1 or type(kind) is not str:  # an anchor, an alias, kv form, damage
            return None
        return PLAIN_KINDS.get(kind)  # new objects: the children may be a storage's

    def _check(self) -> Callable[[str], None] | None:
        if not (self.safe or self.allow):
            return None
        allowed = SAFE_GLOBALS | self.allow

        def check(name: str) -> None:
            if name not in allowed:
                raise UnsafeLoadError(
                    f"safe loading refuses to import {name}; if you trust it, pass allow=[{name!r}]"
                )

        return check

    def _check_call(self) -> Callable[[Any, Any], None] | None:
        if not (self.safe or self.allow):
            return None
        callables = SAFE_CALLABLES | self.allow

        def check_call(func: Any, args: Any) -> None:
            name = _name_of(func)
            if name in _NEWOBJ:  # copyreg.__newobj__(cls, *args) calls cls.__new__
                cls = args[0] if type(args) is tuple and args else None
                name = _name_of(cls)
            if name == "builtins:type" and _singleton_type_args(args):
                return  # type(None): how pickle stores NoneType (its save_type)
            if name not in callables:
                raise UnsafeLoadError(
                    f"safe loading refuses to call {name or repr(func)[:60]}; if you trust "
                    f"it, pass allow=[{name!r}]"
                )
            check_budget(name, args)
            if name in _MATERIALISING and not all(
                type(a) in (list, tuple, dict, int, type(None)) for a in args
            ):
                raise UnsafeLoadError(f"safe loading refuses {name} of a computed iterable")

        return check_call

    def encode(self, obj: Any, storage: GenericStorage | None = None, path: str = "") -> Any:
        encoder = Encoder(
            reducers=self.reducers, cloudpickle_fallback=self.cloudpickle_fallback, path=path
        )
        if storage is not None and path:
            top = self.check_replace(storage, path)
            if top is not None:
                encoder.anchors = top + 1  # ids stay unique within the enclosing object
        with _no_gc():
            node = encoder.encode(obj)
        if type(node) is Tree:
            node.attrs = dict(node.attrs)  # it may be shared with other nodes
            if encoder.globals:
                versions = record_versions(encoder.globals)
                if versions:
                    node.attrs["versions"] = versions
                node.attrs["python"] = PYTHON
            if encoder.fallbacks:
                node.attrs["fallbacks"] = len(encoder.fallbacks)
        return node

    def check_replace(self, storage: GenericStorage, path: str) -> int | None:
        """Before a partial update/delete at ``path``: refuse to break sharing.

        ``path`` is relative to the root of ``storage``'s file.  Returns the
        largest anchor of the enclosing stored object (None when ``path`` is
        not inside a stored object).  Raises if the node being replaced holds
        an object that other parts of the enclosing object refer to: an update
        in place would silently give those parts a different object.
        """
        parts = path.split("/")
        outer = storage.root_group().enclosing_object("/".join(parts[:-1]))
        if outer is None:
            return None
        depth = len(outer.path.split("/")) if outer.path else 0
        tree = outer.read_tree(lazy=True)
        target: Any = tree
        for i, key in enumerate(parts[depth:]):
            if type(target) is Tree and target.attrs.get("t") == "table":
                _refuse_inside_table(path, parts[: depth + i])
            if type(target) is Tree and target.attrs.get("t") == "ref":
                # (its children would be written where no load looks)
                raise SharedNodeError(
                    f"cannot replace or delete {path!r} in place: "
                    f"{'/'.join(parts[: depth + i])!r} is a reference to an object stored "
                    "elsewhere in the enclosing object; update it where it is stored"
                )
            target = _child(target, key)
            if target is None:
                break
        top, hits = _scan_sharing(tree, target) if target is not None else (_max_anchor(tree), [])
        if hits:
            where = ", ".join(sorted({"/".join(filter(None, [outer.path, h])) for h in hits}))
            raise SharedNodeError(
                f"cannot replace or delete {path!r} in place: the object stored there is "
                f"shared with {where} (stored as a reference). Save the whole enclosing "
                f"object {outer.path or '/'!r} instead"
            )
        return top

    def decode(self, node: Any, storage: GenericStorage | None = None, top: bool = False) -> Any:
        """The object ``node`` (read from ``storage``) stands for; ``top``: ``node``
        is the outermost stored object itself (its attrs hold the versions)."""
        locate = None
        if storage is not None:
            locate = self._locator(storage)
        if type(node) is Tree and self.version_check != "ignore":
            if top or "python" in node.attrs:
                recorded = node.attrs
            else:
                recorded = self._root_attrs(storage)
            where = f"'/{storage.path}'" if storage is not None else "the stored object"
            check_versions(recorded, self.version_check, where)
        decoder = Decoder(
            check=self._check(),
            check_call=self._check_call(),
            allow_pickle=not (self.safe or self.allow),
            locate=locate,
            path=storage.path if storage is not None else "",
        )
        with _no_gc():
            return decoder.decode(node)

    @staticmethod
    def _object_root(storage: GenericStorage) -> GenericStorage | None:
        """The outermost stored object containing ``storage`` (None if unknown)."""
        return storage.root_group().enclosing_object(storage.path)

    def _root_attrs(self, storage: GenericStorage | None) -> dict:
        if storage is None:
            return {}
        root = self._object_root(storage)
        return dict(root.attrs) if root is not None else {}

    # -- browsing -----------------------------------------------------------------
    def view(self, storage: GenericStorage, path: str = "") -> NodeView:
        if not path:
            return NodeView(storage, "", storage.read_tree(lazy=True))
        try:
            value = storage.read_tree(path, lazy=True)
        except NodeNotFoundError:
            row = _table_row(storage, path)
            if row is not None:
                view = NodeView(storage, path, row, {})
                view.in_table = True
                return view
            found = _view_inside(self, storage, path)
            if found is not None:
                return found
            raise
        return NodeView(storage, path, value, locate=_enclosing_locator(storage, path))

    def load_inside(self, storage: GenericStorage, path: str) -> tuple[bool, Any]:
        """``(True, object)`` for a node inside a list stored as a table (a row,
        or a part of one: ``"particles/3"``, ``"pairs/7/2"``), which has no
        stored node of its own; ``(False, None)`` for any other path."""
        try:
            node = _table_row(storage, path)
        except (TinystoreError, KeyError, ValueError, TypeError):
            return False, None
        if node is None:
            return False, None
        if type(node) is not Tree:
            return True, node  # an item of a row: a number or a string
        outer = storage.root_group().enclosing_object(join_path(storage.path, path))
        return True, self.decode(node, outer)

    def load_root(self, storage: GenericStorage) -> Any:
        """The object saved as the whole content of a file (``save`` without ``path``)."""
        if storage.is_group:
            keys = list(storage)
            raise NodeNotFoundError(
                f"{storage.location} holds a group of {len(keys)} nodes ({', '.join(keys[:10])}"
                f"{', ...' if len(keys) > 10 else ''}), not one saved object; pass path=..."
            )
        # the root is the stored object: its own attrs hold the versions
        return self.decode(storage.read_tree(plain=True), storage, top=not storage.path)

    def info(self, storage: GenericStorage, path: str = "") -> dict:
        return summarize(self.view(storage, path))

    @staticmethod
    def _locator(storage: GenericStorage) -> Callable[[int], Any]:
        """Find anchors outside a partially loaded node: in its outermost object."""
        cache: list = []

        def locate(anchor: int) -> Any:
            if not cache:
                node = ObjectCodec._object_root(storage)
                if node is None:
                    return None
                # one index of the object's anchors (a fallback part loaded alone
                # looks up every part before it)
                cache.append(anchor_finder(node.read_tree()))
            return cache[0](anchor) if cache[0] is not None else None

        return locate
