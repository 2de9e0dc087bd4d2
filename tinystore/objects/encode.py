"""Object -> tree of nodes, in the order ``pickle._Pickler.save`` dispatches.

For every object, :meth:`Encoder._place` tries, in this order:

1. storage leaves that have no identity worth keeping (numbers, short
   strings and bytes, numpy scalars): stored as they are;
2. the memo: an object already written in this call becomes a ``ref``
   node pointing at the anchor of its first occurrence (shared references
   and cycles survive);
3. other leaves (arrays, bytearrays, long strings): stored natively, and
   memoised;
4. reducers given for this call, then process-wide reducers
   (:func:`~tinystore.objects.registry.register_reducer`);
5. adapters by exact type, which play the part of pickle's type dispatch
   (``Pickler.dispatch``: builtin containers, functions, ``type``); as
   pickle's ``save_type``, ``type(None)``, ``type(...)`` and
   ``type(NotImplemented)`` are stored as the call ``type(None)`` and so on;
6. ``copyreg.dispatch_table``, which pickle consults before "a class is
   saved by import path" (for classes with a metaclass) and ``__reduce_ex__``;
7. adapters by predicate (Storable, enums, globals, ...);
8. ``__reduce_ex__(4)``: the reduce tuple is laid out as nodes (see
   :meth:`Encoder._place_reduce`);
9. otherwise :class:`~tinystore.errors.UnstorableError` naming the path of
   the part, or, with ``cloudpickle_fallback=True``, a ``cloudpickle`` node
   (:mod:`tinystore.objects.fallback`): the part itself if cloudpickle can
   store it, else the smallest object around it that cloudpickle can store.

The walk uses an explicit stack, so depth is not limited by Python's
recursion limit but by :data:`MAX_DEPTH`.
"""

from __future__ import annotations

import copyreg
import itertools
from typing import Any

import numpy as np

from tinystore._paths import are_keys
from tinystore._paths import is_key as _paths_is_key
from tinystore.errors import TinystoreError, UnstorableError
from tinystore.objects import fallback
from tinystore.objects import table as _table
from tinystore.objects.globals import global_name
from tinystore.objects.order import canonical_order
from tinystore.objects.registry import (
    Adapter,
    adapter_for_type,
    exact_adapter,
    process_reducers,
)
from tinystore.storage.base import Tree
from tinystore.storage.leaves import INT64_MAX, INT64_MIN, is_leaf

PROTOCOL = 4
#: The attrs of plain containers: one dict each, shared by all such nodes of
#: a save (so the storage writes it once).  Never changed in place: the
#: encoder copies a node's attrs before adding to them.
_LIST = {"t": "list"}
_TUPLE = {"t": "tuple"}
_DICT = {"t": "dict"}
#: Plain containers (of leaves without identity: atoms, short str/bytes) are
#: left in the tree as they are, standing for a node with these attrs (the
#: codec declares them to the storage as ``plain_nodes``).
PLAIN_NODES = {tuple: _TUPLE, list: _LIST, dict: _DICT}


def plain_tree(obj: Any) -> Tree:
    """The Tree a plain container left in a tree stands for."""
    t = type(obj)
    return Tree(PLAIN_NODES[t], dict(obj) if t is dict else list(obj))


_ATOMIC = frozenset([type(None), bool, int, float, complex])
_MEMO_LEAVES = frozenset([np.ndarray, bytearray, str, bytes])
#: Strings and byte strings at least this long are memoised (shared once).
MEMO_MIN_LEN = 128
#: How often an object may be met again inside its own not yet memoised parts
#: (a tuple holding n lists that hold the tuple needs n).
MAX_REENTRIES = 1000
#: How deeply objects may nest (a linked list of n cells nests n deep).  An
#: object that never ends (``__getstate__`` returning a new instance each
#: time) stops here with an UnstorableError, instead of taking all memory
#: (saving costs about 1 kB per level; documented in docs/guarantees.rst).
MAX_DEPTH = 300_000
#: Paths in error messages show at most this many parts at each end.
_PATH_ENDS = 12

#: The classes pickle's ``save_type`` writes as ``type(x)``, not by name.
_SINGLETON_TYPES = {type(None): None, type(NotImplemented): NotImplemented, type(...): ...}


def is_key(k: Any) -> bool:
    """True if ``k`` can be a child key in every backend (the rule of ``_paths``)."""
    return _paths_is_key(k)


_STR_ONLY = {str}


