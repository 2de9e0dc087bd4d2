"""The cloudpickle fallback: the parts of one save that cannot be decomposed.

All fallback parts of one save form one *stream*: they are pickled, in the
order the encoder placed them, by one ``cloudpickle`` pickler, so whatever
they share (objects, and the globals of the functions cloudpickle pickles by
value) is pickled once and stays shared after loading, exactly as if they
had been pickled in one ``cloudpickle.dumps`` call.  Each part's node holds
its own segment of the stream (one pickle, written with the pickler's memo
as the earlier parts left it), so a part can be loaded on its own: the
decoder first loads the parts before it.

An object that a part shares with the decomposed parts of the value, and
that the encoder had already written when it met that part, is not pickled
again: the segment holds a *persistent id*, the object's anchor, and
loading hands it the object rebuilt from the tree.

Node attrs (``t = "cloudpickle"``): ``id`` the part's anchor, ``seq`` its
position in the stream, ``st`` the anchor of the stream's first part,
``prev`` the anchor of the part before it.  A node with no ``seq`` (files of
tinystore before 0.4) is one standalone pickle.
"""

from __future__ import annotations

import functools
import io
import pickle
import types
from typing import Any, Callable

import numpy as np

from tinystore.errors import UnloadableError, UnsafeLoadError, UnstorableError
from tinystore.storage.base import Tree

PROTOCOL = 4


class _Sink:
    """A file that forgets what it is given (trial pickling)."""

    @staticmethod
    def write(data: Any) -> int:
        return len(data)


@functools.cache
def _pickler_class() -> type:
    """The pickler class (made once: cloudpickle is imported when first needed)."""
    import cloudpickle

    class StreamPickler(cloudpickle.Pickler):
        """cloudpickle's pickler, with persistent ids from a callback."""

        def __init__(self, file: Any, pid: Callable[[Any], Any]):
            super().__init__(file, protocol=PROTOCOL)
            self._pid = pid

        def persistent_id(self, obj: Any) -> Any:
            return self._pid(obj)

    return StreamPickler


class Part:
    """One fallback part: the object, its node, and which objects it refers to by anchor."""

    __slots__ = ("obj", "tree", "pids", "held")

    def __init__(self, obj: Any, tree: Tree, pids: dict, held: dict):
        self.obj = obj
        self.tree = tree
        self.pids = pids
        self.held = held


#: Objects whose identity does not matter, or that are stored by import path:
#: a fallback part that holds them does not make their other occurrences parts.
_NO_IDENTITY = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.ModuleType,
    np.generic,
)


def trial(obj: Any, persist: Callable[[Any], Any]) -> tuple[dict, dict]:
    """Pickle ``obj`` into nothing, to learn that cloudpickle can store it.

    ``persist(o)`` returns the persistent id of an object the encoder has
    already written (None for others).  Returns ``{id(o): pid}`` for the
    objects given persistent ids, so that the real pickling
    (:func:`write_stream`) makes the same choices, and ``{id(o): o}`` for the
    objects with an identity that the part holds (pickled by value): where
    the encoder meets one of them later, it stores it in the stream too, so
    that it stays one object.  Raises what cloudpickle raises.
    """
    pids: dict = {}
    held: dict = {}

    def pid(o: Any) -> Any:
        if o is obj:
            return None
        found = persist(o)
        if found is not None:
            pids[id(o)] = found
        elif not isinstance(o, _NO_IDENTITY):
            held[id(o)] = o  # kept alive: a temporary's id is never reused meanwhile
        return found

    _pickler_class()(_Sink(), pid).dump(obj)
    return pids, held


def write_stream(parts: list[Part], new_anchor: Callable[[], int]) -> None:
    """Pickle every part, in order, with one pickler; each node gets its segment."""
    if not parts:
        return
    buf = io.BytesIO()
    current: list = [{}]
    pickler = _pickler_class()(buf, lambda o: current[0].get(id(o)))
    first = prev = None
    for seq, part in enumerate(parts):
        current[0] = part.pids
        try:
            pickler.dump(part.obj)
        except Exception as exc:  # it pickled a moment ago: its reduce changed its mind
            raise UnstorableError(
                f"cannot store {type(part.obj).__qualname__} with cloudpickle: {exc}"
            ) from exc
        tree = part.tree
        anchor = tree.attrs.get("id")
        if anchor is None:
            anchor = new_anchor()
        if first is None:
            first = anchor
        attrs = {"t": "cloudpickle", "id": anchor, "seq": seq, "st": first}
        if prev is not None:
            attrs["prev"] = prev
        if part.pids:  # the anchors it refers to, for the checks of partial updates
            attrs["refs"] = sorted({pid[0] for pid in part.pids.values()})
        tree.attrs = attrs
        tree.children = [buf.getvalue()]
        buf.seek(0)
        buf.truncate()
        prev = anchor


