"""The zarr backend against plain zarr, on a local folder and on a local S3 server.

::

    python benchmarks/zarr_bench.py [--smoke] [--json out.json]

Each operation is done by tinystore (``tinystore.save`` / ``load`` / ``open``)
and by zarr directly (``zarr.open_group``, ``create_array``, ``attrs``) on the
same data, and timed (median of repeats) and counted: the requests each makes
to the store (zarr's store interface, through
:class:`tinystore.testing.zarr_requests.CountingStore`), which is what decides
speed on object storage.  The S3 server is moto's, in this process, so a
request costs a local round trip (about a millisecond), far less than a real
service's (10-50 ms): on a real service the request counts weigh more.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

import numpy as np  # noqa: E402
import zarr  # noqa: E402

import tinystore  # noqa: E402
from benchmarks.run import s3_server  # noqa: E402
from tinystore.testing.zarr_requests import CountingStore  # noqa: E402

_names = itertools.count()


class Target:
    """Where the stores go, and how plain zarr opens a store there."""

    def __init__(self, kind: str, tmpdir: str):
        self.kind = kind
        self.tmpdir = tmpdir
        self.bucket = s3_server() if kind == "s3" else None

    def location(self) -> str:
        n = next(_names)
        if self.kind == "local":
            return os.path.join(self.tmpdir, f"b{n}.zarr")
        return f"s3://{self.bucket}/bench-{os.getpid()}-{n}.zarr"

    def zarr_store(self, location: str, log: list):
        if self.kind == "local":
            store = zarr.storage.LocalStore(location)
        else:
            from obstore.store import from_url

            store = zarr.storage.ObjectStore(from_url(location))
        return CountingStore(store, log)


def workload(smoke: bool) -> tuple[dict, dict]:
    rng = np.random.default_rng(0)
    n = 2_000 if smoke else 131_072  # 1 MiB of float64 per array
    arrays = {f"a{i}": rng.standard_normal(n) for i in range(4)}
    attrs = {f"k{i}": i * 1.5 for i in range(10)} | {"code": "vasp", "converged": True}
    return arrays, attrs


def ops(target: Target, arrays: dict, attrs: dict, groups: int) -> dict:
    """``{operation: {engine: (callable, prepared location)}}``: each callable
    takes a request log and does the operation once."""
    ts_arr, zr_arr = target.location(), target.location()
    tinystore.save({"attrs": attrs, **arrays}, ts_arr)
    g = zarr.open_group(target.zarr_store(zr_arr, []), mode="w")
    g.attrs.update(attrs)
    for k, v in arrays.items():
        g.create_array(k, data=v)
    ts_tree, zr_tree = target.location(), target.location()
    with tinystore.open(ts_tree, "w") as s, s.batch():
        for i in range(groups):
            s.create_group(f"g{i}").attrs["i"] = i
    root = zarr.open_group(target.zarr_store(zr_tree, []), mode="w")
    for i in range(groups):
        root.create_group(f"g{i}").attrs["i"] = i

    def wrap(log):
        return lambda store: CountingStore(store, log)

    def z_open(loc, log, mode="r"):
        return zarr.open_group(target.zarr_store(loc, log), mode=mode)

    def z_write(log):
        grp = z_open(target.location(), log, "w")
        grp.attrs.update(attrs)
        for k, v in arrays.items():
            grp.create_array(k, data=v)

    def z_read(log):
        grp = z_open(zr_arr, log)
        return dict(grp.attrs), {k: grp[k][...] for k in arrays}

    return {
        f"write {len(arrays)} arrays + attrs": {
            "tinystore": lambda log: tinystore.save(
                {"attrs": attrs, **arrays}, target.location(), store_wrapper=wrap(log)
            ),
            "zarr": z_write,
        },
        "read them back": {
            "tinystore": lambda log: tinystore.load(ts_arr, store_wrapper=wrap(log)),
            "zarr": z_read,
        },
        "update the attrs": {
            "tinystore": lambda log: tinystore.save(
                attrs, ts_arr, path="attrs", store_wrapper=wrap(log)
            ),
            "zarr": lambda log: z_open(zr_arr, log, "r+").attrs.update(attrs),
        },
        "read the attrs": {
            "tinystore": lambda log: tinystore.load(ts_arr, path="attrs", store_wrapper=wrap(log)),
            "zarr": lambda log: dict(z_open(zr_arr, log).attrs),
        },
        "read one array": {
            "tinystore": lambda log: tinystore.load(ts_arr, path="a2", store_wrapper=wrap(log)),
            "zarr": lambda log: z_open(zr_arr, log)["a2"][...],
        },
        f"browse {groups} groups": {
            "tinystore": lambda log: _ts_browse(ts_tree, wrap(log)),
            "zarr": lambda log: list(z_open(zr_tree, log).members(max_depth=None)),
        },
    }


def _ts_browse(location, wrapper):
    with tinystore.open(location, "r", store_wrapper=wrapper) as s:
        return s.tree(max_children=sys.maxsize)


def measure(fn, repeats: int) -> tuple[float, int]:
    """Median seconds, and the requests of one call."""
    times, log = [], []
    for i in range(repeats):
        run_log: list = []
        start = time.perf_counter()
        fn(run_log)
        times.append(time.perf_counter() - start)
        if i == 0:
            log = run_log
    return statistics.median(times), len(log)


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repeat")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    repeats = 1 if args.smoke else 5
    groups = 50 if args.smoke else 1000
    arrays, attrs = workload(args.smoke)
    rows = []
    with tempfile.TemporaryDirectory() as tmpdir:
        for kind in ("local", "s3"):
            target = Target(kind, tmpdir)
            for op, engines in ops(target, arrays, attrs, groups).items():
                row = {"target": kind, "operation": op}
                for engine, fn in engines.items():
                    seconds, requests = measure(fn, repeats)
                    row[engine] = {"seconds": seconds, "requests": requests}
                rows.append(row)
    header = f"{'where':6} {'operation':28} {'tinystore':>10} {'req':>5} {'zarr':>10} {'req':>5}"
    print(header)
    print("-" * len(header))
    for r in rows:
        t, z = r["tinystore"], r["zarr"]
        print(
            f"{r['target']:6} {r['operation']:28} {fmt(t['seconds']):>10} {t['requests']:>5} "
            f"{fmt(z['seconds']):>10} {z['requests']:>5}"
        )
    result = {"mode": "smoke" if args.smoke else "full", "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        main()
