"""Columnar ``table`` nodes: a list of many rows of one shape, column by column.

A list of at least :data:`MIN_ROWS` rows that are all tuples of one length,
or all instances of one plain class with the same attributes in the same
order, is stored as one node of kind ``table`` whose children are its
columns, instead of a node per row (see ``docs/format.rst``, "Table
nodes").  A column holds the values of one field of every row:

======  ==================================================================
``k``   column
======  ==================================================================
f8      floats: float64, little-endian
i1..i8  ints (exactly ``int``): the smallest signed integer type that fits
b1      bools
s       strings: a list of the strings
si<n>   strings, coded: a list ``[distinct strings, codes]``, the codes an
        ``i<n>`` integer column of positions in the distinct strings
t       tuples of one length: a nested table node (tuple rows)
======  ==================================================================

A numeric column is the raw little-endian bytes of its values when they
take at most :data:`INLINE_LIMIT` bytes (so they stay inside the record on
every backend), else a numpy array (stored beside the record, where h5py
and numpy read it).

Sharing stays exactly pickle's: a list becomes a table only if no row, no
row's ``__dict__`` and no nested tuple is referenced from anywhere but its
place in the list.  That is checked with CPython's reference counts
(calibrated at import against objects known to be held once); without
``sys.getrefcount`` no table is ever made.  A part of a row that an object
saved later reaches anyway (through the list) becomes a reference into the
table (see :func:`memo_entry`).  Anything else (mixed types,
``None``, big ints, long strings, nested containers, classes with
``__slots__``, ``__getstate__``, ``__setstate__``, their own reduce) keeps
the node-per-row layout.
"""

from __future__ import annotations

import copyreg
import sys
from itertools import chain
from operator import itemgetter
from typing import Any

import numpy as np

from tinystore.errors import UnloadableError
from tinystore.objects import encode as _encode  # (a module: encode imports this one)
from tinystore.objects.globals import global_name
from tinystore.storage.base import Tree
from tinystore.storage.record.format import INLINE_LIMIT

#: Lists shorter than this keep a node per item.
MIN_ROWS = 16
#: Rows wider than this keep a node per item (a column per field).
MAX_COLUMNS = 64

_LIST = {"t": "list"}
_NUMERIC = {"f8": np.dtype("<f8"), "b1": np.dtype("?")}
_NUMERIC.update({f"i{n}": np.dtype(f"<i{n}") for n in (1, 2, 4, 8)})
_INT_BOUNDS = [(f"i{n}", -(2 ** (8 * n - 1)), 2 ** (8 * n - 1) - 1) for n in (1, 2, 4, 8)]

_getrefcount = getattr(sys, "getrefcount", None)


def _max_refs(objs: Any) -> int:
    return max(map(_getrefcount, objs))  # type: ignore[arg-type]


def _calibrate() -> int | None:
    """References an object held only by the list mapped over shows (None: no tables)."""
    if _getrefcount is None or sys.implementation.name != "cpython":
        return None
    return _max_refs([object(), object()])


_BASE = _calibrate()


def _all_of(values: Any, t: type) -> bool:
    """True if every one of ``values`` (a list or tuple) is of type ``t`` exactly
    (counting types is a third faster than collecting them in a set)."""
    return [*map(type, values)].count(t) == len(values)


def _lone(objs: Any, owners: int) -> bool:
    """True if each of ``objs`` is held by ``objs`` and ``owners`` other references only.

    The encoder's memo and its fallback parts hold a reference to every object
    they know: an object already written (or held by a part) is never alone.
    """
    return _max_refs(objs) <= _BASE + owners  # type: ignore[operator]


# -- encoding ------------------------------------------------------------------------
def encode_table(enc: Any, rows: list) -> Tree | None:
    """The table node for the list ``rows``, or None if it cannot be one.

    Its rows, their state dicts and the tuples in them get no memo entry
    (that would cost as much as the rest): the encoder finds them through
    :func:`memo_entry` if they are met again later in the save, which can
    happen though nothing else held them when the table was made (a
    ``__reduce__`` that returns ``self.rows[3]``).
    """
    if _BASE is None:
        return None
    first = type(rows[0])
    if first is tuple:
        tree = tuple_table(enc, rows, 0, False)
    elif first.__module__ == "builtins" or not _all_of(rows, first):
        return None
    else:
        tree = _object_table(enc, first, rows)
    if tree is not None:  # (its rows as they are now: a later __reduce__ may change the list)
        enc._tables.append((rows, list(rows), tree))
    return tree


