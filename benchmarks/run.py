"""Benchmarks of issue 6: tinystore's backends against pickle (and friends).

One command runs every workload on every engine in the same process and run::

    python benchmarks/run.py [--quick | --smoke] [--json out.json] [--only NAME[,NAME]]

Engines: tinystore's ``memory``, ``hdf5`` and ``json`` backends, ``pickle``
(the reference every ratio is computed against), and ``cloudpickle``,
``bagofholding`` and the ``zarr`` backend (``ts.zarr`` on a local folder,
``ts.zarr-s3`` on a local moto S3 server) when they are installed (skipped
otherwise).  ``benchmarks/zarr_bench.py`` compares the zarr backend with
plain zarr and counts requests.  Workloads are
built from a seeded RNG in :mod:`benchmarks.workloads`; see
``benchmarks/README.md`` for the list, the targets and a full run's table.

Times are medians over repeats (each repeat of a round trip writes a fresh
file, then loads it).  A single operation slower than the cap (``--cap``) is
interrupted and reported as ``>cap``; an engine that cannot do a workload at
all shows ``n/a``.  ``--only`` takes workload letters or names (``a``,
``dataframe``, ``partial-load``, ``peak-memory`` ...) and/or engine names
(``hdf5``, ``bagofholding`` ...); pickle always runs, as the reference.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import dataclasses
import datetime
import gc
import importlib
import itertools
import json
import logging
import math
import os
import pickle
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # `python benchmarks/run.py` without PYTHONPATH
    # appended, not prepended: an installed tinystore is the one measured; the
    # checkout serves only to find the `benchmarks` package (and tinystore in a
    # checkout where it is not installed)
    sys.path.append(ROOT)

import numpy as np  # noqa: E402 - after the sys.path setup
import pandas as pd  # noqa: E402 - after the sys.path setup

import tinystore  # noqa: E402 - after the sys.path setup
from benchmarks import assignments as A  # noqa: E402 - after the sys.path setup
from benchmarks import workloads as W  # noqa: E402 - after the sys.path setup
from benchmarks.files import path_size, remove_path  # noqa: E402 - after the sys.path setup

PROTOCOL = pickle.HIGHEST_PROTOCOL
MiB = 1024 * 1024
RAISED_RECURSION_LIMIT = 10_000


# ------------------------------------------------------------------ modes


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    sizes: W.Sizes
    cell_seconds: float  # keep repeating a measurement until this much time is spent ...
    min_repeats: int  # ... but at least this often ...
    max_repeats: int  # ... and at most this often
    cap_seconds: float  # one operation slower than this is interrupted ("timeout")
    slow_seconds: float  # a warm-up slower than this is the only sample
    memory_subprocess_per_engine: bool


MODES = {
    "full": Mode("full", W.FULL, 1.0, 5, 200, 15.0, 2.0, True),
    "quick": Mode(
        "quick",
        dataclasses.replace(W.FULL, big_arrays=20),  # 40 MiB instead of 200 MiB
        0.12,
        3,
        30,
        1.0,
        0.4,
        False,
    ),
    "smoke": Mode("smoke", W.SMOKE, 0.0, 0, 0, 10.0, 0.0, False),  # the warm-up is the sample
}


# ------------------------------------------------------------------ engines


class OpTimeout(Exception):
    """An operation ran longer than the cap and was interrupted."""


@contextlib.contextmanager
def time_cap(seconds: float):
    """Interrupt the block after ``seconds`` (SIGALRM; no cap where unavailable)."""
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable:
        yield
        return

    def alarm(signum, frame):
        raise OpTimeout(f"longer than {seconds:g} s")

    def unraisable(info):  # an alarm that landed in a __del__ or weakref callback
        if not isinstance(info.exc_value, OpTimeout):
            previous_hook(info)

    previous_hook = sys.unraisablehook
    sys.unraisablehook = unraisable
    previous = signal.signal(signal.SIGALRM, alarm)
    # keep firing: an exception raised inside a weakref callback or __del__ is
    # swallowed ("Exception ignored in ..."), so one alarm may not stop the block
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        sys.unraisablehook = previous_hook


class Engine:
    """How one engine saves, loads, loads a part, updates a part and browses."""

    name = ""
    label = ""
    suffix = ""
    # what the op-workloads time for this engine (shown in the table)
    partial_load_does = "load(path=...)"
    partial_update_does = "save(path=...)"
    browse_does = "open + tree() of all nodes"

    def __init__(self, tmpdir: str):
        self.tmpdir = tmpdir
        self._names = itertools.count()

    def location(self, stem: str) -> str:
        return os.path.join(self.tmpdir, f"{stem}-{self.name}-{next(self._names)}{self.suffix}")

    def remove(self, location: str) -> None:
        remove_path(location)

    def size(self, location: str) -> int | None:
        return path_size(location)

    def save(self, obj: Any, location: str) -> None:
        raise NotImplementedError

    def load(self, location: str) -> Any:
        raise NotImplementedError

    # None means: this engine cannot do it (reported as n/a)
    load_part: Callable[[str, str], Any] | None = None
    update_part: Callable[[Any, str, str], None] | None = None
    browse: Callable[[str], Any] | None = None


class TinystoreEngine(Engine):
    backend = ""

    def __init__(self, tmpdir: str):
        super().__init__(tmpdir)
        self.name = f"ts.{self.backend}"
        self.label = self.name

    def save(self, obj, location):
        tinystore.save(obj, location)

    def load(self, location):
        return tinystore.load(location)

    def load_part(self, location, path):
        return tinystore.load(location, path=path)

    def update_part(self, value, location, path):
        tinystore.save(value, location, path=path)

    def browse(self, location):
        with tinystore.open(location, "r") as storage:
            return storage.tree(max_children=sys.maxsize)


class TinystoreMemory(TinystoreEngine):
    backend = "memory"

    def location(self, stem):
        return f"memory://bench-{stem}-{os.getpid()}-{next(self._names)}"

    def remove(self, location):
        tinystore.MemoryStorage.drop(location)

    def size(self, location):
        # the bytes the store holds (records + array buffers): private, so guarded
        try:
            from tinystore.storage import memory

            groups = memory._REGISTRY[location[len("memory://") :]].groups
        except (ImportError, AttributeError, KeyError):
            return None
        total = 0
        stack: list = [groups]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(item.values())
            elif isinstance(item, (list, tuple)):
                stack.extend(item)
            elif isinstance(item, (bytes, bytearray, memoryview)):
                total += len(item)
            elif isinstance(item, np.ndarray):
                total += item.nbytes
        return total


class TinystoreHDF5(TinystoreEngine):
    backend = "hdf5"
    suffix = ".h5"


class TinystoreJSON(TinystoreEngine):
    backend = "json"
    suffix = ".json"


class TinystoreZarr(TinystoreEngine):
    """The zarr backend on a local folder."""

    backend = "zarr"
    suffix = ".zarr"
    module = "zarr"


_S3: dict = {}


def s3_server() -> str:
    """A local S3 server (moto) for this process, reached through the AWS
    environment variables; its bucket's name."""
    if not _S3:
        import atexit

        import boto3
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        atexit.register(server.stop)
        host, port = server.get_host_and_port()
        os.environ.update(
            AWS_ENDPOINT_URL=f"http://{host}:{port}",
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
            AWS_REGION="us-east-1",
            AWS_ALLOW_HTTP="true",
        )
        boto3.client("s3").create_bucket(Bucket="tinystore-bench")
        _S3["bucket"] = "tinystore-bench"
    return _S3["bucket"]


