"""h5io and pyiron_base files: browse, load as plain data, convert (tinystore.legacy).

Every test runs on the files committed under tests/data/legacy/ and on files
freshly written by h5io and pyiron_base (the ``legacy`` test extra), when those
are installed.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import warnings

import h5py
import numpy as np
import pytest
from helpers.legacy_golden import Point, h5io_values
from helpers.procs import child_env

import tinystore
from tinystore.cli import main as cli
from tinystore.errors import ReadOnlyError
from tinystore.legacy import GlobalRef, Lost, LostDataWarning, Opaque, OpaqueDataWarning
from tinystore.legacy.reader import is_legacy

COMMITTED = os.path.join(os.path.dirname(__file__), "data", "legacy")


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="session")
def generated(tmp_path_factory):
    # find_spec, not an import: pyiron_base writes ~/pyiron.db when imported,
    # so it runs only in subprocesses with HOME in a temporary folder
    pyiron_elsewhere = bool(os.environ.get("TINYSTORE_PYIRON_PYTHON"))
    if not (_has("h5io") and (pyiron_elsewhere or _has("pyiron_base"))):
        pytest.skip("h5io and pyiron_base write the files (the legacy test extra)")
    from helpers.legacy_golden import write_all

    folder = str(tmp_path_factory.mktemp("legacy"))
    write_all(folder)
    return folder


@pytest.fixture(params=["committed", "generated"])
def files(request):
    """The folder of example files (committed, or written now by the packages)."""
    if request.param == "committed":
        return COMMITTED
    return request.getfixturevalue("generated")


def job_file(folder: str, sub: str = "") -> str:
    (path,) = glob.glob(os.path.join(folder, "project", sub, "add_*.h5"))
    return path


def quiet_load(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LostDataWarning)
        warnings.simplefilter("ignore", OpaqueDataWarning)
        return tinystore.load(*args, **kw)


def same(a, b):
    """Equal in type, value and (for arrays) dtype and shape."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype == object:
            for x, y in zip(a, b):
                same(x, y)
        else:
            np.testing.assert_array_equal(a, b)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            same(a[k], b[k])
    else:
        assert a == b


# --------------------------------------------------------------------------
# detection
def test_detected_and_tinystore_files_are_not(files, tmp_path):
    for path in glob.glob(os.path.join(files, "**", "*.h5"), recursive=True):
        assert is_legacy(path), path
        with tinystore.open(path, "r") as s:
            assert type(s).__name__ == "LegacyStorage"
    tinystore.save({"a": 1}, tmp_path / "t.h5")
    assert not is_legacy(str(tmp_path / "t.h5"))
    with h5py.File(tmp_path / "plain.h5", "w") as f:
        f["x"] = np.arange(3)
    assert not is_legacy(str(tmp_path / "plain.h5"))


def test_backend_named_explicitly(files):
    path = os.path.join(files, "h5io_values.h5")
    assert tinystore.load(path, backend="legacy", path="h5io/i") == 7
    assert tinystore.backends.legacy.load(path, path="h5io/f") == 2.5


# --------------------------------------------------------------------------
# h5io values: every dataset title, dict / list / tuple / multiarray
def test_h5io_values_load_as_plain_data(files):
    loaded = tinystore.load(os.path.join(files, "h5io_values.h5"))
    expected = h5io_values()
    expected["raw"] = b"\x00\x01binary"  # h5io's void: raw bytes (not a pickle)
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        same(loaded[key], value)


KINDS = {
    "arr": ("ndarray", "numpy.ndarray"),
    "i": ("leaf", "builtins.int"),
    "flag": ("leaf", "builtins.bool"),
    "f": ("leaf", "builtins.float"),
    "np_i": ("leaf", "numpy.int32"),
    "np_f": ("leaf", "numpy.float32"),
    "text": ("leaf", "builtins.str"),
    "none": ("leaf", "builtins.NoneType"),
    "when": ("leaf", "datetime.datetime"),
    "day": ("leaf", "datetime.date"),
    "utc": ("leaf", "datetime.timezone"),
    "items": ("list", "builtins.list"),
    "pair": ("tuple", "builtins.tuple"),
    "nested": ("dict", "builtins.dict"),
    "ragged": ("ndarray", "numpy.ndarray"),
    "raw": ("leaf", "builtins.bytes"),
}


