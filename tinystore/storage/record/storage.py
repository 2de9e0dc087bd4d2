"""RecordStorage: a group of a record-packed store (the built-in backends)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from tinystore._paths import join_path
from tinystore.errors import (
    CorruptStoreError,
    InvalidKeyError,
    ReadOnlyError,
    StorageClosedError,
    UnsupportedValueError,
)
from tinystore.storage.base import GenericStorage, Tree
from tinystore.storage.record import packing
from tinystore.storage.record.format import (
    MAX_INPLACE_DEPTH,
    GPath,
    Record,
    _at,
    _child_entry,
    _children_entries,
    _leaf_info,
    _target,
    copy_attrs,
    own_attrs,
)
from tinystore.storage.record.physical import Physical
from tinystore.storage.record.transactions import _Store


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


def _in_place(rec: Record, tree: Tree) -> dict | None:
    """The entry of ``tree`` written in place in the record ``rec`` of the
    physical group it is assigned into, or None if it gets a physical group
    of its own.  The size rule: one node of at most
    :data:`~tinystore.storage.record.packing.MAX_INPLACE_CHILDREN` children
    that are all JSON values (a dict of scalars, a short tuple or list of
    them), the form any small node of a stored object takes in its record
    (``{"@<n>": children}``, or a shape's, docs/format.rst).  Such a value costs a few
    bytes of its parent's record, where a group of its own costs a
    directory, a record (JSON) or an HDF5 group and dataset."""
    return packing.flat_entry(rec, tree)


class RecordStorage(GenericStorage):
    """A group of a record-packed store; base class of the built-in backends.

    Subclasses create their :class:`Physical` in ``__init__`` and call
    :meth:`_init_root`; every group object of one open store shares it.
    """

    _store: _Store
    _gpath: GPath
    _inner: tuple

    def _init_root(self, physical: Physical) -> None:
        self._store = _Store(physical)
        self._gpath = ()
        self._inner = ()
        self._group = None
        self._path = ""

    @classmethod
    def _view(
        cls, parent: RecordStorage, gpath: GPath, inner: tuple, key: str, group: bool = False
    ) -> RecordStorage:
        view = cls.__new__(cls)
        view._store = parent._store
        view._gpath = gpath
        view._inner = inner
        #: what the entry that names this node says it is: a group or not
        #: (None: the root, either); its record must agree (see ``_node``)
        view._group = group
        view._path = f"{parent._path}/{key}" if parent._path else key
        view.codec = parent.codec
        return view

    def _root(self) -> RecordStorage:
        root = self._view(self, (), (), "", None)
        root._path = ""
        return root

    # -- node resolution ------------------------------------------------
    def _node(self, materialize: bool = False) -> dict:
        """This group's node; ``materialize``: give an embedded node a table entry
        first, so that it can be changed (and its children become any node)."""
        rec = self._store.record(self._gpath)
        node = rec.nodes[0]
        inner = self._inner
        if not inner:
            group = self._group
            if group is not None and bool(node.get("g")) is not group:
                raise self._mismatch(group)
            return node
        where = self._store.describe(self._gpath)
        depth = 0  # levels of nodes in place below a table node, as a load counts them
        for key in inner:
            try:
                entry = _child_entry(node, key)
            except KeyError:
                entry = None
            at = _at(entry, rec, where)
            if at is None:
                raise StorageClosedError(f"{self!r} no longer exists (it was replaced or deleted)")
            if type(at) is dict:
                depth += 1
                if depth > MAX_INPLACE_DEPTH:
                    raise packing.too_deep(where)
                if materialize:
                    # (node is a table node already: the keys before were made so)
                    children = node["c"]
                    children[int(key) if type(children) is list else key] = {"@": len(rec.nodes)}
                    rec.nodes.append(at)
                    rec.compact = False
            else:
                depth = 0
            node = _target(rec.nodes, at)
            if type(node) is dict and node.get("g"):  # (not a dict: read_tree says what)
                raise packing.misplaced_group(where, self._path)
        return node

    def _mismatch(self, group: bool) -> Exception:
        """The error for a record that is not what the entry naming this view
        said (``group``): damage if its parent's entry still says so, else this
        handle is stale (its name now holds another kind of node)."""
        store = self._store
        name = self._gpath[-1]
        for e in _children_entries(store.record(self._gpath[:-1]).nodes[0]):
            if type(e) is dict and e.get("G") == name and bool(e.get("g")) is group:
                return packing.misplaced_group(store.describe(self._gpath), self._path, group)
        return StorageClosedError(
            f"{store.describe(self._gpath)} no longer exists (it was deleted or replaced); "
            "this handle to it is stale"
        )

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

    @property
    def location(self) -> str:
        return self._store.physical.location

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    def __repr__(self) -> str:
        closed = " (closed)" if self._store.closed else ""
        return f"<{type(self).__name__} '/{self._path}' in {self.location!r}{closed}>"

    # -- plain containers (see base.Codec) ------------------------------------
    supports = frozenset(
        [
            "trees",
            "plain_nodes",
            "ordered",
            "node_meta",
            "paths",
            "root",
            "sessions",
            "peek",
            "read_tree",
            "replace_root",
            "flush",
        ]
    )

    # -- developer contract ----------------------------------------------
    def _get(self, key: str) -> Any:
        node = self._node()
        entry = _child_entry(node, key)
        if type(entry) is dict or type(entry) is list:
            store = self._store
            if _at(entry, store.record(self._gpath), store.describe(self._gpath)) is not None:
                return self._view(self, self._gpath, self._inner + (key,), key)
            if "G" in entry:
                where = store.describe(self._gpath)
                group = bool(entry.get("g"))
                if group and (self._inner or not node.get("g")):
                    raise packing.misplaced_group(where, join_path(self._path, key))
                name = store.physical.check_name(entry["G"], where, "G")
                return self._view(self, self._gpath + (name,), (), key, group)
        return self._store.value(self._gpath, entry)

    def _slice(self, key: str, selection: Any) -> Any:
        entry = _child_entry(self._node(), key)
        if type(entry) is dict and "X" in entry and entry.get("k") == "A":
            return self._store.external_slice(self._gpath, entry, selection)
        return super()._slice(key, selection)

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
        elif type(children) is not dict and type(children) is not list:
            raise CorruptStoreError(
                f"{self._store.describe(self._gpath)} holds a node whose children are a "
                f"{type(children).__name__}; the record is damaged"
            )
        rec = self._store.record(self._gpath)
        nodes = rec.nodes
        where = self._store.describe(self._gpath)
        out = []
        in_group = not self._inner and bool(node.get("g"))  # (``_node`` checked it)
        pairs = enumerate(children) if type(children) is list else children.items()
        for k, e in pairs:
            is_group = False
            if type(e) is dict:
                if "G" in e:
                    is_group = bool(e.get("g"))
                    if is_group and not in_group:
                        raise packing.misplaced_group(where, join_path(self._path, str(k)))
                else:
                    at = _at(e, rec, where)
                    if at is not None and _target(nodes, at).get("g"):  # never in a record
                        raise packing.misplaced_group(where, join_path(self._path, str(k)))
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
                        f"{join_path(self._path, key)!r}: this node holds a sequence; its "
                        f"keys are the indices 0..{len(children) - 1} "
                        f"(or {len(children)} to append)"
                    ) from None
            if exists:
                store.discard(self._gpath, old)  # clears rec.compact if nodes go
            count = len(rec.nodes)
            entry = make_entry(store, rec)
            if type(children) is list:
                if exists:
                    children[int(key)] = entry
                else:
                    children.append(entry)
            else:
                children[key] = entry
            if len(rec.nodes) != count or (type(entry) is dict and type(entry.get("@")) is int):
                rec.compact = False  # else the node table is as canonical as it was
            rec.dirty = True

    def _set(self, key: str, value: Any) -> None:
        physical_level = not self._inner

        def make_entry(store: _Store, rec: Record) -> Any:
            if type(value) is Tree:
                if physical_level:
                    entry = _in_place(rec, value)
                    if entry is not None:  # a small flat value: in this record
                        return entry
                    return store.new_physical(
                        self._gpath,
                        rec,
                        key,
                        value,
                        group=False,
                        plain=self._plain_nodes(),
                        exact=self._plain_exact(),
                    )
                inner = packing.path_cell(self._inner + (key,))
                plain = self._plain_nodes()
                return {
                    "@": packing.add_tree(
                        store,
                        self._gpath,
                        rec,
                        value,
                        plain=plain,
                        inner=inner,
                        exact=self._plain_exact(),
                    )
                }
            try:
                inner = packing.path_cell(self._inner)
                return store.leaf_entry(self._gpath, rec, key, value, inner)
            except TypeError:
                raise UnsupportedValueError(
                    f"cannot store {type(value).__name__} at {join_path(self._path, key)!r}"
                ) from None

        self._put(key, make_entry)

    def _create_group(self, key: str) -> GenericStorage:
        self._check_writable()
        if self._inner or not self.is_group:
            raise InvalidKeyError(
                f"cannot create group {join_path(self._path, key)!r} inside a stored object"
            )
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
        self._node()  # (refuses a group where an object is, or nodes in place too deep)
        index: Any = 0
        depth = 0  # levels in place below the table node: a load counts on from there
        if self._inner:
            rec = self._store.record(self._gpath)
            node = rec.nodes[0]
            for key in self._inner:
                index = _at(_child_entry(node, key), rec, self._store.describe(self._gpath))
                depth = depth + 1 if type(index) is dict else 0
                node = _target(rec.nodes, index)
        return self._store.read_tree(self._gpath, index, lazy, plain, depth)

    def _replace_root(self, tree: Tree) -> None:
        """Make ``tree`` the whole content of the store (``tinystore.save``)."""
        if self._gpath or self._inner:
            raise InvalidKeyError("only the root of a store can be replaced")
        store = self._store
        with store.transaction():
            # everything stored so far goes: list it physically (no need to parse the record)
            old = store.physical.list_names(())
            new = Record([])
            new._names = {name for _, name, _ in old}  # taken until released
            for kind, name, entry in old:
                # freed now (the new tree can reuse the space), or moved aside
                # (the new tree takes the names), or kept until the commit
                store._set_aside((), new, kind, name, entry)
            packing.add_tree(
                store, (), new, tree, plain=self._plain_nodes(), exact=self._plain_exact()
            )
            new.dirty = True
            store.records[()] = new

    @property
    def unchecked(self) -> list[str]:
        """The records and external leaves read so far that had no checksum
        to check (written before tinystore wrote checksums)."""
        return sorted(self._store.unchecked)

    def remove_orphans(self) -> list[str]:
        """Remove the files (datasets) of this store that no record refers to,
        such as a process killed half-way through a write may leave; returns
        their physical paths.  Safe at any time: nothing refers to them."""
        self._check_writable()
        return self._store.sweep()

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

    def _flush(self) -> None:
        """Write everything pending to the file now.

        Every operation (or ``batch()`` block) already ends with its writes on
        disk, so for the built-in backends this has nothing left to do.
        """
        self._store.check_open()
        self._store.physical.commit()

    # the developer contract: single keys (the base class gives these names the user API)
    __getitem__ = _get
    __delitem__ = _delete
    create_group = _create_group

    def list_nodes(self) -> list[str]:
        return [key for key, is_group in self._list() if not is_group]

    def list_groups(self) -> list[str]:
        return [key for key, is_group in self._list() if is_group]