class TinystoreZarrS3(TinystoreEngine):
    """The zarr backend on a local S3 server (moto, in this process: requests
    cost a local HTTP round trip, far less than a real service's)."""

    backend = "zarr-s3"
    module = ("zarr", "obstore", "moto.server", "boto3")

    def __init__(self, tmpdir: str):
        super().__init__(tmpdir)
        self.bucket = s3_server()

    def location(self, stem):
        return f"s3://{self.bucket}/{stem}-{os.getpid()}-{next(self._names)}.zarr"

    def remove(self, location):
        with contextlib.suppress(Exception):
            tinystore.delete(location)

    def size(self, location):
        return None


class PickleEngine(Engine):
    name = label = "pickle"
    suffix = ".pkl"
    partial_load_does = "full load, then index"
    partial_update_does = "full load + modify + dump"
    browse_does = "full load (only way to look inside)"

    def dump(self, obj, fh):
        pickle.dump(obj, fh, protocol=PROTOCOL)

    def save(self, obj, location):
        with open(location, "wb") as fh:
            self.dump(obj, fh)

    def load(self, location):
        with open(location, "rb") as fh:
            return pickle.load(fh)

    def load_part(self, location, path):
        obj = self.load(location)
        for key in path.split("/"):
            obj = obj[key]
        return obj

    def update_part(self, value, location, path):
        obj = self.load(location)
        *parents, last = path.split("/")
        node = obj
        for key in parents:
            node = node[key]
        node[last] = value
        self.save(obj, location)

    def browse(self, location):
        return self.load(location)


class CloudpickleEngine(PickleEngine):
    name = label = "cloudpickle"
    module = "cloudpickle"

    def dump(self, obj, fh):
        import cloudpickle

        cloudpickle.dump(obj, fh, protocol=PROTOCOL)


class BagOfHoldingEngine(Engine):
    name = label = "bagofholding"
    module = "bagofholding"
    suffix = ".h5"
    partial_load_does = "H5Bag(f).load('object/'+path)"
    browse_does = "H5Bag(f).list_paths() (names only)"
    update_part = None  # no partial update in bagofholding

    def save(self, obj, location):
        from bagofholding import H5Bag

        H5Bag.save(obj, location)

    def load(self, location):
        from bagofholding import H5Bag

        return H5Bag(location).load()

    def load_part(self, location, path):
        from bagofholding import H5Bag

        return H5Bag(location).load(f"object/{path}")

    def browse(self, location):
        from bagofholding import H5Bag

        return H5Bag(location).list_paths()


ENGINE_CLASSES = [
    TinystoreMemory,
    TinystoreHDF5,
    TinystoreJSON,
    TinystoreZarr,
    TinystoreZarrS3,
    PickleEngine,
    CloudpickleEngine,
    BagOfHoldingEngine,
]
TINYSTORE = ("ts.memory", "ts.hdf5", "ts.json")


