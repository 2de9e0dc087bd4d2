"""Packing between trees and record entries (no I/O of its own).

:func:`add_tree` appends a :class:`~tinystore.storage.base.Tree` to a
record's node table; :func:`read_tree` builds a Tree back from the records.
Both reach records of other physical groups and external leaves only
through the transaction state they are given (``store``).
"""

from __future__ import annotations

from itertools import chain
from typing import Any

from tinystore._paths import QUICK_KEY_LEN, check_key
from tinystore.errors import CorruptStoreError, InvalidKeyError, UnsupportedValueError
from tinystore.storage.base import GroupTree, Tree
from tinystore.storage.leaves import INT64_MAX, INT64_MIN, encode_inline
from tinystore.storage.record.format import (
    MAX_INPLACE_DEPTH,
    GPath,
    Record,
    _leaf_info,
    _target,
    copy_attrs,
)

_EMBED_LEAVES = frozenset([str, int, float, bool, type(None)])


def _plain_children(children: Any) -> Any:
    """Children of plain values as entries (a copy); None if any is not plain.

    "Plain" is what a node written inside its parent's entry may hold: at
    most :data:`MAX_INPLACE_CHILDREN` values that are JSON values standing for themselves, or tagged
    scalars (non-ASCII or surrogate strings, big ints, non-finite floats).
    The common case costs one type test per value.
    """
    if len(children) > MAX_INPLACE_CHILDREN:
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
            if type(k) is not str or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN):
                check_key(k) if type(k) is str else _bad_key(k)
        return dict(children)
    for v in children if is_list else children.values():
        if type(v) not in _EMBED_LEAVES:
            return None
    if is_list:
        return [v if _json_exact(v) else encode_inline(v) for v in children]
    out = {}
    for k, v in children.items():
        if type(k) is not str or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN):
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


#: A small node is written in place (inside its parent's entry) if it has
#: at most this many children.
MAX_INPLACE_CHILDREN = 64
#: The nodes written in place inside one entry of a table node have at most
#: this many children in all (a line of the JSON layout stays short); the
#: nodes below them are nodes of the table.
MAX_INPLACE_ENTRIES = 512
#: Physical groups nested deeper than this are refused as damaged (a loop).
MAX_GROUP_DEPTH = 10_000


class _MetaTable:
    """The metadata table of one record while a tree is added to it.

    Indexed by ``id()`` of the attrs dicts: the trees of one save share attrs
    dicts (every tuple of a list has the same); they stay alive until
    :func:`add_tree` returns.  Also chooses the form of the entries of small
    nodes written in place (:meth:`seq`, :meth:`keyed`): shapes for key tuples
    met again, bare arrays for the default shape.
    """

    __slots__ = ("rec", "intern", "indices", "tags", "seen", "default", "bare")

    def __init__(self, rec: Record):
        self.rec = rec
        self.intern = rec.intern
        self.indices: dict[int, int] = {}
        self.tags: dict[int, str] = {}  # the same, as the tag of a small node's entry
        #: (metadata index, keys) -> the index of their shape, or None: met once
        self.seen: dict[tuple, int | None] = {}
        self.default: int | None = None
        self.bare: int | None = None
        self._set_default(rec.default)

    def _set_default(self, d: int | None) -> None:
        """``default``: the default shape; ``bare``: the metadata index whose
        list nodes it is (-1 for a shape with keys; None: no default yet)."""
        self.default = d
        if d is not None:
            self.bare = self.rec.attrs[d][0] if self.rec.shapes[d] is None else -1

    def index(self, attrs: dict) -> int:
        i = self.indices.get(id(attrs))
        if i is None:
            i = self.indices[id(attrs)] = self.intern(attrs)
        return i

    def tag(self, attrs: dict) -> str:
        """The short tag of nodes with ``attrs``: ``@`` and their table index."""
        tag = self.tags.get(id(attrs))
        if tag is None:
            tag = self.tags[id(attrs)] = f"@{self.index(attrs)}"
        return tag

    def seq(self, n: int, values: list) -> Any:
        """The entry of a small node of metadata ``n`` whose children are the
        entries ``values`` (a list): a bare array where that is the default
        shape (the first shape of a record becomes its default), else
        ``{"@<n>": values}``."""
        if self.bare == n:
            return values
        if self.default is None:
            self._set_default(self.rec.shape(n, None))
            return values
        return {f"@{n}": values}

    def keyed(self, n: int, values: dict, need_shape: bool = False, checked: bool = True) -> Any:
        """The entry of a small node of metadata ``n`` whose children are the
        entries ``values`` (a dict): ``{"@<n>": values}`` the first time its
        keys are met in the record, else its values only, in the form of a
        shape (``need_shape``: a shape now).  ``checked``: the keys are
        known to be valid (else they are checked the first time they are
        met); ``values`` may then be the caller's (it is copied)."""
        keys = tuple(values)
        if not keys:
            return {f"@{n}": dict(values)}
        known = (n, keys)
        s = self.seen.get(known, -1)
        if s == -1:
            if not checked:
                for x in keys:
                    if type(x) is not str or not (x.isidentifier() and len(x) <= QUICK_KEY_LEN):
                        check_key(x) if type(x) is str else _bad_key(x)
            s = self.rec.find_shape(n, keys)
            if s is None and not need_shape:
                self.seen[known] = None
                return {f"@{n}": dict(values)}
        if s is None:
            s = self.rec.shape(n, keys)
            if self.default is None:
                self._set_default(s)
        self.seen[known] = s
        if s == self.default:
            return list(values.values())
        return {f"@{s}": list(values.values())}


