"""Hostile keys: each is stored and read back under exactly that key, or refused.

A refused key raises a ``ValueError`` subclass before anything is written.
On the JSON backend, no key can make a file outside the store's root, and
no two keys get file names that a case-insensitive (or normalising) file
system would confuse.
"""

from __future__ import annotations

import copy
import os
import sys
import unicodedata
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.errors import InvalidKeyError, NodeNotFoundError
from tinystore.storage import memory as _memory

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from crafting import kind_of  # noqa: E402

NFC_E = unicodedata.normalize("NFC", "\u00e9")
NFD_E = unicodedata.normalize("NFD", "\u00e9")

#: keys that contain no "/" (so they are one key, not a path)
SINGLE_KEYS = [
    "C:\\x",
    "x\\x00y",  # a backslash, not a NUL
    "\\\\server\\share",
    "CON",
    "con",
    "NUL",
    "nul.txt",
    "com1.txt",
    "COM1",
    "LPT9",
    "AUX.tar.gz",
    "PRN.",
    "COM\u00b9",
    "CONIN$",
    "...",
    ".hidden",
    ".git",
    "trailing.",
    "trailing ",
    " leading",
    "a" * 255,
    "\u00e9" * 127,  # 254 UTF-8 bytes
    "\U0001f600" * 63,  # 252 UTF-8 bytes
    "%41",
    "%2e%2e",
    "%",
    "^a",
    "^",
    "~1",
    "a~1",
    "~",
    "@record.json",
    "@record",
    "@lock",
    "@journal",
    "@tmp-0123456789abcdef",
    "@",
    "x.npy",
    "b.bin",
    "x.NPY",
    NFC_E,
    NFD_E,
    "\U0001f600",
    "\U0001f469\u200d\U0001f469\u200d\U0001f467",  # a ZWJ family
    "\u202egnp.exe",  # right-to-left override
    "\ufeffbom",
    "\u00a0",
    "\uff0f",  # fullwidth solidus
    "\u2215",  # division slash
    "a:b",
    '<>:"|?*',
    "tab\there",
    "new\nline",
    "cr\rhere",
    "\x7f",
    "\x01",
    "K",
    "\u212a",  # Kelvin sign
    "k",
    "Key",
    "key",
    "KEY",
    "\u00df",
    "SS",
    "ss",
    "\u1e9e",  # capital sharp s
    "\ufb01",  # "fi" ligature
    "fi",
    "\u0130",
    "\u0131",
    "i",
    "I",
    "\u00c5",
    "\u212b",  # Angstrom sign
    "A\u030a",
    "0",
    "007",
    "-1",
    "1e3",
    "None",
    "__proto__",
]

#: keys and paths every backend must refuse
REFUSED = [
    "",
    ".",
    "..",
    "../x",
    "a/../../etc",
    "x/..",
    "./x",
    "/abs",
    "/",
    "a//b",
    "a/",
    "x\x00y",
    "\x00",
    "a" * 256,
    "\u00e9" * 128,  # 256 UTF-8 bytes
    "\U0001f600" * 64,  # 256 UTF-8 bytes
    "\ud800",  # a lone surrogate has no UTF-8 form
]

#: groups of keys that differ only in case or Unicode normalisation
TWINS = [
    ["key", "Key", "KEY", "kEy"],
    [NFC_E, NFD_E, "E\u0301", "\u00c9"],
    ["K", "k", "\u212a"],
    ["\u00df", "SS", "ss", "\u1e9e"],
    ["\ufb01", "fi", "FI"],
    ["i", "I", "\u0130", "\u0131"],
    ["\u00c5", "\u212b", "A\u030a", "\u00e5"],
    ["con", "CON", "Con", "con.txt"],
    ["a", "a.", "a..", "a ", "A"],
    ["x.npy", "x", "X.npy"],
]


def _ids(keys):
    return [ascii(k)[:40] for k in keys]


def _value(key: str) -> dict:
    """A value with an external array, so each key also names a file."""
    return {"key": key, "data": np.full(400, len(key), dtype=np.float64)}


def _check_value(loaded, key: str) -> None:
    assert loaded["key"] == key
    assert np.array_equal(loaded["data"], np.full(400, len(key), dtype=np.float64))


# -- the physical state, to prove a refused key wrote nothing ---------------------------------
def _snapshot(location: str):
    kind = kind_of(location)
    if kind == "memory":
        return copy.deepcopy(_memory._REGISTRY[location[len("memory://") :]].groups)
    if kind in ("json", "zarr"):  # directories
        out = {}
        for dirpath, dirnames, filenames in os.walk(location):
            for name in dirnames:
                out[os.path.relpath(os.path.join(dirpath, name), location)] = "dir"
            for name in filenames:
                if name == "@lock":
                    continue
                path = os.path.join(dirpath, name)
                out[os.path.relpath(path, location)] = Path(path).read_bytes()
        return out
    names = {}
    with h5py.File(location, "r", locking=False) as f:
        f.visititems(
            lambda name, obj: names.__setitem__(
                name, obj[()] if isinstance(obj, h5py.Dataset) else "group"
            )
        )
    return {k: v.tobytes() if isinstance(v, np.ndarray) else v for k, v in names.items()}


