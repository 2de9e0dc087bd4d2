"""A save that makes a new HDF5 file writes it whole under a temporary name
(``<file>.writing``, beside the lock file) and renames it into place: no
journal, and until the rename there is no file.

A writer killed (or failing) at any step leaves no file, or the complete new
one; the next writer removes what a killed one left; a reader finds no file
or the whole new one; the file gets the permissions a plain new file gets,
and a dangling symbolic link gets its target made, as before.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import tinystore
from tinystore.storage import hdf5, journal

sys.path.insert(0, str(Path(__file__).parent / "helpers"))
import batch_writer as bw  # noqa: E402
from procs import child_env  # noqa: E402

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="the writers are forked")
VALUE = {"a": 1, "arr": np.arange(1000.0), "text": "new"}
#: a small object: its new file is written by tinystore, not HDF5 (hdf5_image)
SMALL = {"a": 1, "text": "new"}
#: an object of one contiguous record (~100 KB): written by tinystore too
LARGE = {"a": 1, "text": "new", "pad": "p" * 100_000}


def _save(store: str) -> None:
    tinystore.save(VALUE, store)


def _save_small(store: str) -> None:
    tinystore.save(SMALL, store)


def _save_large(store: str) -> None:
    tinystore.save(LARGE, store)


def _assign(store: str) -> None:
    with tinystore.open(store) as s:  # a new file made by the first session
        s["a"] = 1


def _complete(store: str, value: dict = VALUE) -> bool:
    """True if the store holds ``value``; False if there is no file."""
    if not os.path.exists(store):
        with pytest.raises(FileNotFoundError):
            tinystore.load(store)
        return False
    got = tinystore.load(store)
    assert got.keys() == value.keys() and got["a"] == 1 and got["text"] == "new"
    if "arr" in value:
        np.testing.assert_array_equal(got["arr"], value["arr"])
    return True


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize("job, value", [(_save, VALUE), (_save_small, SMALL), (_save_large, LARGE)])
def test_new_file_killed_at_every_step_is_no_file_or_the_whole_file(tmp_path, job, value):
    job(str(tmp_path.parent / f"{tmp_path.name}-warm.h5"))  # first-call caches made
    store = str(tmp_path / "new.h5")
    status, out = bw.forked(store, "count", job=job)
    assert status == 0 and out.startswith("ok"), out
    steps = int(out.split()[1])
    assert steps >= 3  # the lock file, the temporary file, the rename
    seen = set()
    for n in range(1, steps + 1):
        tinystore.delete(store)
        assert _left(tmp_path) == []
        status, out = bw.forked(store, "kill", n, job=job)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, (n, out)
        assert not os.path.exists(store + ".journal")  # a new file is never journaled
        complete = _complete(store, value)  # a reader: nothing, or all of it
        seen.add(complete)
        job(store)  # the next writer: removes what the killed one left
        assert _complete(store, value)
        assert _left(tmp_path) == ["new.h5", "new.h5.lock"], n
    assert seen == {False}  # the rename is the last step


@pytest.mark.slow
@needs_fork
@pytest.mark.parametrize("job", [_save, _save_small, _save_large, _assign])
def test_new_file_failing_at_every_step_leaves_nothing(tmp_path, job):
    _save(str(tmp_path.parent / f"{tmp_path.name}-warm.h5"))  # first-call caches made
    _save_large(str(tmp_path.parent / f"{tmp_path.name}-warm-large.h5"))
    store = str(tmp_path / "new.h5")
    status, out = bw.forked(store, "count", job=job)
    steps = int(out.split()[1])
    tinystore.delete(store)
    for n in range(1, steps + 1):
        status, out = bw.forked(store, "raise", n, job=job)
        assert status == 0 and out.startswith("failed"), (n, out)
        if job is not _assign or not os.path.exists(store):
            assert _left(tmp_path) == [], (n, out)  # not even the lock file
        else:  # open() made the empty store; the assignment's session then failed
            with tinystore.open(store, "r") as s:
                assert list(s) == [], (n, out)
            tinystore.delete(store)


def test_a_reader_during_the_save_finds_no_file(tmp_path, monkeypatch):
    store = str(tmp_path / "new.h5")
    seen = {}
    real = journal.rename

    def rename(src: str, dst: str) -> None:
        # the file is complete under its temporary name, not yet in place
        seen["tmp"] = sorted(os.listdir(tmp_path))
        reader = "import sys, tinystore\ntry:\n tinystore.load(sys.argv[1])\nexcept "
        reader += "FileNotFoundError:\n print('no file')\n"
        proc = subprocess.run(
            [sys.executable, "-c", reader, store],
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        seen["reader"] = proc.stdout.strip() or proc.stderr
        real(src, dst)

    monkeypatch.setattr(journal, "rename", rename)
    tinystore.save(VALUE, store)
    assert seen["tmp"] == ["new.h5.lock", "new.h5" + hdf5.NEW_SUFFIX]
    assert seen["reader"] == "no file"
    assert _complete(store)


@pytest.mark.parametrize("value", [VALUE, SMALL])
def test_a_leftover_temporary_file_or_link_is_replaced_not_followed(tmp_path, value):
    store = tmp_path / "new.h5"
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"keep me")
    Path(str(store) + hdf5.NEW_SUFFIX).symlink_to(outside)
    tinystore.save(value, str(store))
    assert outside.read_bytes() == b"keep me"
    assert _complete(str(store), value)
    assert not os.path.lexists(str(store) + hdf5.NEW_SUFFIX)


@pytest.mark.parametrize("value", [VALUE, SMALL])
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_new_file_gets_the_permissions_of_a_new_file(tmp_path, umask, value):
    old = os.umask(umask)
    try:
        tinystore.save(value, str(tmp_path / "new.h5"))
        (tmp_path / "plain").write_bytes(b"")
    finally:
        os.umask(old)
    mode = os.stat(tmp_path / "new.h5").st_mode & 0o777
    assert mode == os.stat(tmp_path / "plain").st_mode & 0o777 == 0o666 & ~umask


def test_a_dangling_link_gets_its_target_made(tmp_path):
    target = tmp_path / "scratch" / "run.h5"
    target.parent.mkdir()
    link = tmp_path / "run.h5"
    link.symlink_to(target)
    tinystore.save(VALUE, str(link))
    assert link.is_symlink() and target.is_file()
    assert _complete(str(link)) and _complete(str(target))
    assert sorted(p.name for p in target.parent.iterdir()) == ["run.h5", "run.h5.lock"]


def test_an_existing_file_is_still_updated_in_place(tmp_path):
    """Only a missing file is made under a temporary name: a save over an
    existing one keeps its inode (hard links, permissions) and is journaled."""
    store = tmp_path / "old.h5"
    tinystore.save({"old": 1}, str(store))
    os.chmod(store, 0o640)
    inode = os.stat(store).st_ino
    tinystore.save(VALUE, str(store))
    assert os.stat(store).st_ino == inode and os.stat(store).st_mode & 0o777 == 0o640
    assert _complete(str(store))


def test_durable_new_file_is_on_the_disk_before_its_rename(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "TRACE", [])
    store = str(tmp_path / "new.h5")
    tinystore.save(VALUE, store, durable=True)
    trace = journal.TRACE
    tmp = store + hdf5.NEW_SUFFIX
    renamed = trace.index(("rename", store, tmp))
    assert ("fsync", tmp, "") in trace[:renamed]  # its bytes first
    assert ("fsync", str(tmp_path), "") in trace[renamed:]  # then its name
    assert _complete(store)


def test_open_of_a_new_file_makes_it_at_once(tmp_path):
    """``tinystore.open`` (checked at once) makes the empty store before it
    returns, whole, under the temporary name first."""
    store = str(tmp_path / "new.h5")
    s = tinystore.open(store)
    assert _left(tmp_path) == ["new.h5", "new.h5.lock"]
    with tinystore.open(store, "r") as reader:
        assert list(reader) == []
    s["a"] = 1
    s.close()
    assert tinystore.load(store, path="a") == 1


# -- the HDF5 properties of new files and objects ---------------------------------------------


def test_small_records_are_compact_datasets_and_large_ones_contiguous(tmp_path):
    store = str(tmp_path / "s.h5")
    big = {f"key{i}": f"value number {i}" for i in range(4000)}  # a record of ~100 KB
    small = {f"k{i}": i for i in range(100)}  # more than a value kept in its parent's record
    tinystore.save(small, store, path="small")
    tinystore.save(big, store, path="big")
    with h5py.File(store, "r") as f:
        layout = {
            name: f[name]["@record"].id.get_create_plist().get_layout() for name in ("small", "big")
        }
        assert f["big"]["@record"].dtype.itemsize > hdf5.COMPACT_RECORD_BYTES
    assert layout == {"small": h5py.h5d.COMPACT, "big": h5py.h5d.CONTIGUOUS}
    assert tinystore.load(store, path="big") == big
    assert tinystore.load(store, path="small") == small


def test_every_group_keeps_its_links_in_its_header(tmp_path):
    """Every group of a new file tracks the order of its links, which makes
    HDF5 keep them in its header (no symbol table: B-tree and heap)."""
    store = str(tmp_path / "s.h5")
    tinystore.save(1, store, path="a")
    with tinystore.open(store) as s:
        s.create_group("g")
        s["g/x"] = {"b": np.arange(100.0)}
    with h5py.File(store, "r") as f:
        for group in ("/", "g", "g/x"):
            order = f[group].id.get_create_plist().get_link_creation_order()
            assert order & h5py.h5p.CRT_ORDER_TRACKED, group
        assert f["g/x/b"][()].shape == (100,)
    many = str(tmp_path / "many.h5")
    tinystore.save([{"x": np.arange(20.0)} for _ in range(50)], many)
    assert os.path.getsize(many) < 50 * 1500  # a symbol table costs ~4 KiB a group


def test_several_sessions_give_the_same_bytes_at_other_times(tmp_path):
    """No timestamps anywhere (HDF5 1.10's superblock extension would keep
    them, made again as free space changes): the same operations, one
    second apart, give byte-identical files."""
    script = (
        "import sys, numpy as np, tinystore\n"
        "f = sys.argv[1]\n"
        "tinystore.save({'a': 1}, f, path='x')\n"
        "with tinystore.open(f) as s:\n"
        "    for i in range(12):\n"
        "        s[f'step{i}'] = {'i': i, 'arr': np.arange(100.0) + i}\n"
        "with tinystore.open(f, compression='gzip') as s:\n"
        "    s['z'] = np.zeros(5000)\n"
        "    del s['step3']\n"
        "    s['step5'] = 'replaced'\n"
    )
    files = []
    for name in ("one.h5", "two.h5"):
        files.append(tmp_path / name)
        subprocess.run([sys.executable, "-c", script, str(files[-1])], env=child_env(), check=True)
        time.sleep(1.1)  # HDF5's timestamps count seconds
    assert files[0].read_bytes() == files[1].read_bytes()


def test_an_empty_store_is_small(tmp_path):
    store = tmp_path / "s.h5"
    tinystore.save({"a": 1}, str(store))
    assert os.path.getsize(store) < 1024  # (1.8 KB before 0.2: a root B-tree and heap)


def test_a_new_file_session_that_writes_nothing_leaves_an_empty_store(tmp_path):
    store = str(tmp_path / "s.h5")
    with tinystore.open(store, check=False) as s:  # made by its first session
        assert len(s) == 0
    with h5py.File(store, "r") as f:
        assert list(f) == ["@record"]
    with tinystore.open(store, "r") as s:
        assert list(s) == []


def test_h5py_lists_groups_in_creation_order_h5ls_by_name(tmp_path):
    store = str(tmp_path / "s.h5")
    tinystore.save({"x": np.arange(100.0)}, store, path="zeta")
    tinystore.save({"x": np.arange(100.0)}, store, path="alpha")
    tinystore.save({"x": np.arange(100.0)}, store, path="alpha/zz")
    tinystore.save({"x": np.arange(100.0)}, store, path="alpha/aa")
    with h5py.File(store, "r") as f:
        names = list(f)
        inner = list(f["alpha"])
        tracked = f["alpha"].id.get_create_plist().get_link_creation_order()
    assert names.index("zeta") < names.index("alpha")
    assert inner.index("zz") < inner.index("aa")
    assert tracked & h5py.h5p.CRT_ORDER_TRACKED  # links in the group's header
    if shutil.which("h5ls"):
        out = subprocess.run(["h5ls", store], capture_output=True, text=True, check=True)
        listed = [line.split()[0] for line in out.stdout.splitlines()]
        assert listed == sorted(listed) and "alpha" in listed
