"""Wrapped errors keep their cause (``raise ... from exc``) where it tells the user why."""

from __future__ import annotations

import importlib
import itertools
import os
import re
import sys

import pytest

import tinystore
from tinystore.errors import BackendError, UnloadableError, UnstorableError

_names = itertools.count()


def _chain(exc: BaseException) -> list[BaseException]:
    out = []
    while exc is not None:
        out.append(exc)
        exc = exc.__cause__
    return out


def test_a_module_that_fails_to_import_on_load_shows_why(filename, tmp_path, monkeypatch):
    name = f"causes_{os.getpid()}_{next(_names)}"
    source = tmp_path / f"{name}.py"
    source.write_text("class Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    module = importlib.import_module(name)
    try:
        tinystore.save({"thing": module.Thing()}, filename)
        source.write_text("raise RuntimeError('broken at import')\n")
        sys.modules.pop(name)
        with pytest.raises(UnloadableError, match=f"cannot import {name}:Thing") as info:
            tinystore.load(filename, version_check="ignore")
    finally:
        sys.modules.pop(name, None)
    causes = _chain(info.value)
    assert any(type(c) is RuntimeError and str(c) == "broken at import" for c in causes)


def _orphan():
    return 1


_orphan.__module__ = "tinystore_no_such_module_for_tests"


def test_a_global_that_cannot_be_imported_on_save_shows_why(filename):
    with pytest.raises(UnstorableError, match="tinystore_no_such_module_for_tests") as info:
        tinystore.save({"f": _orphan}, filename)
    causes = _chain(info.value)
    assert any(type(c) is ModuleNotFoundError for c in causes)


def test_an_unknown_backend_option_shows_the_call_that_refused_it(filename):
    with pytest.raises(BackendError, match="no_such_option") as info:
        tinystore.open(filename, mode="w", no_such_option=1)
    assert type(info.value.__cause__) is TypeError
    assert "no_such_option" in str(info.value.__cause__)


@pytest.mark.parametrize(
    "value, where",
    [
        (memoryview(b"ab"), "<root>"),
        (staticmethod(len), "<root>"),
        ([1, memoryview(b"ab")], "[1]"),
        ({"k": memoryview(b"ab")}, "k"),
    ],
    ids=["memoryview", "staticmethod", "in_list", "in_dict"],
)
def test_the_path_of_an_unstorable_part_names_the_value_itself_at_the_root(filename, value, where):
    """The value saved is ``<root>`` (it was called ``[0]``, an index it has not);
    below a group it is the group's key."""
    with pytest.raises(UnstorableError, match=rf"object at {re.escape(where)}: cannot pickle"):
        tinystore.save(value, filename)
    with tinystore.open(filename, "w") as s:
        below = "grp/x" if where == "<root>" else f"grp/x/{where}".replace("/[", "[")
        with pytest.raises(UnstorableError, match=rf"object at {re.escape(below)}: cannot"):
            s["grp/x"] = value
