"""save / load / delete / open: the object model wired onto the storage layer."""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterable

from tinystore._paths import split_path
from tinystore.errors import BackendError, NodeNotFoundError, NotAStoreError
from tinystore.objects.browse import ColumnView
from tinystore.objects.codec import ObjectCodec
from tinystore.storage.base import GenericStorage, Tree, no_gc
from tinystore.storage.locking import beside
from tinystore.storage.registry import backend_specs, choose_backend, resolve_location

__all__ = ["open", "save", "load", "delete", "history", "tag"]


def open(  # noqa: A001 - the natural name, like h5py.File / zarr.open
    filename: str | os.PathLike,
    mode: str = "a",
    *,
    backend: Any = None,
    cloudpickle_fallback: bool = False,
    reducers: dict | None = None,
    safe: bool | None = None,
    allow: Iterable[str] = (),
    version_check: Any = "warn",
    **options: Any,
) -> GenericStorage:
    """Open a storage as a dict-like group that stores any picklable object.

    ``mode``: ``"r"``, ``"r+"``, ``"a"`` (default), ``"w"``, ``"w-"``/``"x"``.
    ``backend``: a name from :mod:`tinystore.backends` (default: chosen from
    ``filename``: ``.h5``/``.hdf5``/``.hdf`` HDF5, ``.json`` or an existing
    tinystore directory JSON, ``memory://name`` memory).  Other keywords go
    to the backend (e.g. ``compression="gzip"`` for HDF5).  ``safe``:
    ``True`` imports only safe names plus ``allow`` and never unpickles; the
    default (``None``) is ``False`` for tinystore files and ``True`` for
    h5io / pyiron files (see :mod:`tinystore.legacy`).

    >>> import tinystore
    >>> with tinystore.open("memory://doc-open", mode="w") as s:
    ...     s["params"] = {"cutoff": 4.5, "kpoints": (3, 3, 3)}
    ...     s["params/kpoints"]
    (3, 3, 3)
    """
    codec = {
        "cloudpickle_fallback": cloudpickle_fallback,
        "reducers": reducers,
        "safe": safe,
        "allow": allow,
        "version_check": version_check,
    }
    return _open(filename, mode, backend, options, codec, check=True)


def _open(filename, mode, backend, options: dict, codec: dict, check: bool) -> GenericStorage:
    """``open``, with the codec's options in ``codec``; ``check=False``: a backend
    that can may check the store at its first operation instead of now (save
    and load then open a file once)."""
    filename = resolve_location(filename)
    spec = _choose(filename, backend, must_exist=mode in ("r", "r+"))
    if (
        mode == "a"
        and isinstance(filename, str)
        and os.path.isfile(filename)
        and not os.path.exists(beside(filename) + ".lock")
    ):
        # a file tinystore never wrote (its writers make the lock file first):
        # an h5io / pyiron file opens read-only, leaving no lock file beside it
        spec = _legacy_instead(filename, backend) or spec
    if not check and spec.deferred_check:
        options = {"check": False, **options}
    _check_versioned(spec, options)
    try:
        storage = spec.opener(filename, mode, **options)
    except NotAStoreError:
        legacy = _legacy_instead(filename, backend)
        if legacy is None:
            raise
        storage = legacy.opener(filename, mode, **options)
    except TypeError as exc:
        if "unexpected keyword" in str(exc):
            raise BackendError(f"backend {spec.name!r}: {exc}") from exc
        raise
    storage.codec = ObjectCodec(**codec)
    return storage


def _choose(location: Any, backend: Any, must_exist: bool):
    """The backend for ``location``; with ``must_exist``, a local name that
    exists nowhere and names no backend is a "no such file" error (a typo), not
    a question about backends.  Backends report their own missing stores."""
    missing = (
        must_exist
        and isinstance(location, str)
        and "://" not in location
        and not os.path.lexists(location)
    )
    try:
        spec = choose_backend(location, backend)
    except BackendError:
        if missing:  # a typo: the backend question would only mislead
            raise FileNotFoundError(f"no such file or directory: {location!r}") from None
        raise
    return spec


