"""Environments for child processes that must import the same tinystore as the tests.

The suite runs against the *installed* package (CI installs it non-editable
and runs from outside the checkout).  A child process started by a test
inherits that: its ``PYTHONPATH`` names only the folder the running
``tinystore`` was imported from (site-packages in CI, a checkout during
development) and this helpers folder, never the checkout by assumption.
"""

from __future__ import annotations

import os
from pathlib import Path

import tinystore

HELPERS = Path(__file__).resolve().parent
PACKAGE_PARENT = Path(tinystore.__file__).resolve().parent.parent


def child_env(**extra: str) -> dict[str, str]:
    """``os.environ`` plus a ``PYTHONPATH`` that finds this tinystore and the helpers."""
    env = dict(os.environ)
    parts = [str(PACKAGE_PARENT), str(HELPERS)]
    if env.get("PYTHONPATH"):
        parts.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.update(extra)
    return env


def kill_while_writing(argv: list[str], pause: float) -> int:
    """Run the writer ``argv`` (it prints the count of its completed saves,
    one per line, starting with ``0``), SIGKILL it after ``pause`` seconds,
    and return the last count it printed: every save up to it completed."""
    import signal
    import subprocess
    import time

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=child_env(), text=True)
    first = proc.stdout.readline()  # it has started
    assert first.strip() == "0", first
    time.sleep(pause)
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    return int((first + out).split()[-1])