def all_keys(keys: Any) -> bool:
    """``all(map(is_key, keys))`` for a collection (a dict, say), in C when it can."""
    return are_keys(keys)


def _state_keys_ok(d: Any, known: set | None = None) -> bool:
    """True if ``d`` is a dict whose keys can all be child keys.

    ``known``: key tuples already found fine (instances of one class have the same).
    """
    if type(d) is not dict:
        return False
    if known is None or len(d) > 64:
        return all_keys(d)
    keys = tuple(d)
    if keys in known and set(map(type, keys)) == _STR_ONLY:  # equal is not enough: str subclasses
        return True
    if all(map(is_key, keys)):
        if len(known) < 1000:
            known.add(keys)
        return True
    return False


class TooDeepError(UnstorableError):
    """Objects nest deeper than :data:`MAX_DEPTH` (an UnstorableError)."""


class _Frame:
    # others: the keys of the children that are not JSON-exact atoms, declared
    # to the storage as ``Tree.others`` when the frame is done (None: nothing
    # is declared: a sequence, a small node, or keys not known to be valid)
    __slots__ = (
        "tree",
        "children",
        "items",
        "obj",
        "after",
        "memo_after",
        "label",
        "start",
        "others",
    )

    def __init__(self, tree, children, items, obj, after, memo_after, label):
        self.tree = tree
        self.children = children
        self.items = items
        self.obj = obj
        self.after = after
        self.memo_after = memo_after
        self.label = label


