"""What a stored node holds, read from its stored form: data, not internals.

Browsing (:mod:`tinystore.objects.browse`) describes a node by its layout;
this module reads the layouts of the common kinds back into what a user
thinks of: the value of a date or a ``Decimal``, the shape, column names and
dtypes of a DataFrame, the length of a string array, the first rows of a
column.  Nothing here imports the library an object comes from: pandas
nodes are read from their stored columns (see
:mod:`tinystore.objects.adapters.pandas` for the layout), and the few
standard-library values shown (:data:`VALUE_TYPES`) are rebuilt with
``safe=True`` loading, which imports and calls nothing else.

The functions take :class:`~tinystore.objects.browse.NodeView` objects.
Describers are looked up by node kind in :data:`DESCRIBERS` (a table, not a
chain of tests), so a new kind is described by adding an entry.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tinystore.errors import TinystoreError
from tinystore.objects.decode import Decoder
from tinystore.storage.base import GroupTree, LeafInfo, Tree

#: Standard-library types whose browsing shows their value (``str(value)``),
#: rebuilt by safe loading from their small stored node.
VALUE_TYPES = frozenset(
    [
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "datetime.timedelta",
        "datetime.timezone",
        "decimal.Decimal",
        "fractions.Fraction",
        "uuid.UUID",
        "pathlib.Path",
        "pathlib.PosixPath",
        "pathlib.WindowsPath",
        "pathlib.PurePosixPath",
        "pathlib.PureWindowsPath",
    ]
)
#: A value node with more nodes than this (a crafted one) is not rebuilt.
_VALUE_NODES_MAX = 40

#: Leaves stored outside their record are read for a preview only up to this size.
PREVIEW_READ_LIMIT = 1 << 20

#: Rows of a DataFrame's head table; items of an array preview.
HEAD_ROWS = 5
PREVIEW_ITEMS = 6

_READ_ERRORS = (TinystoreError, OSError, ValueError, KeyError, TypeError, IndexError)


# -- small values ------------------------------------------------------------------------
def _small_tree(node: Any, texts: bool = True) -> bool:
    """True if ``node`` has few nodes and only small plain leaves (all read).

    Rebuilding a value must stay cheap whatever a file holds: e.g.
    ``Fraction("1e99999999")`` would compute a 100-million-digit integer, so
    ``texts=False`` refuses strings, and integers are limited to 128 bits.
    """
    stack, seen = [node], 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > _VALUE_NODES_MAX:
            return False
        t = type(item)
        if t is Tree:
            c = item.children
            stack.extend(c if type(c) is list else c.values())
        elif t is int and item.bit_length() > 128:
            return False
        elif t in (str, bytes) and (len(item) > 256 or not texts and t is str):
            return False
        elif t not in (int, float, bool, type(None), str, bytes):
            return False
    return True


def anchor_finder(node: Any) -> Callable[[int], Any] | None:
    """``locate(anchor)`` over the stored object ``node`` (None for groups and leaves)."""
    if type(node) is not Tree:
        return None
    found: dict = {}

    def locate(anchor: int) -> Any:
        if not found:
            found[None] = None  # searched once, whatever is found
            stack = [node]
            while stack:
                item = stack.pop()
                if type(item) is Tree:
                    a = item.attrs
                    if "id" in a and a.get("t") != "ref":
                        found.setdefault(a["id"], item)
                    c = item.children
                    stack.extend(c if type(c) is list else c.values())
        return found.get(anchor)

    return locate


def _resolved(node: Any, locate: Callable[[int], Any] | None) -> Any:
    if type(node) is Tree and node.attrs.get("t") == "ref" and locate is not None:
        return locate(node.attrs.get("r"))
    return node


def reduce_type(node: Tree, locate: Callable[[int], Any] | None) -> str:
    """The type a ``reduce`` node builds when its callable (or class) is a reference."""
    c = node.children
    func = _resolved(c.get("f"), locate) if type(c) is dict else None
    if type(func) is not Tree or func.attrs.get("t") != "global":
        return "?"
    name = func.attrs.get("g")
    if name in ("copyreg:__newobj__", "copyreg:__newobj_ex__"):
        args = _resolved(c.get("a"), locate)
        first = args.children[0] if type(args) is Tree and type(args.children) is list else None
        cls = _resolved(first, locate) if first is not None else None
        name = cls.attrs.get("g") if type(cls) is Tree else None
    return name.replace(":", ".") if type(name) is str else "?"


_value_codec: list = []


def value_text(view: Any) -> str | None:
    """``str(value)`` of a standard-library value node (a date, a Decimal, ...), else None."""
    if view.type not in VALUE_TYPES or type(view._node) is not Tree:
        return None
    if not _small_tree(view._node, texts=view.type != "fractions.Fraction"):
        return None
    if not _value_codec:
        from tinystore.objects.codec import ObjectCodec  # the codec imports browsing

        _value_codec.append(ObjectCodec(safe=True, version_check="ignore"))
    codec = _value_codec[0]
    decoder = Decoder(
        check=codec._check(),
        check_call=codec._check_call(),
        allow_pickle=False,
        locate=view._locate,
    )
    try:
        value = decoder.decode(view._node)
    except (TinystoreError, ValueError, TypeError, OverflowError, KeyError, IndexError):
        return None  # damaged, crafted, or using a name safe loading refuses
    try:
        text = str(value)
    except ValueError:  # a Fraction of ints too long for decimal text
        return None
    return text if len(text) <= 80 else text[:77] + "..."


def _pandas_scalar(view: Any) -> str | None:
    """The value of a ``pandas.Timestamp`` or ``Timedelta`` node, from its attrs."""
    attrs = view.attrs
    value, unit = attrs.get("v"), attrs.get("unit")
    try:
        if view.kind == "pandas.Timestamp" and type(value) is str:
            text = np.datetime_as_string(np.datetime64(value, unit), unit="auto")
            tz = attrs.get("tz")
            return text.replace("T", " ") + (f" {tz}" if type(tz) is str else "")
        if view.kind == "pandas.Timedelta" and type(value) is int:
            return str(np.timedelta64(value, unit).astype("timedelta64[us]").item())
    except (TypeError, ValueError, OverflowError):
        return None  # a damaged node
    return None


# -- reading leaves ------------------------------------------------------------------------
def _leaf(view: Any) -> Any:
    """The leaf a view stands for (unwrapping a ``leaf`` node), or None if not a leaf."""
    node = view._node
    if type(node) is Tree:
        if node.attrs.get("t") != "leaf" or type(node.children) is not list or not node.children:
            return None
        node = node.children[0]
    return None if isinstance(node, Tree) else node


class ReadBudget:
    """How many bytes of leaves stored outside their records one display may read."""

    def __init__(self, total: int = 16 * PREVIEW_READ_LIMIT):
        self.left = total

    def take(self, nbytes: int) -> bool:
        if nbytes > PREVIEW_READ_LIMIT or nbytes > self.left:
            return False
        self.left -= nbytes
        return True


def read_leaf(view: Any, budget: ReadBudget | None = None) -> Any:
    """The value of a leaf view, read from the store if it was not (within limits).

    None if the view is not a leaf, the leaf is too big for the budget, or
    it cannot be read (damaged files are reported by loading, not browsing).
    """
    leaf = _leaf(view)
    if type(leaf) is not LeafInfo:
        return leaf
    if not (budget or ReadBudget()).take(leaf.nbytes):
        return None
    try:
        return view._storage[view.path]
    except _READ_ERRORS:
        return None


def _child(view: Any, key: str) -> Any:
    try:
        return view[key]
    except KeyError:
        return None


# -- columns, indexes and arrays -------------------------------------------------------------
def _values_dtype(view: Any, key: str = "values") -> str | None:
    child = _child(view, key)
    if child is None:
        return None
    if child.dtype is not None:
        return str(child.dtype)
    return child_dtype(child)


def _datetime_dtype(view: Any) -> str | None:
    """``datetime64[ns]``, ``datetime64[ns, Europe/Berlin]`` (a zone stored as an
    object, not by name, shows as ``tz``)."""
    base = _values_dtype(view)
    tz = view.attrs.get("tz")
    if type(tz) is not str:
        tz = "tz" if "tz" in view else None
    return base if base is None or tz is None else f"{base[:-1]}, {tz}]"


def _string_dtype(view: Any) -> str:
    return "string" if view.attrs.get("na") == "NA" else "str"


_DTYPES: dict[str, Callable[[Any], str | None]] = {
    "pandas.StringArray": _string_dtype,
    "pandas.ObjectStrings": lambda v: "object",
    "pandas.MaskedArray": lambda v: str(v.attrs.get("dtype", "?")),
    "pandas.Categorical": lambda v: "category",
    "pandas.DatetimeArray": _datetime_dtype,
    "pandas.TimedeltaArray": _values_dtype,
    "pandas.NumpyExtensionArray": _values_dtype,
    "pandas.PeriodArray": lambda v: f"period[{v.attrs.get('freq', '?')}]",
    "pandas.IntervalArray": lambda v: f"interval[{v.attrs.get('closed', '?')}]",
    "ndarray": lambda v: "object",
}


def child_dtype(view: Any) -> str | None:
    """The dtype a column or array node holds, as pandas or numpy names it."""
    if view.dtype is not None:
        return str(view.dtype)
    found = _DTYPES.get(view.kind)
    return found(view) if found is not None else None


def _text_count(view: Any) -> int | None:
    """Items of a string node (``values`` list, ``codes``, or ``utf8`` [+ ``mask``])."""
    for key in ("codes", "mask"):
        child = _child(view, key)
        if child is not None and child.shape:
            return child.shape[0]
    values = _child(view, "values")
    if values is not None:
        return len(values) if values.kind in ("list", "tuple") else None
    utf8 = _child(view, "utf8")
    data = read_leaf(utf8) if utf8 is not None else None
    if type(data) is bytes:
        return data.count(b"\x00") + 1 if data else 1
    return None


def _first_shape(*keys: str) -> Callable[[Any], int | None]:
    def length(view: Any) -> int | None:
        for key in keys:
            child = _child(view, key)
            if child is not None:
                n = length_of(child)
                if n is not None:
                    return n
        return None

    return length


def _range_length(view: Any) -> int | None:
    a = view.attrs
    if all(type(a.get(k)) is int for k in ("start", "stop", "step")) and a["step"]:
        return len(range(a["start"], a["stop"], a["step"]))
    return None


def _ndarray_shape(view: Any) -> tuple | None:
    shape = view.attrs.get("s")
    if type(shape) is list and all(type(n) is int for n in shape):
        return tuple(shape)
    return None


_LENGTHS: dict[str, Callable[[Any], int | None]] = {
    "pandas.StringArray": _text_count,
    "pandas.ObjectStrings": _text_count,
    "pandas.MaskedArray": _first_shape("data"),
    "pandas.Categorical": _first_shape("codes"),
    "pandas.DatetimeArray": _first_shape("values"),
    "pandas.TimedeltaArray": _first_shape("values"),
    "pandas.NumpyExtensionArray": _first_shape("values"),
    "pandas.PeriodArray": _first_shape("ordinals"),
    "pandas.IntervalArray": _first_shape("left"),
    "pandas.Index": _first_shape("values"),
    "pandas.RangeIndex": _range_length,
    "pandas.MultiIndex": lambda v: _first_shape("0")(v["codes"]) if "codes" in v else None,
    "pandas.Series": _first_shape("index", "values"),
    "ndarray": lambda v: (_ndarray_shape(v) or (None,))[0],
}


def length_of(view: Any) -> int | None:
    """Number of items (rows) of an array, column or index node, if known."""
    if view.shape is not None:
        return view.shape[0] if view.shape else None
    if view.kind in ("list", "tuple"):
        return len(view)
    found = _LENGTHS.get(view.kind)
    return found(view) if found is not None else None


def index_labels(view: Any, limit: int | None = None) -> list | None:
    """The first ``limit`` labels of a stored index, when they are plain values."""
    if view.kind == "pandas.RangeIndex":
        n = _range_length(view)
        a = view.attrs
        return None if n is None else list(range(a["start"], a["stop"], a["step"])[:limit])
    if view.kind == "pandas.Index" and "values" in view:
        return column_head(view["values"], limit)
    if view.kind == "pandas.MultiIndex":
        return _multi_labels(view, limit)
    return None


def _multi_labels(view: Any, limit: int | None) -> list | None:
    """Tuples of a MultiIndex's labels, from its levels and codes (-1: missing)."""
    levels, codes = _child(view, "levels"), _child(view, "codes")
    if levels is None or codes is None or len(levels) != len(codes):
        return None
    columns = []
    for key in levels.keys():
        labels = index_labels(levels[key])
        level_codes = _items_of(codes[key], limit, None)
        if labels is None or level_codes is None:
            return None
        if not all(-1 <= c < len(labels) for c in level_codes):
            return None
        labels = [x.item() if isinstance(x, np.generic) else x for x in labels]
        columns.append([labels[c] if c >= 0 else None for c in level_codes])
    return [tuple(row) for row in zip(*columns)]