def _legacy_instead(location: Any, backend: Any):
    """The ``legacy`` backend, for an h5io / pyiron file no backend was named for."""
    from tinystore.storage.registry import backend_specs, is_legacy_file

    if backend is None and is_legacy_file(location):
        return backend_specs()["legacy"]
    return None


def _wrap(node: Any) -> Tree:
    return node if type(node) is Tree else Tree({"t": "leaf"}, [node])


def save(
    obj: Any,
    filename: str | os.PathLike,
    *,
    path: str | None = None,
    backend: Any = None,
    cloudpickle_fallback: bool = False,
    reducers: dict | None = None,
    **options: Any,
) -> None:
    """Store ``obj`` in ``filename`` (created if needed).

    Without ``path`` the object becomes the whole content of the file;
    with ``path`` (``"jobs/relax/output"``) only that node is written or
    replaced, so several objects can live in one file, and a part of a
    stored object can be updated in place.  ``path=""`` is not the root: it
    raises :class:`~tinystore.errors.InvalidKeyError`, as every empty key does.
    ``durable=True`` makes the save survive power loss, see ``tinystore.open``.
    """
    _check_path(path)
    local = isinstance(filename, (str, os.PathLike)) and "://" not in os.fspath(filename)
    existed = not local or os.path.lexists(filename)
    try:
        with _open(
            filename,
            "a",
            backend,
            options,
            {"cloudpickle_fallback": cloudpickle_fallback, "reducers": reducers},
            check=False,
        ) as storage:
            # one transaction; a backend that resolves conflicts between writers
            # by running it again on the other's commit (icechunk) may repeat it
            storage.atomic(_save_into, storage, obj, path)
    except OSError:
        if not existed:  # a full disk, say: the new store goes, as if never begun
            _remove_if_empty(filename, backend, options)
        raise


def _save_into(storage: GenericStorage, obj: Any, path: str | None) -> None:
    with storage.batch(), no_gc():
        if path is not None:
            storage[path] = obj
        else:
            node = storage.codec.encode(obj, storage, "")
            storage.replace_root(_wrap(node))


def _check_versioned(spec: Any, options: dict) -> None:
    """``version=`` and ``message=`` only for a backend that keeps versions."""
    asked = [k for k in ("version", "message") if k in options]
    if asked and not spec.versioned:
        keeps = [s.name for s in backend_specs().values() if s.versioned]
        raise BackendError(
            f"backend {spec.name!r} keeps no versions, so it takes no "
            f"{' or '.join(k + '=' for k in asked)}; versioned backends: {', '.join(keeps)}"
        )


def history(filename: str | os.PathLike, *, backend: Any = None, **options: Any) -> list:
    """The snapshots of a versioned store (``backend="icechunk"``), newest
    first: each with ``id``, ``time``, ``message``, ``changed`` (the paths the
    commit wrote or deleted), ``tags`` and ``parent``.  ``version=`` starts
    from that snapshot or tag instead of the newest.  Any id or tag can be
    read back with ``load(..., version=...)`` / ``open(..., "r", version=...)``.
    """
    filename = resolve_location(filename)
    spec = _choose(filename, backend, must_exist=True)
    _check_versioned(spec, {"version": None})
    with _open(filename, "r", spec, options, {}, check=True) as storage:
        return storage.history()


def tag(
    filename: str | os.PathLike,
    name: str,
    *,
    version: str | None = None,
    backend: Any = None,
    **options: Any,
) -> None:
    """Name the snapshot ``version`` (default: the newest) of a versioned store;
    ``load(..., version=name)`` then reads the store as it was."""
    filename = resolve_location(filename)
    spec = _choose(filename, backend, must_exist=True)
    _check_versioned(spec, {"version": None})
    with _open(filename, "r+", spec, options, {}, check=True) as storage:
        storage.tag(name, version)


