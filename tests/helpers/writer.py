"""A process that writes to a store in a loop (driven by tests/test_reliability.py).

usage: python writer.py STORE PREFIX COUNT

Prints the index of each completed assignment, so the parent knows what
must survive a kill.
"""

import sys

import numpy as np

import tinystore


def item(prefix: str, i: int) -> dict:
    return {
        "i": i,
        "prefix": prefix,
        "data": np.full(300 + (i % 7) * 400, i, dtype=np.int64),
        "text": "x" * (i % 50),
        "nested": [(i, str(i)), {"k": float(i)}],
    }


def main() -> None:
    store, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with tinystore.open(store, lock_timeout=120) as s:
        for i in range(count):
            s[f"{prefix}{i}"] = item(prefix, i)
            s["latest"] = item(prefix, i)  # overwritten again and again
            if i % 5 == 4:
                del s[f"{prefix}{i - 2}"]
            print(i, flush=True)


if __name__ == "__main__":
    main()
