"""Reading a record of a tinystore HDF5 file without the HDF5 library.

Opening an HDF5 file costs the library ~70 µs of fixed work before anything is
read (a metadata cache of half a megabyte is made and zeroed for each open),
the first object read ~50 µs more, and closing it ~40 µs: most of what
loading a small object costs, and it evicts the CPU caches the decoding then
needs.  A read session that needs nothing but records (a small object, a
browse) reads them here instead, from the bytes HDF5 wrote, and opens the file
with HDF5 only if it needs a dataset.

Only the exact layout tinystore's own writes give (see
:func:`tinystore.storage.hdf5._creation_list`) is read: a version 2 superblock
at offset 0 (its checksum checked), version 1 object headers (and version 2
ones, their checksums checked: tinystore's arrays and folders), groups whose
links are messages of their header, and a record that is a compact or contiguous
scalar dataset of an ASCII, null-padded fixed-length string.  Anything else (an older
or a foreign layout, a group whose links are in a B-tree or heap, a soft link,
a shared message, a truncated file, a header that does not add up) gives
``None``: the caller then asks HDF5, which reads it, or reports what is wrong
with it, exactly as before.  The bytes returned are what HDF5 would return.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Iterator

import numpy as np

_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_UNDEFINED = 0xFFFFFFFFFFFFFFFF
_M = 0xFFFFFFFF

# object header message types (HDF5 file format specification, IV.A.2)
_NIL, _DATASPACE, _LINK_INFO, _DATATYPE, _FILL_OLD, _FILL = 0x0, 0x1, 0x2, 0x3, 0x4, 0x5
_LINK, _LAYOUT, _CONTINUATION, _SYMBOL_TABLE, _MTIME = 0x6, 0x8, 0x10, 0x11, 0x12
_REFERENCE_COUNT = 0x16
#: what a record's header may hold: anything else (filters, external files,
#: attributes...) leaves the record to HDF5
_RECORD_MESSAGES = frozenset({_NIL, _DATASPACE, _DATATYPE, _FILL_OLD, _FILL, _LAYOUT, _MTIME})
_SHARED = 0x02  # message flag: the message lives elsewhere (shared)
#: bounds on what a header may take before it is left to HDF5
_MAX_BLOCKS = 64
_MAX_HEADER_BYTES = 1 << 20


class _Unknown(Exception):
    """Not the layout this module reads: HDF5 must read it."""


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``: the checksum of HDF5's metadata."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    i = 0
    while length > 12:
        x, y, z = struct.unpack_from("<3I", data, i)
        a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
        a = ((a - c) & _M) ^ _rot(c, 4)
        c = (c + b) & _M
        b = ((b - a) & _M) ^ _rot(a, 6)
        a = (a + c) & _M
        c = ((c - b) & _M) ^ _rot(b, 8)
        b = (b + a) & _M
        a = ((a - c) & _M) ^ _rot(c, 16)
        c = (c + b) & _M
        b = ((b - a) & _M) ^ _rot(a, 19)
        a = (a + c) & _M
        c = ((c - b) & _M) ^ _rot(b, 4)
        b = (b + a) & _M
        length -= 12
        i += 12
    if length == 0:
        return c
    x, y, z = struct.unpack("<3I", data[i:] + bytes(12 - length))
    a, b, c = (a + x) & _M, (b + y) & _M, (c + z) & _M
    c = ((c ^ b) - _rot(b, 14)) & _M
    a = ((a ^ c) - _rot(c, 11)) & _M
    b = ((b ^ a) - _rot(a, 25)) & _M
    c = ((c ^ b) - _rot(b, 16)) & _M
    a = ((a ^ c) - _rot(c, 4)) & _M
    b = ((b ^ a) - _rot(a, 14)) & _M
    c = ((c ^ b) - _rot(b, 24)) & _M
    return c


def _native_lookup3() -> Any:
    """HDF5's own ``H5_checksum_lookup3`` (a pure function: no state, no
    lock), through ``ctypes`` where :mod:`~tinystore.storage.hdf5_arrays`
    reaches h5py's library: ~0.7 µs a header instead of ~25 µs in Python."""
    import ctypes

    from tinystore.storage.hdf5_arrays import hdf5_library

    lib = hdf5_library()
    native = getattr(lib, "H5_checksum_lookup3", None) if lib is not None else None
    if native is None:
        return None
    native.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint32]
    native.restype = ctypes.c_uint32
    if native(b"tinystore", 9, 0) != lookup3(b"tinystore"):
        return None
    return lambda data: native(data, len(data), 0)


#: the checksum of a version 2 object header (and of the superblock)
header_sum = _native_lookup3() or lookup3