def _remove_if_empty(filename: Any, backend: Any, options: dict) -> None:
    """Delete the store ``filename`` if it holds nothing (a save that created
    it failed); anything another process wrote into it meanwhile stays."""
    options = {k: v for k, v in options.items() if k == "lock_timeout"}
    with contextlib.suppress(Exception):
        with _open(filename, "r", backend, options, {}, check=True) as storage:
            empty = len(storage) == 0
        if empty:
            delete(filename, backend=backend, **options)


def load(
    filename: str | os.PathLike,
    *,
    path: str | None = None,
    backend: Any = None,
    safe: bool | None = None,
    allow: Iterable[str] = (),
    version_check: Any = "warn",
    slice: Any = None,  # noqa: A002 - the word users look for
    **options: Any,
) -> Any:
    """Load the object saved in ``filename`` (or only the part at ``path``;
    ``path=""`` raises :class:`~tinystore.errors.InvalidKeyError`).

    h5io / pyiron_base files load as plain data by default (see
    :mod:`tinystore.legacy`); ``safe=False`` rebuilds their objects and
    unpickles their pickled parts, ``allow=[...]`` rebuilds those classes.

    ``slice``: for an array at ``path``, only this part of it (numpy
    indexing, e.g. ``numpy.s_[0:10, ..., 3]``), reading only the bytes it
    needs (see ``GenericStorage.read_slice``).
    """
    _check_path(path)
    if slice is not None and path is None:
        raise TypeError("load(slice=...) needs the path of an array")
    codec = {"safe": safe, "allow": allow, "version_check": version_check}
    try:
        return _load(filename, path, backend, options, codec, slice)
    except NotAStoreError:
        legacy = _legacy_instead(resolve_location(filename), backend)
        if legacy is None:
            raise
        return _load(filename, path, legacy, options, codec, slice)


def _load(filename, path, backend, options: dict, codec: dict, part: Any = None) -> Any:
    if part is not None:
        with _open(filename, "r", backend, options, codec, check=False) as storage:
            return storage.read_slice(path, part)
    with (
        _open(
            filename,
            "r",
            backend,
            options,
            codec,
            check=False,
        ) as storage,
        storage.hold(),
        no_gc(),
    ):
        if path is not None:
            return _load_part(storage, path)
        return storage.codec.load_root(storage)


def _load_part(storage: GenericStorage, path: str) -> Any:
    """``storage[path]``; or a node reached by a name of its own that the stored
    layout does not use (a DataFrame column: ``"table/energy"``, a Series)."""
    try:
        return storage[path]
    except NodeNotFoundError:
        try:
            view = storage.node(path)
        except NodeNotFoundError:
            view = None
        if not isinstance(view, ColumnView):
            raise
        return view.to_object()


def delete(
    filename: str | os.PathLike,
    *,
    path: str | None = None,
    backend: Any = None,
    **options: Any,
) -> None:
    """Delete the node at ``path``, or the whole file/directory without ``path``.

    Refuses to delete files and directories that tinystore did not write.
    A whole store is deleted under its lock (``lock_timeout=`` waits for
    other processes as ``open`` does).  ``path=""`` raises
    :class:`~tinystore.errors.InvalidKeyError`: it never means the whole store.
    """
    _check_path(path)
    filename = resolve_location(filename)
    spec = _choose(filename, backend, must_exist=True)
    if path is not None:
        with open(filename, "r+", backend=spec, **options) as storage:
            del storage[path]
        return
    if spec.remover is None:
        raise BackendError(f"backend {spec.name!r} cannot delete whole stores")
    location = os.fspath(filename) if not isinstance(filename, str) else filename
    try:
        spec.remover(location, **options)
    except TypeError as exc:
        if options and "unexpected keyword" in str(exc):
            raise BackendError(f"backend {spec.name!r}: {exc}") from None
        raise


def _check_path(path: Any) -> None:
    """Refuse an invalid ``path=`` (``""`` included) before anything is opened."""
    if path is not None:
        split_path(path)