def plain_value(view: Any) -> Any:
    """The value of a leaf, or a tuple of such values (a label such as
    ``("a", 1)``); None if the node is something else."""
    if view.kind == "tuple":
        items = [plain_value(view[k]) for k in view.keys()]
        return None if any(i is None for i in items) else tuple(items)
    leaf = _leaf(view)
    return None if type(leaf) is LeafInfo else leaf


# -- first items of a column --------------------------------------------------------------------
def _items_of(view: Any, limit: int | None, budget: ReadBudget | None) -> list | None:
    """First items of a list/ndarray node of plain leaves, or of an array leaf."""
    if view.kind in ("list", "tuple", "ndarray"):
        out = []
        for key in view.keys()[:limit]:
            leaf = _leaf(view[key])
            if leaf is None or type(leaf) is LeafInfo:
                return None
            out.append(leaf)
        return out
    leaf = read_leaf(view, budget)
    if isinstance(leaf, np.ndarray) and leaf.ndim == 1:
        return list(leaf[:limit])
    return None


def _texts_head(view: Any, limit: int | None, budget: ReadBudget | None) -> list | None:
    values = _child(view, "values")
    if values is not None:
        texts = _items_of(values, None if "codes" in view else limit, budget)
    else:
        raw = read_leaf(view["utf8"], budget) if "utf8" in view else None
        if type(raw) is not bytes:
            return None
        texts = raw.decode("utf-8", "surrogatepass").split("\x00")
        mask = read_leaf(view["mask"], budget) if "mask" in view else None
        if isinstance(mask, np.ndarray) and len(mask) == len(texts):
            texts = [None if m else t for t, m in zip(texts, mask)]
    if texts is None or "codes" not in view:
        return texts if texts is None else texts[:limit]
    codes = _items_of(view["codes"], limit, budget)
    if codes is None:
        return None
    return [texts[c] if 0 <= c < len(texts) else None for c in codes]


