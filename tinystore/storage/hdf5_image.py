"""The bytes of a new tinystore HDF5 file whose whole content is its root
record, made without the HDF5 library.

Saving an object into a new file costs HDF5 ~0.2-0.35 ms of fixed work
(creating the file, the record's dataset, flushing and closing), most of what
a small save costs.  Such a file is always laid out the same way: the
superblock (version 2) and its extension (the free-space settings), the root
group's header with its one link, and the record's dataset header (version 1,
five messages: dataspace, datatype, fill value, layout, and a null message
that pads it).  Its layout is one of two:

* *compact* (a record of at most ``COMPACT_RECORD_BYTES``, see
  :mod:`tinystore.storage.hdf5`): the layout message holds the record, and
  the file ends with the record's header, whose size follows the record's
  length (:func:`_header_size`);
* *contiguous* (a longer record): the header is always 256 bytes, its layout
  message holds the data's address and size; HDF5 keeps the rest of its
  first block of metadata (2048 bytes) as free space, tracked by the
  free-space manager it writes there (header ``FSHD``, sections ``FSSE``),
  and the record's bytes follow that block, to the end of the file.

Only a few fields depend on the record: its length (in the datatype and
layout messages), for a compact one the size of the header and the null
message that pads it, the end-of-file address (in the superblock and in the
extension) and the superblock's checksum.

:func:`template` takes a file HDF5 made (with tinystore's creation
properties) for a known record and checks that it is laid out exactly so;
:func:`image` then gives the file HDF5 would make for another record of the
same layout (compact: 1 to :data:`MAX_BYTES` bytes; contiguous: 1 to
:data:`MAX_CONTIGUOUS_BYTES`), byte for byte: the template's bytes up to the
record's data, with those fields patched, then the record (and, compact, the
header's end).  The tests compare the two for every length around every
boundary and for random records.
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
_CLASS_AT = 504  # the layout message's body: version 3, then its class
_COMPACT = b"\x03\x00"
_CONTIGUOUS = b"\x03\x01"
_COMPACT_SIZE_AT = 506  # the compact layout's data size
_DATA_AT = 508  # the compact record's bytes
#: the record's header holds: dataspace, datatype, fill value (16 bytes each),
#: the layout message (8 + its body) and a null message (8 + its body)
_FIXED_MESSAGES = 64
#: the record's header, past the layout message's body: at least this much
#: (HDF5 sizes it from the record's length rounded up to 8, see _header_size)
_HEADER_BASE = 256
#: a contiguous record's bytes: past HDF5's first block of metadata (its
#: default size; nothing else is written past it)
_BLOCK = 2048
_CONTIGUOUS_SIZE_AT = _CLASS_AT + 10  # the contiguous layout's size, past its address


#: the longest record a compact layout holds here (its message's size is 16 bits)
MAX_BYTES = 0xFFFF - 11
#: The longest contiguous record made here.  The image is one ``bytes``
#: (block and record): building it copies the record once, which HDF5, writing
#: from the record's own buffer, does not.  Measured (a new file, written
#: whole): at 1 MiB the image is written in ~0.3 ms, HDF5's in ~0.5; at ~2 MiB the
#: copy costs what HDF5's fixed work saves, and at 16 MiB the image is
#: slower; so longer records are left to HDF5.  (The tests prove the layout
#: to here; when the rule was found, every length from 60,001 to 200,000 and
#: every multiple of 512 (and ±1) to 1 MiB gave HDF5's bytes, and lengths to
#: 16 MiB too.)
MAX_CONTIGUOUS_BYTES = 1 << 20


#: bytes the layouts assumed have where they have them: the record's header
#: (version 1, 5 messages) and its dataspace, datatype and fill value
#: messages; the root group's link to the record (its name, and the header's
#: address)
_EXPECTED = (
    (_HEADER_AT, b"\x01\x00\x05\x00"),
    (_HEADER_AT + 16, b"\x01\x00\x08\x00"),
    (_HEADER_AT + 32, b"\x03\x00\x08\x00"),
    (_HEADER_AT + 48, b"\x05\x00\x08\x00"),
    (_HEADER_AT + 64, b"\x08\x00"),
    (290, b"\x07@record" + struct.pack("<Q", _HEADER_AT)),
)
#: and for each layout: compact (version 3), with its data in the message;
#: contiguous (version 3) at the end of the metadata block, in a header of
#: 256 bytes that a null message fills, and the free-space manager's header
#: and sections right after it
_EXPECTED_BY_LAYOUT = {
    _COMPACT: ((_CLASS_AT, _COMPACT),),
    _CONTIGUOUS: (
        (_HEADER_AT + 4, b"\x01\x00\x00\x00" + struct.pack("<I", _HEADER_BASE)),
        (_HEADER_AT + 64, b"\x08\x00\x18\x00"),
        (_CLASS_AT, _CONTIGUOUS + struct.pack("<Q", _BLOCK)),
        (_CLASS_AT + 24, struct.pack("<HH", 0, _HEADER_BASE - _FIXED_MESSAGES - 24)),
        (_HEADER_AT + 16 + _HEADER_BASE, b"FSHD"),
        (_HEADER_AT + 16 + _HEADER_BASE + 82, b"FSSE"),  # (the header is 82 bytes)
    ),
}


def _up8(n: int) -> int:
    return (n + 7) & ~7


def _layout_body(n: int) -> int:
    """The compact layout message's body: version, class, size, the data; 8-aligned."""
    return _up8(4 + n)


