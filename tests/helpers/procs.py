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