#: Leaves of a stored object deeper than this many keys are kept in the
#: folder of their first this many keys (under their own key): a path is
#: then never longer than this, however deep the object.
MAX_FOLDER_DEPTH = 32


def _child_cell(parent: Any, key: str) -> tuple:
    """The path of child ``key`` of the node at path ``parent``, in constant
    time: ``(parent, key, depth, anchor)``, ``anchor`` the cell at depth
    :data:`MAX_FOLDER_DEPTH` above it (None: the cell itself), so that the
    folder of a leaf is found in at most that many steps.  ``None``: the top."""
    if parent is None:
        return (None, key, 1, None)
    depth = parent[2] + 1
    if depth <= MAX_FOLDER_DEPTH:
        return (parent, key, depth, None)
    return (parent, key, depth, parent if parent[3] is None else parent[3])


def path_cell(keys: tuple) -> Any:
    """The cell of the path ``keys`` (None for the top)."""
    cell = None
    for key in keys:
        cell = _child_cell(cell, key)
    return cell


def path_keys(cell: Any) -> tuple:
    """The keys of the folder a cell's leaves go into: its path, cut at
    :data:`MAX_FOLDER_DEPTH` keys."""
    if cell is not None and cell[3] is not None:
        cell = cell[3]
    keys = []
    while cell is not None:
        keys.append(cell[1])
        cell = cell[0]
    return tuple(reversed(keys))


