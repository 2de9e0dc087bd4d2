"""A canonical order for the elements of sets, so that files do not depend on hashing.

A set iterates in an order that follows the hashes of its elements, and the
hash of a str or bytes changes with every process (``PYTHONHASHSEED``).  So
that one object saved twice gives the same bytes, set elements are written
sorted by a key that orders every value of the kinds below, across kinds:

* None; numbers (bool, int, float, complex: by value, as Python compares
  them); str; bytes; tuples and frozensets of those (element by element).

Elements that compare equal cannot be in one set together, so the order is
total.  (NaN is not equal to itself, so several NaN objects may be: they are
ordered by their bits, and equal bits write equal bytes.)  A set holding
anything else (instances, subclasses of these types) keeps its iteration
order.  Loading builds a set from the elements either way: the order is not
part of its value.
"""

from __future__ import annotations

import math
import struct
from typing import Any

__all__ = ["canonical_order"]

#: Sets of one of these exact types only are sorted by plain comparison (fast).
_SORTABLE_ALONE = frozenset([str, bytes, int])


def canonical_order(items: Any) -> list:
    """The elements of a set or frozenset, in an order hashing does not change."""
    kinds = set(map(type, items))
    if len(kinds) == 1 and kinds <= _SORTABLE_ALONE:
        return sorted(items)
    try:
        return sorted(items, key=_key)
    except _Unordered:
        return list(items)


class _Unordered(Exception):
    """An element of a kind without a canonical key."""


def _key(x: Any) -> tuple:
    t = type(x)
    if x is None:
        return (0,)
    if t is int or t is bool:
        return (1, x)
    if t is float:
        return (1, x) if not math.isnan(x) else (2, struct.pack("<d", x))
    if t is complex:
        if math.isnan(x.real) or math.isnan(x.imag):
            return (2, struct.pack("<dd", x.real, x.imag))
        return (1, x.real, x.imag)
    if t is str:
        return (3, x)
    if t is bytes:
        return (4, x)
    if t is tuple:
        return (5, tuple(map(_key, x)))
    if t is frozenset:
        return (6, tuple(sorted(map(_key, x))))
    raise _Unordered