class _File:
    """An HDF5 file opened for reading with ``pread`` (no offset to keep)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.size = os.fstat(fd).st_size
        self.root_address = -1
        self._parsed: dict[int, list] = {}

    def read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n < 0 or offset + n > self.size:
            raise _Unknown("outside the file")
        data = os.pread(self.fd, n, offset)
        if len(data) != n:
            raise _Unknown("short read")
        return data

    def root(self) -> int:
        """The address of the root group's header, from a checked superblock."""
        sb = self.read(0, 48)
        if sb[:8] != _SIGNATURE or sb[8:12] != b"\x02\x08\x08\x00":  # v2, 8-byte addresses
            raise _Unknown("not a version 2 superblock at offset 0")
        base, extension, eof, root = struct.unpack_from("<4Q", sb, 12)
        if header_sum(sb[:44]) != struct.unpack_from("<I", sb, 44)[0]:
            raise _Unknown("superblock checksum")  # HDF5 says what is wrong
        if base != 0 or eof > self.size:  # (HDF5 refuses a truncated file)
            raise _Unknown("base address or truncated file")
        if extension != _UNDEFINED:  # HDF5 reads it at every open: so it must parse
            for _ in self.messages(extension):
                pass
        self.root_address = root
        return root

    def messages(self, address: int) -> list[tuple[int, int, bytes, int]]:
        """``(type, flags, body, object reference count)`` of every message in
        the object header at ``address``, its continuations followed; parsed
        once a session (a folder's header is looked in for each of its links)."""
        parsed = self._parsed.get(address)
        if parsed is None:
            parsed = self._parsed[address] = list(self._messages(address))
        return parsed

    def _messages(self, address: int) -> Iterator[tuple[int, int, bytes, int]]:
        head = self.read(address, 12)
        if head[:4] == b"OHDR":
            yield from self._messages_v2(address, head)
            return
        version, _, count, refs, size = struct.unpack("<BBHII", head)
        if version != 1:
            raise _Unknown("object header version")
        blocks = [(address + 16, size)]
        seen = total = read = 0
        while blocks:
            start, size = blocks.pop()
            total += size
            read += 1
            if read > _MAX_BLOCKS or total > _MAX_HEADER_BYTES:
                raise _Unknown("header too large")
            data = self.read(start, size)
            p = 0
            while p + 8 <= size:
                kind, length, flags = struct.unpack_from("<HHB", data, p)
                body = data[p + 8 : p + 8 + length]
                if len(body) != length:
                    raise _Unknown("message past its header")
                seen += 1
                if kind == _CONTINUATION:
                    if length < 16:
                        raise _Unknown("continuation message")
                    blocks.append(struct.unpack_from("<QQ", body))
                else:
                    yield kind, flags, body, refs
                p += 8 + length
        if seen != count:
            raise _Unknown("message count")

    def _messages_v2(self, address: int, head: bytes) -> list[tuple[int, int, bytes, int]]:
        """What :meth:`messages` gives, of a version 2 object header (HDF5
        writes one for an object that tracks attribute creation order, as
        tinystore's arrays and folders do, see ``hdf5_arrays``): chunks
        ``OHDR``/``OCHK`` with a checksum each (checked), 4-byte message
        headers (6 with a creation order).  ``head``: its first 12 bytes."""
        flags = head[5]
        if head[4] != 2 or flags & 0xC0:
            raise _Unknown("object header version")
        p = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        field = head[p : p + width] if p + width <= len(head) else self.read(address + p, width)
        size = int.from_bytes(field, "little")
        step = 6 if flags & 0x04 else 4
        blocks = [(address, p + width, size)]  # (chunk, its first message, their bytes)
        found: list = []
        refs = total = read = 0
        while blocks:
            start, first, size = blocks.pop()
            total += size
            read += 1
            if read > _MAX_BLOCKS or total > _MAX_HEADER_BYTES:
                raise _Unknown("header too large")
            data = self.read(start, first + size + 4)
            if header_sum(data[:-4]) != struct.unpack_from("<I", data, first + size)[0]:
                raise _Unknown("object header checksum")  # HDF5 says what is wrong
            q, end = first, first + size
            while q + step <= end:  # (fewer bytes left: a gap)
                kind, length, mflags = struct.unpack_from("<BHB", data, q)
                body = data[q + step : q + step + length]
                if q + step + length > end:
                    raise _Unknown("message past its header")
                if kind == _CONTINUATION:
                    if length < 16:
                        raise _Unknown("continuation message")
                    at, n = struct.unpack_from("<QQ", body)
                    if n < 8 or self.read(at, 4) != b"OCHK":
                        raise _Unknown("continuation block")
                    blocks.append((at, 4, n - 8))
                elif kind == _REFERENCE_COUNT:
                    if length < 5 or body[0] != 0 or refs:
                        raise _Unknown("reference count message")
                    refs = struct.unpack_from("<I", body, 1)[0]
                else:
                    found.append((kind, mflags, body))
                q += step + length
        refs = refs or 1  # (a version 2 header holds a count only if it is not 1)
        return [(kind, mflags, body, refs) for kind, mflags, body in found]

    def link(self, group: int, name: bytes, single: bool) -> int:
        """The address of the object the hard link ``name`` of the group whose
        header is at ``group`` points to; ``single``: the group must have one
        hard link only (HDF5's path refuses an alias or a cycle of groups)."""
        found = None
        is_group = False
        for kind, flags, body, refs in self.messages(group):
            if single and refs != 1:
                raise _Unknown("a group of several hard links")
            if kind in (_LINK_INFO, _SYMBOL_TABLE):
                is_group = kind == _LINK_INFO
            if kind != _LINK:
                continue
            if flags & _SHARED:
                raise _Unknown("shared link message")
            target = _link_target(body, name)
            if target is not None:
                if found is not None:
                    raise _Unknown("two links of one name")
                found = target
        if not is_group or found is None:  # links in a B-tree or heap: HDF5 finds them
            raise _Unknown("link not in the header")
        return found


