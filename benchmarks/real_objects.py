"""Optional tier: objects of real libraries, when they are installed (issue 19, item 4).

    python benchmarks/real_objects.py            # 7 rounds
    python benchmarks/real_objects.py --smoke    # small objects, one round (for tests)

An ase trajectory (a list of Atoms with calculator results), a fitted
scikit-learn random forest and an xarray Dataset; save+load time and size on
disk for tinystore (HDF5, JSON), pickle, and jsonpickle when installed,
interleaved round by round in one process (medians; ratios to pickle of
the same run).  A library that is not installed is listed as skipped.
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)  # after site-packages, as run.py

import numpy as np  # noqa: E402

import tinystore  # noqa: E402
from benchmarks.files import path_size, remove_path  # noqa: E402


def ase_trajectory(small: bool) -> Any:
    import ase
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(0)
    frames = []
    molecules = 2 if small else 20
    for _ in range(5 if small else 100):
        atoms = ase.Atoms("H2O" * molecules, positions=rng.random((3 * molecules, 3)))
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(rng.random()), forces=rng.random((len(atoms), 3))
        )
        frames.append(atoms)
    return frames


def sklearn_forest(small: bool) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    x = rng.random((100 if small else 1000, 8))
    y = (x[:, 0] + x[:, 1] > 1).astype(int)
    return RandomForestClassifier(n_estimators=3 if small else 30, random_state=0).fit(x, y)


def xarray_dataset(small: bool) -> Any:
    import xarray as xr

    n = 10 if small else 1000
    rng = np.random.default_rng(0)
    return xr.Dataset(
        {"t": (("time", "x"), rng.random((n, 20))), "p": (("time",), rng.random(n))},
        coords={"time": np.arange(n), "x": np.linspace(0, 1, 20)},
        attrs={"source": "benchmark"},
    )


OBJECTS: dict[str, tuple[str, Callable[[bool], Any]]] = {
    "ase trajectory": ("ase", ase_trajectory),
    "sklearn random forest": ("sklearn", sklearn_forest),
    "xarray dataset": ("xarray", xarray_dataset),
}


def _pickle_save(obj, path):
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_load(path):
    with open(path, "rb") as f:
        return pickle.load(f)


def engines() -> dict[str, tuple[str, Callable, Callable]]:
    out = {
        "ts.hdf5": (".h5", tinystore.save, tinystore.load),
        "ts.json": (".json", tinystore.save, tinystore.load),
        "pickle": (".pkl", _pickle_save, _pickle_load),
    }
    try:
        import jsonpickle
    except ImportError:
        pass
    else:

        def jp_save(obj, path):
            with open(path, "w") as f:
                f.write(jsonpickle.encode(obj))

        def jp_load(path):
            with open(path) as f:
                return jsonpickle.decode(f.read())

        out["jsonpickle"] = (".jsonpickle", jp_save, jp_load)
    return out


def measure(rounds: int, small: bool) -> tuple[list[dict], list[str]]:
    rows, skipped = [], []
    tmp = tempfile.mkdtemp(prefix="tinystore-real-")
    engs = engines()
    try:
        for name, (module, build) in OBJECTS.items():
            try:
                __import__(module)
            except ImportError:
                skipped.append(name)
                continue
            obj = build(small)
            samples: dict[str, list[float]] = {e: [] for e in engs}
            sizes: dict[str, int] = {}
            for r in range(rounds + 1):  # round 0: warm-up
                order = list(engs)[r % len(engs) :] + list(engs)[: r % len(engs)]
                for e in order:
                    ext, save, load = engs[e]
                    path = os.path.join(tmp, "obj" + ext)
                    t = time.perf_counter()
                    save(obj, path)
                    load(path)
                    if r:
                        samples[e].append(time.perf_counter() - t)
                    sizes[e] = path_size(path)
                    remove_path(path)
            base = statistics.median(samples["pickle"])
            for e in engs:
                t = statistics.median(samples[e])
                rows.append(
                    {
                        "object": name,
                        "engine": e,
                        "save_load_s": t,
                        "x_pickle": t / base,
                        "size": sizes[e],
                        "size_x_pickle": sizes[e] / sizes["pickle"],
                    }
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, skipped


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="small objects, one round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    rows, skipped = measure(1 if args.smoke else args.rounds, args.smoke)
    print(f"{'object':<22} {'engine':<11} {'save+load':>10} {'xpk':>7} {'size':>10} {'xpk':>7}")
    for r in rows:
        print(
            f"{r['object']:<22} {r['engine']:<11} {r['save_load_s'] * 1e3:8.2f} ms "
            f"{r['x_pickle']:6.2f}x {r['size'] / 1024:7.1f} KiB {r['size_x_pickle']:6.2f}x"
        )
    if skipped:
        print(f"skipped (not installed): {', '.join(skipped)}")
    return rows


if __name__ == "__main__":
    main()