def installed(cls) -> bool:
    module = getattr(cls, "module", None)
    if module is None:
        return True
    try:
        for name in (module,) if isinstance(module, str) else module:
            importlib.import_module(name)
    except ImportError:
        return False
    return True


def engine_name_of(cls) -> str:
    return f"ts.{cls.backend}" if issubclass(cls, TinystoreEngine) else cls.name


# ------------------------------------------------------------------ workloads


@dataclasses.dataclass(frozen=True)
class Workload:
    letter: str
    name: str
    kind: str  # "roundtrip" or "op"
    title: str


WORKLOADS = [
    Workload("a", "small-dict", "roundtrip", "dict of 1,000 small mixed values"),
    Workload("b", "dataclass-arrays", "roundtrip", "dataclass holding 10 MiB of numpy arrays"),
    Workload("c", "objects", "roundtrip", "200 plain class instances, 5 attributes each"),
    Workload("d", "dataframe", "roundtrip", "100,000 x 6 mixed-dtype DataFrame"),
    Workload("e", "tuples", "roundtrip", "list of 10,000 small tuples"),
    Workload("f", "nested", "roundtrip", "1,000-level nested lists with a dict per level"),
    Workload("g", "partial-load", "op", "load meta/name out of a ~200 MiB file"),
    Workload("h", "partial-update", "op", "save meta/name into a ~200 MiB file"),
    Workload("i", "browse", "op", "browse a file of 10,000 nodes"),
]
PEAK_MEMORY = "peak-memory"  # measured on (b)
ASSIGNMENTS = "assignments"  # single assignments and reads in an open store
#: mode -> (assignments per run, runs)
ASSIGNMENT_SIZES = {"full": (1000, 3), "quick": (200, 2), "smoke": (5, 1)}

BUILDERS = {
    "small-dict": W.small_dict,
    "dataclass-arrays": W.array_dataclass,
    "objects": W.objects,
    "dataframe": W.dataframe,
    "tuples": W.tuples,
    "nested": W.nested,
}


def describe_sizes(sizes: W.Sizes) -> dict:
    return dataclasses.asdict(sizes)


# ------------------------------------------------------------------ equality


