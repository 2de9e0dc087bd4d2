"""The bytes of a new tinystore HDF5 file whose whole content is its root
record, made without the HDF5 library.

Saving a small object into a new file costs HDF5 ~0.35 ms of fixed work
(creating the file, the record's dataset, flushing and closing), most of what
such a save costs.  Such a file is always laid out the same way: the
superblock (version 2) and its extension (the free-space settings), the root
group's header with its one link, and the record's dataset header, whose
compact layout message holds the record.  Only a few fields depend on the
record: its length (in the datatype and layout messages), the size of the
dataset's header, the null message that pads it, the end-of-file address (in
the superblock and in the extension) and the superblock's checksum.

:func:`template` takes a file HDF5 made (with tinystore's creation
properties) for a known record and checks that it is laid out exactly so;
:func:`image` then gives the file HDF5 would make for another record of the
compact class (1 to ``limit`` bytes), byte for byte: the template's bytes up
to the record's data, with those fields patched.  The tests compare the two
for every length around every boundary and for random records.
"""

from __future__ import annotations

import functools
import struct

from tinystore.storage.hdf5_records import header_sum

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# offsets in the file (HDF5 file format specification, sections II and IV)
_EOF_AT = 28  # superblock: end-of-file address
_CHECKSUM_AT = 44  # superblock: checksum of the 44 bytes before it
_EXT_EOA_AT = 93  # superblock extension's file space info: the end of allocated space
_HEADER_AT = 432  # the record's object header (version 1)
_HEADER_SIZE_AT = _HEADER_AT + 8  # its size, past its 16-byte prefix
_TYPE_SIZE_AT = 476  # the string datatype's size (the record's length)
_LAYOUT_SIZE_AT = 498  # the layout message's size
_COMPACT_SIZE_AT = 506  # the compact layout's data size
_DATA_AT = 508  # the record's bytes
#: the record's header holds: dataspace, datatype, fill value (16 bytes each),
#: the layout message (8 + its body) and a null message (8 + its body)
_FIXED_MESSAGES = 64
#: the record's header, past the layout message's body: at least this much
#: (HDF5 sizes it from the record's length rounded up to 8, see _header_size)
_HEADER_BASE = 256


#: the longest record a compact layout holds here (its message's size is 16 bits)
MAX_BYTES = 0xFFFF - 11


#: bytes the layout assumed has where it has them: the record's header (version
#: 1, 5 messages) and its dataspace, datatype, fill value and layout messages
#: (a compact layout, version 3); the root group's link to the record (its
#: name, and the header's address)
_EXPECTED = (
    (_HEADER_AT, b"\x01\x00\x05\x00"),
    (_HEADER_AT + 16, b"\x01\x00\x08\x00"),
    (_HEADER_AT + 32, b"\x03\x00\x08\x00"),
    (_HEADER_AT + 48, b"\x05\x00\x08\x00"),
    (_HEADER_AT + 64, b"\x08\x00"),
    (_DATA_AT - 4, b"\x03\x00"),
    (290, b"\x07@record" + struct.pack("<Q", _HEADER_AT)),
)


def _up8(n: int) -> int:
    return (n + 7) & ~7


def _layout_body(n: int) -> int:
    """The layout message's body: version, class, size, the data; 8-aligned."""
    return _up8(4 + n)


def _header_size(n: int) -> int:
    return _HEADER_BASE + _up8(n)


def _tail(record: bytes) -> bytes:
    """The record's bytes to the end of the file: its data padded to the end
    of the layout message, then the null message that fills the header."""
    n = len(record)
    body = _layout_body(n)
    nil = _header_size(n) - _FIXED_MESSAGES - body
    return record + bytes(body - 4 - n) + struct.pack("<HHB3x", 0, nil, 0) + bytes(nil)


@functools.lru_cache(maxsize=1024)
def _checksum(superblock: bytes) -> int:
    """The superblock's checksum (HDF5's own function where it is reached,
    ~1 µs; else ~15 µs in Python: files of a size seen before reuse it)."""
    return header_sum(superblock)


def _patch(head: bytearray, n: int) -> bytearray:
    """``head`` (the template's bytes before the data) patched for a record of
    ``n`` bytes, checksum included."""
    eof = _HEADER_AT + 16 + _header_size(n)
    struct.pack_into("<Q", head, _EOF_AT, eof)
    struct.pack_into("<Q", head, _EXT_EOA_AT, eof)
    struct.pack_into("<I", head, _HEADER_SIZE_AT, _header_size(n))
    struct.pack_into("<I", head, _TYPE_SIZE_AT, n)
    struct.pack_into("<H", head, _LAYOUT_SIZE_AT, _layout_body(n))
    struct.pack_into("<H", head, _COMPACT_SIZE_AT, n)
    struct.pack_into("<I", head, _CHECKSUM_AT, _checksum(bytes(head[:_CHECKSUM_AT])))
    return head


def template(made: bytes, record: bytes) -> bytes | None:
    """The part of ``made`` (a file HDF5 made for ``record``, see the module's
    docs) that does not depend on the record, or None if ``made`` is not
    laid out as this module assumes (another HDF5 version, say): then HDF5
    must make every file."""
    if not 0 < len(record) <= MAX_BYTES or not made.startswith(_SIGNATURE):
        return None
    head = bytearray(made[:_DATA_AT])
    if len(head) < _DATA_AT or any(head[at : at + len(v)] != v for at, v in _EXPECTED):
        return None
    # a file built from it for the same record must be the one HDF5 made
    if bytes(_patch(bytearray(head), len(record))) + _tail(record) != made:
        return None
    return bytes(head)


def image(head: bytes, record: bytes) -> bytes:
    """The file HDF5 makes for ``record`` (1 to :data:`MAX_BYTES` bytes), from the
    :func:`template` ``head``."""
    return bytes(_patch(bytearray(head), len(record))) + _tail(record)
