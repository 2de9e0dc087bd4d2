"""The physical layout is built for speed: count what a storage does to its file.

A storage's :class:`~tinystore.storage.record.Physical` (``storage._store.physical``)
is wrapped in a proxy that counts the operations that cost time on a real file
system or HDF5 file: record reads/writes, external leaf reads/writes, group
creation.  The tests show, on every backend, that

* a Tree of 1,000 floats (what the codec makes of a dict of 1,000 floats) is a
  handful of operations, not 1,000;
* ``batch()`` around 1,000 assignments writes the group's record once;
* large leaves are stored outside the record, one external each, small ones inline;
* reading one leaf reads only that leaf's external;
* the JSON directory holds only records, ``.npy``/``.bin`` files and group
  directories with safe names inside the root, and no leftovers;
* the same content written twice gives byte-identical records.

Every test also checks that the count *can* be large (the unbatched loop, the
whole-object read), so that a broken counter cannot make it pass.
"""

from __future__ import annotations

import difflib
import itertools
import os
import re
from collections import Counter

import numpy as np
import orjson
import pytest

import tinystore
from tinystore import Tree
from tinystore.storage import HDF5Storage, JSONDirStorage, MemoryStorage
from tinystore.storage.record import INLINE_LIMIT
from tinystore.testing import assert_leaf_identical

COUNTED = (
    "read_record",
    "write_record",
    "read_external",
    "read_external_summed",  # counted as read_external: a leaf summed while read
    "write_external",
    "create_group",
    "delete_external",
    "delete_group",
)
WRITES = ("write_record", "write_external", "create_group")


class CountingPhysical:
    """Delegates to a Physical and records every counted call ``(method, gpath, name)``."""

    def __init__(self, inner):
        self._inner = inner
        self.calls: list[tuple] = []
        self.records: list[tuple] = []  # (gpath, bytes) of every write_record

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if name == "write_records":  # a commit: each record it writes counts as one

            def commit(records):
                for gpath, data in records:
                    self.calls.append(("write_record", gpath, None))
                    self.records.append((gpath, bytes(data)))
                return attr(records)

            return commit
        if name not in COUNTED:
            return attr

        def counted(*args, **kw):
            gpath = args[0] if args else None
            self.calls.append(
                (
                    name.removesuffix("_summed"),
                    gpath,
                    args[1] if len(args) > 1 and name != "write_record" else None,
                )
            )
            if name == "write_record":
                self.records.append((gpath, bytes(args[1])))
            return attr(*args, **kw)

        return counted

    def count(self, *names: str) -> int:
        return sum(1 for c in self.calls if c[0] in names)

    def names(self, method: str) -> list:
        return [c[2] for c in self.calls if c[0] == method]

    def reset(self) -> None:
        self.calls.clear()
        self.records.clear()


def counting(storage) -> CountingPhysical:
    """Install a counting proxy on an open storage (all its groups share it)."""
    proxy = CountingPhysical(storage._store.physical)
    storage._store.physical = proxy
    return proxy


