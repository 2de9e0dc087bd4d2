"""One rule for loading crafted stores: never allocate or compute more than
the file's own bytes justify.

A stored node is small; what it may make the loader build must be, too.
Every check that enforces this lives here, and the decoder and the adapters
call them before they allocate or compute:

* :func:`check_items` -- an array node claims a shape: it must hold one
  stored item per element (no ``np.empty`` of a size the file never paid
  for, no uninitialised memory handed out);
* :func:`check_length` -- a frame's column or a series' values must be as
  long as its index (a ``RangeIndex(2e8)`` costs nothing; a stored scalar
  broadcast along it would cost gigabytes);
* :func:`check_dtype` -- a dtype rebuilt from a stored state: its fields must
  lie inside its items, or numpy reads and writes outside its buffers;
* :func:`check_call` -- what safe loading may call, with which arguments: no
  iterable computed rather than stored, no number whose digits the file does
  not hold (``Fraction("1e100000000")``), no slice assignment (a store's
  aliases can double a list with each one);
* :func:`check_time_zone` -- a stored zone name is a name, never a path to
  a file (``dateutil/<path>`` opens one).

Each is cheap (it looks at sizes and types, never at the data), so it runs on
every load, safe or not; those about calls run in safe loading, where a store
is not trusted to run code anyway.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from tinystore.errors import CorruptStoreError, UnsafeLoadError

#: Decimal exponents a stored number may carry in safe loading: Python's own
#: limit on the digits of an ``int`` made from a string
#: (``sys.int_info.default_max_str_digits``).  ``Fraction("1e100000000")``
#: would compute a hundred-million-digit integer from 11 bytes.
MAX_EXPONENT = 4300

_EXPONENT = re.compile(r"[eE]\s*([+-]?\d[\d_]*)")


def check_items(shape: Any, count: int, where: str) -> int:
    """The size of an array of ``shape`` that ``count`` stored items fill;
    refused unless the shape is valid and the items fill it exactly."""
    if type(shape) not in (list, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise CorruptStoreError(f"{where}: an array's shape is {shape!r:.60}")
    size = 1
    for n in shape:
        size *= n
    if size != count:
        raise CorruptStoreError(
            f"{where}: an array of shape {tuple(shape)} ({size} elements) holds {count} items"
        )
    return size


def check_length(values: Any, index: Any, where: str) -> None:
    """Refuse ``values`` that are not a sequence as long as ``index``: pandas
    would broadcast a scalar (or a length-1 array) along all of it."""
    try:
        ok = len(values) == len(index)
    except TypeError:
        ok = False
    if not ok:
        raise CorruptStoreError(f"{where}: stored values do not match the length of their index")


def check_dtype(dtype: Any, where: str) -> None:
    """Refuse a dtype whose fields (or those of a field's, or of a sub-array's
    dtype) do not lie within its items: numpy trusts them, and reads or writes
    outside an array's memory (a segfault, or worse) when they do not."""
    stack = [dtype]
    while stack:
        dt = stack.pop()
        if dt.subdtype is not None:
            stack.append(dt.subdtype[0])
        if dt.fields is None:
            continue
        for name, field in dt.fields.items():
            sub, offset = field[0], field[1]
            if offset < 0 or offset + sub.itemsize > dt.itemsize:
                raise CorruptStoreError(
                    f"{where}: field {name!r:.40} of a stored dtype lies outside its "
                    f"{dt.itemsize}-byte items (offset {offset}, {sub.itemsize} bytes)"
                )
            if sub.hasobject and not dt.hasobject:
                raise CorruptStoreError(f"{where}: a stored dtype hides object fields")
            stack.append(sub)


def check_call(name: str, args: Any) -> None:
    """Safe loading: refuse a call of the allowed callable ``name`` whose
    arguments would make it compute more than they hold."""
    if name == "fractions:Fraction":
        for arg in args if type(args) is tuple else ():
            _check_number(arg, name)


def _check_number(arg: Any, name: str) -> None:
    text = None
    if type(arg) is str:
        text = arg
    elif type(arg).__name__ == "Decimal":  # Fraction(Decimal) computes 10**exponent too
        exponent = arg.as_tuple().exponent
        if type(exponent) is int and abs(exponent) > MAX_EXPONENT:
            why = f"safe loading refuses {name} of a number with exponent {exponent}"
            raise UnsafeLoadError(why)
        return
    if text is None:
        return
    for match in _EXPONENT.finditer(text):
        digits = match.group(1).replace("_", "").lstrip("+-").lstrip("0")
        if len(digits) > 5 or (digits and int(digits) > MAX_EXPONENT):
            raise UnsafeLoadError(
                f"safe loading refuses {name}({text[:40]!r}): its exponent would compute "
                "a number far larger than the store holds"
            )


def check_slice_keys(keys: Any, where: str) -> None:
    """Safe loading: reduce ``dictitems`` are items, never slice assignments
    (which, through aliases of one list, double it with every node)."""
    for key in keys:
        if type(key) is slice:
            raise UnsafeLoadError(f"{where}: safe loading refuses a slice assignment")


_ZONE = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z")


def check_time_zone(tz: Any, where: str) -> None:
    """A stored time zone name is a zone's name (``Europe/Berlin``,
    ``dateutil/Europe/Berlin``, ``UTC+01:00``), never a file's path:
    ``dateutil/`` followed by a path makes pandas open that file."""
    if type(tz) is not str:
        return
    name = tz[len("dateutil/") :] if tz.startswith("dateutil/") else tz
    if ":" in name and "/" not in name:  # a fixed offset, e.g. "+01:00"
        return
    if not _ZONE.match(name) or ".." in name:
        raise CorruptStoreError(f"{where}: {tz[:80]!r} is not a time zone name")


def check_built(obj: Any, where: str) -> None:
    """Check an object a reduce node built (from a stored state) before it is
    used: a numpy dtype, whatever made it (``numpy.dtype.__setstate__``)."""
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.dtype):
        check_dtype(obj, where)