def _fresh(filename: str) -> None:
    with tinystore.open(filename, "w") as s:
        s["before"] = 1


# -- one key at a time ------------------------------------------------------------------------
@pytest.mark.parametrize("key", REFUSED, ids=_ids(REFUSED))
def test_refused_keys_write_nothing(backend, filename, key):
    _fresh(filename)
    with tinystore.open(filename, "a") as s:
        s.create_group("g")
    before = _snapshot(filename)
    with tinystore.open(filename, "a") as s:
        attempts = [
            lambda: s.__setitem__(key, _value("x")),
            lambda: s.__setitem__(key, 1),
            lambda: s.create_group(key),
            lambda: s.__setitem__(f"group/{key}", 1),
            lambda: s.__setitem__(f"{key}/leaf", 1),
            lambda: s["g"].__setitem__(key, 1),
            lambda: s["g"].create_group(key),
            lambda: s.update({key: 1}),
        ]
        for i, write in enumerate(attempts):
            with pytest.raises(ValueError) as info:
                write()
            assert isinstance(info.value, InvalidKeyError), repr(info.value)
            assert _snapshot(filename) == before, f"attempt {i} wrote something"
        with pytest.raises((ValueError, KeyError)):
            s[key]
        with pytest.raises((ValueError, KeyError)):
            del s[key]
        assert key not in s
        try:
            assert s.get(key, "default") == "default"
        except InvalidKeyError:
            pass  # like dict.get with an unhashable key: refusing is fine
    if key:  # path="" means the whole store (save and load without a path)
        with pytest.raises(ValueError):
            tinystore.save({"a": 1}, filename, path=key)
        assert _snapshot(filename) == before
    with tinystore.open(filename, "r") as s:
        assert list(s) == ["before", "g"]
        assert list(s["g"]) == []


@pytest.mark.parametrize("key", SINGLE_KEYS, ids=_ids(SINGLE_KEYS))
def test_key_is_stored_under_exactly_that_key_or_refused(backend, filename, key):
    _fresh(filename)
    before = _snapshot(filename)
    try:
        with tinystore.open(filename, "a") as s:
            s[key] = _value(key)
    except ValueError as exc:
        assert isinstance(exc, InvalidKeyError), repr(exc)
        assert _snapshot(filename) == before, "a refused key wrote something"
        return
    with tinystore.open(filename, "a") as s:
        assert list(s) == ["before", key]
        assert key in s
        _check_value(s[key], key)
        assert s.node(key).to_object()["key"] == key
        # the key works as a path component and as a group name too
        s[f"{key}/extra"] = 5
        assert s[f"{key}/extra"] == 5
        group = s.create_group(f"groups/{key}")
        group["leaf"] = [1, 2]
        assert list(s["groups"]) == [key]
        assert s[f"groups/{key}/leaf"] == [1, 2]
    _check_value(tinystore.load(filename, path=key), key)
    tinystore.save(_value(key + "!"), filename, path=f"saved/{key}")
    _check_value(tinystore.load(filename, path=f"saved/{key}"), key + "!")
    with tinystore.open(filename, "a") as s:
        del s[key]
        assert key not in s
        assert list(s) == ["before", "groups", "saved"]
    _check_json_files(filename)


# -- twins: keys that differ only in case or normalisation -------------------------------------
@pytest.mark.parametrize("twins", TWINS, ids=[ascii(t[0]) for t in TWINS])
def test_twin_keys_stay_distinct(backend, filename, twins):
    with tinystore.open(filename, "w") as s:
        for key in twins:
            s[key] = _value(key)  # each its own physical group
        s["dict"] = {key: _value(key) for key in twins}  # one group, files side by side
        group = s.create_group("g")
        for key in twins:
            group.create_group(key)[key] = _value(key)
    with tinystore.open(filename, "r") as s:
        assert list(s) == twins + ["dict", "g"]
        assert list(s["g"]) == twins
        for key in twins:
            _check_value(s[key], key)
            _check_value(s[f"dict/{key}"], key)
            _check_value(s[f"g/{key}/{key}"], key)
        loaded = s["dict"]
        assert list(loaded) == twins
        for key in twins:
            _check_value(loaded[key], key)
    # replacing one twin leaves the others alone
    with tinystore.open(filename, "a") as s:
        s[twins[0]] = "replaced"
        del s[twins[-1]]
    with tinystore.open(filename, "r") as s:
        assert s[twins[0]] == "replaced"
        assert twins[-1] not in s
        for key in twins[1:-1]:
            _check_value(s[key], key)
    _check_json_files(filename)


