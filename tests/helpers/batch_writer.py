"""A writer of one batch into several groups, killed (or failed) at a chosen step.

``forked(store, "count")`` runs the batch in a child process and says how
many file-system steps it took; ``forked(store, "kill", N)``: the child is
SIGKILLed just before its N-th step (1-based); ``"raise", N``: the N-th step
fails with ``OSError`` instead (the batch raises; the child reports it).
``python batch_writer.py STORE count|kill|raise [N]`` does the same in a new
process.

A step is an audited call (``sys.addaudithook``) that changes the store: an
``open`` for writing, ``os.rename``, ``os.remove``, ``os.mkdir``,
``os.rmdir``, ``shutil.rmtree``; and each write HDF5 makes through the
rollback journal's file object (``JournaledFile.write``).  The hook runs
before the call, so step N never happens.

``make(store)`` writes the store the batch starts from (``OLD``); after the
batch it holds ``NEW``; ``snapshot(store)`` reads it back.
"""

from __future__ import annotations

import errno
import os
import signal
import sys

import numpy as np

import tinystore
from tinystore.storage import journal

GROUPS = ("a", "b", "c")
BIG = 300_000  # bytes of an untouched array: HDF5 then journals page by page


def values(version: int) -> dict:
    """What the store holds at ``version`` 0 (before the batch) or 1 (after)."""
    out = {}
    for n, g in enumerate(GROUPS):
        out[g] = {
            "x": version * 10 + n,
            "arr": np.full(3000, version + n, dtype=float),
            "text": f"v{version}-{g}",
        }
    if version == 0:
        out["a"]["gone"] = "deleted by the batch"
    else:
        out["d"] = {"x": 1, "arr": np.arange(2000.0)}  # a group the batch makes
    return out


OLD, NEW = values(0), values(1)


def make(store: str, big: bool = False) -> None:
    with tinystore.open(store, "w") as s:
        for g, items in OLD.items():
            s.create_group(g)
            for key, value in items.items():
                s[f"{g}/{key}"] = value
        if big:
            s["big"] = np.zeros(BIG // 8)


def batch(store: str) -> None:
    """One batch: every group changes, one is made, one key goes."""
    with tinystore.open(store) as s:
        with s.batch():
            del s["a/gone"]
            for g, items in NEW.items():
                if g not in s:
                    s.create_group(g)
                for key, value in items.items():
                    s[f"{g}/{key}"] = value


def snapshot(store: str, mode: str = "r") -> dict:
    out = {}
    with tinystore.open(store, mode) as s:
        for g in sorted(s):
            if g in GROUPS or g == "d":  # not "big", nor what a test writes beside
                out[g] = {key: s[f"{g}/{key}"] for key in s[g]}
    return out


def same(state: dict, expected: dict) -> bool:
    if state.keys() != expected.keys():
        return False
    for g, items in expected.items():
        if state[g].keys() != items.keys():
            return False
        for key, value in items.items():
            got = state[g][key]
            if type(got) is not type(value):
                return False
            if isinstance(value, np.ndarray):
                if got.dtype != value.dtype or not np.array_equal(got, value):
                    return False
            elif got != value:
                return False
    return True


_WRITES = ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree")
_steps = 0
_target = 0
_action = "count"


def _step() -> None:
    global _steps
    _steps += 1
    if _steps == _target:
        if _action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.EIO, f"step {_steps} made to fail")


def _hook(event: str, args: tuple) -> None:
    if event in _WRITES:
        _step()
    elif event == "open" and len(args) > 2 and isinstance(args[0], str):
        mode, flags = args[1], args[2]
        writing = (mode is not None and any(c in mode for c in "wax+")) or (
            mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if writing:
            _step()


def _arm(action: str, target: int) -> None:
    global _action, _target
    _action, _target = action, target
    real_write = journal.JournaledFile.write

    def write(self, data):
        _step()
        return real_write(self, data)

    journal.JournaledFile.write = write
    sys.addaudithook(_hook)  # for good: only a process that ends after the batch arms it


def _batch_armed(store: str, action: str, target: int, job=None) -> str:
    _arm(action, target)
    try:
        (job or batch)(store)
    except OSError as exc:
        return f"failed {_steps} {exc}"
    return f"ok {_steps}"


def forked(store: str, action: str, target: int = 0, job=None) -> tuple[int, str]:
    """Run the batch (or ``job(store)``) in a forked child (tinystore is
    imported already, so a run costs milliseconds); ``(exit status, "ok
    STEPS" or "failed ...")``."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 0
        try:
            os.close(r)
            os.write(w, _batch_armed(store, action, target, job).encode())
        except BaseException:
            import traceback

            os.write(w, traceback.format_exc().encode())
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read().decode()
    _, status = os.waitpid(pid, 0)
    return status, out


if __name__ == "__main__":
    print(_batch_armed(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0))
