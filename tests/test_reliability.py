"""Crash safety and concurrent access, with real processes."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tinystore

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env, kill_while_writing  # noqa: E402
from writer import item  # noqa: E402

WRITER = str(Path(__file__).parent / "helpers" / "writer.py")
try:
    import zarr  # noqa: F401
except ImportError:  # the zarr extra is missing: tests/test_zarr.py says so
    FILE_BACKENDS = ["hdf5", "json"]
else:
    FILE_BACKENDS = ["hdf5", "json", "zarr"]
SUFFIX = {"hdf5": ".h5", "json": ".json", "zarr": ".zarr"}


def _store(backend: str, tmp_path: Path) -> str:
    return str(tmp_path / f"store{SUFFIX[backend]}")


def _env() -> dict:
    return child_env()


def _expected_keys(done: int, prefix: str) -> set[str]:
    keys = {f"{prefix}{i}" for i in range(done + 1)}
    keys -= {f"{prefix}{i - 2}" for i in range(done + 1) if i % 5 == 4}
    return keys


def _check_item(value: dict, prefix: str, i: int) -> None:
    expected = item(prefix, i)
    assert value.keys() == expected.keys()
    assert value["i"] == i and value["text"] == expected["text"]
    assert np.array_equal(value["data"], expected["data"])
    assert value["nested"] == expected["nested"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_sigkill_never_damages_completed_saves(backend, tmp_path):
    store = _store(backend, tmp_path)
    rng = random.Random(1234)
    done = most = -1
    for trial in range(8):
        # let it start, then kill it at a random moment of its writing
        argv = [sys.executable, WRITER, store, f"t{trial}_", "100000"]
        done = kill_while_writing(argv, rng.uniform(0.0, 0.4))
        most = max(most, done)
        # everything completed before the kill is intact, and the store opens without repair
        required = _expected_keys(done, f"t{trial}_")
        if (done + 1) % 5 == 4:  # the next iteration's delete may have completed too
            required.discard(f"t{trial}_{done - 1}")
        with tinystore.open(store) as s:
            keys = set(s)
            for key in required:
                assert key in keys, (trial, key)
                _check_item(s[key], f"t{trial}_", int(key.split("_")[-1]))
            assert s["latest"]["prefix"] == f"t{trial}_"
            s["after_crash"] = trial  # the store is writable again
        for earlier in range(trial):
            with tinystore.open(store, "r") as s:
                assert any(k.startswith(f"t{earlier}_") for k in s)
        if backend == "json":
            leftovers = [p.name for p in Path(store).rglob("@tmp-*")] + [
                p.name for p in Path(store).rglob("@journal")
            ]
            assert leftovers == []
    assert most > 0  # kills landed in the middle of writing (zarr's first write is slow)


@pytest.mark.slow
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_concurrent_writers_and_reader(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.open(store, "w").close()
    count = 80  # long enough that the reader overlaps the writers
    writers = [
        subprocess.Popen(
            [sys.executable, WRITER, store, f"w{n}_", str(count)],
            stdout=subprocess.PIPE,
            env=_env(),
            text=True,
        )
        for n in range(3)
    ]
    reads = 0
    deadline = time.monotonic() + 120
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        with tinystore.open(store, "r") as s:
            for key in list(s):
                if key.startswith("w"):
                    prefix, index = key.split("_")
                    try:
                        value = s[key]
                    except KeyError:
                        continue  # deleted by its writer meanwhile
                    _check_item(value, prefix + "_", int(index))  # never torn
                    reads += 1
    for w in writers:
        out, _ = w.communicate(timeout=120)
        assert w.returncode == 0
        assert out.split()[-1] == str(count - 1)
    with tinystore.open(store, "r") as s:
        for n in range(3):
            for key in _expected_keys(count - 1, f"w{n}_"):
                _check_item(s[key], f"w{n}_", int(key.split("_")[-1]))
    assert reads > 0


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_lock_timeout_names_the_file(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.open(store, "w").close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, tinystore\n"
            f"s = tinystore.open({store!r})\n"
            "with s.batch():\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(30)\n",
        ],
        stdout=subprocess.PIPE,
        env=_env(),
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(tinystore.errors.StoreLockedError, match="store"):
            with tinystore.open(store, lock_timeout=0.3) as s:
                s["x"] = 1
        with pytest.raises(TimeoutError):
            tinystore.load(store, path="x", lock_timeout=0.3)
    finally:
        holder.kill()
        holder.wait()
    with tinystore.open(store) as s:  # usable again once the other process is gone
        s["x"] = 1
        assert s["x"] == 1
