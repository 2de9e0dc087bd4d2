"""What checking checksums costs: loads with the checks against the same loads without.

::

    python benchmarks/checksum_cost.py [--repeats 40] [--smoke] [--json out.json]

Each file is loaded with ``tinystore.load`` as users do, alternately with the
checks and with them switched off (the record seals and the leaf checksums
are not looked at), in this process, from the page cache: the case where
checking weighs most (a read from disk takes far longer, the check the same;
the rows marked ``*`` are read from the disk, the file dropped from the page
cache before each load).  The cost is the difference of the best times (and
of the medians), as a share of the checked load.
"""

from __future__ import annotations

import argparse
import contextlib
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

import tinystore  # noqa: E402
from tinystore.storage.jsondir import _DirPhysical  # noqa: E402
from tinystore.storage.record import Physical, transactions  # noqa: E402
from tinystore.storage.record import format as record_format  # noqa: E402

#: (name, maker): deterministic contents
CASES = [
    ("one 8 MB float64 array", lambda scale: np.random.default_rng(0).random(scale)),
    ("one 80 MB float64 array", lambda scale: np.random.default_rng(1).random(10 * scale)),
    (
        "10 arrays of 800 KB",
        lambda scale: {f"a{i}": np.random.default_rng(i).random(scale // 10) for i in range(10)},
    ),
    (
        "dict of 1,000 small dicts",
        lambda scale: {f"k{i}": {"x": i * 0.5, "n": i, "s": f"v{i}"} for i in range(1000)},
    ),
]
BACKENDS = {"HDF5": ".h5", "JSON": ".json"}


def _read_plain(self, gpath, name, entry):
    return self.read_external(gpath, name, entry), None


@contextlib.contextmanager
def unchecked():
    """Loads that skip every checksum check (record seals and leaf sums, the
    sums taken while reading included)."""
    saved = (
        record_format.check_seal,
        transactions._Store._check_sum,
        Physical.read_external_summed,
        _DirPhysical.read_external_summed,
    )
    record_format.check_seal = lambda data, where: True
    transactions._Store._check_sum = lambda self, gpath, entry, value, *rest: None
    Physical.read_external_summed = _DirPhysical.read_external_summed = _read_plain
    try:
        yield
    finally:
        (
            record_format.check_seal,
            transactions._Store._check_sum,
            Physical.read_external_summed,
            _DirPhysical.read_external_summed,
        ) = saved


def _files(location: str) -> list[str]:
    if os.path.isfile(location):
        return [location]
    return [os.path.join(root, f) for root, _, files in os.walk(location) for f in files]


def evict(location: str) -> bool:
    """Drop the store's files from the page cache (their next read is from
    the disk); False where the system cannot."""
    if not hasattr(os, "posix_fadvise"):
        return False
    for path in _files(location):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages stay cached
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return True


def measure(filename: str, repeats: int, cold: bool = False) -> dict:
    times: dict[str, list[float]] = {"checked": [], "unchecked": []}
    for _ in range(repeats + 1):  # the first round warms up (and is dropped)
        for kind in ("checked", "unchecked"):
            with unchecked() if kind == "unchecked" else contextlib.nullcontext():
                if cold:
                    evict(filename)
                start = time.perf_counter()
                tinystore.load(filename)
                times[kind].append(time.perf_counter() - start)
    best = {k: min(v[1:]) for k, v in times.items()}
    median = {k: statistics.median(v[1:]) for k, v in times.items()}
    return {
        "checked": best["checked"],
        "unchecked": best["unchecked"],
        "cost": (best["checked"] - best["unchecked"]) / best["checked"],
        "median_cost": (median["checked"] - median["unchecked"]) / median["checked"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two repeats")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    scale, repeats = (1000, 2) if args.smoke else (1_000_000, args.repeats)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case, make in CASES:
            obj = make(scale)
            for backend, suffix in BACKENDS.items():
                filename = os.path.join(folder, f"f{len(rows)}{suffix}")
                tinystore.save(obj, filename)
                rows.append({"file": case, "backend": backend, **measure(filename, repeats)})
                if case.startswith("one 80 MB") and evict(filename):
                    cold = measure(filename, max(repeats // 4, 1), cold=True)
                    rows.append({"file": case + " *", "backend": backend, **cold})
                tinystore.delete(filename)
    head = ("file", "backend", "checked", "unchecked", "cost", "(median)")
    print("{:28s} {:8s} {:>10s} {:>10s} {:>6s} {:>9s}".format(*head))
    for r in rows:
        print(
            f"{r['file']:28s} {r['backend']:8s} {r['checked'] * 1e3:8.3f}ms "
            f"{r['unchecked'] * 1e3:8.3f}ms {r['cost']:6.1%} {r['median_cost']:9.1%}"
        )
    if any(r["file"].endswith("*") for r in rows):
        print("* read from the disk: the files are dropped from the page cache before each load")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
