"""A process that saves into an icechunk store (driven by tests/test_icechunk.py).

usage: python icechunk_writer.py STORE replace COUNT   one key "x" replaced again and again
       python icechunk_writer.py STORE keys PREFIX COUNT   keys PREFIX0 ... (one save each)

Prints the index of each completed save, so the parent knows what must be there.
"""

import sys

import numpy as np

import tinystore


def result(i: int, size: int = 200_000) -> dict:
    """A value whose parts all say ``i``: a torn value would show it."""
    return {"i": i, "data": np.full(size, i, dtype=np.int64), "label": f"save {i}"}


def main() -> None:
    store, what = sys.argv[1], sys.argv[2]
    if what == "replace":
        for i in range(int(sys.argv[3])):
            tinystore.save(result(i), store, path="x", message=f"save {i}")
            print(i, flush=True)
    else:
        prefix, count = sys.argv[3], int(sys.argv[4])
        for i in range(count):
            tinystore.save(result(i, 100), store, path=f"{prefix}{i}")
            print(i, flush=True)


if __name__ == "__main__":
    main()
