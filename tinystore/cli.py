"""The ``tinystore`` command (also ``python -m tinystore``).

::

    tinystore ls FILE [PATH]        the children of a node, one per line
    tree FILE [PATH] [--depth N]    a text tree of kinds, types, shapes, versions
    show FILE PATH                  metadata, versions, shape/dtype and a preview
    convert SRC DST                 copy a store to another backend, exactly
    verify FILE                     read every node; report damage
    demo [--dir DIR]                save, browse and load a realistic job

Nothing here imports the modules a stored object uses: browsing, converting
and verifying work on the stored nodes, never on rebuilt objects.  Exit codes:
0 success, 1 damage found or an operation failed, 2 bad usage / missing file
or path.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tinystore.errors import NodeNotFoundError, TinystoreError


def _open(filename: str, mode: str = "r"):
    import tinystore

    return tinystore.open(filename, mode)


def _cmd_ls(args) -> int:
    with _open(args.file) as s:
        view = s.node(args.path or "")
        for child in view.children:
            print(f"{child.name}\t{child.summary()}")
    return 0


def _cmd_tree(args) -> int:
    with _open(args.file) as s:
        print(s.tree(args.path or "", max_depth=args.depth, max_children=args.max_children))
    return 0


def _preview(view) -> str:
    node = view._node
    from tinystore.storage.base import LeafInfo, Tree

    if isinstance(node, (Tree, LeafInfo)):
        return ""
    text = repr(node)
    return text if len(text) <= 400 else text[:397] + "..."


def _cmd_show(args) -> int:
    with _open(args.file) as s:
        view = s.node(args.path)
        print(f"path:     /{view.path}")
        print(f"kind:     {view.kind}")
        print(f"type:     {view.type}")
        if view.shape is not None:
            print(f"shape:    {view.shape}\ndtype:    {view.dtype}\nnbytes:   {view.nbytes}")
        if len(view):
            print(
                f"children: {len(view)} ({', '.join(view.keys()[:20])}"
                f"{', ...' if len(view) > 20 else ''})"
            )
        meta = {k: v for k, v in view.attrs.items() if k not in ("versions",)}
        if meta:
            print(f"attrs:    {meta}")
        for module, info in sorted(view.versions.items()):
            print(f"version:  {module} {info}")
        preview = _preview(view)
        if preview:
            print(f"value:    {preview}")
    return 0


def copy_store(src, dst, progress=None) -> int:
    """Copy every node of ``src`` into ``dst`` as stored (nothing is rebuilt)."""
    count = 0
    if not src.is_group:
        dst._replace_root(src._read_tree())
        return 1
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    stack = [(src, dst)]
    while stack:
        source, target = stack.pop()
        for key, is_group in source._list():
            child = source._get(key)
            if is_group:
                group = target._create_group(key)
                for name, value in child.attrs.items():
                    group.attrs[name] = value
                stack.append((child, group))
            else:
                from tinystore.storage.base import GenericStorage

                value = child._read_tree() if isinstance(child, GenericStorage) else child
                target._set(key, value)
            count += 1
            if progress is not None:
                progress(count, source.path + "/" + key if source.path else key)
    return count


def _cmd_convert(args) -> int:
    import tinystore

    def progress(n: int, path: str) -> None:
        if not args.quiet:
            print(f"\r{n} nodes copied ({path[:60]})".ljust(80), end="", file=sys.stderr)

    with (
        tinystore.open(args.src, "r") as src,
        tinystore.open(args.dst, "w-", backend=args.backend) as dst,
    ):
        with dst.batch():
            n = copy_store(src, dst, progress)
    if not args.quiet:
        print(file=sys.stderr)
    print(f"copied {n} nodes from {args.src} to {args.dst}")
    return 0


def _cmd_verify(args) -> int:
    damaged = 0
    checked = 0
    with _open(args.file) as s:
        items: list[tuple[str, Any]]
        if s.is_group:
            items = []
            stack = [s]
            while stack:
                group = stack.pop()
                for key, is_group in group._list():
                    full = f"{group.path}/{key}" if group.path else key
                    try:
                        child = group._get(key)
                    except TinystoreError as exc:
                        print(f"DAMAGED /{full}: {exc}")
                        damaged += 1
                        continue
                    if is_group:
                        stack.append(child)
                    else:
                        items.append((full, child))
        else:
            items = [("", s)]
        from tinystore.storage.base import GenericStorage

        for full, child in items:
            try:
                if isinstance(child, GenericStorage):
                    child._read_tree()
                checked += 1
            except TinystoreError as exc:
                print(f"DAMAGED /{full}: {exc}")
                damaged += 1
    print(f"{checked} nodes read, {damaged} damaged")
    return 1 if damaged else 0


def main(argv: list[str] | None = None) -> int:
    from tinystore import __version__

    parser = argparse.ArgumentParser(
        prog="tinystore", description="Browse, convert and check tinystore files."
    )
    parser.add_argument("--version", action="version", version=f"tinystore {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ls", help="list the children of a node")
    p.add_argument("file")
    p.add_argument("path", nargs="?")
    p.set_defaults(run=_cmd_ls)
    p = sub.add_parser("tree", help="print a text tree")
    p.add_argument("file")
    p.add_argument("path", nargs="?")
    p.add_argument("--depth", type=int, default=None, help="levels to show")
    p.add_argument("--max-children", type=int, default=50, help="children shown per node")
    p.set_defaults(run=_cmd_tree)
    p = sub.add_parser("show", help="metadata, versions and a preview of one node")
    p.add_argument("file")
    p.add_argument("path")
    p.set_defaults(run=_cmd_show)
    p = sub.add_parser("convert", help="copy a store to another backend, exactly")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--backend", default=None, help="backend of DST (default: from its name)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=_cmd_convert)
    p = sub.add_parser("verify", help="read every node and report damage")
    p.add_argument("file")
    p.set_defaults(run=_cmd_verify)
    p = sub.add_parser("demo", help="save, browse and load a realistic simulation job")
    p.add_argument("--dir", help="where to write the demo files (default: a temporary folder)")
    p.set_defaults(run=lambda a: __import__("tinystore.demo").demo.run(a.dir))
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, NodeNotFoundError) as exc:
        print(f"tinystore {args.command}: {exc}", file=sys.stderr)
        return 2
    except (TinystoreError, OSError) as exc:
        print(f"tinystore {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
