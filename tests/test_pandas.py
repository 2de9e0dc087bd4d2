"""pandas objects round-trip exactly, column by column, on every backend (issue 4).

Every test runs on the memory, HDF5 and JSON-directory backends (the
``roundtrip``/``store``/``filename`` fixtures).  Equality is pandas' own,
at its strictest: exact values, dtypes, index and column classes, flags,
frequencies and ``attrs``.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import zoneinfo

import numpy as np
import pandas as pd
import pandas.testing as tm
import pytest
from dateutil import tz as dateutil_tz

import tinystore
from tinystore.objects.adapters.pandas import STRING_LIST_MAX, _code_dtype, column_keys
from tinystore.objects.registry import adapter_for_kind
from tinystore.storage.base import Tree

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "helpers"))
from procs import child_env  # noqa: E402

N = 100_000
#: Node kinds that would mean pandas internals or pickle bytes were stored.
FOREIGN_KINDS = {"reduce", "obj", "global", "cloudpickle"}


def assert_same(a, b) -> None:
    """Strictest pandas equality, plus exact type, ``attrs`` and frequencies."""
    assert type(a) is type(b)
    if isinstance(a, pd.DataFrame):
        tm.assert_frame_equal(
            a,
            b,
            check_exact=True,
            check_dtype=True,
            check_index_type=True,
            check_column_type=True,
            check_frame_type=True,
            check_names=True,
            check_categorical=True,
            check_flags=True,
            check_freq=True,
        )
        assert a.attrs == b.attrs
        assert_same(a.index, b.index)
        assert_same(a.columns, b.columns)
    elif isinstance(a, pd.Series):
        tm.assert_series_equal(
            a,
            b,
            check_exact=True,
            check_dtype=True,
            check_index_type=True,
            check_series_type=True,
            check_names=True,
            check_categorical=True,
            check_flags=True,
            check_freq=True,
        )
        assert a.attrs == b.attrs
        assert_same(a.index, b.index)
    elif isinstance(a, pd.Index):
        tm.assert_index_equal(a, b, exact=True, check_exact=True, check_categorical=True)
        assert a.names == b.names
        if isinstance(a, pd.MultiIndex):
            assert a.sortorder == b.sortorder
            for la, lb in zip(a.levels, b.levels):
                tm.assert_index_equal(la, lb, exact=True, check_exact=True)
        if hasattr(a, "freq"):
            assert a.freq == b.freq
    elif isinstance(a, pd.api.extensions.ExtensionArray):
        tm.assert_extension_array_equal(a, b, check_exact=True)
        assert a.dtype == b.dtype
    else:
        assert a is b if a is pd.NaT or a is pd.NA else a == b


def kinds(tree) -> set:
    """Every node kind in an encoded tree."""
    found = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if type(node) is Tree:
            found.add(node.attrs.get("t"))
            c = node.children
            stack.extend(c if type(c) is list else c.values())
    return found


def mixed_frame(n: int = N) -> pd.DataFrame:
    rng = np.random.default_rng(4)
    return pd.DataFrame(
        {
            "energy": rng.normal(size=n),
            "count": rng.integers(0, 1000, n).astype(np.int32),
            "converged": rng.random(n) < 0.5,
            "time": pd.date_range("2024-01-01", periods=n, freq="s", tz="UTC").as_unit("ns"),
            "phase": pd.Categorical(rng.choice(["fcc", "bcc", "hcp"], n)),
            "label": [f"structure-{i}" for i in rng.integers(0, 10**6, n)],
        }
    )


# -- the big mixed frame -------------------------------------------------------------
def test_big_mixed_frame_roundtrip(roundtrip):
    df = mixed_frame()
    assert [str(t) for t in df.dtypes] == [
        "float64", "int32", "bool", "datetime64[ns, UTC]", "category", "str",
    ]  # fmt: skip
    loaded = roundtrip(df)
    assert_same(df, loaded)


def test_partial_load_of_one_column(store):
    df = mixed_frame()
    store["df"] = df
    energy = store["df/data/energy"]
    assert type(energy) is np.ndarray
    np.testing.assert_array_equal(energy, df["energy"].to_numpy())
    assert energy.dtype == np.float64
    phase = store["df/data/phase"]
    tm.assert_extension_array_equal(phase, df["phase"].array)
    assert_same(store["df/index"], df.index)
    assert_same(store["df/columns"], df.columns)
    assert_same(store["df/data/time"], df["time"].array)
    assert_same(store["df/data/label"], df["label"].array)


def test_columns_are_native_array_leaves(filename):
    df = mixed_frame()
    tinystore.save({"df": df}, filename)
    with tinystore.open(filename, "r") as s:
        assert type(s["df/data/energy"]) is np.ndarray
        assert type(s["df/data/count"]) is np.ndarray
        tree = s.read_tree()
    frame = tree.children["df"]
    assert frame.attrs["t"] == "pandas.DataFrame"
    data = frame.children["data"].children
    assert list(data) == list(df.columns)
    for name, dtype in [("energy", "<f8"), ("count", "<i4"), ("converged", "|b1")]:
        column = data[name]
        assert type(column) is np.ndarray and column.dtype == np.dtype(dtype)
        assert column.shape == (N,)
    time = data["time"]
    assert time.attrs == {"t": "pandas.DatetimeArray", "tz": "UTC"}
    assert type(time.children["values"]) is np.ndarray
    assert time.children["values"].dtype == np.dtype("M8[ns]")
    phase = data["phase"]
    assert phase.attrs["t"] == "pandas.Categorical"
    assert type(phase.children["codes"]) is np.ndarray
    assert phase.children["codes"].dtype == np.int8
    label = data["label"]
    assert label.attrs == {"t": "pandas.StringArray", "storage": "python", "na": "NaN"}
    assert set(label.children) == {"utf8"} and type(label.children["utf8"]) is bytes
    assert not kinds(tree) & FOREIGN_KINDS


# -- dtypes -------------------------------------------------------------------------------
def _frame(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
FRAMES = {
    "numpy-dtypes": lambda: _frame(
        f8=np.linspace(0, 1, 7),
        f4=np.arange(7, dtype=np.float32) / 3,
        f2=np.arange(7, dtype=np.float16),
        i1=np.arange(-3, 4, dtype=np.int8),
        u8=np.array([0, 1, 2, 3, 4, 5, 2**64 - 1], dtype=np.uint64),
        c16=np.arange(7) * (1 + 2j),
        b=np.arange(7) % 2 == 0,
        big_endian=np.arange(7, dtype=">f8"),
        nan=np.array([np.nan, -0.0, np.inf, -np.inf, 1e-300, 5e-324, 1.5]),
    ),
    "datetimes": lambda: _frame(
        ns=pd.date_range("2000-01-01", periods=4, freq="37min").as_unit("ns"),
        s=pd.date_range("1500-01-01", periods=4, freq="D").as_unit("s"),
        td=pd.to_timedelta([1, 2, None, 4], unit="ms"),
        nat=pd.to_datetime(
            ["2020-01-01", None, "2021-06-30 12:00:00.000000001", None], format="ISO8601"
        ),
    ),
    "timezones": lambda: _frame(
        utc=pd.date_range("2020-03-29", periods=5, freq="h", tz="UTC"),
        berlin=pd.date_range("2020-03-29", periods=5, freq="h", tz=BERLIN).as_unit("ns"),
        fixed=pd.date_range(
            "2020", periods=5, tz=datetime.timezone(datetime.timedelta(hours=-3, minutes=-30))
        ),
        dateutil=pd.date_range("2020", periods=5, tz=dateutil_tz.gettz("Asia/Tokyo")),
        missing=pd.to_datetime(
            [None, "2020-01-01", None, "2020-10-25 02:30", None], format="ISO8601"
        ).tz_localize("UTC"),
    ),
    "categoricals": lambda: _frame(
        plain=pd.Categorical(["a", "b", None, "a"]),
        ordered=pd.Categorical(
            ["lo", "hi", "mid", "lo"], categories=["lo", "mid", "hi"], ordered=True
        ),
        ints=pd.Categorical([3, 1, 2, 3], categories=[3, 2, 1, 0]),
        unused=pd.Categorical(["x", "x", "x", "x"], categories=["x", "y"]),
        many=pd.Categorical(  # int16 codes
            [f"c{i}" for i in range(300, 304)], categories=[f"c{i}" for i in range(400)]
        ),
        dates=pd.Categorical(pd.date_range("2020", periods=4, tz=BERLIN)),
    ),
    "nullable": lambda: _frame(
        Int64=pd.array([1, None, -(2**63), 2**63 - 1], dtype="Int64"),
        UInt8=pd.array([0, 255, None, 7], dtype="UInt8"),
        Int16=pd.array([1, 2, 3, 4], dtype="Int16"),
        Float64=pd.array([0.5, None, -0.0, 1e300], dtype="Float64"),
        Float32=pd.array([None, None, None, None], dtype="Float32"),
        boolean=pd.array([True, False, None, True], dtype="boolean"),
    ),
    "strings": lambda: _frame(
        string=pd.array(["a", None, "ü∂", ""], dtype="string"),
        str=pd.array(["x", None, "", "\U0001f600"], dtype="str"),
        object=pd.Series(["a", 1, None, (2, 3)], dtype=object),
        object_str=pd.Series(["a", "b", "c", "d"], dtype=object),
        object_nan=pd.Series([np.nan, pd.NA, pd.NaT, None], dtype=object),
    ),
    "scalars-in-object-column": lambda: _frame(
        o=pd.Series(
            [
                pd.Timestamp("2020-01-01 12:00:00.000000001", tz=BERLIN),
                pd.Timestamp("1677-09-22").as_unit("s"),
                pd.Timedelta(5, unit="ms"),
                pd.Period("2020-03", freq="M"),
            ],
            dtype=object,
        )
    ),
    "long-strings-with-missing": lambda: _frame(
        str=pd.array([None if not i % 7 else f"ß{i}" * (i % 5) for i in range(1000)], dtype="str"),
        string=pd.array([None if not i % 3 else f"\ud800{i}" for i in range(1000)], dtype="string"),
        nul=pd.array(["a\x00b" if i % 2 else "" for i in range(1000)], dtype="str"),
        no_missing=pd.array([f"row {i}" for i in range(1000)], dtype="string"),
    ),
    "duplicate-labels": lambda: pd.DataFrame(
        [[1, 2.0, "a"], [3, 4.0, "b"]], columns=["x", "x", "y"]
    ),
    "int-labels": lambda: pd.DataFrame({0: [1.0], 1: ["a"], 7: [True]}),
    "colliding-labels": lambda: pd.DataFrame(
        {0: [1], "0": [2], "1": [3], 1: [4], "a/b": [5], "": [6]}
    ),
    "tuple-labels": lambda: pd.DataFrame({("a", 1): [1], ("a", 2): [2], "b": [3]}),
    "mixed-labels": lambda: pd.DataFrame({None: [1], 2.5: [2], "x": [3]}),
    "multiindex-columns": lambda: pd.DataFrame(
        np.arange(12.0).reshape(3, 4),
        columns=pd.MultiIndex.from_product([["a", "b"], [1, 2]], names=["letter", "number"]),
    ),
    "multiindex-rows": lambda: pd.DataFrame(
        {"v": [1, 2, 3, 4]},
        index=pd.MultiIndex.from_arrays(
            [["x", "x", "y", None], pd.to_datetime(["2020", "2021", "2020", "2021"])],
            names=["k", None],
        ),
    ),
    "named-axes": lambda: pd.DataFrame(
        {"a": [1, 2]}, index=pd.Index([10, 20], name="row")
    ).rename_axis(columns="col"),
    "datetime-index-freq": lambda: pd.DataFrame(
        {"v": np.arange(5.0)},
        index=pd.date_range("2020", periods=5, freq="2D", tz=BERLIN, name="t"),
    ),
    "business-freq": lambda: pd.DataFrame(
        {"v": np.arange(5)}, index=pd.date_range("2024-01-01", periods=5, freq="B")
    ),
    "custom-freq": lambda: pd.DataFrame(
        {"v": np.arange(3)},
        index=pd.date_range(
            "2024-01-01", periods=3, freq=pd.offsets.CustomBusinessDay(holidays=["2024-01-02"])
        ),
    ),
    "timedelta-index": lambda: pd.DataFrame(
        {"v": [1, 2, 3]}, index=pd.timedelta_range(0, periods=3, freq="15s")
    ),
    "period-index": lambda: pd.DataFrame(
        {"v": [1, 2, 3]}, index=pd.period_range("2020Q1", periods=3, freq="Q")
    ),
    "categorical-index": lambda: pd.DataFrame(
        {"v": [1, 2, 3]},
        index=pd.CategoricalIndex(["b", "a", "b"], categories=["b", "a"], ordered=True, name="c"),
    ),
    "interval-index": lambda: pd.DataFrame(
        {"v": [1, 2, 3]}, index=pd.interval_range(0, 3, closed="left")
    ),
    "range-index-step": lambda: pd.DataFrame(
        {"v": [1, 2, 3]}, index=pd.RangeIndex(10, -5, -5, name="r")
    ),
    "object-index": lambda: pd.DataFrame({"v": [1, 2]}, index=pd.Index(["a", 1], dtype=object)),
    "duplicate-index": lambda: pd.DataFrame(
        {"v": [1, 2, 3], "o": ["a", "b", None]}, index=[5, 5, 1]
    ),
    "empty": lambda: pd.DataFrame(),
    "empty-rows": lambda: pd.DataFrame(
        {"a": np.array([], dtype=np.int16), "b": pd.array([], dtype="str"), "c": pd.Categorical([])}
    ),
    "empty-columns": lambda: pd.DataFrame(index=pd.date_range("2020", periods=3, name="t")),
    "from-2d-block": lambda: pd.DataFrame(np.arange(20.0).reshape(4, 5), columns=list("abcde")),
    "fortran-block": lambda: pd.DataFrame(np.asfortranarray(np.arange(20).reshape(4, 5))),
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_frame_roundtrip(roundtrip, name):
    df = FRAMES[name]()
    loaded = roundtrip({"df": df})["df"]
    assert_same(df, loaded)
    for label in range(df.shape[1]):
        a, b = df.iloc[:, label], loaded.iloc[:, label]
        assert a.dtype == b.dtype
        if isinstance(a.dtype, np.dtype):
            assert a.to_numpy().dtype.str == b.to_numpy().dtype.str  # byte order too


def test_attrs_and_flags(roundtrip):
    df = pd.DataFrame({"a": [1, 2]}).set_flags(allows_duplicate_labels=False)
    df.attrs = {"units": {"a": "eV"}, 3: [1, 2], "note": None}
    series = pd.Series([1.5], name=("energy", 1)).set_flags(allows_duplicate_labels=False)
    series.attrs["source"] = "dft"
    loaded = roundtrip([df, series])
    assert_same(df, loaded[0])
    assert_same(series, loaded[1])
    assert loaded[0].flags.allows_duplicate_labels is False
    assert loaded[1].flags.allows_duplicate_labels is False
    assert loaded[0].attrs == {"units": {"a": "eV"}, 3: [1, 2], "note": None}


SERIES = {
    "float": lambda: pd.Series(np.arange(5.0), name="x"),
    "no-name": lambda: pd.Series([1, 2, 3]),
    "int-name": lambda: pd.Series([1, 2], name=0),
    "tuple-name": lambda: pd.Series([1, 2], name=("a", "b")),
    "tz": lambda: pd.Series(pd.date_range("2020", periods=3, tz="UTC"), name="t"),
    "categorical": lambda: pd.Series(pd.Categorical(["a", "b", "a"], ordered=True)),
    "Int64": lambda: pd.Series([1, None], dtype="Int64"),
    "str": lambda: pd.Series(["a", None, "c"]),
    "object": lambda: pd.Series([{"a": 1}, [1, 2], None]),
    "period": lambda: pd.Series(pd.period_range("2020-01", periods=3, freq="M")),
    "interval": lambda: pd.Series(
        pd.arrays.IntervalArray.from_tuples([(0, 1.5), None, (2.0, 3.0)])
    ),
    "timedelta": lambda: pd.Series(pd.to_timedelta([1, None], unit="D")),
    "datetime-index": lambda: pd.Series(
        [1.0, 2.0, 3.0], index=pd.date_range("2020", periods=3, freq="h", tz=BERLIN)
    ),
    "empty": lambda: pd.Series([], dtype="float32"),
}


@pytest.mark.parametrize("name", sorted(SERIES))
def test_series_roundtrip(roundtrip, name):
    series = SERIES[name]()
    assert_same(series, roundtrip({"s": series})["s"])


INDEXES = {
    "range": lambda: pd.RangeIndex(3, 30, 3, name="r"),
    "empty-range": lambda: pd.RangeIndex(0),
    "int64": lambda: pd.Index([3, 1, 2], dtype=np.int64, name="i"),
    "uint8": lambda: pd.Index([3, 1, 2], dtype=np.uint8),
    "float": lambda: pd.Index([0.5, np.nan]),
    "bool": lambda: pd.Index([True, False]),
    "str": lambda: pd.Index(["a", "b", None]),
    "string": lambda: pd.Index(["a", "b", None], dtype="string"),
    "object": lambda: pd.Index(["a", 1, None], dtype=object),
    "Int64": lambda: pd.Index([1, None], dtype="Int64"),
    "datetime-freq": lambda: pd.date_range("2020", periods=4, freq="W-WED", name="week"),
    "datetime-tz-freq": lambda: pd.date_range("2020-10-24", periods=50, freq="h", tz=BERLIN),
    "datetime-no-freq": lambda: pd.DatetimeIndex(["2020-01-01", "2019-01-01"]),
    "timedelta-freq": lambda: pd.timedelta_range("1D", periods=3, freq="6h"),
    "period": lambda: pd.period_range("2020-01-01", periods=3, freq="D", name="p"),
    "categorical": lambda: pd.CategoricalIndex(["x", "y", "x"]),
    "interval": lambda: pd.interval_range(pd.Timestamp("2020"), periods=3, freq="D"),
    "multi": lambda: pd.MultiIndex.from_product([[1, 2], ["a", "b"]], names=["n", "l"]),
    "multi-sortorder": lambda: pd.MultiIndex(
        levels=[[0, 1], ["a", "b", "unused"]], codes=[[0, 0, 1], [0, 1, 1]], sortorder=0
    ),
    "multi-missing": lambda: pd.MultiIndex.from_tuples([(1, None), (np.nan, "x")]),
}


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_index_roundtrip(roundtrip, name):
    index = INDEXES[name]()
    assert_same(index, roundtrip({"i": index})["i"])


SCALARS = {
    "timestamp-naive": pd.Timestamp("2020-01-01 00:00:00.000000001"),
    "timestamp-unit-s": pd.Timestamp("1000-01-01 12:00:00").as_unit("s"),
    "timestamp-utc": pd.Timestamp("2020-01-01", tz="UTC").as_unit("ms"),
    "timestamp-berlin-fold": pd.Timestamp("2020-10-25 00:30", tz="UTC").tz_convert(BERLIN)
    + pd.Timedelta(hours=1),
    "timestamp-dateutil": pd.Timestamp("2020-06-01", tz=dateutil_tz.gettz("America/New_York")),
    "timedelta": pd.Timedelta(1234567, unit="us").as_unit("us"),
    "timedelta-ns": pd.Timedelta(-1),
    "period": pd.Period("2020-02-29", freq="D"),
    "period-quarter": pd.Period("2020Q3", freq="Q-MAR"),
    "nat": pd.NaT,
    "na": pd.NA,
}


@pytest.mark.parametrize("name", sorted(SCALARS))
def test_scalar_roundtrip(roundtrip, name):
    value = SCALARS[name]
    loaded = roundtrip([value])[0]
    assert type(loaded) is type(value)
    assert_same(value, loaded)
    if isinstance(value, (pd.Timestamp, pd.Timedelta)):
        assert loaded.unit == value.unit
    if isinstance(value, pd.Timestamp):
        assert loaded.tz == value.tz and loaded.fold == value.fold
        assert loaded.utcoffset() == value.utcoffset()


ARRAYS = {
    "categorical": lambda: pd.Categorical(["a", None], categories=["b", "a"]),
    "integer": lambda: pd.array([1, None], dtype="Int32"),
    "string": lambda: pd.array(["a", None], dtype="string"),
    "datetime-tz": lambda: pd.array(pd.date_range("2020", periods=2, tz=BERLIN)),
    "datetime-naive": lambda: pd.array(pd.date_range("2020", periods=2).as_unit("s")),
    "timedelta": lambda: pd.array(pd.to_timedelta([1, None], unit="s")),
    "numpy": lambda: pd.arrays.NumpyExtensionArray(np.array([1.5, 2.5])),
    "period": lambda: pd.array(pd.period_range("2020", periods=2, freq="Y")),
    "interval": lambda: pd.arrays.IntervalArray.from_breaks([1, 2, 3], closed="both"),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
def test_extension_array_roundtrip(roundtrip, name):
    array = ARRAYS[name]()
    loaded = roundtrip([array])[0]
    assert type(loaded) is type(array)
    assert_same(array, loaded)


def test_layout_uses_no_pandas_internals(filename):
    objects = [FRAMES[name]() for name in FRAMES if name not in ("timezones", "custom-freq")]
    objects += [SERIES[name]() for name in SERIES]
    objects += [INDEXES[name]() for name in INDEXES]
    objects += [ARRAYS[name]() for name in ARRAYS]
    tinystore.save(objects, filename)
    with tinystore.open(filename, "r") as s:
        assert not kinds(s.read_tree()) & FOREIGN_KINDS


def test_exotic_zones_and_offsets_are_stored_as_objects(filename):
    df = FRAMES["timezones"]()
    tinystore.save(df, filename)
    with tinystore.open(filename, "r") as s:
        assert s["data/berlin"].tz is BERLIN
        assert s.read_tree().children["data"].children["berlin"].attrs["tz"] == "Europe/Berlin"
        assert s["data/dateutil"].tz == dateutil_tz.gettz("Asia/Tokyo")
    assert_same(df, tinystore.load(filename))


# -- string columns ----------------------------------------------------------------------
LONG = 20 * STRING_LIST_MAX  # rows of the long string columns below


class Text(str):
    """A str subclass: object columns holding one keep the generic layout."""


def _objects(items) -> np.ndarray:
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array


def _words(count: int, rows: int = LONG, seed: int = 1) -> np.ndarray:
    words = _objects([f"w{i}-ü" for i in range(count)])
    return words[np.random.default_rng(seed).integers(0, count, rows)]


def _with(items, every: int, value, start: int = 0) -> np.ndarray:
    items = _objects(list(items))
    items[start::every] = [value] * len(items[start::every])
    return items


def _column_node(store, key: str):
    """The node of the column stored at ``key`` (a series' values, or the value itself)."""
    node = store.read_tree().children[key]
    if node.attrs.get("t") in ("pandas.Series", "pandas.Index"):
        node = node.children["values"]
    return node


def _layout(node) -> str:
    """``"list"``, ``"utf8"``, ``"coded list"`` or ``"coded utf8"``, checking the leaves."""
    c = node.children
    texts = "utf8" if "utf8" in c else "list"
    assert ("utf8" in c) != ("values" in c)
    if "utf8" in c:
        assert type(c["utf8"]) is bytes
    else:
        assert all(type(t) is str or t is None for t in c["values"].children)
    if "mask" in c:
        assert texts == "utf8" and type(c["mask"]) is np.ndarray and c["mask"].dtype == bool
    if "codes" not in c:
        return texts
    codes = c["codes"]
    assert type(codes) is np.ndarray and codes.dtype.kind == "i" and codes.ndim == 1
    return "coded " + texts


def assert_same_items(a, b) -> None:
    """Same length and, item by item, the same type and value (NaN for NaN)."""
    a, b = list(a), list(b)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y), (x, y)
        if x is None or x is pd.NA or x is pd.NaT:
            assert y is x
        elif isinstance(x, (float, np.floating)) and np.isnan(x):
            assert np.isnan(y)
        else:
            assert x == y