def _masked_head(view: Any, limit: int | None, budget: ReadBudget | None) -> list | None:
    data = _items_of(view["data"], limit, budget) if "data" in view else None
    mask = _items_of(view["mask"], limit, budget) if "mask" in view else None
    if data is None or mask is None:
        return None
    return [None if m else d for d, m in zip(data, mask)]


def _categorical_head(view: Any, limit: int | None, budget: ReadBudget | None) -> list | None:
    codes = _items_of(view["codes"], limit, budget) if "codes" in view else None
    labels = index_labels(view["categories"]) if "categories" in view else None
    if codes is None or labels is None:
        return None
    return [labels[c] if 0 <= c < len(labels) else None for c in codes]


def _values_head(view: Any, limit: int | None, budget: ReadBudget | None) -> list | None:
    return _items_of(view["values"], limit, budget) if "values" in view else None


_HEADS: dict[str, Callable[[Any, int | None, Any], list | None]] = {
    "pandas.StringArray": _texts_head,
    "pandas.ObjectStrings": _texts_head,
    "pandas.MaskedArray": _masked_head,
    "pandas.Categorical": _categorical_head,
    "pandas.DatetimeArray": _values_head,
    "pandas.TimedeltaArray": _values_head,
    "pandas.NumpyExtensionArray": _values_head,
}