def _link_target(body: bytes, name: bytes) -> int | None:
    """The address a link message points to if it is the hard link ``name``."""
    if len(body) < 2 or body[0] != 1:
        raise _Unknown("link message version")
    flags = body[1]
    p = 2
    kind = 0
    if flags & 0x08:
        kind = body[p]
        p += 1
    if flags & 0x04:
        p += 8  # creation order
    if flags & 0x10:
        p += 1  # character set
    width = 1 << (flags & 0x03)
    n = int.from_bytes(body[p : p + width], "little")
    p += width
    if body[p : p + n] != name:
        return None
    if kind != 0:  # soft, external...: HDF5 says what it is
        raise _Unknown("not a hard link")
    if len(body) < p + n + 8:
        raise _Unknown("short link message")
    return struct.unpack_from("<Q", body, p + n)[0]


def _record_bytes(f: _File, address: int, limit: int) -> bytes:
    """The bytes of the record whose dataset header is at ``address``, as
    h5py reads a fixed-length string (trailing NULs dropped)."""
    scalar = False
    size = data = None
    for kind, flags, body, _ in f.messages(address):
        if kind not in _RECORD_MESSAGES or flags & _SHARED:
            raise _Unknown("not a plain record dataset")
        if kind == _DATASPACE:
            # version 1 of rank 0, or version 2 of rank 0 and type scalar
            scalar = body[:2] == b"\x01\x00" or body[:4] == b"\x02\x00\x00\x00"
        elif kind == _DATATYPE:
            # version 1, class string; null padded, ASCII; then the size
            if body[:4] != b"\x13\x01\x00\x00" or len(body) < 8:
                raise _Unknown("not a null-padded ASCII string")
            size = struct.unpack_from("<I", body, 4)[0]
        elif kind == _LAYOUT:
            data = _layout_data(f, body, limit)
    if not scalar or size is None or data is None or len(data) != size:
        raise _Unknown("not a scalar string of its layout's size")
    return data.rstrip(b"\x00")


def _layout_data(f: _File, body: bytes, limit: int) -> bytes:
    """The bytes a version 3 layout message gives: compact (in the message)
    or contiguous (at an address of the file, allocated: every byte written)."""
    if body[:2] == b"\x03\x00" and len(body) >= 4:  # compact
        n = struct.unpack_from("<H", body, 2)[0]
        data = body[4 : 4 + n]
        if len(data) != n:
            raise _Unknown("short compact data")
        return data
    if body[:2] == b"\x03\x01" and len(body) >= 18:  # contiguous
        address, n = struct.unpack_from("<QQ", body, 2)
        if address == _UNDEFINED or n > limit:  # (never written; too large: HDF5 says so)
            raise _Unknown("contiguous data not allocated, or too large")
        return f.read(address, n)
    raise _Unknown("not a compact or contiguous dataset")


def _shape(body: bytes) -> tuple:
    """The dimensions a dataspace message gives (version 1, or 2 of a scalar
    or simple dataspace)."""
    if body[:1] == b"\x01":
        at = 8
    elif body[:1] == b"\x02" and body[3:4] in (b"\x00", b"\x01"):
        at = 4
    else:
        raise _Unknown("dataspace")
    rank = body[1]
    return struct.unpack_from(f"<{rank}Q", body, at)