STRING_ARRAYS = {  # name: (items, layout of a long array)
    "repeated": (lambda: _words(64), "coded list"),
    "repeated-missing": (lambda: _with(_words(64), 7, None), "coded list"),
    "repeated-300": (lambda: _words(300), "coded utf8"),  # int16 codes, joined strings
    "repeated-nul": (lambda: _with(_words(5), 3, "a\x00b"), "coded list"),
    "repeated-surrogates": (lambda: _with(_words(5), 4, "\ud800x"), "coded list"),
    "one-rare": (lambda: _with(_words(3), LONG, "rare", start=LONG // 2 + 1), "coded list"),
    "empty-strings": (lambda: _objects([""] * LONG), "coded list"),
    "all-missing": (lambda: _objects([None] * LONG), "coded list"),
    "distinct": (lambda: _objects([f"row {i}" for i in range(LONG)]), "utf8"),
    "distinct-missing": (
        lambda: _with([f"ß{i}\ud800" * (i % 3) for i in range(LONG)], 5, None),
        "utf8",
    ),
    "distinct-nul": (lambda: _objects([f"{i}\x00" for i in range(LONG)]), "list"),
    "short": (lambda: _with(_words(2, STRING_LIST_MAX), 2, None), "list"),
    "empty": (lambda: _objects([]), "list"),
}


@pytest.mark.parametrize("dtype", ["str", "string"])
@pytest.mark.parametrize("name", sorted(STRING_ARRAYS))
def test_string_array_layouts(store, name, dtype):
    make, layout = STRING_ARRAYS[name]
    array = pd.array(make(), dtype=dtype)
    series = pd.Series(array, name="s")
    store["a"] = array
    store["s"] = series
    node = _column_node(store, "a")
    assert node.attrs["t"] == "pandas.StringArray"
    assert node.attrs["na"] == ("NaN" if dtype == "str" else "NA")
    assert _layout(node) == layout
    assert _layout(_column_node(store, "s")) == layout
    loaded = store["a"]
    assert_same(array, loaded)
    assert_same_items(array, loaded)  # the missing value of the dtype, in place
    assert_same(series, store["s"])


def test_coded_strings_are_small_codes_into_distinct_strings(store):
    items = _with(_words(100, rows=10_000), 10, None)
    store["a"] = pd.array(items, dtype="str")
    c = _column_node(store, "a").children
    assert c["codes"].dtype == np.int8 and len(c["codes"]) == len(items)
    distinct = c["values"].children
    assert sorted(distinct) == sorted(set(items.tolist()) - {None})
    rows = [None if code < 0 else distinct[code] for code in c["codes"]]
    assert rows == items.tolist()
    many = pd.array(_words(1000, rows=100_000), dtype="string")
    store["b"] = many
    assert _column_node(store, "b").children["codes"].dtype == np.int16
    assert_same(many, store["b"])


def test_strings_of_the_sample_are_looked_up_not_factorized(store, monkeypatch):
    factorized = []
    factorize = pd.factorize
    monkeypatch.setattr(pd, "factorize", lambda v: factorized.append(len(v)) or factorize(v))
    store["a"] = pd.array(_words(64), dtype="str")  # all strings are in the sample
    assert factorized == []
    rare = STRING_ARRAYS["one-rare"][0]()
    store["b"] = pd.array(rare, dtype="str")
    assert factorized == [1]  # only the string the sample missed
    store["c"] = pd.array(_words(5000, rows=100_000), dtype="str")  # the sample misses many
    assert factorized == [1, 100_000]  # factorize all
    assert _layout(_column_node(store, "c")) == "coded utf8"
    monkeypatch.undo()
    assert_same(pd.array(rare, dtype="str"), store["b"])


def test_code_dtypes():
    assert [_code_dtype(n) for n in (0, 1, 128, 129, 2**15, 2**15 + 1)] == [
        np.int8, np.int8, np.int8, np.int16, np.int16, np.int32,
    ]  # fmt: skip
    assert _code_dtype(2**31) == np.int32 and _code_dtype(2**31 + 1) == np.int64


def test_mostly_distinct_strings_are_not_coded(store):
    quarter = pd.array(_words(LONG // 2), dtype="str")  # about 40% of the rows distinct
    store["a"] = quarter
    assert _layout(_column_node(store, "a")) == "utf8"
    assert_same(quarter, store["a"])


OBJECT_COLUMNS = {  # name: (items, layout of the ObjectStrings node, or None: an ndarray node)
    "repeated": (lambda: _words(64), "coded list"),
    "repeated-none": (lambda: _with(_words(64), 3, None), "coded list"),
    "repeated-nan-na": (
        lambda: _with(_with(_with(_words(64), 5, None), 7, np.nan, 1), 11, pd.NA, 2),
        "coded list",
    ),
    "repeated-float-nan": (lambda: _with(_words(3), 9, float("nan")), "coded list"),
    "distinct": (lambda: _objects([f"row {i}" for i in range(LONG)]), "utf8"),
    "distinct-none": (lambda: _with([f"row {i}" for i in range(LONG)], 4, None), "utf8"),
    "distinct-nan": (  # NaN: coded whatever the strings, to tell NaN from None
        lambda: _with(_with([f"row {i}" for i in range(LONG)], 4, None), 9, np.nan),
        "coded utf8",
    ),
    "distinct-nul": (lambda: _objects([f"{i}\x00" for i in range(LONG)]), "list"),
    "all-none": (lambda: _objects([None] * LONG), "coded list"),
    "all-nan": (lambda: _objects([np.nan] * LONG), "coded list"),
    "short": (lambda: _with(_words(2, STRING_LIST_MAX), 2, None), None),
    "subclass": (lambda: _with(_words(3), LONG, Text("w0-ü"), start=LONG - 1), None),
    "number": (lambda: _with(_words(3), LONG, 1.5, start=LONG - 1), None),
    "float32-nan": (lambda: _with(_words(3), LONG, np.float32("nan")), None),
    "nat": (lambda: _with(_words(3), 5, pd.NaT), None),
    "bytes": (lambda: _with(_words(3), 5, b"w0"), None),
    "mixed": (lambda: _with(_words(3), 2, 7), None),
}


@pytest.mark.parametrize("name", sorted(OBJECT_COLUMNS))
def test_object_string_columns(store, name):
    make, layout = OBJECT_COLUMNS[name]
    items = make()
    series = pd.Series(items, dtype=object, name="o")
    frame = pd.DataFrame({"o": series, "x": np.arange(len(items))})
    index = pd.Index(items, dtype=object)
    store["s"] = series
    store["df"] = frame
    store["i"] = index
    node = _column_node(store, "s")
    if layout is None:
        assert node.attrs["t"] == "ndarray"
    else:
        assert node.attrs == {"t": "pandas.ObjectStrings"}
        assert _layout(node) == layout
        missing = [x for x in items if x is not None and not isinstance(x, str)]
        assert ("missing" in node.children) == bool(missing)
    assert _column_node(store, "i").attrs == node.attrs
    loaded = store["s"]
    assert_same(series, loaded)
    assert_same_items(items, loaded)
    assert_same(frame, store["df"])
    assert_same_items(items, store["df"]["o"])
    assert_same(index, store["i"])
    assert_same_items(items, store["i"])
    column = store["df/data/o"]  # the column alone: the object array
    assert type(column) is np.ndarray and column.dtype == object
    assert_same_items(items, column)


def test_string_columns_of_empty_frames(roundtrip):
    empty = pd.DataFrame(
        {
            "str": pd.array([], dtype="str"),
            "string": pd.array([], dtype="string"),
            "object": pd.Series([], dtype=object),
        }
    )
    loaded = roundtrip({"empty": empty, "no-rows": empty.iloc[:0, :0]})
    assert_same(empty, loaded["empty"])
    assert_same(empty.iloc[:0, :0], loaded["no-rows"])


def test_frame_of_string_columns(roundtrip):
    rows = 50_000
    words = _words(64, rows=rows)
    df = pd.DataFrame(
        {
            "str": pd.array(_with(words, 3, None), dtype="str"),
            "string": pd.array(_with(words, 5, None), dtype="string"),
            "object": pd.Series(_with(_with(words, 3, None), 5, np.nan, 1), dtype=object),
            "distinct": [f"row {i}" for i in range(rows)],
        },
        index=pd.Index(_words(1000, rows=rows, seed=2), dtype="str", name="key"),
    )
    loaded = roundtrip(df)
    assert_same(df, loaded)
    for name in df:
        assert_same_items(df[name], loaded[name])
    assert_same_items(df.index, loaded.index)


def test_coded_strings_load_as_few_string_objects(roundtrip):
    df = pd.DataFrame({"s": pd.array(_words(8), dtype="str"), "o": _words(8).astype(object)})
    loaded = roundtrip(df)
    for name in df:
        assert len({id(x) for x in loaded[name].tolist()}) == 8  # as pickle loads them


def _decode(kind: str, attrs: dict, parts: dict):
    """Run the decoder of the adapter of ``kind`` on already decoded children."""
    steps = adapter_for_kind(kind).decode(attrs, parts, lambda obj: None)
    next(steps)
    with pytest.raises(StopIteration) as done:
        steps.send(parts)
    return done.value.value


@pytest.mark.parametrize("codes", [[0, 2], [-2, 0]])
def test_damaged_string_codes_are_refused(codes):
    parts = {"values": ["a", "b"], "codes": np.array(codes, dtype=np.int8)}
    for kind, attrs in [
        ("pandas.ObjectStrings", {}),
        ("pandas.StringArray", {"storage": "python", "na": "NA"}),
    ]:
        with pytest.raises(ValueError, match="codes"):
            _decode(kind, attrs, parts)
    good = {"values": ["a", "b"], "codes": np.array([1, -1, 0], dtype=np.int8)}
    assert_same_items(_decode("pandas.ObjectStrings", {}, good), ["b", None, "a"])


def test_string_layouts(store):
    short = pd.array(["a", None], dtype="str")
    long = pd.array([None, "b\ud800", "ü"] * STRING_LIST_MAX, dtype="string")
    with_nul = pd.array(["\x00"] * (STRING_LIST_MAX + 1), dtype="string")
    distinct = pd.array([None] + [f"{i}" for i in range(STRING_LIST_MAX)], dtype="string")
    store["x"] = [short, long, with_nul, distinct]
    tree = store.read_tree().children["x"].children
    assert tree[0].children["values"].children == ["a", None]
    assert set(tree[1].children) == {"codes", "values"}
    assert tree[1].children["values"].children == ["b\ud800", "ü"]
    assert set(tree[2].children) == {"codes", "values"}
    assert set(tree[3].children) == {"utf8", "mask"}
    assert type(tree[3].children["mask"]) is np.ndarray
    loaded = store["x"]
    for a, b in zip([short, long, with_nul, distinct], loaded):
        assert_same(a, b)


# -- layout names ---------------------------------------------------------------------------
def test_column_keys():
    assert column_keys(["a", "b"]) == ["a", "b"]
    assert column_keys(["a", "a", "b"]) == ["0", "1", "b"]
    assert column_keys([0, "0", 1, "a/b", ("t", 1)]) == ["0_", "0", "2", "3", "4"]
    assert column_keys(pd.RangeIndex(3)) == ["0", "1", "2"]


def test_column_paths(store):
    df = FRAMES["colliding-labels"]()
    store["df"] = df
    assert list(store["df/data"]) == column_keys(df.columns)
    np.testing.assert_array_equal(store["df/data/0_"], [1])  # the int label 0
    np.testing.assert_array_equal(store["df/data/0"], [2])  # the str label "0"
    series = pd.Series([1.0, 2.0], name="energy")
    store["s"] = series
    np.testing.assert_array_equal(store["s/values"], [1.0, 2.0])
    assert store["s/name"] == "energy"


# -- identity -------------------------------------------------------------------------------
def test_shared_objects_stay_shared(roundtrip):
    df = mixed_frame(10)
    series = df["energy"]
    index = pd.Index(["a", "b"], name="k")
    loaded = roundtrip({"a": df, "b": df, "list": [df, series, series], "i": [index, index]})
    assert loaded["a"] is loaded["b"] is loaded["list"][0]
    assert loaded["list"][1] is loaded["list"][2]
    assert loaded["i"][0] is loaded["i"][1]
    assert_same(df, loaded["a"])
    assert_same(series, loaded["list"][1])


def test_loaded_frames_do_not_share_columns(roundtrip):
    cat = pd.Categorical(["a", "b"])
    df = pd.DataFrame({"c": cat, "x": [1.0, 2.0]})
    view = df[["c", "x"]]  # copy-on-write: shares the column arrays with df
    loaded = roundtrip([df, view])
    loaded[0].iloc[0, 0] = "b"
    loaded[0].iloc[0, 1] = 9.0
    assert loaded[1].iloc[0, 0] == "a" and loaded[1].iloc[0, 1] == 1.0


def test_cycles_through_attrs_and_cells(roundtrip):
    df = pd.DataFrame({"o": pd.Series([None, 1], dtype=object)})
    df.iloc[0, 0] = [df]
    df.attrs["self"] = df  # last: pandas deep-copies attrs in most operations
    series = pd.Series([0.5])
    series.attrs["me"] = series
    loaded_df, loaded_series = roundtrip([df, series])
    assert loaded_df.attrs["self"] is loaded_df
    assert loaded_df.iloc[0, 0][0] is loaded_df
    assert loaded_df.iloc[1, 0] == 1
    assert loaded_series.attrs["me"] is loaded_series


def test_attrs_are_not_deep_copied_per_column(roundtrip, monkeypatch):
    import pandas.core.generic

    df = pd.DataFrame(np.zeros((2, 50)))
    df.attrs["big"] = list(range(1000))
    copies = []
    monkeypatch.setattr(pandas.core.generic, "deepcopy", lambda obj, memo=None: copies.append(obj))
    loaded = roundtrip(df)
    monkeypatch.undo()
    assert copies == []
    assert_same(df, loaded)


class MyFrame(pd.DataFrame):
    """Subclasses are not claimed by the pandas adapters: they keep their reduce."""

    @property
    def _constructor(self):
        return MyFrame


def test_subclass_keeps_its_type(roundtrip):
    df = MyFrame({"a": [1, 2]})
    loaded = roundtrip(df)
    assert type(loaded) is MyFrame
    tm.assert_frame_equal(df, loaded)


def test_safe_load_of_frames(filename):
    df = mixed_frame(100)
    tinystore.save(df, filename)
    assert_same(df, tinystore.load(filename, safe=True))


# -- pandas is imported only when needed -------------------------------------------------------
def test_pandas_is_not_imported_to_store_other_objects(filename, backend):
    if backend == "memory":
        pytest.skip("needs a file that a second process can read")
    tinystore.save({"df": pd.DataFrame({"a": [1.5]})}, filename)
    other = os.path.join(os.path.dirname(filename), "other" + os.path.splitext(filename)[1])
    code = f"""
import sys, numpy as np, tinystore
tinystore.save({{"x": np.arange(3), "y": [1, "a"]}}, {other!r})
assert tinystore.load({other!r})["y"] == [1, "a"]
assert "pandas" not in sys.modules, "storing plain objects imported pandas"
df = tinystore.load({filename!r})["df"]
assert "pandas" in sys.modules and df["a"].iloc[0] == 1.5
"""
    subprocess.run([sys.executable, "-c", code], check=True, env=child_env())