def add_tree(  # noqa: C901 - long on purpose: see the comment in the loop
    store,
    gpath: GPath,
    rec: Record,
    tree: Tree,
    group: bool = False,
    plain: dict | None = None,
    inner: Any = None,
    exact: bool = False,
) -> int:
    """Append ``tree`` to the node table of ``rec``; return its index.

    ``plain``: ``{type: attrs}`` of containers the codec left in the tree
    as they are (see :class:`~tinystore.storage.base.Codec`); each stands
    for a node with those attrs and its items as children.  ``inner``: the
    path from the record's top node to ``tree`` (where its leaves go), as
    :func:`path_cell` makes it.
    """
    nodes = rec.nodes
    root = len(nodes)
    nodes.append(None)
    stack = [(tree, root, inner)]
    table = _MetaTable(rec)
    plain = plain or {}
    # type of a non-Tree child -> (short tag, attrs, metadata index) or Nones
    ptags: dict[type, tuple] = {}
    w = _Writer(store, gpath, rec, table, plain, ptags, exact)
    while stack:
        t, idx, here = stack.pop()
        a = t.attrs
        if type(a) is not dict:
            raise UnsupportedValueError(f"Tree.attrs must be a dict, not {type(a)}")
        if a:
            node: dict = {"a": table.index(a)}
        else:
            node = {}
        children = t.children
        pending: list = []
        is_list = type(children) is list
        if exact and is_list and len(children) >= BULK_MIN:
            bulk = _bulk_entries(children, plain, ptags, table)
            if bulk is not None:
                node["c"] = bulk
                nodes[idx] = node
                continue
        others = t.others if exact else None
        if (
            others is not None
            and len(others) < len(children)
            and (is_list or type(children) is dict)
        ):
            # the codec declared which children are not JSON-exact atoms (and
            # that the keys are valid): the rest are copied at once
            out: Any = list(children) if is_list else dict(children)
            rest = _short_containers(children, others, out, plain, ptags, table)
            items: Any = zip(rest, map(children.__getitem__, rest))
            keyed = False
        else:
            out = [None] * len(children) if is_list else {}
            items = enumerate(children) if is_list else children.items()
            keyed = not is_list
        for k, v in items:
            # The loop over every child of every node of a save: the common
            # leaves and small plain containers are handled inline, without a
            # function call each (a call per child cost 20% of a save), which
            # is why this function is longer than the others.
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
                e = _node_entry(w, v, v.attrs, v.children, pending, here, k)
            else:  # a plain container the codec left as it is, or a leaf
                known = ptags.get(vt)
                if known is None:
                    known = _plain_type(plain.get(vt), table)
                    ptags[vt] = known
                tag, va, n = known
                if exact and tag is not None and len(v) <= MAX_INPLACE_CHILDREN:
                    # the codec checked every value (Codec.plain_exact): the short form
                    if keyed and (
                        type(k) is not str or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN)
                    ):
                        check_key(k) if type(k) is str else _bad_key(k)
                    if vt is dict:  # (its keys checked once per key tuple)
                        out[k] = table.keyed(n, v, checked=False)
                    else:
                        out[k] = list(v) if table.bare == n else table.seq(n, list(v))
                    continue
                if tag is not None and len(v) <= MAX_INPLACE_CHILDREN:
                    # a small container of JSON values: the short form (the hot path;
                    # _plain_children's first loop, inline: a call per tuple costs 20%)
                    values: Any = v
                    if vt is dict:
                        values = v.values()
                        for x in v:
                            if type(x) is not str or not (
                                x.isidentifier() and len(x) <= QUICK_KEY_LEN
                            ):
                                values = ()  # other keys: checked the general way below
                                break
                    for x in values:
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
                        if values or not v:
                            if keyed and (
                                type(k) is not str
                                or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN)
                            ):
                                check_key(k) if type(k) is str else _bad_key(k)
                            if vt is dict:
                                out[k] = table.keyed(n, dict(v))
                            else:
                                out[k] = list(v) if table.bare == n else table.seq(n, list(v))
                            continue
                if va is not None:  # a plain container: a node like any other
                    v = Tree(va, dict(v) if vt is dict else list(v))
                    e = _node_entry(w, v, va, v.children, pending, here, k)
                else:
                    if not is_list and type(k) is not str:
                        raise InvalidKeyError(f"Tree keys must be str, not {type(k).__name__}")
                    try:
                        e = store.leaf_entry(gpath, rec, str(k), v, here)
                    except TypeError:
                        raise UnsupportedValueError(
                            f"cannot store {vt.__name__} at {k!r}: not a leaf or Tree"
                        ) from None
            if keyed and (type(k) is not str or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN)):
                check_key(k) if type(k) is str else _bad_key(k)
            out[k] = e
        node["c"] = out
        nodes[idx] = node
        stack.extend(reversed(pending))
    if group:
        nodes[root]["g"] = 1
    return root


def _short_containers(
    children: Any, others: list, out: Any, plain: dict, ptags: dict, table: _MetaTable
) -> list:
    """Write the entries of the children ``others`` (``Tree.others``) that are
    small plain containers into ``out`` (the short form, as the loop of
    :func:`add_tree` writes them); return the keys of the rest, for that loop.

    The codec checked their values (``plain_exact``).  A container type's
    tag is added to the metadata table here only while nothing was left to
    the loop, so the table's order is the loop's."""
    rest: list = []
    last: Any = None  # the type of the child before, and its metadata index (or None)
    n = None
    for k in others:
        v = children[k]
        vt = type(v)
        if vt is not last:
            known = ptags.get(vt)
            if known is None and not rest:
                known = ptags[vt] = _plain_type(plain.get(vt), table)
            last = vt
            n = known[2] if known is not None and known[0] is not None and vt is not dict else None
        if n is not None and len(v) <= MAX_INPLACE_CHILDREN:
            # table.seq, inline where the node is of the default shape: a bare array
            out[k] = list(v) if table.bare == n else table.seq(n, list(v))
            continue
        rest.append(k)
    return rest


#: A list of at least this many children tries :func:`_bulk_entries` first.
BULK_MIN = 16


