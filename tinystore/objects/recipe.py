"""``Recipe``: store how to make an object instead of the object.

Some objects are best archived as the call that built them: their own
layout would tie the file to a library's internals, or they are cheap to
rebuild from a few plain inputs::

    import ase.build
    s["structure"] = tinystore.Recipe(ase.build.bulk, "Al", cubic=True)
    s["structure"]              # calls ase.build.bulk("Al", cubic=True) -> Atoms
    s.node("structure")         # shows the recipe, calls nothing

The function is stored by import path (``module:qualname``) and its
arguments as ordinary nodes.  Loading with ``safe=True`` calls it only if it
is allowed by name (``allow=["ase.build:bulk"]``).
"""

from __future__ import annotations

from typing import Any, Callable

from tinystore.errors import UnloadableError
from tinystore.objects.globals import global_name, import_global
from tinystore.objects.registry import Adapter, register_adapter

__all__ = ["Recipe"]


class Recipe:
    """A function plus its arguments, stored in place of the function's result."""

    __slots__ = ("func", "args", "kwargs")

    def __init__(self, func: Callable[..., Any], /, *args: Any, **kwargs: Any):
        if not callable(func):
            raise TypeError(f"Recipe needs a callable, not {type(func).__name__}")
        self.func = func
        self.args = args
        self.kwargs = kwargs

    def __call__(self) -> Any:
        """Make the object now."""
        return self.func(*self.args, **self.kwargs)

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        name = getattr(self.func, "__qualname__", repr(self.func))
        return f"Recipe({name}, {', '.join(parts)})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Recipe):
            return NotImplemented
        return (self.func, self.args, self.kwargs) == (other.func, other.args, other.kwargs)

    __hash__ = None  # type: ignore[assignment]


class RecipeAdapter(Adapter):
    """``attrs.c``: the function's import path; children: ``args``, ``kwargs``."""

    kind, types, imports, immutable, calls = "recipe", (Recipe,), True, True, True

    def encode(self, obj: Recipe):
        return {"c": global_name(obj.func)}, {"args": list(obj.args), "kwargs": dict(obj.kwargs)}

    def decode(self, attrs, children, remember):
        func = import_global(attrs["c"])
        parts = yield children
        args, kwargs = parts.get("args", []), parts.get("kwargs", {})
        if type(args) is not list or type(kwargs) is not dict:
            raise UnloadableError(f"the recipe of {attrs['c']} is damaged")
        return func(*args, **kwargs)


register_adapter(RecipeAdapter())
