"""The icechunk backend: commits per second with many writers, and the cost of a small save.

::

    python benchmarks/icechunk_bench.py [--smoke] [--json out.json]

1. *Commits per second* with 1, 4 and 8 writer processes saving small
   objects under keys of their own into one store on a local S3 server
   (moto, started by this script; the writers reach it through the AWS
   environment variables).  Every writer imports tinystore and waits; the
   clock runs from "go" until the last one is done.  Each save is one
   commit; a refused commit is run again, so the rate counts the commits
   that landed (all of them: the script checks).
2. *A small save* (``tinystore.save(small, url, path=...)``, median of
   repeats) with the icechunk backend against the plain zarr backend, on a
   local folder and on the S3 server.

moto runs in this process: a request costs a local round trip (about a
millisecond), far less than a real service's (10-50 ms); on a real service
the number of requests per commit weighs more.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

import tinystore  # noqa: E402
from benchmarks.run import s3_server  # noqa: E402

_names = itertools.count()
SMALL = {"energy": -3.25, "steps": 120, "label": "relax", "converged": True}

#: a writer process: imports, says "ready", waits for "go", saves COUNT values
WRITER = """
import sys, time
import tinystore
url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
small = {"energy": -3.25, "steps": 120, "label": "relax", "converged": True}
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    tinystore.save(small, url, path=f"{prefix}{i}")
print("done", flush=True)
"""


def _env() -> dict:
    """The environment of a writer: this tinystore (installed, or this checkout)."""
    env = dict(os.environ)
    parent = os.path.dirname(os.path.dirname(os.path.abspath(tinystore.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [parent, env.get("PYTHONPATH")]))
    return env


def commits_per_second(bucket: str, writers: int, per_writer: int) -> dict:
    url = f"s3://{bucket}/commits-{os.getpid()}-{next(_names)}.icechunk"
    tinystore.save(0, url, path="start")
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, f"w{n}_", str(per_writer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_env(),
            text=True,
        )
        for n in range(writers)
    ]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate()
        assert proc.returncode == 0 and out.strip() == "done", out
    wall = time.perf_counter() - start
    with tinystore.open(url, "r") as s:
        missing = writers * per_writer + 1 - len(s)
    commits = len(tinystore.history(url)) - 2  # not icechunk's first, nor "start"
    return {
        "writers": writers,
        "saves": writers * per_writer,
        "commits": commits,
        "missing": missing,
        "seconds": wall,
        "commits_per_s": commits / wall,
    }


def small_save(url: str, backend: str, repeats: int) -> float:
    """Median seconds of one small save into an existing store."""
    tinystore.save(SMALL, url, path="warm", backend=backend)
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        tinystore.save(SMALL, url, path=f"k{i}", backend=backend)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (the test runs this)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    bucket = s3_server()
    per_writer, repeats = (3, 3) if args.smoke else (25, 20)
    counts = (1, 2) if args.smoke else (1, 4, 8)
    results: dict = {"commits": [], "small_save_ms": {}}
    print("commits per second, writers of different keys, local S3 server (moto)")
    print(f"{'writers':>8} {'saves':>6} {'seconds':>8} {'commits/s':>10} {'missing':>8}")
    for n in counts:
        row = commits_per_second(bucket, n, per_writer)
        results["commits"].append(row)
        print(
            f"{n:>8} {row['saves']:>6} {row['seconds']:>8.2f} "
            f"{row['commits_per_s']:>10.1f} {row['missing']:>8}"
        )
    print("\na small save (median ms)")
    print(f"{'where':>8} {'icechunk':>9} {'zarr':>7} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        places = {
            "local": lambda suffix: os.path.join(tmp, f"s{next(_names)}{suffix}"),
            "s3": lambda suffix: f"s3://{bucket}/small-{os.getpid()}-{next(_names)}{suffix}",
        }
        for where, place in places.items():
            ice = small_save(place(".icechunk"), "icechunk", repeats) * 1e3
            plain = small_save(place(".zarr"), "zarr", repeats) * 1e3
            results["small_save_ms"][where] = {"icechunk": ice, "zarr": plain}
            print(f"{where:>8} {ice:>9.1f} {plain:>7.1f} {ice / plain:>5.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
