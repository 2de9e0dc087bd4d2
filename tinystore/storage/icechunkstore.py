"""Icechunk backend: the zarr backend's layout, in a transactional repository.

`icechunk <https://icechunk.io>`_ keeps a Zarr v3 hierarchy as a series of
snapshots.  Writes go into a *session* and become visible all at once when
the session commits; a commit whose parent is no longer the tip of the
branch is refused (a conditional write on object storage), so two writers
never overwrite each other's commits.

This backend is the zarr backend (:mod:`tinystore.storage.zarrstore`: the
same records in the root ``zarr.json``, the same arrays at their logical
paths) reached through an icechunk session instead of a plain store:

* every outermost transaction (a ``save``, an assignment, a ``batch()``) is
  exactly one icechunk commit, with a message and the paths it changed in
  the commit's metadata (:meth:`IcechunkStorage.history`);
* a writer killed before its commit leaves the previous snapshot: nothing
  it wrote is referenced by any snapshot;
* a commit refused because another writer committed first raises
  :class:`~tinystore.errors.ConflictError`.  Every tinystore commit rewrites
  the root record, so icechunk's rebase (``ConflictDetector``) cannot merge
  two of them; :meth:`IcechunkStorage.atomic` (used by ``tinystore.save``,
  assignments, deletions and ``create_group``) instead runs the operation
  again on the new tip, with a random, growing back-off, until
  ``retry_timeout`` seconds have passed.  A ``batch()`` block cannot be run
  again by tinystore: its conflict reaches the caller;
* reading ``version=`` (a snapshot id or a tag) gives the store as it was.

Local folders are single-writer: icechunk's local storage has no atomic
conditional write, so two processes committing at once can lose a commit.
A writer that notices another one (a refused commit, or a branch tip that
is not its own commit) warns with
:class:`~tinystore.errors.ConcurrentWriterWarning`.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

import orjson

from tinystore.errors import (
    BackendError,
    ConcurrentWriterWarning,
    ConflictError,
    NotAStoreError,
    ReadOnlyError,
)
from tinystore.storage.base import GenericStorage
from tinystore.storage.record import RecordStorage
from tinystore.storage.record.format import _child_entry, check_name
from tinystore.storage.record.transactions import _Store
from tinystore.storage.zarrstore import MODES, _normal_url, _ZarrPhysical

#: URL schemes of the icechunk backend (object storage with conditional writes)
SCHEMES = ("s3", "s3a")
BRANCH = "main"
#: Seconds an operation is run again after conflicts before ConflictError is raised.
DEFAULT_RETRY_TIMEOUT = 120.0
#: Seconds to wait for a repository another writer is creating at the same moment
CREATE_TIMEOUT = 10.0
#: The key of tinystore's part of a commit's metadata
META = "tinystore"
_INSTALL = "the icechunk backend needs icechunk: pip install 'tinystore[icechunk]'"


def _icechunk():
    try:
        import icechunk
    except ImportError:
        raise BackendError(_INSTALL) from None
    return icechunk


def is_url(location: str) -> bool:
    head, sep, _ = location.partition("://")
    return bool(sep) and head.lower() in SCHEMES


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _s3_storage(url: str, options: dict) -> Any:
    """icechunk's S3 storage for ``s3://bucket/prefix``: ``options`` (obstore's
    names, with or without ``aws_``) first, then the AWS environment variables."""
    ic = _icechunk()
    _, _, rest = _normal_url(url).partition("://")
    bucket, _, prefix = rest.partition("/")
    opts = {k.lower().removeprefix("aws_"): v for k, v in options.items()}
    known = {"endpoint", "endpoint_url", "region", "access_key_id", "secret_access_key"}
    known |= {"session_token", "token", "allow_http", "skip_signature", "anonymous"}
    unknown = sorted(set(opts) - known)
    if unknown:
        raise BackendError(f"the icechunk backend does not know storage_options {unknown}")
    env = os.environ.get
    endpoint = opts.get("endpoint") or opts.get("endpoint_url")
    endpoint = endpoint or env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL")
    region = opts.get("region") or env("AWS_REGION") or env("AWS_DEFAULT_REGION")
    allow_http = _flag(opts.get("allow_http", env("AWS_ALLOW_HTTP", "")))
    allow_http = allow_http or bool(endpoint and endpoint.startswith("http://"))
    key = opts.get("access_key_id")
    secret = opts.get("secret_access_key")
    anonymous = _flag(opts.get("skip_signature", opts.get("anonymous", False)))
    creds: dict[str, Any] = {}
    if key and secret:
        creds = {"access_key_id": key, "secret_access_key": secret}
        token = opts.get("session_token") or opts.get("token")
        if token:
            creds["session_token"] = token
    elif anonymous:
        creds = {"anonymous": True}
    else:
        creds = {"from_env": True}
    return ic.s3_storage(
        bucket=bucket,
        prefix=prefix or None,
        region=region,
        endpoint_url=endpoint,
        allow_http=allow_http,
        force_path_style=bool(endpoint),  # S3-compatible servers (MinIO, Ceph, moto)
        **creds,
    )


def _storage(location: str, storage_options: dict | None) -> Any:
    """The icechunk storage of a local folder or an ``s3://`` URL."""
    if is_url(location):
        return _s3_storage(location, dict(storage_options or {}))
    head, sep, _ = location.partition("://")
    if sep and len(head) > 1:
        raise BackendError(
            f"the icechunk backend reads local folders and s3:// URLs, not {head}:// ({location!r})"
        )
    if storage_options:
        raise BackendError("storage_options are for object storage URLs, not local folders")
    ic = _icechunk()
    _quiet_local_warning(ic)
    return ic.local_filesystem_storage(os.path.abspath(location))


