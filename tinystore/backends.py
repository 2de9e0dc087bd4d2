"""The available backends, one attribute each (``tinystore.backends.<TAB>``).

Each backend offers ``open``, ``dump``, ``load`` and ``delete``::

    tinystore.backends.hdf5.dump(obj, "run.h5")
    obj = tinystore.backends.json.load("run.json")

Backends of installed plug-ins (entry-point group ``tinystore.backends``)
appear here too.
"""

from __future__ import annotations

from typing import Any

from tinystore.storage.registry import BackendSpec, backend_specs


class Backend:
    """One backend: ``open``, ``dump``, ``load`` and ``delete`` bound to it."""

    def __init__(self, spec: BackendSpec):
        self.spec = spec
        self.name = spec.name
        self.suffixes = spec.suffixes
        self.__doc__ = f"tinystore backend {spec.name!r}: {spec.description}"

    def open(self, filename, mode: str = "a", **kw: Any):
        """Open ``filename`` with this backend (see :func:`tinystore.open`)."""
        from tinystore._api import open as open_

        return open_(filename, mode, backend=self.spec, **kw)

    def dump(self, obj: Any, filename, **kw: Any) -> None:
        """Save ``obj`` to ``filename`` with this backend (see :func:`tinystore.save`)."""
        from tinystore._api import save

        save(obj, filename, backend=self.spec, **kw)

    def load(self, filename, **kw: Any) -> Any:
        """Load from ``filename`` with this backend (see :func:`tinystore.load`)."""
        from tinystore._api import load

        return load(filename, backend=self.spec, **kw)

    def delete(self, filename, **kw: Any) -> None:
        """Delete ``filename`` or a node of it (see :func:`tinystore.delete`)."""
        from tinystore._api import delete

        delete(filename, backend=self.spec, **kw)

    def __repr__(self) -> str:
        return f"<tinystore backend {self.name!r}: {self.spec.description}>"


def __getattr__(name: str) -> Backend:
    specs = backend_specs()
    if name in specs:
        return Backend(specs[name])
    raise AttributeError(f"no backend {name!r}; available: {', '.join(specs)}")


def __dir__() -> list[str]:
    return sorted(set(backend_specs()) | {"available", "Backend"})


def available() -> list[str]:
    """Names of all available backends."""
    return list(backend_specs())