def memo_entry(enc: Any, obj: Any) -> list | None:
    """A memo entry for ``obj`` if it is a row of a table made in this save, or
    the state dict or a tuple of such a row (else None): ``_ref`` makes it
    a reference to the table's anchor with ``p = {"row": i, ...}``."""
    index = enc.__dict__.setdefault("_table_index", {})
    done = enc.__dict__.get("_table_indexed", 0)
    for lst, rows, tree in enc._tables[done:]:  # indexed when first needed
        _index_rows(index, lst, rows, tree)
    enc._table_indexed = len(enc._tables)
    hit = index.get(id(obj))
    if hit is None:
        return None
    lst, tree, part = hit
    m = enc.memo.get(id(lst))
    if m is None or m[1] is not tree:  # the table was dropped (a fallback around it)
        return None
    return [obj, tree, None, None, part]


def _index_rows(index: dict, lst: list, rows: list, tree: Tree) -> None:
    kinds = tree.attrs["k"]
    fields = list(tree.children)
    objects = "c" in tree.attrs
    for i, row in enumerate(rows):
        index[id(row)] = (lst, tree, {"row": i})
        values = vars(row) if objects else row
        if objects:
            index[id(values)] = (lst, tree, {"row": i, "state": 1})
        for j, kind in enumerate(kinds):
            if kind == "t":
                name = fields[j] if objects else j
                index[id(values[name])] = (lst, tree, {"row": i, "field": name})


def tuple_table(enc: Any, rows: Any, owners: int, nested: bool) -> Tree | None:
    """A table of the tuples ``rows`` (held ``owners`` times besides ``rows``)."""
    if not rows or not _all_of(rows, tuple):
        return None
    if not 0 < len(rows[0]) <= MAX_COLUMNS or not _lone(rows, owners):
        return None
    try:
        fields = list(zip(*rows, strict=True))
    except ValueError:  # rows of different lengths
        return None
    kinds: list = []
    columns: dict = {}
    for i, values in enumerate(fields):
        column = _column(enc, values, nested)
        if column is None:
            return None
        kinds.append(column[0])
        columns[f"c{i}"] = column[1]
    return Tree({"t": "table", "n": len(rows), "k": kinds}, columns)


def _object_table(enc: Any, cls: type, rows: list) -> Tree | None:
    attrs = _class_attrs(enc, cls)
    if attrs is None or not _lone(rows, 0):
        return None
    dicts = list(map(vars, rows))
    keys = tuple(dicts[0])
    if not keys or len(keys) > MAX_COLUMNS or len(set(map(tuple, dicts))) != 1:
        return None
    if set(map(type, chain.from_iterable(dicts))) != {str} or any(map(str.isdigit, keys)):
        return None  # a str subclass as a name; names that read as row numbers
    if not _encode._state_keys_ok(dicts[0], enc._good_keys) or not _lone(dicts, 1):
        return None
    columns: dict = {}
    kinds: list = []
    for key, values in zip(keys, zip(*map(dict.values, dicts))):
        column = _column(enc, values, False)
        if column is None:
            return None
        kinds.append(column[0])
        columns[key] = column[1]
    enc.globals.add(attrs["c"])
    return Tree({**attrs, "n": len(rows), "k": kinds}, columns)