def test_h5io_values_browse(files):
    with tinystore.open(os.path.join(files, "h5io_values.h5"), "r") as s:
        view = s.node("h5io")
        assert (view.kind, view.type) == ("dict", "builtins.dict")
        for key, (kind, type_name) in KINDS.items():
            child = view[key]
            assert (child.kind, child.type) == (kind, type_name), key
        assert s.node("h5io/arr").shape == (2, 3)
        assert s.node("h5io/arr").dtype == np.float64
        assert s.node("h5io/nested/a/b/0").to_object().tolist() == [0, 1, 2]
        assert s["h5io/items/1"] == "two"
        same(s["h5io/nested"], {"a": {"b": [np.arange(3)]}})
        text = s.tree()
        assert "when  leaf  datetime.datetime" in text
        assert "pair  tuple  builtins.tuple  2 items" in text
        short = s.tree(max_children=3, max_depth=2)
        assert "└── ... 14 more" in short and "items/" not in short and "    │   " not in short
        assert s.info()["lost"] == [] and s.info()["opaque"] == []


def test_json_root_under_its_title_and_nan(files):
    loaded = tinystore.load(os.path.join(files, "h5io_json.h5"))
    assert loaded["b"] == "x" and loaded["a"][:2] == [1, 2.5] and np.isnan(loaded["a"][2])
    with tinystore.open(os.path.join(files, "h5io_json.h5"), "r") as s:
        assert s.node("custom").kind == "json"


def test_old_titles(files):
    loaded = tinystore.load(os.path.join(files, "h5io_old_titles.h5"))
    assert loaded["old"] == "old text" and loaded["plain"] == "plain"
    same(loaded["names"], np.array(["Fe", "Al"]))


def test_sparse(files):
    import scipy.sparse as sp

    loaded = tinystore.load(os.path.join(files, "h5io_sparse.h5"))
    assert type(loaded["csr"]) is sp.csr_matrix and type(loaded["csc"]) is sp.csc_matrix
    np.testing.assert_array_equal(loaded["csr"].toarray(), np.eye(3))
    np.testing.assert_array_equal(loaded["csc"].toarray(), np.arange(6.0).reshape(2, 3))
    with tinystore.open(os.path.join(files, "h5io_sparse.h5"), "r") as s:
        assert (s.node("h5io/csr").kind, s.node("h5io/csr").type) == (
            "sparse",
            "scipy.sparse.csr_matrix",
        )


