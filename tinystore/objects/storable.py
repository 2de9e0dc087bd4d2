"""``Storable``: domain classes that lay themselves out in a storage group.

Subclass :class:`Storable` and write ``_store``/``_restore``; the storage
they are given is a dict-like group (values are any storable objects, and
``create_group`` makes sub-groups)::

    class Relaxation(tinystore.Storable):
        _storage_version = 2            # bump when the layout changes

        def __init__(self, structure, steps):
            self.structure, self.steps = structure, steps

        def _store(self, storage):
            storage["structure"] = self.structure
            storage.create_group("input")["steps"] = self.steps

        @classmethod
        def _restore(cls, storage, version):
            steps = storage["input/steps"] if version >= 2 else storage["steps"]
            return cls(storage["structure"], steps)

Without overrides, ``_store`` writes each attribute of the instance (its
``__dict__``) and ``_restore`` sets them back without calling ``__init__``.
The version written is recorded in the file and handed back to
``_restore``, so a class can keep reading files its older versions wrote.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, ClassVar

from tinystore.errors import InvalidKeyError, ReadOnlyError, UnloadableError
from tinystore.objects.globals import global_name
from tinystore.objects.registry import Adapter, register_adapter
from tinystore.storage.base import GenericStorage

__all__ = ["Storable", "GroupStorage"]


class Storable:
    """Mixin for classes that write their own layout (see the module docstring)."""

    #: Version of this class's layout, recorded with every stored instance.
    _storage_version: ClassVar[int] = 1

    def _store(self, storage: GenericStorage) -> None:
        """Write this object into ``storage`` (default: one item per attribute)."""
        for key, value in vars(self).items():
            storage[key] = value

    @classmethod
    def _restore(cls, storage: GenericStorage, version: int) -> Any:
        """Build an instance from ``storage``, written by layout ``version``."""
        obj = cls.__new__(cls)
        for key in storage:
            setattr(obj, key, storage[key])
        return obj


class GroupStorage(GenericStorage):
    """The in-memory group a :class:`Storable` writes to and reads from.

    Values are kept as Python objects; tinystore encodes them (with the rest
    of the object being saved, so shared references are kept) after
    ``_store`` returns.
    """

    def __init__(self, data: dict | None = None, *, readonly: bool = False, path: str = ""):
        self._data: dict = {} if data is None else data
        self._attrs: dict = {}
        self._readonly = readonly
        self._path = path

    # the developer contract, on a dict of Python values (stored as they are:
    # the base class hands ``_set`` any value when there is no codec)
    supports = frozenset(["trees", "ordered", "node_meta", "paths"])

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def _set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        del self._data[key]

    def create_group(self, key: str) -> GenericStorage:
        group = GroupStorage(path=f"{self._path}/{key}" if self._path else key)
        self._data[key] = group
        return group

    @property
    def name(self) -> str:
        return self._path.rsplit("/", 1)[-1]

    def list_nodes(self) -> list[str]:
        return [k for k, v in self._data.items() if type(v) is not GroupStorage]

    def list_groups(self) -> list[str]:
        return [k for k, v in self._data.items() if type(v) is GroupStorage]

    def _list(self) -> list[tuple[str, bool]]:
        return [(k, type(v) is GroupStorage) for k, v in self._data.items()]

    @property
    def is_group(self) -> bool:
        return True

    def __setitem__(self, path: str, value: Any) -> None:
        if isinstance(value, GenericStorage):
            raise InvalidKeyError("use create_group() to make a group inside a Storable")
        super().__setitem__(path, value)

    @property
    def path(self) -> str:
        return self._path

    @property
    def attrs(self) -> MutableMapping:
        if self._readonly:
            return dict(self._attrs)
        return self._attrs

    @property
    def readonly(self) -> bool:
        return self._readonly

    def _check_writable(self) -> None:
        if self._readonly:
            raise ReadOnlyError("a Storable reads its stored layout read-only in _restore")

    def __repr__(self) -> str:
        return f"<GroupStorage {list(self._data)!r}>"


class GroupAdapter(Adapter):
    """Groups made with ``create_group`` inside a Storable's layout."""

    kind, types = "group", (GroupStorage,)

    def encode(self, obj: GroupStorage):
        attrs = {"ua": dict(obj._attrs)} if obj._attrs else {}
        return attrs, obj._data

    def decode(self, attrs, children, remember):
        values = yield children
        group = GroupStorage(values, readonly=True)
        group._attrs = dict(attrs.get("ua", {}))
        return group


class StorableAdapter(Adapter):
    """Instances of :class:`Storable` subclasses: class, layout version, layout."""

    kind, imports, immutable = "storable", True, True

    def accepts(self, cls):
        return issubclass(cls, Storable)

    def encode(self, obj: Storable):
        cls = type(obj)
        group = GroupStorage()
        obj._store(group)
        attrs: dict = {"c": global_name(cls), "v": cls._storage_version}
        if group._attrs:
            attrs["ua"] = dict(group._attrs)
        return attrs, group._data

    def decode(self, attrs, children, remember):
        from tinystore.objects.globals import import_global

        cls = import_global(attrs["c"])
        if not (isinstance(cls, type) and issubclass(cls, Storable)):
            raise UnloadableError(f"{attrs['c']} is not a Storable class")
        values = yield children
        group = GroupStorage(values, readonly=True)
        group._attrs = dict(attrs.get("ua", {}))
        return cls._restore(group, attrs.get("v", 1))


register_adapter(GroupAdapter())
register_adapter(StorableAdapter())
