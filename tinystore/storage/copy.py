"""Copying a store node by node, as stored (``tinystore convert``, ``compact``)."""

from __future__ import annotations


def copy_store(src, dst, progress=None) -> int:
    """Copy every node of ``src`` into ``dst`` as stored (nothing is rebuilt);
    ``progress(value, path)`` is called with each value copied."""
    count = 0
    if not src.is_group:
        tree = src.read_tree()
        dst.replace_root(tree)
        if progress is not None:
            progress(tree, "")
        return 1
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
                value = source.read_tree(key)
                target[key] = value  # a Tree is stored as it is
                if progress is not None:
                    progress(value, source.path + "/" + key if source.path else key)
            count += 1
    return count
