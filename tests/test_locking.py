"""The cross-process lock: shared readers, exclusive writers, deletion under the
lock, read-only lock files, and re-entrancy within one process; real processes."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import HAVE_ZARR

import tinystore
from tinystore.errors import InvalidKeyError, StoreLockedError
from tinystore.storage.locking import StoreLock

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
from procs import child_env  # noqa: E402

FILE_BACKENDS = ["hdf5", "json"]
#: with zarr (a local folder): for the tests that run there too
ALL_FILE_BACKENDS = FILE_BACKENDS + (["zarr"] if HAVE_ZARR else [])


def _store(backend: str, folder: Path) -> str:
    return str(folder / {"hdf5": "store.h5", "zarr": "store.zarr"}.get(backend, "store.json"))


def _lock_file(backend: str, store: str) -> str:
    return store + ".lock" if backend == "hdf5" else os.path.join(store, "@lock")


def _child(code: str, *args: str) -> subprocess.Popen:
    """A Python process running ``code`` with ``args``, its output piped (text)."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(),
        text=True,
    )


_HOLDER = """
import sys, time, tinystore
store, mode, signal_file = sys.argv[1:4]
s = tinystore.open(store, mode)
with (s.batch() if mode != "r" else s.hold()):
    s.get("x")
    print("holding", flush=True)
    while not __import__("os").path.exists(signal_file):
        time.sleep(0.01)
print("released", flush=True)
"""


def _holder(store: str, mode: str, release: Path) -> subprocess.Popen:
    proc = _child(_HOLDER, store, mode, release)
    assert proc.stdout.readline().strip() == "holding", proc.stderr.read()
    return proc


def _finish(proc: subprocess.Popen, release: Path) -> None:
    release.touch()
    try:
        proc.wait(timeout=30)
    finally:
        proc.kill()


