"""Browsing shows data, not internals, without importing the object's library.

Every test runs on every backend.  "Without importing" is checked with an
import blocker: pandas is taken out of ``sys.modules`` and any import of it
raises while the store is browsed.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import fractions
import json
import pathlib
import pickle
import sys
import uuid
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest

import tinystore
from tinystore.errors import NodeNotFoundError, TinystoreError
from tinystore.objects.browse import ColumnView
from tinystore.storage.base import Tree

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import read_record, write_external  # noqa: E402


class _Blocker:
    """A meta path finder that refuses to import the named top-level packages."""

    def __init__(self, names: set[str]):
        self.names = names
        self.attempts: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            self.attempts.append(name)
            raise ImportError(f"browsing imported {name}")
        return None


@contextlib.contextmanager
def not_importable(*names: str):
    """Inside: ``names`` are not imported, and importing them raises."""
    saved = {key: mod for key, mod in sys.modules.items() if key.split(".")[0] in names}
    for key in saved:
        del sys.modules[key]
    blocker = _Blocker(set(names))
    sys.meta_path.insert(0, blocker)
    try:
        yield blocker
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(saved)
    assert not blocker.attempts, blocker.attempts


ROWS = 2000  # columns of 16 kB: stored outside the record, read only on demand


def _frame(rows: int = ROWS) -> pd.DataFrame:
    t = np.arange(rows, dtype=float)
    return pd.DataFrame(
        {
            "time": t,
            "energy": -1.5 * t,
            "temperature": 300.0 + t,
            "steps": np.arange(rows, dtype=np.int32),
            "label": pd.array([f"s{i % 3}" for i in range(rows)], dtype="str"),
            "count": pd.array([i if i % 5 else None for i in range(rows)], dtype="Int64"),
            "phase": pd.Categorical(["solid", "liquid"] * (rows // 2)),
            "stamp": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
        }
    )


# -- DataFrame and Series nodes --------------------------------------------------------------
def test_frame_node_shows_shape_columns_dtypes_and_head(store):
    frame = _frame()
    store["table"] = frame
    store["series"] = frame["energy"]
    with not_importable("pandas"):
        view = store.node("table")
        text = view.summary()
        details = view.details()
        tree = store.tree()
        page = store._repr_html_()
        series = store.node("series").summary()
    assert f"{ROWS} rows x 8 columns" in text
    assert "energy float64" in text and "steps int32" in text and "label str" in text
    assert [c["name"] for c in details["columns"]] == list(frame.columns)
    assert [c["dtype"] for c in details["columns"]] == [str(d) for d in frame.dtypes]
    assert details["rows"] == ROWS and details["index"] == f"RangeIndex(0, {ROWS}, 1)"
    # the tree lists the columns by name, not the layout (index/columns/data)
    assert "├── energy  column 'energy'  float64  2000 rows" in tree
    assert "data  dict" not in tree and "StringArray" not in tree
    # the head table: the first rows, read from the stored columns
    head = frame.head(5)
    for column in ("energy", "temperature", "label", "phase"):
        assert f"<th>{column}</th>" in page
        for value in head[column]:
            cell = f"{value:.1f}" if isinstance(value, float) else str(value)
            assert f"<td>{cell}</td>" in page
    assert "<td>&lt;NA&gt;</td>" in page  # count[0] is missing
    assert f"... {ROWS - 5} more rows" in page
    assert f"pandas.Series  {ROWS} rows  float64  name 'energy'" in series
    series_page = store.node("series")._repr_html_()
    assert "<th>energy</th>" in series_page and "<td>-1.5</td>" in series_page


def test_frame_with_other_labels_and_index(store):
    frame = pd.DataFrame(
        {0: [1.5, 2.5], "a b": ["x", "y"]}, index=pd.Index(["r1", "r2"], name="run")
    )
    store["t"] = frame
    with not_importable("pandas"):
        details = store.node("t").details()
        page = store.node("t")._repr_html_()
    assert [c["name"] for c in details["columns"]] == ["0", "a b"]
    assert details["rows"] == 2 and details["index"].startswith("Index")
    assert "<th>r1</th>" in page and "<td>2.5</td>" in page
    by_position = store.node("t/0").to_object()  # label 0 is not a key: its position is
    pd.testing.assert_series_equal(by_position, frame[0])


# -- a column by its own name ---------------------------------------------------------------
@pytest.mark.parametrize("column", ["energy", "label", "count", "phase", "stamp"])
def test_column_by_name_loads_as_series(filename, column):
    frame = _frame(50).set_index(pd.Index(np.arange(50) * 2, name="step"))
    tinystore.save(frame, filename, path="runs/table")
    expected = frame[column]
    loaded = tinystore.load(filename, path=f"runs/table/{column}")
    pd.testing.assert_series_equal(loaded, expected)
    assert type(loaded) is pd.Series and loaded.dtype == expected.dtype
    with tinystore.open(filename, "r") as s:
        view = s.node(f"runs/table/{column}")
        assert type(view) is ColumnView and view.kind == "column"
        assert view.type == "pandas.Series" and view.dtype == str(expected.dtype)
        assert view.summary() == f"column {column!r}  {expected.dtype}  50 rows"
        assert view.length == 50
        pd.testing.assert_series_equal(view.to_object(), expected)
        assert s.node("runs/table")[column].path == f"runs/table/{column}"
    with pytest.raises(NodeNotFoundError):
        tinystore.load(filename, path="runs/table/nope")
    with pytest.raises(NodeNotFoundError):
        tinystore.load(filename, path=f"runs/table/{column}/x")


def test_a_column_of_a_frame_saved_as_the_whole_file(filename):
    frame = _frame(20)
    tinystore.save(frame, filename)
    pd.testing.assert_series_equal(tinystore.load(filename, path="label"), frame["label"])
    with tinystore.open(filename, "r") as s:
        assert s.node("energy").summary() == "column 'energy'  float64  20 rows"
    with pytest.raises(NodeNotFoundError):
        tinystore.load(filename, path="nope")


def test_the_layout_wins_over_a_column_of_the_same_name(filename):
    frame = pd.DataFrame({"index": [1.0, 2.0], "x": [3.0, 4.0]})
    tinystore.save(frame, filename, path="t")
    with tinystore.open(filename, "r") as s:
        assert s.node("t/index").kind == "pandas.RangeIndex"
        assert s.node("t/x").kind == "column"
    stored = tinystore.load(filename, path="t/data/index")  # the layout's path: the values
    assert type(stored) is np.ndarray and np.array_equal(stored, frame["index"].to_numpy())


def _external_name(filename: str, gpath: tuple, key: str) -> str:
    """The physical name of the external leaf stored under ``key`` in a record."""
    stack = [orjson.loads(read_record(filename, gpath))]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            entry = item.get(key)
            if isinstance(entry, dict) and "X" in entry:
                return entry["X"]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    raise AssertionError(f"no external leaf {key!r}")


def test_a_column_load_reads_only_that_column(filename):
    frame = _frame()
    tinystore.save(frame, filename, path="table")
    for key in ("temperature", "time", "steps"):  # damage the other numeric columns
        name = _external_name(filename, ("table",), key)
        write_external(filename, ("table",), name, np.zeros(3, np.int8))
    with pytest.raises(TinystoreError):
        tinystore.load(filename, path="table")
    loaded = tinystore.load(filename, path="table/energy")
    pd.testing.assert_series_equal(loaded, frame["energy"])
    with tinystore.open(filename, "r") as s:
        pd.testing.assert_series_equal(s.node("table/energy").to_object(), frame["energy"])


# -- values of standard-library objects -----------------------------------------------------------
VALUES = {
    "when": datetime.datetime(2024, 1, 2, 3, 4, 5, 600, tzinfo=datetime.timezone.utc),
    "naive": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "day": datetime.date(2024, 1, 2),
    "clock": datetime.time(1, 2, 3),
    "span": datetime.timedelta(days=1, seconds=3),
    "price": decimal.Decimal("1.25"),
    "id": uuid.UUID(int=5),
    "where": pathlib.PurePosixPath("/data/run 1/out.h5"),
    "here": pathlib.Path("out.h5"),
    "share": fractions.Fraction(1, 3),
}


def test_values_show_as_values(store):
    store["v"] = VALUES
    tree = store.tree()
    page = store._repr_html_()
    for key, value in VALUES.items():
        view = store.node(f"v/{key}")
        assert view.value == str(value)
        assert view.summary() == f"{type(value).__module__}.{type(value).__name__}  {value}"
        assert view.details()["value"] == str(value)
        assert store.node()[f"v/{key}"].value == str(value)  # reached from the root
        assert f"── {key}  {view.summary()}" in tree
        assert str(value) in page or str(value).replace("'", "&#x27;") in page
    # no reduce internals: the callable and argument children are not listed
    assert "reduce" not in tree and "── f  global" not in tree and "── a  tuple" not in tree


def test_pandas_scalars_show_their_value_without_pandas(store):
    store["t"] = {
        "stamp": pd.Timestamp("2024-01-02 03:04:05.5", tz="Europe/Berlin"),
        "naive": pd.Timestamp("2024-01-02"),
        "span": pd.Timedelta(days=1, seconds=3),
    }
    with not_importable("pandas"):
        shown = {key: store.node(f"t/{key}").summary() for key in ("stamp", "naive", "span")}
    # a zone-aware timestamp is stored as its UTC instant, with the zone's name
    assert shown["stamp"] == "pandas.Timestamp  2024-01-02 02:04:05.500 Europe/Berlin"
    assert shown["naive"] == "pandas.Timestamp  2024-01-02"
    assert shown["span"] == "pandas.Timedelta  1 day, 0:00:03"


def test_a_crafted_value_node_runs_nothing(store, tmp_path):
    marker = tmp_path / "ran"
    call = Tree(
        {"t": "reduce"},
        {
            "f": Tree({"t": "global", "g": "os:system"}),
            "a": Tree({"t": "tuple"}, [f"touch {marker}"]),
        },
    )
    store["x"] = Tree(
        {"t": "reduce"},
        {"f": Tree({"t": "global", "g": "datetime:datetime"}), "a": Tree({"t": "tuple"}, [call])},
    )
    view = store.node("x")
    assert view.type == "datetime.datetime" and view.value is None
    view.summary(), store.tree(), store._repr_html_(), view.details()
    assert not marker.exists()


def test_values_that_would_be_costly_to_rebuild_are_not(store):
    # Fraction("1e99999999") computes a 100-million-digit integer (minutes)
    huge = Tree(
        {"t": "reduce"},
        {
            "f": Tree({"t": "global", "g": "fractions:Fraction"}),
            "a": Tree({"t": "tuple"}, ["1e99999999"]),
        },
    )
    store["x"] = huge
    store["y"] = fractions.Fraction(3**60, 2**50)  # large, but plain integers
    view = store.node("x")
    assert view.type == "fractions.Fraction" and view.value is None
    assert "fractions.Fraction" in store.tree()
    assert store.node("y").value == str(fractions.Fraction(3**60, 2**50))


# -- lengths ----------------------------------------------------------------------------------
def test_lists_and_string_arrays_show_their_length(store):
    store["items"] = list(range(5000))
    store["strings"] = pd.array([f"s{i}" for i in range(5000)], dtype="string")
    store["coded"] = pd.array([f"s{i % 4}" for i in range(5000)], dtype="str")
    store["objects"] = np.array([["a", 1]] * 3, dtype=object)
    store["numpy_strings"] = np.array(["abc"] * 5000)
    store["text"] = "x" * 10000
    store["blob"] = b"y" * 10000
    with not_importable("pandas"):
        views = {key: store.node(key) for key in store}
        summaries = {key: view.summary() for key, view in views.items()}
        assert views["strings"].length == views["coded"].length == 5000
    assert views["items"].length == 5000 and "5000 items" in summaries["items"]
    assert summaries["strings"] == "pandas.StringArray  string (5000,)"
    assert summaries["coded"] == "pandas.StringArray  str (5000,)"
    assert summaries["objects"] == "numpy.ndarray  object (3, 2)"
    assert "<U3 (5000,)" in summaries["numpy_strings"]
    assert summaries["text"].endswith("(10000 chars)")
    assert summaries["blob"].endswith("(10000 bytes)")


# -- metadata, not internal tags ------------------------------------------------------------------
class Job(tinystore.Storable):
    def __init__(self, n=0):
        self.n = n

    def _store(self, storage):
        group = storage.create_group("input")
        group.attrs["code"] = "relax"
        group["n"] = self.n

    @classmethod
    def _restore(cls, storage, version):
        return cls(storage["input/n"])


def test_group_metadata_shows_and_internal_tags_do_not(store):
    group = store.create_group("jobs/relax")
    group.attrs.update({"status": "finished", "cores": 4})
    group["output"] = {"energy": -3.5, "steps": [1, 2]}
    store["job"] = Job(3)
    tree = store.tree()
    assert "relax  group  1 item  {status='finished', cores=4}" in tree
    assert "{code='relax'}" in tree
    assert "{status=&#x27;finished&#x27;, cores=4}" in store._repr_html_()
    relax = store.node("jobs/relax")
    assert relax.metadata == {"status": "finished", "cores": 4}
    assert relax.details()["metadata"] == {"status": "finished", "cores": 4}
    assert store.node("job/input").metadata == {"code": "relax"}
    output = store.node("jobs/relax/output")
    assert output.metadata == {} and output.attrs["t"] == "dict"  # attrs: the raw record
    for view in (relax, output, store.node("job"), store.node("jobs/relax/output/steps")):
        details = view.details()
        assert "metadata" not in details or details["metadata"] == view.metadata
        shown = json.dumps(details)  # plain JSON, for `tinystore show --json`
        for tag in ('"t"', '"python"', '"c"', '"@', '"id"'):
            assert tag not in shown, (tag, shown)


# -- the HTML view ------------------------------------------------------------------------------
def test_html_truncates_shows_sizes_and_previews(store):
    store["run"] = {
        "forces": np.arange(3000.0).reshape(1000, 3),
        "small": np.array([1.5, 2.5, 3.5]),
        "steps": list(range(120)),
    }
    page = store._repr_html_()
    assert "... 70 more" in page  # 120 steps, 50 shown
    assert "[0, 1, 2, 3, 4, 5, ... 114 more]" in page  # and a preview of them
    assert "24.0 kB" in page  # the forces array
    assert "[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, ... 2994 more]" in page
    assert "[1.5, 2.5, 3.5]" in page


def test_html_previews_read_only_leaves_up_to_1_mb(store):
    store["big"] = np.full(200_000, 7.0)  # 1.6 MB: not read for a preview
    store["fits"] = np.full(100_000, 8.0)  # 0.8 MB
    page = store._repr_html_()
    assert "1.6 MB" in page and "[7.0" not in page
    assert "[8.0, 8.0, 8.0, 8.0, 8.0, 8.0, ... 99994 more]" in page


def test_html_of_a_project_of_300_jobs_stays_small(store):
    rng = np.random.default_rng(0)
    with store.batch():  # one write (what is tested is the page, not 900 commits)
        for i in range(300):
            job = store.create_group(f"jobs/job_{i:03d}")
            job.attrs["status"] = "finished"
            job["input"] = {"temperature": 300 + i, "steps": 1000, "structure": rng.random((64, 3))}
            job["output"] = {
                "energy": rng.random(1000),
                "log": [f"step {n}" for n in range(200)],
                "table": pd.DataFrame({"time": np.arange(100.0), "energy": rng.random(100)}),
            }
    page = store._repr_html_()
    assert len(page.encode()) < 400_000
    assert "job_000" in page and "job_049" in page and "... 250 more" in page  # 50 of 300
    assert "status=&#x27;finished&#x27;" in page
    assert "children not shown" in page  # deeper nodes beyond the entry budget
    assert page.count("<details") == page.count("</details>")
    assert page.count("<ul") == page.count("</ul>")


def test_html_escapes_what_the_file_holds(store):
    group = store.create_group("<script>")
    group.attrs["note"] = "<img src=x onerror=alert(1)>"
    group["t"] = pd.DataFrame({"<u>": ["<i>x</i>"]})
    page = store._repr_html_()
    for raw in ("<script>", "<img", "<u>", "<i>"):
        assert raw not in page
    assert "&lt;script&gt;" in page and "&lt;i&gt;x&lt;/i&gt;" in page


def test_frame_with_multiindex_columns_and_a_tuple_named_series(store):
    """Labels of MultiIndex columns are tuples, built from the stored levels and
    codes (not the positions the layout uses as keys); a Series named by a
    tuple shows that name."""
    columns = pd.MultiIndex.from_tuples([("a", "x"), ("b", 2), (np.nan, "z")])
    frame = pd.DataFrame([[1, 2.5, 3]], columns=columns)
    series = pd.Series([1.5], name=("energy", 1))
    store["t"], store["s"] = frame, series
    with not_importable("pandas"):
        text = store.node("t").summary()
        details = store.node("t").details()
        tree = store.tree()
        named = store.node("s").summary()
        page = store.node("t")._repr_html_()
    assert "('a', 'x') int64, ('b', 2) float64, (None, 'z') int64" in text
    assert [c["name"] for c in details["columns"]] == ["('a', 'x')", "('b', 2)", "(None, 'z')"]
    assert "column ('b', 2)  float64  1 rows" in tree
    assert "name ('energy', 1)" in named
    assert "<th>(&#x27;a&#x27;, &#x27;x&#x27;)</th>" in page and "<td>2.5</td>" in page
    loaded = store["t"]
    pd.testing.assert_frame_equal(loaded, pickle.loads(pickle.dumps(frame)))