def _bulk_entries(children: list, plain: dict, ptags: dict, table: _MetaTable) -> list | None:
    """The entries of a list whose children are all plain containers of one
    type (a list of 10,000 tuples), from a codec that promises their values
    (``exact``): each as :meth:`_MetaTable.seq` makes it, as the loop of
    :func:`add_tree` makes them, without its tests per child.  None if they
    are not all such."""
    kinds = set(map(type, children))
    if len(kinds) != 1:
        return None
    (vt,) = kinds
    if vt is dict or vt is Tree:  # (dict keys need checking: the loop does it)
        return None
    known = ptags.get(vt)
    if known is None:
        known = ptags[vt] = _plain_type(plain.get(vt), table)
    tag, _, n = known
    if tag is None or max(map(len, children)) > MAX_INPLACE_CHILDREN:
        return None
    first = table.seq(n, list(children[0]))
    if type(first) is list:  # the default shape: bare arrays
        return [first, *map(list, children[1:])]
    return [first, *[{tag: list(v)} for v in children[1:]]]


def _plain_type(va: Any, table: _MetaTable) -> tuple:
    """``(short tag, attrs, metadata index)`` of the nodes a plain container
    type stands for (Nones: not such a type, a leaf)."""
    if va is None:
        return None, None, None
    if type(va) is not dict or not va:
        raise UnsupportedValueError(f"the codec's plain_nodes attrs must be a dict: {va!r}")
    return table.tag(va), va, table.index(va)


class _Writer:
    """What :func:`add_tree` and :func:`_in_place_entry` share while they write."""

    __slots__ = ("store", "gpath", "rec", "table", "plain", "ptags", "exact", "budget")

    def __init__(self, store, gpath, rec, table, plain, ptags, exact):
        self.store = store
        self.gpath = gpath
        self.rec = rec
        self.table = table
        self.plain = plain
        self.ptags = ptags
        self.exact = exact
        self.budget = 0  # children left to the nodes in place of one entry


def _node_entry(
    w: _Writer, tree: Tree, attrs: Any, children: Any, pending: list, parent: Any, key: Any
) -> Any:
    """The entry of ``tree`` (with these ``attrs`` and ``children``), child
    ``key`` of the node at path ``parent``: written in place if small (its
    own small nodes in place too, see :func:`_in_place_entry`), else a new
    node of the table, whose ``(tree, index, path)`` is appended to
    ``pending`` to be filled in."""
    ct = type(children)
    if type(attrs) is dict and (ct is list or ct is dict):
        w.budget = MAX_INPLACE_ENTRIES
        e = _in_place_entry(w, tree, attrs, children, pending, parent, key, 1)
        if e is not None:
            return e
    return _table_ref(w, tree, pending, parent, key)


def _table_ref(w: _Writer, tree: Tree, pending: list, parent: Any, key: Any) -> dict:
    """``{"@": i}``: ``tree`` becomes node ``i`` of the table, filled in later."""
    nodes = w.rec.nodes
    pending.append((tree, len(nodes), _child_cell(parent, str(key))))
    nodes.append(None)
    return {"@": len(nodes) - 1}


