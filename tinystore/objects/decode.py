"""Tree of nodes -> objects: the inverse of :mod:`tinystore.objects.encode`.

Each node is rebuilt by the adapter its kind names; adapters are generators
that yield the children they need (see :mod:`tinystore.objects.registry`).
The engine drives them with an explicit stack, so depth is limited by
memory.  As in ``pickle``, a mutable object is memoised before its children
are rebuilt, so cycles through it (and through ``__setstate__``) work.
Everything returned is new: nothing aliases what the storage holds.
"""

from __future__ import annotations

import copyreg
import sys
from typing import Any, Callable

from tinystore.errors import TinystoreError, UnloadableError
from tinystore.objects.budget import check_built, check_slice_keys
from tinystore.objects.fallback import load_part
from tinystore.objects.globals import import_global
from tinystore.objects.registry import adapter_for_kind
from tinystore.objects.table import build_rows, table_part
from tinystore.storage.base import Tree

_PENDING = object()


def _noop(obj: Any) -> None:
    pass


def set_state(obj: Any, state: Any, state_setter: Any = None) -> None:
    """Apply a reduce ``state`` exactly as pickle's BUILD opcode does."""
    if state_setter is not None:
        state_setter(obj, state)
        return
    setstate = getattr(obj, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slotstate = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slotstate = state
    if state:
        inst_dict = obj.__dict__
        intern = sys.intern
        for k, v in state.items():
            if type(k) is str:
                inst_dict[intern(k)] = v
            else:
                inst_dict[k] = v
    if slotstate:
        for k, v in slotstate.items():
            setattr(obj, k, v)


class _GenFrame:
    __slots__ = ("gen", "anchor", "started", "label")

    def __init__(self, gen, anchor, label):
        self.gen = gen
        self.anchor = anchor
        self.started = False
        self.label = label


class _ListFrame:
    __slots__ = ("out", "items", "key", "label")

    def __init__(self, out, items, label):
        self.out = out
        self.items = items
        self.key = None
        self.label = label


class Decoder:
    """Rebuilds objects from trees; one instance per load (it owns the memo).

    ``check(name)`` is called with every ``module:qualname`` before it is
    imported (``safe`` loading uses it to refuse names); ``locate(anchor)``
    returns the encoded node of an anchor that lies outside the tree being
    decoded (partial loads).
    """

    def __init__(
        self,
        *,
        check: Callable[[str], None] | None = None,
        allow_pickle: bool = True,
        check_call: Callable[[Any, Any], None] | None = None,
        locate: Callable[[int], Any] | None = None,
        path: str = "",
    ):
        self.memo: dict[int, Any] = {}
        #: state dicts of "obj" nodes, by anchor (see ``_object``)
        self.states: dict[int, dict] = {}
        #: tables with an anchor: what refs to their rows need (see ``table_part``)
        self.tables: dict[int, Any] = {}
        self.check = check
        self.check_call = check_call
        self.allow_pickle = allow_pickle
        self.locate = locate
        self.base = path
        self._stack: list = []
        self._locating: set = set()
        self._imported: dict[str, Any] = {}
        #: the cloudpickle streams being loaded (see tinystore.objects.fallback)
        self.streams: dict[int, Any] = {}

    # -- helpers for adapters -------------------------------------------------
    def import_global(self, name: str) -> Any:
        """The object at ``name``, checked and imported once per load."""
        try:
            return self._imported[name]
        except KeyError:
            pass
        except TypeError:  # not a str (a damaged node): let import_global say so
            return import_global(name, self.check)
        obj = self._imported[name] = import_global(name, self.check)
        return obj

    def lookup(self, anchor: int) -> Any:
        if type(anchor) is not int:
            raise UnloadableError(f"the reference at {self.path()} is damaged ({anchor!r:.40})")
        try:
            return self.memo[anchor]
        except KeyError:
            pass
        if self.locate is not None and anchor not in self._locating:
            node = self.locate(anchor)
            if node is not None:
                # a reference that leads back to itself (crafted or damaged) must not loop
                self._locating.add(anchor)
                try:
                    obj = self.decode(node)
                finally:
                    self._locating.discard(anchor)
                self.memo.setdefault(anchor, obj)
                return self.memo[anchor]
        raise UnloadableError(
            f"reference to object #{anchor} at {self.path()} cannot be resolved; the "
            "stored data is damaged or was cut out of its context"
        )

    def lookup_state(self, anchor: int) -> dict:
        """The state dict the object at ``anchor`` was rebuilt from."""
        self.lookup(anchor)  # rebuilds the object first if it lies outside this tree
        try:
            return self.states[anchor]
        except KeyError:  # the anchor is named here: the KeyError would only repeat it
            raise UnloadableError(
                f"reference to the state of object #{anchor} at {self.path()} cannot be "
                "resolved; the stored data is damaged"
            ) from None

    def lookup_part(self, anchor: int, part: Any) -> Any:
        """A row of the table at ``anchor``, or a part of a row (``ref`` ``p``)."""
        self.lookup(anchor)  # rebuilds the table first if it lies outside this tree
        return table_part(self, anchor, part)

    def path(self) -> str:
        parts = [self.base] if self.base else []
        for frame in self._stack:
            if type(frame) is _ListFrame and frame.key is not None:
                parts.append(f"[{frame.key}]" if type(frame.key) is int else str(frame.key))
        return "/".join(parts).replace("/[", "[") or "<root>"

    # -- the engine --------------------------------------------------------------
    def decode(self, node: Any) -> Any:
        if type(node) is not Tree:
            return node
        outer = self._stack
        stack = self._stack = []
        try:
            val = self._enter(node)
            while stack:
                top = stack[-1]
                if type(top) is _ListFrame:
                    if val is not _PENDING:
                        top.out[top.key] = val
                    for k, child in top.items:
                        if type(child) is Tree:
                            top.key = k
                            val = _plain_node(child)  # plain containers inline (hot path)
                            if val is not _PENDING:
                                top.out[k] = val
                                continue
                            val = self._enter(child)
                            if val is _PENDING:
                                break
                            top.out[k] = val
                        else:
                            top.out[k] = child
                    else:
                        stack.pop()
                        val = top.out
                    continue
                try:
                    if top.started:
                        req = top.gen.send(val)
                    else:
                        top.started = True
                        req = next(top.gen)
                except StopIteration as stop:
                    stack.pop()
                    val = stop.value
                    if top.anchor is not None:
                        self.memo[top.anchor] = val
                    continue
                except TinystoreError:
                    raise
                except Exception as exc:
                    raise self._rebuild_error(exc) from exc
                val = self._request(req)
            return val
        except (TinystoreError, RecursionError, MemoryError):
            raise
        except Exception as exc:  # damaged data met by the inline paths (a set of lists, ...)
            raise self._rebuild_error(exc) from exc
        finally:
            self._stack = outer

    def _rebuild_error(self, exc: Exception) -> UnloadableError:
        return UnloadableError(
            f"cannot rebuild the object at {self.path()}: {type(exc).__name__}: {exc}"
        )

    def _request(self, req: Any) -> Any:
        t = type(req)
        if t is Tree:
            return self._enter(req)
        if t is list:
            for child in req:
                if type(child) is Tree:
                    break
            else:
                return list(req)
            self._stack.append(_ListFrame([None] * len(req), enumerate(req), None))
            return _PENDING
        if t is dict:
            for child in req.values():
                if type(child) is Tree:
                    break
            else:
                return dict(req)
            self._stack.append(_ListFrame({}, iter(req.items()), None))
            return _PENDING
        return req

    def _enter(self, node: Tree) -> Any:
        attrs = node.attrs
        kind = attrs.get("t")
        anchor = attrs.get("id")
        if type(kind) is not str or not (anchor is None or type(anchor) is int):
            raise UnloadableError(f"the node at {self.path()} is damaged (kind {kind!r:.40})")
        fast = _FAST.get(kind)
        if fast is not None and "alias" not in attrs:
            children = node.children
            flat = node.flat  # the storage saw no Tree among them
            if not flat:
                for child in children if type(children) is list else children.values():
                    if type(child) is Tree:
                        break
                else:
                    flat = True
            if flat:
                obj = fast(children)
                if anchor is not None:
                    self.memo[anchor] = obj
                return obj
        if kind == "obj" and "alias" not in attrs and attrs.get("st") != "n":
            # an instance whose attributes are all plain: rebuilt here, no generator
            values = _plain_values(node)
            if values is not None:
                try:
                    obj, state_dict = _new_object(self, attrs)
                    return _fill_object(obj, attrs, state_dict, values)
                except TinystoreError:
                    raise
                except Exception as exc:
                    raise self._rebuild_error(exc) from exc
        if kind == "ref":
            part = attrs.get("p")
            if part == "s":
                return self.lookup_state(attrs.get("r"))
            if part is not None:
                return self.lookup_part(attrs.get("r"), part)
            return self.lookup(attrs.get("r"))
        handler = _ENGINE_KINDS.get(kind)
        if handler is not None:
            gen = handler(self, attrs, node.children)
        else:
            adapter = adapter_for_kind(kind) if type(kind) is str else None
            if adapter is None:
                raise UnloadableError(
                    f"unknown node kind {kind!r} at {self.path()}: written by a newer "
                    "tinystore, or by an adapter that is not registered in this process"
                )
            if adapter.imports and "c" in attrs:
                imported = self.import_global(attrs["c"])
                if adapter.calls and self.check_call is not None:
                    self.check_call(imported, ())
            if "alias" in attrs:
                gen = _alias(self, attrs, node.children)
            else:
                remember = _noop if anchor is None else _remember(self.memo, anchor)
                gen = adapter.decode(attrs, node.children, remember)
        self._stack.append(_GenFrame(gen, anchor, None))
        return _PENDING


def _remember(memo: dict, anchor: int) -> Callable[[Any], None]:
    def remember(obj: Any) -> None:
        memo[anchor] = obj

    return remember


# -- node kinds the engine itself writes ------------------------------------------
def _alias(dec: Decoder, attrs: dict, children: Any):
    yield children  # rebuilt for their side effects only, like pickle's POP
    return dec.lookup(attrs["alias"])


def _leaf(dec: Decoder, attrs: dict, children: Any):
    return children[0]
    yield  # pragma: no cover - makes this a generator


def _global(dec: Decoder, attrs: dict, children: Any):
    return dec.import_global(attrs["g"])
    yield  # pragma: no cover


def _object(dec: Decoder, attrs: dict, children: Any):
    obj, state_dict = _new_object(dec, attrs)
    if attrs.get("st") == "n":
        return obj
    values = yield children
    return _fill_object(obj, attrs, state_dict, values)


def _new_object(dec: Decoder, attrs: dict) -> tuple[Any, dict | None]:
    """An "obj" node's object, made and memoised before its state is rebuilt."""
    cls = dec.import_global(attrs["c"])
    if not isinstance(cls, type):
        raise UnloadableError(f"{attrs['c']} is not a class")
    obj = copyreg.__newobj__(cls)
    anchor = attrs.get("id")
    if anchor is not None:
        dec.memo[anchor] = obj
    # the state dict exists before its values, as in pickle, so that refs to
    # it (``{"t": "ref", "p": "s"}``) from inside its values find it
    style = attrs.get("st")
    state_dict = None if style in ("n", "ns") else {}
    if anchor is not None and state_dict is not None:
        dec.states[anchor] = state_dict
    return obj, state_dict


def _fill_object(obj: Any, attrs: dict, state_dict: dict | None, values: dict) -> Any:
    style = attrs.get("st")
    slots = {k: values.pop(k) for k in attrs.get("sl", ())} if style in ("t", "ns") else None
    if state_dict is not None:
        state_dict.update(values)
    set_state(obj, state_dict if slots is None else (state_dict, slots))
    return obj


def _plain_values(node: Tree) -> dict | None:
    """The values of an "obj" node's children if none needs the engine (else None):
    leaves, and plain containers of leaves (which cannot refer to anything)."""
    children = node.children
    if type(children) is not dict:
        return None
    if node.flat:  # the storage saw no Tree among them
        return dict(children)
    out = {}
    for k, c in children.items():
        if type(c) is Tree:
            c = _plain_node(c)
            if c is _PENDING:
                return None
        out[k] = c
    return out


def _plain_node(node: Tree) -> Any:
    """The container a node of a plain kind (only ``t`` in its attrs) whose
    children are all leaves stands for; ``_PENDING`` for any other node."""
    attrs = node.attrs
    kind = attrs.get("t") if len(attrs) == 1 else None
    fast = _FAST.get(kind) if type(kind) is str else None
    if fast is None:
        return _PENDING
    children = node.children
    for child in children if type(children) is list else children.values():
        if type(child) is Tree:
            return _PENDING
    return fast(children)


def _reduce(dec: Decoder, attrs: dict, children: dict):
    func = yield children["f"]
    args = yield children["a"]
    if dec.check_call is not None:
        dec.check_call(func, args)  # safe loading: only allowed constructors are called
    if "alias" in attrs:
        obj = dec.lookup(attrs["alias"])
    else:
        if not callable(func):
            raise UnloadableError(f"the stored constructor at {dec.path()} is not callable")
        obj = func(*args)
        if attrs.get("id") is not None:
            dec.memo[attrs["id"]] = obj
    if "l" in children:
        _append_items(obj, (yield children["l"]))
    if "dk" in children:
        keys = yield children["dk"]
        values = yield children["dv"]
        if dec.check_call is not None:
            check_slice_keys(keys, dec.path())
        for k, v in zip(keys, values):
            obj[k] = v
    if "s" in children:
        setter = (yield children["ss"]) if "ss" in children else None
        state = yield children["s"]
        if setter is not None and dec.check_call is not None:
            dec.check_call(setter, (obj, state))  # a call like any other
        set_state(obj, state, setter)
    check_built(obj, dec.path())
    return obj


#: pickle appends reduce ``listitems`` in batches of this many (``Pickler._BATCHSIZE``)
_BATCHSIZE = 1000


def _append_items(obj: Any, items: list) -> None:
    """Add ``listitems`` as pickle's APPENDS does: one ``extend`` per batch, else ``append``.

    Classes may count or validate those calls, so the batches are pickle's,
    and an empty ``items`` calls nothing.
    """
    extend = getattr(obj, "extend", None)
    for start in range(0, len(items), _BATCHSIZE):
        batch = items[start : start + _BATCHSIZE]
        if extend is not None:
            extend(batch)
        else:
            for item in batch:
                obj.append(item)


def _table(dec: Decoder, attrs: dict, children: Any):
    """A list stored column by column (see :mod:`tinystore.objects.table`)."""
    obj: list = []
    anchor = attrs.get("id")
    if anchor is not None:
        dec.memo[anchor] = obj
    columns = yield children
    obj.extend(build_rows(dec, attrs, columns))
    return obj


def _cloudpickle(dec: Decoder, attrs: dict, children: Any):
    return load_part(dec, attrs, children)  # see tinystore.objects.fallback
    yield  # pragma: no cover


_ENGINE_KINDS: dict[str, Callable] = {
    "alias": _alias,
    "leaf": _leaf,
    "global": _global,
    "obj": _object,
    "reduce": _reduce,
    "cloudpickle": _cloudpickle,
    "table": _table,
}


def _dict_fast(children: Any) -> dict:
    if type(children) is dict:
        return dict(children)
    if type(children) is list and len(children) == 2:  # keys/values form
        keys, values = children
        if type(keys) is list and type(values) is list and len(keys) == len(values):
            return dict(zip(keys, values))
    raise ValueError("a dict node holds neither a mapping nor keys and values")


def _sequence(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def fast(children: Any) -> Any:
        if type(children) is not list:
            raise ValueError(f"a {build.__name__} node holds a mapping, not a sequence")
        return build(children)

    return fast


#: The builtin containers: kind -> the builtin that rebuilds a node of that kind
#: from children that are all leaves (a new object), and the type of those
#: children (a dict node may also hold keys and values as two lists: see _FAST)
PLAIN_KINDS: dict[str, tuple[Callable[[Any], Any], type]] = {
    "list": (list, list),
    "tuple": (tuple, list),
    "set": (set, list),
    "frozenset": (frozenset, list),
    "dict": (dict, dict),
}

#: node kind -> how to rebuild it when all its children are leaves (checked)
_FAST: dict[str, Callable[[Any], Any]] = {
    kind: _dict_fast if kind == "dict" else _sequence(build)
    for kind, (build, _) in PLAIN_KINDS.items()
}