_QUIETED = False


def _quiet_local_warning(ic: Any) -> None:
    """icechunk logs (on stdout) that local storage is unsafe for concurrent
    commits, at every opening; tinystore warns itself, when it sees a second
    writer (``ConcurrentWriterWarning``).  A filter the user set is kept."""
    global _QUIETED
    if not _QUIETED and "ICECHUNK_LOG" not in os.environ:
        ic.set_logs_filter("warn,icechunk::storage::object_store=error")
    _QUIETED = True


#: The id of the snapshot icechunk writes first when it creates a repository
#: (before the branch that names it: a writer killed between the two leaves it alone)
FIRST_SNAPSHOT = "snapshots/1CECHNKREP0F1RSTCMT0"


def _open_repository(location: str, storage: Any, mode: str, options: dict | None) -> Any:
    """The repository at ``location``, created if ``mode`` allows."""
    ic = _icechunk()
    local = not is_url(location)
    if local and os.path.exists(location) and not os.path.isdir(location):
        raise NotAStoreError(f"{location} is a file, not an icechunk repository")
    exists = (not local or os.path.isdir(location)) and ic.Repository.exists(storage)
    if local and os.path.isdir(location) and not exists and os.listdir(location):
        if _leftover(location, options) is None:
            raise NotAStoreError(
                f"{location} holds files that are not an icechunk repository; refusing to use it"
            )
    if mode in ("r", "r+") and not exists:
        raise FileNotFoundError(f"no icechunk repository at {location!r}")
    if mode in ("w-", "x") and exists:
        raise FileExistsError(f"{location} already exists (mode {mode!r})")
    deadline = time.monotonic() + CREATE_TIMEOUT
    cleared = False
    while not exists:
        try:
            return ic.Repository.create(storage)
        except ic.IcechunkError:  # another writer is creating it at the same moment?
            if time.monotonic() > deadline:
                if cleared or not _clear_leftover(location, options):
                    raise
                cleared = True
        time.sleep(random.uniform(0.02, 0.2))
        exists = ic.Repository.exists(storage)
    return ic.Repository.open(storage)