def _in_place_entry(  # noqa: C901 - one pass over the children, as add_tree's loop
    w: _Writer,
    tree: Any,
    attrs: dict,
    children: Any,
    pending: list,
    parent: Any,
    key: Any,
    depth: int,
) -> Any:
    """The entry of a node written in place, at ``depth`` levels of nodes in
    place below its table node; None if it cannot be (more than
    :data:`MAX_INPLACE_CHILDREN` children, or more than the entry's budget
    of :data:`MAX_INPLACE_ENTRIES`, or a child that is a leaf other than a
    JSON value or tagged scalar).  Its children that are nodes are in place
    too where they can be (and :data:`MAX_INPLACE_DEPTH` allows), else
    nodes of the table; a node in place that refers to a node of the table
    is written through a shape, so that a reader of format 1.2 refuses its
    record (it would renumber the table without it)."""
    size = len(children)
    if size > MAX_INPLACE_CHILDREN or size > w.budget:
        return None
    is_list = type(children) is list
    plain = w.plain
    others = tree.others if w.exact and type(tree) is Tree else None
    if others is not None and not others:  # the codec: JSON-exact atoms, valid keys
        out: Any = list(children) if is_list else dict(children)
        if not attrs:
            return {"@": {"c": out}}
        w.budget -= size
        n = w.table.index(attrs)
        return w.table.seq(n, out) if is_list else w.table.keyed(n, out)
    out = list(children) if is_list else dict(children)
    nodes: list = []  # the keys of the children that are nodes
    for k, v in enumerate(children) if is_list else children.items():
        vt = type(v)  # (the tests of add_tree's loop, inline: this runs once per value)
        if vt is float:
            if v - v != 0.0:
                out[k] = encode_inline(v)
        elif vt is str:
            if not v.isascii():
                out[k] = encode_inline(v)
        elif vt is int:
            if not INT64_MIN <= v <= INT64_MAX:
                out[k] = encode_inline(v)
        elif vt is Tree or vt in plain:
            nodes.append(k)
        elif v is not None and vt is not bool:
            return None  # a leaf that is no JSON value
    if nodes and (not attrs or depth >= MAX_INPLACE_DEPTH):
        return None  # (at the deepest level: a node of the table, its children in place)
    if not is_list:
        for k in children:
            if type(k) is not str or not (k.isidentifier() and len(k) <= QUICK_KEY_LEN):
                check_key(k) if type(k) is str else _bad_key(k)
    if not attrs:
        return {"@": {"c": out}}
    w.budget -= size
    refers = False
    table = w.table
    if nodes:
        here = _child_cell(parent, str(key))  # the path of this node
        for k in nodes:
            v = out[k]
            vt = type(v)
            e = None
            if vt is Tree:
                va, vc = v.attrs, v.children
            else:  # a plain container
                va = plain[vt]
                vc = v
                if w.exact and len(v) <= MAX_INPLACE_CHILDREN and len(v) <= w.budget:
                    # the codec checked every value (Codec.plain_exact): only keys to check
                    w.budget -= len(v)
                    if vt is not dict:
                        out[k] = table.seq(table.index(va), list(v))
                        continue
                    out[k] = table.keyed(table.index(va), v, checked=False)
                    continue
            if type(va) is dict and va and type(vc) in (list, dict):
                e = _in_place_entry(w, v, va, vc, pending, here, k, depth + 1)
            if e is None:
                if vt is not Tree:
                    v = Tree(va, dict(v) if vt is dict else list(v))
                e = _table_ref(w, v, pending, here, k)
                refers = True
            out[k] = e
    n = table.index(attrs)
    return table.seq(n, out) if is_list else table.keyed(n, out, refers)


def flat_entry(rec: Record, tree: Tree) -> Any:
    """The entry of ``tree`` written in the record ``rec`` of the physical
    group it is assigned into, if it is one node of at most
    :data:`MAX_INPLACE_CHILDREN` children that are all JSON values (the
    size rule of ``storage._in_place``); None if it is not.  It takes the
    forms of the record's shapes where it has some, and makes none (a
    record of values assigned into a group stays readable by format 1.2)."""
    attrs, children = tree.attrs, tree.children
    if type(attrs) is not dict or type(children) not in (list, dict):
        return None
    plain = _plain_children(children)
    if plain is None:
        return None
    if not attrs:
        return {"@": {"c": plain}}
    if rec.shapes is None:  # no shape is made for it: a 1.2 reader reads this record
        return {f"@{rec.intern(attrs)}": plain}
    table = _MetaTable(rec)  # (the record's shapes only: it meets each key tuple once)
    n = table.index(attrs)
    return table.seq(n, plain) if type(plain) is list else table.keyed(n, plain)


