"""Functions, classes and other module-level objects, by import path.

A *global* is stored as ``"module:qualname"``; it round-trips when importing
``module`` and following ``qualname`` gives back the very same object (the
rule ``pickle`` applies).  Lookups are cached per process.
"""

from __future__ import annotations

import importlib
import pickle
import sys
from typing import Any, Callable

from tinystore.errors import UnloadableError, UnstorableError

_NAMES: dict[int, tuple[Any, str]] = {}


def _follow(obj: Any, qualname: str) -> Any:
    for part in qualname.split("."):
        if part == "<locals>":
            raise AttributeError(f"{qualname!r} is local to a function")
        obj = getattr(obj, part)
    return obj


def global_name(obj: Any, name: str | None = None) -> str:
    """``"module:qualname"`` of ``obj``; raise UnstorableError if not importable."""
    key = id(obj)
    hit = _NAMES.get(key)
    if hit is not None and hit[0] is obj and name is None:
        return hit[1]
    qualname = name or getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(qualname, str):
        raise UnstorableError(f"{obj!r} has no __qualname__; it cannot be stored by name")
    module = getattr(obj, "__module__", None) if name is None else None
    moduleless = name is None and module is None
    if module is None or (name is not None):
        module = pickle.whichmodule(obj, qualname)
    try:
        importlib.import_module(module)
        found = _follow(sys.modules[module], qualname)
    except (ImportError, AttributeError, KeyError) as exc:
        if moduleless:  # whichmodule's "__main__" is only its last guess
            raise UnstorableError(
                f"{obj!r} has no module (its __module__ is None) and no imported module "
                f"holds it as {qualname}, so it cannot be stored by import path; give it a "
                "__module__, register a reducer for it, or pass cloudpickle_fallback=True"
            ) from None
        raise UnstorableError(
            f"{obj!r} cannot be stored by import path {module}:{qualname} ({exc}); define it "
            "at module level, or pass cloudpickle_fallback=True"
        ) from exc  # an import that failed shows why
    if found is not obj:
        raise UnstorableError(
            f"{obj!r} is not the object found at {module}:{qualname}; define it at module "
            "level, or pass cloudpickle_fallback=True"
        )
    full = f"{module}:{qualname}"
    if name is None:
        _NAMES[key] = (obj, full)
    return full


def import_global(full: str, check: Callable[[str], None] | None = None) -> Any:
    """The object at ``"module:qualname"`` (``check`` may veto it first)."""
    if check is not None:
        check(full)
    module, _, qualname = full.partition(":")
    if not module or not qualname:
        raise UnloadableError(f"invalid import path {full!r}; expected 'module:qualname'")
    try:
        # no cache of the object itself: a module reloaded in a notebook must be seen
        mod = sys.modules.get(module) or importlib.import_module(module)
        return _follow(mod, qualname)
    except Exception as exc:
        raise UnloadableError(
            f"cannot import {full}: {type(exc).__name__}: {exc}. Is the package that defined "
            "it installed (and the same version)?"
        ) from exc  # the traceback of the failed import points at its cause