def same(a: Any, b: Any) -> bool:
    """Deep equality that understands numpy, pandas, dataclasses (iterative: deep nests)."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, np.ndarray):
            if x.dtype != y.dtype or x.shape != y.shape or not np.array_equal(x, y):
                return False
        elif isinstance(x, pd.DataFrame):
            if not (x.dtypes.equals(y.dtypes) and x.equals(y)):
                return False
        elif dataclasses.is_dataclass(x):
            stack.extend((getattr(x, f.name), getattr(y, f.name)) for f in dataclasses.fields(x))
        elif isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, (list, tuple)):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y))
        elif hasattr(x, "__dict__") and not callable(x):
            # attribute order is not part of an instance's value
            if sorted(vars(x)) != sorted(vars(y)):
                return False
            stack.extend((v, vars(y)[k]) for k, v in vars(x).items())
        elif not (x == y or (isinstance(x, float) and math.isnan(x) and math.isnan(y))):
            return False
    return True


# ------------------------------------------------------------------ measuring


@dataclasses.dataclass
class Cell:
    """One engine on one workload."""

    workload: str
    letter: str
    engine: str
    save_s: float | None = None
    load_s: float | None = None
    save_load_s: float | None = None
    op_s: float | None = None  # op workloads: the one timed operation
    op: str = ""
    size_bytes: int | None = None
    repeats: int = 0
    samples: list = dataclasses.field(default_factory=list)  # seconds: (save, load) or (op,)
    status: str = "ok"  # ok, n/a, timeout, error, wrong
    note: str = ""
    ratios: dict = dataclasses.field(default_factory=dict)


def is_recursion_failure(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, RecursionError) or "recursion" in str(exc).lower():
            return True
        exc = exc.__cause__ or exc.__context__
    return False


@contextlib.contextmanager
def recursion_limit(limit: int | None):
    old = sys.getrecursionlimit()
    if limit:
        sys.setrecursionlimit(limit)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


#: The clock of the samples: wall time, or with ``--cpu`` this process's CPU
#: time (user + system), which other jobs on a shared machine barely change.
CLOCK = {"now": time.perf_counter}


def timed(fn: Callable[[], Any], cap: float) -> tuple[float, Any]:
    now = CLOCK["now"]
    with time_cap(cap):
        start = now()
        result = fn()
        return now() - start, result


@dataclasses.dataclass
class Job:
    """The repeated measurement of one cell: ``sample()`` returns its timings."""

    cell: Cell
    sample: Callable[[], tuple[float, ...]] | None = None
    first: tuple[float, ...] | None = None  # the warm-up sample
    samples: list = dataclasses.field(default_factory=list)
    limit: int | None = None  # recursion limit the engine needs
    cleanup: Callable[[], None] | None = None

    def fail(self, exc: BaseException, mode: Mode) -> None:
        if isinstance(exc, OpTimeout):
            self.cell.status = "timeout"
            self.cell.note = f"{exc} (at {mode.cap_seconds:g} s cap)"
        else:
            self.cell.status = "error"
            self.cell.note = f"{type(exc).__name__}: {str(exc)[:160]}"
        self.sample = None

    def done(self, mode: Mode) -> bool:
        n, spent = len(self.samples), sum(map(sum, self.samples))
        return n >= mode.max_repeats or (n >= mode.min_repeats and spent >= mode.cell_seconds)


def run_rounds(jobs: list[Job], mode: Mode) -> None:
    """Repeat every job's sample round-robin, so background load hits all engines alike.

    The order rotates every round, so no engine always follows the same one.
    Every sample starts with a collected heap (see :func:`measure_workload`).

    A job whose warm-up alone took longer than ``mode.slow_seconds`` keeps the
    warm-up as its only sample.
    """
    active = [
        j
        for j in jobs
        if j.sample is not None and mode.max_repeats and sum(j.first) <= mode.slow_seconds
    ]
    rounds = itertools.count()
    while active:
        shift = next(rounds) % len(active)  # rotate the order: no engine always runs first
        for job in active[shift:] + active[:shift]:
            gc.collect()  # each sample pays for the collections its own allocations cause
            try:
                with recursion_limit(job.limit):
                    job.samples.append(job.sample())
            except Exception as exc:  # noqa: BLE001 - any engine failure is a result
                job.fail(exc, mode)
            if job.sample is None or job.done(mode):
                active.remove(job)
    for job in jobs:
        if job.cleanup is not None:
            with contextlib.suppress(Exception):
                job.cleanup()
        if job.sample is not None and not job.samples:
            job.samples = [job.first]
        job.cell.repeats = len(job.samples)
        job.cell.samples = [[round(x, 7) for x in sample] for sample in job.samples]


def roundtrip_job(engine: Engine, workload: Workload, obj: Any, mode: Mode) -> Job:
    """Warm up (checking the loaded object) and return the job that repeats save + load."""
    job = Job(Cell(workload.name, workload.letter, engine.name))
    cell = job.cell

    def sample(check: bool = False) -> tuple[float, float]:
        location = engine.location(workload.letter)
        try:
            save_s, _ = timed(lambda: engine.save(obj, location), mode.cap_seconds)
            if check:  # kept if the load then times out
                cell.save_s = save_s
            cell.size_bytes = engine.size(location)
            load_s, loaded = timed(lambda: engine.load(location), mode.cap_seconds)
        finally:
            engine.remove(location)
        if check and not same(obj, loaded):
            cell.status = "wrong"
            cell.note = "loaded object differs from the saved one"
        return save_s, load_s

    try:
        try:
            job.first = sample(check=True)
        except Exception as exc:
            if isinstance(exc, OpTimeout) or not is_recursion_failure(exc):
                raise
            job.limit = RAISED_RECURSION_LIMIT
            cell.note = f"fails at the default recursion limit; ran with {job.limit}"
            with recursion_limit(job.limit):
                job.first = sample(check=True)
    except Exception as exc:  # noqa: BLE001
        job.fail(exc, mode)
        return job
    job.sample = sample
    return job


def finish_roundtrip(job: Job) -> Cell:
    cell = job.cell
    if job.samples:
        cell.save_s = statistics.median(p[0] for p in job.samples)
        cell.load_s = statistics.median(p[1] for p in job.samples)
        cell.save_load_s = statistics.median(p[0] + p[1] for p in job.samples)
    return cell


def op_job(engine: Engine, workload: Workload, objs: dict, mode: Mode) -> Job:
    """Save the workload's file once (untimed), warm up, return the job timing the op."""
    if workload.name == "partial-load":
        obj, fn, op = objs["big"], engine.load_part, engine.partial_load_does
        action = None if fn is None else (lambda loc, i: fn(loc, "meta/name"))
        expected = objs["big"]["meta"]["name"]
    elif workload.name == "partial-update":
        obj, fn, op = objs["big"], engine.update_part, engine.partial_update_does
        action = None if fn is None else (lambda loc, i: fn(f"run-{i:04d}", loc, "meta/name"))
        expected = None
    else:
        obj, fn, op = objs["browse"], engine.browse, engine.browse_does
        action = None if fn is None else (lambda loc, i: fn(loc))
        expected = None
    job = Job(Cell(workload.name, workload.letter, engine.name, op=op))
    cell = job.cell
    if action is None:
        cell.status, cell.note = "n/a", "not supported by this engine"
        return job
    location = engine.location(workload.letter)
    counter = itertools.count()

    def cleanup() -> None:  # the file's size after every timed operation, then remove it
        with contextlib.suppress(Exception):
            cell.size_bytes = engine.size(location)
        engine.remove(location)

    job.cleanup = cleanup

    def sample() -> tuple[float]:
        return (timed(lambda: action(location, next(counter)), mode.cap_seconds)[0],)

    try:
        setup_s, _ = timed(lambda: engine.save(obj, location), mode.cap_seconds)
        first_s, result = timed(lambda: action(location, next(counter)), mode.cap_seconds)
    except Exception as exc:  # noqa: BLE001
        job.fail(exc, mode)
        return job
    if expected is not None and result != expected:
        cell.status, cell.note = "wrong", f"got {result!r:.60}, expected {expected!r}"
    else:
        cell.note = f"file written once in {setup_s:.2f} s (untimed)"
    job.first = (first_s,)
    job.sample = sample
    return job


