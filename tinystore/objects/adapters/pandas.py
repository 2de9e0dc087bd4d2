"""pandas: frames, series, indexes, extension arrays and scalars, column by column.

Importing pandas costs about 0.3 s, so this module does not: every adapter
here is a *predicate* adapter whose ``accepts(cls)`` first checks that
``cls.__module__`` is ``"pandas"`` or starts with ``"pandas."`` (a string
test, so objects of other libraries never import pandas) and only then
compares ``cls`` with the exact pandas types it handles.  Meeting such a
class means pandas is already imported, so that comparison costs nothing;
the registry caches the answer per class.  Decoding imports pandas when it
first meets a pandas node.  Subclasses (e.g. a ``GeoDataFrame``) are not
matched: exact types only, like pickle's dispatch table, so they keep
their own reduce.

The layout uses public constructors and plain arrays only, never pandas'
internals (no BlockManager, no blocks), so an archive does not depend on
the pandas version that wrote it.  Each column is a node of its own: a
numpy column is a plain array (an HDF5 dataset or ``.npy`` file once it is
large), so it can be browsed and loaded alone::

    s["df"] = frame
    s["df/data/energy"]       # that column's values only (ndarray / pandas array)
    s["df/index"]             # the row index only

Node kinds, their ``attrs`` and their children (children in ``[]`` are
written only when they are not the default):

``pandas.DataFrame``
    attrs ``allows_duplicate_labels: false`` only when that flag is off;
    children ``index`` (an index node), ``columns`` (an index node),
    ``data`` (a dict: one child per column, in column order, named by the
    column label when it is a unique ``str`` that is a valid key, else by
    its position, e.g. ``"0"``; a name already taken gets ``_`` appended),
    ``[attrs]`` (the ``DataFrame.attrs`` dict).  Loading rebuilds the
    columns in stored order and takes the labels from ``columns``.
``pandas.Series``
    attrs as for frames; children ``index``, ``values`` (the column),
    ``[name]``, ``[attrs]``.
*a column* (``values``, ``data/<key>``)
    a numpy dtype: the ndarray itself (object dtype: an ``ndarray`` node
    with one child per item, or a ``pandas.ObjectStrings`` node); an
    extension dtype: its pandas array node.
``pandas.Index``
    any index but ``RangeIndex`` and ``MultiIndex`` (``DatetimeIndex``,
    ``CategoricalIndex``, ... follow from the dtype of the values);
    children ``values`` (a column), ``[name]``, ``[freq]``; attrs
    ``[freq]`` (``DatetimeIndex``/``TimedeltaIndex`` frequency string,
    e.g. ``"D"``; a frequency its string does not rebuild is the ``freq``
    child instead).
``pandas.RangeIndex``
    attrs ``start``, ``stop``, ``step``; children ``[name]``.
``pandas.MultiIndex``
    attrs ``[sortorder]``; children ``levels`` (list of index nodes),
    ``codes`` (list of integer arrays), ``names`` (list).
``pandas.Categorical``
    attrs ``ordered``; children ``codes`` (integer array, -1 for missing),
    ``categories`` (an index node).
``pandas.MaskedArray``
    ``Int8`` ... ``UInt64``, ``Float32``/``Float64`` and ``boolean``
    arrays; attrs ``dtype`` (its name); children ``data`` (numpy array,
    zero/False where missing) and ``mask`` (bool array, True where missing).
``pandas.StringArray``
    ``StringDtype`` arrays (pandas 3's default ``"str"`` dtype and
    ``"string"``); attrs ``storage`` (``"python"``/``"pyarrow"``) and
    ``na`` (``"NaN"`` or ``"NA"``, the missing-value marker); children
    *strings* and, when coded, ``codes``.  Up to :data:`STRING_LIST_MAX`
    items: *strings* are the items.  Longer arrays whose strings repeat
    (fewer distinct ones than about a quarter of the items, judged from a
    sample) are coded: ``codes`` is the smallest signed integer array
    (``int8`` ... ``int64``) holding one code per item, -1 where missing,
    else the position of the item's string among *strings*, the distinct
    strings.  Other long arrays: *strings* are the items.  *strings* is
    either ``values``, a list of ``str`` (``None`` where missing), readable
    in a JSON record, for up to :data:`STRING_LIST_MAX` strings or when a
    string contains NUL; or ``utf8`` (the strings joined by NUL
    characters, UTF-8, surrogates passed through; ``""`` where missing)
    and ``[mask]`` (bool array, True where missing): one native leaf, not
    one record entry per string.  See ``docs/format.rst``.
``pandas.ObjectStrings``
    an object-dtype column (numpy, not a pandas array) of more than
    :data:`STRING_LIST_MAX` items, each exactly a ``str`` or a missing
    value (``None``, a NaN ``float``, ``pandas.NA``); loads as that
    object ``ndarray``.  No attrs; children as for ``pandas.StringArray``
    (*strings*, ``[codes]``; missing items are ``None``), and, when coded
    and a missing item is not ``None``, ``missing``: the list of the
    missing items, in order.  Other object columns are ``ndarray`` nodes.
``pandas.DatetimeArray``
    children ``values`` (``datetime64`` array: UTC instants when
    timezone-aware, wall times when naive), ``[tz]``; attrs ``[tz]`` (the
    time zone's name, e.g. ``"UTC"``, ``"Europe/Berlin"``, ``"UTC+02:00"``;
    a zone its name does not rebuild exactly, e.g. a ``dateutil`` zone, is
    the ``tz`` child instead, stored as an object).
``pandas.TimedeltaArray``, ``pandas.NumpyExtensionArray``
    children ``values`` (a numpy array).
``pandas.PeriodArray``
    attrs ``freq``; children ``ordinals`` (int64 array).
``pandas.IntervalArray``
    attrs ``closed``; children ``left``, ``right`` (index nodes).
``pandas.Timestamp``
    attrs ``v`` (ISO 8601 string of the UTC instant or naive wall time, at
    the timestamp's resolution), ``unit``, ``[tz]``; children ``[tz]``.
``pandas.Timedelta``
    attrs ``v`` (integer count of ``unit``), ``unit``.
``pandas.Period``
    attrs ``ordinal``, ``freq``.
``pandas.NaT``, ``pandas.NA``
    no attrs: the singletons.

Frames and series are memoised *before* their children, as pickle does
(an empty object is initialised in place once its columns are loaded),
so cycles through ``attrs`` or object cells come back.  Indexes, arrays
and scalars are values rebuilt from their children (``immutable``).
Every column is written as a fresh view, so two frames never share a
column array on load (pandas' copy-on-write makes them independent
anyway); the same frame, series or index stored twice stays one object.

Not covered (stored through their reduce, i.e. pickle's state): sparse
and pyarrow-backed (``ArrowExtensionArray``) arrays, subclasses of the
types above, dtype and offset objects on their own.
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from typing import Any

import numpy as np

from tinystore.objects.budget import check_length, check_time_zone
from tinystore.objects.encode import is_key
from tinystore.objects.registry import Adapter, register_adapter

#: String arrays up to this length are stored as a list of ``str`` (readable
#: in a JSON record); longer ones as one NUL-joined UTF-8 leaf plus a mask,
#: or, when their strings repeat, as integer codes into their distinct strings.
STRING_LIST_MAX = 256

#: How many items of a long string array are looked at to guess whether
#: its strings repeat enough to be stored as codes.
STRING_SAMPLE = 2048


def _pandas():
    import pandas

    return pandas


class _PandasAdapter(Adapter):
    """Matches exact pandas types named by ``type_names``, without importing pandas."""

    #: dotted names below the ``pandas`` namespace, e.g. ``"arrays.IntegerArray"``.
    type_names: tuple[str, ...] = ()
    immutable = True
    _resolved: frozenset | None = None

    def accepts(self, cls: type) -> bool:
        module = getattr(cls, "__module__", None)
        if not (module == "pandas" or type(module) is str and module.startswith("pandas.")):
            return False
        if self._resolved is None:
            self._resolved = frozenset(self.pandas_types(sys.modules.get("pandas") or _pandas()))
        return cls in self._resolved

    def pandas_types(self, pd: Any) -> list[type]:
        """The exact types this adapter stores (pandas is imported when this is called)."""
        found = []
        for name in self.type_names:
            obj: Any = pd
            for part in name.split("."):
                obj = getattr(obj, part, None)  # None: not in this pandas version
            if isinstance(obj, type):
                found.append(obj)
        return found


# -- helpers -------------------------------------------------------------------
def _column(values: Any) -> Any:
    """The node content of a column: a numpy array, or a pandas array, as a fresh view.

    The view keeps columns of different objects apart in the memo, so that
    loaded objects never share a column array.  A long object column of
    ``str`` and missing values becomes an :class:`ObjectStrings` node.
    """
    if isinstance(values.dtype, np.dtype):
        array = np.asarray(values.to_numpy())
        if array.dtype.hasobject and array.ndim == 1 and len(array) > STRING_LIST_MAX:
            layout = _object_strings_layout(array)
            if layout is not None:
                return ObjectStrings(layout)
        return array.view()
    return values.array.view()


def _frame_flags(obj: Any) -> dict:
    return {} if obj.flags.allows_duplicate_labels else {"allows_duplicate_labels": False}


def column_keys(labels: Any) -> list[str]:
    """Child names of a frame's columns.

    The label if it is a ``str`` that is a valid key and unique, else the
    column's position; a name already taken gets ``_`` appended.
    """
    labels = list(labels)
    counts = Counter(label for label in labels if type(label) is str)
    keys: list[Any] = [
        label if type(label) is str and counts[label] == 1 and is_key(label) else None
        for label in labels
    ]
    used = {k for k in keys if k is not None}
    for i, key in enumerate(keys):
        if key is None:
            key = str(i)
            while key in used:
                key += "_"
            used.add(key)
            keys[i] = key
    return keys


def _tz_layout(tz: Any, attrs: dict, children: dict) -> None:
    """Store a time zone by name when its name rebuilds it exactly, else as an object."""
    if tz is None:
        return
    pd = _pandas()
    name = str(tz)
    try:
        back = pd.DatetimeTZDtype("ns", name).tz
    except (KeyError, ValueError, TypeError, OSError):  # not a zone name: store the object
        back = None
    if back is not None and type(back) is type(tz) and back == tz:
        attrs["tz"] = name
    else:
        children["tz"] = tz


def _tz(attrs: dict, parts: dict) -> Any:
    tz = parts["tz"] if "tz" in parts else attrs.get("tz")
    check_time_zone(tz, "a stored time zone")  # a name, never a file's path
    return tz


def _freq_layout(freq: Any, attrs: dict, children: dict) -> None:
    if freq is None:
        return
    from pandas.tseries.frequencies import to_offset

    name = freq.freqstr
    try:
        back = to_offset(name)
    except (ValueError, TypeError):
        back = None
    if back is not None and type(back) is type(freq) and back == freq:
        attrs["freq"] = name
    else:
        children["freq"] = freq


# -- strings -----------------------------------------------------------------------
def _known_strings(values: np.ndarray) -> set | None:
    """How to code a long string column, judged from a strided sample of it.

    None: do not code it, its strings hardly repeat.  Else the strings to
    look the items up among (see :func:`_coded`): the sample's, when they
    are nearly all the column has; else none (``pandas.factorize`` all).

    Coding costs a hash lookup per item and saves building each repeated
    string again on load; it pays when the column has fewer distinct items
    than about a quarter of its length.  Had the column ``n / 4`` equally
    frequent distinct items, a sample of ``m`` would be expected to show
    ``n / 4 * (1 - exp(-4 m / n))`` of them.  The share of the column's items
    missing from the sample is about that of the sample's items seen once
    (Good-Turing).
    """
    n = len(values)
    sample = values[:: max(1, n // STRING_SAMPLE)].tolist()
    counts = Counter(sample)
    if len(counts) >= -(n / 4) * math.expm1(-4 * len(sample) / n):
        return None
    once = sum(1 for count in counts.values() if count == 1)
    if once > len(sample) / 5:
        return set()
    return {item for item in counts if type(item) is str}


def _code_dtype(count: int) -> np.dtype:
    """The smallest signed integer dtype holding codes ``-1 .. count - 1``."""
    for dtype in (np.int8, np.int16, np.int32):
        if count - 1 <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.int64)


def _coded(values: np.ndarray, known: set | None) -> tuple[np.ndarray, np.ndarray]:
    """``(codes, distinct)``: ``distinct[codes]`` is ``values``, code -1 where missing.

    With ``known`` (the strings, or nearly all, e.g. a sample's), ``distinct``
    starts with them, sorted, and goes on with any others in order of
    appearance: looking the items up among a few known strings is about
    twice as fast as ``pandas.factorize``, which is left for the others.
    """
    pd = _pandas()
    if not known:
        codes, distinct = pd.factorize(values)
        return codes.astype(_code_dtype(len(distinct))), distinct
    distinct = np.array(sorted(known), dtype=object)
    target = pd.Index(values, dtype=object, copy=False)
    codes = pd.Index(distinct, dtype=object).get_indexer(target)
    unmatched = np.flatnonzero(codes < 0)
    if len(unmatched):
        new = unmatched[~pd.isna(values[unmatched])]
        if len(new):
            more_codes, more = pd.factorize(values[new])
            codes[new] = more_codes + len(distinct)
            distinct = np.concatenate([distinct, more])
    return codes.astype(_code_dtype(len(distinct))), distinct


def _texts(items: Any, mask: np.ndarray | None = None) -> dict:
    """Children of ``str`` items, missing where ``mask``: ``values`` or ``utf8`` [+ ``mask``]."""
    if mask is not None and not mask.any():
        mask = None
    if len(items) > STRING_LIST_MAX:
        texts = (items if mask is None else np.where(mask, "", items)).tolist()
        joined = "\x00".join(texts)
        if joined.count("\x00") == len(texts) - 1:  # else a string holds NUL: keep them apart
            children: dict = {"utf8": joined.encode("utf-8", "surrogatepass")}
            if mask is not None:
                children["mask"] = mask
            return children
    if mask is not None:
        items = np.where(mask, None, items)
    return {"values": list(items) if isinstance(items, list) else items.tolist()}


def _string_layout(values: np.ndarray, mask: Any) -> dict:
    """Children of a long string column: ``codes`` into its distinct strings, or all strings.

    ``values`` is an object array of ``str`` and missing values, which
    ``mask()`` finds (called only if needed; pandas' own test is dearer
    than the codes' -1).
    """
    known = _known_strings(values)
    if known is not None:
        codes, distinct = _coded(values, known)
        children = _texts(distinct)
        children["codes"] = codes
        return children
    return _texts(values, np.asarray(mask()))


def _object_strings_layout(values: np.ndarray) -> dict | None:
    """The children of an :class:`ObjectStrings` node, or None if ``values`` does not qualify.

    Every item must be exactly a ``str`` (a subclass would come back as
    ``str``) or a missing value: ``None``, a NaN ``float`` or ``pandas.NA``.
    Unless they are all ``None``, the ``missing`` child lists the missing
    items, in order.
    """
    kinds = set(map(type, values.tolist()))
    others = kinds - {str, type(None)}
    if not others <= {float, type(_pandas().NA)}:
        return None
    known = _known_strings(values)
    if known is None and not others:
        return _texts(values, values == None if kinds != {str} else None)  # noqa: E711
    # coding finds NaN and NA among the floats and others, and tells them apart
    codes, distinct = _coded(values, known)
    if not all(type(item) is str for item in distinct.tolist()):
        return None  # a float that is not NaN
    children = _texts(distinct)
    children["codes"] = codes
    if others:
        children["missing"] = values[codes < 0].tolist()
    return children


def _decoded_texts(parts: dict) -> np.ndarray:
    """The items of ``values`` or ``utf8`` [+ ``mask``] as an object array, None where missing."""
    if "values" in parts:
        texts = np.empty(len(parts["values"]), dtype=object)
        texts[:] = parts["values"]
        return texts
    items = parts["utf8"].decode("utf-8", "surrogatepass").split("\x00")
    texts = np.fromiter(items, dtype=object, count=len(items))
    if "mask" in parts:
        texts[parts["mask"]] = None
    return texts


def _checked_codes(codes: np.ndarray, count: int) -> np.ndarray:
    if len(codes) and (codes.min() < -1 or codes.max() >= count):
        raise ValueError(f"string codes out of range -1 .. {count - 1}")
    return codes


# -- frames and series -----------------------------------------------------------
class DataFrameAdapter(_PandasAdapter):
    kind, type_names, immutable = "pandas.DataFrame", ("DataFrame",), False

    def encode(self, obj):
        columns = obj.columns
        # A view without attrs: extracting columns from obj itself would
        # deep-copy obj.attrs into every column (pandas' __finalize__).
        plain = _pandas().DataFrame(obj, copy=False)
        data = dict(zip(column_keys(columns), (_column(col) for _, col in plain.items())))
        children: dict = {"index": obj.index, "columns": columns, "data": data}
        if obj.attrs:
            children["attrs"] = obj.attrs
        return _frame_flags(obj), children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        frame = pd.DataFrame()
        remember(frame)  # before the children, so cycles through them resolve
        parts = yield children
        index, columns = parts["index"], parts["columns"]
        arrays = list(parts["data"].values())
        if len(arrays) != len(columns):
            raise ValueError(f"{len(arrays)} stored columns for {len(columns)} column labels")
        for a in arrays:
            check_length(a, index, "a stored DataFrame")
        pd.DataFrame.__init__(
            frame,
            {i: _series_input(pd, a, index) for i, a in enumerate(arrays)},
            index=index,
            copy=False,
        )
        frame.columns = columns
        _restore_frame_meta(frame, attrs, parts)
        return frame


def _series_input(pd: Any, values: Any, index: Any) -> Any:
    # pandas infers the "str" dtype from object arrays of strings; a Series
    # with an explicit dtype keeps object columns object.
    if isinstance(values, np.ndarray) and values.dtype.hasobject:
        return pd.Series(values, index=index, dtype=values.dtype, copy=False)
    return values


def _restore_frame_meta(obj: Any, attrs: dict, parts: dict) -> None:
    if "attrs" in parts:
        obj.attrs = parts["attrs"]
    if attrs.get("allows_duplicate_labels") is False:
        obj.flags.allows_duplicate_labels = False


class SeriesAdapter(_PandasAdapter):
    kind, type_names, immutable = "pandas.Series", ("Series",), False

    def encode(self, obj):
        children: dict = {"index": obj.index, "values": _column(obj)}
        if obj.name is not None:
            children["name"] = obj.name
        if obj.attrs:
            children["attrs"] = obj.attrs
        return _frame_flags(obj), children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        series = pd.Series()
        remember(series)
        parts = yield children
        values = parts["values"]
        check_length(values, parts["index"], "a stored Series")
        pd.Series.__init__(
            series,
            values,
            index=parts["index"],
            dtype=values.dtype,
            name=parts.get("name"),
            copy=False,
        )
        _restore_frame_meta(series, attrs, parts)
        return series


# -- indexes -----------------------------------------------------------------------
class IndexAdapter(_PandasAdapter):
    kind = "pandas.Index"
    type_names = (
        "Index",
        "DatetimeIndex",
        "TimedeltaIndex",
        "PeriodIndex",
        "CategoricalIndex",
        "IntervalIndex",
    )

    def encode(self, obj):
        attrs: dict = {}
        children: dict = {"values": _column(obj)}
        if obj.name is not None:
            children["name"] = obj.name
        if isinstance(obj, (_pandas().DatetimeIndex, _pandas().TimedeltaIndex)):
            _freq_layout(obj.freq, attrs, children)
        return attrs, children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        values = parts["values"]
        name = parts.get("name")
        freq = parts["freq"] if "freq" in parts else attrs.get("freq")
        if freq is not None:
            cls = pd.TimedeltaIndex if values.dtype.kind == "m" else pd.DatetimeIndex
            return cls(values, freq=freq, name=name, copy=False)
        return pd.Index(values, dtype=values.dtype, name=name, copy=False)


class RangeIndexAdapter(_PandasAdapter):
    kind, type_names = "pandas.RangeIndex", ("RangeIndex",)

    def encode(self, obj):
        attrs = {"start": obj.start, "stop": obj.stop, "step": obj.step}
        return attrs, {} if obj.name is None else {"name": obj.name}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.RangeIndex(attrs["start"], attrs["stop"], attrs["step"], name=parts.get("name"))


class MultiIndexAdapter(_PandasAdapter):
    kind, type_names = "pandas.MultiIndex", ("MultiIndex",)

    def encode(self, obj):
        attrs = {} if obj.sortorder is None else {"sortorder": obj.sortorder}
        children = {
            "levels": list(obj.levels),
            "codes": [np.asarray(c).view() for c in obj.codes],
            "names": list(obj.names),
        }
        return attrs, children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.MultiIndex(
            levels=parts["levels"],
            codes=parts["codes"],
            sortorder=attrs.get("sortorder"),
            names=parts["names"],
            copy=False,
            verify_integrity=True,
        )


# -- extension arrays ----------------------------------------------------------------
class CategoricalAdapter(_PandasAdapter):
    kind, type_names = "pandas.Categorical", ("Categorical",)

    def encode(self, obj):
        return {"ordered": bool(obj.ordered)}, {
            "codes": np.asarray(obj.codes).view(),
            "categories": obj.categories,
        }

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        dtype = pd.CategoricalDtype(parts["categories"], ordered=attrs["ordered"])
        return pd.Categorical.from_codes(parts["codes"], dtype=dtype)


class MaskedArrayAdapter(_PandasAdapter):
    kind = "pandas.MaskedArray"
    type_names = ("arrays.IntegerArray", "arrays.FloatingArray", "arrays.BooleanArray")

    def encode(self, obj):
        dtype = obj.dtype
        fill = False if dtype.kind == "b" else 0
        data = obj.to_numpy(dtype=dtype.numpy_dtype, na_value=fill)
        return {"dtype": dtype.name}, {"data": data, "mask": np.asarray(obj.isna())}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        dtype = pd.api.types.pandas_dtype(attrs["dtype"])
        return dtype.construct_array_type()(parts["data"], parts["mask"], copy=False)


class StringArrayAdapter(_PandasAdapter):
    kind = "pandas.StringArray"
    type_names = ("arrays.StringArray", "arrays.ArrowStringArray")

    def encode(self, obj):
        dtype = obj.dtype
        attrs = {"storage": dtype.storage, "na": "NA" if dtype.na_value is _pandas().NA else "NaN"}
        if len(obj) <= STRING_LIST_MAX:
            return attrs, {"values": obj.to_numpy(dtype=object, na_value=None).tolist()}
        # no copy for python storage: the strings and the dtype's missing value
        return attrs, _string_layout(obj.to_numpy(dtype=object), obj.isna)

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        texts = _decoded_texts(parts)
        if attrs["na"] == "NA":
            dtype = pd.StringDtype(attrs["storage"])
        else:
            dtype = pd.StringDtype(attrs["storage"], na_value=np.nan)
        if "codes" in parts:  # -1 takes the dtype's missing value
            codes = _checked_codes(parts["codes"], len(texts))
            return pd.array(texts, dtype=dtype).take(codes, allow_fill=True)
        return pd.array(texts, dtype=dtype, copy=False)


class ObjectStrings:
    """An object column of ``str`` and missing values, on its way to an ``ObjectStrings`` node.

    Made by the frame, series and index adapters for a long object column
    whose items qualify (see :func:`_object_strings_layout`); it holds the
    node's children.  Loading gives the object ``ndarray`` back.
    """

    __slots__ = ("children",)

    def __init__(self, children: dict):
        self.children = children


class ObjectStringsAdapter(Adapter):
    kind, types, immutable = "pandas.ObjectStrings", (ObjectStrings,), True

    def encode(self, obj):
        return {}, obj.children

    def decode(self, attrs, children, remember):
        parts = yield children
        texts = _decoded_texts(parts)  # None where missing
        if "codes" not in parts:
            return texts
        codes = _checked_codes(parts["codes"], len(texts))
        lookup = np.empty(len(texts) + 1, dtype=object)  # the last, None, for code -1
        lookup[:-1] = texts
        values = lookup.take(codes)
        if "missing" in parts:
            items = parts["missing"]
            values[codes < 0] = np.fromiter(items, dtype=object, count=len(items))
        return values


class DatetimeArrayAdapter(_PandasAdapter):
    kind, type_names = "pandas.DatetimeArray", ("arrays.DatetimeArray",)

    def encode(self, obj):
        attrs: dict = {}
        children: dict = {}
        if obj.tz is not None:
            _tz_layout(obj.tz, attrs, children)
            obj = obj.tz_convert(None)  # UTC instants
        children["values"] = np.asarray(obj.to_numpy()).view()
        return attrs, children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        values = parts["values"]
        tz = _tz(attrs, parts)
        if tz is None:
            return pd.DatetimeIndex(values, copy=False).array
        # integers with a zone are UTC instants: no copy, unlike tz_localize("UTC")
        unit = np.datetime_data(values.dtype)[0]
        instants = values.astype(f"M8[{unit}]", copy=False).view(np.int64)  # native order
        dtype = pd.DatetimeTZDtype(unit, tz)
        return pd.DatetimeIndex(instants, dtype=dtype, copy=False).array


class TimedeltaArrayAdapter(_PandasAdapter):
    kind, type_names = "pandas.TimedeltaArray", ("arrays.TimedeltaArray",)

    def encode(self, obj):
        return {}, {"values": np.asarray(obj.to_numpy()).view()}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.TimedeltaIndex(parts["values"], copy=False).array


class NumpyExtensionArrayAdapter(_PandasAdapter):
    kind, type_names = "pandas.NumpyExtensionArray", ("arrays.NumpyExtensionArray",)

    def encode(self, obj):
        return {}, {"values": np.asarray(obj.to_numpy()).view()}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.arrays.NumpyExtensionArray(parts["values"])


class PeriodArrayAdapter(_PandasAdapter):
    kind, type_names = "pandas.PeriodArray", ("arrays.PeriodArray",)

    def encode(self, obj):
        return {"freq": obj.freqstr}, {"ordinals": np.asarray(obj.asi8).view()}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.PeriodIndex.from_ordinals(parts["ordinals"], freq=attrs["freq"]).array


class IntervalArrayAdapter(_PandasAdapter):
    kind, type_names = "pandas.IntervalArray", ("arrays.IntervalArray",)

    def encode(self, obj):
        return {"closed": obj.closed}, {"left": obj.left, "right": obj.right}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        return pd.arrays.IntervalArray.from_arrays(
            parts["left"], parts["right"], closed=attrs["closed"]
        )


# -- scalars ---------------------------------------------------------------------------
class TimestampAdapter(_PandasAdapter):
    kind, type_names = "pandas.Timestamp", ("Timestamp",)

    def encode(self, obj):
        attrs: dict = {"v": str(obj.asm8), "unit": obj.unit}  # asm8: UTC when tz-aware
        children: dict = {}
        _tz_layout(obj.tz, attrs, children)
        return attrs, children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        ts = pd.Timestamp(np.datetime64(attrs["v"], attrs["unit"]))
        tz = _tz(attrs, parts)
        return ts if tz is None else ts.tz_localize("UTC").tz_convert(tz)


class TimedeltaAdapter(_PandasAdapter):
    kind, type_names = "pandas.Timedelta", ("Timedelta",)

    def encode(self, obj):
        return {"v": int(obj.asm8.view("i8")), "unit": obj.unit}, {}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        return pd.Timedelta(np.timedelta64(attrs["v"], attrs["unit"]))
        yield  # pragma: no cover


class PeriodAdapter(_PandasAdapter):
    kind, type_names = "pandas.Period", ("Period",)

    def encode(self, obj):
        return {"ordinal": obj.ordinal, "freq": obj.freqstr}, {}

    def decode(self, attrs, children, remember):
        pd = _pandas()
        return pd.Period(ordinal=attrs["ordinal"], freq=attrs["freq"])
        yield  # pragma: no cover


class NaTAdapter(_PandasAdapter):
    kind = "pandas.NaT"

    def pandas_types(self, pd):
        return [type(pd.NaT)]

    def encode(self, obj):
        return {}, {}

    def decode(self, attrs, children, remember):
        return _pandas().NaT
        yield  # pragma: no cover


class NAAdapter(_PandasAdapter):
    kind = "pandas.NA"

    def pandas_types(self, pd):
        return [type(pd.NA)]

    def encode(self, obj):
        return {}, {}

    def decode(self, attrs, children, remember):
        return _pandas().NA
        yield  # pragma: no cover


for _adapter in (
    DataFrameAdapter(),
    SeriesAdapter(),
    IndexAdapter(),
    RangeIndexAdapter(),
    MultiIndexAdapter(),
    CategoricalAdapter(),
    MaskedArrayAdapter(),
    StringArrayAdapter(),
    ObjectStringsAdapter(),
    DatetimeArrayAdapter(),
    TimedeltaArrayAdapter(),
    NumpyExtensionArrayAdapter(),
    PeriodArrayAdapter(),
    IntervalArrayAdapter(),
    TimestampAdapter(),
    TimedeltaAdapter(),
    PeriodAdapter(),
    NaTAdapter(),
    NAAdapter(),
):
    register_adapter(_adapter)


def column_series(values: Any, index: Any, label: Any) -> Any:
    """One stored column of a frame as the ``Series`` ``frame[label]`` would be.

    Used by partial loads of a column by its name (``path="table/energy"``),
    which read the frame's index, its labels and that column only.
    """
    pd = _pandas()
    return pd.Series(values, index=index, dtype=values.dtype, name=label, copy=False)
