"""The layers import one way, and the object model uses only storage's public API.

Run alone with ``python -m pytest tests/test_layers.py`` (docs/design.rst).
"""

from __future__ import annotations

import ast
from pathlib import Path

import tinystore
from tinystore.storage.base import GenericStorage
from tinystore.storage.record import RecordStorage

PACKAGE = Path(tinystore.__file__).parent


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module ``path`` imports (absolute names; relative ones resolved)."""
    package = "tinystore." + ".".join(path.relative_to(PACKAGE).parent.parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules(folder)
        for name in sorted(imported(path))
        if name.startswith(forbidden)
    ]


def test_storage_imports_neither_objects_nor_the_facade():
    assert offenders("storage", ("tinystore.objects", "tinystore._api", "tinystore.cli")) == []


def test_objects_do_not_import_the_facade():
    assert offenders("objects", ("tinystore._api", "tinystore.cli")) == []


def _storage_private_names() -> set[str]:
    names = set()
    for cls in (GenericStorage, RecordStorage):
        names.update(n for n in dir(cls) if n.startswith("_") and not n.startswith("__"))
    return names | {"_store", "_gpath", "_inner", "_path", "_ts_path", "_ts_root"}


def _names_objects_define() -> set[str]:
    """Attributes the object model's own classes define (methods, ``self.x = ...``):
    a NodeView's ``_node`` or a Storable's ``_store`` are not storage's."""
    names = set()
    for path in modules("objects"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for item in ast.walk(node):
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.Attribute) and isinstance(item.ctx, ast.Store):
                        names.add(item.attr)
    return names


def private_calls_into_storage() -> list[str]:
    private = _storage_private_names() - _names_objects_define()
    found = []
    for path in modules("objects"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in private
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} .{node.attr}")
    return found


def test_objects_call_no_private_method_of_a_storage():
    assert private_calls_into_storage() == []


def test_the_scan_sees_a_violation():
    # the checks above would pass vacuously if the scans saw nothing
    assert "tinystore.storage.base" in imported(PACKAGE / "objects" / "codec.py")
    assert "_contract_getitem" in _storage_private_names()
    private = _storage_private_names() - _names_objects_define()
    assert {"_read_tree", "_root", "_lookup", "_peek", "_contract_getitem"} <= private
