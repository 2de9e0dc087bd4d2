"""The ``tinystore`` command (also ``python -m tinystore``).

::

    tinystore ls FILE [PATH] [--json]           the children of a node, one per line
    tree FILE [PATH] [--depth N] [--json]       a text tree of kinds, types, shapes, versions
    show FILE PATH [--json]                     metadata, versions, shape/dtype and a preview
    convert SRC DST                             copy a store to another backend, exactly;
                                                an h5io / pyiron file or project folder
                                                becomes a tinystore store (with a report)
    verify FILE                                 read every node; report damage
    demo [--dir DIR]                            save, browse and load a realistic job
    --version

Nothing here imports the modules a stored object uses: browsing, converting
and verifying work on the stored nodes, never on rebuilt objects.  ``--json``
prints one JSON document for scripts.  ``convert`` and ``verify`` show a
progress bar (leaves and bytes) on a terminal only.  Exit codes: 0 success
(also when the reader of the output goes away: ``tinystore tree f.h5 | head``),
1 damage found or an operation failed, 2 bad usage / missing file or path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from tinystore.errors import NodeNotFoundError, TinystoreError
from tinystore.storage.copy import copy_store


def _open(filename: str, mode: str = "r"):
    import tinystore

    return tinystore.open(filename, mode)


def _json_value(value: Any) -> Any:
    """A JSON-able form of a stored leaf's preview (never an import)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _shown_keys(view) -> list[str]:
    from tinystore.objects.browse import shown_keys

    return shown_keys(view)


def _shown(view) -> list:
    """The children that ``tree`` lists: a DataFrame's columns by name, not its layout."""
    return [view[key] for key in _shown_keys(view)]


def _describe(view, depth: int | None = 0, max_children: int = 50) -> dict:
    """One node as a JSON object: what ``ls``/``tree``/``show`` print, for scripts."""
    out: dict[str, Any] = {
        "name": view.name,
        "path": view.path,
        "kind": view.kind,
        "type": view.type,
        "summary": view.summary(),
        "children": len(_shown_keys(view)),
    }
    if view.shape is not None:
        out.update(shape=list(view.shape), dtype=str(view.dtype), nbytes=view.nbytes)
    if view.metadata:
        out["metadata"] = view.metadata
    if view.versions:
        out["versions"] = view.versions
    if depth is None or depth > 0:
        below = None if depth is None else depth - 1
        children = _shown(view)
        out["nodes"] = [_describe(c, below, max_children) for c in children[:max_children]]
        if len(children) > max_children:
            out["more"] = len(children) - max_children
    return out


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _cmd_ls(args) -> int:
    with _open(args.file) as s:
        view = s.node(args.path or "")
        if args.json:
            _print_json([_describe(child) for child in _shown(view)])
            return 0
        for child in _shown(view):
            print(f"{child.name}\t{child.summary()}")
    return 0


def _cmd_tree(args) -> int:
    with _open(args.file) as s:
        if args.json:
            view = s.node(args.path or "")
            _print_json(_describe(view, args.depth, args.max_children))
            return 0
        print(s.tree(args.path or "", max_depth=args.depth, max_children=args.max_children))
    return 0


def _show_lines(details: dict) -> list[str]:
    """``show``'s text: one ``label: value`` line per fact of ``view.details()``."""
    lines = []
    for key in ("path", "kind", "type", "shape", "dtype", "nbytes", "length", "rows", "index"):
        if details.get(key) not in (None, ""):  # a group has no type
            value = details[key]
            value = tuple(value) if key == "shape" else value
            lines.append(f"{key + ':':<10}{value}")
    if "columns" in details:
        columns = ", ".join(f"{c['name']} {c['dtype']}" for c in details["columns"])
        lines.append(f"{'columns:':<10}{columns}")
    if details.get("children_count"):
        names = details.get("children", [])
        more = details["children_count"] - len(names)
        lines.append(
            f"{'children:':<10}{details['children_count']} ({', '.join(names)}"
            f"{f', ... {more} more' if more > 0 else ''})"
        )
    if details.get("metadata"):
        lines.append(f"{'metadata:':<10}{details['metadata']}")
    for module, info in sorted(details.get("versions", {}).items()):
        lines.append(f"{'version:':<10}{module} {info}")
    if details.get("size"):
        lines.append(f"{'size:':<10}{details['size']:,} bytes stored below")
    for key in ("value", "preview"):
        if key in details:
            text = str(details[key])
            # a scalar's preview is its value; an array's or a list's is a sample
            label = "value" if key == "value" or "shape" not in details else key
            lines.append(f"{label + ':':<10}{text if len(text) <= 400 else text[:397] + '...'}")
    return lines