def test_all_hostile_keys_in_one_store(backend, filename):
    """Every accepted key at once, at the top level, in a group and as dict keys."""
    keys = list(dict.fromkeys(SINGLE_KEYS + [k for group in TWINS for k in group]))
    accepted = []
    with tinystore.open(filename, "w") as s:
        for key in keys:
            try:
                s[key] = _value(key)
            except InvalidKeyError:
                continue
            accepted.append(key)
        g = s.create_group("g")
        for key in accepted:
            g[key] = key
        s["dict"] = {key: np.full(300, i, dtype=np.int64) for i, key in enumerate(accepted)}
    assert len(accepted) > len(keys) // 2, "most of these keys are harmless and should work"
    with tinystore.open(filename, "r") as s:
        assert list(s) == accepted + ["g", "dict"]
        assert list(s["g"]) == accepted
        loaded = s["dict"]
        for i, key in enumerate(accepted):
            _check_value(s[key], key)
            assert s[f"g/{key}"] == key
            assert np.array_equal(loaded[key], np.full(300, i, dtype=np.int64))
    _check_json_files(filename)


# -- the JSON backend: where the files are ------------------------------------------------------
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", "conin$", "conout$"} | {
    f"{p}{d}" for p in ("com", "lpt") for d in "0123456789\u00b9\u00b2\u00b3"
}
_WINDOWS_BAD_CHARS = set('<>:"/\\|?*') | {chr(i) for i in range(32)}


def _check_json_files(location: str) -> None:
    """No path escapes the root; no two names in a directory can be confused by a file system."""
    if kind_of(location) not in ("json", "zarr"):
        return
    root = os.path.realpath(location)
    for dirpath, dirnames, filenames in os.walk(location):
        names = dirnames + filenames
        folded: dict[str, str] = {}
        for name in names:
            path = os.path.join(dirpath, name)
            assert not os.path.islink(path), path
            real = os.path.realpath(path)
            assert real.startswith(root + os.sep), f"{path} resolves outside the store: {real}"
            # case-insensitive and normalising file systems (Windows, macOS) see these as one
            key = unicodedata.normalize("NFD", name).casefold()
            key = unicodedata.normalize("NFD", key)
            assert key not in folded, f"{name!r} and {folded[key]!r} collide in {dirpath}"
            folded[key] = name
            if name.startswith("@"):
                continue  # the backend's own files (@record.json, @lock, ...)
            # what every file system accepts (what safe_name promises)
            assert name.isascii(), name
            assert len(name.encode()) <= 255, name
            assert not (set(name) & _WINDOWS_BAD_CHARS), name
            assert not name.endswith((".", " ")), name
            assert not name.startswith("."), name
            assert name.split(".")[0].lower() not in _WINDOWS_RESERVED, name
    # every key found its own file: nothing was stored outside the records' knowledge
    with tinystore.open(location, "r") as s:
        s.info()


@pytest.mark.parametrize("backend", ["json"])
def test_json_keys_never_reach_outside_the_root(backend, filename, tmp_path):
    """Keys that look like paths, drives or UNC names create files inside the root only."""
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    keys = [
        "..\\..\\x",
        "C:\\Windows",
        "\\\\?\\C:\\x",
        "~root",
        "$HOME",
        "%2e%2e",
        "..%2f..%2fx",
        "..",
    ]
    with tinystore.open(filename, "w") as s:
        for key in keys:
            try:
                s[key] = _value(key)
                s[f"g/{key}/deeper/{key}"] = _value(key)
            except InvalidKeyError:
                assert key == ".."
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(outside_before + ["store.json"])
    _check_json_files(filename)
    with tinystore.open(filename, "r") as s:
        for key in keys[:-1]:
            _check_value(s[key], key)
            _check_value(s[f"g/{key}/deeper/{key}"], key)


@pytest.mark.parametrize("backend", ["json"])
def test_json_long_keys_sharing_a_prefix_get_distinct_short_files(backend, filename):
    keys = ["a" * 250 + str(i) for i in range(5)] + ["\u00e9" * 120 + str(i) for i in range(5)]
    with tinystore.open(filename, "w") as s:
        for key in keys:
            s[key] = _value(key)
    with tinystore.open(filename, "r") as s:
        assert list(s) == keys
        for key in keys:
            _check_value(s[key], key)
    _check_json_files(filename)


def test_reading_a_refused_key_is_not_found_or_invalid(backend, filename):
    _fresh(filename)
    for key in REFUSED[1:]:  # path="" is the whole store
        with pytest.raises((InvalidKeyError, NodeNotFoundError)):
            tinystore.load(filename, path=key)
