"""Safe loading: a crafted store never runs code, hangs or exhausts memory.

Every crafted store is written directly as a tree of nodes (or as raw record
JSON / files / HDF5 datasets, see ``helpers/crafting.py``) on every backend,
then loaded in a forked child with a timeout and a capped address space
(``run_isolated``).  A crafted store must be refused with a
:mod:`tinystore.errors` error, and the side effect its payload aims at
(creating a sentinel file) must never happen.
"""

from __future__ import annotations

import base64
import importlib
import os
import pickle
import shlex
import shutil
import string
import subprocess
import sys
import types
import uuid
import warnings
from collections import Counter, OrderedDict, defaultdict, deque
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from pathlib import Path, PurePosixPath

import h5py
import numpy as np
import orjson
import pytest

import tinystore
from tinystore import Tree
from tinystore.errors import (
    CorruptStoreError,
    TinystoreError,
    UnloadableError,
    UnsafeLoadError,
    VersionMismatchError,
)
from tinystore.objects.versions import PYTHON, VersionWarning

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import (  # noqa: E402
    attempt,
    fork_available,
    measured,
    record_doc,
    remove_store,
    run_isolated,
    run_one,
    write_external,
    write_record,
)

pytestmark = pytest.mark.skipif(not fork_available(), reason="needs fork() to isolate loads")

#: seconds a crafted load may take before it counts as hanging (a refusal takes milliseconds)
HANG = 10.0


# -- node builders ------------------------------------------------------------------------
def G(name: str) -> Tree:
    return Tree({"t": "global", "g": name})


def T(*items) -> Tree:
    return Tree({"t": "tuple"}, list(items))


def L(*items) -> Tree:
    return Tree({"t": "list"}, list(items))


def D(**items) -> Tree:
    return Tree({"t": "dict"}, dict(items))


def R(func: Tree, args: Tree, **attrs) -> Tree:
    return Tree({"t": "reduce", **attrs}, {"f": func, "a": args})