# -- loading ------------------------------------------------------------------------
class _Source:
    """The file a stream's unpickler reads: segments are added as they are needed."""

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0

    def add(self, segment: bytes) -> None:
        self.data = self.data[self.pos :] + segment
        self.pos = 0

    def read(self, n: int = -1) -> bytes:
        end = len(self.data) if n is None or n < 0 else self.pos + n
        out = self.data[self.pos : end]
        self.pos += len(out)
        return out

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self) -> bytes:
        i = self.data.find(b"\n", self.pos)
        end = len(self.data) if i < 0 else i + 1
        out = self.data[self.pos : end]
        self.pos = end
        return out


class _Stream:
    """One stream being loaded: its unpickler (whose memo spans the segments)."""

    def __init__(self, dec: Any):
        self.source = _Source()
        self.next = 0
        self.busy = False
        stream = self

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                return stream.resolve(pid)

        self.dec = dec
        self.unpickler = Unpickler(self.source)

    def resolve(self, pid: Any) -> Any:
        if type(pid) is not tuple or len(pid) != 2 or type(pid[0]) is not int:
            raise UnloadableError(f"a cloudpickle part at {self.dec.path()} is damaged")
        anchor, part = pid
        if part == "s":
            return self.dec.lookup_state(anchor)
        if part is not None:
            return self.dec.lookup_part(anchor, part)
        return self.dec.lookup(anchor)

    def load(self, node: Any) -> Any:
        children = node.children if type(node) is Tree else None
        if type(children) is not list or len(children) != 1 or type(children[0]) is not bytes:
            raise UnloadableError(f"the cloudpickle part at {self.dec.path()} is damaged")
        if self.busy:  # a part refers to an object around a later part of its stream
            raise UnloadableError(
                f"the cloudpickle part at {self.dec.path()} cannot be loaded on its own: "
                "load the object around it"
            )
        self.source.add(children[0])
        self.busy = True
        try:
            obj = self.unpickler.load()
        finally:
            self.busy = False
        self.next += 1
        return obj


def load_part(dec: Any, attrs: dict, children: Any) -> Any:
    """The object a ``cloudpickle`` node stands for (see the module docstring)."""
    if not dec.allow_pickle:
        raise UnsafeLoadError(
            f"{dec.path()} is stored as pickle bytes, which safe loading never unpickles"
        )
    if "seq" not in attrs:
        return pickle.loads(children[0])
    seq, first, anchor = attrs.get("seq"), attrs.get("st"), attrs.get("id")
    if type(seq) is not int or type(first) is not int or type(anchor) is not int:
        raise UnloadableError(f"the cloudpickle part at {dec.path()} is damaged")
    streams = dec.streams
    stream = streams.get(first)
    if stream is None:
        stream = streams[first] = _Stream(dec)
    if seq < stream.next:  # loaded already, out of order (by a later part of a partial load)
        if anchor in dec.memo:
            return dec.memo[anchor]
        raise UnloadableError(f"the cloudpickle part at {dec.path()} is damaged")
    if seq > stream.next:
        _catch_up(dec, stream, attrs, seq)
    return stream.load(Tree(attrs, children))


def _catch_up(dec: Any, stream: _Stream, attrs: dict, seq: int) -> None:
    """Load the parts of the stream before ``seq`` (a part loaded on its own)."""
    before = []
    prev = attrs.get("prev")
    for _ in range(seq - stream.next):
        node = dec.locate(prev) if dec.locate is not None and type(prev) is int else None
        if node is None:
            raise UnloadableError(
                f"the cloudpickle part at {dec.path()} needs the parts stored before it "
                "in the same save, which cannot be found"
            )
        if node.attrs.get("seq") != seq - 1 - len(before):
            raise UnloadableError(f"the cloudpickle part at {dec.path()} is damaged")
        before.append(node)
        prev = node.attrs.get("prev")
    for node in reversed(before):
        obj = stream.load(node)
        dec.memo.setdefault(node.attrs.get("id"), obj)