def column_head(view: Any, limit: int | None = HEAD_ROWS, budget: ReadBudget | None = None):
    """The first ``limit`` items of a stored column or 1-d array (None: not readable here)."""
    found = _HEADS.get(view.kind)
    if found is not None:
        return found(view, limit, budget)
    return _items_of(view, limit, budget)


def short_repr(value: Any, width: int) -> str:
    """``repr(value)``, but an int of more than ``width`` digits as its size
    (Python refuses to write an int of more than 4300 digits in decimal)."""
    if type(value) is int and value.bit_length() * 0.30103 > width:
        return f"<int of {value.bit_length()} bits>"
    return repr(value)


def cell(value: Any, width: int = 24) -> str:
    """One item as a table cell or preview shows it."""
    if value is None:
        text = "<NA>"
    elif isinstance(value, (float, np.floating)):
        text = f"{value:.1f}" if value.is_integer() and abs(value) < 1e6 else f"{value:.6g}"
    elif isinstance(value, (np.datetime64, np.timedelta64)):
        text = str(value)
    elif type(value) is int:
        text = short_repr(value, width)
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- frames and series ------------------------------------------------------------------------
class FrameInfo:
    """What a DataFrame or Series node holds: rows, column labels and dtypes, index."""

    def __init__(self, view: Any):
        self.view = view
        self.rows = length_of(view["index"]) if "index" in view else None
        if view.kind == "pandas.Series":
            values = _child(view, "values")
            self.keys = ["values"]
            name = plain_value(view["name"]) if "name" in view else None
            self.labels = [name if isinstance(name, (str, int, float, tuple)) else "values"]
            self.dtypes = [child_dtype(values) if values is not None else None]
            if self.rows is None and values is not None:
                self.rows = length_of(values)
            return
        data = self.data = _child(view, "data")
        self.keys = data.keys() if data is not None else []
        columns = _child(view, "columns")
        labels = index_labels(columns) if columns is not None else None
        if labels is None or len(labels) != len(self.keys):
            labels = list(self.keys)
        self.labels = labels
        self.dtypes = [child_dtype(data[k]) for k in self.keys] if data is not None else []
        if self.rows is None and self.keys:
            self.rows = length_of(data[self.keys[0]])

    def column(self, key: str) -> Any:
        return self.view["values"] if self.view.kind == "pandas.Series" else self.data[key]

    def shape_text(self) -> str:
        rows = "?" if self.rows is None else self.rows
        if self.view.kind == "pandas.Series":
            return f"{rows} rows"
        return f"{rows} rows x {len(self.keys)} columns"

    def columns_text(self, limit: int = 8) -> str:
        shown = [f"{label} {dtype or '?'}" for label, dtype in zip(self.labels, self.dtypes)]
        more = len(shown) - limit
        return ", ".join(shown[:limit]) + (f", ... {more} more" if more > 0 else "")

    def index_text(self) -> str:
        index = _child(self.view, "index")
        return "?" if index is None else index_text(index)

    def head(self, limit: int = HEAD_ROWS, budget: ReadBudget | None = None) -> dict:
        """``{"index": [...], label: [...]}`` of the first rows (None where unreadable)."""
        out: dict = {"index": None}
        index = _child(self.view, "index")
        if index is not None:
            out["index"] = index_labels(index, limit)
        for label, key in zip(self.labels, self.keys):
            out[label] = column_head(self.column(key), limit, budget)
        return out


