"""Saves one object to every file backend (driven by tests/test_deterministic.py).

usage: python deterministic.py OUTDIR

Writes ``OUTDIR/obj.h5``, ``OUTDIR/obj.json`` and ``OUTDIR/memory.bin`` (the
records and leaves of a memory store).  The parent runs this in processes
with different ``PYTHONHASHSEED`` and compares the files byte for byte.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np


class Particle:
    def __init__(self, name: str, tags: set, position: np.ndarray):
        self.name = name
        self.tags = tags
        self.position = position


class Tags(set):
    """A set subclass: stored through the reduce protocol, not the set adapter."""


class FrozenTags(frozenset):
    pass


@dataclasses.dataclass
class Run:
    label: str
    particles: list
    seen: frozenset
    options: dict


def build() -> dict:
    """An object whose iteration order of sets depends on the hash seed."""
    words = [f"word{i}" for i in range(40)]
    long_text = "long " * 40  # memoised: whichever occurrence comes first is the anchor
    shared = {"shared", "by", "two", long_text}
    particles = [
        Particle(f"p{i}", {f"tag{j}" for j in range(i, i + 6)}, np.arange(3.0) + i)
        for i in range(5)
    ]
    run = Run(
        label="run",
        particles=particles,
        seen=frozenset(words),
        options={"set": shared, "again": shared, "ints": set(range(100, 0, -7))},
    )
    return {
        "strings": set(words),
        "frozen": frozenset({frozenset({"a", "b"}), frozenset({"c"}), frozenset()}),
        "mixed": {1, 2.5, "text", b"bytes", None, (1, "x"), ("y", 2), 3 + 4j, long_text},
        "tuples": {("a", 1), ("b", 2), ("a", 2)},
        "bytes": {b"x", b"y", b"zz"},
        "nested": {"dict": {"inner": set("abcdefgh")}, "list": [set("xyz"), frozenset("uvw")]},
        "run": run,
        "array": np.arange(5000, dtype=np.float64).reshape(50, 100),
        "small": np.arange(6, dtype=np.int32),
        "text": long_text,
        "subclasses": [Tags(words[:10]), FrozenTags(words[10:20])],
        "set_keys": {frozenset({"k", "l"}): 1, frozenset({"m"}): 2},
    }


def main() -> None:
    import tinystore
    from tinystore.storage import memory

    out = Path(sys.argv[1])
    obj = build()
    tinystore.save(obj, out / "obj.h5")
    tinystore.save(obj, out / "obj.json")
    tinystore.save(obj, "memory://obj")
    groups = memory._REGISTRY["obj"].groups  # what a memory store holds, as bytes
    with open(out / "memory.bin", "wb") as f:
        for gpath in sorted(groups):
            f.write(
                repr(
                    (gpath, groups[gpath]["record"], sorted(groups[gpath]["ext"].items()))
                ).encode()
            )


if __name__ == "__main__":
    # the classes must be saved as ``deterministic.X``, not ``__main__.X``
    import deterministic

    deterministic.main()
