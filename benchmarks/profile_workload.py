"""Profile one benchmark workload on one engine with cProfile.

    python benchmarks/profile_workload.py WORKLOAD ENGINE [--op save|load|both] [-n 20] [--top 25]

WORKLOAD is a letter or name of ``benchmarks/run.py`` (``e``, ``tuples``,
``partial-load`` ...), ENGINE ``memory``/``hdf5``/``json`` (tinystore) or any
other engine of run.py.  The operation runs once untimed (warm-up), then
``-n`` times under the profiler; the top functions by cumulative time are
printed (``--sort tottime`` for self time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import run  # noqa: E402 - after the sys.path setup
from benchmarks import workloads as W  # noqa: E402 - after the sys.path setup


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload")
    parser.add_argument("engine")
    parser.add_argument("--op", choices=["save", "load", "both"], default="both")
    parser.add_argument("-n", type=int, default=20, help="profiled repetitions")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--quick", action="store_true", help="the --quick sizes")
    args = parser.parse_args(argv)

    workload = next((w for w in run.WORKLOADS if args.workload in (w.letter, w.name)), None)
    if workload is None:
        raise SystemExit(f"unknown workload {args.workload!r}")
    names = {run.engine_name_of(c): c for c in run.ENGINE_CLASSES}
    engine_name = args.engine if args.engine in names else f"ts.{args.engine}"
    sizes = run.MODES["quick" if args.quick else "full"].sizes

    with tempfile.TemporaryDirectory(prefix="tinystore-profile-") as tmp:
        engine = names[engine_name](tmp)
        location = engine.location(workload.letter)
        if workload.kind == "roundtrip":
            obj = run.BUILDERS[workload.name](sizes)
            ops = {
                "save": lambda: engine.save(obj, location),
                "load": lambda: engine.load(location),
            }
            chosen = ["save", "load"] if args.op == "both" else [args.op]
            if chosen == ["load"]:
                engine.save(obj, location)
        else:
            obj = W.browse_tree(sizes) if workload.name == "browse" else W.big_file(sizes)
            engine.save(obj, location)
            counter = iter(range(10**9))
            ops = {
                "partial-load": lambda: engine.load_part(location, "meta/name"),
                "partial-update": lambda: engine.update_part(
                    f"run-{next(counter)}", location, "meta/name"
                ),
                "browse": lambda: engine.browse(location),
            }
            chosen = [workload.name]
        for name in chosen:  # warm-up: first-call caches, and a file for "load"
            ops[name]()
        profiler = cProfile.Profile()
        for _ in range(args.n):
            for name in chosen:
                if name == "save":  # as in run.py: every save writes a fresh file
                    engine.remove(location)
                profiler.enable()
                ops[name]()
                profiler.disable()
        engine.remove(location)
    print(f"{workload.letter} {workload.name} on {engine_name}: {'+'.join(chosen)} x {args.n}")
    stats = pstats.Stats(profiler)
    stats.strip_dirs().sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
