"""Red-team checks, session 7: crafted records that put a group where a stored
object is, or nest nodes in place too deep below a partial load's node; and
HDF5 write sessions on existing files.

Each damaged input must give a tinystore error, the same one whichever way
the reader meets the damage (a whole load, ``load(path=...)``, ``s[key]``,
browsing); the stores tinystore writes itself still load.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from objects_cases import assert_same_structure, pickled

import tinystore
from tinystore.cli import main
from tinystore.errors import (
    CorruptStoreError,
    StorageClosedError,
    StoreLockedError,
    TinystoreError,
)
from tinystore.storage.record.format import MAX_INPLACE_DEPTH

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from crafting import write_record  # noqa: E402
from procs import child_env  # noqa: E402

_DICT = {"t": "dict"}
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")


def _record(*nodes, version=(1, 3)) -> dict:
    return {"tinystore": list(version), "attrs": [_DICT], "nodes": list(nodes)}


_GROUP_RECORD = {"tinystore": [1, 3], "nodes": [{"g": 1, "c": {"p": 1}}]}

# Where a group node (``"g": 1``) can stand in the record of the stored object
# ``k``: {name: (record of k, records of its physical subgroups, the bad node)}
GROUP_INSIDE = {
    "table node": (
        _record({"a": 0, "c": {"x": {"@": 1}, "y": 2}}, {"a": 0, "g": 1, "c": {"p": 1}}),
        {},
        "k/x",
    ),
    "node in place": (
        _record({"a": 0, "c": {"x": {"@": {"a": 0, "g": 1, "c": {"p": 1}}}, "y": 2}}),
        {},
        "k/x",
    ),
    "in place, two levels down": (
        _record({"a": 0, "c": {"x": {"@0": {"q": {"@": {"g": 1, "c": {"p": 1}}}}}, "y": 2}}),
        {},
        "k/x/q",
    ),
    "physical group": (
        _record({"a": 0, "c": {"x": {"G": "x", "g": 1}, "y": 2}}),
        {"x": _GROUP_RECORD},
        "k/x",
    ),
    "an object's record says group": (
        _record({"a": 0, "c": {"x": {"G": "x"}, "y": 2}}),
        {"x": _GROUP_RECORD},
        "k/x",
    ),
    "a group's record says object": (
        _record({"a": 0, "c": {"x": {"@": 1}, "y": 2}}, {"a": 0, "c": {"p": 1}}),
        {},
        "k",
    ),
}


def _craft(filename, case):
    record, subgroups, bad = GROUP_INSIDE[case]
    with tinystore.open(filename, "w") as s:
        s["k"] = {"x": {"p": 1}, "y": 2, "big": list(range(100))}
        s["ok"] = 5
    if case == "a group's record says object":  # k is written as a group, its record is not
        with tinystore.open(filename, "w") as s:
            s.create_group("k")["x"] = {"p": 1}
            s["ok"] = 5
    write_record(filename, ("k",), record)
    for name, doc in subgroups.items():
        write_record(filename, ("k", name), doc)
    return bad


@pytest.mark.parametrize("case", list(GROUP_INSIDE))
def test_a_group_inside_a_stored_object_is_damage(backend, filename, case):
    """tinystore puts a group (``create_group``) only into a group: a crafted
    record with a group node inside a stored object, or whose entry and
    record disagree on it, is refused with ``CorruptStoreError`` wherever the
    reader meets it, never a storage handle returned for an object."""
    bad = _craft(filename, case)
    parts = bad.split("/")
    for n in range(1, len(parts) + 2):  # the object, the bad node, a value below it
        path = "/".join((parts + ["p"])[:n])
        with pytest.raises(CorruptStoreError):
            tinystore.load(filename, path=path)
        with tinystore.open(filename, "r") as s:
            with pytest.raises(CorruptStoreError):
                s[path]
            with pytest.raises(CorruptStoreError):
                s.node(path).tree()
    with tinystore.open(filename, "r") as s:
        assert s["ok"] == 5 and "k" in s  # the rest of the store reads
        with pytest.raises(CorruptStoreError):
            s.tree()
        with pytest.raises(CorruptStoreError):
            s.read_tree("k")
    if backend != "memory":  # (the command line opens files)
        for args in (["ls", filename, bad], ["tree", filename], ["show", filename, "k"]):
            assert main(args) == 1


@pytest.mark.parametrize("case", ["table node", "node in place", "physical group"])
def test_a_group_inside_a_saved_object_is_damage(backend, filename, case):
    """The same where the whole file is one object (``tinystore.save``): a
    whole load refuses it as ``load(path=...)`` does."""
    record, subgroups, bad = GROUP_INSIDE[case]
    tinystore.save({"x": {"p": 1}, "y": 2}, filename)
    write_record(filename, (), record)
    for name, doc in subgroups.items():
        write_record(filename, (name,), doc)
    for path in (None, "x", "x/p"):
        with pytest.raises(CorruptStoreError):
            tinystore.load(filename, path=path)


def test_a_handle_to_a_group_replaced_by_an_object_says_it_is_stale(filename):
    """A group handle kept while its key became a stored object (HDF5 gives
    the object's physical group the freed name) says it is stale; it read
    the object's parts as a group's keys before."""
    with tinystore.open(filename, "w") as s:
        g = s.create_group("g")
        g["x"] = 1
        s["g"] = {"big": list(range(100))}
        for action in (lambda: g["big"], lambda: list(g), lambda: g.is_group):
            with pytest.raises(StorageClosedError, match="no longer exists.*stale"):
                action()
        assert s["g"] == {"big": list(range(100))}


def test_groups_and_objects_written_by_tinystore_still_read(backend, filename):
    """Groups in groups (``create_group``), objects in groups, an object part
    large enough for a physical group of its own inside an object, values
    assigned into groups: all read as before, as groups or as objects."""
    big = {"n": list(range(100)), "d": {"x": [1.5] * 80}}
    extra = {"n": list(range(100)), "d": {"x": [2.5] * 80}}
    with tinystore.open(filename, "w") as s:
        g = s.create_group("a/b/c")
        g["v"] = {"small": 1}
        s["a/obj"] = {"inner": big}
        s["a/obj/inner/more"] = {"deep": list(range(70))}
        s["a/obj/extra"] = extra  # a physical group (no "g") inside an object
        s.create_group("a/b/empty")
    expected = {"inner": dict(big, more={"deep": list(range(70))}), "extra": extra}
    with tinystore.open(filename, "r") as s:
        assert s.list_groups() == ["a"] and s["a"].list_groups() == ["b"]
        assert s["a/b"].list_groups() == ["c", "empty"] and s["a"].list_nodes() == ["obj"]
        assert s["a/b/c"].is_group and s["a/b/c"].list_nodes() == ["v"]
        assert_same_structure(pickled(expected), s["a/obj"], new=False)
        assert_same_structure(pickled(expected), s.node("a/obj").to_object(), new=False)
        text = s.tree(max_children=3)
        assert "── v  dict" in text and "── empty  group" in text and "── more  dict" in text
    assert tinystore.load(filename, path="a/b/c/v") == {"small": 1}
    assert tinystore.load(filename, path="a/obj/inner/more/deep") == list(range(70))
    assert tinystore.load(filename, path="a/obj/extra/d") == extra["d"]
    assert_same_structure(pickled(expected), tinystore.load(filename, path="a/obj"), new=False)
    assert isinstance(tinystore.load(filename, path="a/b"), tinystore.GenericStorage)


# -- records damaged in their structure ----------------------------------------------------------------
_LIST = {"t": "list"}


def _doc(*nodes, attrs=(_DICT, _LIST), version=(1, 3)) -> dict:
    return {"tinystore": list(version), "attrs": list(attrs), "nodes": list(nodes)}


_X = {"a": 0, "c": {"p": 1}}
#: records with an unchecked structure error (no checksum: as a file of format
#: 1.0 has none; or sealed again by whoever altered it)
STRUCTURE = {
    "a node index that is a list": _doc({"a": 0, "c": {"x": {"@": [1]}, "y": 2}}, _X),
    "a node index that is a float": _doc({"a": 0, "c": {"x": {"@": 1.5}, "y": 2}}, _X),
    "a node index past the table": _doc({"a": 0, "c": {"x": {"@": 9}, "y": 2}}, _X),
    "a node that is a string": _doc({"a": 0, "c": {"x": {"@": 1}, "y": 2}}, "node"),
    "children that are a string": _doc({"a": 0, "c": {"x": {"@": 1}, "y": 2}}, {"a": 0, "c": "pq"}),
    "children that are a number": _doc({"a": 0, "c": {"x": {"@": {"a": 0, "c": 5}}, "y": 2}}),
    "a key of a shape that is no string (1.4)": _doc(
        {"a": 0, "c": {"x": {"@": 1}, "y": 2}},
        {"a": 2, "c": [1]},
        attrs=(_DICT, _LIST, [0, ["p"]], "1.4"),
        version=(1, 4),
    ),
}


@pytest.mark.parametrize("case", list(STRUCTURE))
def test_a_record_damaged_in_its_structure_is_a_tinystore_error(backend, filename, case):
    """A whole load, loads of parts and browsing of a record whose node table
    is damaged raise ``CorruptStoreError``, never a raw ``TypeError``,
    ``IndexError`` or ``AttributeError`` of the code that reads it."""
    tinystore.save({"x": {"p": 1}, "y": 2}, filename)
    write_record(filename, (), STRUCTURE[case])
    for path in (None, "x", "x/p"):
        with pytest.raises(CorruptStoreError):
            tinystore.load(filename, path=path)
    with tinystore.open(filename, "r") as s:
        with pytest.raises(CorruptStoreError):
            s.tree()


#: root records of a store of groups, damaged in their structure
GROUP_STRUCTURE = {
    "children that are a number": {"tinystore": [1, 3], "nodes": [{"g": 1, "c": 5}]},
    "a group named by a dict": {
        "tinystore": [1, 3],
        "nodes": [{"g": 1, "c": {"x": 1, "g": {"G": {"n": 1}, "g": 1}}}],
    },
    "a group named by a number": {
        "tinystore": [1, 3],
        "nodes": [{"g": 1, "c": {"x": 1, "g": {"G": 7, "g": 1}}}],
    },
}


@pytest.mark.parametrize("case", list(GROUP_STRUCTURE))
def test_a_group_record_damaged_in_its_structure_is_a_tinystore_error(backend, filename, case):
    """Listing, browsing, deleting from and writing into a store whose root
    group's record is damaged raise ``CorruptStoreError``, not a raw error."""
    with tinystore.open(filename, "w") as s:
        s["x"] = 1
        s.create_group("g")["y"] = 2
    write_record(filename, (), GROUP_STRUCTURE[case])
    with tinystore.open(filename, "r") as s:
        try:
            assert "x" in list(s)  # (the names of the keys may still be listed)
        except CorruptStoreError:
            pass
    actions = [
        lambda s: s.tree(),
        lambda s: s.__delitem__("x"),
        lambda s: s.create_group("h"),
        lambda s: s.__setitem__("z", {"big": list(range(100))}),
    ]
    for action in actions:
        with tinystore.open(filename, "a") as s:
            with pytest.raises(CorruptStoreError):
                action(s)


#: metadata of a node whose values are of the wrong type (a crafted record)
BAD_METADATA = {
    "a class path that is a number": {"t": "obj", "c": 5},
    "a global name that is a list": {"t": "global", "g": ["os", "system"]},
    "versions that are a list": {"t": "dict", "versions": [1]},
    "a python version that is a dict": {"t": "dict", "python": {"x": 1}},
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_metadata_of_the_wrong_type_gives_a_value_or_a_tinystore_error(backend, filename, case):
    """Loads, loads of the part, ``tree()`` and ``info()`` of a node whose
    metadata values are of the wrong type give the value (the metadata is
    only informative), or a tinystore error: never a raw ``AttributeError``
    or ``TypeError`` of the code that reads the metadata."""
    tinystore.save({"x": {"p": 1}}, filename)
    doc = _doc({"a": 0, "c": {"x": {"@1": {"p": 1}}}}, attrs=(_DICT, BAD_METADATA[case]))
    write_record(filename, (), doc)

    def browse(what):
        with tinystore.open(filename, "r") as s:
            return getattr(s, what)()

    calls = [lambda: tinystore.load(filename), lambda: tinystore.load(filename, path="x")]
    for call in calls + [lambda: browse("tree"), lambda: browse("info")]:
        try:
            call()
        except TinystoreError:
            pass


# -- the depth limit of nodes in place, on partial loads ---------------------------------------------
def _in_place(children: dict, form: str) -> dict:
    return {"@": {"a": 0, "c": children}} if form == "long" else {"@0": children}


def _nested(levels: int, form: str, last: str) -> dict:
    """A record whose node ``x`` holds ``x`` ... ``levels`` nodes in place deep
    (entries of ``form``), the last one ``{"v": 1}`` (its entry of ``last``)."""
    entry = _in_place({"v": 1}, last)
    for _ in range(levels - 1):
        entry = _in_place({"x": entry}, form)
    return _record({"a": 0, "c": {"x": entry, "y": 2}})


@pytest.mark.parametrize("form, last", [("long", "long"), ("short", "long"), ("short", "short")])
def test_partial_loads_refuse_nodes_in_place_too_deep(backend, filename, form, last):
    """A node in place more than ``MAX_INPLACE_DEPTH`` levels below its table
    node is damage: a whole load refuses it, and so does every load of a
    part that holds or leads to it (counted from the table node, not from
    the part), with the same error; one level less loads everywhere."""
    tinystore.save({"x": 1, "y": 2}, filename)
    for levels, ok in ((MAX_INPLACE_DEPTH, True), (MAX_INPLACE_DEPTH + 1, False)):
        write_record(filename, (), _nested(levels, form, last))
        paths = [None, "x", "x/x", "/".join(["x"] * (levels - 1)), "/".join(["x"] * levels)]
        paths.append(paths[-1] + "/v")
        for path in paths:
            if ok:
                tinystore.load(filename, path=path)
                continue
            with pytest.raises(CorruptStoreError, match="levels deep"):
                tinystore.load(filename, path=path)
        with tinystore.open(filename, "r") as s:
            if ok:
                s.tree()
                assert s[paths[-1]] == 1
                continue
            for path in paths[1:]:
                with pytest.raises(CorruptStoreError, match="levels deep"):
                    s[path]
            with pytest.raises(CorruptStoreError, match="levels deep"):
                s.tree()


def test_partial_loads_of_the_deepest_nodes_tinystore_writes(roundtrip, filename):
    """tinystore's own records at the limit (a chain of lists 64 and 65 levels
    deep) load whole and in part at every level, as pickle gives them."""
    value: list = [1]
    for i in range(MAX_INPLACE_DEPTH + 1):
        value = [value, {"a": i}]
    assert_same_structure(pickled(value), roundtrip(value), new=False)
    part = value
    for level in range(MAX_INPLACE_DEPTH + 2):
        path = "/".join(["0"] * level) if level else None
        assert_same_structure(pickled(part), tinystore.load(filename, path=path), new=False)
        part = part[0]


# -- HDF5 write sessions on existing files ------------------------------------------------------------
def _eof(path) -> int:
    """The end-of-file address in a version 2/3 superblock."""
    data = Path(path).read_bytes()
    assert data[:8] == b"\x89HDF\r\n\x1a\n" and data[8] in (2, 3)
    return struct.unpack_from("<Q", data, 28)[0]


def _assignments(path, **kw) -> dict:
    """Assignments in one open store that grow, then shrink, the root record."""
    expected = {}
    with tinystore.open(path, **kw) as s:
        for key, value in (("new", {"x": 1}), ("grow", "text " * 400), ("grow", 0), ("k", 2)):
            s[key] = expected[key] = value
            assert s[key] == value
    return expected


def test_assignments_keep_a_group_h5py_added_to_a_small_file(tmp_path):
    """A file tinystore wrote whole (its root record only), then given a
    group by h5py: assignments in an open store keep it (test_hdf5_rewrite
    does the same for an attribute, a dataset and a user block)."""
    path = tmp_path / "s.h5"
    tinystore.save({"a": 1}, path, path="old")
    with h5py.File(path, "a") as h:
        h.create_group("foreign").attrs.create("n", 1)
    expected = _assignments(path)
    with h5py.File(path, "r") as h:
        assert h["foreign"].attrs["n"] == 1
    for key, value in expected.items():
        assert tinystore.load(path, path=key) == value
    assert tinystore.load(path, path="old") == {"a": 1}


@pytest.mark.parametrize("durable", [False, True])
def test_assignments_keep_the_file_its_permissions_and_links(tmp_path, durable):
    """Assignments into a small file (opened through a symbolic link) change
    the file itself: same inode, permissions, hard link; and leave an HDF5
    file whose end is where its superblock says."""
    real = tmp_path / "real.h5"
    tinystore.save({"a": 1}, real, path="old")
    os.chmod(real, 0o640)
    os.link(real, tmp_path / "hard.h5")
    link = tmp_path / "link.h5"
    os.symlink(real, link)
    before = os.stat(real)
    expected = _assignments(link, durable=durable)
    after = os.stat(real)
    assert (after.st_ino, after.st_nlink, after.st_mode) == (
        before.st_ino,
        before.st_nlink,
        before.st_mode,
    )
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert _eof(real) == after.st_size
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["hard.h5", "link.h5", "real.h5", "real.h5.lock"]
    assert tinystore.load(tmp_path / "hard.h5", path="k") == expected["k"]
    with h5py.File(real, "r") as h:
        assert sorted(h) == ["@record"]


def test_another_handle_writing_between_two_assignments(tmp_path):
    """Two handles open on one small file take turns: one makes the file hold
    a dataset (no longer one root record), then deletes it; each sees the
    other's writes and none is lost."""
    path = tmp_path / "s.h5"
    tinystore.save(1, path, path="a")
    with tinystore.open(path) as one, tinystore.open(path) as two:
        one["b"] = 2
        two["arr"] = np.arange(1000.0)
        one["c"] = 3
        assert one["arr"].sum() == np.arange(1000.0).sum()
        del two["arr"]
        one["d"] = 4
        two["e"] = 5
        assert list(one) == list(two) == ["a", "b", "c", "d", "e"]
    assert [tinystore.load(path, path=k) for k in "abcde"] == [1, 2, 3, 4, 5]


def test_another_process_writing_between_two_assignments(tmp_path):
    path = tmp_path / "s.h5"
    tinystore.save(1, path, path="a")
    code = (
        "import sys, numpy, tinystore\n"
        "with tinystore.open(sys.argv[1]) as s:\n"
        "    s[sys.argv[2]] = numpy.arange(1000.0) if sys.argv[2] == 'arr' else 7\n"
    )
    reader = tinystore.open(path, "r")
    with tinystore.open(path) as s:
        for i, key in enumerate(["arr", "x", "y"]):
            s[f"mine{i}"] = i
            done = subprocess.run(
                [sys.executable, "-c", code, str(path), key],
                env=child_env(),
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            assert s[key] is not None and reader[f"mine{i}"] == i
            s[f"after{i}"] = i
            assert reader[key] is not None and reader[f"after{i}"] == i
    reader.close()
    got = {k: tinystore.load(path, path=k) for k in ("a", "x", "y", "mine2", "after2")}
    assert got == {"a": 1, "x": 7, "y": 7, "mine2": 2, "after2": 2}


_NEW_K = {"v": 2, "tag": "new " * 50}


def _two_sessions(store: str) -> None:
    with tinystore.open(store) as s:
        s["k"] = _NEW_K  # the root record grows
        s["gone"] = 0  # a second session: the first one's file is the start


def _then_an_array(store: str) -> None:
    with tinystore.open(store) as s, s.hold():
        s["k"] = _NEW_K  # kept for the image...
        s["gone"] = np.arange(300.0)  # ...until HDF5 must open the file after all


#: job: (the states a reader may find, "k" and "gone"; what HDF5 finds in the file at last)
KILLED_JOBS = {
    "two sessions": (
        _two_sessions,
        [({"v": 1, "tag": "old"}, "x" * 300), (_NEW_K, "x" * 300), (_NEW_K, 0)],
    ),
    "then HDF5": (_then_an_array, [({"v": 1, "tag": "old"}, "x" * 300), (_NEW_K, 300)]),
}


def _small_store(store: str) -> None:
    with tinystore.open(store, "w") as s:
        s["k"] = {"v": 1, "tag": "old"}
        s["gone"] = "x" * 300
        s["other"] = (1, 2.5, "three")


def _killed_state(store: str) -> tuple:
    with tinystore.open(store, "r") as s:
        assert s["other"] == (1, 2.5, "three")
        gone = s["gone"]
        return s["k"], len(gone) if isinstance(gone, np.ndarray) else gone


@needs_fork
@pytest.mark.parametrize("job", list(KILLED_JOBS))
@pytest.mark.parametrize("action", ["kill", "raise"])
def test_assignments_into_a_small_file_killed_or_failing_at_every_step(tmp_path, action, job):
    """A store of one root record, assigned into in two write sessions, or in
    one whose second write needs HDF5, killed (or failing) before each step:
    a reader finds the state before a session or after it, never anything
    else; the next writer carries on and leaves nothing behind."""
    store = str(tmp_path / "s.h5")
    run, states = KILLED_JOBS[job]
    _small_store(store)
    status, out = bw.forked(store, "count", job=run)
    assert status == 0 and out.startswith("ok"), out
    steps = int(out.split()[1])
    seen = set()
    for n in range(1, steps + 1):
        _small_store(store)
        status, out = bw.forked(store, action, n, job=run)
        if action == "kill":
            assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        else:
            assert status == 0 and out.startswith("failed"), (n, out)
        state = _killed_state(store)  # a reader first: it never writes
        assert state in states, (n, state)
        seen.add(states.index(state))
        with tinystore.open(store) as s:  # the next writer
            s["z"] = 1
        assert _killed_state(store) == state
        assert sorted(os.listdir(tmp_path)) == ["s.h5", "s.h5.lock"], n
    assert seen == set(range(len(states) - 1))  # (a session's commit is its last step)


def test_an_acknowledged_assignment_is_never_lost_silently(tmp_path):
    """In one session (``hold()``), an assignment is written as a new image
    of the file at the session's end; a later one needs HDF5, which cannot
    open the file (an h5py handle of this process holds it).  The first
    assignment is kept, or the session's end says the store was rolled
    back: never a success, then a store without it."""
    store = tmp_path / "s.h5"
    tinystore.save(1, store, path="old")
    ended = None
    try:
        with tinystore.open(store) as s, s.hold():
            s["a"] = 1
            assert s["a"] == 1
            with h5py.File(store, "r"):
                with pytest.raises(StoreLockedError):
                    s["arr"] = np.arange(1000.0)
    except OSError as exc:
        ended = exc
    with tinystore.open(store, "r") as s:
        keys = list(s)
    assert keys in (["old", "a"], ["old"])
    if keys == ["old"]:
        assert ended is not None and "rolled back" in str(ended)
    else:
        assert ended is None
