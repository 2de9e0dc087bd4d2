"""Copying a store node by node, as stored (``tinystore convert``, ``compact``).

The copy streams: each node's structure is read without its big leaves
(arrays and byte strings stored outside their records), written with
``None`` in their places, and then each big leaf is read and written on its
own, so memory holds one big leaf at a time, not the node or the file.
A ``table`` node (a list stored column by column) is the exception: its
columns cannot be written one by one (an update inside a table is refused),
so a table with columns outside its record is read and written whole.
"""

from __future__ import annotations

from typing import Any, Callable

from tinystore._paths import join_path
from tinystore.storage.base import LeafInfo, Tree


def copy_store(src, dst, progress: Callable[[Any, str], None] | None = None) -> int:
    """Copy every node of ``src`` into ``dst`` as stored (nothing is rebuilt);
    ``progress(value, path)`` is called with each value copied (a node
    without its big leaves, then each big leaf)."""
    if not src.is_group:
        _copy_node(src, dst, "", progress)
        return 1
    count = 0
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    stack = [(src, dst)]
    while stack:
        source, target = stack.pop()
        groups = set(source.list_groups())
        for key in source:
            if key in groups:
                child = source[key]
                group = target.create_group(key)
                for name, value in child.attrs.items():
                    group.attrs[name] = value
                stack.append((child, group))
            else:
                _copy_node(source, target, key, progress)
            count += 1
    return count


def _copy_node(source, target, key: str, progress) -> None:
    """Copy the node ``key`` of group ``source`` (the root object if ``key``
    is empty): its structure first, then its big leaves one by one."""
    path = join_path(source.path, key) if key else source.path
    lazy = source.read_tree(key, lazy=True) if key else source.read_tree(lazy=True)
    big: list[str] = []
    tables: list = []

    def read(sub: str) -> Any:
        tables.append((source.read_tree(join_path(key, sub) if key else sub), sub))
        return tables[-1][0]

    shell = _without_big_leaves(lazy, "", big, read)
    if shell is None:  # keys a path cannot name: the node is copied whole
        shell, big = (source.read_tree(key) if key else source.read_tree()), []
        lazy = shell
    if key:
        target[key] = shell
    else:
        target.replace_root(shell)
    if progress is not None:
        progress(_shown(lazy), path)
        for value, sub in tables:  # (not in _shown)
            progress(value, join_path(path, sub) if path else sub)
    tables.clear()
    for sub in big:
        inner = join_path(key, sub) if key else sub
        value = source.read_tree(inner)
        target[inner] = value
        if progress is not None:
            progress(value, join_path(path, sub) if path else sub)
        del value


def _shown(node: Any) -> Any:
    """The lazy ``node`` without its unread leaves (what progress counts)."""
    if not isinstance(node, Tree):
        return node
    if node.attrs.get("t") == "table" and _has_unread(node):
        return Tree(node.attrs, {})  # read whole: shown on its own
    if type(node.children) is list:
        return Tree(node.attrs, [_shown(c) for c in node.children if type(c) is not LeafInfo])
    kept = {k: _shown(c) for k, c in node.children.items() if type(c) is not LeafInfo}
    return Tree(node.attrs, kept)


def _without_big_leaves(node: Any, where: str, big: list[str], read: Callable) -> Any:
    """A copy of the lazy ``node`` with ``None`` for each unread leaf (their
    paths go to ``big``); None if a key on the way is not a path part.  A
    table with unread columns is read whole (``read(where)``: see above)."""
    if type(node) is LeafInfo:
        big.append(where)
        return None
    if not isinstance(node, Tree):
        return node
    if node.attrs.get("t") == "table" and _has_unread(node):
        return read(where) if where else None  # (None: the node is copied whole)
    pairs = list(node.items())
    children: Any = [] if type(node.children) is list else {}
    for k, child in pairs:
        if type(child) is LeafInfo or isinstance(child, Tree):
            if not k or "/" in k or k.startswith("@"):
                return None
        copied = _without_big_leaves(child, join_path(where, k) if where else k, big, read)
        if copied is None and child is not None and type(child) is not LeafInfo:
            return None
        if type(children) is list:
            children.append(copied)
        else:
            children[k] = copied
    return Tree(node.attrs, children)


def _has_unread(node: Any) -> bool:
    """True if the lazy ``node`` holds a leaf that was not read."""
    stack = [node]
    while stack:
        n = stack.pop()
        if type(n) is LeafInfo:
            return True
        if isinstance(n, Tree):
            c = n.children
            stack.extend(c if type(c) is list else c.values())
    return False