def read_tree(  # noqa: C901
    store, gpath: GPath, index: Any, lazy: bool, plain: Any = None, depth: int = 0
) -> Tree:
    """The subtree at node ``index`` of the record of ``gpath``, every leaf read.

    ``lazy``: for browsing (groups as :class:`GroupTree`, external leaves as
    :class:`LeafInfo`); ``plain``: the codec's ``plain_maker``; ``depth``:
    the levels in place of node ``index`` below its table node.  The loop over
    the entries handles small nodes in place (most of a list of tuples)
    inline, without a call each: that is the hot path of a load, which is
    why this function is longer than the others.
    """
    rec = store.record(gpath)
    root = GroupTree() if lazy and _target(rec.nodes, index).get("g") else Tree()
    # (group, record, node or index, tree to fill, levels in place below a table node)
    stack = [(gpath, rec, index, root, depth)]
    seen: set = set()
    # one copy of each shared metadata dict per read (per record): the trees
    # of this read share it, as the nodes of the record do; and per record, by
    # tag the kinds of its short entries, under None the build of its bare arrays
    shared: dict[GPath, dict] = {}
    # (parent, its children, key, node): nodes the codec may build at the end
    folds: list | None = [] if plain is not None else None
    while stack:
        gp, rec, i, t, depth = stack.pop()
        known = shared.get(gp)
        if known is None:
            known = shared[gp] = {}
        children = _node_children(store, gp, rec, i, t, known)
        if depth >= MAX_INPLACE_DEPTH and _in_place_children(children):
            raise _too_deep(store, gp)  # (below, the loop checks nodes that hold nodes only)
        if plain is not None and type(children) is list and len(children) >= BULK_MIN:
            made = _bulk_values(store, gp, rec, children, known, plain)
            if made is not None:  # a list of small plain nodes of one kind
                t.children = made
                t.flat = True
                continue
        out: Any = list(children) if type(children) is list else dict(children)
        flat = True  # no Tree among the children so far (Tree.flat)
        bare = known.get(None)  # how bare arrays of plain values are built (see _bare)
        for k, e in enumerate(children) if type(children) is list else children.items():
            te = type(e)
            if te is list:  # a small node of the record's default shape
                if bare is None:
                    bare = known[None] = _bare(store, gp, rec, known, plain)
                if bare:  # what the tests below do for it, in short (once per tuple)
                    for x in e:
                        tx = type(x)
                        if tx is dict or tx is list:
                            break
                    else:  # plain JSON values
                        try:
                            out[k] = bare(e)
                        except Exception as exc:
                            raise _cannot_rebuild(store, gp, exc) from exc
                        continue
                tag: Any = ""
                c = e
            elif te is not dict:
                continue  # a plain JSON leaf: already in ``out``
            elif len(e) == 1:
                (tag,) = e
                c = e[tag]
            else:
                tag = None
            if tag is not None:
                short = known.get(tag)  # a short tag met before needs no checks
                if short is None and (tag == "" or (tag[:1] == "@" and tag != "@")):
                    short = known[tag] = _short_kind(store, gp, rec, tag, plain)
                if short is not None:  # a small node in place
                    attrs, make, takes, keys, n = short
                    tc = type(c)
                    if keys is not None:  # a shape: values only
                        if tc is not list or (keys and len(c) != len(keys)):
                            raise _misfit(store, gp, tag)
                        if keys:
                            if make is dict:  # plain values: one fresh dict, not copied
                                for x in c:
                                    tx = type(x)
                                    if tx is dict or tx is list:
                                        break
                                else:
                                    out[k] = dict(zip(keys, c))
                                    continue
                            c = dict(zip(keys, c))
                            tc = dict
                    if tc is list or tc is dict:
                        for x in c if tc is list else c.values():
                            tx = type(x)
                            if tx is dict or tx is list:
                                break
                        else:  # plain JSON values
                            if tc is takes:
                                try:  # inline, not a helper: this runs once per tuple
                                    out[k] = make(c)
                                except Exception as exc:
                                    raise _cannot_rebuild(store, gp, exc) from exc
                            else:
                                sub = out[k] = Tree(attrs, c[:] if tc is list else dict(c))
                                sub.flat = True  # (plain JSON values)
                                flat = False
                            continue
                    if depth >= MAX_INPLACE_DEPTH:
                        raise _too_deep(store, gp)
                    sub = Tree()
                    out[k] = sub
                    flat = False
                    stack.append((gp, rec, {"a": n, "c": c}, sub, depth + 1))
                    if folds is not None and make is not None:
                        folds.append((t, out, k, sub))
                    continue
            v = out[k] = _entry_value(store, gp, rec, e, lazy, seen, stack, depth, i)
            if flat and isinstance(v, Tree):
                flat = False
                if folds is not None and "@" in e:
                    folds.append((t, out, k, v))
        t.children = out
        t.flat = flat
    if folds:
        _fold(store, gpath, folds, plain)
    return root