class Encoder:
    """Turns objects into trees; one instance per save (it owns the memo)."""

    def __init__(
        self,
        *,
        reducers: dict | None = None,
        cloudpickle_fallback: bool = False,
        path: str = "",
    ):
        #: id(obj) -> [obj, node, container, key(, part)]: the node written for obj (None:
        #: a leaf, stored as container[key]); obj is kept so that its id stays unique
        self.memo: dict[int, list] = {}
        self.anchors = 0
        self.reducers = dict(reducers or {})
        self.process_reducers = process_reducers()
        # the plain-container shortcut holds unless someone re-routes these types
        self._fast = not any(
            t in self.reducers or t in self.process_reducers for t in (list, tuple, dict)
        )
        self.cloudpickle_fallback = cloudpickle_fallback
        #: the cloudpickle fallback parts, in the order they were placed
        self.fallbacks: list[fallback.Part] = []
        #: id -> object, for the objects with an identity that fallback parts hold
        #: (see fallback.trial): met again, they are stored in the stream too
        self.held: dict[int, Any] = {}
        self.globals: set[str] = set()
        self.base = path
        self._stack: list[_Frame] = []
        #: type -> how its objects are stored: (0, reducer), (1, adapter), (2, copyreg
        #: reducer or None for __reduce_ex__); reducers cannot change during a save
        self._routes: dict[type, tuple] = {}
        #: class -> the attrs of its "obj" nodes (one dict, shared by those nodes)
        self._class_attrs: dict[type, dict] = {}
        #: key tuples of state dicts already checked (see _state_keys_ok)
        self._good_keys: set[tuple] = set()
        #: adapter kind -> the attrs of its nodes that need no more than their kind
        self._kind_attrs: dict[str, dict] = {}
        #: id(obj) -> memo size when each of its nodes that wait for their memo was started
        self._pending: dict[int, list[int]] = {}
        #: the lists stored as tables so far (see tinystore.objects.table): their
        #: rows are not in the memo; met again, they are found through these
        self._tables: list = []

    # -- public --------------------------------------------------------------
    def encode(self, obj: Any) -> Any:
        holder = [None]
        self.run(obj, holder, 0, "")
        fallback.write_stream(self.fallbacks, self._new_anchor)
        node = holder[0]
        if type(node) in PLAIN_NODES:  # the root is a node, never a plain container
            node = plain_tree(node)
        return node

    def run(self, obj: Any, container: Any, key: Any, label: str) -> None:
        """Encode ``obj`` into ``container[key]`` (re-entrant, for Storables)."""
        outer = self._stack
        stack = self._stack = []
        try:
            self._place(obj, container, key, label)
            memo = self.memo
            held = self.held
            fast = self._fast
            tables = self._tables
            while stack:
                frame = stack[-1]
                children = frame.children
                others = frame.others
                for k, child in frame.items:
                    # the commonest children inline (this loop is hot): atoms, and
                    # small tuples/lists of plain values (what _place would do).
                    # ``children`` starts as a copy of the items (see _push): a
                    # JSON-exact atom is left there as it is; the keys of the
                    # others go to ``others`` (Tree.others: the storage copies
                    # the rest as they are, without looking at each again).
                    # (the int bounds are INT64_MIN/INT64_MAX, as constants)
                    t = type(child)
                    if t is str:
                        if len(child) < 128:  # MEMO_MIN_LEN
                            if not child.isascii() and others is not None:
                                others.append(k)
                            continue
                    elif t is int:
                        if not -0x8000000000000000 <= child <= 0x7FFFFFFFFFFFFFFF:
                            if others is not None:
                                others.append(k)
                        continue
                    elif t is float:
                        if child - child != 0.0 and others is not None:
                            others.append(k)
                        continue
                    elif child is None or t is bool:
                        continue
                    elif t is tuple or t is list:
                        i = id(child)
                        # (once a table is made, a tuple may be one of its rows: see _place)
                        if fast and (t is list or not tables) and i not in memo:
                            for item in child:  # _exact_plain, inline
                                it = type(item)
                                if it is str:
                                    if len(item) >= 128 or not item.isascii():
                                        break
                                elif it is int:
                                    if not -0x8000000000000000 <= item <= 0x7FFFFFFFFFFFFFFF:
                                        break
                                elif it is float:
                                    if item - item != 0.0:
                                        break
                                elif item is not None and it is not bool:
                                    break
                            else:  # left as it is (see PLAIN_NODES)
                                if not held or i not in held:  # (else: a fallback part holds it)
                                    memo[i] = [child, None, children, k]
                                    if others is not None:
                                        others.append(k)
                                    continue
                            item = None  # (a list may become a table: see table._lone)
                    elif t is complex or (t is bytes and len(child) < MEMO_MIN_LEN):
                        if others is not None:
                            others.append(k)
                        continue
                    if others is not None:
                        others.append(k)
                    self._place(child, children, k, None)
                    # (a fallback on an enclosing object may have popped this frame)
                    if not stack or stack[-1] is not frame:
                        break
                else:
                    if frame.after is not None:
                        self._between(frame)
                    else:
                        stack.pop()
                        frame.tree.others = others
        finally:
            self._stack = outer

    # -- paths for messages ----------------------------------------------------
    def path_of(self, key: Any) -> str:
        parts = [self.base] if self.base else []
        frames = self._stack
        if len(frames) > 2 * _PATH_ENDS:  # a very deep part: both ends of its path
            frames = [*frames[:_PATH_ENDS], None, *frames[-_PATH_ENDS:]]
        for frame in frames:
            if frame is None:
                parts.append(f"...({len(self._stack) - 2 * _PATH_ENDS} more levels)...")
                continue
            label = frame.label  # a key (an int: an index), or a label given to run()
            if label is not None and label != "":
                parts.append(f"[{label}]" if type(label) is int else str(label))
        text = "/".join(parts).replace("/[", "[")  # "a/b[0]", as the decoder writes paths
        if not self._stack and type(key) is int:  # the value itself (holder[0] in encode)
            key = None
        if key is not None:
            if type(key) is int:
                text += f"[{key}]"
            else:
                text = f"{text}/{key}" if text else str(key)
        return text or "<root>"

    # -- the dispatch ------------------------------------------------------------
    def _place(self, obj: Any, container: Any, key: Any, label: str | None) -> None:
        t = type(obj)
        if t in _ATOMIC:
            container[key] = obj
            return
        if (t is str or t is bytes) and len(obj) < MEMO_MIN_LEN:
            container[key] = obj
            return
        m = self.memo.get(id(obj))
        if m is not None:
            container[key] = self._ref(m)
            return
        if self._tables:  # a row of a table (or a part of one) met again
            m = _table.memo_entry(self, obj)
            if m is not None:
                container[key] = self._ref(m)
                return
        if self.held and id(obj) in self.held:  # inside a fallback part: a part too
            self._fallback(obj, container, key)
            return
        if t in _MEMO_LEAVES and (t is not np.ndarray or is_leaf(obj)):
            container[key] = obj
            self.memo[id(obj)] = [obj, None, container, key]
            return
        if isinstance(obj, np.generic) and is_leaf(obj):
            container[key] = obj
            return
        if self._fast and (t is tuple or t is list or t is dict) and self._is_plain(obj, t):
            container[key] = obj  # left as it is (see PLAIN_NODES)
            self.memo[id(obj)] = [obj, None, container, key]
            return
        if t is list and self._fast and len(obj) >= _table.MIN_ROWS:
            # many rows of one shape: one columnar node (tinystore.objects.table)
            tree = _table.encode_table(self, obj)
            if tree is not None:
                container[key] = tree
                self.memo[id(obj)] = [obj, tree, None, None]
                return
        try:
            self._dispatch(obj, t, container, key, key if label is None else label)
        except TooDeepError:  # cloudpickle would recurse as deep: no fallback
            raise
        except UnstorableError as exc:
            if not self.cloudpickle_fallback:
                where = self.path_of(key)
                if f" at {where}" in str(exc):
                    raise
                raise UnstorableError(f"cannot store the object at {where}: {exc}") from exc
            self._fallback(obj, container, key)
        except TinystoreError:
            raise
        except RecursionError:
            raise
        except Exception as exc:
            error = UnstorableError(
                f"cannot store {t.__module__}.{t.__qualname__} at {self.path_of(key)}: "
                f"{type(exc).__name__}: {exc}"
            )
            if not self.cloudpickle_fallback:
                raise error from exc
            self._fallback(obj, container, key)

    def _is_plain(self, obj: Any, t: type) -> bool:
        """True for a list/tuple/dict of plain values: one node, without a frame.

        Plain values cannot refer back to the container, so memoising it after
        its items is exact; anything else takes the general way.
        """
        if not _exact_plain(obj.values() if t is dict else obj):
            return False
        # dicts of one save tend to share their keys: each key tuple is checked once
        return t is not dict or _state_keys_ok(obj, self._good_keys)

    def _route(self, t: type) -> tuple:
        """How objects of type ``t`` are stored (see the module docstring):
        (0, reducer), (1, adapter), or (2, copyreg reducer or None for ``__reduce_ex__``)."""
        route = self._routes.get(t)
        if route is None:  # once per type and save: what pickle would consult, in its order
            reducer = self.reducers.get(t) or self.process_reducers.get(t)
            if reducer is not None:
                route = (0, reducer)
            else:
                adapter = exact_adapter(t)
                if adapter is None:
                    reducer = copyreg.dispatch_table.get(t)
                    if reducer is None:
                        adapter = adapter_for_type(t)
                route = (1, adapter) if adapter is not None else (2, reducer)
            self._routes[t] = route
        return route

    def _dispatch(self, obj: Any, t: type, container: Any, key: Any, label: Any) -> None:
        how, reducer = self._route(t)
        if how == 0:
            self._place_reduce(obj, reducer(obj), container, key, label)
            return
        if how == 1:
            if t is type and obj in _SINGLETON_TYPES:  # pickle's save_type
                self._place_reduce(obj, (type, (_SINGLETON_TYPES[obj],)), container, key, label)
                return
            self._place_adapter(obj, reducer, container, key, label)
            return
        if reducer is not None:
            rv = reducer(obj)
        else:
            reduce_ex = getattr(obj, "__reduce_ex__", None)
            if reduce_ex is None:
                raise UnstorableError(f"cannot store {t.__qualname__} at {self.path_of(key)}")
            try:
                rv = reduce_ex(PROTOCOL)
            except TinystoreError:
                raise
            except Exception as exc:
                raise UnstorableError(
                    f"cannot store {t.__module__}.{t.__qualname__} object at "
                    f"{self.path_of(key)}: {exc}"
                ) from exc
        self._place_reduce(obj, rv, container, key, label)

    # -- the cloudpickle fallback (see tinystore.objects.fallback) ---------------
    def _fallback(self, obj: Any, container: Any, key: Any) -> None:
        """Store ``obj`` as a fallback part; if cloudpickle cannot store it, the
        innermost object around it that it can store (raises if none can)."""
        tree, error = self._fallback_tree(obj)
        if tree is not None:
            container[key] = tree
            return
        message = (
            f"cannot store {type(obj).__qualname__} at {self.path_of(key)}, not even with "
            f"cloudpickle: {error}"
        )
        if "recursion" in error.lower() or not self._escalate():
            # too deep for cloudpickle: anything around it is deeper still
            raise UnstorableError(f"{message} (nor can any object around it)")

    def _fallback_tree(self, obj: Any) -> tuple[Tree | None, str]:
        """The node of a new fallback part for ``obj``, or None and why cloudpickle
        cannot store it."""
        try:
            pids, held = fallback.trial(obj, self._persistent_id)
        except Exception as exc:
            return None, f"{type(exc).__name__}: {exc}"
        tree = Tree({"t": "cloudpickle"}, [])  # its bytes: when the stream is written
        self.memo[id(obj)] = [obj, tree, None, None]
        self.fallbacks.append(fallback.Part(obj, tree, pids, held))
        self.held.update(held)
        return tree, ""

    def _persistent_id(self, obj: Any) -> Any:
        """An object already written (decomposed, or an earlier part) is referred to
        by its anchor from inside a fallback part; it is rebuilt before that part."""
        m = self.memo.get(id(obj))
        if m is None and self._tables:
            m = _table.memo_entry(self, obj)
        if m is None:
            return None
        ref = self._ref(m).attrs
        return (ref["r"], ref.get("p"))

    def _escalate(self) -> bool:
        """A part cannot be stored, not even with cloudpickle: store the innermost
        object around it that cloudpickle can store instead, popping the frames
        inside it (False if none can)."""
        stack = self._stack
        while stack:
            frame = stack.pop()
            self._abandon(frame)
            self._forget_since(frame.start)  # what was written inside it goes
            tree, error = self._fallback_tree(frame.obj)
            if tree is None and "recursion" in error.lower():
                return False  # too deep for cloudpickle: anything around it is deeper
            if tree is not None:
                frame.tree.attrs = tree.attrs  # the frame's node, where it stands
                frame.tree.children = tree.children
                self.fallbacks[-1].tree = frame.tree
                self.memo[id(frame.obj)][1] = frame.tree
                return True
        return False

    def _abandon(self, frame: _Frame) -> None:
        """Forget that ``frame``'s object waits for its memo (it is not laid out)."""
        if frame.memo_after:
            starts = self._pending.get(id(frame.obj))
            if starts:
                starts.pop()
                if not starts:
                    del self._pending[id(frame.obj)]

    def _forget_since(self, size: int) -> None:
        """Drop the memo entries made after the memo had ``size`` entries, and the
        fallback parts among them (their nodes are no longer in the tree)."""
        memo = self.memo
        extra = len(memo) - size
        if extra > 0:
            for k in list(itertools.islice(reversed(memo), extra)):
                del memo[k]
        parts = self.fallbacks
        if parts and id(parts[-1].obj) not in memo:
            while parts and id(parts[-1].obj) not in memo:
                parts.pop()
            self.held.clear()  # (one dict: the hot loop holds it)
            for part in parts:
                self.held.update(part.held)

    def _new_anchor(self) -> int:
        anchor = self.anchors
        self.anchors += 1
        return anchor

    def _ref(self, m: list) -> Tree:
        tree = m[1]
        if tree is None:  # a leaf or plain container: a node where it stands, for the anchor
            obj = m[0]
            tree = m[1] = (
                plain_tree(obj) if type(obj) in PLAIN_NODES else Tree({"t": "leaf"}, [obj])
            )
            m[2][m[3]] = tree
        # the anchor lives on the node: an object and its state dict share one node
        anchor = tree.attrs.get("id")
        if anchor is None:
            anchor = self.anchors
            self.anchors += 1
            tree.attrs = {**tree.attrs, "id": anchor}  # attrs dicts may be shared: copy
        ref = Tree({"t": "ref", "r": anchor})
        if len(m) > 4:
            # a part of the anchored object: "s", its state dict; {"row": i, ...}: a
            # row of a table, or a part of that row (see tinystore.objects.table)
            ref.attrs["p"] = m[4]
        return ref

    def _push(self, obj, tree, before, after, memo_after, label, keys_ok=True) -> None:
        """Lay out ``tree``'s children: ``before`` first, then memo, then ``after``.

        ``keys_ok``: the keys of a dict of children are known to be valid
        keys, so the tree may declare its ``others``."""
        if len(self._stack) >= MAX_DEPTH:
            raise TooDeepError(
                f"cannot store {type(obj).__qualname__} at {self.path_of(label)}: it is nested "
                f"more than {MAX_DEPTH:,} levels deep (the limit). Does it never end, e.g. "
                "a __getstate__ or __reduce__ that returns a new object each time?"
            )
        if memo_after:
            # Meeting an object again inside the parts written before its memo
            # is fine while something new was memoised since the last time (a
            # recursive tuple: the next pass stops at the list memoised in
            # between).  Without progress every pass repeats the last one: it
            # would loop forever (pickle recurses until RecursionError).
            starts = self._pending.setdefault(id(obj), [])
            if starts and (starts[-1] == len(self.memo) or len(starts) >= MAX_REENTRIES):
                raise UnstorableError(
                    f"{type(obj).__qualname__} contains itself only through parts that must "
                    "be rebuilt before it (its reduce arguments, tuples, or its Storable "
                    "layout), so it can never be rebuilt"
                )
            starts.append(len(self.memo))
        first = before if before is not None else after
        # the children start as the items (run() replaces those it encodes)
        if type(first) is list or isinstance(first, (list, tuple)):
            children: Any = list(first)
            items: Any = enumerate(first)
        elif type(first) is dict:
            children = dict(first)
            items = iter(first.items())
        else:  # another mapping: its items, once
            items = list(first.items())
            children = dict(items)
            items = iter(items)
        if before is not None and after is not None:
            after = list(after.items())
        else:
            after = None
        tree.children = children
        frame = _Frame(tree, children, items, obj, after, memo_after, label)
        frame.start = len(self.memo)
        # Tree.others is declared for big dicts: a sequence's children are
        # seldom mixed atoms and containers, and a small node gains little
        frame.others = [] if keys_ok and type(first) is dict and len(first) >= 8 else None
        self._stack.append(frame)
        if not memo_after:
            self.memo[id(obj)] = [obj, tree, None, None]

    def _between(self, frame: _Frame) -> None:
        """Phase one done: memoise (or alias) the object, then lay out phase two."""
        self._memo_after(frame)
        if frame.after:  # (a dict of children: see _place_reduce)
            frame.children.update(frame.after)
        frame.items = iter(frame.after)
        frame.after = None
        frame.memo_after = False

    def _memo_after(self, frame: _Frame) -> None:
        if not frame.memo_after:
            return
        obj = frame.obj
        starts = self._pending[id(obj)]
        starts.pop()
        if not starts:
            del self._pending[id(obj)]
        m = self.memo.get(id(obj))
        if m is not None:
            # The object was written while writing its own parts (a recursive
            # tuple, or a reduce whose arguments contain it): as pickle does,
            # keep the parts for their side effects and use that occurrence.
            ref = self._ref(m)
            frame.tree.attrs = {**frame.tree.attrs, "alias": ref.attrs["r"]}
        else:
            self.memo[id(obj)] = [obj, frame.tree, None, None]

    # -- adapters ---------------------------------------------------------------
    def _place_adapter(self, obj, adapter: Adapter, container, key, label) -> None:
        attrs, children = adapter.encode(obj)
        if attrs:
            attrs = {"t": adapter.kind, **attrs}
        else:  # one dict per kind, shared by its nodes (written once by the storage)
            attrs = self._kind_attrs.get(adapter.kind)
            if attrs is None:
                attrs = self._kind_attrs[adapter.kind] = {"t": adapter.kind}
        tree = Tree(attrs)
        container[key] = tree
        name = attrs.get("c") or attrs.get("g")  # by convention: import paths
        if type(name) is str:
            self.globals.add(name)
        if not children:  # nothing inside can refer back: memoise now either way
            tree.children = [] if isinstance(children, (list, tuple)) else {}
            self.memo[id(obj)] = [obj, tree, None, None]
            return
        # the keys of a big dict of children, for Tree.others (see _push): the
        # dict adapter checked them (all_keys); another adapter's are checked here
        keys_ok = adapter.keys_checked or (
            type(children) is dict and len(children) >= 8 and all_keys(children)
        )
        if adapter.immutable:
            self._push(obj, tree, children, None, True, label, keys_ok)
            frame = self._stack[-1]
            # memo after the children: handled when the frame finishes
            frame.after = ()
        else:
            self._push(obj, tree, None, children, False, label, keys_ok)

    # -- the reduce protocol ---------------------------------------------------
    def _place_reduce(self, obj: Any, rv: Any, container: Any, key: Any, label: Any) -> None:
        if (  # object.__reduce_ex__'s plain "class + state" (the hot path): what the
            # checks below let through to _place_object, without them
            type(rv) is tuple
            and len(rv) == 5
            and rv[0] is copyreg.__newobj__
            and rv[3] is None
            and rv[4] is None
            and type(rv[1]) is tuple
            and len(rv[1]) == 1
            and rv[1][0] is type(obj)
            and self._place_object(obj, rv[2], container, key, label)
        ):
            return
        if isinstance(rv, str):
            name = global_name(obj, rv)
            self.globals.add(name)
            container[key] = tree = Tree({"t": "global", "g": name}, {})
            self.memo[id(obj)] = [obj, tree, None, None]
            return
        if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
            raise UnstorableError(
                f"__reduce__ of {type(obj).__qualname__} at {self.path_of(key)} must return "
                f"a string or a tuple of 2 to 6 items, not {rv!r:.80}"
            )
        func, args, state, listitems, dictitems, state_setter = rv + (None,) * (6 - len(rv))
        if _default_set_reduce(obj, func, args):
            args = (canonical_order(args[0]),)  # a set subclass: its elements, in hash order
        if not callable(func):
            raise UnstorableError(
                f"first item of the reduce tuple at {self.path_of(key)} is not callable"
            )
        if not isinstance(args, tuple):
            raise UnstorableError(
                f"second item of the reduce tuple at {self.path_of(key)} is not a tuple"
            )
        cls = type(obj)
        name = None if func is copyreg.__newobj__ else getattr(func, "__name__", None)
        if (
            name == "__newobj__"
            or name == "__newobj_ex__"
            or (func is copyreg.__newobj__ and (not args or args[0] is not cls))
        ):
            name = name or "__newobj__"
            try:
                func = _newobj(obj, name, args)
            except ValueError as exc:
                raise UnstorableError(f"{name} at {self.path_of(key)} {exc}") from None
        if (
            func is copyreg.__newobj__
            and len(args) == 1
            and args[0] is cls
            and listitems is None
            and dictitems is None
            and state_setter is None
            and self._place_object(obj, state, container, key, label)
        ):
            return
        for n, items in (("fourth", listitems), ("fifth", dictitems)):
            if items is not None and not hasattr(type(items), "__next__"):  # as pickle checks
                raise UnstorableError(
                    f"{n} item of the reduce tuple at {self.path_of(key)} must be an "
                    f"iterator, not {type(items).__name__}"
                )
        before = {"f": func, "a": args}
        after: dict = {}
        if listitems is not None:
            after["l"] = list(listitems)
        if dictitems is not None:
            pairs = list(dictitems)
            after["dk"] = [k for k, _ in pairs]
            after["dv"] = [v for _, v in pairs]
        if state is not None:
            if state_setter is not None:
                after["ss"] = state_setter
            after["s"] = state
        container[key] = tree = Tree({"t": "reduce"})
        self._push(obj, tree, before, after or {}, True, label)
        frame = self._stack[-1]
        if not after:
            frame.after = ()

    def _place_object(self, obj: Any, state: Any, container: Any, key: Any, label: Any) -> bool:
        """Lay out a "class plus state" object (see :meth:`_object_layout`);
        False if its state cannot be laid out so (nothing done)."""
        layout = self._object_layout(type(obj), state)
        if layout is None:
            return False
        attrs, children, state_dict = layout
        container[key] = tree = Tree(attrs)
        plain = self._plain_state(children)
        if plain is not None:  # no frame needed (hot path)
            tree.children = plain
            self.memo[id(obj)] = [obj, tree, None, None]
        else:
            self._push(obj, tree, None, children, False, label)
        if state_dict is not None:
            # The state dict has no node of its own, but it is an object
            # pickle memoises: ``__setstate__`` may keep it, and other
            # parts may refer to it.  Those become refs to "the state of
            # this object", and loading hands them the very dict it built.
            self.memo[id(state_dict)] = [state_dict, tree, None, None, "s"]
        return True

    def _plain_state(self, state: dict) -> dict | None:
        """The children of a state dict of leaves and plain containers, laid out
        without a frame; None if any value needs the general way.

        Plain containers cannot refer back to the object, so laying them out
        (and memoising them) together with it is exact.  A container met twice
        here takes the general way, which keeps the sharing.
        """
        if not self._fast:
            return dict(state) if _all_plain(state.values()) else None
        memo = self.memo
        out = {}
        made: dict | None = None
        for k, v in state.items():
            t = type(v)
            if t in _ATOMIC or ((t is str or t is bytes) and len(v) < MEMO_MIN_LEN):
                out[k] = v
                continue
            if (t is tuple or t is list) and id(v) not in memo and id(v) not in self.held:
                if t is tuple and self._tables:  # maybe a row of a table: found the general way
                    return None
                if not _exact_plain(v):
                    return None
                if made is None:
                    made = {}
                elif id(v) in made:
                    return None
                out[k] = v  # left as it is (see PLAIN_NODES)
                made[id(v)] = [v, None, out, k]
                continue
            return None
        if made:
            memo.update(made)
        return out

    def _object_layout(self, cls: type, state: Any) -> tuple[dict, dict, dict | None] | None:
        """ "Class plus state" objects: one child per attribute, so each can be browsed.

        Returns the node's attrs, its children and the state dict laid out as
        those children (None if there is none), or None when the state cannot
        be laid out so (then the generic reduce layout stores it as it is).
        """
        shared = self._class_attrs.get(cls)
        if shared is None:  # once per class and save: its import path is checked
            how, adapter = self._route(type(cls))
            if how != 1 or adapter.kind != "global":  # pickle saves the class otherwise
                return None
            name = global_name(cls)
            self.globals.add(name)
            shared = {"t": "obj", "c": name}
            if _is_dataclass(cls):
                shared["dc"] = 1
            self._class_attrs[cls] = shared
        if _state_keys_ok(state, self._good_keys):
            if id(state) in self.memo:  # already stored elsewhere: keep one dict
                return None
            return shared, state, state  # the attrs of every such node are one dict
        attrs = dict(shared)
        if state is None:
            attrs["st"] = "n"
            return attrs, {}, None
        if type(state) is tuple and len(state) == 2 and getattr(cls, "__setstate__", None) is None:
            # pickle's own (dict, slots) pair; a __setstate__ would get a custom
            # 2-tuple, whose items must keep their identity: store that as it is
            d, slots = state
            if (d is None or _state_keys_ok(d)) and _state_keys_ok(slots):
                if d is not None and (id(d) in self.memo or not set(d).isdisjoint(slots)):
                    return None
                attrs["st"] = "ns" if d is None else "t"
                attrs["sl"] = list(slots)
                return attrs, {**(d or {}), **slots}, d
        return None