def _class_attrs(enc: Any, cls: type) -> dict | None:
    """``{"t": "table", "c": name}`` for a class whose instances pickle as
    ``copyreg.__newobj__(cls)`` plus their ``__dict__``; None for others."""
    cache = enc.__dict__.setdefault("_table_classes", {})
    if cls in cache:
        return cache[cls]
    cache[cls] = None
    if enc._route(cls) != (2, None):
        return None  # a reducer, an adapter, a copyreg entry
    how, adapter = enc._route(type(cls))
    if how != 1 or adapter.kind != "global":  # the class itself is not saved by name
        return None
    for name in ("__reduce_ex__", "__reduce__", "__getstate__"):
        if getattr(cls, name, None) is not getattr(object, name, None):
            return None
    for name in ("__setstate__", "__getnewargs_ex__", "__getnewargs__"):
        if getattr(cls, name, None) is not None:
            return None
    try:
        if copyreg._slotnames(cls):  # type: ignore[attr-defined]
            return None
        attrs = {"t": "table", "c": global_name(cls)}
    except Exception:  # not importable by its name: the usual way says why
        return None
    if hasattr(cls, "__dataclass_fields__"):
        attrs["dc"] = 1
    cache[cls] = attrs
    return attrs


def _column(enc: Any, values: tuple, nested: bool) -> tuple[str, Any] | None:
    """``(kind, child)`` of one column (see the module docstring), or None."""
    if not values:
        return None
    t = type(values[0])
    if not _all_of(values, t):
        return None
    if t is float:
        return "f8", _numbers(np.fromiter(values, dtype=_NUMERIC["f8"], count=len(values)))
    if t is int:
        try:
            array = np.fromiter(values, dtype=_NUMERIC["i8"], count=len(values))
        except OverflowError:  # beyond int64
            return None
        lo, hi = int(array.min()), int(array.max())
        kind = next(k for k, low, high in _INT_BOUNDS if low <= lo and hi <= high)
        return kind, _numbers(array.astype(_NUMERIC[kind], copy=False))
    if t is bool:
        return "b1", _numbers(np.array(values, dtype=bool))
    if t is str:
        return _strings(values)
    if t is tuple and not nested:
        table = tuple_table(enc, values, 1, True)
        return None if table is None else ("t", table)
    return None


def _numbers(arr: np.ndarray) -> Any:
    return arr.tobytes() if arr.nbytes <= INLINE_LIMIT else arr


def _strings(values: tuple) -> tuple[str, Any] | None:
    distinct = dict.fromkeys(values)
    if max(map(len, distinct)) >= _encode.MEMO_MIN_LEN:
        return None  # long strings keep their identity (memoised)
    if len(distinct) * 4 >= len(values):
        return "s", _str_list(list(values))
    codes = dict(zip(distinct, range(len(distinct))))
    kind = next(k for k, _, high in _INT_BOUNDS if len(distinct) <= high)
    # each value's code: itemgetter looks them all up in one call (a tuple; a
    # single value for a single row); codes of one byte go through bytes()
    found = itemgetter(*values)(codes) if len(values) > 1 else (codes[values[0]],)
    if kind == "i1":
        array = np.frombuffer(bytes(found), _NUMERIC[kind])
    else:
        array = np.fromiter(found, dtype=_NUMERIC[kind], count=len(values))
    return f"s{kind}", Tree(_LIST, [_str_list(list(distinct)), _numbers(array)])


def _str_list(strings: list) -> Any:
    """A list the storage takes as it is when it can (ASCII: plain JSON), else a node."""
    return strings if "".join(strings).isascii() else Tree(_LIST, strings)


# -- decoding ------------------------------------------------------------------------
def build_rows(dec: Any, attrs: dict, columns: Any) -> list:
    """The rows of a table node, from its decoded columns."""
    n, kinds, name = attrs.get("n"), attrs.get("k"), attrs.get("c")
    if type(n) is not int or n < 0 or type(kinds) is not list or type(columns) is not dict:
        raise UnloadableError(f"the table at {dec.path()} is damaged")
    if len(kinds) != len(columns) or not kinds:
        raise UnloadableError(f"the table at {dec.path()} is damaged (columns)")
    values = [column_values(kind, col, n, dec) for kind, col in zip(kinds, columns.values())]
    if name is None:
        rows = list(zip(*values))
    else:
        cls = dec.import_global(name)
        if not isinstance(cls, type):
            raise UnloadableError(f"{name} is not a class")
        rows = _objects(cls, list(columns), values)
    anchor = attrs.get("id")
    if anchor is not None:  # refs to its rows may follow (see table_part)
        dec.tables[anchor] = (rows, None if name is None else list(columns), values, {})
    return rows