def index_text(index: Any) -> str:
    """``RangeIndex(0, 5, 1)``, or the index's type and dtype."""
    if index.kind == "pandas.RangeIndex":
        a = index.attrs
        return f"RangeIndex({a.get('start')}, {a.get('stop')}, {a.get('step')})"
    dtype = _values_dtype(index) if index.kind == "pandas.Index" else None
    return index.type.split(".")[-1] + (f" {dtype}" if dtype else "")


def frame_info(view: Any) -> FrameInfo | None:
    """What a DataFrame or Series view holds (None for other nodes); once per view."""
    if view.kind not in ("pandas.DataFrame", "pandas.Series") or type(view._node) is not Tree:
        return None
    info = view.__dict__.get("_frame_info")
    if info is None:
        info = view.__dict__["_frame_info"] = FrameInfo(view)
    return info


# -- one line per kind ---------------------------------------------------------------------------
def _frame_summary(view: Any) -> str:
    info = frame_info(view)
    parts = [view.type, info.shape_text()]
    if view.kind == "pandas.Series":
        parts.append(info.dtypes[0] or "?")
        if "name" in view:
            parts.append(f"name {info.labels[0]!r}")
    else:
        parts.append(info.columns_text())
    return "  ".join(parts)


def _array_summary(view: Any) -> str:
    dtype = child_dtype(view) or "?"
    shape = _ndarray_shape(view) if view.kind == "ndarray" else None
    if shape is None:
        n = length_of(view)
        shape = (n,) if n is not None else None
    return f"{view.type}  {dtype} {shape if shape is not None else '(?)'}"