def _header_size(n: int) -> int:
    return _HEADER_BASE + _up8(n)


def _tail(record: bytes) -> bytes:
    """A compact record's bytes to the end of the file: its data padded to
    the end of the layout message, then the null message that fills the
    header."""
    n = len(record)
    body = _layout_body(n)
    nil = _header_size(n) - _FIXED_MESSAGES - body
    return record + bytes(body - 4 - n) + struct.pack("<HHB3x", 0, nil, 0) + bytes(nil)


@functools.lru_cache(maxsize=1024)
def _checksum(superblock: bytes) -> int:
    """The superblock's checksum (HDF5's own function where it is reached,
    ~1 µs; else ~15 µs in Python: files of a size seen before reuse it)."""
    return header_sum(superblock)


def _patch(head: bytearray, n: int) -> bytes:
    """``head`` (the template's bytes before the data) patched for a record of
    ``n`` bytes, checksum included."""
    if head[_CLASS_AT : _CLASS_AT + 2] == _COMPACT:
        eof = _HEADER_AT + 16 + _header_size(n)
        struct.pack_into("<I", head, _HEADER_SIZE_AT, _header_size(n))
        struct.pack_into("<H", head, _LAYOUT_SIZE_AT, _layout_body(n))
        struct.pack_into("<H", head, _COMPACT_SIZE_AT, n)
    else:
        eof = _BLOCK + n
        struct.pack_into("<Q", head, _CONTIGUOUS_SIZE_AT, n)
    struct.pack_into("<Q", head, _EOF_AT, eof)
    struct.pack_into("<Q", head, _EXT_EOA_AT, eof)
    struct.pack_into("<I", head, _TYPE_SIZE_AT, n)
    struct.pack_into("<I", head, _CHECKSUM_AT, _checksum(bytes(head[:_CHECKSUM_AT])))
    return bytes(head)


def _limit(head: bytes) -> int:
    """The longest record the template ``head`` makes files for."""
    return MAX_BYTES if head[_CLASS_AT : _CLASS_AT + 2] == _COMPACT else MAX_CONTIGUOUS_BYTES


def template(made: bytes, record: bytes) -> bytes | None:
    """The part of ``made`` (a file HDF5 made for ``record``, see the module's
    docs) that does not depend on the record, or None if ``made`` is not
    laid out as this module assumes (another HDF5 version, say): then HDF5
    must make every file of that layout."""
    layout = made[_CLASS_AT : _CLASS_AT + 2]
    if not made.startswith(_SIGNATURE) or layout not in _EXPECTED_BY_LAYOUT:
        return None
    size = _DATA_AT if layout == _COMPACT else _BLOCK
    head = made[:size]
    if len(head) != size or not 0 < len(record) <= _limit(head):
        return None
    expected = _EXPECTED + _EXPECTED_BY_LAYOUT[layout]
    if any(head[at : at + len(v)] != v for at, v in expected):
        return None
    # a file built from it for the same record must be the one HDF5 made
    if image(head, record) != made:
        return None
    return head


def image(head: bytes, record: bytes) -> bytes:
    """The file HDF5 makes for ``record`` from the :func:`template` ``head``
    (of a compact record: 1 to :data:`MAX_BYTES` bytes; of a contiguous
    one: 1 to :data:`MAX_CONTIGUOUS_BYTES`)."""
    n = len(record)
    if not 0 < n <= _limit(head):
        raise ValueError(f"no image of a record of {n} bytes from this template")
    start = _patch(bytearray(head), n)
    if head[_CLASS_AT : _CLASS_AT + 2] == _COMPACT:
        return start + _tail(record)
    return start + record