def finish_op(job: Job) -> Cell:
    cell = job.cell
    if job.samples:
        cell.op_s = statistics.median(p[0] for p in job.samples)
    return cell


def measure_workload(engines: list[Engine], workload: Workload, mode: Mode) -> list[Cell]:
    """Every engine on one workload, repeats interleaved across engines.

    The workload's objects (and everything imported) are frozen out of the
    cyclic garbage collector, and the young generation is collected before
    every sample: otherwise an engine that allocates many containers leaves a
    collection due that the next engine pays for (seen as pickle samples
    taking 5x their median), and every collection would also rescan the
    frozen objects.  Each sample pays for the collections its own
    allocations trigger, as in a process that holds little else.
    """
    if workload.kind == "roundtrip":
        obj = BUILDERS[workload.name](mode.sizes)
    elif workload.name == "browse":
        objs = {"browse": W.browse_tree(mode.sizes)}
    else:
        objs = {"big": W.big_file(mode.sizes)}
    gc.collect()
    gc.freeze()
    try:
        if workload.kind == "roundtrip":
            jobs = [roundtrip_job(e, workload, obj, mode) for e in engines]
            run_rounds(jobs, mode)
            return [finish_roundtrip(j) for j in jobs]
        jobs = [op_job(e, workload, objs, mode) for e in engines]
        run_rounds(jobs, mode)
        return [finish_op(j) for j in jobs]
    finally:
        gc.unfreeze()


# ------------------------------------------------------------------ peak memory


