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
    with one child per item); an extension dtype: its pandas array node.
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
    ``na`` (``"NaN"`` or ``"NA"``, the missing-value marker).  Up to
    :data:`STRING_LIST_MAX` items, or when a string contains NUL: child
    ``values``, a list of ``str`` (``None`` where missing), readable in a
    JSON record.  Otherwise: children ``utf8`` (the strings joined by NUL
    characters, UTF-8, surrogates passed through; ``""`` where missing)
    and ``[mask]`` (bool array, True where missing), so a text column is
    one native leaf, not one record entry per string.
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

import sys
from collections import Counter
from typing import Any

import numpy as np

from tinystore.objects.encode import is_key
from tinystore.objects.registry import Adapter, register_adapter

#: String arrays up to this length are stored as a list of ``str`` (readable
#: in a JSON record); longer ones as one NUL-joined UTF-8 leaf plus a mask.
STRING_LIST_MAX = 256


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
    loaded objects never share a column array.
    """
    if isinstance(values.dtype, np.dtype):
        return np.asarray(values.to_numpy()).view()
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
    return parts["tz"] if "tz" in parts else attrs.get("tz")


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
        texts = obj.to_numpy(dtype=object, na_value="")
        joined = "\x00".join(texts)
        if joined.count("\x00") != len(texts) - 1:  # a string holds NUL: keep them apart
            return attrs, {"values": obj.to_numpy(dtype=object, na_value=None).tolist()}
        children: dict = {"utf8": joined.encode("utf-8", "surrogatepass")}
        mask = np.asarray(obj.isna())
        if mask.any():
            children["mask"] = mask
        return attrs, children

    def decode(self, attrs, children, remember):
        pd = _pandas()
        parts = yield children
        if "values" in parts:
            values = np.empty(len(parts["values"]), dtype=object)
            values[:] = parts["values"]
        else:
            values = np.array(
                parts["utf8"].decode("utf-8", "surrogatepass").split("\x00"), dtype=object
            )
            if "mask" in parts:
                values[parts["mask"]] = None
        if attrs["na"] == "NA":
            dtype = pd.StringDtype(attrs["storage"])
        else:
            dtype = pd.StringDtype(attrs["storage"], na_value=np.nan)
        return pd.array(values, dtype=dtype, copy=False)


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
        index = pd.DatetimeIndex(parts["values"], copy=False)
        tz = _tz(attrs, parts)
        if tz is not None:
            index = index.tz_localize("UTC").tz_convert(tz)
        return index.array


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