class _CreateFile:
    """Unpickling this creates ``path`` (through ``builtins.open``, so on any OS)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


class Bait:
    """What the crafted payloads aim at: files whose existence proves code ran."""

    def __init__(self, root: Path):
        self.root = root
        self.sentinel = str(root / "SENTINEL")
        lib = root / "lib"
        lib.mkdir()
        # a module whose *import* is the attack: importing it creates the sentinel
        self.module = f"tinystore_evil_{uuid.uuid4().hex[:12]}"
        (lib / f"{self.module}.py").write_text(
            f"open({self.sentinel!r}, 'w').close()\n"
            "import enum\n"
            "class Colour(enum.Enum):\n    RED = 1\n"
            "class Job:\n    pass\n"
        )
        self.lib = str(lib)
        self.pickle = _pickle_bytes(_CreateFile(self.sentinel))
        # an object array whose unpickling creates the sentinel
        self.npy = str(root / "evil.npy")
        np.save(self.npy, np.array([_CreateFile(self.sentinel)], dtype=object), allow_pickle=True)
        self.code = f"open({self.sentinel!r}, 'w').close()"
        self.shell = f"touch {shlex.quote(self.sentinel)}"

    def fired(self) -> bool:
        return os.path.exists(self.sentinel)


def _pickle_bytes(obj) -> bytes:
    return pickle.dumps(obj, protocol=4)


@pytest.fixture
def bait(tmp_path, monkeypatch) -> Bait:
    b = Bait(tmp_path)
    monkeypatch.syspath_prepend(b.lib)
    importlib.invalidate_caches()
    yield b
    sys.modules.pop(b.module, None)


def sibling(location: str, i: int) -> str:
    """Another store location of the same backend as ``location``."""
    if location.startswith("memory://"):
        return f"{location}-{i}"
    p = Path(location)
    return str(p.with_name(f"{p.stem}-{i}{p.suffix}"))


@pytest.fixture
def root_filename(backend, tmp_path):
    """A second store location (for stores whose root is one saved object)."""
    if backend == "memory":
        loc = f"memory://security-root-{uuid.uuid4().hex}"
    else:
        loc = str(tmp_path / ("root.h5" if backend == "hdf5" else "root.json"))
    yield loc
    remove_store(loc)


# -- the corpus of payloads ----------------------------------------------------------------
def _corpus(b: Bait) -> dict[str, tuple[Tree, str | tuple | None]]:
    """name -> (payload, what the refusal names: a ``module:qualname``, alternatives, or None).

    A callable that is not a plain import (the result of another call) is
    refused as "computed" before anything inside it is imported.
    """
    sh, code, mod = b.shell, b.code, b.module
    return {
        "os.system": (R(G("os:system"), T(sh)), "os:system"),
        "posix.system": (R(G("posix:system"), T(sh)), "posix:system"),
        "nt.system": (R(G("nt:system"), T(sh)), "nt:system"),
        "os.popen": (R(G("os:popen"), T(sh)), "os:popen"),
        "builtins.eval": (R(G("builtins:eval"), T(code)), "builtins:eval"),
        "builtins.exec": (R(G("builtins:exec"), T(code)), "builtins:exec"),
        "builtins.exec(compile)": (
            R(G("builtins:exec"), T(R(G("builtins:compile"), T(code, "<x>", "exec")))),
            "builtins:exec",
        ),
        "builtins.__import__": (R(G("builtins:__import__"), T(mod)), "builtins:__import__"),
        "builtins.open": (R(G("builtins:open"), T(b.sentinel, "w")), "builtins:open"),
        "builtins.type": (R(G("builtins:type"), T("X", T(), D())), "builtins:type"),
        "getattr chain to os.system": (
            R(R(G("builtins:getattr"), T(R(G("builtins:__import__"), T("os")), "system")), T(sh)),
            ("builtins:getattr", "computed"),
        ),
        "getattr on an allowed class": (
            R(R(G("builtins:getattr"), T(G("builtins:object"), "__subclasses__")), T()),
            ("builtins:getattr", "computed"),
        ),
        "qualname walk from an allowed class": (
            R(G("builtins:object.__subclasses__"), T()),
            "builtins:object.__subclasses__",
        ),
        "qualname walk to module globals": (
            R(G("pathlib:PurePath.__init__.__globals__.get"), T("os")),
            "pathlib:PurePath.__init__.__globals__.get",
        ),
        "subprocess.Popen as reduce": (
            R(G("subprocess:Popen"), T(L("touch", b.sentinel))),
            "subprocess:Popen",
        ),
        "subprocess.Popen as obj class": (
            Tree(
                {"t": "obj", "c": "subprocess:Popen", "st": "d"}, {"args": L("touch", b.sentinel)}
            ),
            "subprocess:Popen",
        ),
        "subprocess.getoutput": (R(G("subprocess:getoutput"), T(sh)), "subprocess:getoutput"),
        "copyreg.__newobj__ of Popen": (
            R(G("copyreg:__newobj__"), T(G("subprocess:Popen"), L("touch", b.sentinel))),
            "subprocess:Popen",
        ),
        "importlib.import_module": (
            R(G("importlib:import_module"), T(mod)),
            "importlib:import_module",
        ),
        "runpy.run_module": (R(G("runpy:run_module"), T(mod)), "runpy:run_module"),
        # numpy.testing runs code strings: exec (runstring) and compile+exec (measure)
        "numpy.testing.runstring": (
            R(G("numpy.testing:runstring"), T(code, D())),
            "numpy.testing:runstring",
        ),
        "numpy.testing._private.utils.runstring": (
            R(G("numpy.testing._private.utils:runstring"), T(code, D())),
            "numpy.testing._private.utils:runstring",
        ),
        "numpy.testing.measure": (
            R(G("numpy.testing:measure"), T(code, 1)),
            "numpy.testing:measure",
        ),
        "numpy.testing.assert_no_warnings(os.system)": (
            R(G("numpy.testing:assert_no_warnings"), T(G("os:system"), sh)),
            "numpy.testing:assert_no_warnings",
        ),
        "numpy.load(allow_pickle=True)": (R(G("numpy:load"), T(b.npy, None, True)), "numpy:load"),
        "pickle.loads": (R(G("pickle:loads"), T(b.pickle)), "pickle:loads"),
        "_pickle.loads": (R(G("_pickle:loads"), T(b.pickle)), "_pickle:loads"),
        "cloudpickle.loads": (R(G("cloudpickle:loads"), T(b.pickle)), "cloudpickle:loads"),
        "enum whose class is os.system": (
            Tree({"t": "enum", "c": "os:system", "v": sh}),
            "os:system",
        ),
        "enum whose class is subprocess.getoutput": (
            Tree({"t": "enum", "c": "subprocess:getoutput", "v": sh}),
            "subprocess:getoutput",
        ),
        "enum of a module that runs code on import": (
            Tree({"t": "enum", "c": f"{mod}:Colour", "n": "RED"}),
            f"{mod}:Colour",
        ),
        "storable whose class is os.system": (
            Tree({"t": "storable", "c": "os:system", "v": 1}, {"cmd": sh}),
            "os:system",
        ),
        "storable of a module that runs code on import": (
            Tree({"t": "storable", "c": f"{mod}:Job", "v": 1}, {}),
            f"{mod}:Job",
        ),
        "obj of a module that runs code on import": (
            Tree({"t": "obj", "c": f"{mod}:Job", "st": "d"}, {"x": 1}),
            f"{mod}:Job",
        ),
        "global of a module that runs code on import": (G(f"{mod}:Job"), f"{mod}:Job"),
        "state setter os.system": (
            Tree(
                {"t": "reduce"},
                {"f": G("collections:OrderedDict"), "a": T(), "ss": G("os:system"), "s": sh},
            ),
            "os:system",
        ),
        "defaultdict whose factory is os.system": (
            R(G("collections:defaultdict"), T(G("os:system"))),
            "os:system",
        ),
        "os.system deep inside plain data": (
            L(1, D(a=L(T(2, D(b=R(G("os:system"), T(sh))))))),
            "os:system",
        ),
        "cloudpickle node": (Tree({"t": "cloudpickle"}, [b.pickle]), None),
        "cloudpickle node inside a list": (L(1, Tree({"t": "cloudpickle"}, [b.pickle])), None),
    }


def _corpus_names() -> list[str]:
    """The case names, for parametrizing (the payloads themselves need a real Bait)."""

    class _Fake:
        shell = code = module = sentinel = npy = "x"
        pickle = b"x"

    return list(_corpus(_Fake()))  # type: ignore[arg-type]


CORPUS = _corpus_names()


def _save_payload(filename: str, root_filename: str, payload: Tree) -> None:
    with tinystore.open(filename, "w") as s:
        s["payload"] = payload
        s["doc"] = D(ok=1, nested=L(1, 2, payload))
        s["plain"] = {"a": 1}
    with tinystore.open(root_filename, "w") as s:
        s.replace_root(D(ok=1, payload=payload))


def _every_way_to_load(filename: str, root_filename: str, **kw) -> dict:
    """Run in the child: each way of loading a stored object, safely."""

    def via_storage(path):
        with tinystore.open(filename, "r", safe=True, **kw) as s:
            return s[path]

    def via_view():
        with tinystore.open(filename, "r", safe=True, **kw) as s:
            return s.node("doc/nested/2").to_object()

    return {
        "load whole": attempt(lambda: tinystore.load(root_filename, safe=True, **kw)),
        "load part": attempt(lambda: tinystore.load(filename, path="payload", safe=True, **kw)),
        "load nested part": attempt(
            lambda: tinystore.load(filename, path="doc/nested/2", safe=True, **kw)
        ),
        "load enclosing": attempt(lambda: tinystore.load(filename, path="doc", safe=True, **kw)),
        "storage[...]": attempt(lambda: via_storage("payload")),
        "node view": attempt(via_view),
        "plain item": attempt(
            lambda: tinystore.load(filename, path="plain", safe=True, **kw), repr
        ),
    }


def _browse(filename: str) -> dict:
    """Run in the child: browsing without loading must never import or run anything."""

    def look():
        with tinystore.open(filename, "r") as s:
            s.tree()
            s.info()
            s._repr_html_()
            view = s.node("doc")
            return (view.kind, view.type, [c for c in view])

    return {"browse": attempt(look, repr)}


@pytest.mark.parametrize("case", CORPUS)
def test_crafted_payload_is_refused_without_side_effects(
    case, backend, filename, root_filename, bait
):
    payload, refused_name = _corpus(bait)[case]
    _save_payload(filename, root_filename, payload)

    outcome = run_one(
        lambda: {**_every_way_to_load(filename, root_filename), **_browse(filename)}, timeout=20
    )

    assert not bait.fired(), f"{case}: the payload ran ({outcome})"
    assert outcome.status == "done", f"{case}: {outcome}"
    results = outcome.result
    for way, caught in results.items():
        if way == "plain item":
            assert not caught.raised, f"{case}: the harmless item next to the payload: {caught}"
            assert caught.value == "{'a': 1}"
        elif way == "browse":
            assert not caught.raised or caught.tinystore_error, f"{case}: browsing: {caught}"
        else:
            assert caught.raised, f"{case} via {way}: loaded {caught.value!r}"
            assert caught.isinstance(UnsafeLoadError), f"{case} via {way}: {caught}"
            if refused_name is not None:
                names = refused_name if isinstance(refused_name, tuple) else (refused_name,)
                assert any(n in caught.message for n in names), f"{case} via {way}: {caught}"


def test_allow_does_not_open_the_door_for_other_payloads(backend, filename, root_filename, bait):
    """An allow-list for one harmless class changes nothing for the corpus."""
    allow = ["types:SimpleNamespace", "string:Template"]
    corpus = _corpus(bait)
    calls = {}
    for case in ("os.system", "builtins.eval", "enum of a module that runs code on import"):
        payload, _ = corpus[case]
        loc, root_loc = sibling(filename, len(calls)), sibling(root_filename, len(calls))
        _save_payload(loc, root_loc, payload)
        calls[case] = lambda a=loc, r=root_loc: _every_way_to_load(a, r, allow=allow)
    try:
        outcomes = run_isolated(calls, timeout=20)
    finally:
        for i in range(len(calls)):
            remove_store(sibling(filename, i))
            remove_store(sibling(root_filename, i))
    assert not bait.fired()
    for case, outcome in outcomes.items():
        assert outcome.status == "done", f"{case}: {outcome}"
        for way, caught in outcome.result.items():
            if way != "plain item":
                assert caught.isinstance(UnsafeLoadError), f"{case} via {way}: {caught}"


# -- crafted references: cycles and dangling pointers -------------------------------------
REFERENCE_CASES = {
    "ref to its own anchor": Tree({"t": "ref", "r": 0, "id": 0}),
    "alias of its own anchor": Tree({"t": "list", "id": 0, "alias": 0}, []),
    "reduce aliasing itself": Tree(
        {"t": "reduce", "id": 0, "alias": 0}, {"f": G("collections:deque"), "a": T()}
    ),
    "refs pointing at each other": L(
        Tree({"t": "ref", "r": 1, "id": 0}), Tree({"t": "ref", "r": 0, "id": 1})
    ),
    "aliases pointing at each other": L(
        Tree({"t": "list", "id": 0, "alias": 1}, []), Tree({"t": "list", "id": 1, "alias": 0}, [])
    ),
    "ref to a missing anchor": L(1, Tree({"t": "ref", "r": 12345})),
    "state ref to a missing anchor": L(Tree({"t": "ref", "r": 7, "p": "s"})),
    "ref inside the object it refers to, before it exists": Tree(
        {"t": "reduce", "id": 3},
        {"f": G("collections:deque"), "a": T(L(Tree({"t": "ref", "r": 3})))},
    ),
    "alias that is a list": Tree({"t": "list", "alias": [0]}, []),
    "ref that is not a number": Tree({"t": "ref", "r": "zero"}),
    "ref whose target is a list": Tree({"t": "ref", "r": [1]}),
    "ref whose target is a dict": Tree({"t": "ref", "r": {"a": 1}}),
    "node kind that is a list": Tree({"t": ["list"]}, []),
    "node kind that is a dict": Tree({"t": {"a": 1}}, []),
    "anchor that is a list": Tree({"t": "list", "id": [0]}, []),
}


@pytest.mark.parametrize("case", list(REFERENCE_CASES))
def test_crafted_references_are_refused(case, backend, filename, root_filename):
    payload = REFERENCE_CASES[case]
    _save_payload(filename, root_filename, payload)
    outcome = run_one(lambda: _every_way_to_load(filename, root_filename), timeout=HANG * 4)
    assert outcome.status == "done", f"{case}: {outcome}"
    for way, caught in outcome.result.items():
        if way == "plain item":
            assert not caught.raised, f"{case}: {caught}"
            continue
        if way == "node view" and case.startswith("node kind"):
            continue  # browsing such nodes: test_browsing_crafted_node_kinds
        assert caught.raised, f"{case} via {way}: loaded {caught.value!r}"
        assert caught.isinstance(UnloadableError) or caught.isinstance(CorruptStoreError), (
            f"{case} via {way}: {caught}"
        )
        assert not caught.memory, f"{case} via {way}: ran out of memory: {caught}"


@pytest.mark.parametrize("kind", [["list"], {"a": 1}])
def test_browsing_crafted_node_kinds(kind, backend, filename):
    with tinystore.open(filename, "w") as s:
        s["x"] = Tree({"t": kind}, [])
        s["y"] = L(1, Tree({"t": kind}, []))
        s["plain"] = [1]
    with tinystore.open(filename, "r") as s:
        for look in (lambda: s.node("x"), lambda: s.node("y")[1], s.tree, s.info, s._repr_html_):
            try:
                look()
            except TinystoreError:
                pass


RECORD_CYCLES = {
    "node containing itself": [{"a": {"t": "list"}, "c": [1, {"@": 1}]}],
    "nodes containing each other": [
        {"a": {"t": "list"}, "c": [{"@": 2}]},
        {"a": {"t": "list"}, "c": [{"@": 1}]},
    ],
    "node containing index -1 (itself)": [{"a": {"t": "list"}, "c": [{"@": -1}]}],
    "node containing the root node": [{"a": {"t": "list"}, "c": [{"@": 0}]}],
}


def _cycle_store(location: str, case: str) -> None:
    """A store whose item ``x`` is a record-level loop (raw node tables)."""
    with tinystore.open(location, "w") as s:
        s["x"] = [1, [2]]
        s["keep"] = 1
    if case.startswith("group named"):
        name = case.split("'")[1]
        write_record(location, ("x",), record_doc([{"a": {"t": "list"}, "c": [1, {"G": name}]}]))
    else:
        nodes = [{"g": 1, "c": {"x": {"@": 1}, "keep": 1}}] + RECORD_CYCLES[case]
        write_record(location, (), record_doc(nodes))


def test_crafted_record_cycles_are_refused(tmp_path):
    """On every backend at once, in parallel children (a loop is killed after HANG s)."""
    calls, locations = {}, []
    for backend in ("memory", "hdf5", "json"):
        cases = list(RECORD_CYCLES)
        if backend != "memory":  # a memory store names groups by key tuples: no '.' there
            cases += ["group named '.'", "group named ''"]
        for case in cases:
            i = len(locations)
            loc = (
                f"memory://cycles-{uuid.uuid4().hex}"
                if backend == "memory"
                else str(tmp_path / f"cycle{i}.{'h5' if backend == 'hdf5' else 'json'}")
            )
            locations.append(loc)
            _cycle_store(loc, case)
            calls[f"{backend}: {case}"] = lambda loc=loc: {
                "x": attempt(lambda: tinystore.load(loc, path="x", safe=True), repr),
                "keep": attempt(lambda: tinystore.load(loc, path="keep", safe=True)),
            }
    try:
        # many children spin at once here: give each little room to grow
        outcomes = run_isolated(calls, timeout=HANG, headroom=256 * 2**20)
    finally:
        for loc in locations:
            remove_store(loc)
    failures = []
    for case, outcome in outcomes.items():
        if outcome.status != "done":
            failures.append(f"{case}: {outcome}")
            continue
        x, keep = outcome.result["x"], outcome.result["keep"]
        if not (x.raised and x.isinstance(CorruptStoreError)) or keep.value != 1:
            failures.append(f"{case}: {x}; keep: {keep}")
    assert not failures, "\n".join(failures)


# -- crafted physical names on the JSON backend: nothing outside the store --------------------


@pytest.fixture
def outside(tmp_path) -> Path:
    """A directory next to the store, with files a crafted store must not reach."""
    d = tmp_path / "outside"
    d.mkdir()
    (d / "secret.bin").write_bytes(b"SECRET")
    (d / "victim").mkdir()
    (d / "victim" / "precious.txt").write_text("keep me")
    (d / "victim.bin").write_bytes(b"keep me too")
    write_record(str(d), ("elsewhere",), record_doc([{"a": {"t": "list"}, "c": ["SECRET"]}]))
    return d


def _json_store(tmp_path: Path, entries: dict) -> str:
    loc = str(tmp_path / "store.json")
    with tinystore.open(loc, "w") as s:
        s["keep"] = 1
    write_record(loc, (), record_doc([{"g": 1, "c": {"keep": 1, **entries}}]))
    return loc


@pytest.mark.parametrize(
    "entry",
    [
        {"X": "../outside/secret", "k": "B", "n": 6},
        {"X": "ABSOLUTE", "k": "B", "n": 6},
        {"G": "../outside/elsewhere"},
        {"G": "ABSOLUTE"},
    ],
    ids=["external ../", "external absolute", "group ../", "group absolute"],
)
def test_json_records_cannot_read_outside_the_store(tmp_path, outside, entry):
    entry = dict(entry)
    for key in ("X", "G"):
        if entry.get(key) == "ABSOLUTE":
            entry[key] = str(outside / ("secret" if key == "X" else "elsewhere"))
    loc = _json_store(tmp_path, {"x": entry})
    for safe in (True, False):
        with pytest.raises(CorruptStoreError) as info:
            tinystore.load(loc, path="x", safe=safe)
        assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "how",
    [
        "del group",
        "del external",
        "save over",
        "journal",
        "journal external",
    ],
)
def test_json_records_cannot_delete_outside_the_store(tmp_path, outside, how):
    victim_group = {"G": "../outside/victim", "g": 1}
    victim_file = {"X": "../outside/victim", "k": "B", "n": 11}
    if how.startswith("journal"):
        loc = _json_store(tmp_path, {})
        entry = victim_file if how.endswith("external") else victim_group
        kind = "X" if "X" in entry else "G"
        note = orjson.dumps([[], kind, entry[kind], entry]) + b"\n"
        Path(loc, "@journal").write_bytes(note)
    else:
        loc = _json_store(tmp_path, {"a": victim_group, "b": victim_file})
    try:
        with tinystore.open(loc, "a") as s:
            if how == "del group":
                del s["a"]
            elif how == "del external":
                del s["b"]
            elif how == "save over":
                s.replace_root(D(x=1))
            else:
                s["new"] = 2  # any write recovers the journal first
    except TinystoreError:
        pass  # refusing the crafted store is fine
    assert (outside / "victim" / "precious.txt").read_text() == "keep me"
    assert (outside / "victim.bin").read_bytes() == b"keep me too"


# -- memory: sizes claimed by a record or a file header -------------------------------------
def _fake_npy(path: Path, shape: tuple, payload: bytes = b"\0" * 8) -> None:
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f8", "fortran_order": False, "shape": shape}
        )
        f.write(payload)


def _huge_external(backend: str, loc: str, record_shape: list, header_shape: tuple) -> None:
    entry = {"X": "x", "k": "A", "d": "<f8", "s": record_shape}
    if backend == "json":
        _fake_npy(Path(loc, "x.npy"), header_shape)
    elif backend == "hdf5":
        with h5py.File(loc, "a", locking=False) as f:
            f.create_dataset(
                "x", shape=header_shape, dtype="<f8", chunks=(min(4096, header_shape[0]),)
            )
    else:
        write_external(loc, (), "x", b"\0" * 8)
    write_record(loc, (), record_doc([{"g": 1, "c": {"x": entry, "keep": 1}}]))


HUGE = 10**15
#: what refusing a crafted store may cost (it should cost next to nothing)
MEMORY_BUDGET = 64 * 2**20


@pytest.mark.parametrize(
    "case",
    [
        "inline array",
        "external array, record and header agree",
        "external array, header only",
        "external array, record only",
        "object array node",
        "bytes entry claiming a huge length",
    ],
)
def test_claimed_sizes_are_refused_without_exhausting_memory(case, backend, filename):
    with tinystore.open(filename, "w") as s:
        s["keep"] = 1
    if case == "inline array":
        entry = {"A": base64.b64encode(b"\0" * 8).decode(), "d": "<f8", "s": [HUGE]}
        write_record(filename, (), record_doc([{"g": 1, "c": {"x": entry, "keep": 1}}]))
    elif case == "external array, record and header agree":
        _huge_external(backend, filename, [HUGE], (HUGE,))
    elif case == "external array, header only":
        if backend == "memory":
            pytest.skip("a memory store keeps raw bytes: there is no header to lie")
        _huge_external(backend, filename, [1], (HUGE,))
    elif case == "external array, record only":
        _huge_external(backend, filename, [HUGE], (1,))
    elif case == "object array node":
        with tinystore.open(filename, "a") as s:
            s["x"] = Tree({"t": "ndarray", "d": "|O", "s": [HUGE]}, [])
    else:
        write_external(filename, (), "x", b"abc")
        write_record(
            filename,
            (),
            record_doc([{"g": 1, "c": {"x": {"X": "x", "k": "B", "n": HUGE}, "keep": 1}}]),
        )
    outcome = run_one(
        lambda: {
            "load": measured(lambda: tinystore.load(filename, path="x", safe=True), repr),
            "browse": attempt(lambda: tinystore.open(filename, "r").info(), repr),
            "keep": attempt(lambda: tinystore.load(filename, path="keep", safe=True)),
        },
        timeout=20,
    )
    assert outcome.status == "done", f"{case}: {outcome}"
    load, grown = outcome.result["load"]
    assert grown is None or grown < MEMORY_BUDGET, f"{case}: took {grown / 2**20:.0f} MiB: {load}"
    if case == "bytes entry claiming a huge length" and not load.raised:
        assert load.value == "b'abc'"  # the length in the record is informative only
    else:
        assert load.raised and load.tinystore_error, f"{case}: {load}"
    assert not outcome.result["browse"].raised or outcome.result["browse"].tinystore_error
    assert outcome.result["keep"].value == 1, "the other item of the store stays readable"


@pytest.mark.parametrize("backend", ["hdf5", "json"])
def test_record_claiming_gigabytes_is_refused(backend, filename):
    with tinystore.open(filename, "w") as s:
        s["x"] = [[1, 2]]  # nested: a group with a record of its own (a flat value is not)
        s["keep"] = 1
    if backend == "json":
        with open(Path(filename, "x", "@record.json"), "r+b") as f:
            f.truncate(10**10)  # sparse: costs no disk
    else:
        with h5py.File(filename, "a", locking=False) as f:
            del f["x/@record"]
            f["x"].create_dataset("@record", shape=(10**10,), dtype="u1", chunks=(2**20,))
    outcome = run_one(
        lambda: {
            "load": attempt(lambda: tinystore.load(filename, path="x", safe=True), repr),
            "keep": attempt(lambda: tinystore.load(filename, path="keep", safe=True)),
        },
        timeout=20,
    )
    assert outcome.status == "done", outcome
    load = outcome.result["load"]
    assert load.raised and load.isinstance(CorruptStoreError), load
    assert not load.memory, f"it tried to read the record: {load}"
    assert outcome.result["keep"].value == 1


@pytest.mark.parametrize(
    "case",
    [
        "bytearray(10**10)",
        "list(range(10**9))",
        "tuple(range(10**9))",
        "enum node bytearray(10**10)",
        "deque(range(10**9))",
        "Counter(range(10**8))",
    ],
)
def test_safe_loading_does_not_amplify_a_tiny_record_into_gigabytes(case, backend, root_filename):
    big = R(G("builtins:range"), T(10**9))
    payload = {
        "bytearray(10**10)": R(G("builtins:bytearray"), T(10**10)),
        "list(range(10**9))": R(G("builtins:list"), T(big)),
        "tuple(range(10**9))": R(G("builtins:tuple"), T(big)),
        "enum node bytearray(10**10)": Tree({"t": "enum", "c": "builtins:bytearray", "v": 10**10}),
        "deque(range(10**9))": R(G("collections:deque"), T(big)),
        "Counter(range(10**8))": R(G("collections:Counter"), T(R(G("builtins:range"), T(10**8)))),
    }[case]
    with tinystore.open(root_filename, "w") as s:
        s.replace_root(payload)
    outcome = run_one(
        lambda: measured(lambda: tinystore.load(root_filename, safe=True), lambda v: len(v)),
        timeout=20,
        headroom=256 * 2**20,  # enough to see it grow, little to wait for
    )
    assert outcome.status == "done", outcome
    caught, grown = outcome.result
    assert caught.raised and caught.tinystore_error, caught
    assert not caught.memory, f"refused only because the memory ran out: {caught}"
    assert grown is None or grown < MEMORY_BUDGET, (
        f"the load took {grown / 2**20:.0f} MiB: {caught}"
    )


# -- depth ---------------------------------------------------------------------------------
DEPTH = 100_000


def _depth(value) -> tuple[int, object]:
    depth = 0
    while type(value) is list and value and type(value[0]) is list:
        value = value[0]
        depth += 1
    return depth, value


def _deep_store(location: str, layout: str) -> None:
    if layout == "nodes":
        root = node = L()
        for _ in range(DEPTH):
            child = L()
            node.children.append(child)
            node = child
        node.children.append(1)
        with tinystore.open(location, "w") as s:
            s.replace_root(root)
    else:
        deep = b"[" * DEPTH + b"1" + b"]" * DEPTH
        with tinystore.open(location, "w") as s:
            s["x"] = 0
        write_record(
            location, (), b'{"tinystore":[1,0],"nodes":[{"a":{"t":"list"},"c":[' + deep + b"]}]}"
        )


@pytest.mark.parametrize("layout", ["nodes", "inline JSON"])
def test_deeply_nested_store_neither_crashes_nor_hangs(layout, tmp_path):
    """100,000 levels, on every backend at once (in parallel children)."""
    locations = {
        "memory": f"memory://deep-{uuid.uuid4().hex}",
        "hdf5": str(tmp_path / "deep.h5"),
        "json": str(tmp_path / "deep.json"),
    }
    calls = {}
    for backend, loc in locations.items():
        _deep_store(loc, layout)
        calls[backend] = lambda loc=loc: attempt(lambda: tinystore.load(loc, safe=True), _depth)
    try:
        outcomes = run_isolated(calls, timeout=60)
    finally:
        remove_store(locations["memory"])
    for backend, outcome in outcomes.items():
        assert outcome.status == "done", f"{backend}: crashed or hung: {outcome}"
        caught = outcome.result
        if caught.raised:
            assert caught.tinystore_error, f"{backend}: {caught}"
        else:
            assert caught.value == (DEPTH, [1]), backend


# -- what safe loading does load ------------------------------------------------------------
def _plain_sample() -> dict:
    shared = [1, 2]
    return {
        "ints": [1, -2, 10**30],
        "floats": (1.5, float("inf"), -0.0),
        "text": "héllo\u2603",
        "bytes": b"\x00\xff" * 2000,
        "bytearray": bytearray(b"xy"),
        "nested": {"a": [1, {"b": (2, 3)}], 5: "int key", (1, 2): "tuple key"},
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "array": np.arange(12.0).reshape(3, 4),
        "big array": np.arange(10000, dtype=np.int32),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "structured": np.zeros(3, dtype=[("x", "<f8"), ("y", "<i4")]),
        "datetimes": np.array(["2024-01-01"], dtype="datetime64[D]"),
        "scalar": np.float32(1.5),
        "dtype": np.dtype("<c16"),
        "decimal": Decimal("1.10"),
        "fraction": Fraction(1, 3),
        "datetime": datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
        "naive": datetime(2024, 1, 2, 3, 4, 5, 6),
        "date": date(2024, 1, 2),
        "time": time(1, 2),
        "timedelta": timedelta(days=1, microseconds=5),
        "timezone": timezone(timedelta(hours=2), "X"),
        "uuid": uuid.UUID(int=5),
        "ordered": OrderedDict(b=1, a=2),
        "defaultdict": defaultdict(list, {"a": [1]}),
        "deque": deque([1, 2], maxlen=5),
        "counter": Counter("aab"),
        "range": range(1, 10, 2),
        "slice": slice(1, None, 2),
        "complex": 1 + 2j,
        "path": PurePosixPath("a/b"),
        "none": None,
        "shared 1": shared,
        "shared 2": shared,
    }


def _assert_same(loaded, expected, where="") -> None:
    assert type(loaded) is type(expected), where
    if isinstance(expected, np.ndarray):
        assert loaded.dtype == expected.dtype and loaded.shape == expected.shape, where
        assert np.array_equal(loaded, expected), where
    elif isinstance(expected, dict):
        assert list(loaded) == list(expected), where
        for k in expected:
            _assert_same(loaded[k], expected[k], f"{where}/{k}")
    elif isinstance(expected, (list, tuple)):
        assert len(loaded) == len(expected), where
        for i, (a, b) in enumerate(zip(loaded, expected)):
            _assert_same(a, b, f"{where}[{i}]")
    elif isinstance(expected, deque):
        assert list(loaded) == list(expected) and loaded.maxlen == expected.maxlen, where
    else:
        assert loaded == expected, where


def test_safe_loading_loads_plain_data_items(backend, filename):
    """Each value its own stored object."""
    sample = _plain_sample()
    with tinystore.open(filename, "w") as s:
        for key, value in sample.items():
            s[key] = value
    with tinystore.open(filename, "r", safe=True) as s:
        for key, value in sample.items():
            _assert_same(s[key], value, key)
    for key in ("big array", "decimal", "datetime", "nested", "defaultdict"):
        _assert_same(tinystore.load(filename, path=key, safe=True), sample[key], key)


@pytest.mark.parametrize(
    "which",
    [
        "whole sample",
        "two Decimals",
        "two timedeltas",
        "two aware datetimes",
        "one of each",
    ],
)
def test_safe_loading_loads_plain_data_as_one_object(which, backend, filename):
    utc = timezone.utc
    obj = {
        "whole sample": _plain_sample(),
        "two Decimals": [Decimal("1.5"), Decimal("2")],
        "two timedeltas": [timedelta(1), timedelta(2)],
        "two aware datetimes": {
            "a": datetime(2024, 1, 1, tzinfo=utc),
            "b": datetime(2025, 1, 1, tzinfo=utc),
        },
        "one of each": [Decimal("1.5"), timedelta(1), date(2024, 1, 2), Fraction(1, 3)],
    }[which]
    tinystore.save(obj, filename)
    loaded = tinystore.load(filename, safe=True)
    _assert_same(loaded, obj)
    if which == "whole sample":
        assert loaded["shared 1"] is loaded["shared 2"]
        assert loaded["defaultdict"].default_factory is list


# -- allow= ---------------------------------------------------------------------------------
def _store_allowed(filename: str) -> None:
    with tinystore.open(filename, "w") as s:
        s["ns"] = types.SimpleNamespace(a=1, b=[2])
        s["template"] = string.Template("$x")
        s["plain"] = [1]


def test_allow_lets_exactly_that_name_through(backend, filename):
    _store_allowed(filename)
    with pytest.raises(UnsafeLoadError, match="types:SimpleNamespace"):
        tinystore.load(filename, path="ns", safe=True)

    allow = ["types:SimpleNamespace"]
    assert tinystore.load(filename, path="ns", safe=True, allow=allow) == types.SimpleNamespace(
        a=1, b=[2]
    )
    with pytest.raises(UnsafeLoadError, match="string:Template"):
        tinystore.load(filename, path="template", safe=True, allow=allow)
    # an allow-list alone restricts imports just the same
    with pytest.raises(UnsafeLoadError, match="string:Template"):
        tinystore.load(filename, path="template", allow=allow)
    assert tinystore.load(filename, path="template", allow=["string:Template"]).template == "$x"
    assert tinystore.load(filename, path="plain", safe=True, allow=allow) == [1]

    # names next to, inside or under the allowed one stay refused
    with tinystore.open(filename, "a") as s:
        for i, name in enumerate(
            [
                "types:SimpleNamespace.__init__",
                "types:SimpleNamespace.__class__",
                "types:SimpleNamespaceX",
                "types:FunctionType",
                "Types:SimpleNamespace",
                "types.SimpleNamespace",
                " types:SimpleNamespace",
            ]
        ):
            s[f"near{i}"] = R(G(name), T())
    for i in range(7):
        with pytest.raises(UnsafeLoadError):
            tinystore.load(filename, path=f"near{i}", safe=True, allow=allow)


def test_allow_alone_never_unpickles(backend, filename, bait):
    with tinystore.open(filename, "w") as s:
        s["x"] = Tree({"t": "cloudpickle"}, [bait.pickle])
    outcome = run_one(
        lambda: attempt(
            lambda: tinystore.load(filename, path="x", allow=["types:SimpleNamespace"]), repr
        ),
        timeout=20,
    )
    assert not bait.fired(), "the pickle ran"
    assert outcome.status == "done" and outcome.result.isinstance(UnsafeLoadError), outcome


@pytest.mark.parametrize(
    "allow",
    [
        ["numpy.*"],
        ["numpy"],
        ["numpy:*"],
        ["numpy.testing"],
        ["numpy.testing.*"],
        ["*"],
        ["os"],
        ["builtins:*"],
        ["types:SimpleNamespace", "numpy.*"],
    ],
)
@pytest.mark.parametrize("safe", [True, False])
def test_prefix_and_wildcard_allow_lists_are_refused(allow, safe, backend, filename):
    _store_allowed(filename)
    with pytest.raises(ValueError, match="exact"):
        tinystore.load(filename, path="ns", safe=safe, allow=allow)
    with pytest.raises(ValueError):
        tinystore.open(filename, "r", safe=safe, allow=allow)
    # the refused call left the store usable
    assert tinystore.load(filename, path="plain", safe=True) == [1]


def test_allow_given_as_a_bare_string_is_not_a_set_of_characters(backend, filename):
    _store_allowed(filename)
    try:
        ns = tinystore.load(filename, path="ns", safe=True, allow="types:SimpleNamespace")
    except ValueError:
        return  # refusing the ambiguous argument is fine
    assert ns == types.SimpleNamespace(a=1, b=[2])
    with pytest.raises(UnsafeLoadError):
        tinystore.load(filename, path="template", safe=True, allow="types:SimpleNamespace")


# -- version checks on crafted "versions" records -------------------------------------------
@pytest.fixture
def evil_package(bait):
    """A package whose import creates a second sentinel, beside the bait module."""
    pkg = f"{bait.module}_pkg"
    d = Path(bait.lib, pkg)
    d.mkdir()
    (d / "__init__.py").write_text(f"open({bait.sentinel + '.pkg'!r}, 'w').close()\n")
    (d / "sub.py").write_text(f"open({bait.sentinel + '.sub'!r}, 'w').close()\n")
    importlib.invalidate_caches()
    yield pkg
    for name in (pkg, f"{pkg}.sub"):
        sys.modules.pop(name, None)


def _versions_store(filename: str, modules: list[str]) -> None:
    info = {"dist": "evil", "version": "6.6.6", "sha256": "0" * 64, "git": "0" * 40, "dirty": True}
    with tinystore.open(filename, "w") as s:
        s.replace_root(
            Tree({"t": "dict", "python": PYTHON, "versions": {m: info for m in modules}}, {"x": 1})
        )


@pytest.mark.parametrize("safe", [True, False])
@pytest.mark.parametrize("policy", ["warn", "strict", "ignore", "callable"])
def test_version_check_imports_nothing_it_names(
    policy, safe, backend, filename, bait, evil_package
):
    modules = [bait.module, evil_package, f"{evil_package}.sub", "numpy.testing._private.extbuild"]
    _versions_store(filename, modules)
    seen = []
    check = seen.extend if policy == "callable" else policy
    before = set(sys.modules)
    try:
        if policy == "strict":
            with pytest.raises(VersionMismatchError, match="6.6.6"):
                tinystore.load(filename, safe=safe, version_check=check)
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert tinystore.load(filename, safe=safe, version_check=check) == {"x": 1}
            if policy == "warn":
                assert any(issubclass(w.category, VersionWarning) for w in caught)
            if policy == "callable":
                assert {m.module for m in seen} >= {bait.module, evil_package}
    finally:
        new = set(sys.modules) - before
    assert not bait.fired()
    assert not os.path.exists(bait.sentinel + ".pkg")
    assert not os.path.exists(bait.sentinel + ".sub")
    assert not {bait.module, evil_package, f"{evil_package}.sub"} & new
    assert "numpy.testing._private.extbuild" not in new


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_version_check_runs_no_program_from_a_modules_repository(backend, filename, bait):
    lib = bait.lib
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(bait.root)}
    git = ["git", "-C", lib, "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", "init", "-q", lib], check=True, env=env)
    subprocess.run(git + ["add", "."], check=True, env=env)
    subprocess.run(git + ["commit", "-qm", "x"], check=True, env=env)
    hook = bait.root / "fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {shlex.quote(bait.sentinel)}\n")
    hook.chmod(0o755)
    subprocess.run(["git", "-C", lib, "config", "core.fsmonitor", str(hook)], check=True, env=env)
    assert not bait.fired()

    _versions_store(filename, [bait.module])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", VersionWarning)
        tinystore.load(filename, safe=True)
    assert not bait.fired(), "a program configured in the module's git repository ran"


# -- the load budget: nothing built beyond what the file's bytes justify ---------------------
def _bad_dtype_state() -> Tree:
    """numpy.dtype's own state, with field ``a`` 1000 bytes into an 8-byte item."""
    f8 = Tree({"t": "dtype", "d": "<f8"})
    return T(3, "|", None, T("a"), D(a=T(f8, 1000)), 8, 1, 16)


