"""A store reached through a symbolic link (a common set-up on clusters:
``run.h5 -> /scratch/me/run.h5``) is one store: its lock and its journal are
those of the store itself, whichever path a process takes to it.

Before, an HDF5 file or a Zarr folder had its lock and journal beside the
*path* it was opened by: a writer through the link and one through the real
path did not exclude each other (HDF5 then failed with a raw
``RuntimeError``, metadata checksums of a file written twice at once), and
the journal of a writer killed through the link was invisible to a process
using the real path, which read the half-written file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tinystore
from tinystore.errors import StoreLockedError

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

SUFFIX = {"hdf5": ".h5", "json": ".json", "zarr": ".zarr"}


def _linked(backend: str, tmp_path: Path) -> tuple[str, str]:
    if backend == "zarr":
        pytest.importorskip("zarr")
    real = tmp_path / "scratch" / ("run" + SUFFIX[backend])
    real.parent.mkdir()
    link = tmp_path / ("run" + SUFFIX[backend])
    tinystore.save({"x": np.zeros(1000), "n": 0}, real)
    os.symlink(real, link)
    return str(real), str(link)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
    )


@pytest.mark.parametrize("backend", list(SUFFIX))
def test_a_writer_through_a_link_excludes_one_through_the_real_path(backend, tmp_path):
    real, link = _linked(backend, tmp_path)
    with tinystore.open(link) as s, s.hold():
        s["n"] = 1  # this process holds the store's lock, through the link
        done = _run(
            f"""
            import tinystore
            from tinystore.errors import StoreLockedError
            try:
                with tinystore.open({real!r}, lock_timeout=0.5) as s:
                    s["n"] = 2
            except StoreLockedError:
                print("locked")
            else:
                print("wrote")
            """
        )
        assert done.stdout.strip() == "locked", done.stdout + done.stderr
    assert tinystore.load(real, path="n") == 1
    with pytest.raises(StoreLockedError), tinystore.open(real) as s, s.hold():
        s["n"] = 3
        with tinystore.open(link, lock_timeout=0.2) as other:
            other["n"] = 4


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(SUFFIX))
def test_a_writer_killed_through_a_link_is_rolled_back_for_the_real_path(backend, tmp_path):
    real, link = _linked(backend, tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import numpy as np, tinystore
                s = tinystore.open({link!r})
                with s.hold():
                    s["n"] = 1
                    print("writing", flush=True)
                    for i in range(10**6):
                        s["x"] = np.full(int(1e5) + i % 7 * 1000, float(i))
                """
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    seen = []
    for path in (real, link):  # one state by either path: before the write or one of them
        with tinystore.open(path, "r") as s:
            seen.append((s["n"], s["x"]))
    (n, x), (n2, x2) = seen
    assert n == n2 and n in (0, 1) and np.array_equal(x, x2)
    assert x.shape == (1000,) or (x.shape[0] - 100_000) % 1000 == 0
    assert np.all(x == x[0]), "a half-written array"
    if backend == "hdf5":  # one session: rolled back whole
        assert n == 0 and x.shape == (1000,)
    tinystore.save(5, real, path="n")  # a writer by the real path plays the journal back
    with tinystore.open(link, "r") as s:
        assert s["n"] == 5
        np.testing.assert_array_equal(s["x"], x)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["run" + SUFFIX[backend], "scratch"], left