#: Repositories opened in this process, the most recently used last (see _repository)
_REPOS: OrderedDict[tuple, Any] = OrderedDict()
_REPOS_PID = os.getpid()
_REPOS_LOCK = threading.Lock()
#: How many opened repositories a process keeps
CACHE_SIZE = 16


def _repository(location: str, options: dict | None, mode: str) -> tuple[Any, bool]:
    """The repository at ``location`` and whether it came from this process's
    cache.  Opening one costs several requests (its existence, its config);
    a handle is kept per location, storage options and ``AWS_*`` variables,
    and never shared with another process (a forked child or a dask worker
    opens its own).  Nothing about the branch is kept: every session starts
    from the tip the storage holds at that moment."""
    global _REPOS_PID
    key = _cache_key(location, options)
    with _REPOS_LOCK:
        if _REPOS_PID != os.getpid():  # a child forked from a process that cached some
            _REPOS.clear()
            _REPOS_PID = os.getpid()
        repo = _REPOS.get(key)
        if repo is not None and (is_url(location) or is_icechunk_store(location)):
            if mode in ("w-", "x"):
                raise FileExistsError(f"{location} already exists (mode {mode!r})")
            _REPOS.move_to_end(key)
            return repo, True
        _REPOS.pop(key, None)  # a local folder removed since
    repo = _open_repository(location, _storage(location, options), mode, options)
    with _REPOS_LOCK:
        _REPOS[key] = repo
        while len(_REPOS) > CACHE_SIZE:
            _REPOS.popitem(last=False)
    return repo, False


def _cache_key(location: str, options: dict | None) -> tuple:
    where = _normal_url(location) if is_url(location) else os.path.abspath(location)
    env = sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_"))
    return where, repr(sorted((options or {}).items())), tuple(env)


def _forget(location: str, options: dict | None) -> None:
    """Drop the cached repository of ``location`` (removed, or found stale)."""
    with _REPOS_LOCK:
        _REPOS.pop(_cache_key(location, options), None)


def _leftover(location: str, options: dict | None) -> list[str] | None:
    """The files of a creation that never finished (a writer killed between
    icechunk's first snapshot and its branch), or None if there are others."""
    if not is_url(location):
        found = [
            os.path.relpath(os.path.join(root, name), location).replace(os.sep, "/")
            for root, _, names in os.walk(location)
            for name in names
        ]
        return found if set(found) <= {FIRST_SNAPSHOT} else None
    store = _object_store(location, options)
    import obstore

    found = [item["path"] for batch in obstore.list(store) for item in batch]
    return found if set(found) <= {FIRST_SNAPSHOT} else None


def _clear_leftover(location: str, options: dict | None) -> bool:
    """Remove what a killed creation left (no other writer created the
    repository for ``CREATE_TIMEOUT`` seconds); False if there is anything else."""
    found = _leftover(location, options)
    if not found:
        return False
    if not is_url(location):
        os.remove(os.path.join(location, FIRST_SNAPSHOT))
    else:
        import obstore

        obstore.delete(_object_store(location, options), found)
    return True


def _object_store(location: str, options: dict | None) -> Any:
    """An obstore store of the prefix ``location`` (to list or delete its objects)."""
    try:
        from obstore.store import from_url
    except ImportError:
        raise BackendError(
            f"repairing or deleting the icechunk repository {location} needs obstore: "
            "pip install 'tinystore[s3]'"
        ) from None
    return from_url(_normal_url(location) + "/", **dict(options or {}))