DESCRIBERS: dict[str, Callable[[Any], str]] = {
    "pandas.DataFrame": _frame_summary,
    "pandas.Series": _frame_summary,
    "ndarray": _array_summary,
    "pandas.StringArray": _array_summary,
    "pandas.ObjectStrings": _array_summary,
    "pandas.MaskedArray": _array_summary,
    "pandas.Categorical": _array_summary,
    "pandas.DatetimeArray": _array_summary,
    "pandas.TimedeltaArray": _array_summary,
    "pandas.NumpyExtensionArray": _array_summary,
    "pandas.PeriodArray": _array_summary,
    "pandas.IntervalArray": _array_summary,
    "pandas.Index": lambda v: f"{v.type}  {_values_dtype(v) or '?'} ({length_of(v)},)",
    "pandas.RangeIndex": lambda v: f"{v.type}  {index_text(v)}",
}


def special_summary(view: Any) -> str | None:
    """The summary line of a node whose kind has a describer or a value, else None."""
    text = value_text(view)
    if text is None and type(view._node) is Tree:
        text = _pandas_scalar(view)
    if text is not None:
        return f"{view.type}  {text}"
    describer = DESCRIBERS.get(view.kind)
    if describer is None or type(view._node) is not Tree:
        return None
    try:
        return describer(view)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None  # a damaged node: the plain description


def folded(view: Any) -> bool:
    """True for nodes whose children are internals (values shown as values, arrays)."""
    if type(view._node) is not Tree:
        return False
    if view.kind in DESCRIBERS and view.kind not in ("pandas.DataFrame", "pandas.Series"):
        return True
    return view.type in VALUE_TYPES or view.kind in ("pandas.Timestamp", "pandas.Timedelta")


def leaf_text(view: Any) -> str | None:
    """Size of a long string or bytes leaf (``10000 chars``), if it is one."""
    leaf = _leaf(view)
    if type(leaf) is str and len(leaf) > 37:
        return f"{len(leaf)} chars"
    if type(leaf) in (bytes, bytearray):
        return f"{len(leaf)} bytes"
    if type(leaf) is LeafInfo and leaf.shape is None:
        return f"{leaf.nbytes} bytes"
    return None


def metadata(view: Any) -> dict:
    """The metadata a user set: a group's ``attrs`` (Storable groups' too), no internal tags."""
    node = view._node
    if type(node) is GroupTree:
        return {k: v for k, v in node.attrs.items() if not k.startswith("@")}
    if type(node) is Tree and view.kind == "group":
        ua = node.attrs.get("ua")
        return dict(ua) if type(ua) is dict else {}
    return {}


def metadata_text(meta: dict, width: int = 60) -> str:
    text = ", ".join(f"{k}={v!r}" for k, v in meta.items())
    return "{" + (text if len(text) <= width else text[: width - 3] + "...") + "}"


def preview(view: Any, budget: ReadBudget | None = None) -> str | None:
    """A short text of a leaf's or array's first items (reads within ``budget``)."""
    leaf = read_leaf(view, budget) if _leaf(view) is not None else None
    if isinstance(leaf, np.ndarray):
        flat = leaf.reshape(-1)
        items = [cell(x, 12) for x in flat[:PREVIEW_ITEMS]]
        more = flat.size - len(items)
        return "[" + ", ".join(items) + (f", ... {more} more" if more > 0 else "") + "]"
    if leaf is not None and not isinstance(leaf, LeafInfo):
        text = short_repr(leaf, 80)
        return text if len(text) <= 80 else text[:77] + "..."
    arrays = view.kind in DESCRIBERS and view.kind not in ("pandas.DataFrame", "pandas.Series")
    if arrays or (view.kind in ("list", "tuple") and type(view._node) is Tree):
        items = column_head(view, PREVIEW_ITEMS, budget)
        if items is not None:
            n = length_of(view)
            more = (n - len(items)) if n is not None else 0
            return (
                "["
                + ", ".join(cell(x, 12) for x in items)
                + (f", ... {more} more" if more > 0 else "")
                + "]"
            )
    return None