def _fold(store, gpath: GPath, folds: list, plain: Any) -> None:
    """Build the nodes of ``folds`` that the codec's ``plain_maker`` builds
    (builtin containers) and whose children are all built (no Tree), deepest
    first, so that a chain of small lists and dicts reaches the codec as the
    objects, as a list of tuples does (one pass, no decoder frame each).
    A node with an anchor or an alias is no plain kind: it stays a node."""
    makers: dict = {}  # id(attrs) -> (build, children type) or (): (``folds`` keeps them alive)
    for parent, out, k, sub in reversed(folds):
        if not sub.flat:
            continue
        made = makers.get(id(sub.attrs))
        if made is None:
            made = makers[id(sub.attrs)] = plain(sub.attrs) or ()
        if not made or type(sub.children) is not made[1]:
            continue
        try:
            out[k] = made[0](sub.children)
        except Exception as exc:
            raise _cannot_rebuild(store, gpath, exc) from exc
        for x in out if type(out) is list else out.values():
            if isinstance(x, Tree):
                break
        else:
            parent.flat = True


def _misfit(store, gp: GPath, tag: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"{store.describe(gp)} holds a node ({tag or 'a bare array'!r}) whose values do not "
        "fit its shape; the record is damaged"
    )


def _too_deep(store, gp: GPath) -> CorruptStoreError:
    return too_deep(store.describe(gp))


def too_deep(where: str) -> CorruptStoreError:
    return CorruptStoreError(
        f"{where} nests nodes in place more than {MAX_INPLACE_DEPTH} levels "
        "deep; the record is damaged"
    )


def misplaced_group(where: str, path: str | None = None, group: bool = False) -> CorruptStoreError:
    """A group (made by ``create_group``: a record's first node, ``"g": 1``,
    named by a ``{"G": name, "g": 1}`` entry of a group) found anywhere else,
    or an entry that names a group whose record holds none (``group``)."""
    at = "" if path is None else f" at '/{path}'"
    if group:
        what = f"is named as a group{at}, and holds a stored object"
    else:
        what = f"holds a group{at} where only a stored object's nodes can be"
    return CorruptStoreError(f"{where} {what}; the record is damaged")


def _in_place_children(children: Any) -> bool:
    """True if ``children`` (entries) hold a node in place."""
    for e in children if type(children) is list else children.values():
        te = type(e)
        if te is list:
            return True
        if te is dict and len(e) == 1:
            (tag,) = e
            if tag[:1] == "@" and (tag != "@" or type(e[tag]) is dict):
                return True
    return False


def _bulk_values(store, gp: GPath, rec: Record, children: list, known: dict, plain: Any) -> Any:
    """The values of a list of short entries of one tag (or bare arrays)
    whose children are plain JSON values in a list (a list of 10,000
    tuples), built by the codec's ``plain_maker`` as the loop of
    :func:`read_tree` builds them, in a few passes in C instead of its tests
    per entry; None if they are not all such (the loop then reads them, and
    says what is wrong)."""
    first = children[0]
    if type(first) is list:
        tag = ""
    elif type(first) is dict and len(first) == 1:
        (tag,) = first
        if type(tag) is not str or tag[:1] != "@" or tag == "@":
            return None
    else:
        return None
    short = known.get(tag)
    if short is None:
        short = known[tag] = _short_kind(store, gp, rec, tag, plain)
    make, takes, keys = short[1], short[2], short[3]
    if make is None or takes is not list or keys:
        return None
    try:
        if tag == "":
            if set(map(type, children)) != _LIST:
                return None
            values = children
        else:
            if set(map(len, children)) != _ONE or set(map(type, children)) != _DICT:
                return None
            values = [e[tag] for e in children]
    except (KeyError, TypeError):  # another tag, or not a dict
        return None
    if set(map(type, values)) != _LIST:
        return None
    inside = set(map(type, chain.from_iterable(values)))
    if dict in inside or list in inside:
        return None  # (a tagged leaf or a node among the values: the loop reads it)
    try:
        return list(map(make, values))
    except Exception as exc:
        raise _cannot_rebuild(store, gp, exc) from exc


_ONE = {1}
_DICT = {dict}
_LIST = {list}


def _node_children(store, gp: GPath, rec: Record, i: Any, t: Tree, known: dict) -> Any:
    """Set ``t.attrs`` from node ``i`` of ``rec`` (shared attrs copied once, in
    ``known``); return the node's children entries."""
    try:
        node = i if type(i) is dict else rec.nodes[i]
        a = node.get("a")
        if type(a) is int:
            attrs = known.get(a)
            if attrs is None:
                attrs = known[a] = copy_attrs(rec.node_attrs(node, store.describe(gp)))
            t.attrs = attrs
        else:
            t.attrs = copy_attrs(a) if a else {}
        children = node.get("c")
        if children is None:
            children = {}
    except (IndexError, TypeError, AttributeError):
        raise CorruptStoreError(f"node table of {store.describe(gp)} is damaged") from None
    if type(children) not in (list, dict) or type(t.attrs) is not dict:
        raise CorruptStoreError(f"node table of {store.describe(gp)} is damaged")
    return children