class _IcechunkPhysical(_ZarrPhysical):
    """The zarr layout in the current session of an icechunk repository."""

    can_abort = True  # discarding the session's changes undoes them all

    def __init__(
        self,
        location: str,
        mode: str,
        storage_options: dict | None,
        version: str | None,
        message: str | None,
        store_wrapper: Any,
        check: bool,
    ):
        if version is not None and mode != "r":
            raise BackendError(f"version= reads a past snapshot: open with mode 'r', not {mode!r}")
        self.version = version
        self.message = message
        self.local = not is_url(location)
        self._session: Any = None
        self._wrapped: Any = None
        self._changed: set[str] = set()
        self._depth = 0  # sessions open (the first one starts an icechunk session)
        self.moved = False  # the session after the last commit is not on that commit
        super().__init__(location, mode, storage_options, store_wrapper=store_wrapper, check=check)

    # -- the seam: a session's store instead of a plain one ------------------------
    def _connect(self, location, mode, storage_options, store_wrapper) -> None:
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self._store_wrapper = store_wrapper
        self._storage_options = storage_options
        self._mode = mode
        self.repo, self._cached = _repository(location, storage_options, mode)

    @property
    def store(self) -> Any:
        if self._session is None:
            self._start()
        if self._wrapped is None:
            store = self._session.store
            self._wrapped = store if self._store_wrapper is None else self._store_wrapper(store)
        return self._wrapped

    def _start(self) -> None:
        """A new icechunk session: on the tip of the branch, or at ``version``."""
        self._wrapped = None
        self._parents.clear()  # the parent groups written: per session
        self._doc = None
        self._changed.clear()
        try:
            self._session = self._new_session()
        except _icechunk().IcechunkError:
            if not self._cached:
                raise
            # the cached repository was removed (or replaced) by another process: open it again
            _forget(self.location, self._storage_options)
            self.repo, self._cached = _repository(self.location, self._storage_options, self._mode)
            self._session = self._new_session()

    def _new_session(self) -> Any:
        if self.version is not None:
            return self._readonly_at(self.version)
        if self.readonly:
            return self.repo.readonly_session(branch=BRANCH)
        return self.repo.writable_session(BRANCH)

    def _readonly_at(self, version: str) -> Any:
        ic = _icechunk()
        if version in self.repo.list_tags():
            return self.repo.readonly_session(tag=version)
        try:
            return self.repo.readonly_session(snapshot_id=version)
        except (ic.IcechunkError, ValueError):
            raise BackendError(
                f"{self.location} has no snapshot or tag {version!r} (see tinystore.history)"
            ) from None

    def _open(self, mode: str) -> None:
        """Check (and create) the tinystore root; outside a session, commit it."""
        if self._depth > 0:  # in the first session (check=False): its commit has it
            super()._open(mode)
            return
        for _ in range(100):  # another writer creating it at the same moment: look again
            self._start()
            super()._open(mode)
            if self.readonly or not self._session.has_uncommitted_changes:
                return
            self._changed.add("")
            try:
                self.snapshot("tinystore: new store" if mode != "w" else "tinystore: emptied")
                return
            except ConflictError:
                if mode == "w":
                    raise
                time.sleep(random.uniform(0.01, 0.1))
        raise ConflictError(f"could not create the tinystore root of {self.location}")

    # -- sessions -------------------------------------------------------------
    def begin(self, write: bool) -> None:
        self._depth += 1
        if self._depth == 1:
            self._start()  # the tip now: what other writers committed is seen
        try:
            super().begin(write)
        except BaseException:
            self._depth -= 1
            raise

    def end(self) -> None:
        try:
            super().end()
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._session = self._wrapped = None  # uncommitted changes are dropped

    def abort(self) -> bool:
        if self._session is not None and not self._session.read_only:
            self._session.discard_changes()
        self._doc = None
        self._parents.clear()
        self._changed.clear()
        return True

    def reopen(self) -> None:
        self._session = None
        super().reopen()

    # -- commits ----------------------------------------------------------------
    def commit(self) -> None:
        """Write the records into the session (a flush), noting what changed."""
        if self._pending:
            old = self._current()["records"]
            new = {**old, **{p: orjson.loads(d) for p, d in self._pending.items()}}
            logical = _logical_paths(new)
            for path in self._pending:
                if path in logical:  # a record no longer reachable is not a change
                    found = _changed_keys(old.get(path), new[path])
                    self._changed.update(_join(logical[path], key) for key in found)
        super().commit()

    def snapshot(self, message: str | None = None) -> str | None:
        """Commit the session to the branch: one snapshot; its id (None: no change).

        Raises :class:`ConflictError` if another writer committed first; the
        session then starts again on the new tip (with nothing of this one).
        """
        session = self._session
        if session is None or session.read_only or not session.has_uncommitted_changes:
            return None
        ic = _icechunk()
        changed = _deepest(self._changed)
        text = message or self.message or _default_message(changed)
        parent = session.snapshot_id
        try:
            sid = session.commit(text, metadata={META: {"changed": changed}})
        except ic.ConflictError:
            self._conflict()
            raise ConflictError(
                f"another writer committed to {self.location} first; nothing of this "
                "operation was committed (run it again)"
            ) from None
        finally:
            self._start()
        # another writer committed between this commit and the new session: the
        # records cached by the caller are older than the session (see _SnapshotStore)
        self.moved = self._session.snapshot_id != sid
        if self.local:
            self._check_local_commit(sid, parent)
        return sid

    def _conflict(self) -> None:
        if self.local:
            _warn_local(self.location)

    def _check_local_commit(self, sid: str, parent: str) -> None:
        """On a local folder, the branch tip must be the commit just made, else
        another process wrote at the same time (and one commit may be lost)."""
        tip = self.repo.lookup_branch(BRANCH)
        if tip == sid:
            return
        ancestors = [info.id for info in self.repo.ancestry(branch=BRANCH)]
        if sid not in ancestors:  # ours was overwritten: not committed after all
            _warn_local(self.location)
            raise ConflictError(
                f"another process committed to the local folder {self.location} at the "
                "same moment and this commit was lost (run it again)"
            )
        if parent not in ancestors:  # pragma: no cover - icechunk keeps parents
            _warn_local(self.location)


