"""Backend discovery: built-in backends, entry points, and choice by file name.

A *backend* is a small object with ``name``, ``storage_class`` and ``suffixes``;
:mod:`tinystore.backends` exposes each with ``open``, ``dump``, ``load`` and
``delete``.  Third-party packages add theirs through the entry-point group
``tinystore.backends``: the entry point names a :class:`BackendSpec` (or a
zero-argument callable returning one).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import urllib.parse
import urllib.request
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from tinystore.errors import BackendError, NodeNotFoundError, NotAStoreError

__all__ = ["BackendSpec", "backend_specs", "choose_backend", "resolve_location"]


@dataclass(frozen=True)
class BackendSpec:
    """What tinystore needs to know of a backend."""

    name: str
    #: ``opener(location, mode, **options) -> GenericStorage``
    opener: Callable[..., Any]
    #: File name suffixes (lower case, with the dot) that select this backend.
    suffixes: tuple[str, ...] = ()
    #: ``remover(location, **options)``: delete a whole store (refusing foreign
    #: files); built-in removers take ``lock_timeout=``.
    remover: Callable[[str], None] | None = None
    #: ``detect(location) -> bool``: is this an existing store of this backend?
    detect: Callable[[str], bool] | None = None
    description: str = ""
    #: URL schemes (``"memory"`` for ``memory://name``) whose locations this
    #: backend takes as they are; locations without a scheme are local paths.
    schemes: tuple[str, ...] = ()
    #: True if ``opener`` takes ``check=False``: checks that wait for the first
    #: operation, so that :func:`tinystore.load` / ``save`` open the store once.
    deferred_check: bool = False
    #: True if the backend keeps versions: ``version=`` and ``message=`` are its
    #: options, and :func:`tinystore.history` lists its snapshots.
    versioned: bool = False


def _open_hdf5(location, mode="a", **options):
    from tinystore.storage.hdf5 import HDF5Storage

    return HDF5Storage(location, mode=mode, **options)


def _is_hdf5_store(location) -> bool:
    import h5py

    from tinystore.storage.hdf5 import RECORD
    from tinystore.storage.locking import beside

    if os.path.isfile(beside(location) + ".journal"):
        return True  # a write was interrupted: the backend rolls it back on open
    if not os.path.isfile(location) or not h5py.is_hdf5(location):
        return False
    with h5py.File(location, "r") as f:
        return RECORD in f


def _remove_hdf5(location, lock_timeout: float | None = None) -> None:
    """Delete an HDF5 store under its lock; the lock file goes last, while held."""
    from tinystore.storage.hdf5 import NEW_SUFFIX
    from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock

    if not os.path.exists(location):
        raise FileNotFoundError(f"no such file: {location}")
    if not _is_hdf5_store(location):  # before a lock file is made beside a foreign file
        raise NotAStoreError(f"refusing to delete {location}: it is not a tinystore HDF5 file")
    timeout = DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout
    lock = StoreLock(os.fspath(location) + ".lock", location, timeout, readonly=False)
    lock.acquire()
    try:
        if not os.path.exists(location):
            raise FileNotFoundError(f"no such file: {location} (deleted meanwhile)")
        os.unlink(location)
        for leftover in (".journal", NEW_SUFFIX):  # (a new file's, if its writer was killed)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.fspath(location) + leftover)
        lock.unlink()
    finally:
        lock.release()


def _open_json(location, mode="a", **options):
    from tinystore.storage.jsondir import JSONDirStorage

    return JSONDirStorage(location, mode=mode, **options)


def _is_json_store(location) -> bool:
    from tinystore.storage.jsondir import is_store_dir

    return is_store_dir(location)


def _remove_json(location, lock_timeout: float | None = None) -> None:
    """Delete a JSON store under its lock (``@lock`` inside it goes last, while
    held, then the directory); links inside are removed, never followed."""
    from tinystore.storage.jsondir import LOCK, empty_but_lock
    from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock, unsafe_file

    if not os.path.exists(location):
        raise FileNotFoundError(f"no such file or directory: {location!r}")
    if os.path.islink(location):
        raise unsafe_file(location, "is a symbolic link (delete the link, or its target)")
    if not _is_json_store(location):
        raise NotAStoreError(f"refusing to delete {location}: it is not a tinystore directory")
    timeout = DEFAULT_TIMEOUT if lock_timeout is None else lock_timeout
    lock = StoreLock(os.path.join(location, LOCK), location, timeout, readonly=False)
    lock.acquire()
    try:
        empty_but_lock(location)
        lock.unlink()
        _remove_emptied(location, LOCK)
    finally:
        lock.release()


def _remove_emptied(location: str, lock_name: str) -> None:
    """Remove the emptied directory of a deleted store.  A reader that looked
    before the delete may make a new lock file in it meanwhile (it then
    finds no store): that file goes too.  Anything else in it was put there by
    a writer making a new store at this place since, which keeps it."""
    for _ in range(100):
        try:
            os.rmdir(location)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.ENOTEMPTY:
                raise
        if os.listdir(location) != [lock_name]:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(location, lock_name))


def _open_memory(location, mode="a", **options):
    from tinystore.storage.memory import MemoryStorage

    return MemoryStorage(str(location), mode=mode, **options)


def _remove_memory(location) -> None:
    from tinystore.storage.memory import MemoryStorage

    if not MemoryStorage.exists(str(location)):
        raise NodeNotFoundError(f"no memory store named {location!r}")
    MemoryStorage.drop(str(location))


def _open_zarr(location, mode="a", **options):
    from tinystore.storage.zarrstore import ZarrStorage, _is_url

    text = os.fspath(location)
    suffix = Path(text.rstrip("/")).suffix.lower()
    if _is_url(text) and suffix and suffix != ".zarr":
        others = [s.name for s in backend_specs().values() if suffix in s.suffixes]
        if others:
            raise BackendError(
                f"{text!r}: the {others[0]} backend works on local files only; object "
                f"storage takes zarr stores (name it ....zarr)"
            )
    return ZarrStorage(location, mode=mode, **options)


def _is_zarr_store(location) -> bool:
    from tinystore.storage.zarrstore import is_zarr_store

    return is_zarr_store(location)


def _remove_zarr(location, **options) -> None:
    from tinystore.storage.zarrstore import remove_zarr_store

    remove_zarr_store(location, **options)


def _open_icechunk(location, mode="a", **options):
    from tinystore.storage.icechunkstore import IcechunkStorage

    return IcechunkStorage(os.fspath(location), mode=mode, **options)


def _is_icechunk_store(location) -> bool:
    from tinystore.storage.icechunkstore import is_icechunk_store

    return is_icechunk_store(location)


def _remove_icechunk(location, **options) -> None:
    from tinystore.storage.icechunkstore import remove_icechunk_store

    remove_icechunk_store(location, **options)


def _is_memory(location) -> bool:
    return str(location).startswith("memory://")


def _open_legacy(location, mode="r", **options):
    from tinystore.legacy.storage import open_legacy

    return open_legacy(location, mode, **options)


def is_legacy_file(location) -> bool:
    """An h5io / pyiron_base HDF5 file (read by the ``legacy`` backend)."""
    from tinystore.legacy.reader import is_legacy

    return (
        isinstance(location, (str, os.PathLike))
        and os.path.isfile(location)
        and is_legacy(location)
    )


BUILTIN = (
    BackendSpec(
        "hdf5",
        _open_hdf5,
        (".h5", ".hdf5", ".hdf", ".he5"),
        _remove_hdf5,
        _is_hdf5_store,
        "one HDF5 file (h5py)",
        deferred_check=True,
    ),
    BackendSpec(
        "json",
        _open_json,
        (".json",),
        _remove_json,
        _is_json_store,
        "a directory of JSON records and .npy files",
        deferred_check=True,
    ),
    BackendSpec(
        "zarr",
        _open_zarr,
        (".zarr",),
        _remove_zarr,
        _is_zarr_store,
        "a Zarr v3 store: a local folder, or object storage (s3:// gs:// az://)",
        schemes=("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"),
        deferred_check=True,
    ),
    BackendSpec(
        "icechunk",
        _open_icechunk,
        (".icechunk",),
        _remove_icechunk,
        _is_icechunk_store,
        "a transactional icechunk repository (the zarr layout, one commit per "
        "save): a local folder, or s3://",
        schemes=("s3", "s3a"),
        deferred_check=True,
        versioned=True,
    ),
    BackendSpec(
        "memory",
        _open_memory,
        (),
        _remove_memory,
        _is_memory,
        "in-process memory, named stores (memory://name)",
        schemes=("memory",),
    ),
    BackendSpec(
        "legacy",
        _open_legacy,
        (),
        None,
        is_legacy_file,
        "h5io / pyiron_base HDF5 files, read-only (tinystore.legacy)",
    ),
)

_SPECS: dict[str, BackendSpec] | None = None


def backend_specs() -> dict[str, BackendSpec]:
    """All backends by name: the built-in ones, then those of entry points."""
    global _SPECS
    if _SPECS is None:
        specs = {spec.name: spec for spec in BUILTIN}
        for ep in entry_points(group="tinystore.backends"):
            try:
                spec = ep.load()
                if not isinstance(spec, BackendSpec):
                    spec = spec()
            except Exception:  # a broken plug-in must not break tinystore
                continue
            if isinstance(spec, BackendSpec) and spec.name not in specs:
                specs[spec.name] = spec
        _SPECS = specs
    return _SPECS


def register_backend(spec: BackendSpec) -> None:
    """Add a backend in this process (entry points do it for installed packages)."""
    backend_specs()[spec.name] = spec


#: ``scheme://`` at the start of a location (RFC 3986 scheme characters); a
#: Windows drive (``C:\\x``) has no ``//`` and stays a path
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _available() -> str:
    return ", ".join(
        f"{s.name} ({' '.join(s.suffixes or tuple(f'{x}://' for x in s.schemes))})"
        for s in backend_specs().values()
    )


def resolve_location(location: Any) -> Any:
    """The location a backend opens, from what a user typed.

    ``~`` is expanded; ``file://`` URLs (and ``file:/path``) become local
    paths; a URL whose scheme
    a backend declares (``memory://name``) is kept as it is.  Any other
    scheme (``s3://``, ``http://`` ...) raises :class:`BackendError` naming
    the available backends, before anything is created: ``s3://b/x.h5`` must
    never become a local folder called ``s3:``.
    """
    if not isinstance(location, (str, os.PathLike)):
        return location
    text = os.fspath(location)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    match = _URL_SCHEME.match(text)
    if match is None:
        if text[:5].lower() == "file:":  # RFC 8089's short form: file:/abs/path
            return _file_url_path(text)
        return os.path.expanduser(text)
    scheme = match.group(1).lower()
    if any(scheme in spec.schemes for spec in backend_specs().values()):
        return text
    if scheme == "file":
        return _file_url_path(text)
    raise BackendError(
        f"no tinystore backend reads {scheme}:// locations ({text!r}); available: {_available()}"
    )


def _file_url_path(text: str) -> str:
    """The local path of a ``file:`` URL (``file:///p``, ``file://localhost/p``,
    ``file:/p``); never a folder called ``file:``."""
    url = urllib.parse.urlsplit(text)
    if url.netloc not in ("", "localhost"):
        raise BackendError(
            f"{text!r} names a file on another host ({url.netloc!r}); "
            "only local file:// URLs are supported"
        )
    if url.query or url.fragment:
        raise BackendError(f"{text!r}: file:// URLs take no query or fragment")
    return urllib.request.url2pathname(url.path)


def _takes_scheme(spec: BackendSpec, text: Any) -> BackendSpec:
    """``spec``, if it takes ``text`` (a URL only if it declares its scheme)."""
    match = _URL_SCHEME.match(text) if isinstance(text, str) else None
    if match is not None and match.group(1).lower() not in spec.schemes:
        raise BackendError(
            f"the {spec.name} backend does not read {match.group(1).lower()}:// locations "
            f"({text!r}); available: {_available()}"
        )
    return spec


def choose_backend(location: Any, backend: Any = None) -> BackendSpec:
    """The backend for ``location``: named, or chosen from the name/contents."""
    specs = backend_specs()
    text = os.fspath(location) if isinstance(location, (str, os.PathLike)) else str(location)
    if isinstance(backend, BackendSpec):
        return _takes_scheme(backend, text)
    if backend is not None:
        name = getattr(backend, "name", backend)
        if name not in specs:
            raise BackendError(f"unknown backend {backend!r}; available: {', '.join(specs)}")
        return _takes_scheme(specs[name], text)
    suffix = Path(text.rstrip("/")).suffix.lower()
    match = _URL_SCHEME.match(text)
    if match is not None:
        scheme = match.group(1).lower()
        takers = [spec for spec in specs.values() if scheme in spec.schemes]
        for spec in takers:  # s3://b/run.icechunk: icechunk, s3://b/run.zarr: zarr
            if suffix and suffix in spec.suffixes:
                return spec
        if takers:
            return takers[0]
    # the suffix first: looking inside a file must wait for the backend's lock
    # (a writer may be half-way, or have been killed half-way, through it)
    for spec in specs.values():
        if suffix and suffix in spec.suffixes:
            return spec
    for spec in specs.values():
        if spec.detect is not None and spec.name != "memory":
            try:
                if spec.detect(text):
                    return spec
            except Exception:  # a damaged file is the backend's to report
                pass
    if not os.path.exists(text):
        raise BackendError(
            f"cannot tell the backend of {text!r}: it does not exist and its name has no "
            f"known suffix; use one or pass backend=...; available: {_available()}"
        )
    raise BackendError(
        f"cannot tell the backend of {text!r} from its name; use a known suffix or pass "
        f"backend=...; available: {_available()}"
    )