def _rss_status() -> dict:
    values = {}
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value, _unit = line.split()
                    values[key[:-1]] = int(value) * 1024
    except OSError:
        pass
    return values


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def measure_peak_memory(engine_names: list[str], mode_name: str, tmpdir: str) -> list[dict]:
    """Peak memory of saving (b), per engine, relative to the arrays' bytes.

    Two measures: tracemalloc's peak (Python and numpy allocations; blind to
    HDF5's own C buffers) and the rise of the peak RSS (everything, Linux).
    """
    mode = MODES[mode_name]
    obj = W.array_dataclass(mode.sizes)
    tiny = W.array_dataclass(W.SMOKE)
    object_bytes = obj.array_bytes()
    out = []
    engines = {engine_name_of(c): c for c in ENGINE_CLASSES}
    for name in engine_names:
        engine = engines[name](tmpdir)
        warm = engine.location("warm")
        engine.save(tiny, warm)  # imports and first-call caches, without big buffers
        engine.remove(warm)
        row = {"engine": name, "object_bytes": object_bytes}
        # RSS first, in a heap that has not yet held a big buffer
        location = engine.location("rss")
        _trim_heap()
        if _reset_peak_rss():
            base = _rss_status().get("VmRSS")
            engine.save(obj, location)
            peak = _rss_status().get("VmHWM")
            if base is not None and peak is not None:
                row["rss_peak_bytes"] = peak - base
        engine.remove(location)
        location = engine.location("trace")
        _trim_heap()
        tracemalloc.start()
        engine.save(obj, location)
        row["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        engine.remove(location)
        out.append(row)
    return out


def peak_memory(engine_names: list[str], mode: Mode, tmpdir: str) -> list[dict]:
    """Run :func:`measure_peak_memory` in fresh interpreters (a clean heap per engine)."""
    groups = [[n] for n in engine_names] if mode.memory_subprocess_per_engine else [engine_names]
    rows: list[dict] = []
    for names in groups:
        code = (
            f"import json, sys; sys.path.insert(0, {ROOT!r}); from benchmarks import run; "
            f"print(json.dumps(run.measure_peak_memory({names!r}, {mode.name!r}, {tmpdir!r})))"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
        )
        if proc.returncode != 0:
            rows.extend(
                {"engine": n, "error": proc.stderr.strip().splitlines()[-1:]} for n in names
            )
            continue
        rows.extend(json.loads(proc.stdout.strip().splitlines()[-1]))
    for row in rows:
        for key in ("tracemalloc_peak_bytes", "rss_peak_bytes"):
            if key in row:
                row[key.replace("_bytes", "_ratio")] = row[key] / row["object_bytes"]
    return rows


# ------------------------------------------------------------------ ratios & targets


def add_ratios(cells: list[Cell]) -> None:
    reference = {c.workload: c for c in cells if c.engine == "pickle" and c.status == "ok"}
    for c in cells:
        ref = reference.get(c.workload)
        if ref is None:
            continue
        for key in ("save_s", "load_s", "save_load_s", "op_s", "size_bytes"):
            mine, theirs = getattr(c, key), getattr(ref, key)
            if mine is not None and theirs:
                c.ratios[key] = mine / theirs


def geometric_mean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def evaluate_targets(cells: list[Cell], memory: list[dict]) -> list[dict]:
    """The targets of issue 6, per tinystore backend (only for what was run)."""
    by = {(c.workload, c.engine): c for c in cells}
    engines = [e for e in TINYSTORE if any(c.engine == e for c in cells)]
    out = []

    def add(target, engine, value, limit, unit, detail=""):
        out.append(
            {
                "target": target,
                "engine": engine,
                "value": value,
                "limit": limit,
                "unit": unit,
                "holds": None if value is None else value <= limit,
                "detail": detail,
            }
        )

    for e in engines:
        ratios = [
            by[(w, e)].ratios.get("save_load_s")
            for w in ("small-dict", "objects", "tuples")
            if (w, e) in by
        ]
        if ratios:
            value = geometric_mean(ratios) if all(ratios) else None
            add(
                "save+load (a),(c),(e): geomean <= 3x pickle",
                e,
                value,
                3.0,
                "x",
                " ".join(f"{r:.1f}x" if r else "n/a" for r in ratios),
            )
        for w in ("dataclass-arrays", "dataframe"):
            if (w, e) in by:
                add(
                    f"save+load {w} <= 1.3x pickle",
                    e,
                    by[(w, e)].ratios.get("save_load_s"),
                    1.3,
                    "x",
                )
        sizes = {c.letter: c.ratios.get("size_bytes") for c in cells if c.engine == e}
        known = {k: v for k, v in sizes.items() if v is not None}
        if known:
            over = ", ".join(f"({k}) {v:.2g}x" for k, v in known.items() if v > 1.5)
            add(
                "file size <= 1.5x pickle on every workload",
                e,
                max(known.values()),
                1.5,
                "x",
                f"over: {over}" if over else "",
            )
        for w in ("partial-load", "partial-update"):
            if (w, e) in by:
                add(f"{w} < 5 ms", e, by[(w, e)].op_s, 0.005, "s")
        if ("browse", e) in by:
            add("browse 10,000 nodes < 1 s", e, by[("browse", e)].op_s, 1.0, "s")
    for row in memory:
        if row["engine"] in TINYSTORE:
            value = max(
                (row[k] for k in ("tracemalloc_peak_ratio", "rss_peak_ratio") if k in row),
                default=None,
            )
            add(
                "peak memory saving (b) <= 1.5x object",
                row["engine"],
                value,
                1.5,
                "x",
                "max of tracemalloc and RSS",
            )
    return out


def assignment_targets(rows: list[dict]) -> list[dict]:
    """Issue 19, item 3: one small assignment in an open store <= 3x raw h5py,
    one read <= 0.15 ms (through the handle that wrote, and a new one)."""
    out = []
    for row in rows:
        if not row["engine"].startswith("ts.") or row["engine"] == "ts.memory":
            continue
        ratio = row["write_x_raw"]
        checks = [
            ("one assignment in an open store <= 3x h5py", ratio, 3.0, "x"),
            ("one read in an open store <= 0.15 ms", row["read"], 0.00015, "s"),
            ("one read, new read-only handle <= 0.15 ms", row["read_new_handle"], 0.00015, "s"),
        ]
        for target, value, limit, unit in checks:
            out.append(
                {
                    "target": target,
                    "engine": row["engine"],
                    "value": value,
                    "limit": limit,
                    "unit": unit,
                    "holds": None if value is None else value <= limit,
                    "detail": f"{fmt_time(row['write'])} per assignment" if unit == "x" else "",
                }
            )
    return out


def render_assignments(rows: list[dict]) -> str:
    headers = ["engine", "assignment", "x h5py", "read", "x h5py", "read, new handle", "x h5py"]
    body = []
    for r in rows:
        line = [r["engine"]]
        for key in ("write", "read", "read_new_handle"):
            line += [fmt_time(r[key]), fmt_ratio(r[key + "_x_raw"])]
        body.append(line)
    n = rows[0]["n"] if rows else 0
    title = (
        f"Single operations in an open store ({n} keys, median per operation; "
        "h5py: groups with attributes, file kept open)"
    )
    return title + "\n" + table(headers, body, {1, 2, 3, 4, 5, 6})


# ------------------------------------------------------------------ output


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def fmt_size(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1024
    return ""


def fmt_ratio(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:.3g}x" if r < 100 else f"{r:.0f}x"


def table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells):
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), sep, *(line(r) for r in rows)])


def cell_time(c: Cell, key: str, missing: str) -> str:
    value = getattr(c, key)
    return fmt_time(value) if value is not None else missing


def cell_ratio(c: Cell, key: str) -> str:
    return fmt_ratio(c.ratios.get(key)) if getattr(c, key) is not None else ""


def status_text(c: Cell, cap: float) -> str:
    return {"timeout": f">{cap:g} s", "n/a": "n/a", "error": "error"}.get(c.status, "")