def _newobj(obj: Any, name: str, args: tuple) -> Any:
    """The function of a reduce tuple whose function is named ``__newobj__`` or
    ``__newobj_ex__``: pickle never calls it, but writes NEWOBJ (NEWOBJ_EX),
    which loads as ``cls.__new__(cls, *args)`` (``**kwargs``): the copyreg
    functions of those names.  Checked as pickle checks them (ValueError).
    """
    if name == "__newobj_ex__":
        if len(args) != 3:
            raise ValueError(f"needs 3 arguments, not {len(args)}")
        if type(args[1]) is not tuple or type(args[2]) is not dict:
            raise ValueError("needs a tuple and a dict after the class")
        func = copyreg.__newobj_ex__
    else:
        if not args:
            raise ValueError("has no arguments (no class)")
        func = copyreg.__newobj__
    cls = args[0]
    if not isinstance(cls, type):
        raise ValueError("has a first argument that is not a class")
    own = getattr(obj, "__class__", type(obj))
    if cls is not own:
        raise ValueError(
            f"has the wrong class {cls.__qualname__} as first argument, not the "
            f"object's class {own.__qualname__}"
        )
    return func


def _exact_plain(values: Any) -> bool:
    """True if every value has no identity to keep and plain JSON carries it
    exactly: ASCII strings shorter than MEMO_MIN_LEN, 64-bit ints, finite
    floats, bools, None.  Only containers of such values are left in a tree
    as they are (PLAIN_NODES): the codec promises so (``plain_exact``), and
    the storage writes them without looking at each value again."""
    for item in values:
        it = type(item)
        if it is str:
            if len(item) >= MEMO_MIN_LEN or not item.isascii():
                return False
        elif it is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif it is float:
            if item - item != 0.0:
                return False
        elif item is not None and it is not bool:
            return False
    return True


def _all_plain(values: Any) -> bool:
    """True if every value is stored as it is, with no identity to keep."""
    for item in values:
        it = type(item)
        if it not in _ATOMIC and not ((it is str or it is bytes) and len(item) < MEMO_MIN_LEN):
            return False
    return True


def _is_dataclass(cls: type) -> bool:
    return hasattr(cls, "__dataclass_fields__")


def _default_set_reduce(obj: Any, func: Any, args: Any) -> bool:
    """True for the reduce of a set or frozenset subclass that kept the builtin
    one: ``(cls, (list_of_elements,), state)``, whose list may be reordered."""
    cls = type(obj)
    return (
        isinstance(obj, (set, frozenset))
        and func is cls
        and cls.__reduce__ in (set.__reduce__, frozenset.__reduce__)
        and cls.__reduce_ex__ in (set.__reduce_ex__, frozenset.__reduce_ex__)
        and len(args) == 1
        and type(args[0]) is list
        and len(args[0]) == len(obj)
    )
