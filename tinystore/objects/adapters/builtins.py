"""Containers, enums and globals (functions and classes by import path)."""

from __future__ import annotations

import enum
import types
from typing import Any

from tinystore.errors import UnloadableError
from tinystore.objects.encode import all_keys
from tinystore.objects.globals import global_name
from tinystore.objects.order import canonical_order
from tinystore.objects.registry import Adapter, register_adapter


class ListAdapter(Adapter):
    kind, types = "list", (list,)

    def encode(self, obj):
        return {}, obj

    def decode(self, attrs, children, remember):
        obj: list = []
        remember(obj)
        obj.extend((yield children))
        return obj


class TupleAdapter(Adapter):
    kind, types, immutable = "tuple", (tuple,), True

    def encode(self, obj):
        return {}, obj

    def decode(self, attrs, children, remember):
        return tuple((yield children))


class DictAdapter(Adapter):
    """Dicts: keys as child names when every key is a str that can be one.

    Otherwise (int, tuple, ... keys) the children are two lists, keys then
    values, and attrs ``{"kv": 1}`` says so.
    """

    kind, types = "dict", (dict,)
    keys_checked = True  # its children are a dict only if all_keys holds (see Encoder)

    def encode(self, obj):
        if all_keys(obj):
            return {}, obj
        return {"kv": 1}, [list(obj), list(obj.values())]

    def decode(self, attrs, children, remember):
        obj: dict = {}
        remember(obj)
        values = yield children
        if attrs.get("kv"):
            keys, values = values
            obj.update(zip(keys, values))
        else:
            obj.update(values)
        return obj


class SetAdapter(Adapter):
    kind, types = "set", (set,)

    def encode(self, obj):
        return {}, canonical_order(obj)

    def decode(self, attrs, children, remember):
        obj: set = set()
        remember(obj)
        obj.update((yield children))
        return obj


class FrozensetAdapter(Adapter):
    kind, types, immutable = "frozenset", (frozenset,), True

    def encode(self, obj):
        return {}, canonical_order(obj)

    def decode(self, attrs, children, remember):
        return frozenset((yield children))


class EnumAdapter(Adapter):
    """Enum members by class and member name; loading returns the member itself."""

    kind, imports = "enum", True

    def accepts(self, cls):
        return issubclass(cls, enum.Enum)

    def encode(self, obj):
        cls = type(obj)
        name = obj.name
        if not isinstance(name, str) or cls.__members__.get(name) is not obj:
            return {"c": global_name(cls), "v": _plain(obj.value)}, {}
        return {"c": global_name(cls), "n": name}, {}

    def decode(self, attrs, children, remember):
        from tinystore.objects.globals import import_global

        cls = import_global(attrs["c"])
        if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
            raise UnloadableError(f"{attrs['c']} is not an Enum class")
        if "n" in attrs:
            return cls[attrs["n"]]
        return cls(attrs["v"])
        yield  # pragma: no cover


def _plain(value: Any) -> Any:
    if type(value) in (int, str, bool, float) or value is None:
        return value
    from tinystore.errors import UnstorableError

    raise UnstorableError(f"enum value {value!r} of a pseudo-member is not a plain value")


class GlobalAdapter(Adapter):
    """Functions and classes, stored by ``module:qualname`` like pickle does."""

    kind = "global"
    types = (types.FunctionType, type)

    def accepts(self, cls):
        return issubclass(cls, type)

    def encode(self, obj):
        return {"g": global_name(obj)}, {}


for _adapter in (
    ListAdapter(),
    TupleAdapter(),
    DictAdapter(),
    SetAdapter(),
    FrozensetAdapter(),
    EnumAdapter(),
    GlobalAdapter(),
):
    register_adapter(_adapter)