def render(
    cells: list[Cell], memory: list[dict], targets: list[dict], mode: Mode, assign: list[dict]
) -> str:
    out = []
    round_rows, op_rows, notes = [], [], []
    for c in cells:
        marks = ""
        if c.status == "wrong":
            marks = " WRONG"
        if c.note and c.status != "ok" or "recursion" in c.note:
            notes.append(f"  ({c.letter}) {c.engine}: {c.note}")
            marks += " *"
        bad = status_text(c, mode.cap_seconds) or "n/a"
        size = fmt_size(c.size_bytes) if c.size_bytes is not None else ""
        repeats = str(c.repeats) if c.repeats else ""
        if c.letter in "abcdef":
            row = [f"({c.letter}) {c.workload}", c.engine + marks]
            for key in ("save_s", "load_s", "save_load_s"):
                row += [cell_time(c, key, bad), cell_ratio(c, key)]
            round_rows.append([*row, size, cell_ratio(c, "size_bytes"), repeats])
        else:
            op_rows.append(
                [
                    f"({c.letter}) {c.workload}",
                    c.engine + marks,
                    c.op or "-",
                    cell_time(c, "op_s", bad),
                    cell_ratio(c, "op_s"),
                    size,
                    cell_ratio(c, "size_bytes"),
                    repeats,
                ]
            )
    if round_rows:
        out.append("Round trips (median per repeat: save writes a fresh file, load reads it back)")
        out.append(
            table(
                [
                    "workload",
                    "engine",
                    "save",
                    "xpk",
                    "load",
                    "xpk",
                    "save+load",
                    "xpk",
                    "size",
                    "xpk",
                    "n",
                ],
                round_rows,
                {2, 3, 4, 5, 6, 7, 8, 9, 10},
            )
        )
    if op_rows:
        out.append("")
        out.append("Single operations on a saved file (median; xpk = ratio to pickle's equivalent)")
        out.append(
            table(
                ["workload", "engine", "what is timed", "time", "xpk", "file size", "xpk", "n"],
                op_rows,
                {3, 4, 5, 6, 7},
            )
        )
    if notes:
        out.append("")
        out.append("Notes:")
        out.extend(notes)
    if memory:
        out.append("")
        out.append(
            "Peak memory while saving (b), beyond what the process held before "
            "(ratio to the arrays' bytes)"
        )
        rows = []
        for m in memory:
            if "error" in m:
                rows.append([m["engine"], "error", " ".join(m["error"]), ""])
                continue
            rows.append(
                [
                    m["engine"],
                    fmt_size(m["object_bytes"]),
                    f"{fmt_size(m.get('tracemalloc_peak_bytes'))} "
                    f"({fmt_ratio(m.get('tracemalloc_peak_ratio'))})",
                    f"{fmt_size(m.get('rss_peak_bytes'))} ({fmt_ratio(m.get('rss_peak_ratio'))})",
                ]
            )
        out.append(
            table(["engine", "object", "tracemalloc peak", "peak RSS rise"], rows, {1, 2, 3})
        )
    if assign:
        out += ["", render_assignments(assign)]
    if targets:
        out.append("")
        out.append(
            "Targets of issues 6 and 19"
            + (
                ""
                if mode.name == "full"
                else f" (they refer to full sizes; this is a {mode.name} run)"
            )
        )
        rows = []
        for t in targets:
            value = t["value"]
            shown = (
                "n/a"
                if value is None
                else (fmt_ratio(value) if t["unit"] == "x" else fmt_time(value))
            )
            limit = fmt_ratio(t["limit"]) if t["unit"] == "x" else fmt_time(t["limit"])
            verdict = {True: "holds", False: "MISSED", None: "n/a"}[t["holds"]]
            rows.append([t["target"], t["engine"], shown, limit, verdict, t["detail"]])
        out.append(table(["target", "engine", "value", "limit", "", "detail"], rows, {2, 3}))
    return "\n".join(out)


