"""Helpers for tests that craft hostile or damaged stores.

* :func:`read_record` / :func:`write_record` / :func:`write_external`: the raw
  "backdoor" of each backend (a record is the JSON document of one physical
  group, see :mod:`tinystore.storage.record`), to write what tinystore itself
  never would.
* :func:`run_isolated`: run a load in a forked child with a wall-clock timeout
  and a cap on its address space, so a load that hangs or tries to allocate
  without bound fails the test instead of the test run (or the machine).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import orjson

from tinystore.storage import memory as _memory

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

RECORD_JSON = "@record.json"
RECORD_H5 = "@record"


# -- the raw layout of each backend ---------------------------------------------------
def kind_of(location: str) -> str:
    if location.startswith("memory://"):
        return "memory"
    if location.endswith(".zarr"):
        return "zarr"
    return "hdf5" if location.endswith((".h5", ".hdf5", ".hdf")) else "json"


def _memory_groups(location: str) -> dict:
    return _memory._REGISTRY[location[len("memory://") :]].groups


def _h5name(gpath: tuple) -> str:
    return "/" + "/".join(gpath)


def _zarr_doc(location: str) -> dict:
    path = Path(location, "zarr.json")
    if not path.exists():
        return {"zarr_format": 3, "node_type": "group", "attributes": {"tinystore": {}}}
    return orjson.loads(path.read_bytes())


def _zarr_key(gpath: tuple, name: str = "") -> str:
    from tinystore.storage.zarrstore import _escape

    return "/".join(_escape(p) for p in (*gpath, name) if p)


def read_record(location: str, gpath: tuple = ()) -> bytes:
    kind = kind_of(location)
    if kind == "zarr":  # every record is in the root zarr.json
        records = _zarr_doc(location)["attributes"]["tinystore"]["records"]
        return orjson.dumps(records["/".join(gpath)])
    if kind == "memory":
        return _memory_groups(location)[tuple(gpath)]["record"]
    if kind == "json":
        return Path(location, *gpath, RECORD_JSON).read_bytes()
    with h5py.File(location, "r", locking=False) as f:
        return bytes(f[_h5name(gpath)][RECORD_H5][()])


def write_record(location: str, gpath: tuple, doc: Any) -> None:
    """Replace (or create) the record of physical group ``gpath`` with ``doc``.

    ``doc`` is a JSON-compatible object (encoded here) or raw ``bytes``.
    Missing physical groups are created.
    """
    data = doc if isinstance(doc, bytes) else orjson.dumps(doc)
    gpath = tuple(gpath)
    kind = kind_of(location)
    if kind == "zarr":
        doc = _zarr_doc(location)
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError:
            record = data.decode("utf-8", "replace")  # not JSON: kept as a string
        doc["attributes"]["tinystore"].setdefault("records", {})["/".join(gpath)] = record
        Path(location).mkdir(parents=True, exist_ok=True)
        Path(location, "zarr.json").write_bytes(orjson.dumps(doc))
    elif kind == "memory":
        groups = _memory_groups(location)
        groups.setdefault(gpath, {"record": None, "ext": {}})["record"] = data
    elif kind == "json":
        directory = Path(location, *gpath)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RECORD_JSON).write_bytes(data)
    else:
        with h5py.File(location, "a", locking=False) as f:
            group = f.require_group(_h5name(gpath))
            if RECORD_H5 in group:
                del group[RECORD_H5]
            group.create_dataset(RECORD_H5, data=np.bytes_(data))


def record_doc(nodes: list, version: Any = (1, 0)) -> dict:
    return {"tinystore": list(version), "nodes": nodes}


def write_external(
    location: str, gpath: tuple, name: str, value: Any, in_place: bool = False
) -> None:
    """Store a raw external leaf: an array (``.npy`` / dataset) or bytes (``.bin``).

    ``in_place`` (zarr): write the data into the existing array, which keeps
    its identity (a new array is told apart by its id before any checksum).
    """
    gpath = tuple(gpath)
    kind = kind_of(location)
    if kind == "zarr":
        import zarr

        data = value if isinstance(value, np.ndarray) else np.frombuffer(bytes(value), np.uint8)
        store = zarr.storage.LocalStore(location)
        if in_place:
            zarr.open_array(store, path=_zarr_key(gpath, name), mode="r+")[...] = data
            return
        zarr.create_array(store, name=_zarr_key(gpath, name), data=data, overwrite=True)
    elif kind == "memory":
        raw = value.tobytes() if isinstance(value, np.ndarray) else bytes(value)
        _memory_groups(location).setdefault(gpath, {"record": None, "ext": {}})["ext"][name] = raw
    elif kind == "json":
        directory = Path(location, *gpath)
        directory.mkdir(parents=True, exist_ok=True)
        if isinstance(value, np.ndarray):
            np.save(directory / f"{name}.npy", value, allow_pickle=False)
        else:
            (directory / f"{name}.bin").write_bytes(bytes(value))
    else:
        with h5py.File(location, "a", locking=False) as f:
            group = f.require_group(_h5name(gpath))
            if name in group:
                del group[name]
            if isinstance(value, np.ndarray):
                group.create_dataset(name, data=value)
            else:
                group.create_dataset(name, data=np.frombuffer(bytes(value), dtype=np.uint8))


def external_file_span(location: str, gpath: tuple, name: str) -> tuple[str, int, int]:
    """``(file, offset, size)``: where the stored bytes of an external leaf lie
    on disk (HDF5: a contiguous dataset; JSON: the data of the ``.npy`` file;
    zarr: its first chunk, compressed)."""
    kind = kind_of(location)
    if kind == "hdf5":
        with h5py.File(location, "r", locking=False) as f:
            ds = f[_h5name(tuple(gpath))][name]
            return location, ds.id.get_offset(), ds.id.get_storage_size()
    if kind == "json":
        path = Path(location, *gpath, f"{name}.npy")
        data = np.load(path, mmap_mode="r")
        size = path.stat().st_size
        return str(path), size - data.nbytes, data.nbytes
    chunks = sorted(Path(location, _zarr_key(tuple(gpath), name), "c").rglob("*"))
    first = next(p for p in chunks if p.is_file())
    return str(first), 0, first.stat().st_size


def flip_byte(path: str, offset: int, bit: int = 0x10) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)[0]
        f.seek(offset)
        f.write(bytes([byte ^ bit]))


def remove_store(location: str) -> None:
    kind = kind_of(location)
    if kind == "memory":
        _memory.MemoryStorage.drop(location)
    elif os.path.isdir(location):
        shutil.rmtree(location)
    elif os.path.exists(location):
        os.remove(location)


# -- running a load in isolation ---------------------------------------------------------
@dataclass
class Caught:
    """What a call raised (or returned), in a form a forked child can send back."""

    raised: bool
    value: Any = None
    type_name: str = ""
    mro: tuple = ()
    message: str = ""
    memory: bool = False  # a MemoryError was raised somewhere in the chain

    def isinstance(self, cls: type) -> bool:
        return f"{cls.__module__}.{cls.__qualname__}" in self.mro

    @property
    def tinystore_error(self) -> bool:
        return "tinystore.errors.TinystoreError" in self.mro

    def __str__(self) -> str:
        if not self.raised:
            return f"returned {self.value!r:.200}"
        return f"raised {self.type_name}: {self.message:.500}"


def sendable(value: Any) -> Any:
    """``value`` itself if it can be sent to the parent process, else its repr."""
    try:
        pickle.dumps(value)
    except Exception:  # noqa: BLE001
        return f"<unpicklable> {value!r:.300}"
    return value


def attempt(func: Callable[[], Any], summarize: Callable[[Any], Any] = sendable) -> Caught:
    """Call ``func``; describe what it returned (through ``summarize``) or raised."""
    try:
        value = func()
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        return describe(exc)
    return Caught(raised=False, value=summarize(value))


def describe(exc: BaseException) -> Caught:
    chain, seen, e = [], set(), exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    return Caught(
        raised=True,
        type_name=f"{type(exc).__module__}.{type(exc).__qualname__}",
        mro=tuple(f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__),
        message=str(exc),
        memory=any(isinstance(c, MemoryError) for c in chain),
    )


@dataclass
class Outcome:
    """How a child run ended: ``"done"`` (``result`` holds what it returned),
    ``"timeout"`` (killed) or ``"died"`` (crashed without an answer)."""

    status: str
    result: Any = None
    exitcode: int | None = None
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def __str__(self) -> str:
        if self.status == "done":
            return str(self.result)
        return f"{self.status} (exit code {self.exitcode})"


def peak_rss() -> int | None:
    """The peak resident memory of this process so far, in bytes (Linux; else None).

    A forked child starts from its current size, so the growth of this value
    across a call is what the call itself touched.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def measured(func: Callable[[], Any], summarize: Callable[[Any], Any] = sendable) -> tuple:
    """``(attempt(func), bytes of memory the call touched or None)``, for a child."""
    before = peak_rss()
    caught = attempt(func, summarize)
    after = peak_rss()
    return caught, (after - before if before is not None and after is not None else None)