_names = itertools.count()
BACKENDS = ["memory", "hdf5", "json"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture
def opener(backend, tmp_path):
    """``opener(mode, codec=False)``: the same store each call; closed and dropped after."""
    opened = []
    name = f"layout-{next(_names)}"
    loc = {
        "memory": f"memory://{name}",
        "hdf5": str(tmp_path / "store.h5"),
        "json": str(tmp_path / "store.json"),
    }[backend]

    def open_(mode="a", codec=False):
        if codec:
            s = tinystore.open(loc, mode=mode)
        elif backend == "memory":
            s = MemoryStorage(name, mode=mode)
        elif backend == "hdf5":
            s = HDF5Storage(loc, mode=mode)
        else:
            s = JSONDirStorage(loc, mode=mode)
        opened.append(s)
        return s

    open_.location = loc
    yield open_
    for s in opened:
        s.close()
    if backend == "memory":
        MemoryStorage.drop(name)


def floats_tree(n: int = 1000) -> Tree:
    return Tree({"t": "dict"}, {f"k{i}": i * 0.25 + 0.1 for i in range(n)})


# ---------------------------------------------------------------------------
# (a) a dict of 1,000 floats is a handful of operations
def test_tree_of_1000_floats_is_a_handful_of_operations(opener):
    s = opener("w")
    counter = counting(s)
    s["floats"] = floats_tree()
    assert counter.count(*WRITES) <= 5, counter.calls
    assert counter.count("write_record") <= 2  # the object's own record, and its parent's
    assert counter.count("write_external") == 0
    assert counter.count("read_record") <= 2
    counter.reset()
    back = s["floats"].read_tree()
    assert back == floats_tree()
    # two operations; the file backends read the records again in each one
    assert counter.count("read_record", "read_external") <= 3, counter.calls
    counter.reset()
    with s.hold():
        s["floats"].read_tree()
    assert counter.count("read_record", "read_external") <= 2, counter.calls
    # inside a group, too
    s.create_group("g")
    counter.reset()
    s["g/floats"] = floats_tree()
    assert counter.count(*WRITES) <= 5, counter.calls


def test_dict_of_1000_floats_through_the_codec(opener):
    s = opener("w", codec=True)
    counter = counting(s)
    data = {f"k{i}": i * 0.25 + 0.1 for i in range(1000)}
    s["floats"] = data
    assert counter.count(*WRITES) <= 5, counter.calls
    assert counter.count("write_external") == 0
    counter.reset()
    assert s["floats"] == data
    assert counter.count("read_record", "read_external") <= 3, counter.calls
    counter.reset()
    assert s["floats/k500"] == data["k500"]
    assert counter.count("read_record", "read_external") <= 3, counter.calls


# ---------------------------------------------------------------------------
# (b) batch(): one record write for 1,000 assignments
def test_batch_writes_the_record_once(opener):
    s = opener("w")
    g = s.create_group("g")
    counter = counting(s)
    with s.batch():
        for i in range(1000):
            g[f"k{i}"] = float(i)
    assert counter.count("write_record") == 1, Counter(c[0] for c in counter.calls)
    assert counter.count(*WRITES) == 1
    assert counter.count("read_record") <= 1
    assert counter.records[0][0] == g._gpath
    assert [g[f"k{i}"] for i in (0, 999)] == [0.0, 999.0]
    assert len(g) == 1000


def test_without_batch_every_assignment_writes(opener):
    """The control for the test above: the counter sees every write."""
    s = opener("w")
    g = s.create_group("g")
    counter = counting(s)
    for i in range(100):
        g[f"k{i}"] = float(i)
    assert counter.count("write_record") == 100


def test_update_is_one_batch(opener):
    s = opener("w")
    g = s.create_group("g")
    counter = counting(s)
    g.update({f"k{i}": i for i in range(1000)})
    assert counter.count("write_record") == 1
    assert list(g)[-1] == "k999"


# ---------------------------------------------------------------------------
# (c) large leaves outside the record, small ones inline
def _big_and_small():
    big = {
        "a_f8": np.arange(INLINE_LIMIT // 8 + 1, dtype="f8"),
        "a_u1_limit_plus_1": np.zeros(INLINE_LIMIT + 1, dtype="u1"),
        "a_fortran": np.asfortranarray(np.arange(1200.0).reshape(30, 40)),
        "a_structured": np.zeros(500, dtype=[("x", "<i4"), ("y", ">f8")]),
        "b_bytes": bytes(range(256)) * 9,
        "b_bytearray": bytearray(INLINE_LIMIT + 1),
    }
    small = {
        "s_u1_at_limit": np.zeros(INLINE_LIMIT, dtype="u1"),
        "s_f8": np.arange(10.0),
        "s_bytes": b"x" * INLINE_LIMIT,
        "s_bytearray": bytearray(b"abc"),
        "s_str_long": "long text " * 1000,  # strings stay in the record
        "s_int": 2**100,
        "s_float": float("nan"),
        "s_scalar": np.float32(1.5),
    }
    return big, small


def _record_entries(data: bytes) -> list:
    doc = orjson.loads(data)
    out = []
    for node in doc["nodes"]:
        c = node.get("c") or {}
        out.extend(c.items() if isinstance(c, dict) else enumerate(c))
    return out


def test_large_leaves_are_externals_small_ones_inline(opener):
    big, small = _big_and_small()
    s = opener("w")
    # arrays have a lower limit of their own on HDF5 (SMALL_ARRAY_BYTES)
    array_limit = s._store.physical.inline_array_limit
    assert array_limit <= INLINE_LIMIT
    for key, value in list(small.items()):
        if isinstance(value, np.ndarray) and value.nbytes > array_limit:
            big[key] = small.pop(key)
    counter = counting(s)
    s["obj"] = Tree({}, {**big, **small})
    assert counter.count("write_external") == len(big), counter.calls
    assert sorted(counter.names("write_external")) == sorted(big)
    entries = dict(_record_entries(counter.records[0][1]))
    for key in big:
        assert isinstance(entries[key], dict) and "X" in entries[key], key
    for key in small:
        entry = entries[key]
        assert not (isinstance(entry, dict) and "X" in entry), key
    # leaves assigned one by one into a group: one external each as well
    counter.reset()
    g = s.create_group("g")
    for key, value in {**big, **small}.items():
        g[key] = value
    assert counter.count("write_external") == len(big)
    s.close()
    s = opener("r")
    for key, value in {**big, **small}.items():
        assert_leaf_identical(value, s["obj"][key])
        assert_leaf_identical(value, s["g"][key])


# ---------------------------------------------------------------------------
# (d) partial reads
def test_reading_one_leaf_reads_only_its_external(opener):
    arrays = {f"a{i}": np.full(1000, float(i)) for i in range(20)}
    s = opener("w")
    s["obj"] = Tree({}, {"arrays": Tree({}, arrays), "n": 20})
    g = s.create_group("g")
    with s.batch():
        for key, value in arrays.items():
            g[key] = value
    s.close()
    s = opener("r")
    counter = counting(s)
    assert_leaf_identical(arrays["a7"], s["obj/arrays/a7"])
    # HDF5 keeps the leaf at its path in the object (format 1.1)
    nested = s._store.physical.nested
    assert counter.names("read_external") == ["arrays/a7" if nested else "a7"], counter.calls
    assert counter.count("read_record") <= 2  # the root's record and the object's
    counter.reset()
    assert_leaf_identical(arrays["a13"], s["g/a13"])
    assert counter.names("read_external") == ["a13"], counter.calls
    counter.reset()
    assert s["obj/n"] == 20
    assert counter.count("read_external") == 0
    # browsing lists keys without reading any array
    counter.reset()
    assert list(s["obj/arrays"]) == list(arrays)
    assert list(s["g"]) == list(arrays)
    assert counter.count("read_external") == 0
    # control: reading the whole object reads every array
    counter.reset()
    s["obj"].read_tree()
    assert counter.count("read_external") == 20


def test_partial_load_through_the_codec(opener):
    arrays = {f"a{i}": np.full(1000, float(i)) for i in range(20)}
    with opener("w", codec=True) as s:
        s["result"] = {"arrays": arrays, "label": "run"}
    s = opener("r", codec=True)
    counter = counting(s)
    assert_leaf_identical(arrays["a3"], s["result/arrays/a3"])
    nested = s._store.physical.nested  # HDF5: the leaf at its path in the object
    assert counter.names("read_external") == ["arrays/a3" if nested else "a3"], counter.calls
    counter.reset()
    assert s["result/label"] == "run"
    assert counter.count("read_external") == 0
    counter.reset()
    whole = s["result"]
    assert counter.count("read_external") == 20
    assert_leaf_identical(arrays["a19"], whole["arrays"]["a19"])


# ---------------------------------------------------------------------------
# (e) the JSON directory
NASTY_KEYS = [
    "plain",
    "Plain",
    "PLAIN",
    "...",
    ".hidden",
    "trailing.",
    "a.b.c",
    "with space",
    "C:\\windows",
    "back\\slash",
    "CON",
    "con.txt",
    "nul",
    "LPT1",
    "@record.json",
    "@record",
    "@tmp-x",
    "@lock",
    "@journal",
    "%2e%2e",
    "^a",
    "~1",
    "x.npy",
    "y.bin",
    "\U0001f600",
    "e\u0301",
    "\u00e9",
    "\u0130",
    "tab\tnewline\n",
    "z" * 255,
    "\u00e9" * 127,
    "日本語",
]
SAFE_NAME = re.compile(r"[a-z0-9_.%^~-]+")


def assert_clean_json_dir(root: str) -> None:
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        at_root = os.path.realpath(dirpath) == real_root
        for name in dirnames + filenames:
            full = os.path.realpath(os.path.join(dirpath, name))
            assert os.path.commonpath([real_root, full]) == real_root, full
            assert not os.path.islink(os.path.join(dirpath, name))
        lowered = [n.lower() for n in dirnames + filenames]
        assert len(set(lowered)) == len(lowered), "names collide on a case-insensitive FS"
        for name in dirnames:
            assert SAFE_NAME.fullmatch(name), name
            assert not name.startswith((".", "@")), name
        for name in filenames:
            if name == "@record.json" or (at_root and name == "@lock"):
                continue
            assert name.endswith((".npy", ".bin")), os.path.join(dirpath, name)
            assert SAFE_NAME.fullmatch(name), name
            assert not name.startswith((".", "@")), name
        assert "@record.json" in filenames, dirpath
        assert not any(n.startswith(("@tmp-", "@journal")) for n in filenames), filenames


def assert_no_orphans(root: str) -> None:
    """Every file and directory is referenced by its group's record."""
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        with open(os.path.join(dirpath, "@record.json"), "rb") as f:
            entries = [e for _, e in _record_entries(f.read())]
        expected = {"@record.json"}
        for e in entries:
            if isinstance(e, dict) and "X" in e:
                expected.add(e["X"] + (".npy" if e["k"] == "A" else ".bin"))
            elif isinstance(e, dict) and "G" in e:
                expected.add(e["G"])
        present = set(dirnames) | set(filenames)
        if os.path.realpath(dirpath) == real_root:
            present.discard("@lock")
        assert present == expected, dirpath


def _fill(s) -> None:
    big = np.arange(1000.0)
    for i, key in enumerate(NASTY_KEYS):
        s[key] = big + i
        s[f"objects/{key}"] = Tree({}, {key: b"b" * 3000, "small": i, "seq": Tree({}, [big])})
        s.create_group(f"groups/{key}")[key] = bytearray(3000)


def test_json_directory_holds_only_safe_names(tmp_path):
    root = str(tmp_path / "store.json")
    with JSONDirStorage(root, mode="w") as s:
        _fill(s)
        assert_clean_json_dir(root)
        assert_no_orphans(root)
        # overwrite and delete: the old files go, nothing is left behind
        for key in NASTY_KEYS[::2]:
            s[key] = Tree({}, {"replaced": np.arange(600.0)})
            del s[f"objects/{key}"]
            s[f"groups/{key}"] = "now a leaf"
        for key in NASTY_KEYS[1::3]:
            del s[key]
        assert_clean_json_dir(root)
        assert_no_orphans(root)
    with JSONDirStorage(root, mode="r") as s:
        assert list(s["groups"]) == NASTY_KEYS
        assert s["groups/" + NASTY_KEYS[1]][NASTY_KEYS[1]] == bytearray(3000)
        assert_leaf_identical(np.arange(600.0), s[NASTY_KEYS[0] + "/replaced"])


def test_json_failed_write_leaves_nothing_behind(tmp_path):
    root = str(tmp_path / "store.json")
    with JSONDirStorage(root, mode="w") as s:
        s["keep"] = np.arange(1000.0)
        bad = Tree(
            {},
            {
                "big": np.arange(1000.0),
                "sub": Tree({}, {"b": b"x" * 5000}),
                "bad": object(),
            },
        )
        with pytest.raises(TypeError):
            s["bad"] = bad
        with pytest.raises(TypeError), s.batch():
            s["g/big"] = np.arange(2000.0)
            s["g/bad"] = object()
        assert list(s) == ["keep"]
        assert_clean_json_dir(root)
        assert_no_orphans(root)


# ---------------------------------------------------------------------------
# deterministic output
def _content() -> Tree:
    rng = np.random.default_rng(5)
    return Tree(
        {"t": "demo", "n": 3, "units": {"e": "eV"}},
        {
            "floats": floats_tree(200),
            "big": rng.random(1000),
            "bytes": b"\x00\x01" * 2000,
            "seq": Tree({}, [1, "two", Tree({"k": 1}, {"x": rng.random(300)}), None, 2**80]),
            "nan": float("nan"),
            "unicode \u00e9": "\U0001f600",
        },
    )


def _records(storage) -> dict:
    """Every record of the storage, by physical group path."""
    out = {}
    physical = storage._store.physical
    with storage.hold():
        stack = [()]
        while stack:
            gpath = stack.pop()
            data = physical.read_record(gpath)
            out[gpath] = data
            for _, e in _record_entries(data):
                if isinstance(e, dict) and "G" in e:
                    stack.append(gpath + (e["G"],))
    return out


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_content_gives_identical_records(backend, tmp_path):
    written = []
    for run in range(2):
        if backend == "memory":
            loc = f"layout-det-{next(_names)}"
            s = MemoryStorage(loc, mode="w")
        elif backend == "hdf5":
            s = HDF5Storage(tmp_path / f"run{run}.h5", mode="w")
        else:
            s = JSONDirStorage(tmp_path / f"run{run}.json", mode="w")
        counter = counting(s)
        s["content"] = _content()
        s.create_group("g")["content"] = _content()
        written.append((counter.records, _records(s)))
        s.close()
        if backend == "memory":
            MemoryStorage.drop(loc)
    assert written[0][0] == written[1][0]  # the writes, in order
    assert written[0][1] == written[1][1]  # what is stored
    if backend == "json":
        files = [_json_files(tmp_path / f"run{run}.json") for run in range(2)]
        assert files[0] == files[1]


def _json_files(root) -> dict:
    """Every file of a JSON directory store (but its lock file) and its bytes."""
    return {
        p.relative_to(root): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "@lock"
    }


def test_same_object_saved_twice_gives_identical_files(tmp_path):
    obj = {
        "energy": -1.5,
        "forces": np.arange(900.0).reshape(300, 3),
        "steps": [1, 2, 3],
        "meta": {"code": "demo", "tags": ("a", "b")},
    }
    trees = []
    for run in range(2):
        root = tmp_path / f"obj{run}.json"
        tinystore.save(obj, str(root))
        trees.append(_json_files(root))
    assert trees[0] == trees[1]


def test_json_record_diff_is_small(tmp_path):
    # DESIGN.md 4: "JSON records are laid out so that a changed value shows as
    # a small diff under git".
    root = tmp_path / "store.json"
    data = {f"k{i}": i * 0.25 for i in range(1000)}
    tinystore.save(data, str(root))
    before = (root / "@record.json").read_text().splitlines()
    data["k500"] = -1.0
    tinystore.save(data, str(root))
    after = (root / "@record.json").read_text().splitlines()
    changed = [
        line
        for line in difflib.unified_diff(before, after, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sum(len(line) for line in changed) < 500, (
        f"{len(changed)} lines, {sum(map(len, changed))} chars"
    )


@pytest.mark.parametrize("kind", [dict, list])
@pytest.mark.parametrize("n", [9, 16, 17, 100])
def test_json_record_lines_hold_eight_children(tmp_path, kind, n):
    # docs/format.rst: "a line per eight children of a large node"; values and
    # keys holding newlines, commas and brackets (escaped in JSON) do not move
    # the line breaks
    texts = ["a\n,b", "\n,", "},\n{", "x\\n,", "é\n"]
    values = [texts[i % len(texts)] + str(i) for i in range(n)]
    data = {f"k\n,{i}": v for i, v in enumerate(values)} if kind is dict else values
    root = tmp_path / "store.json"
    tinystore.save(data, str(root))
    lines = (root / "@record.json").read_bytes().split(b"\n")
    start = next(i for i, line in enumerate(lines) if line.endswith((b'"c":{', b'"c":[')))
    body = lines[start + 1 : start + 1 + -(-n // 8)]
    assert [line.count(b'"k\\n,') if kind is dict else line.count(b'"') // 2 for line in body] == [
        min(8, n - 8 * j) for j in range(len(body))
    ]
    assert all(line.endswith(b",") for line in body[:-1]) and not body[-1].endswith(b",")
    assert tinystore.load(str(root)) == data


# ---------------------------------------------------------------------------
# shared metadata: written once per record; small nodes in their short form
def test_metadata_shared_by_many_nodes_is_written_once(opener):
    s = opener(codec=True)
    # (a last item of another type: a list of tuples only would be a table node)
    pairs = [(i, i * 0.5, f"w{i % 7}") for i in range(500)] + [None]
    s["pairs"] = pairs
    s["obj"] = {"name": "x", "pairs": pairs[:3]}
    doc = orjson.loads(_records(s)[("pairs",)])
    assert doc["attrs"].count({"t": "tuple"}) == 1, doc["attrs"]
    # format 1.3: the tuples' shape, [index of {"t": "tuple"}], is the record's
    # first shape, whose nodes are bare arrays of their values
    shapes = [a for a in doc["attrs"] if type(a) is list]
    assert shapes[0] == [doc["attrs"].index({"t": "tuple"})]
    entries = [e for _, e in _record_entries(orjson.dumps(doc))]
    assert sum(1 for e in entries if e == [7, 3.5, "w0"]) == 1
    assert sum(1 for e in entries if isinstance(e, list)) == 500
    # each entry costs a few bytes beyond its values
    assert len(orjson.dumps(doc)) < len(orjson.dumps(pairs)) + 12 * 500
    # short-form nodes are nodes like any other: browse, read, update, delete
    assert s.node("pairs/7").attrs["t"] == "tuple"
    assert s["pairs/7/2"] == "w0"
    assert s["pairs/7"] == (7, 3.5, "w0")
    s["pairs/7/2"] = "changed"
    s["pairs/8"] = ("replaced",)
    del s["pairs/9/1"]
    loaded = s["pairs"]
    assert loaded[7] == (7, 3.5, "changed") and loaded[8] == ("replaced",)
    assert loaded[9] == (9, "w2") and type(loaded[9]) is tuple
    assert loaded[10:] == pairs[10:] and loaded[:7] == pairs[:7]
    assert s["obj"] == {"name": "x", "pairs": pairs[:3]}


def test_metadata_table_survives_partial_updates_and_reopen(opener):
    s = opener(codec=True)
    s["data"] = [{"k": i} for i in range(20)]
    s["data/3"] = {"k": "new"}
    s.close()
    s = opener(codec=True)
    s["data/4"] = ("t",)
    s.close()
    s = opener("r", codec=True)
    expected = [{"k": i} for i in range(20)]
    expected[3] = {"k": "new"}
    expected[4] = ("t",)
    assert s["data"] == expected
    assert [type(x) for x in s["data"]] == [dict] * 4 + [tuple] + [dict] * 15
