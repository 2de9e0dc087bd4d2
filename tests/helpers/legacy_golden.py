"""Write example h5io / pyiron_base files (the golden files of tests/test_legacy.py).

``python tests/helpers/legacy_golden.py DIR`` writes them with the real
packages (h5io, pyiron_base: the ``legacy`` test extra); a few small ones are
committed under tests/data/legacy/ so the reader is tested without them.
"""

from __future__ import annotations

import datetime
import decimal
import os
import subprocess
import sys

import h5py
import numpy as np


class Point:
    """A plain class for h5io's use_state (stored as ``helpers.legacy_golden.Point``:
    pytest puts tests/ on sys.path; never imported by a default load)."""

    def __init__(self, x=0.0, tags=()):
        self.x = x
        self.tags = list(tags)

    def __eq__(self, other):
        return type(other) is Point and other.__dict__ == self.__dict__


#: what h5io writes and what a default load gives back, key by key
def h5io_values() -> dict:
    return {
        "arr": np.arange(6.0).reshape(2, 3),
        "i": 7,
        "flag": True,
        "f": 2.5,
        "np_i": np.int32(-3),
        "np_f": np.float32(1.5),
        "text": "héllo",
        "none": None,
        "when": datetime.datetime(2024, 5, 1, 12, 30, 5, 250),
        "day": datetime.date(2024, 5, 2),
        "utc": datetime.timezone.utc,
        "cet": datetime.timezone(datetime.timedelta(hours=1), "CET"),
        "items": [1, "two", 3.0],
        "pair": (1, 2),
        "nested": {"a": {"b": [np.arange(3)]}},
        "ragged": np.array([np.arange(2.0), np.arange(3.0)], dtype=object),
        "raw": np.void(b"\x00\x01binary"),
    }


def write_h5io(folder: str) -> None:
    """Every h5io title, in files named after what they hold."""
    import h5io
    import pandas as pd
    import scipy.sparse as sp

    os.makedirs(folder, exist_ok=True)
    h5io.write_hdf5(os.path.join(folder, "h5io_values.h5"), h5io_values(), overwrite=True)
    h5io.write_hdf5(
        os.path.join(folder, "h5io_json.h5"),
        {"a": [1, 2.5, float("nan")], "b": "x"},
        overwrite=True,
        use_json=True,
        title="custom",
    )
    h5io.write_hdf5(
        os.path.join(folder, "h5io_sparse.h5"),
        {"csr": sp.csr_matrix(np.eye(3)), "csc": sp.csc_matrix(np.arange(6.0).reshape(2, 3))},
        overwrite=True,
    )
    h5io.write_hdf5(
        os.path.join(folder, "h5io_pandas.h5"),
        {
            "df": pd.DataFrame(
                {"a": [1, 2, 3], "b": [0.5, 1.5, 2.5], "c": [True, False, True]}, index=[10, 20, 30]
            ),
            "words": pd.DataFrame({"s": ["x", "y", "z"], "n": [1, 2, 3]}),
            "ser": pd.Series([1.0, 2.0], index=["p", "q"], name="ser"),
        },
        overwrite=True,
    )
    h5io.write_hdf5(
        os.path.join(folder, "h5io_state.h5"),
        {
            "point": Point(1.5, ["a"]),
            "cls": Point,
            "lost_set": {1, 2},
            "lost_frozenset": frozenset([3]),
            "lost_bytearray": bytearray(b"ab"),
            "lost_delta": datetime.timedelta(seconds=5),
            "lost_time": datetime.time(1, 2),
            "lost_decimal": decimal.Decimal("1.5"),
        },
        overwrite=True,
        use_state=True,
    )
    write_h5io_by_hand(os.path.join(folder, "h5io_old_titles.h5"))


def write_h5io_by_hand(path: str) -> None:
    """Titles h5io 0.2.5 no longer writes (``str``, ``ascii``, ``ndarray_str``),
    laid out as the readers of those versions expect, with plain h5py."""
    with h5py.File(path, "w") as f:
        root = f.create_group("h5io")
        root.attrs["TITLE"] = "dict"
        for key, title, data in [
            ("key_old", "str", np.frombuffer(b"old text", np.uint8)),
            ("key_plain", "ascii", np.frombuffer(b"plain", np.uint8)),
            ("key_names", "ndarray_str", np.array([b"Fe", b"Al"])),
        ]:
            root.create_dataset(key, data=data).attrs["TITLE"] = title


PYIRON_SCRIPT = r"""
import base64, sys
import cloudpickle, numpy as np
from pyiron_base import Project, DataContainer
pr = Project(sys.argv[1])
def add(a, b=2):
    return a + b
job = pr.wrap_python_function(add)
job.input["a"] = 1
job.run()
hdf = pr.create_hdf(pr.path, "container")
DataContainer({"x": 1, "y": [1, 2, 3], "z": {"q": np.arange(3)}}, table_name="dc").to_hdf(hdf)
hdf["blob"] = base64.b64encode(cloudpickle.dumps({"k": 1})).decode()
sub = pr.open("sub")
job2 = sub.wrap_python_function(add)
job2.input["a"] = 5
job2.run()
"""


def pyiron_python() -> str:
    """The interpreter that writes pyiron files: ``TINYSTORE_PYIRON_PYTHON``
    (CI keeps pyiron_base in a venv of its own, since it pins an older pandas
    than the one tinystore is tested with), else this one."""
    return os.environ.get("TINYSTORE_PYIRON_PYTHON") or sys.executable


def write_pyiron(folder: str) -> None:
    """A pyiron project folder written by pyiron_base (in a subprocess, with
    its database in ``folder``'s parent, HOME pointed there too)."""
    home = os.path.dirname(os.path.abspath(folder))
    env = dict(os.environ, HOME=home, PYIRONPROJECTPATHS="", PYIRONRESOURCEPATHS="")
    subprocess.run(
        [pyiron_python(), "-c", PYIRON_SCRIPT, folder],
        check=True,
        env=env,
        cwd=home,
        capture_output=True,
    )
    for top, _, files in os.walk(folder):
        for name in files:
            if not name.endswith(".h5"):
                os.unlink(os.path.join(top, name))


def write_all(folder: str) -> None:
    write_h5io(folder)
    write_pyiron(os.path.join(folder, "project"))


def write_committed(folder: str) -> None:
    """The small copies committed under tests/data/legacy/."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        write_all(tmp)
        for top, _, files in os.walk(tmp):
            for name in files:
                if not name.endswith(".h5"):
                    continue  # pyiron's database and log
                src = os.path.join(top, name)
                dst = os.path.join(folder, os.path.relpath(src, tmp))
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                compact(src, dst)


if __name__ == "__main__":
    # as helpers.legacy_golden, as the tests import it (the class path is stored)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from helpers.legacy_golden import write_committed as _write

    _write(sys.argv[1])


def compact(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` with contiguous, uncompressed datasets (the
    same types, values and attributes) so that committed files stay small."""

    def copy(a: h5py.Group, b: h5py.Group) -> None:
        for k, v in a.attrs.items():
            b.attrs[k] = v
        for name, obj in a.items():
            if isinstance(obj, h5py.Group):
                copy(obj, b.create_group(name))
            elif obj.chunks is None or obj.id.get_type().get_class() == h5py.h5t.BITFIELD:
                a.copy(obj, b, name=name)
            else:
                new = b.create_dataset(name, data=obj[()], dtype=obj.dtype)
                for k, v in obj.attrs.items():
                    new.attrs[k] = v

    with h5py.File(src, "r") as a, h5py.File(dst, "w", libver="latest") as b:
        copy(a, b)