# -- readers share, writers exclude ---------------------------------------------------------------
_READER = """
import os, sys, time, tinystore
store, me, folder, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
with tinystore.open(store, "r") as s, s.hold():
    assert s["x"] == 42
    open(os.path.join(folder, "in-" + me), "w").close()
    deadline = time.monotonic() + 60
    # still inside the read session: wait until every reader is inside too
    while sum(f.startswith("in-") for f in os.listdir(folder)) < n:
        if time.monotonic() > deadline:
            print("alone", flush=True)
            sys.exit(1)
        time.sleep(0.01)
    print("together", flush=True)
    while not os.path.exists(os.path.join(folder, "release")):
        time.sleep(0.01)
"""


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_readers_share_the_lock_and_a_writer_waits_for_them(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save(42, store, path="x")
    marks = tmp_path / "marks"
    marks.mkdir()
    n = 3
    readers = [_child(_READER, store, i, marks, n) for i in range(n)]
    try:
        # each reader says "together" only while all n hold their read sessions at once
        assert [r.stdout.readline().strip() for r in readers] == ["together"] * n
        with pytest.raises(StoreLockedError):  # the readers are still inside
            tinystore.save(1, store, path="y", lock_timeout=0.2)
    finally:
        (marks / "release").touch()
        for r in readers:
            r.wait(timeout=60)
    assert [r.returncode for r in readers] == [0] * n
    tinystore.save(1, store, path="y", lock_timeout=5)
    assert tinystore.load(store, path="y") == 1


_TIMED_READER = """
import os, sys, time, tinystore
store, me, folder = sys.argv[1:4]
with tinystore.open(store, "r") as s, s.hold():  # the shared lock is held from here...
    start = time.monotonic_ns()  # CLOCK_MONOTONIC: one clock for every process
    assert s["x"] == 42
    open(os.path.join(folder, "in-" + me), "w").close()
    while not os.path.exists(os.path.join(folder, "release")):
        time.sleep(0.01)
    end = time.monotonic_ns()
print(start, end, flush=True)  # ...to here
"""


@pytest.mark.parametrize("backend", ALL_FILE_BACKENDS)
def test_concurrent_readers_overlap_in_time(backend, tmp_path):
    """Readers in their own processes each record when they held the shared
    lock; the intervals overlap.  The readers are released once all are in
    (or after a minute): with an exclusive lock they would come one after
    the other, and their intervals would not overlap."""
    store = _store(backend, tmp_path)
    tinystore.save(42, store, path="x")
    marks = tmp_path / "marks"
    marks.mkdir()
    n = 3
    readers = [_child(_TIMED_READER, store, i, marks) for i in range(n)]
    try:
        deadline = time.monotonic() + 60
        while len(list(marks.glob("in-*"))) < n and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        (marks / "release").touch()
        outs = [r.communicate(timeout=120) for r in readers]
    assert [r.returncode for r in readers] == [0] * n, [err for _, err in outs]
    intervals = [tuple(map(int, out.split())) for out, _ in outs]
    assert all(start < end for start, end in intervals)
    latest_start = max(start for start, _ in intervals)
    earliest_end = min(end for _, end in intervals)
    assert latest_start < earliest_end, f"the read sessions did not overlap: {intervals}"


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_a_writer_excludes_readers(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save(1, store, path="x")
    release = tmp_path / "release"
    writer = _holder(store, "a", release)
    try:
        with pytest.raises(StoreLockedError):
            tinystore.load(store, path="x", lock_timeout=0.2)
    finally:
        _finish(writer, release)
    assert tinystore.load(store, path="x") == 1


# -- a reader that cannot write the lock file still locks ---------------------------------------
_UNPRIVILEGED_READER = """
import os, sys, time
import tinystore
store, release = sys.argv[1:3]
tinystore.load(store, path="x")  # every module imported while we may still read them
if os.getuid() == 0:  # root writes any file: become nobody
    os.setgid(65534)
    os.setuid(65534)
with tinystore.open(store, "r") as s, s.hold():
    print(s["x"], flush=True)
    while not os.path.exists(release):
        time.sleep(0.01)
"""


@pytest.mark.skipif(not hasattr(os, "setuid"), reason="POSIX permissions needed")
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_reader_without_write_access_takes_a_shared_lock(backend):
    # a world-readable folder (pytest's own are private to their user)
    folder = Path(tempfile.mkdtemp(prefix="tinystore-ro-"))
    try:
        store = _store(backend, folder)
        tinystore.save(7, store, path="x")
        lock = _lock_file(backend, store)
        for path in [folder, *Path(store).rglob("*"), Path(store)]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if os.getuid() != 0:  # as another user: the lock file is not ours to write
            os.chmod(lock, 0o444)
            os.chmod(folder, 0o555)
        release = folder / "release"
        reader = _child(_UNPRIVILEGED_READER, store, release)
        try:
            line = reader.stdout.readline().strip()
            assert line == "7", reader.stderr.read()
            # the reader holds a shared lock on a read-only descriptor: a writer waits
            with pytest.raises(StoreLockedError):
                tinystore.save(8, store, path="x", lock_timeout=0.2)
        finally:
            os.chmod(folder, 0o755)
            release.touch()
            reader.wait(timeout=30)
            reader.kill()
        assert reader.returncode == 0
        tinystore.save(8, store, path="x")
        assert tinystore.load(store, path="x") == 8
    finally:
        os.chmod(folder, 0o755)
        subprocess.run(["rm", "-rf", str(folder)], check=False)


# -- deleting a store under its lock ---------------------------------------------------------------
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_delete_waits_for_the_lock_of_another_process(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save({"a": 1}, store, path="x")
    release = tmp_path / "release"
    writer = _holder(store, "a", release)
    try:
        with pytest.raises(StoreLockedError):
            tinystore.delete(store, lock_timeout=0.2)
        # nothing was removed while the other process held the store
        assert os.path.exists(_lock_file(backend, store))
    finally:
        _finish(writer, release)
    assert writer.returncode == 0
    assert tinystore.load(store, path="x") == {"a": 1}
    tinystore.delete(store, lock_timeout=5)
    assert not os.path.lexists(store)
    assert not os.path.lexists(_lock_file(backend, store))


class _DeletedBeforeFlock(StoreLock):
    """A lock whose file is deleted (as ``tinystore.delete`` does, holding the
    lock) between this process's open and its flock: the race of a waiter."""

    raced = False

    def _open_fd(self, shared):
        fd = super()._open_fd(shared)
        if not self.raced:
            self.raced = True
            os.unlink(self.path)
        return fd


def test_lock_taken_on_the_current_lock_file_after_a_delete(tmp_path):
    path = str(tmp_path / "x.lock")
    lock = _DeletedBeforeFlock(path, "x", 5, readonly=False)
    lock.acquire()
    try:
        held = os.fstat(lock._held.fd)
        now = os.stat(path)  # the lock file exists again, and it is the one locked
        assert (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
        # so a second process's lock on the path conflicts with ours
        code = (
            "import sys\n"
            "from tinystore.storage.locking import StoreLock\n"
            f"StoreLock({path!r}, 'x', 0.1, False).acquire()\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=child_env()
        )
        assert "StoreLockedError" in proc.stderr
    finally:
        lock.release()


# -- one process, several storages of one store ------------------------------------------------
@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_load_inside_a_batch_reads_the_committed_state(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save([1, 2], store, path="x")
    with tinystore.open(store, lock_timeout=0.5) as s, s.batch():
        s["x"] = [3]
        s["y"] = "new"
        # not a wait for itself until the timeout: the last committed state
        assert tinystore.load(store, path="x", lock_timeout=0.5) == [1, 2]
        assert "y" not in tinystore.open(store, "r", lock_timeout=0.5)
    assert tinystore.load(store, path="x") == [3]
    assert tinystore.load(store, path="y") == "new"


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_a_second_writer_in_one_thread_fails_at_once(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save(1, store, path="x")
    with tinystore.open(store, lock_timeout=30) as s, s.batch():
        s["x"] = 2
        with pytest.raises(StoreLockedError, match="this thread"):
            tinystore.save(5, store, path="x", lock_timeout=30)
    assert tinystore.load(store, path="x") == 2
    with tinystore.open(store, "r", lock_timeout=30) as r, r.hold():
        assert r["x"] == 2
        with pytest.raises(StoreLockedError, match="this thread"):
            tinystore.save(5, store, path="x", lock_timeout=30)
    assert tinystore.load(store, path="x") == 2


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_a_write_inside_a_read_session_of_the_same_storage(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save(1, store, path="x")
    with tinystore.open(store, lock_timeout=5) as s, s.hold():
        assert s["x"] == 1
        s["x"] = 2  # the shared lock becomes exclusive
        assert s["x"] == 2
    assert tinystore.load(store, path="x") == 2


@pytest.mark.parametrize("backend", FILE_BACKENDS)
def test_upgrade_waits_for_other_readers_then_times_out(backend, tmp_path):
    store = _store(backend, tmp_path)
    tinystore.save(1, store, path="x")
    release = tmp_path / "release"
    s = tinystore.open(store, lock_timeout=0.2)
    reader = _holder(store, "r", release)
    try:
        with s.hold():
            assert s["x"] == 1
            with pytest.raises(StoreLockedError):
                s["x"] = 2
            assert s["x"] == 1  # the read session goes on
    finally:
        _finish(reader, release)
        s.close()
    assert tinystore.load(store, path="x") == 1


# -- empty paths ------------------------------------------------------------------------------------
def test_empty_path_is_an_invalid_key(filename):
    tinystore.save({"a": 1}, filename)
    with pytest.raises(InvalidKeyError):
        tinystore.save(2, filename, path="")
    with pytest.raises(InvalidKeyError):
        tinystore.load(filename, path="")
    with pytest.raises(InvalidKeyError):
        tinystore.delete(filename, path="")
    with tinystore.open(filename) as s:
        for act in (lambda: s[""], lambda: s.create_group(""), lambda: s.__delitem__("")):
            with pytest.raises(InvalidKeyError):
                act()
        with pytest.raises(InvalidKeyError):
            s[""] = 3
    assert tinystore.load(filename) == {"a": 1}  # nothing replaced or deleted


def test_empty_path_refused_before_a_store_is_made(backend, tmp_path):
    store = _store(backend, tmp_path) if backend != "memory" else None
    if store is None:
        pytest.skip("memory stores are not files")
    with pytest.raises(InvalidKeyError):
        tinystore.save(2, store, path="")
    assert not os.path.lexists(store)


def test_delete_options_a_backend_does_not_take_are_a_backend_error():
    tinystore.save(1, "memory://delete-options", path="x")
    try:
        with pytest.raises(tinystore.errors.BackendError):
            tinystore.delete("memory://delete-options", lock_timeout=1)
    finally:
        tinystore.delete("memory://delete-options")