def _cmd_show(args) -> int:
    with _open(args.file) as s:
        details = s.node(args.path).details()
        if args.json:
            _print_json(details)
            return 0
        print("\n".join(_show_lines(details)))
    return 0


def leaf_bytes(value: Any) -> tuple[int, int]:
    """``(leaves, bytes)`` in an encoded value: what a progress bar counts."""
    from tinystore.storage.base import Tree

    leaves = size = 0
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Tree):
            c = node.children
            stack.extend(c if type(c) is list else c.values())
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
        elif isinstance(node, dict):
            stack.extend(node.values())
        else:
            leaves += 1
            nbytes = getattr(node, "nbytes", None)
            if isinstance(nbytes, int):
                size += nbytes
            elif isinstance(node, (bytes, bytearray, str)):
                size += len(node)
            else:
                size += 8
    return leaves, size


class Progress:
    """Leaves and bytes done, as a ``tqdm`` bar on stderr when it is a terminal.

    Nothing at all is written when stderr is a file or a pipe (no ``\\r``
    lines in logs), or with ``quiet``.
    """

    def __init__(self, what: str, quiet: bool = False):
        self.leaves = 0
        self.bytes = 0
        self._bar = None
        if not quiet and sys.stderr.isatty():
            import shutil

            from tqdm import tqdm

            # a terminal that reports no size (0 x 0, as new pseudo-terminals
            # do) would get no bar at all from tqdm: fall back to 80 x 24
            size = shutil.get_terminal_size()
            self._bar = tqdm(
                desc=what,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
                ncols=size.columns or 80,
                nrows=size.lines or 24,
                mininterval=0.2,
            )

    def __call__(self, value: Any, path: str) -> None:
        leaves, size = leaf_bytes(value)
        self.leaves += leaves
        self.bytes += size
        if self._bar is not None:
            self._bar.update(size)
            self._bar.set_postfix_str(f"{self.leaves:,} leaves, {path[-40:]}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _is_legacy_source(src: str) -> bool:
    """An h5io / pyiron file, or a folder that is no store (a project folder)."""
    from tinystore.storage.registry import backend_specs, is_legacy_file

    if os.path.isdir(src):  # a JSON or zarr store is a folder too
        specs = backend_specs().values()
        return not any(spec.detect is not None and spec.detect(src) for spec in specs)
    return is_legacy_file(src)


def _cmd_convert_legacy(args) -> int:
    """``convert`` of an h5io / pyiron file or project folder (tinystore.legacy)."""
    from tinystore.legacy.convert import convert

    progress = Progress("convert", quiet=args.quiet)
    try:
        report = convert(
            args.src, args.dst, backend=args.backend, unsafe=args.unsafe, progress=progress
        )
    finally:
        progress.close()
    print(report.text())
    print(f"wrote {args.dst} ({progress.leaves} leaves, {progress.bytes:,} bytes)")
    return 0


def _verify_legacy(s) -> int:
    """``verify`` of an h5io / pyiron file: every value is loaded as plain data;
    data h5io lost at write time and values that cannot be read are damage."""
    import warnings

    info = s.info()
    for item in info["lost"]:
        print(f"LOST /{item['path']}: {item['type']} (h5io wrote no data for it)")
    for item in info["opaque"]:
        print(f"OPAQUE /{item['path']}: {item['type']} (pickled; not unpickled)")
    unreadable = 0
    stack = [s]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lost and opaque parts are listed above
        while stack:
            group = stack.pop()
            groups = set(group.list_groups())
            for key in group.list_nodes():
                is_group = key in groups
                full = f"{group.path}/{key}" if group.path else key
                try:
                    value = group[key]
                except (TinystoreError, OSError, ValueError, KeyError) as exc:
                    print(f"UNREADABLE /{full}: {exc}")
                    unreadable += 1
                    continue
                if is_group:
                    stack.append(value)
    print(
        f"{info['nodes']} nodes read ({info['leaf_bytes']:,} bytes), "
        f"{len(info['lost'])} lost at write time, {len(info['opaque'])} opaque, "
        f"{unreadable} unreadable"
    )
    return 1 if info["lost"] or unreadable else 0


def _count(n: int, one: str, many: str = "") -> str:
    """``1 node``, ``2 nodes``, ``15,300 leaves``."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _cmd_convert(args) -> int:
    import tinystore

    if _is_legacy_source(args.src):
        return _cmd_convert_legacy(args)

    progress = Progress("convert", quiet=args.quiet)
    try:
        with (
            tinystore.open(args.src, "r") as src,
            tinystore.open(args.dst, "w-", backend=args.backend) as dst,
        ):
            with dst.batch():
                n = copy_store(src, dst, progress)
    finally:
        progress.close()
    print(
        f"copied {_count(n, 'node')} ({_count(progress.leaves, 'leaf', 'leaves')}, "
        f"{progress.bytes:,} bytes) from {args.src} to {args.dst}"
    )
    return 0


def _cmd_compact(args) -> int:
    import tinystore

    done = tinystore.compact(args.file)
    for path in done["removed"]:
        print(f"removed /{path}: no record refers to it")
    print(f"{args.file}: {done['before']:,} bytes before, {done['after']:,} after")
    return 0


def _cmd_verify(args) -> int:
    damaged = 0
    checked = 0
    with _open(args.file) as s:
        if hasattr(s, "_load_root"):  # an h5io / pyiron file
            return _verify_legacy(s)
        items: list[tuple[Any, str]] = []
        if s.is_group:
            stack = [s]
            while stack:
                group = stack.pop()
                groups = set(group.list_groups())
                for key in group:
                    full = f"{group.path}/{key}" if group.path else key
                    if key in groups:
                        try:
                            stack.append(group[key])
                        except TinystoreError as exc:
                            print(f"DAMAGED /{full}: {exc}")
                            damaged += 1
                    else:
                        items.append((group, key))
        else:
            items = [(s, "")]
        progress = Progress("verify", quiet=args.quiet)
        try:
            for group, key in items:
                full = f"{group.path}/{key}" if group.path else key
                try:
                    progress(group.read_tree(key), full)
                    checked += 1
                except TinystoreError as exc:
                    print(f"DAMAGED /{full}: {exc}")
                    damaged += 1
        finally:
            progress.close()
        unchecked = getattr(s, "unchecked", [])
    for what in unchecked:
        print(f"no checksum: {what}")
    print(
        f"{_count(checked, 'node')} read ({_count(progress.leaves, 'leaf', 'leaves')}, "
        f"{progress.bytes:,} bytes), {damaged} damaged",
        end="",
    )
    print(f", {len(unchecked)} without a checksum (written before checksums)" if unchecked else "")
    return 1 if damaged else 0


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # no real descriptor (captured output)
        pass


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
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.set_defaults(run=_cmd_ls)
    p = sub.add_parser("tree", help="print a text tree")
    p.add_argument("file")
    p.add_argument("path", nargs="?")
    p.add_argument("--depth", type=int, default=None, help="levels to show")
    p.add_argument("--max-children", type=int, default=50, help="children shown per node")
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.set_defaults(run=_cmd_tree)
    p = sub.add_parser("show", help="metadata, versions and a preview of one node")
    p.add_argument("file")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="one JSON document, for scripts")
    p.set_defaults(run=_cmd_show)
    p = sub.add_parser("convert", help="copy a store to another backend, exactly")
    p.add_argument("src")
    p.add_argument("dst")
    p.add_argument("--backend", default=None, help="backend of DST (default: from its name)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--unsafe",
        action="store_true",
        help="h5io / pyiron sources: rebuild objects and unpickle (runs code from the files)",
    )
    p.set_defaults(run=_cmd_convert)
    p = sub.add_parser("verify", help="read every node and report damage")
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=_cmd_verify)
    p = sub.add_parser("compact", help="give back the space a store no longer uses")
    p.add_argument("file")
    p.set_defaults(run=_cmd_compact)
    p = sub.add_parser("demo", help="save, browse and load a realistic simulation job")
    p.add_argument("--dir", help="where to write the demo files (default: a temporary folder)")
    p.set_defaults(run=lambda a: __import__("tinystore.demo").demo.run(a.dir))
    if not (sys.argv[1:] if argv is None else argv):
        parser.print_help()  # `tinystore` alone: what it can do, not a usage error
        return 0
    args = parser.parse_args(argv)
    try:
        code = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        # the reader went away (`tinystore tree f.h5 | head`): not an error;
        # stdout goes to /dev/null so Python's own flush at exit stays quiet
        _silence_stdout()
        return 0
    except (FileNotFoundError, NodeNotFoundError) as exc:
        print(f"tinystore {args.command}: {exc}", file=sys.stderr)
        return 2
    except (TinystoreError, OSError) as exc:
        print(f"tinystore {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