def _slice_doubling(times: int) -> Tree:
    """A list, then ``times`` nodes aliasing it that each assign it into its own
    empty slice (``x[0:0] = x``): 2**times items from a few hundred bytes."""
    doubling = [
        Tree(
            {"t": "reduce", "alias": 0},
            {
                "f": G("collections:deque"),
                "a": T(),
                "dk": L(R(G("builtins:slice"), T(0, 0))),
                "dv": L(Tree({"t": "ref", "r": 0})),
            },
        )
        for _ in range(times)
    ]
    return L(Tree({"t": "list", "id": 0}, [1]), *doubling)


BUDGET_CASES = {
    # numpy trusts a dtype's state: fields outside the item read and write anywhere
    "dtype node with a field outside its item": Tree(
        {"t": "dtype", "r": 1}, [G("numpy:dtype"), T("V8", False, True), _bad_dtype_state()]
    ),
    "reduce node making such a dtype": Tree(
        {"t": "reduce"},
        {"f": G("numpy:dtype"), "a": T("V8", False, True), "s": _bad_dtype_state()},
    ),
    # declared sizes the file holds no items for
    "object array of 2e8 elements with no items": Tree(
        {"t": "ndarray", "d": "|O", "s": [2 * 10**8]}, []
    ),
    "float array node with no data": Tree({"t": "ndarray", "d": "<f8", "s": [1000]}, []),
    # lazy iterables handed to allowed constructors, or to a state setter
    "Counter(range(10**9))": R(G("collections:Counter"), T(R(G("builtins:range"), T(10**9)))),
    "deque(range(10**12), maxlen=1)": R(
        G("collections:deque"), T(R(G("builtins:range"), T(10**12)), 1)
    ),
    "state setter deque(range(10**9), state)": Tree(
        {"t": "reduce"},
        {
            "f": G("builtins:range"),
            "a": T(10**9),
            "s": None,
            "ss": G("collections:deque"),
        },
    ),
    'Fraction("1e100000000")': R(G("fractions:Fraction"), T("1e100000000")),
    'Fraction(Decimal("1e100000000"))': R(
        G("fractions:Fraction"), T(R(G("decimal:Decimal"), T("1e100000000")))
    ),
    "alias plus slice assignment, 40 doublings": _slice_doubling(40),
}