def test_pandas_fixed_format_without_pytables(files):
    import pandas as pd

    path = os.path.join(files, "h5io_pandas.h5")
    with pytest.warns(OpaqueDataWarning):
        loaded = tinystore.load(path)
    expected = pd.DataFrame(
        {"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [True, False, True]}, index=[10, 20, 30]
    )
    pd.testing.assert_frame_equal(loaded["df"], expected)
    pd.testing.assert_series_equal(
        loaded["ser"], pd.Series([1.0, 2.0], index=["p", "q"], name="ser")
    )
    if _has("tables") and files != COMMITTED:  # pandas' own reader agrees (on PyTables' files)
        pd.testing.assert_frame_equal(loaded["df"], pd.read_hdf(path, "h5io/key_df"))
        pd.testing.assert_series_equal(loaded["ser"], pd.read_hdf(path, "h5io/key_ser"))
        pd.testing.assert_frame_equal(
            tinystore.load(path, safe=False)["words"], pd.read_hdf(path, "h5io/key_words")
        )
    # a text column is pickled by PyTables: opaque unless unpickling is allowed
    words = loaded["words"]
    assert list(words["n"]) == [1, 2, 3]
    assert all(type(v) is Opaque and v.kind == "pickled-columns" for v in words["s"])
    assert list(tinystore.load(path, safe=False)["words"]["s"]) == ["x", "y", "z"]
    with tinystore.open(path, "r") as s:
        view = s.node("h5io/words")
        assert (view.kind, view.type, view.shape) == ("dataframe", "pandas.DataFrame", (3, 2))
        assert view.opaque == "pickled-columns"
        assert s.info()["opaque"] == [
            {"path": "h5io/words", "type": "pandas.DataFrame", "pickle": "pickled-columns"}
        ]


# --------------------------------------------------------------------------
# use_state objects, classes, and what h5io lost
LOST = {
    "lost_set": "builtins.set",
    "lost_frozenset": "builtins.frozenset",
    "lost_bytearray": "builtins.bytearray",
    "lost_delta": "datetime.timedelta",
    "lost_time": "datetime.time",
    "lost_decimal": "decimal.Decimal",
}


def test_use_state_objects_are_plain_records_by_default(files):
    path = os.path.join(files, "h5io_state.h5")
    for options in ({}, {"safe": True}):
        loaded = quiet_load(path, **options)
        assert loaded["point"] == {"tags": ["a"], "x": 1.5}
        assert loaded["cls"] == GlobalRef("helpers.legacy_golden.Point")
    with tinystore.open(path, "r") as s:
        view = s.node("h5io/point")
        assert (view.kind, view.type) == ("object", "helpers.legacy_golden.Point")
        assert view.keys() == ["tags", "x"]


def test_use_state_rebuilt_only_when_allowed(files):
    path = os.path.join(files, "h5io_state.h5")
    rebuilt = quiet_load(path, safe=False)
    assert rebuilt["point"] == Point(1.5, ["a"]) and rebuilt["cls"] is Point
    allowed = quiet_load(path, allow=["helpers.legacy_golden:Point"])
    assert allowed["point"] == Point(1.5, ["a"]) and allowed["cls"] is Point
    assert tinystore.load(path, path="h5io/point", allow=["other:Name"]) == {
        "tags": ["a"],
        "x": 1.5,
    }


def test_lost_data_is_reported_never_valid(files, capsys):
    path = os.path.join(files, "h5io_state.h5")
    with pytest.warns(LostDataWarning):
        loaded = tinystore.load(path)
    for key, type_name in LOST.items():
        assert loaded[key] == Lost(type_name, f"/h5io/key_{key}")
    with tinystore.open(path, "r") as s:
        lost = {item["path"]: item["type"] for item in s.info()["lost"]}
        assert lost == {f"h5io/{k}": v for k, v in LOST.items()}
        assert s.node("h5io/lost_set").lost
        assert "LOST by h5io" in s.tree()
    assert cli(["verify", path]) == 1
    out = capsys.readouterr().out
    assert "LOST /h5io/lost_set: builtins.set" in out and "6 lost at write time" in out


def test_several_top_level_nodes_load_as_a_dict(tmp_path):
    path = tmp_path / "two.h5"
    with h5py.File(path, "w") as f:
        for name, value in (("a", 1), ("b", 2)):
            f.create_dataset(name, data=np.array([value])).attrs["TITLE"] = "int"
        g = f.create_group("plain")  # untitled h5py data beside them
        g["text"] = "hi"
        g["blob"] = "gASVCgAAAAAAAAB9lIwBa5RLAXMu"
        g["x"] = np.float32(2.5)
        g["<i>"] = 1  # a name that HTML must escape
    with pytest.warns(OpaqueDataWarning):
        loaded = tinystore.load(path)
    assert loaded["a"] == 1 and loaded["b"] == 2
    assert loaded["plain"]["text"] == "hi" and loaded["plain"]["x"] == np.float32(2.5)
    assert type(loaded["plain"]["blob"]) is Opaque
    assert tinystore.load(path, safe=False)["plain"]["blob"] == {"k": 1}
    with tinystore.open(path, "r") as s:
        assert (s.node("plain/text").kind, s.node("plain/text").type) == ("leaf", "builtins.str")
        assert s.node("plain/blob").kind == "opaque"
        page = s._repr_html_()
        assert "<details" in page and "&lt;i&gt;" in page and "<i>" not in page


def test_unread_pandas_layouts_named_and_verify(tmp_path, capsys):
    path = tmp_path / "multi.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("h5io")
        g.attrs["TITLE"] = "dict"
        df = g.create_group("key_df")
        df.attrs["TITLE"] = "pd_dataframe"
        df.attrs["pandas_type"] = np.bytes_(b"frame")
        df.attrs["axis1_variety"] = np.bytes_(b"multi")
        g.create_dataset("key_ok", data=np.array([1])).attrs["TITLE"] = "int"
        table = g.create_group("key_table")  # pandas' format="table"
        table.attrs["TITLE"] = "pd_dataframe"
        table.attrs["pandas_type"] = np.bytes_(b"frame_table")
    with pytest.raises(tinystore.errors.UnloadableError, match="axis1_variety 'multi'"):
        tinystore.load(path)
    with pytest.raises(tinystore.errors.UnloadableError, match="pandas_type 'frame_table'"):
        tinystore.load(path, path="h5io/table")
    assert tinystore.load(path, path="h5io/ok") == 1
    assert cli(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "UNREADABLE /h5io: " in out and "1 unreadable" in out
    assert cli(["verify", os.path.join(COMMITTED, "h5io_values.h5")]) == 0
    assert "0 lost at write time, 0 opaque, 0 unreadable" in capsys.readouterr().out


def test_timezone_is_parsed_never_evaluated(tmp_path):
    path = tmp_path / "evil.h5"
    payload = "__import__('os').system('touch " + str(tmp_path / "ran") + "')"
    with h5py.File(path, "w") as f:
        g = f.create_group("h5io")
        g.attrs["TITLE"] = "dict"
        ds = g.create_dataset("key_tz", data=np.frombuffer(payload.encode(), np.uint8))
        ds.attrs["TITLE"] = "timezone"
    with pytest.raises(ValueError, match="not a datetime.timezone"):
        tinystore.load(path, safe=False)
    assert not (tmp_path / "ran").exists()


# --------------------------------------------------------------------------
# pyiron_base
def test_pyiron_job_browses(files):
    with tinystore.open(job_file(files), "r") as s:
        (name,) = list(s)
        view = s.node(name)
        assert view.kind == "job"
        assert (
            view.type == "pyiron_base.jobs.flex.pythonfunctioncontainer.PythonFunctionContainerJob"
        )
        assert view.attrs["layout"] == "pyiron job"
        assert view.attrs["NAME"] == "PythonFunctionContainerJob"
        assert "status" in view.keys() and "server" in view.keys()
        assert view["function"].kind == "opaque" and view["function"].opaque == "pickle"
        storage = view["storage"]
        assert (storage.kind, storage.attrs["layout"]) == ("object", "pyiron object")
        assert storage.keys() == ["input", "output"]  # <key>__index_<i>, metadata apart
        assert s[f"{name}/storage/output/result"] == 3
        group = s[f"{name}/input"]  # an untitled, untyped group: a storage group
        assert group.is_group and list(group) == ["data", "generic_dict"]
        info = s.info()
        assert info["opaque"] == [
            {"path": f"{name}/function", "type": "pickle bytes", "pickle": "pickle"}
        ]
        assert info["layouts"] == {"pyiron job": 1, "pyiron object": 3}


def test_pyiron_job_loads_as_plain_mapping(files):
    with pytest.warns(OpaqueDataWarning):
        job = tinystore.load(job_file(files))
    assert job["storage"] == {"input": {"a": 1, "b": 2}, "output": {"result": 3}}
    assert job["status"] in ("finished", "running")  # as written; may be stale
    assert job["job_id"] == 1 and job["server"]["cores"] == 1
    assert type(job["function"]) is Opaque and job["function"].kind == "pickle"
    name = job_file(files).rsplit(os.sep, 1)[1][:-3]
    function = tinystore.load(job_file(files), path=f"{name}/function", safe=False)
    assert function(1) == 3


def test_pyiron_datacontainer_and_base64_pickle(files):
    path = os.path.join(files, "project", "container.h5")
    with pytest.warns(OpaqueDataWarning):
        loaded = tinystore.load(path)
    same(loaded["dc"], {"x": 1, "y": [1, 2, 3], "z": {"q": np.arange(3)}})
    assert type(loaded["blob"]) is Opaque and loaded["blob"].kind == "cloudpickle-base64"
    assert tinystore.load(path, path="container/blob", safe=False) == {"k": 1}
    with tinystore.open(path, "r") as s:
        assert s.node("container/blob").opaque == "cloudpickle-base64"
        assert s.node("container/dc/y").keys() == ["0", "1", "2"]


REBUILD = r"""
import glob, json, sys, warnings
import tinystore
warnings.simplefilter("ignore")
folder, options = sys.argv[1], json.loads(sys.argv[2])
dc = tinystore.load(folder + "/container.h5", path="container/dc", **options)
job = tinystore.load(glob.glob(folder + "/add_*.h5")[0], **options)
print(json.dumps([repr(dc), type(job).__name__, repr(job["storage"])]))
"""


def _rebuild(folder: str, options: dict, tmp_path) -> list:
    env = child_env(HOME=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", REBUILD, folder, json.dumps(options)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


DC = "pyiron_base.storage.datacontainer:DataContainer"


def test_pyiron_objects_rebuilt_only_when_allowed(files, tmp_path):
    if not _has("pyiron_base"):
        pytest.skip("rebuilding pyiron objects needs pyiron_base")
    folder = os.path.join(files, "project")
    expected_dc = (
        "DataContainer({'x': 1, 'y': DataContainer([1, 2, 3]), "
        "'z': DataContainer({'q': array([0, 1, 2])})})"
    )
    storage = "DataContainer({'input': DataContainer({'a': 1, 'b': 2}), "
    storage += "'output': DataContainer({'result': 3})})"
    for options in ({"safe": False}, {"allow": [DC]}):
        # a job stays a mapping (it needs its project); its objects are rebuilt
        assert _rebuild(folder, options, tmp_path) == [expected_dc, "dict", storage]
    plain = _rebuild(folder, {"allow": ["other:Name"]}, tmp_path)
    assert plain == [
        "{'x': 1, 'y': [1, 2, 3], 'z': {'q': array([0, 1, 2])}}",
        "dict",
        "{'input': {'a': 1, 'b': 2}, 'output': {'result': 3}}",
    ]


def test_read_only(files):
    path = os.path.join(files, "h5io_values.h5")
    with tinystore.open(path, "r") as s:
        with pytest.raises(ReadOnlyError):
            s["x"] = 1
        with pytest.raises(ReadOnlyError):
            del s["h5io"]
    with pytest.raises(ReadOnlyError):
        tinystore.open(path, "w", backend="legacy")
    with tinystore.open(path) as s:  # the default mode, "a": read-only here
        assert s.readonly and s["h5io/i"] == 7
    with pytest.raises(ReadOnlyError):
        tinystore.save(1, path, path="x")
    assert is_legacy(path)
    assert not glob.glob(os.path.join(files, "**", "*.lock"), recursive=True)


# --------------------------------------------------------------------------
# nothing imported, nothing unpickled
AUDIT = r"""
import sys, warnings, json
import numpy, h5py, pandas, scipy.sparse  # data libraries, before the watch starts
import tinystore, tinystore.legacy.storage
FORBIDDEN = ("pyiron_base", "h5io", "cloudpickle", "helpers", "pickle")
events = []
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in FORBIDDEN:
            events.append(("blocked import", name))
            raise ImportError(f"blocked: {name}")
        return None
def hook(event, args):
    if event == "pickle.find_class":
        events.append((event, str(args)))
    elif event == "import" and args[0].split(".")[0] in FORBIDDEN:
        events.append((event, args[0]))
before = set(sys.modules)
sys.meta_path.insert(0, Blocker())
sys.addaudithook(hook)
warnings.simplefilter("ignore")
for path in sys.argv[2:]:
    with tinystore.open(path, "r") as s:
        s.tree(); s.info(); s.node().children
    try:
        tinystore.load(path, **json.loads(sys.argv[1]))
    except Exception as exc:  # the blocker refused an import
        events.append(("error", type(exc).__name__))
new = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in FORBIDDEN)
print(json.dumps({"events": events, "new": new}))
"""


def _audit(files: str, options: dict) -> dict:
    paths = sorted(glob.glob(os.path.join(files, "**", "*.h5"), recursive=True))
    env = child_env()
    done = subprocess.run(
        [sys.executable, "-c", AUDIT, json.dumps(options), *paths],
        capture_output=True,
        text=True,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_nothing_imported_or_unpickled_browsing_and_loading(files):
    assert _audit(files, {}) == {"events": [], "new": []}
    assert _audit(files, {"safe": True}) == {"events": [], "new": []}


def test_the_audit_sees_unpickling():
    """The watch above is real: ``safe=False`` unpickles, and it sees that."""
    events = _audit(COMMITTED, {"safe": False})["events"]
    assert ["blocked import", "helpers"] in events  # the class of a use_state object
    assert any(kind == "pickle.find_class" for kind, _ in events)


# --------------------------------------------------------------------------
# convert
def test_convert_a_project_folder(files, tmp_path, capsys):
    dst = str(tmp_path / "project.h5")
    assert cli(["convert", os.path.join(files, "project"), dst, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "converted 3 file(s)" in out and "OPAQUE" in out and "RECORD" in out
    job_key = os.path.splitext(os.path.basename(job_file(files)))[0]
    sub_key = "sub/" + os.path.splitext(os.path.basename(job_file(files, "sub")))[0]
    with tinystore.open(dst, "r") as s:
        assert sorted(s) == sorted([job_key, "container", "sub"])
        assert s[f"{sub_key}/storage"] == {"input": {"a": 5, "b": 2}, "output": {"result": 7}}
        assert s.node(f"{job_key}/function").kind == "cloudpickle"
        assert s.info()["fallbacks"] == 3  # two functions and the base64 blob
        same(s["container/dc"], {"x": 1, "y": [1, 2, 3], "z": {"q": np.arange(3)}})
    with pytest.raises(tinystore.errors.UnsafeLoadError):
        tinystore.load(dst, path=f"{job_key}/function", safe=True)
    assert tinystore.load(dst, path=f"{job_key}/function")(2) == 4


def test_convert_h5io_file(files, tmp_path):
    from tinystore.legacy.convert import convert

    src = os.path.join(files, "h5io_values.h5")
    dst = tmp_path / "values.h5"
    report = convert(src, dst)
    assert report.files == [src] and not report.lost and not report.opaque
    loaded = tinystore.load(dst)
    expected = quiet_load(src)
    for key, value in expected.items():
        same(loaded[key], value)
    state = convert(os.path.join(files, "h5io_state.h5"), tmp_path / "state.h5")
    assert sorted(item["type"] for item in state.lost) == sorted(LOST.values())
    with tinystore.open(tmp_path / "state.h5", "r") as s:
        assert (s.node("point").kind, s.node("point").type) == (
            "object",
            "helpers.legacy_golden.Point",
        )
        assert s.node("cls").kind == "global"
        assert s.node("lost_set").type == "tinystore.legacy.reader.Lost"
    rebuilt = tinystore.load(tmp_path / "state.h5")
    assert rebuilt["point"] == Point(1.5, ["a"]) and rebuilt["cls"] is Point
    assert rebuilt["lost_set"] == Lost("builtins.set", "/h5io/key_lost_set")


def test_convert_unsafe_unpickles_columns(files, tmp_path, capsys):
    src = os.path.join(files, "h5io_pandas.h5")
    assert cli(["convert", src, str(tmp_path / "safe.h5"), "--quiet"]) == 0
    assert "OPAQUE" in capsys.readouterr().out
    assert type(tinystore.load(tmp_path / "safe.h5")["words"]["s"][0]) is Opaque
    assert cli(["convert", src, str(tmp_path / "unsafe.h5"), "--quiet", "--unsafe"]) == 0
    assert "OPAQUE" not in capsys.readouterr().out
    assert list(tinystore.load(tmp_path / "unsafe.h5")["words"]["s"]) == ["x", "y", "z"]


def test_convert_progress_on_a_folder(files, tmp_path):
    from tinystore.legacy.convert import convert

    seen = []
    convert(
        os.path.join(files, "project"), tmp_path / "p.json", progress=lambda t, k: seen.append(k)
    )
    assert sorted(seen) == sorted(
        os.path.splitext(os.path.relpath(p, os.path.join(files, "project")))[0]
        for p in glob.glob(os.path.join(files, "project", "**", "*.h5"), recursive=True)
    )


def test_cli_browses_legacy_files(files, capsys):
    path = os.path.join(files, "h5io_values.h5")
    assert cli(["tree", path]) == 0
    assert "arr  ndarray  numpy.ndarray  float64 (2, 3)" in capsys.readouterr().out
    assert cli(["show", path, "h5io/i"]) == 0
    assert "value:    7" in capsys.readouterr().out
    assert cli(["show", os.path.join(files, "h5io_state.h5"), "h5io/lost_set", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["kind"], shown["type"]) == ("lost", "builtins.set")
    assert "h5io wrote no data" in shown["metadata"]["lost"]
    assert cli(["tree", job_file(files), "--json", "--depth", "1"]) == 0
    (job,) = json.loads(capsys.readouterr().out)["nodes"]
    assert job["kind"] == "job" and job["metadata"]["layout"] == "pyiron job"
    assert cli(["ls", path, "h5io", "--json"]) == 0
    names = [n["name"] for n in json.loads(capsys.readouterr().out)]
    assert "when" in names