def _short_kind(store, gp: GPath, rec: Record, tag: str, plain: Any) -> tuple:
    """``(attrs, build, children_type, keys, n)`` for the short entries of one
    tag (``""``: bare arrays): ``build`` from the codec's ``plain_maker`` (or
    Nones), ``keys`` those of a shape (``()`` for a shape of list nodes, None
    for a tag that is no shape), ``n`` the metadata index."""
    where = store.describe(gp)
    if tag == "":
        i = rec.default
        if i is None:
            raise CorruptStoreError(
                f"{where} holds a list where an entry belongs (its record has no shape); "
                "the record is damaged"
            )
    else:
        digits = tag[1:]
        if not (digits.isascii() and digits.isdigit()):
            raise CorruptStoreError(f"{where} holds an invalid node entry {tag!r:.40}")
        i = int(digits)
    keys: Any = None
    n = i
    if rec.shapes is not None and i in rec.shapes:
        keys = rec.shapes[i] or ()
        n = rec.attrs[i][0]
    attrs = copy_attrs(rec.node_attrs({"a": n}, where))
    made = plain(attrs) if plain is not None else None
    make, takes = made if made is not None else (None, None)
    return attrs, make, takes, keys, n


def _bare(store, gp: GPath, rec: Record, known: dict, plain: Any) -> Any:
    """The codec's build of the nodes of bare-array entries of ``rec`` (the
    default shape) if it builds them from a list of their values, else False
    (the loop of :func:`read_tree` then reads them as any short entry)."""
    short = known.get("")
    if short is None:
        short = known[""] = _short_kind(store, gp, rec, "", plain)
    _, make, takes, keys, _ = short
    return make if make is not None and takes is list and keys == () else False


def _cannot_rebuild(store, gp: GPath, exc: Exception) -> CorruptStoreError:
    return CorruptStoreError(f"a node of {store.describe(gp)} cannot be rebuilt: {exc}")


def _entry_value(
    store, gp: GPath, rec: Record, e: dict, lazy: bool, seen: set, stack: list, depth: int, i: Any
) -> Any:
    """What a dict entry of node ``i`` stands for: a node (a Tree, pushed on
    ``stack`` to be filled in), a physical subgroup, an external leaf or a
    tagged leaf.  A group is only a record's first node, named by an entry
    of a group that says so (``"g": 1``), which its record confirms."""
    if "@" in e:
        index = e["@"]
        if type(index) is dict:  # a node in place
            if depth >= MAX_INPLACE_DEPTH:
                raise _too_deep(store, gp)
            depth += 1
        else:
            if (
                type(index) is not int
                or (gp, index) in seen
                or not 0 < index < len(rec.nodes)
                or type(rec.nodes[index]) is not dict
            ):
                raise CorruptStoreError(
                    f"the node table of {store.describe(gp)} is damaged (node "
                    f"{index!r} is reached twice or is invalid)"
                )
            seen.add((gp, index))
            depth = 0
        if _target(rec.nodes, index).get("g"):
            raise misplaced_group(store.describe(gp))
        sub = Tree()
        stack.append((gp, rec, index, sub, depth))
        return sub
    if "G" in e:
        group = bool(e.get("g"))
        if group and not (type(i) is int and i == 0 and rec.nodes[0].get("g")):
            raise misplaced_group(store.describe(gp))
        sub = GroupTree() if lazy and group else Tree()
        sgp = gp + (store.physical.check_name(e["G"], store.describe(gp), "G"),)
        if len(sgp) > MAX_GROUP_DEPTH:
            raise CorruptStoreError(f"{store.describe(gp)} nests groups endlessly")
        srec = store.record(sgp)
        if bool(srec.nodes[0].get("g")) is not group:
            raise misplaced_group(store.describe(sgp), group=group)
        stack.append((sgp, srec, 0, sub, 0))
        return sub
    if lazy and "X" in e:
        return _leaf_info(e)
    return store.value(gp, e)