def table_part(dec: Any, anchor: Any, part: Any) -> Any:
    """What a ``ref`` with ``p = {"row": i, ...}`` stands for: row ``i`` of the
    table at ``anchor``; with ``"state": 1`` its state dict (one dict, made on
    first use, as pickle's memo keeps the one it built); with ``"field": f``
    the value of its field ``f`` (a column number of tuple rows, a name)."""
    entry = dec.tables.get(anchor)
    row = part.get("row") if type(part) is dict else None
    if entry is None or type(row) is not int or not 0 <= row < len(entry[0]):
        raise UnloadableError(f"the reference at {dec.path()} to a table row is damaged")
    rows, names, values, states = entry
    if "state" in part and names is not None:
        state = states.get(row)
        if state is None:
            state = states[row] = {k: v[row] for k, v in zip(names, values)}
        return state
    if "field" in part:
        field = part["field"]
        if names is not None and field in names:
            return values[names.index(field)][row]
        if names is None and type(field) is int and 0 <= field < len(values):
            return values[field][row]
        raise UnloadableError(f"the reference at {dec.path()} to a table row is damaged")
    return rows[row]


def _objects(cls: type, keys: list, values: list) -> list:
    """Instances of ``cls`` rebuilt as pickle's NEWOBJ and BUILD do."""
    new = cls.__new__
    names = [sys.intern(k) if type(k) is str else k for k in keys]
    out = []
    append = out.append
    if getattr(cls, "__setstate__", None) is None:
        for row in zip(*values):
            obj = new(cls)
            obj.__dict__.update(zip(names, row))
            append(obj)
        return out
    from tinystore.objects.decode import set_state

    for row in zip(*values):
        obj = new(cls)
        set_state(obj, dict(zip(names, row)))
        append(obj)
    return out


def column_values(kind: Any, col: Any, n: int, dec: Any = None) -> list:
    """The values of one decoded column (a list of ``n`` items)."""
    dtype = _NUMERIC.get(kind) if type(kind) is str else None
    if dtype is not None:
        out = _array(col, dtype).tolist()
    elif kind == "s" or kind == "t":
        out = col
    elif type(kind) is str and kind[:1] == "s" and kind[1:] in _NUMERIC and kind != "sb1":
        if type(col) is not list or len(col) != 2 or type(col[0]) is not list:
            out = None
        else:
            strings = col[0]
            codes = _array(col[1], _NUMERIC[kind[1:]])
            if len(codes) and not 0 <= int(codes.min()) <= int(codes.max()) < len(strings):
                out = None
            else:  # each distinct string once, shared by its rows
                out = _objects_array(strings).take(codes).tolist()
    else:
        out = None
    if type(out) is not list or len(out) != n:
        where = dec.path() if dec is not None else "a table"
        raise UnloadableError(f"the column {kind!r:.20} of the table at {where} is damaged")
    return out


def _objects_array(items: list) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items  # (np.array would make tuples, lists, ... into dimensions)
    return out


def _array(col: Any, dtype: np.dtype) -> np.ndarray:
    if type(col) is bytes:
        if len(col) % dtype.itemsize:
            raise UnloadableError("a table column has a partial item")
        return np.frombuffer(col, dtype=dtype)
    if type(col) is np.ndarray and col.ndim == 1 and col.dtype == dtype:
        return col
    raise UnloadableError(f"a table column holds {type(col).__name__}, not numbers")


# -- browsing ------------------------------------------------------------------------
def as_list_node(node: Tree) -> Tree | None:
    """The node a table stands for: a ``list`` node of one node per row, as
    lists that are not tables are stored (browsing shows rows, not columns).
    None if the table is damaged or a column was not read (``LeafInfo``)."""
    attrs = node.attrs
    try:
        rows = _row_nodes(attrs, node.children)
    except (UnloadableError, TypeError, ValueError, KeyError, IndexError):
        return None
    out = {"t": "list"}
    if "id" in attrs:
        out["id"] = attrs["id"]
    return Tree(out, rows)


