"""The adapter registry: how a type is laid out as a node, and rebuilt.

An :class:`Adapter` handles the objects of some exact types (``types``) or
those a predicate (``accepts``) picks.  Its ``kind`` is stored in the node
(``attrs["t"]``) and chooses the adapter again on load.

Encoding: ``encode(obj)`` returns ``(attrs, children)``: JSON-compatible
metadata and a list or str-keyed dict of child *objects* (encoded in turn by
the engine, so sharing and cycles below them are kept).

Decoding: ``decode(attrs, children, remember)`` is a generator.  It yields
the (encoded) children it needs and is sent them back decoded, then returns
the object.  A mutable object calls ``remember(obj)`` *before* yielding its
children, so that children referring back to it (cycles) find it, as pickle
does::

    class ListAdapter(Adapter):
        kind, types = "list", (list,)
        def encode(self, obj):
            return {}, obj
        def decode(self, attrs, children, remember):
            obj = []
            remember(obj)
            obj.extend((yield children))
            return obj

Register new adapters with :func:`register_adapter`; per-call and
process-wide *reducers* (pickle's ``dispatch_table``) go through
:func:`register_reducer`.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

__all__ = ["Adapter", "register_adapter", "register_reducer", "adapter_for_kind"]


class Adapter:
    """Base class of adapters (see the module docstring)."""

    kind: str = ""
    types: tuple[type, ...] = ()

    def accepts(self, cls: type) -> bool:
        """Extra predicate for types not listed in ``types`` (checked after them)."""
        return False

    def encode(self, obj: Any) -> tuple[dict, Any]:
        raise NotImplementedError

    def decode(self, attrs: dict, children: Any, remember: Callable[[Any], None]) -> Generator:
        raise NotImplementedError

    #: True for immutable objects: rebuilt from their decoded children and
    #: memoised after them (like tuples); False: memoised before them.
    immutable = False

    #: True if decoding calls the object named by ``attrs["c"]`` with stored
    #: arguments (``safe=True`` then requires it among the allowed callables).
    calls = False

    #: True if the adapter needs the class/function of the object imported by
    #: name on load (so ``safe=True`` checks it); the name is ``attrs["c"]``.
    imports = False

    #: True if ``encode`` returns a dict of children only when every key is a
    #: valid child key (``encode.all_keys``): the encoder then need not check.
    keys_checked = False


_BY_TYPE: dict[type, Adapter] = {}
_BY_KIND: dict[str, Adapter] = {}
_PREDICATES: list[Adapter] = []
_REDUCERS: dict[type, Callable[[Any], Any]] = {}


def register_adapter(adapter: Adapter, *, replace: bool = False) -> Adapter:
    """Make ``adapter`` store its types (on every backend, in every process that registers it)."""
    if not adapter.kind:
        raise ValueError("an adapter needs a non-empty kind")
    if adapter.kind in _BY_KIND and not replace:
        raise ValueError(f"an adapter of kind {adapter.kind!r} is already registered")
    old = _BY_KIND.get(adapter.kind)
    if old is not None:
        _PREDICATES[:] = [a for a in _PREDICATES if a is not old]
        for t in old.types:
            _BY_TYPE.pop(t, None)
    _BY_KIND[adapter.kind] = adapter
    for t in adapter.types:
        _BY_TYPE[t] = adapter
    if type(adapter).accepts is not Adapter.accepts:
        _PREDICATES.append(adapter)
    _CACHE.clear()
    return adapter


def register_reducer(cls: type, reducer: Callable[[Any], Any] | None) -> None:
    """Store objects of exact type ``cls`` through ``reducer(obj)``, process-wide.

    ``reducer`` returns a reduce tuple ``(callable, args, ...)``, like the
    functions of :data:`copyreg.dispatch_table`, and takes precedence over
    adapters and ``__reduce_ex__``.  ``None`` removes the registration.
    """
    if reducer is None:
        _REDUCERS.pop(cls, None)
    else:
        _REDUCERS[cls] = reducer
    _CACHE.clear()


_CACHE: dict[type, Adapter | None] = {}


def adapter_for_type(cls: type) -> Adapter | None:
    try:
        return _CACHE[cls]
    except KeyError:
        pass
    adapter = _BY_TYPE.get(cls)
    if adapter is None:
        for candidate in _PREDICATES:
            if candidate.accepts(cls):
                adapter = candidate
                break
    _CACHE[cls] = adapter
    return adapter


def exact_adapter(cls: type) -> Adapter | None:
    """The adapter registered for exactly ``cls`` (its ``types``), predicates aside."""
    return _BY_TYPE.get(cls)


def adapter_for_kind(kind: str) -> Adapter | None:
    return _BY_KIND.get(kind)


def process_reducers() -> dict[type, Callable[[Any], Any]]:
    return _REDUCERS