def _warn_local(location: str) -> None:
    warnings.warn(
        f"{location}: another process writes this local icechunk folder at the same time. "
        "A local folder is single-writer (no conditional writes): a commit can be lost. "
        "Use one writer, or object storage with conditional writes (S3) for many",
        ConcurrentWriterWarning,
        stacklevel=5,
    )


def _children(record: Any) -> dict:
    nodes = record.get("nodes") if type(record) is dict else None
    first = nodes[0] if type(nodes) is list and nodes else None
    children = first.get("c") if type(first) is dict else None
    return children if type(children) is dict else {}


def _join(path: str, key: str) -> str:
    return f"{path}/{key}" if path and key else path or key


def _logical_paths(records: dict) -> dict[str, str]:
    """The logical path of each physical group reachable from the root record
    (a physical name may differ from its key: ``x~1`` for ``x``)."""
    out = {"": ""}
    stack = [""]
    while stack:
        path = stack.pop()
        for key, entry in _children(records.get(path)).items():
            if type(entry) is dict and type(entry.get("G")) is str:
                child = _join(path, entry["G"])
                if child not in out and child in records:
                    out[child] = _join(out[path], key)
                    stack.append(child)
    return out


def _changed_keys(old: Any, new: Any) -> list[str]:
    """The keys of a record's group that were added, removed or changed (a new
    group: its keys; a new stored object: none, its parent's entry names it)."""
    nodes = new.get("nodes") if type(new) is dict else None
    group = type(nodes) is list and nodes and type(nodes[0]) is dict and nodes[0].get("g")
    if old is None:
        return list(_children(new)) if group else []
    before, after = _children(old), _children(new)
    every = before.keys() | after.keys()
    keys = [k for k in every if before.get(k) != after.get(k)]
    if not group and (len(keys) == len(every) or before.keys() != after.keys()):
        return [""]  # a stored object replaced (not a part of it updated): its path
    return keys or ([""] if old != new else [])


def _deepest(paths: set[str]) -> list[str]:
    """``paths`` without those that are parents of others (``jobs`` of ``jobs/1``)."""
    return sorted(
        p for p in paths if not any(q != p and (not p or q.startswith(p + "/")) for q in paths)
    )