def _use(value):
    """What a caller does with a loaded value: touch all of it (a bad dtype
    crashes here, uninitialised memory shows here)."""
    if isinstance(value, np.dtype):
        arr = np.zeros(4, value)
        arr[value.names[0]] = 1.0
        return repr(arr.tolist())[:60]
    if isinstance(value, np.ndarray):
        return repr(value.tolist())[:60]
    return repr(value)[:60]


@pytest.mark.parametrize("case", list(BUDGET_CASES))
def test_crafted_store_costs_no_more_than_its_bytes(case, backend, root_filename):
    """Each case, in a child with 256 MiB of headroom and HANG seconds: a
    tinystore error, quickly, with next to no memory; never a crash, a hang,
    or a value made of memory the file never held."""
    with tinystore.open(root_filename, "w") as s:
        s.replace_root(BUDGET_CASES[case])
    for safe in (True, False):
        if not safe and "dtype" not in case and "array" not in case:
            continue  # the others are about what safe loading may call
        outcome = run_one(
            lambda safe=safe: measured(
                lambda: _use(tinystore.load(root_filename, safe=safe)), lambda v: v
            ),
            timeout=HANG,
            headroom=256 * 2**20,
        )
        assert outcome.status == "done", f"{case} (safe={safe}): {outcome}"
        caught, grown = outcome.result
        assert caught.raised and caught.tinystore_error, f"{case} (safe={safe}): {caught}"
        assert not caught.memory, f"refused only because the memory ran out: {caught}"
        assert grown is None or grown < MEMORY_BUDGET, f"{case}: took {grown / 2**20:.0f} MiB"
    browse = run_one(lambda: attempt(lambda: tinystore.open(root_filename, "r").info(), repr))
    assert browse.status == "done", f"browsing {case}: {browse}"
    assert not browse.result.raised or browse.result.tinystore_error, browse.result


