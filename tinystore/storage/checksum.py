"""Checksums of records and external leaves.

The checksum is a 64-bit wrapping sum of the data read as little-endian
64-bit words (the last, short word padded with zeros), plus its length, as
16 hex digits.  Any damage confined to one 8-byte word (a flipped bit or
byte) changes it, and so does nearly any other; it runs at memory speed
(numpy's vectorised sum), where CRC32 (zlib) would cost about as much as the
load itself.  It is a check against damage, not against tampering.

Being a sum, it can be taken a piece at a time (:class:`Sum64`): a backend
that reads a leaf in pieces sums each piece while it is still in the CPU
cache, instead of a second pass over the whole leaf from memory
(``benchmarks/checksum_cost.py`` measures what checking costs).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tinystore.errors import CorruptStoreError

_MASK = (1 << 64) - 1
#: The end of a sealed record: ``,"h":"<16 hex digits>"}`` (and a newline
#: when the record is written a line per node).
_TAIL = re.compile(rb',"h":"([0-9a-f]{16})"\}\n?\Z')


def sum64(data: Any) -> str:
    """The checksum of a bytes-like object or a contiguous uint8 array."""
    buf = data if type(data) is np.ndarray else np.frombuffer(data, np.uint8)
    n = len(buf) - len(buf) % 8
    total = int(buf[:n].view("<u8").sum(dtype=np.uint64)) if n else 0
    total += int.from_bytes(bytes(buf[n:]), "little") + len(buf)
    return format(total & _MASK, "016x")


class Sum64:
    """:func:`sum64` of the concatenation of the pieces given to :meth:`update`
    (of any lengths: the words are counted from the start of the first)."""

    __slots__ = ("_total", "_length", "_carry")

    def __init__(self) -> None:
        self._total = 0
        self._length = 0
        self._carry = b""  # the bytes of a word not yet complete

    def update(self, data: Any) -> None:
        buf = data if type(data) is np.ndarray else np.frombuffer(data, np.uint8)
        if not self._carry and not len(buf) % 8:  # whole words: a piece of a big leaf
            self._length += len(buf)
            self._total += int(buf.view("<u8").sum(dtype=np.uint64))
            return
        self._length += len(buf)
        if self._carry:
            need = 8 - len(self._carry)
            self._carry += bytes(buf[:need])
            buf = buf[need:]
            if len(self._carry) < 8:
                return
            self._total += int.from_bytes(self._carry, "little")
            self._carry = b""
        n = len(buf) - len(buf) % 8
        if n:
            self._total += int(buf[:n].view("<u8").sum(dtype=np.uint64))
        self._carry = bytes(buf[n:])

    @property
    def length(self) -> int:
        """Bytes summed so far."""
        return self._length

    def hexdigest(self) -> str:
        total = self._total + int.from_bytes(self._carry, "little") + self._length
        return format(total & _MASK, "016x")


def leaf_sum(value: Any, order: str = "C") -> str | None:
    """The checksum of an external leaf's bytes (an array's in ``order``), or
    None for structured arrays (HDF5 need not keep their padding bytes)."""
    if type(value) is not np.ndarray:
        return sum64(value)
    if value.dtype.fields is not None:
        return None
    contiguous = value.flags.f_contiguous if order == "F" else value.flags.c_contiguous
    if not contiguous:
        value = np.asarray(value, order=order)
    if not value.dtype.itemsize:
        return sum64(b"")
    return sum64(value.reshape(-1, order=order).view(np.uint8))


def seal(text: bytes) -> bytes:
    """A record's JSON text with its checksum as its last key ``"h"``: the sum
    of every byte before ``,"h"`` (older readers ignore the key)."""
    newline = text.endswith(b"\n")
    end = len(text) - (2 if newline else 1)  # the body: without the closing brace
    digest = sum64(memoryview(text)[:end]).encode("ascii")  # (a view: no copy)
    return b"".join((memoryview(text)[:end], b',"h":"', digest, b'"}\n' if newline else b'"}'))


def check_seal(data: bytes, where: str) -> bool:
    """True if the record ``data`` has a checksum and it matches; False if it
    has none (written before checksums); CorruptStoreError if it does not match."""
    start = max(len(data) - 25, 0)  # the tail is at most 25 bytes
    found = _TAIL.search(data, start)
    if found is None:
        return False
    body = memoryview(data)[: found.start()]  # (a view: no copy)
    if sum64(body).encode("ascii") != found.group(1):
        raise CorruptStoreError(f"the record of {where} is damaged (its checksum does not match)")
    return True