def _row_nodes(attrs: dict, children: Any) -> list:
    n, kinds, name = attrs.get("n"), attrs.get("k"), attrs.get("c")
    if type(n) is not int or type(kinds) is not list or type(children) is not dict:
        raise UnloadableError("damaged")
    if len(kinds) != len(children) or not kinds:
        raise UnloadableError("damaged")
    values = []
    for kind, col in zip(kinds, children.values()):
        if kind == "t":
            nested = as_list_node(col) if type(col) is Tree else None
            if nested is None:
                raise UnloadableError("damaged")
            col = nested.children
        elif type(col) is Tree:  # a list node (strings)
            col = [_plain_strings(c) for c in col.children] if kind != "s" else col.children
        values.append(column_values(kind, col, n))
    if name is None:
        return [Tree({"t": "tuple"}, list(row)) for row in zip(*values)]
    row_attrs = {"t": "obj", "c": name}
    if attrs.get("dc"):
        row_attrs["dc"] = 1
    keys = list(children)
    return [Tree(row_attrs, dict(zip(keys, row))) for row in zip(*values)]


def _plain_strings(col: Any) -> Any:
    """A coded column's parts as read for browsing (a list node: its items)."""
    return col.children if type(col) is Tree else col


def row_node(node: Tree, key: str, read: Any) -> Any:
    """The node of the row ``key`` (its position, as text) of a table, read
    from its columns alone (``read(parts, i)``: item ``i`` of the column
    array at those child keys, when it was not read); None if there is none."""
    n = node.attrs.get("n")
    i = item_index(key, n) if type(n) is int else None
    if i is None:
        return None
    try:
        return _row_at(node, i, read, ())
    except (UnloadableError, TypeError, ValueError, KeyError, IndexError):
        return None


def item_index(key: str, n: int) -> int | None:
    """The item of a sequence of ``n`` items that ``key`` names, written as
    the stored layout writes it (``0``, ``17``; not ``017``, ``+1``, ``²``
    or ``٣``); None if it names none."""
    if key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < n:
        return int(key)
    return None


def _row_at(node: Tree, i: int, read: Any, where: tuple) -> Tree:
    attrs, children = node.attrs, node.children
    kinds, name = attrs.get("k"), attrs.get("c")
    if type(kinds) is not list or type(children) is not dict or len(kinds) != len(children):
        raise UnloadableError("damaged")
    values = {}
    for kind, (key, col) in zip(kinds, children.items()):
        here = (*where, key)
        if kind == "t":
            values[key] = _row_at(col, i, read, here)
        elif kind == "s":
            values[key] = _items(col)[i]
        elif kind in _NUMERIC:
            values[key] = _number_at(col, _NUMERIC[kind], i, read, here)
        elif kind[:1] == "s" and kind[1:] in _NUMERIC and kind != "sb1":
            strings, codes = _items(col)
            code = _number_at(codes, _NUMERIC[kind[1:]], i, read, (*here, "1"))
            if type(code) is not int or code < 0:  # (a negative index would pick one)
                raise UnloadableError("damaged")
            values[key] = _items(strings)[code]
        else:
            raise UnloadableError("damaged")
    if name is None:
        return Tree({"t": "tuple"}, list(values.values()))
    out = {"t": "obj", "c": name}
    if attrs.get("dc"):
        out["dc"] = 1
    return Tree(out, values)


def _items(col: Any) -> list:
    return col.children if type(col) is Tree else col


def _number_at(col: Any, dtype: np.dtype, i: int, read: Any, where: tuple) -> Any:
    if type(col) is bytes:
        return np.frombuffer(col, dtype=dtype, count=1, offset=i * dtype.itemsize).tolist()[0]
    if type(col) is np.ndarray:
        return _array(col, dtype)[i].tolist()
    return _array(read(where, i), dtype)[0].tolist()  # not read (browsing): that item alone