def _address_space() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def _child(func: Callable[[], Any], conn, headroom: int) -> None:
    if resource is not None:
        size = _address_space()
        if size is not None:
            limit = size + headroom
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard == resource.RLIM_INFINITY or hard > limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        result = func()
    except BaseException as exc:  # noqa: BLE001
        result = describe(exc)
    try:
        conn.send(result)
    except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable result
        conn.send(f"<unsendable result: {exc}>")
    conn.close()


def fork_available() -> bool:
    return sys.platform != "win32" and "fork" in multiprocessing.get_all_start_methods()


def run_isolated(
    calls: dict[str, Callable[[], Any]], timeout: float = 20.0, headroom: int = 768 * 2**20
) -> dict[str, Outcome]:
    """Run each ``calls[name]()`` in its own forked child, all at once.

    Each child may grow its address space by ``headroom`` bytes only (so an
    unbounded allocation becomes a MemoryError, not an exhausted machine)
    and is killed after ``timeout`` seconds.  Forking keeps what the parent
    prepared (memory stores included) visible to the child.
    """
    import time

    ctx = multiprocessing.get_context("fork")
    running = {}
    start = time.monotonic()
    for name, func in calls.items():
        reader, writer = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(func, writer, headroom), daemon=True)
        proc.start()
        writer.close()
        running[name] = (proc, reader)
    results: dict[str, Outcome] = {}
    deadline = start + timeout
    pending = {reader: name for name, (proc, reader) in running.items()}
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for reader in multiprocessing.connection.wait(list(pending), timeout=left):
            name = pending.pop(reader)
            proc = running[name][0]
            try:
                result = reader.recv()
                status = "done"
            except EOFError:
                result, status = None, "died"
            proc.join(5)
            results[name] = Outcome(status, result, proc.exitcode, time.monotonic() - start)
    for name in pending.values():
        proc = running[name][0]
        proc.kill()
        proc.join(5)
        results[name] = Outcome("timeout", None, proc.exitcode, time.monotonic() - start)
    for _, reader in running.values():
        reader.close()
    return results


def run_one(func: Callable[[], Any], timeout: float = 20.0, headroom: int = 768 * 2**20) -> Outcome:
    return run_isolated({"call": func}, timeout, headroom)["call"]