def _default_message(changed: list[str]) -> str:
    shown = ", ".join(p or "/" for p in changed[:5])
    more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
    return f"tinystore: {shown}{more}" if shown else "tinystore"


class _SnapshotStore(_Store):
    """The shared state of an open icechunk store: each outermost transaction,
    once its records are written, is one icechunk commit."""

    def _commit(self) -> None:
        super()._commit()
        physical = self.physical
        physical.moved = False
        try:
            physical.snapshot()
        except BaseException:
            self.records.clear()  # read again from the new tip
            raise
        if physical.moved:  # the next transaction of this session starts from a newer tip
            self.records.clear()


@dataclass(frozen=True)
class Snapshot:
    """One commit of an icechunk store (:func:`tinystore.history`)."""

    id: str
    time: datetime
    message: str
    #: the paths the commit wrote or deleted (``""``: the store itself)
    changed: tuple[str, ...]
    tags: tuple[str, ...] = ()
    parent: str | None = None


class IcechunkStorage(RecordStorage):
    """A storage in an icechunk repository (a local folder or ``s3://``).

    ``version``: a snapshot id or tag to read (mode ``"r"`` only).
    ``message``: the commit message of this handle's commits (default: the
    paths changed).  ``retry_timeout``: seconds :meth:`atomic` keeps running
    an operation again after conflicts with other writers.  The other
    arguments are those of :class:`~tinystore.storage.zarrstore.ZarrStorage`.
    """

    supports = RecordStorage.supports

    def __init__(
        self,
        location: str | os.PathLike,
        mode: str = "a",
        storage_options: dict | None = None,
        version: str | None = None,
        message: str | None = None,
        retry_timeout: float = DEFAULT_RETRY_TIMEOUT,
        store_wrapper: Any = None,
        check: bool = True,
    ):
        physical = _IcechunkPhysical(
            os.fspath(location), mode, storage_options, version, message, store_wrapper, check
        )
        self._init_root(physical)
        self._store = _SnapshotStore(physical)
        self.retry_timeout = retry_timeout

    @property
    def message(self) -> str | None:
        """The message of the next commits of this handle (None: the paths changed)."""
        return self._store.physical.message

    @message.setter
    def message(self, text: str | None) -> None:
        self._store.physical.message = text

    @property
    def version(self) -> str | None:
        """The snapshot id or tag this handle reads (None: the tip of the branch)."""
        return self._store.physical.version

    def atomic(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` as one transaction (one commit), run again on the new tip
        after a conflict with another writer, with a random, growing pause,
        until ``retry_timeout`` seconds have passed (then :class:`ConflictError`).

        ``fn`` must do nothing but read and write this store: it may run
        several times.  Inside a ``batch()`` it runs once, and the batch commits.
        """
        retry = getattr(self, "retry_timeout", DEFAULT_RETRY_TIMEOUT)
        if self._store.depth:
            return fn(*args)
        deadline = time.monotonic() + retry
        pause = 0.01
        while True:
            try:
                with self._store.transaction():
                    return fn(*args)
            except ConflictError:
                if time.monotonic() + pause > deadline:
                    raise
            time.sleep(random.uniform(pause / 2, pause))
            pause = min(pause * 2, 1.0)

    def __setitem__(self, path: str, value: Any) -> None:
        self.atomic(GenericStorage.__setitem__, self, path, value)

    def __delitem__(self, path: str) -> None:
        self.atomic(GenericStorage._api_delitem, self, path)

    __delitem__._ts_api = True  # type: ignore[attr-defined]

    def create_group(self, path: str) -> GenericStorage:
        return self.atomic(GenericStorage._api_create_group, self, path)

    create_group._ts_api = True  # type: ignore[attr-defined]

    def replace_root(self, tree: Any) -> None:
        self.atomic(GenericStorage.replace_root, self, tree)

    def zarr_array(self, path: str) -> Any:
        """The array stored at ``path`` as a read-only ``zarr.Array`` of this
        handle's snapshot, for ``dask.array.from_zarr`` (it pickles: dask
        workers read its chunks themselves).  ``TypeError`` for anything but
        an array stored as a Zarr array (small arrays live in the records)."""
        import zarr

        with self._hold_session():
            parent, key = self._lookup(path)
            try:
                entry = _child_entry(parent._node(), key)
            except KeyError:
                raise self._missing(path) from None
            if type(entry) is not dict or entry.get("k") != "A" or "X" not in entry:
                raise TypeError(f"{path!r} is not an array stored as a Zarr array")
            if entry.get("zr"):
                raise TypeError(f"{path!r} has a data type zarr lacks; it is stored as bytes")
            physical = self._store.physical
            sid = physical._session.snapshot_id
            key = physical._leaf_key(parent._gpath, check_name(entry["X"], path))
        store = physical.repo.readonly_session(snapshot_id=sid).store
        return zarr.open_array(store, path=key, mode="r", zarr_format=3)

    def history(self) -> list[Snapshot]:
        """The snapshots of the branch, newest first (see :func:`tinystore.history`)."""
        return repository_history(self._store.physical.repo, self.version)

    def tag(self, name: str, version: str | None = None) -> None:
        """Name a snapshot (default: the one this handle reads: its ``version``,
        or the newest); ``version=name`` then reads it.  Tags never move: a
        name already used, or a snapshot that does not exist, is refused."""
        physical = self._store.physical
        if physical.readonly and physical.version is None:
            raise ReadOnlyError(f"{self.location} is open read-only")
        repo = physical.repo
        tags = repo.list_tags()
        if name in tags:
            raise BackendError(f"{self.location} already has a tag {name!r} (tags never move)")
        version = version or physical.version
        if version is None:
            sid = repo.lookup_branch(BRANCH)
        elif version in tags:
            sid = repo.lookup_tag(version)
        else:
            sid = version
        try:
            repo.create_tag(name, snapshot_id=sid)
        except (_icechunk().IcechunkError, ValueError):
            raise BackendError(
                f"{self.location} has no snapshot or tag {version!r} (see tinystore.history)"
            ) from None


def repository_history(repo: Any, version: str | None = None) -> list[Snapshot]:
    """The snapshots of a repository, newest first, from ``version`` or the tip."""
    tags: dict[str, list[str]] = {}
    for name in sorted(repo.list_tags()):
        tags.setdefault(repo.lookup_tag(name), []).append(name)
    if version is None:
        ancestry = repo.ancestry(branch=BRANCH)
    elif version in tags.values() or version in repo.list_tags():
        ancestry = repo.ancestry(tag=version)
    else:
        ancestry = repo.ancestry(snapshot_id=version)
    out = []
    for info in ancestry:
        meta = info.metadata.get(META) if isinstance(info.metadata, dict) else None
        changed = meta.get("changed") if isinstance(meta, dict) else None
        out.append(
            Snapshot(
                id=info.id,
                time=info.written_at,
                message=info.message,
                changed=tuple(changed) if isinstance(changed, list) else (),
                tags=tuple(tags.get(info.id, ())),
                parent=info.parent_id,
            )
        )
    return out


def is_icechunk_store(location: str) -> bool:
    """True if the local folder ``location`` is an icechunk repository."""
    location = os.fspath(location)
    return os.path.isdir(os.path.join(location, "refs")) and os.path.isdir(
        os.path.join(location, "snapshots")
    )


def remove_icechunk_store(location: str, storage_options: dict | None = None) -> None:
    """Delete a whole tinystore icechunk repository (refusing anything else)."""
    location = os.fspath(location)
    with contextlib.closing(IcechunkStorage(location, "r", storage_options)) as storage:
        storage.list_nodes()  # a tinystore root, or NotAStoreError
    _forget(location, storage_options)
    if not is_url(location):
        shutil.rmtree(location)
        return
    store = _object_store(location, storage_options)
    import obstore

    for batch in obstore.list(store):
        obstore.delete(store, [item["path"] for item in batch])