@pytest.mark.parametrize("kind", ["DataFrame", "Series"])
def test_range_index_of_2e8_rows_with_a_scalar_is_refused(kind, backend, filename):
    """A ``RangeIndex(2e8)`` costs a few bytes; a scalar broadcast along it,
    1.6 GB: a column (or a series' values) must be as long as its index."""
    pd = pytest.importorskip("pandas")
    with tinystore.open(filename, "w") as s:
        if kind == "DataFrame":
            s["x"] = pd.DataFrame({"a": [1.5]})
            s["x/data/a"] = np.float64(1.5)
        else:
            s["x"] = pd.Series([1.5])
            s["x/values"] = np.float64(1.5)
        s["x/index"] = pd.RangeIndex(2 * 10**8)
        s["keep"] = 1
    for safe in (True, False):
        outcome = run_one(
            lambda safe=safe: measured(
                lambda: tinystore.load(filename, path="x", safe=safe), lambda v: len(v)
            ),
            timeout=HANG,
            headroom=256 * 2**20,
        )
        assert outcome.status == "done", f"{kind} (safe={safe}): {outcome}"
        caught, grown = outcome.result
        assert caught.raised and caught.isinstance(CorruptStoreError), caught
        assert grown is None or grown < MEMORY_BUDGET, f"took {grown / 2**20:.0f} MiB"
    assert tinystore.load(filename, path="keep") == 1


@pytest.mark.parametrize(
    "zone", ["dateutil//etc/passwd", "dateutil/../../../etc/localtime", "/etc/localtime"]
)
def test_time_zone_names_never_open_files(zone, backend, filename):
    """``pd.Timestamp(..., tz="dateutil/<path>")`` opens that file: a stored
    zone is a name, and a name that is a path is refused, safe or not."""
    pd = pytest.importorskip("pandas")
    with tinystore.open(filename, "w") as s:
        s["t"] = pd.Timestamp("2024-01-01", tz="UTC")
        attrs = dict(s.node("t").attrs)
    assert attrs.get("tz") == "UTC"  # stored by name: where a crafted store puts a path
    with tinystore.open(filename, "a") as s:
        s["t"] = Tree({**attrs, "tz": zone}, {})
        s["keep"] = 1
    for safe in (True, False):
        caught = attempt(lambda safe=safe: tinystore.load(filename, path="t", safe=safe), repr)
        assert caught.raised and caught.isinstance(CorruptStoreError), caught
    assert tinystore.load(filename, path="keep") == 1