def _data_at(f: _File, address: int, datatype: bytes, shape: tuple, nbytes: int) -> Any:
    """Where the data of the dataset whose header is at ``address`` is: its
    offset in the file (contiguous), or its bytes (compact); if its type is
    exactly ``datatype`` (HDF5's encoding of it), its shape ``shape``, and all
    its ``nbytes`` bytes are written."""
    found = 0
    where: Any = None
    for kind, flags, body, _ in f.messages(address):
        if kind not in _RECORD_MESSAGES or flags & _SHARED:
            raise _Unknown("not a plain dataset")  # filters, external files, attributes...
        if kind == _DATASPACE:
            if _shape(body) != shape:
                raise _Unknown("another shape")
            found |= 1
        elif kind == _DATATYPE:
            if body[: len(datatype)] != datatype or any(body[len(datatype) :]):
                raise _Unknown("another type")
            found |= 2
        elif kind == _LAYOUT:
            if body[:2] == b"\x03\x01" and len(body) >= 18:  # contiguous
                at, n = struct.unpack_from("<QQ", body, 2)
                if n != nbytes or (n and (at == _UNDEFINED or at + n > f.size)):
                    raise _Unknown("contiguous data not all written")
                where = at
            else:
                where = _layout_data(f, body, nbytes)
                if len(where) != nbytes:
                    raise _Unknown("compact data of another size")
            found |= 4
    if found != 7:
        raise _Unknown("not a dataset")
    return where


def _read_into(fd: int, buffer: memoryview, at: int) -> None:
    """Fill ``buffer`` with the file's bytes from offset ``at`` (a read may
    return less: Linux reads at most ~2 GiB at a time)."""
    done, n = 0, len(buffer)
    while done < n:
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [buffer[done:]], at + done)
        else:
            data = os.pread(fd, n - done, at + done)
            got = len(data)
            buffer[done : done + got] = data
        if got <= 0:
            raise _Unknown("short read")
        done += got


class Reader:
    """One HDF5 file, read with this module for one session (see the module);
    every method answers None when HDF5 must do the reading."""

    def __init__(self, filename: str):
        self._groups: dict = {}
        fd = os.open(filename, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            self._file = _File(fd)
            self._groups[()] = self._file.root()
        except BaseException:
            os.close(fd)
            raise

    def close(self) -> None:
        if self._file.fd >= 0:
            os.close(self._file.fd)
            self._file.fd = -1

    def _group(self, gpath: tuple) -> int:
        """The header address of the group at ``gpath`` (link names)."""
        address = self._groups.get(gpath)
        if address is None:
            parent = self._group(gpath[:-1])
            address = self._file.link(parent, gpath[-1].encode("utf-8"), len(gpath) > 1)
            self._groups[gpath] = address
        return address

    def record(self, gpath: tuple, name: bytes, limit: int) -> bytes | None:
        """The record (the dataset ``name``) of the group ``gpath``."""
        try:
            address = self._file.link(self._group(gpath), name, bool(gpath))
            return _record_bytes(self._file, address, limit)
        except (_Unknown, OSError, struct.error, IndexError):
            return None

    def array(self, gpath: tuple, datatype: bytes, shape: tuple, dtype: Any) -> Any:
        """A new C-ordered array of ``shape`` and ``dtype``: the dataset at
        ``gpath`` (its last name the dataset's), whose type HDF5 encodes as
        ``datatype``; checked before anything is allocated."""
        try:
            group = self._group(gpath[:-1])
            address = self._file.link(group, gpath[-1].encode("utf-8"), len(gpath) > 1)
            count = 1
            for n in shape:
                count *= n
            where = _data_at(self._file, address, datatype, shape, count * dtype.itemsize)
            out = np.empty(shape, dtype)
            buffer = memoryview(out.reshape(-1).view(np.uint8))  # (a view: C order)
            if type(where) is bytes:
                buffer[:] = where
            else:
                _read_into(self._file.fd, buffer, where)
            return out
        except (_Unknown, OSError, struct.error, IndexError):
            return None


def open_reader(filename: str) -> Reader | None:
    """A :class:`Reader` of ``filename``, or None if its superblock is not one
    this module reads (or it cannot be opened: HDF5 then says why; or the
    system has no ``pread``, Windows: HDF5 reads everything there)."""
    if not hasattr(os, "pread"):
        return None
    try:
        return Reader(filename)
    except (_Unknown, OSError, struct.error, IndexError):
        return None


def read_record(filename: str, gpath: tuple, record: bytes, limit: int) -> bytes | None:
    """The record (dataset ``record``) of the physical group ``gpath`` of the
    HDF5 file ``filename``, or None if it is not in the layout this module
    reads (HDF5 must then read it: it may be missing, damaged, or simply
    written otherwise)."""
    reader = open_reader(filename)
    if reader is None:
        return None
    try:
        return reader.record(gpath, record, limit)
    finally:
        reader.close()