def environment(mode: Mode, engines: list[str], missing: list[str]) -> dict:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"python": platform.python_version()}
    for module in ("numpy", "h5py", "pandas", "orjson", "tinystore", "cloudpickle", "bagofholding"):
        with contextlib.suppress(ImportError):
            versions[module] = getattr(importlib.import_module(module), "__version__", "?")
    commit = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        commit = (
            subprocess.run(
                ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            or None
        )
    dirty = None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        dirty = bool(
            subprocess.run(
                ["git", "-C", ROOT, "status", "--porcelain", "--", "tinystore"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
        )
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "tinystore_dirty": dirty,
        "mode": mode.name,
        "sizes": describe_sizes(mode.sizes),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "versions": versions,
        "git_commit": commit,
        "engines": engines,
        "engines_missing": missing,
        "cap_seconds": mode.cap_seconds,
        "pickle_protocol": PROTOCOL,
    }


# ------------------------------------------------------------------ main


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process (no trimming, no per-buffer mmap).

    Otherwise whether an engine gets recycled or fresh pages for a 10 MiB
    buffer is luck, and fresh pages cost ~2,500 page faults (2-3 µs each in a
    VM): several ms that land on a different engine in every run.  Buffers up
    to 32 MiB then come from the heap and are reused: a warm, steady process.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3
    return bool(
        libc.mallopt(m_mmap_threshold, 32 * MiB) and libc.mallopt(m_trim_threshold, 1 << 30)
    )


def select(only: list[str]) -> tuple[list[Workload], list[type], bool]:
    tokens = [t.strip().lower() for item in only for t in item.split(",") if t.strip()]
    engine_names = {engine_name_of(c): c for c in ENGINE_CLASSES}
    aliases = {**{n: n for n in engine_names}, **{n[3:]: n for n in engine_names if n[:3] == "ts."}}
    w_tokens = [t for t in tokens if t not in aliases]
    e_tokens = [aliases[t] for t in tokens if t in aliases]
    known = {w.letter for w in WORKLOADS} | {w.name for w in WORKLOADS} | {PEAK_MEMORY, ASSIGNMENTS}
    unknown = [t for t in w_tokens if t not in known]
    if unknown:
        raise SystemExit(
            f"--only: unknown {', '.join(unknown)}; workloads: "
            + ", ".join(f"{w.letter}/{w.name}" for w in WORKLOADS)
            + f", {PEAK_MEMORY}; engines: {', '.join(aliases)}"
        )
    workloads = [w for w in WORKLOADS if not w_tokens or w.letter in w_tokens or w.name in w_tokens]
    if w_tokens and not any(w.letter in w_tokens or w.name in w_tokens for w in WORKLOADS):
        workloads = []
    memory = (
        not w_tokens
        or PEAK_MEMORY in w_tokens
        or "b" in w_tokens
        or ("dataclass-arrays" in w_tokens)
    )
    classes = [
        c
        for c in ENGINE_CLASSES
        if not e_tokens or engine_name_of(c) in e_tokens or c is PickleEngine
    ]
    return workloads, classes, memory


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="fewer repeats, 40 MiB big file (~30 s)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat (for tests)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="workloads (letter or name) and/or engines; repeatable, comma-separated",
    )
    parser.add_argument("--cap", type=float, help="interrupt one operation after this many seconds")
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="time samples by this process's CPU time, not wall time (a shared machine)",
    )
    parser.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="leave glibc's defaults (freed memory goes back to the OS)",
    )
    args = parser.parse_args(argv)
    CLOCK["now"] = time.process_time if args.cpu else time.perf_counter
    A.CLOCK["now"] = CLOCK["now"]
    mode = MODES["smoke" if args.smoke else "quick" if args.quick else "full"]
    if args.cap is not None:
        mode = dataclasses.replace(mode, cap_seconds=args.cap)
    workloads, classes, do_memory = select(args.only)
    tokens = {t.strip().lower() for item in args.only for t in item.split(",")}
    do_assign = ASSIGNMENTS in tokens or not tokens & (
        {w.letter for w in WORKLOADS} | {w.name for w in WORKLOADS} | {PEAK_MEMORY}
    )
    assign: list[dict] = []
    available = [c for c in classes if installed(c)]
    missing = [engine_name_of(c) for c in classes if not installed(c)]
    engine_names = [engine_name_of(c) for c in available]
    env = environment(mode, engine_names, missing)
    # not for --smoke: the test calls main() inside pytest's process
    env["malloc_tuning"] = False if args.no_malloc_tuning or args.smoke else keep_freed_memory()

    started = time.perf_counter()
    print(f"tinystore benchmarks ({mode.name}): {env['date']}, {env['nproc']} cpus, {env['cpu']}")
    env["clock"] = "cpu" if args.cpu else "wall"
    if args.cpu:
        print("times are this process's CPU time (user + system), not wall time")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()))
    dirty = " (tinystore/ has uncommitted changes)" if env["tinystore_dirty"] else ""
    print(
        f"git commit: {env['git_commit']}{dirty}; load average before the run: "
        + (" ".join(f"{x:.2f}" for x in env["load_average"]) if env["load_average"] else "?")
    )
    if not env["malloc_tuning"] and not args.smoke:
        print("glibc keeps its defaults: big buffers may cost page faults at random (noisier)")
    if mode.sizes != W.FULL:
        changed = {k: v for k, v in describe_sizes(mode.sizes).items() if v != getattr(W.FULL, k)}
        print(
            "sizes differing from the full run: "
            + ", ".join(f"{k}={v}" for k, v in changed.items())
        )
    if missing:
        print(f"skipped (not installed): {', '.join(missing)}")
    print(flush=True)

    cells: list[Cell] = []
    memory: list[dict] = []
    tmpdir = tempfile.mkdtemp(prefix="tinystore-bench-")
    try:
        engines = [c(tmpdir) for c in available]
        for workload in workloads:
            t0 = time.perf_counter()
            row = measure_workload(engines, workload, mode)
            cells.extend(row)
            print(
                f"  ({workload.letter}) {workload.name:<17} {time.perf_counter() - t0:6.1f} s  "
                + " ".join(f"{c.engine}:{c.status}" for c in row),
                file=sys.stderr,
                flush=True,
            )
            gc.collect()
        if do_memory:
            memory = peak_memory(engine_names, mode, tmpdir)
        if do_assign:
            n, rounds = ASSIGNMENT_SIZES[mode.name]
            assign = A.measure(n, rounds, engine_names)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)

    add_ratios(cells)
    targets = evaluate_targets(cells, memory) + assignment_targets(assign)
    env["elapsed_seconds"] = round(time.perf_counter() - started, 1)
    env["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    print(render(cells, memory, targets, mode, assign))
    after = env["load_average_after"]
    print(
        f"\n(total {env['elapsed_seconds']} s; load average after the run: "
        + (" ".join(f"{x:.2f}" for x in after) if after else "?")
        + ")"
    )
    result = {
        "environment": env,
        "workloads": [dataclasses.asdict(w) for w in workloads],
        "results": [dataclasses.asdict(c) for c in cells],
        "peak_memory": memory,
        "assignments": assign,
        "targets": targets,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    main()
