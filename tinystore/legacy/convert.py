"""Convert h5io / pyiron_base files (or a pyiron project folder) to a tinystore store.

Each legacy node becomes what tinystore itself would have written for the
value, so that the new store browses and loads like any other:

* plain data (dicts, lists, arrays, scalars, strings, datetimes, sparse
  matrices, DataFrames) as tinystore stores those values;
* an h5io ``use_state`` object as an ``obj`` node of its class with its state
  as children (tinystore rebuilds it on load, or refuses under ``safe=True``);
* a pyiron object (DataContainer, job) as the plain mapping of its content:
  its class is in the report;
* an h5io ``class`` as a ``global`` node (the name, not imported now);
* a pickled part as a ``cloudpickle`` node (tinystore's opaque fallback:
  counted in ``info()["fallbacks"]``, refused by ``safe=True``);
* data h5io lost at write time as a :class:`tinystore.legacy.Lost` marker.

Nothing is imported or unpickled while converting unless ``unsafe=True``.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import h5py

from tinystore.legacy import reader
from tinystore.objects.encode import PLAIN_NODES
from tinystore.storage.base import Tree

__all__ = ["ConvertReport", "convert", "legacy_files"]

_RECORD = "tinystore.legacy.reader:Record"
_OPAQUE = "tinystore.legacy.reader:Opaque"
_GLOBAL = "tinystore.legacy.reader:GlobalRef"


@dataclass
class ConvertReport:
    """What a conversion did: files, and every lossy or opaque node."""

    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    lost: list[dict] = field(default_factory=list)
    opaque: list[dict] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"converted {len(self.files)} file(s)"]
        for item in self.lost:
            lines.append(
                f"LOST    {item['file']}:/{item['path']}  {item['type']} (h5io wrote no data)"
            )
        for item in self.opaque:
            lines.append(f"OPAQUE  {item['file']}:/{item['path']}  {item['type']} (kept pickled)")
        for item in self.objects:
            lines.append(
                f"RECORD  {item['file']}:/{item['path']}  {item['type']} ({item['layout']})"
            )
        for name in self.skipped:
            lines.append(f"SKIPPED {name} (not an h5io / pyiron file)")
        return "\n".join(lines)


def legacy_files(folder: str) -> list[tuple[str, str]]:
    """``(key path, file)`` for every ``.h5`` file below ``folder`` (a pyiron
    project: one file per job; sub-folders are sub-projects), sorted."""
    out = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith((".h5", ".hdf5", ".hdf")):
                rel = os.path.relpath(os.path.join(top, name), folder)
                out.append((os.path.splitext(rel)[0].replace(os.sep, "/"), os.path.join(top, name)))
    return out


def convert(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    backend: Any = None,
    unsafe: bool = False,
    progress: Callable[[Any, str], None] | None = None,
) -> ConvertReport:
    """Write the legacy file (or project folder) ``src`` as a new tinystore store ``dst``.

    A file becomes the store's root object (what ``tinystore.load(src)``
    returns); a folder becomes a store with one entry per job file, named by
    the file's path without its suffix.  ``unsafe=True`` rebuilds objects and
    unpickles pickled parts first (runs code from the files).
    ``progress(tree, key)`` is called after each file.
    """
    import tinystore

    src = os.fspath(src)
    report = ConvertReport()
    codec_options = {"cloudpickle_fallback": True}
    with tinystore.open(dst, "w-", backend=backend, **{}) as store:
        from tinystore.objects.codec import ObjectCodec

        codec = ObjectCodec(**codec_options)
        if os.path.isdir(src):
            for key, path in legacy_files(src):
                if not reader.is_legacy(path):
                    report.skipped.append(path)
                    continue
                tree = _file_tree(path, codec, unsafe, report)
                store[key] = tree
                if progress is not None:
                    progress(tree, key)
        else:
            tree = _file_tree(src, codec, unsafe, report)
            store.replace_root(tree)
            if progress is not None:
                progress(tree, "")
    return report


def _file_tree(path: str, codec: Any, unsafe: bool, report: ConvertReport) -> Tree:
    policy = reader.Policy.from_options(False if unsafe else True)
    policy.records = True
    with h5py.File(path, "r") as f:
        _note(f, path, report, unsafe)
        top = list(f.keys())
        node = f[top[0]] if len(top) == 1 else f
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", reader.OpaqueDataWarning)
            warnings.simplefilter("ignore", reader.LostDataWarning)
            value = reader.load(node, policy)
    report.files.append(path)
    tree = codec.encode(value)
    if type(tree) is not Tree:
        tree = Tree({"t": "leaf"}, [tree])
    tree = _rewrite(tree)
    versions = tree.attrs.get("versions")
    if isinstance(versions, dict):  # the markers' module is no dependency of the data
        tree.attrs = dict(tree.attrs)
        tree.attrs["versions"] = {
            k: v for k, v in versions.items() if not k.startswith("tinystore")
        }
        if not tree.attrs["versions"]:
            del tree.attrs["versions"]
    return tree


def _note(f: h5py.File, path: str, report: ConvertReport, unsafe: bool) -> None:
    """Add the lost, opaque and object nodes of file ``f`` to ``report``."""

    def visit(name: str, obj: Any) -> None:
        info = reader.classify(obj)
        entry = {"file": path, "path": name, "type": info.type}
        if info.lost:
            report.lost.append(entry)
        elif info.opaque and not unsafe:
            report.opaque.append({**entry, "pickle": info.opaque})
        elif info.kind in ("object", "job"):
            report.objects.append({**entry, "layout": info.meta.get("layout", "")})

    f.visititems(visit)


def _rewrite(root: Tree) -> Tree:
    """Turn the encoded markers into the nodes tinystore writes for them."""
    stack = [root]
    while stack:
        node = stack.pop()
        c = node.children
        items = list(enumerate(c)) if type(c) is list else list(c.items())
        for key, child in items:
            if type(child) is not Tree:
                continue
            new = _replacement(child)
            if new is not None:
                c[key] = child = new
            stack.append(child)
    return _replacement(root) or root


def _replacement(node: Tree) -> Tree | None:
    attrs = node.attrs
    if attrs.get("t") != "obj":
        return None
    cls = attrs.get("c")
    keep = {k: attrs[k] for k in ("id",) if k in attrs}
    fields = node.children if type(node.children) is dict else {}
    if cls == _OPAQUE and fields.get("kind") != "pickled-columns":
        # one pickled value (base64 pickles were decoded by the reader); pickled
        # pandas columns stay Opaque markers: the pickle holds a whole block
        return Tree({"t": "cloudpickle", **keep}, [fields.get("data")])
    if cls == _GLOBAL:
        name = fields.get("name", "")
        return Tree({"t": "global", "g": reader._dotted_to_global(name), **keep}, {})
    if cls == _RECORD:
        state = _as_tree(fields.get("state"))
        if fields.get("layout") == "h5io use_state" and type(state.children) is dict:
            cls_name = reader._dotted_to_global(fields.get("type", ""))
            return Tree({"t": "obj", "c": cls_name, **keep}, state.children)
        return state
    return None


def _as_tree(value: Any) -> Tree:
    """An encoded value as a Tree (the codec leaves small containers as they are)."""
    if type(value) is Tree:
        return value
    if type(value) in PLAIN_NODES:
        return Tree(
            dict(PLAIN_NODES[type(value)]), dict(value) if type(value) is dict else list(value)
        )
    return Tree({"t": "leaf"}, [value])
