"""A backend that implements only the developer contract, on plain dicts.

It stands for a third-party backend: no records, no plain containers in the
trees it is given (``_takes_plain_nodes`` stays False), the base class's
``_read_tree``.  Tests run the object model through it.
"""

from __future__ import annotations

from typing import Any

from tinystore.objects.codec import ObjectCodec
from tinystore.storage.base import GenericStorage, Tree


class _Node:
    def __init__(self, attrs: dict | None = None, group: bool = False):
        self.attrs: dict = dict(attrs or {})
        self.children: dict[str, Any] = {}
        self.group = group


class DictStorage(GenericStorage):
    def __init__(self, node: _Node | None = None, path: str = ""):
        self._n = node if node is not None else _Node(group=True)
        self._path = path
        self.codec = ObjectCodec()

    def _child(self, node: _Node, key: str) -> DictStorage:
        child = DictStorage(node, f"{self._path}/{key}" if self._path else key)
        child.codec = self.codec
        return child

    @property
    def path(self) -> str:
        return self._path

    @property
    def attrs(self) -> dict:
        return self._n.attrs

    @property
    def is_group(self) -> bool:
        return self._n.group

    def _get(self, key: str) -> Any:
        value = self._n.children[key]
        return self._child(value, key) if isinstance(value, _Node) else value

    def _set(self, key: str, value: Any) -> None:
        self._n.children[key] = self._build(value)

    def _build(self, value: Any) -> Any:
        if type(value) is not Tree:
            if type(value) in (tuple, list, dict, set):  # the contract: leaves or Trees only
                raise TypeError(f"a {type(value).__name__} reached _set: not a leaf or Tree")
            return value
        node = _Node(value.attrs)
        for k, v in value.items():
            node.children[k] = self._build(v)
        return node

    def _delete(self, key: str) -> None:
        del self._n.children[key]

    def _create_group(self, key: str) -> GenericStorage:
        node = self._n.children.setdefault(key, _Node(group=True))
        return self._child(node, key)

    def _list(self) -> list[tuple[str, bool]]:
        return [(k, isinstance(v, _Node) and v.group) for k, v in self._n.children.items()]
