"""HDF5 backend (h5py).

The file is the user's tree: each physical group is an HDF5 group, named
after its key, holding its record as the string dataset ``@record``; arrays
of more than :data:`SMALL_ARRAY_BYTES` bytes and large byte strings are HDF5
datasets at their logical path, under their own key (an array ``forces`` in
``run1`` of a stored object ``results`` is ``/results/run1/forces``, the
nodes between being plain HDF5 groups), in their own dtype when HDF5 has
it, else as raw bytes with the dtype kept in the record.  So ``h5ls``, h5py
and any HDF5 tool see the user's groups and arrays.

The paths every save and load takes (opening the file, creating and reading
datasets and records) use h5py's low-level API: a high-level ``File``,
``Dataset`` or ``create_dataset`` costs about 0.1 ms of Python each, as much
as copying a megabyte.  Arrays go from their own memory to the file and are
read straight into a new ``numpy.empty``, with no copy on the way.  A read
session that needs nothing but records and plain arrays reads them without
HDF5 (:mod:`tinystore.storage.hdf5_records`), opening the file with HDF5 only
when it meets anything else.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5f, h5fd, h5l, h5o, h5p, h5s, h5t

from tinystore.errors import (
    BackendError,
    CorruptStoreError,
    NotAStoreError,
    StoreLockedError,
    UnsafeStoreError,
)
from tinystore.storage import hdf5_image, hdf5_records, journal
from tinystore.storage.hdf5_arrays import FOLDER_GCPL, array_list
from tinystore.storage.journal import (
    JournaledFile,
    RolledBackFile,
    check_space,
    finish_whole_file,
    fsync_path,
    full_error,
    put_in_place,
    pwrite_all,
    roll_back,
    save_whole_file,
    write_failure,
)
from tinystore.storage.leaves import array_from_bytes, dtype_from_json, with_flags
from tinystore.storage.locking import DEFAULT_TIMEOUT, StoreLock, beside
from tinystore.storage.record import (
    MAX_RECORD_BYTES,
    GPath,
    Physical,
    RecordStorage,
    dumps_record,
)
from tinystore.storage.record.format import file_name
from tinystore.storage.record.packing import MAX_FOLDER_DEPTH
from tinystore.storage.record.physical import open_cached

RECORD = "@record"
_RECORD_NAME = RECORD.encode()
#: Arrays of at most this many bytes stay inside their record (a dataset
#: would cost ~0.1 ms to write and read, and ~0.15 KiB of file, each).
SMALL_ARRAY_BYTES = 64
MODES = ("r", "r+", "a", "w", "w-", "x")
#: A new file is written under its name plus this, then renamed (see
#: ``_HDF5Physical._create_writer``).
NEW_SUFFIX = ".writing"
#: A write session on a file this small (a new one, say) starts by copying all
#: of it into the journal, and HDF5 then writes to the file directly; bigger
#: files are journaled page by page, through a Python file object between HDF5
#: and the disk (which costs ~0.3 ms a session).
JOURNAL_WHOLE_LIMIT = 256 * 1024
#: An existing file of at most this many bytes that is the image of its root
#: record is rewritten whole by a session that writes nothing but a new one
#: (see ``_HDF5Physical._defer_rewrite``): the longest image's file.
IMAGE_FILE_LIMIT = hdf5_image.MAX_CONTIGUOUS_BYTES + 4096
#: Free space a write leaves for HDF5's metadata and the journal's pages
#: (checked before each record and dataset is written): HDF5 copes badly
#: with a disk that fills up under it (see _watch), so it is not let near one.
SPACE_MARGIN = 256 * 1024


def _native_ok(dtype: np.dtype) -> bool:
    """True if HDF5 holds this dtype natively (h5py round-trips it exactly)."""
    if dtype.fields is not None:
        # h5py drops field titles and the aligned flag: such dtypes go as raw bytes
        if dtype.isalignedstruct or any(len(f) > 2 for f in dtype.fields.values()):
            return False
        # HDF5 aborts the process on overlapping members of a compound type
        spans = sorted((f[1], f[1] + f[0].itemsize) for f in dtype.fields.values())
        if any(start < end for (_, end), (start, _) in zip(spans, spans[1:])):
            return False
        return all(_native_ok(f[0]) for f in dtype.fields.values())
    if dtype.subdtype is not None:
        return _native_ok(dtype.subdtype[0])
    return dtype.kind in "biufc" or (dtype.kind == "S" and dtype.itemsize > 0)


def _access_list(fileobj: Any = None) -> h5p.PropFAID:
    """File access properties: HDF5's oldest formats for new objects (see
    :func:`_group_list`), without HDF5's own file locking (our lock
    serialises access), and a close that closes every object in the file, so
    no handle outlives a session."""
    fapl = h5p.create(h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5f.LIBVER_EARLIEST, h5f.LIBVER_LATEST)
    fapl.set_fclose_degree(h5f.CLOSE_STRONG)
    fapl.set_file_locking(False, False)
    if fileobj is not None:
        fapl.set_fileobj_driver(h5fd.fileobj_driver, fileobj)
    return fapl


def _link_list(encoding: int) -> h5p.PropID:
    lcpl = h5p.create(h5p.LINK_CREATE)
    lcpl.set_create_intermediate_group(True)
    lcpl.set_char_encoding(encoding)
    return lcpl


def _dataset_list(layout: int | None = None) -> h5p.PropDCID:
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if layout is not None:
        dcpl.set_layout(layout)
    return dcpl


def _creation_list() -> h5p.PropFCID:
    """File creation properties: free space tracked persistently (see
    :data:`FREE_SPACE`); a root group without timestamps that tracks the
    order its links were made in, which is what makes HDF5 keep its links in
    its own header (no B-tree and local heap: ~800 bytes less) in a file of
    the oldest formats; h5py then lists the root's names in that order (h5ls
    and h5dump by name).

    The oldest formats (``libver`` ``earliest``, see :func:`_access_list`)
    are kept on purpose: with 1.10's, HDF5 gives the superblock extension
    (which it makes again as the free-space tracking changes) timestamps
    that nothing turns off, and the same operations must give the same
    bytes."""
    fcpl = h5p.create(h5p.FILE_CREATE)
    fcpl.set_file_space_strategy(h5f.FSPACE_STRATEGY_FSM_AGGR, True, 1)
    fcpl.set_obj_track_times(False)
    fcpl.set_link_creation_order(h5p.CRT_ORDER_TRACKED)
    return fcpl


def _group_list() -> h5p.PropGCID:
    """Group creation properties: no timestamps, and the order links were
    made in tracked, as the root does (see :func:`_creation_list`): HDF5 then
    keeps a group's links in its own header, ~4 KiB less a group than a
    B-tree and heap (a list of 100 ``ase.Atoms``: 1.8 to 1.1 MB), and h5py
    lists its names in the order they were written."""
    gcpl = h5p.create(h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    gcpl.set_link_creation_order(h5p.CRT_ORDER_TRACKED)
    return gcpl


#: Records of at most this many bytes are *compact* datasets: their bytes
#: live in the dataset's header (HDF5 allows less than 64 KiB there), one
#: object to write and read instead of a header and a block of data.
COMPACT_RECORD_BYTES = 60_000

# names as h5py's create_dataset gives them: ASCII names stay ASCII, others
# are UTF-8; no timestamps
_ACCESS = _access_list()
_LCPL_ASCII = _link_list(h5t.CSET_ASCII)
_LCPL_UTF8 = _link_list(h5t.CSET_UTF8)
_DCPL = _dataset_list()
_DCPL_COMPACT = _dataset_list(h5d.COMPACT)
_FCPL = _creation_list()
_GCPL = _group_list()
#: an empty store's root record
EMPTY_ROOT = dumps_record([{"g": 1, "c": {}}])


def _encode_filename(filename: str) -> bytes:
    """The file name as HDF5 takes it (as h5py encodes it)."""
    return filename.encode("utf-8") if sys.platform == "win32" else os.fsencode(filename)


_LINK_KINDS = {h5l.TYPE_SOFT: "soft link", h5l.TYPE_EXTERNAL: "external link"}


def _link_type(group: Any, name: bytes) -> int | None:
    """The type of the link ``name`` in ``group`` (None if there is none); the
    link is looked at, never followed (an external link opens nothing)."""
    try:
        return group.links.get_info(name).type
    except (KeyError, RuntimeError):  # HDF5 2 says "name doesn't exist" as RuntimeError
        return None


def _has(group: Any, name: bytes) -> bool:
    return _link_type(group, name) is not None


def _open_hard(group: Any, name: bytes, where: str) -> Any:
    """The object ``name`` in ``group`` if a hard link names it (KeyError if
    none); soft and external links are refused: tinystore writes neither, and
    they lead to other files, to nothing, or around in loops."""
    kind = _link_type(group, name)
    if kind is None:
        raise KeyError(name)
    if kind != h5l.TYPE_HARD:
        what = _LINK_KINDS.get(kind, f"user-defined link (type {kind})")
        raise UnsafeStoreError(f"{where} is a {what}; tinystore never follows links out of a node")
    try:
        return h5o.open(group, name)
    except (KeyError, OSError, RuntimeError) as exc:
        raise CorruptStoreError(f"{where} cannot be opened (damaged): {exc}") from None


#: The only names HDF5 forbids or reads otherwise: ``/`` separates names,
#: ``.`` and ``..`` are not names of their own, NUL ends a C string; and a
#: leading ``@`` is tinystore's (``@record``).
_HDF5_ESCAPES = {"/": "%2f", "\x00": "%00"}


def hdf5_name(key: str) -> str:
    """The HDF5 link name of a key: the key itself, but for what HDF5 cannot
    take as a name (keys of the storage API never contain ``/`` nor are
    ``.``; a ``Tree``'s might): ``/`` is written ``%2f``, NUL ``%00``, a
    key ``.`` or ``..`` ``%2e`` or ``%2e%2e``, the empty key ``%``, a leading ``@``
    (tinystore's: ``@record``) ``%40``; a key with a lone surrogate (no
    UTF-8 has one) gets the name a JSON directory gives it."""
    if key[:1] == "@":
        key = "%40" + key[1:]
    elif key in ("", ".", ".."):
        return "%" if not key else "%2e" * len(key)
    if "/" in key or "\x00" in key:
        key = "".join(_HDF5_ESCAPES.get(c, c) for c in key)
    if not key.isascii():
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no UTF-8 name has it
            return file_name(key)
    return key


def _raise_if_open_elsewhere(exc: BaseException, filename: str) -> None:
    """HDF5 opens a file once per process: while an ``h5py.File`` of this
    process holds it (with h5py's own settings), opening it again fails.
    That is no damage of the file: say what it is."""
    text = str(exc)
    if isinstance(exc, OSError) and ("n't match" in text or "already open" in text):
        raise StoreLockedError(
            f"{filename} is open in this process through another HDF5 handle (an "
            f"h5py.File?) that tinystore cannot share; close it first ({text})"
        ) from None


def _check_part(name: Any, where: str) -> None:
    if (
        type(name) is not str
        or not name
        or name in (".", "..")
        or name.startswith("@")
        or "/" in name
        or "\x00" in name
    ):
        raise CorruptStoreError(
            f"{where} names an invalid HDF5 object {name!r}; the record is damaged"
        )


def _check_dataset(ds: Any, where: str, whole: bool = False, dcpl: Any = None) -> None:
    """Refuse datasets whose bytes live in other files: virtual datasets and
    external raw storage (reading them reads, writing them writes, those files).
    ``whole``: the dataset is about to be read whole, so it must hold every
    byte of it (see :func:`_check_written`).  ``dcpl``: its creation
    properties, if the caller has them already."""
    if dcpl is None:
        dcpl = ds.get_create_plist()
    layout = dcpl.get_layout()
    if layout == h5d.VIRTUAL:
        raise UnsafeStoreError(f"{where} is a virtual dataset (its data is in other files)")
    if dcpl.get_external_count():
        raise UnsafeStoreError(f"{where} keeps its data in external files")
    if whole:
        _check_written(ds, dcpl, layout, where)


def _check_written(
    ds: Any, dcpl: Any, layout: int, where: str, shape: tuple | None = None, itemsize: int = 0
) -> None:
    """Refuse a dataset that was never (or only partly) written: HDF5 reads
    its fill value for every byte that is not in the file, so a file of a few
    KiB could make a load allocate gigabytes of zeros.  tinystore writes every
    byte of a dataset: an uncompressed one holds all of them, a compressed
    one every chunk (each at most ~1000x smaller than its data).  ``shape``
    and ``itemsize``: the dataset's, if the caller has read them already."""
    if shape is None:
        space = ds.get_space()
        if space.get_simple_extent_type() == h5s.NULL:
            return
        shape, itemsize = space.shape, ds.get_type().get_size()
    nbytes = itemsize
    for n in shape:
        nbytes *= n
    if not nbytes:
        return
    if layout != h5d.CHUNKED or not dcpl.get_nfilters():
        if ds.get_storage_size() >= nbytes:
            return
    else:
        chunk = dcpl.get_chunk()
        count = 1
        for n, c in zip(shape, chunk):
            count *= -(-n // c)
        if ds.get_num_chunks() >= count:
            return
    raise CorruptStoreError(
        f"{where} holds {ds.get_storage_size():,} bytes of its {nbytes:,}: the rest was never "
        "written (the file is damaged or crafted)"
    )


def _create_dataset(
    group: h5py.h5g.GroupID, name: str, data: np.ndarray, options: dict, dcpl: Any = _DCPL
) -> Any:
    """A dataset ``name`` in ``group`` holding ``data``, as h5py's ``create_dataset``
    writes it (with ``options``: compression), but without its per-call cost;
    its open handle (see ``_HDF5Physical._held``)."""
    if options and data.size:  # (h5py makes it chunked: its own copy of dcpl)
        return h5py.Group(group).create_dataset(name, data=data, dcpl=dcpl.copy(), **options).id
    data = np.asarray(data, order="C")  # HDF5 takes C order (a copy only if not already)
    file_type, memory_type = _h5types(data.dtype)
    lcpl = _LCPL_ASCII if name.isascii() else _LCPL_UTF8
    space = h5s.create_simple(data.shape) if data.shape else _SCALAR
    ds = h5d.create(group, name.encode("utf-8"), file_type, space, dcpl=dcpl, lcpl=lcpl)
    if data.size:
        ds.write(h5s.ALL, h5s.ALL, data, memory_type)
    return ds


def _h5types(dtype: np.dtype) -> tuple[h5t.TypeID, h5t.TypeID]:
    """HDF5's types for ``dtype``: in a file and in memory (as h5py makes them)."""
    if dtype.metadata is not None:  # h5py reads some metadata; == would ignore it
        return h5t.py_create(dtype, logical=True), h5t.py_create(dtype)
    return _cached_h5types(dtype)


@functools.lru_cache(maxsize=64)
def _cached_h5types(dtype: np.dtype) -> tuple[h5t.TypeID, h5t.TypeID]:
    return h5t.py_create(dtype, logical=True), h5t.py_create(dtype)


@functools.lru_cache(maxsize=64)
def _encoded_type(dtype: np.dtype) -> bytes:
    """The datatype message tinystore's datasets of ``dtype`` have in their
    header (HDF5's encoding of the type, less its two bytes of prefix)."""
    return _h5types(dtype)[0].encode()[2:]


#: Free-space tracking that outlives the file's handle: space freed by a
#: replaced or deleted dataset is reused by later writes, in later sessions too
#: (HDF5's default forgets it at close, so a file that is updated only grows).
#: (h5py's keywords for the file creation properties of :func:`_creation_list`.)
FREE_SPACE = {"fs_strategy": "fsm", "fs_persist": True, "fs_threshold": 1}
_SCALAR = h5s.create(h5s.SCALAR)
_BINARY = getattr(os, "O_BINARY", 0)


def _create_file(path: str) -> h5f.FileID:
    """A new HDF5 file at ``path`` (which must not exist: a link there is not
    followed), open for writing, with tinystore's creation properties."""
    return h5f.create(_encode_filename(path), h5f.ACC_EXCL, fapl=_ACCESS, fcpl=_FCPL)


def _write_root(fid: h5f.FileID, record: bytes) -> Any:
    """Write ``record`` as the root record of a new file (there is none yet)."""
    text = np.frombuffer(record, dtype=f"S{len(record)}").reshape(())
    root = h5py.h5g.open(fid, b"/")
    return _create_dataset(root, RECORD, text, {}, _record_list(len(record)))


def _record_list(nbytes: int) -> h5p.PropDCID:
    return _DCPL_COMPACT if nbytes <= COMPACT_RECORD_BYTES else _DCPL


def _file_by_hdf5(record: bytes) -> bytes:
    """The bytes HDF5 writes for a new file holding nothing but ``record`` as
    its root record (OSError: no writable temporary directory)."""
    with tempfile.TemporaryDirectory(prefix="tinystore-") as folder:
        path = os.path.join(folder, "new.h5")
        fid = _create_file(path)
        try:
            _write_root(fid, record)
        finally:
            fid.close()
        with open(path, "rb") as f:
            return f.read()


@functools.cache
def _empty_file_image() -> bytes:
    """The bytes of an empty tinystore HDF5 file (an empty root record), made
    once: for ``mode="w"``, which empties a file in place."""
    try:
        return _file_by_hdf5(EMPTY_ROOT)
    except OSError:  # no writable temporary directory: made in memory
        buffer = io.BytesIO()
        with h5py.File(buffer, "w", libver=("v110", "latest"), **FREE_SPACE) as f:
            f.create_dataset(RECORD, data=np.bytes_(EMPTY_ROOT))
        return buffer.getvalue()


#: A new file whose whole content is its root record (what ``tinystore.save``
#: of an object without datasets into a new file makes) is written by
#: tinystore itself, byte for byte as HDF5 writes it (see
#: :mod:`~tinystore.storage.hdf5_image`; a record of up to
#: ``hdf5_image.MAX_CONTIGUOUS_BYTES``): ~0.2-0.35 ms less a save.  False:
#: HDF5 makes every file (the tests compare both).
WRITE_NEW_FILES = True
#: The HDF5 versions (major, minor) whose files the tests proved
#: :mod:`~tinystore.storage.hdf5_image` makes byte for byte (with any other,
#: HDF5 makes every file).
PROVEN_HDF5 = frozenset({(2, 0)})
#: the record the template of contiguous records is learnt from: the shortest
#: tinystore keeps contiguous (its bytes not all alike: a misplaced copy shows)
_CONTIGUOUS_SAMPLE = bytes(range(1, 256)) * (COMPACT_RECORD_BYTES // 255 + 1)
_CONTIGUOUS_SAMPLE = _CONTIGUOUS_SAMPLE[: COMPACT_RECORD_BYTES + 1]


@functools.cache
def _root_template(contiguous: bool = False) -> bytes | None:
    """The part of a new file that does not depend on its root record (see
    :func:`tinystore.storage.hdf5_image.template`), of a compact record or
    (``contiguous``) a longer one; learnt once a process from the file HDF5
    makes: the empty store's, or one of a contiguous record (made when a
    record that long is first written).  None where HDF5 must make every
    such file: on Windows (HDF5 writes there through its own calls), with an
    HDF5 the tests did not prove, or where no temporary file can be made
    (the empty store's file is then made in memory, otherwise laid out)."""
    if sys.platform == "win32" or h5py.version.hdf5_version_tuple[:2] not in PROVEN_HDF5:
        return None
    if not contiguous:
        return hdf5_image.template(_empty_file_image(), EMPTY_ROOT)
    try:
        made = _file_by_hdf5(_CONTIGUOUS_SAMPLE)
    except OSError:
        return None
    return hdf5_image.template(made, _CONTIGUOUS_SAMPLE)


def _writes_new_files() -> bool:
    """True if new files holding nothing but their root record are written here."""
    return WRITE_NEW_FILES and _root_template() is not None


def _template_of(nbytes: int) -> bytes | None:
    """The template :func:`_root_image` makes a file for a root record of
    ``nbytes`` from (see :func:`_root_template`), or None."""
    if 0 < nbytes <= min(COMPACT_RECORD_BYTES, hdf5_image.MAX_BYTES):
        return _root_template()
    if COMPACT_RECORD_BYTES < nbytes <= hdf5_image.MAX_CONTIGUOUS_BYTES:
        return _root_template(True)
    return None


def _imaged(nbytes: int) -> bool:
    """True if :func:`_root_image` makes the file of a root record of
    ``nbytes`` where new files are written here (:func:`_writes_new_files`):
    a compact record, or a contiguous one of up to
    ``hdf5_image.MAX_CONTIGUOUS_BYTES``.  (The first such contiguous record of
    a process has HDF5 make a file once, to learn its template.)"""
    return _template_of(nbytes) is not None


def _root_image(record: bytes) -> bytes | None:
    """The bytes HDF5 writes for a new file holding nothing but ``record`` as
    its root record, or None: HDF5 must write that file."""
    head = _template_of(len(record)) if WRITE_NEW_FILES else None
    return None if head is None else hdf5_image.image(head, record)


def _size(filename: str) -> int:
    try:
        return os.stat(filename).st_size
    except FileNotFoundError:
        return 0


#: The write sessions under way in this process (see _watch).
_WRITERS: dict[Any, None] = {}


def _watch(physical: Any) -> None:
    """Catch the write errors HDF5 meets while h5py frees a handle of
    ``physical``'s file: h5py only prints those ("Exception ignored in
    ObjectID.__dealloc__"), through ``sys.unraisablehook``; ours notes them as
    failures of the write session of that file (of every session under way, if
    the error does not name its file), which then rolls back.  Installed
    again, in front of whatever hook is there, if something replaced it."""
    _WRITERS[physical] = None
    if getattr(sys.unraisablehook, "_tinystore", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        text = str(exc)
        if _WRITERS and isinstance(exc, (OSError, RuntimeError)) and "write failed" in text:
            named = [w for w in _WRITERS if f"filename = '{w.filename}'" in text]
            for writer in named or list(_WRITERS):
                writer._failures.append(exc)
            return
        previous(unraisable)

    hook._tinystore = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def _disarm(fd: int | None) -> None:
    """After a write error, HDF5 may keep the file open and write its cached
    metadata later (at exit, say), over the file as the journal restores it:
    its descriptor ``fd`` is pointed at ``/dev/null``, so no byte it writes
    from now on reaches the file (and HDF5 can close what it holds, which it
    may otherwise try again as the process exits, and crash)."""
    if fd is None:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _open_in_process() -> bool:
    """True if HDF5 holds a file open in this process (h5py, say).  Which
    file is not asked: HDF5 may hold one it failed to write (see _disarm),
    whose handle must not be touched."""
    return bool(h5f.get_obj_count(h5f.OBJ_ALL, h5f.OBJ_FILE))


def _open_group(parent: Any, name: str, where: str) -> Any:
    """The group ``name`` in ``parent`` through its hard link (KeyError if
    there is none); links, non-groups and hard-linked groups are refused."""
    group = _open_hard(parent, name.encode("utf-8"), where)
    if not isinstance(group, h5py.h5g.GroupID):
        raise CorruptStoreError(f"{where} is not a group")
    links = h5o.get_info(group).rc
    if links != 1:  # an alias or a cycle of groups (tinystore writes neither)
        raise UnsafeStoreError(f"{where} is a group with {links} hard links")
    return group


class _HDF5Physical(Physical):
    """An HDF5 file, opened for the length of each session only.

    Between sessions the file is closed, so it is complete on disk and other
    processes may use it; within a session this process holds the lock.
    """

    shared = True
    nested = True
    inline_array_limit = SMALL_ARRAY_BYTES

    def physical_name(self, key: str) -> str:
        return hdf5_name(key)

    def check_name(self, name: Any, where: str, kind: str = "X") -> str:
        """A name read from a record: one HDF5 link name, or for a leaf a path
        of them (``"run1/forces"``, format 1.1) inside its physical group."""
        if type(name) is not str or (kind != "X" and "/" in name):
            raise CorruptStoreError(f"{where} names an invalid HDF5 group {name!r:.200}")
        parts = name.split("/")
        if len(parts) > MAX_FOLDER_DEPTH + 1:  # deeper than any writer puts a leaf
            raise CorruptStoreError(
                f"{where} names a leaf {len(parts) - 1} folders deep ({name!r:.80}...); "
                f"tinystore writes at most {MAX_FOLDER_DEPTH}: the record is damaged"
            )
        for part in parts:
            _check_part(part, where)
        return name

    def __init__(
        self,
        filename: str | os.PathLike,
        mode: str,
        compression: Any,
        compression_opts: Any,
        lock_timeout: float,
        check: bool = True,
        durable: bool = False,
    ):
        if mode not in MODES:
            raise BackendError(f"invalid mode {mode!r}; use one of {', '.join(MODES)}")
        self.filename = os.fspath(filename)
        self.location = self.filename
        self.readonly = mode == "r"
        self.durable = bool(durable)
        self._name = _encode_filename(self.filename)
        self._fid: h5f.FileID | None = None
        self._raw: JournaledFile | None = None  # a write session in place
        self._view: RolledBackFile | None = None  # a read-only session after a crash
        self._writing = False  # a write session, its journal holding the whole file
        #: write errors of this session (HDF5 may carry on after one, or report
        #: it only by printing it): a session that met one is rolled back whole
        self._failures: list[BaseException] = []
        self._groups: dict[GPath, Any] = {}  # groups opened in this session
        self._folders: dict[tuple, Any] = {}  # (gpath, "a/b"): groups inside them
        #: folders this session made (keys as _folders'): the names it linked in
        #: each, the only ones there can be (others need no look: ~4 µs each)
        self._made: dict[tuple, set] = {}
        #: datasets written in this session, closed at its end only: closing one
        #: writes its metadata, and a write that fails there (a full disk) leaves
        #: it open in HDF5, broken, and HDF5 crashes at a later link deletion of
        #: any file; at the end, the session's flush reports such a failure first
        self._held: list = []
        #: (generation, file identity) at the end of this handle's last session
        #: (see begin); ``_seen``: the same at the start of the current one
        self._stamp: tuple | None = None
        self._seen: tuple | None = None
        self._sessions = 0  # sessions ended
        self._fresh = False  # this session made the file (empty): nothing to list
        #: this session makes the file: it is written as ``_new_path`` and
        #: renamed into place at the session's end (see _create_writer)
        self._creating = False
        self._root_written = False  # (a new file's session: see _finish_new)
        #: a new file's session whose file HDF5 has not made (yet): it is
        #: written whole at the session's end if the session writes nothing but
        #: its root record (``_root``), see _create_writer
        self._deferred = False
        self._root: bytes | None = None
        self._found: bytes | None = None  # (see _defer_rewrite)
        #: (stamp, root record) if this handle's last write session left the
        #: file as the image of that record (see _image_record); stamp as
        #: ``_stamp``, or True until the session's end takes it
        self._image: tuple = (None, None)
        #: the root record read by the check of a session's start (see begin)
        self._peeked: bytes | None = None
        #: a read session's reader of records and arrays without HDF5 (see
        #: _reader_of_session): None until needed, False if HDF5 must read
        self._reader: Any = None
        base = beside(self.filename)  # through a symbolic link: the file's own
        self._base = base
        self._journal_path = base + ".journal"
        self._new_path = base + NEW_SUFFIX
        self._dataset_options: dict = {}
        if compression is not None:
            self._dataset_options = {"compression": compression}
            if compression_opts is not None:
                self._dataset_options["compression_opts"] = compression_opts
        if os.path.isdir(self.filename):  # os.path, not pathlib: ~10 µs a call less
            raise NotAStoreError(f"{self.filename} is a directory, not an HDF5 file")
        if mode in ("r", "r+") and not os.path.exists(self.filename):
            raise FileNotFoundError(f"no such file: {self.filename}")  # and leave no lock file
        if not self.readonly:
            parent = os.path.dirname(os.path.abspath(self.filename))
            if not os.path.isdir(parent):  # (mkdir of an existing one locks it: ~2 ms)
                Path(parent).mkdir(parents=True, exist_ok=True)
        elif not os.path.exists(base + ".lock") and not os.path.exists(self._journal_path):
            # tinystore writers make the lock file before the HDF5 file: without
            # one, no writer of ours can be half-way through this file, so it is
            # safe to look before leaving a lock file beside a file of somebody else
            self._prepare(mode)
        self._lock = StoreLock(base + ".lock", self.filename, lock_timeout, self.readonly, True)
        #: the mode whose checks wait for the first session (``check=False``)
        self._unchecked: str | None = None
        if not check:
            self._unchecked = mode
            return
        self._lock.acquire(shared=self.readonly)
        try:
            self._recover()
            self._prepare(mode)
        finally:
            self._lock.release()

    def _prepare(self, mode: str, session: bool = False) -> None:
        """Apply h5py's mode semantics once, and check the file is ours.
        ``session``: called by a write session, which makes a missing file
        itself (see :meth:`_create_writer`)."""
        try:
            size: int | None = os.stat(self.filename).st_size
        except FileNotFoundError:
            size = None
        if mode in ("r", "r+") and size is None:
            raise FileNotFoundError(f"no such file: {self.filename}")
        if mode in ("w-", "x") and size is not None:
            raise FileExistsError(f"{self.filename} already exists (mode {mode!r})")
        if mode == "w" and size:
            self._check_ours(f"refusing to overwrite {self.filename}: it is not a tinystore file")
        if self.readonly and size == 0:
            raise NotAStoreError(f"{self.filename} is an empty file, not a tinystore file")
        if mode == "w" or not size:
            self._fresh = True
            if size is None and session:
                self._creating = True
            elif size is None:  # made whole, then named: never seen half-written
                try:
                    self._write_new(self._new_path)
                    put_in_place(self._new_path, self._base, self.durable)
                except BaseException:
                    self._drop_new()
                    raise
            else:
                self._empty_in_place()
            return
        self._check_ours(
            f"{self.filename} is an HDF5 file, but not a tinystore file (it has no "
            f"{RECORD!r} record)"
        )

    def _empty_in_place(self) -> None:
        """Make the existing file an empty store (mode "w"), as h5py's mode "w"
        does: truncated in place (its permissions and links stay)."""
        try:
            with open(self.filename, "wb") as f:
                f.write(_empty_file_image())
        except OSError as exc:
            raise full_error(exc, self.filename) from None
        if self.durable:
            fsync_path(self.filename)

    def _write_new(self, path: str) -> None:
        """A new empty store at ``path`` (the temporary name of a new file)."""
        image = _root_image(EMPTY_ROOT)
        if image is not None:
            self._write_file(path, image)
            return
        fid = self._create_new(path)
        try:
            _write_root(fid, EMPTY_ROOT)
        finally:
            fid.close()

    def _create_new(self, path: str) -> h5f.FileID:
        """A new HDF5 file at ``path`` (the temporary name of a new file), open
        for writing; whatever a killed writer left there is removed first (a
        link: removed, never followed)."""
        with contextlib.suppress(FileNotFoundError):
            journal.unlink(path)
        try:
            return _create_file(path)
        except OSError as exc:  # a full disk: no half-made file is left
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise full_error(exc, self.filename) from None

    def _check_ours(self, message: str) -> None:
        if self._readable_without_hdf5() and hdf5_records.read_record(
            self.filename, (), _RECORD_NAME, MAX_RECORD_BYTES
        ):
            return  # (a reader of its own: this check may come before any session)
        fid = self._h5open()
        try:
            if not _has(fid, RECORD.encode()):
                raise NotAStoreError(message)
        finally:
            self._close(fid)

    def _h5open(self) -> h5f.FileID:
        """The file, read-only; as it was before a killed writer's session if the
        journal of one is there (read-only stores leave playing it back to a writer)."""
        try:
            if os.path.exists(self._journal_path):  # see begin: readers never play it back
                self._view = RolledBackFile(self.filename, self._journal_path)
                name, fapl = repr(self._view).encode("ascii"), _access_list(self._view)
            else:
                name, fapl = self._name, _ACCESS
            return h5f.open(name, h5f.ACC_RDONLY, fapl=fapl)
        except BaseException as exc:
            self._close(None)
            if isinstance(exc, FileNotFoundError):
                raise FileNotFoundError(f"no such file: {self.filename}") from None
            if not isinstance(exc, OSError):
                raise
            _raise_if_open_elsewhere(exc, self.filename)
            if os.path.exists(self.filename) and not h5py.is_hdf5(self.filename):
                raise NotAStoreError(f"{self.filename} is not an HDF5 file") from None
            raise CorruptStoreError(f"{self.filename} cannot be opened: {exc}") from exc

    def _peek(self, gpath: GPath) -> bytes | None:
        """The record of ``gpath`` read without HDF5 (see
        :mod:`~tinystore.storage.hdf5_records`), or None: HDF5 must read it."""
        reader = self._reader_of_session()
        return None if reader is None else reader.record(gpath, _RECORD_NAME, MAX_RECORD_BYTES)

    def _reader_of_session(self) -> hdf5_records.Reader | None:
        """The reader of this read session (opened when first needed), or
        None: HDF5 must read the file.  Not while a killed writer's journal
        is there (the file is read as it was before, through HDF5), nor while
        HDF5 holds any file open in this process (an h5py handle of this file
        may hold changes not written yet, and HDF5 then says the file is busy,
        as it did before; which file it holds is not asked, see
        _open_in_process)."""
        reader = self._reader
        if reader is None:
            reader = self._readable_without_hdf5() and hdf5_records.open_reader(self.filename)
            self._reader = reader or False
        return reader or None

    def _readable_without_hdf5(self) -> bool:
        """See :meth:`_reader_of_session`."""
        return not (os.path.exists(self._journal_path) or _open_in_process())

    def _close_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader:
            reader.close()

    def _peek_array(self, gpath: GPath, name: str, entry: dict) -> Any:
        """An array or bytes leaf read without HDF5 (see :meth:`_peek`), or None."""
        if entry["k"] == "A":
            if entry.get("r"):
                return None
            dtype = dtype_from_json(entry["d"])
            shape = tuple(entry["s"])
        else:
            dtype, shape = np.dtype(np.uint8), (entry.get("n"),)
        if dtype.kind not in "biufc" or dtype.fields is not None or dtype.metadata is not None:
            return None
        if not all(type(n) is int and n >= 0 for n in shape):
            return None
        reader = self._reader_of_session()
        if reader is None:
            return None
        path = gpath + tuple(name.split("/"))
        data = reader.array(path, _encoded_type(dtype), shape, dtype)
        if data is None or entry["k"] == "A":
            return data
        return data.tobytes()

    def _close(self, fid: h5f.FileID | None) -> None:
        """Close a read-only ``fid`` (and the file object under it, if any)."""
        try:
            if fid is not None:
                fid.close()
        finally:
            if self._view is not None:
                self._view.close()
                self._view = None

    # sessions: reads open the file directly; writes go through a rollback
    # journal, so a killed writer leaves the file as its last session did
    def begin(self, write: bool) -> None:
        # a store not checked yet may be created (or emptied, mode "w") by the check
        write = write or (self._unchecked is not None and not self.readonly)
        self._failures = []
        self._creating = False
        self._lock.acquire(shared=not write)
        try:
            if write:  # readers share the lock: they read around a journal, never play it back
                self._recover()
            mode = self._unchecked
            self._fresh = False
            if mode is not None and not (self.readonly and _size(self.filename)):
                self._prepare(mode, session=write)  # under the lock this session holds anyway
                mode = None
            # unchanged since this handle's last session: its cached records hold
            self._seen = None if self._stamp is None else self._now()
            self.shared = self._seen is None or self._seen != self._stamp
            self._stamp = None
            if write:
                self._lock.new_generation()
                self._fid = self._open_writer()
            elif mode is not None:  # else the file is opened when first needed (_file)
                self._peeked = self._peek(())
                if self._peeked is None:
                    self._fid = self._h5open()
            self._writing = write
            if write:
                _watch(self)
        except BaseException:
            if self._creating:
                self._drop_new()
            self._peeked = None
            self._close_reader()
            self._lock.release()
            raise
        if mode is not None and self._peeked is None:  # read-only: checked as it is opened
            if not _has(self._fid, RECORD.encode()):
                self.end()
                raise NotAStoreError(
                    f"{self.filename} is an HDF5 file, but not a tinystore file (it has no "
                    f"{RECORD!r} record)"
                )
        self._unchecked = None

    def _now(self) -> tuple | None:
        """The store's generation and the file's identity, or None if unknown."""
        generation = self._lock.generation()
        if generation is None:
            return None
        try:
            st = os.stat(self.filename)
        except OSError:
            return None
        return (generation, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def forget(self) -> None:
        self._stamp = None
        self._image = (None, None)

    def _file(self) -> h5f.FileID:
        """The file of this session, opened (read-only) when first needed (a
        new file's, made when first needed: see :meth:`_create_writer`)."""
        if self._fid is None:
            if self._deferred:
                return self._make_deferred()
            self._fid = self._h5open()
        return self._fid

    def _recover(self) -> None:
        # only under the exclusive lock: readers may be reading the file
        if self._lock.exclusive and os.path.exists(self._journal_path):
            roll_back(self.filename, self._journal_path)

    def _open_writer(self, defer: bool = True) -> h5f.FileID | None:
        if self._creating:
            return self._create_writer()
        if defer and self._defer_rewrite():
            return None
        if save_whole_file(self.filename, self._journal_path, JOURNAL_WHOLE_LIMIT, self.durable):
            # the journal holds all of the file: HDF5 may write to it directly
            try:
                return h5f.open(self._name, h5f.ACC_RDWR, fapl=_ACCESS)
            except BaseException as exc:
                roll_back(self.filename, self._journal_path)
                _raise_if_open_elsewhere(exc, self.filename)
                raise
        raw = JournaledFile(self.filename, self._journal_path, self.durable)
        try:
            fid = h5f.open(repr(raw).encode("ascii"), h5f.ACC_RDWR, fapl=_access_list(raw))
        except BaseException:
            raw.close()
            roll_back(self.filename, self._journal_path)
            raise
        self._raw = raw
        return fid

    def _defer_rewrite(self) -> bool:
        """True if this write session of an existing file need not open it
        with HDF5 (yet): the file holds nothing but its root record, exactly
        as :func:`_root_image` makes it, so a session that writes nothing
        but a new root record rewrites the file whole, as a new image, in
        place under a whole-file journal (:meth:`_rewrite_image`): ~0.5 ms
        less a single assignment in an open store.  The first session that
        does anything else opens the file with HDF5 after all (see
        :meth:`_make_deferred`).  Not while HDF5 holds a file open in this
        process (an h5py handle of this file may hold changes), nor for a
        file of a class the image writer does not make."""
        if not _writes_new_files() or _open_in_process():
            return False
        record = self._image_record()
        if record is None:
            return False
        self._deferred = True
        self._root = self._found = record
        self._root_written = False
        return True

    def _confirm_rewrite(self) -> None:
        """Before a session rewrites its file as an image (see
        :meth:`_defer_rewrite`): the file must still be the image the
        session began with (a writer that ignores tinystore's lock, h5py in
        another process say, may have changed it without changing its size
        or, on a file system of coarse times, its times), and HDF5 must hold
        no file open in this process (an h5py handle opened during the
        session may hold this file).  Else the file is opened with HDF5
        after all, which keeps what is in it, or fails (HDF5 refuses to open
        a file an h5py handle holds) and the session is rolled back."""
        if self._failures or (not _open_in_process() and self._unchanged()):
            return
        try:
            self._make_deferred()
        except Exception as exc:  # (whatever it is, the session is rolled back)
            self._failures.append(exc)

    def _unchanged(self) -> bool:
        """True if the file is still the image of the root record the session
        found (~10 µs for 36 KB)."""
        try:
            with open(self.filename, "rb") as f:
                data = f.read(IMAGE_FILE_LIMIT + 1)
        except OSError:
            return False
        return data == _root_image(self._found)

    def _image_record(self) -> bytes | None:
        """The root record of the file if the file is exactly the image of
        it (see :meth:`_defer_rewrite`), else None.  Known without a look
        if this handle wrote that image and nobody changed the file since
        (its generation and identity, as :meth:`_now` gives them, are the
        same); else read and compared, byte for byte (~20 µs)."""
        stamp, record = self._image
        if stamp is not None and self._seen == stamp:
            return record
        try:
            with open(self.filename, "rb") as f:
                if os.fstat(f.fileno()).st_size > IMAGE_FILE_LIMIT:
                    return None
                data = f.read()
        except OSError:
            return None
        record = hdf5_records.read_record(self.filename, (), _RECORD_NAME, MAX_RECORD_BYTES)
        if record is None or _root_image(record) != data:
            return None
        return record

    def _create_writer(self) -> h5f.FileID:
        """The session that makes a new file writes it under a temporary name
        (``<file>.writing``, beside the lock) and renames it into place at its
        end (:meth:`end`): no journal, and until the rename there is no file, so
        a writer killed before it leaves none (the next writer removes what it
        left); a reader finds no file, or the complete new one.

        A session that writes nothing but a root record HDF5 keeps compact
        (a small object saved) writes the file's bytes itself, at its end
        (:meth:`_write_image`, see :data:`WRITE_NEW_FILES`): until it writes
        anything else, HDF5 does not make the file (None is returned; see
        :meth:`_make_deferred`).  Otherwise the file is made by HDF5, and
        gets its root record when the session writes one, else at its end
        (:meth:`_finish_new`)."""
        self._root_written = False
        self._root = None
        self._deferred = _writes_new_files()
        return None if self._deferred else self._create_new(self._new_path)

    def _make_deferred(self) -> h5f.FileID:
        """The new file of a session that writes more than its root record,
        made by HDF5 after all, with the root record written so far (an
        existing file's, see :meth:`_defer_rewrite`: opened by HDF5)."""
        if not self._creating:
            # opened first: if HDF5 cannot open it, the session stays deferred,
            # and its end writes the root record so far or says it was lost
            fid = self._open_writer(defer=False)
            self._image = (None, None)  # (HDF5 writes the file now)
            record, written, self._root = self._root, self._root_written, None
            self._deferred = self._root_written = False
            self._fid = fid
            if written:
                self._write_record((), record)
            return fid
        self._deferred = False
        self._fid = fid = self._create_new(self._new_path)
        record, self._root = self._root, None
        if record is not None:
            try:
                self._held.append(_write_root(fid, record))
            except (OSError, RuntimeError) as exc:
                self._failures.append(exc)
                raise
        return fid

    def _write_image(self, failures: list) -> None:
        """Write a new file that holds nothing but its root record whole, as
        HDF5 would, under its temporary name (see :meth:`_create_writer`):
        made as HDF5 makes a file (a link left there is removed, not followed;
        the permissions of a new file), then put in place."""
        if not self._creating:
            self._rewrite_image(failures)
            return
        if failures:
            self._undo_session(None)
            raise write_failure(self.filename, failures)
        data = _root_image(EMPTY_ROOT if self._root is None else self._root)
        assert data is not None  # (checked as the record was written)
        try:
            self._write_file(self._new_path, data)
        except BaseException:
            self._undo_session(None)
            raise
        self._put_in_place()

    def _rewrite_image(self, failures: list) -> None:
        """End a session of an existing file that HDF5 did not open (see
        :meth:`_defer_rewrite`): if it wrote a new root record, the file is
        rewritten whole, in place (its permissions and links stay), as the
        image of that record, under a journal of all of the file; a kill
        leaves the journal, and the next session puts the file back."""
        self._image = (None, None)
        if failures:  # nothing reached the file
            raise write_failure(self.filename, failures)
        if self._root_written:
            self._put_image()
        self._image = (True, self._root)  # (its stamp is taken at the session's end)

    def _put_image(self) -> None:
        """Rewrite the file whole, in place, as the image of ``_root`` (see
        :meth:`_rewrite_image`)."""
        data = _root_image(self._root)
        assert data is not None  # (checked as the record was written)
        path, journal_path = self.filename, self._journal_path
        saved = save_whole_file(path, journal_path, IMAGE_FILE_LIMIT, self.durable)
        if not saved:  # (its size was checked at the session's start, under the lock)
            raise AssertionError(f"{self.filename} outgrew the whole-file journal")
        try:
            fd = os.open(self.filename, os.O_WRONLY | _BINARY)
            try:
                pwrite_all(fd, data, 0)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError as exc:
            roll_back(self.filename, self._journal_path)
            raise full_error(exc, self.filename) from None
        finish_whole_file(self.filename, self._journal_path, self.durable)

    def _write_file(self, path: str, data: bytes) -> None:
        """A new file at ``path`` (the temporary name of a new file) holding
        ``data``, made as HDF5 makes one (see :meth:`_create_new`): what a
        killed writer left there is removed first (a link: never followed),
        then created exclusively, with the permissions of a new file."""
        with contextlib.suppress(FileNotFoundError):
            journal.unlink(path)
        try:
            with open(path, "xb") as f:  # (O_EXCL as HDF5's; mode 0o666 less the umask)
                f.write(data)
        except OSError as exc:  # a full disk: no half-made file is left
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise full_error(exc, self.filename) from None

    def _finish_new(self, fid: h5f.FileID, failures: list) -> None:
        """Give a new file that the session left without a root record an
        empty one (a store with nothing in it)."""
        if failures or self._root_written:
            return
        try:
            self._held.append(_write_root(fid, EMPTY_ROOT))
        except (OSError, RuntimeError) as exc:
            failures.append(exc)

    def _put_in_place(self) -> None:
        """The commit point of a new file's session: its rename into place."""
        try:
            put_in_place(self._new_path, self._base, self.durable)
        except OSError as exc:
            self._undo_session(None)
            raise full_error(exc, self.filename) from None

    def upgrade(self) -> None:
        self._lock.acquire()  # shared to exclusive (the session's count stays one)
        self._lock.release()
        self._forget_groups()
        self._peeked = None
        self._close_reader()
        if self._fid is not None:
            self._fid.close()
            self._fid = None
        self._close(None)
        self._recover()
        now = self._now()
        self.shared = now is None or now != self._seen  # another writer came in
        if self.shared:
            self._image = (None, None)
        self._lock.new_generation()
        self._fid = self._open_writer()
        self._writing = True
        _watch(self)

    can_abort = True

    def abort(self) -> bool:
        """Put the file back as the write session found it (from its rollback
        journal) and start the session again; a failed transaction that freed
        replaced data early is undone this way (see ``_Store.discard``)."""
        if not self._writing:
            return False
        self._fresh = False
        fid, raw = self._fid, self._raw
        self._fid = self._raw = None
        try:
            if fid is not None:
                if raw is None:  # the journal (or a new temporary file) puts the whole
                    _disarm(fid.get_vfd_handle())  # file back: HDF5's last writes need not reach it
                self._release()
                with contextlib.suppress(OSError, RuntimeError):  # a full disk
                    fid.close()
        finally:
            if raw is not None:
                raw.close()
            if not self._creating:
                roll_back(self.filename, self._journal_path)
        self._fid = self._open_writer()  # a new file: an empty one again
        return True

    def end(self) -> None:
        if self._writing and self._deferred and self._root_written and not self._creating:
            try:
                self._confirm_rewrite()
            except BaseException as exc:  # an interrupt: the session is undone, and ends
                self._failures.append(exc)
                with contextlib.suppress(Exception):
                    self._end()
                raise
        self._end()

    def _end(self) -> None:
        self._forget_groups()
        self._fresh = False
        self._peeked = None
        self._close_reader()
        fid, raw, writing = self._fid, self._raw, self._writing
        self._fid = self._raw = None
        self._writing = False
        failures, self._failures = self._failures, []
        try:
            if writing and self._deferred:
                self._write_image(failures)
            elif writing and fid is not None:
                if self._creating:
                    self._finish_new(fid, failures)
                failures += self._close_writer(fid, raw, failures)
                if failures:
                    self._undo_session(raw)
                    raise write_failure(self.filename, failures)
                if self._creating:
                    self._put_in_place()
                elif raw is not None:
                    raw.commit()
                else:  # the file is complete: forget the journal
                    finish_whole_file(self.filename, self._journal_path, self.durable)
            else:
                self._release()
                if fid is not None:
                    fid.close()
            imaged = self._image[0] is True
            if self._sessions or imaged:  # (not after a first session that did not)
                self._stamp = self._now()  # still under the lock: nobody wrote since
                if imaged:
                    self._image = (self._stamp, self._image[1])
            self._sessions += 1
        finally:
            _WRITERS.pop(self, None)
            self._release()
            if raw is not None:
                raw.close()  # after a failure, the journal stays for the next session
            self._close(None)
            self._creating = self._deferred = False
            self._root = None
            self._lock.release()

    def _close_writer(self, fid: h5f.FileID, raw: JournaledFile | None, failures: list) -> list:
        """Flush and close a write session's file; the write errors met doing it.

        HDF5 reports some write errors only as h5py frees its handles, and
        only by printing them ("Exception ignored in ... __dealloc__"): those
        are caught here too, as are the errors of the file object under HDF5.
        """
        caught: list[BaseException] = []
        fd = fid.get_vfd_handle() if raw is None else None
        if not failures:
            try:
                h5f.flush(fid)  # raises what the metadata cache cannot write
            except (OSError, RuntimeError) as exc:
                caught.append(exc)
        if caught or failures:
            _disarm(fd)
        self._release()  # after a failure, what HDF5 writes as it closes them goes nowhere
        try:
            fid.close()  # HDF5 writes the rest (through the journal, if any)
        except (OSError, RuntimeError) as exc:
            caught.append(exc)
            _disarm(fd)
        finally:
            _WRITERS.pop(self, None)
        if raw is not None:
            try:
                raw.check()
            except OSError as exc:
                caught.append(exc)
        return caught

    def _undo_session(self, raw: JournaledFile | None) -> None:
        """Restore the file as it was before this session, from its journal; a
        new file's session leaves no file, nor a lock file beside it."""
        if raw is not None:
            raw.close()
        if self._creating:
            self._drop_new()
        else:
            roll_back(self.filename, self._journal_path)

    def _drop_new(self) -> None:
        """A new file's session failed: its temporary file goes, and so does the
        lock file (held exclusively), unless a file is there after all."""
        with contextlib.suppress(OSError):
            os.unlink(self._new_path)
        if self._lock.exclusive and not os.path.lexists(self.filename):
            with contextlib.suppress(OSError):
                self._lock.unlink()

    def _noting(self, func, *args) -> Any:
        """``func(*args)``; an error of the disk is noted: the session is undone.
        After one, HDF5 is not asked to do anything more in this session (its
        state after a failed write is not to be trusted: it may crash)."""
        if self._failures:
            raise write_failure(self.filename, self._failures)
        try:
            return func(*args)
        except (OSError, RuntimeError) as exc:
            if not isinstance(exc, CorruptStoreError):
                self._failures.append(exc)
            raise

    def _object(self, gpath: GPath) -> Any:
        """The group at ``gpath`` (KeyError if there is none), opened one hard
        link at a time from the nearest group opened before in this session
        (linear in the depth; links and hard-linked groups are refused)."""

        def step(parent: Any, j: int) -> Any:
            where = f"/{'/'.join(gpath[: j + 1])} in {self.filename}"
            return _open_group(parent, gpath[j], where)

        return open_cached(self._groups, gpath, self._file(), step)

    def _forget_groups(self) -> None:
        self._groups.clear()
        self._folders.clear()
        self._made.clear()

    def _absent(self, group: Any, gpath: GPath, folders: list, name: bytes) -> bool:
        """True if ``group`` (the folder ``folders`` of ``gpath``) has nothing
        called ``name``, which is about to be linked there."""
        made = self._made.get((gpath, "/".join(folders))) if folders else None
        if made is None:
            return not _has(group, name)
        if name in made:
            return not _has(group, name)
        made.add(name)
        return True

    def _folder(self, gpath: GPath, parts: list, create: bool) -> Any:
        """The HDF5 group ``parts`` (the folders of a leaf's path) inside the
        physical group ``gpath``; made where missing if ``create``, else
        KeyError.  Opened one hard link at a time, as :meth:`_object`."""
        if not parts:
            return self._object(gpath)
        key = (gpath, "/".join(parts))
        group = self._folders.get(key)
        if group is not None:
            return group
        group = self._folder(gpath, parts[:-1], create)
        name = parts[-1].encode("utf-8")
        where = f"/{'/'.join(gpath + tuple(parts))} in {self.filename}"
        if create and self._absent(group, gpath, parts[:-1], name):
            lcpl = _LCPL_ASCII if name.isascii() else _LCPL_UTF8
            sub = h5py.h5g.create(group, name, lcpl=lcpl, gcpl=FOLDER_GCPL)
            self._made[key] = set()
        else:
            sub = _open_group(group, parts[-1], where)
        self._folders[key] = sub
        return sub

    def _release(self) -> None:
        """Close the handles this session holds (the file stays open)."""
        self._forget_groups()
        self._held.clear()

    def read_record(self, gpath: GPath) -> bytes | None:
        if self._deferred:  # a new file that holds its root record only
            return None if gpath else EMPTY_ROOT if self._root is None else self._root
        if self._creating and not gpath and not self._root_written:
            return EMPTY_ROOT  # a new file's, until the session writes one
        if self._fid is None:  # a read session that has not opened the file
            data, self._peeked = self._peeked, None
            if data is None or gpath:
                data = self._peek(gpath)
            if data is not None:
                return data
        where = f"{RECORD} in group /{'/'.join(gpath)} of {self.filename}"
        try:
            group = self._object(gpath)
            ds = _open_hard(group, RECORD.encode(), where)
        except KeyError:
            return None
        if not isinstance(ds, h5d.DatasetID):
            raise CorruptStoreError(f"{where} is not a record")
        dcpl = ds.get_create_plist()
        if dcpl.get_layout() != h5d.COMPACT:  # (compact: all its bytes are in its header)
            _check_dataset(ds, where, True, dcpl)
        space = ds.get_space()
        try:
            dtype = ds.dtype
        except TypeError:  # (a type h5py has no numpy type for: a damaged charset, say)
            raise CorruptStoreError(f"{where} is not a record") from None
        if space.get_simple_extent_type() != h5s.SCALAR or dtype.kind != "S":
            raise CorruptStoreError(f"{where} is not a record")
        if dtype.itemsize > MAX_RECORD_BYTES:
            raise CorruptStoreError(f"{where} is too large")
        text = np.empty((), dtype)
        ds.read(h5s.ALL, h5s.ALL, text)
        return bytes(text[()])

    def write_record(self, gpath: GPath, data: bytes) -> None:
        self._fresh = False  # (see list_names)
        check_space(self.filename, len(data) + SPACE_MARGIN)
        self._noting(self._write_record, gpath, data)

    def _write_record(self, gpath: GPath, data: bytes) -> None:
        if self._deferred and not gpath and _imaged(len(data)):  # (see _create_writer)
            self._root = data
            self._root_written = True
            return
        group = self._object(gpath)
        key = RECORD.encode()
        # (a new file has no root record until the session writes one)
        if (gpath or self._root_written or not self._creating) and _has(group, key):
            group.unlink(key)  # only the link goes, whatever it pointed to
        if not gpath:
            self._root_written = True
        text = np.frombuffer(data, dtype=f"S{len(data)}").reshape(())
        self._held.append(_create_dataset(group, RECORD, text, {}, _record_list(len(data))))

    def _dataset(self, gpath: GPath, name: str) -> tuple[h5d.DatasetID, str, Any]:
        """The dataset ``name`` of group ``gpath``, checked (see
        :func:`_check_dataset`; reading it whole needs :func:`_check_written`
        too); where it is, for errors; and its creation properties."""
        where = f"dataset {name!r} in /{'/'.join(gpath)} of {self.filename}"
        *folders, leaf = name.split("/")
        try:
            ds = _open_hard(self._folder(gpath, folders, False), leaf.encode("utf-8"), where)
        except KeyError:
            ds = None
        if not isinstance(ds, h5d.DatasetID):
            raise CorruptStoreError(f"{where} is missing or not a dataset")
        dcpl = ds.get_create_plist()
        _check_dataset(ds, where, False, dcpl)
        return ds, where, dcpl

    def read_external(self, gpath: GPath, name: str, entry: dict) -> Any:
        """The array (or bytes) ``name``: its shape and type checked against
        the record's entry, then that it holds every byte (each dataset's
        space and type are read once: ~15 µs less an array than before)."""
        if self._fid is None and not self._deferred:  # a read session, file not opened
            data = self._peek_array(gpath, name, entry)
            if data is not None:
                return np.asfortranarray(data) if entry.get("o") == "F" else data
        ds, where, dcpl = self._dataset(gpath, name)
        space = ds.get_space()
        shape = None if space.get_simple_extent_type() == h5s.NULL else space.shape
        if entry["k"] != "A":
            if ds.dtype != np.uint8 or shape is None or len(shape) != 1:
                raise CorruptStoreError(f"{where} does not hold bytes")
            _check_written(ds, dcpl, dcpl.get_layout(), where, shape, 1)
            data = np.empty(shape, np.uint8)
            if data.size:
                ds.read(h5s.ALL, h5s.ALL, data)
            return data.tobytes()
        expected_dtype = dtype_from_json(entry["d"])
        if entry.get("r"):
            expected = (int(np.prod(entry["s"], dtype=np.float64)) * expected_dtype.itemsize,)
            expected_dtype = np.dtype(np.uint8)
        else:
            expected = tuple(entry["s"])
        file_type, memory_type = _h5types(expected_dtype)
        # the type tinystore writes for this dtype, or one that h5py reads as it
        if shape != expected or not (ds.get_type() == file_type or ds.dtype == expected_dtype):
            raise CorruptStoreError(
                f"{where} holds {ds.dtype}{shape}, but the record says {expected_dtype}{expected}"
            )
        _check_written(ds, dcpl, dcpl.get_layout(), where, shape, expected_dtype.itemsize)
        if entry.get("r"):
            raw = bytearray(expected[0])
            if raw:
                ds.read(h5s.ALL, h5s.ALL, np.frombuffer(raw, dtype=np.uint8))
            return array_from_bytes(raw, entry)
        # straight into the array it becomes (h5py's ds[()] costs ~0.1 ms more)
        arr = np.empty(shape, expected_dtype)
        if arr.size:
            ds.read(h5s.ALL, h5s.ALL, arr, memory_type)
        if entry.get("o") == "F":
            arr = np.asfortranarray(arr)
        return arr

    def read_external_slice(self, gpath: GPath, name: str, entry: dict, selection: Any) -> Any:
        """The selection of a dataset, read as an HDF5 hyperslab (or point
        selection): only the bytes (chunks) it touches are read.  Selections
        HDF5 cannot make (unsorted index lists, say) read the whole array."""
        if entry.get("r") or entry["k"] != "A":
            return super().read_external_slice(gpath, name, entry, selection)
        ds, where, _ = self._dataset(gpath, name)
        dtype = with_flags(dtype_from_json(entry["d"]), entry)
        shape = tuple(entry["s"])
        if ds.shape != shape or ds.dtype != dtype:
            raise CorruptStoreError(
                f"{where} holds {ds.dtype}{ds.shape}, but the record says {dtype}{shape}"
            )
        try:
            part = h5py.Dataset(ds)[selection]
        except (TypeError, ValueError, IndexError):  # a selection HDF5 cannot make
            return super().read_external_slice(gpath, name, entry, selection)
        if isinstance(part, np.ndarray) and part.dtype != dtype:
            part = part.view(dtype)  # the aligned flag and metadata of the record
        return part

    def write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        self._fresh = False  # (see list_names)
        nbytes = value.nbytes if isinstance(value, np.ndarray) else len(value)
        check_space(self.filename, nbytes + SPACE_MARGIN)
        self._noting(self._write_external, gpath, name, value, entry)

    def _write_external(self, gpath: GPath, name: str, value: Any, entry: dict) -> None:
        *folders, name = name.split("/")
        group = self._folder(gpath, folders, True)
        key = name.encode("utf-8")
        if not self._absent(group, gpath, folders, key):  # left by a killed process: unused
            group.unlink(key)
        if type(value) is not np.ndarray:
            data = np.frombuffer(value, dtype=np.uint8)
        elif _native_ok(value.dtype):
            data = value
        else:
            data = np.frombuffer(value.tobytes(order=entry.get("o", "C")), dtype=np.uint8)
            entry["r"] = 1
        dcpl = array_list(data.nbytes)
        self._held.append(_create_dataset(group, name, data, self._dataset_options, dcpl))

    def rename_external(self, gpath: GPath, name: str, new: str, entry: dict) -> None:
        self._noting(self._rename_external, gpath, name, new)

    def _rename_external(self, gpath: GPath, name: str, new: str) -> None:
        *old_folders, old_leaf = name.split("/")
        *new_folders, new_leaf = new.split("/")
        source = self._folder(gpath, old_folders, False)
        target = self._folder(gpath, new_folders, True)
        key = new_leaf.encode("utf-8")
        if not self._absent(target, gpath, new_folders, key):  # left by a failed removal
            target.unlink(key)
        lcpl = _LCPL_ASCII if new_leaf.isascii() else _LCPL_UTF8
        source.links.move(old_leaf.encode("utf-8"), target, key, lcpl=lcpl)
        if old_folders != new_folders:  # the old folders may be empty now
            self._prune(gpath, old_folders)

    def rename_group(self, gpath: GPath, name: str, new: str) -> None:
        self._noting(self._rename_group, gpath, name, new)

    def _rename_group(self, gpath: GPath, name: str, new: str) -> None:
        parent = self._object(gpath)
        key = new.encode("utf-8")
        if _has(parent, key):  # left by a failed removal: no record names it
            parent.unlink(key)
        lcpl = _LCPL_ASCII if new.isascii() else _LCPL_UTF8
        parent.links.move(name.encode("utf-8"), parent, key, lcpl=lcpl)
        self._forget_groups()  # the groups below it have other paths now

    def _prune(self, gpath: GPath, folders: list) -> None:
        """Remove the folders of a leaf's path that hold nothing any more."""
        try:
            chain = [self._folder(gpath, folders[:i], False) for i in range(len(folders) + 1)]
        except KeyError:
            return
        for i in range(len(folders), 0, -1):
            if chain[i].get_num_objs():
                break
            chain[i - 1].unlink(folders[i - 1].encode("utf-8"))
        self._forget_groups()

    def delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        self._noting(self._delete_external, gpath, name, entry)

    def _delete_external(self, gpath: GPath, name: str, entry: dict) -> None:
        *folders, leaf = name.split("/")
        try:
            group = self._folder(gpath, folders, False)
        except KeyError:
            return  # a folder is gone: so is what was in it
        key = leaf.encode("utf-8")
        if _has(group, key):  # a link is removed, never what it points to
            group.unlink(key)
        # folders left empty go (folders hold nothing but leaves and folders)
        self._prune(gpath, folders)

    def create_group(self, gpath: GPath) -> None:
        self._fresh = False  # (see list_names)
        self._noting(self._create_group, gpath)

    def _create_group(self, gpath: GPath) -> None:
        parent = self._object(gpath[:-1])
        key = gpath[-1].encode("utf-8")
        if _has(parent, key):  # left by a killed process: the name is unused
            parent.unlink(key)
        self._forget_groups()
        lcpl = _LCPL_ASCII if key.isascii() else _LCPL_UTF8
        h5py.h5g.create(parent, key, lcpl=lcpl, gcpl=_GCPL)

    def list_names(self, gpath: GPath) -> list[tuple[str, str, dict]]:
        """Everything in a physical group: its physical subgroups (``G``, the
        groups with a record, or empty), and its leaves (``X``), the leaves in
        folders listed by their paths."""
        if (self._fresh or self._deferred) and not gpath:  # (tinystore.save to a new
            return []  # file: ~50 µs; or a file that holds its root record only)
        out: list = []
        stack: list = [(self._object(gpath), "")]
        while stack:
            group, prefix = stack.pop()
            for key in group:
                name = prefix + key.decode("utf-8")
                if name == RECORD:
                    continue
                # a link is listed as a leaf (it is unlinked, never followed)
                is_group = (
                    _link_type(group, key) == h5l.TYPE_HARD
                    and h5o.get_info(group, key).type == h5o.TYPE_GROUP
                )
                if not is_group:
                    out.append(("X", name, {"k": "A"}))
                    continue
                sub = h5o.open(group, key)
                if prefix or (not _has(sub, RECORD.encode()) and sub.get_num_objs()):
                    stack.append((sub, name + "/"))  # a folder of leaves
                else:
                    out.append(("G", name, {}))
        return out

    def delete_group(self, gpath: GPath) -> None:
        self.delete_external(gpath[:-1], gpath[-1], {})

    def commit(self) -> None:
        # Nothing to do: the end of a write session is its commit point (the file
        # closed, then the journal removed); flushing HDF5 earlier would add
        # writes, not safety, since a killed session is rolled back whole.
        pass

    def close(self) -> None:
        pass  # the file is open only during sessions

    def reopen(self) -> None:
        if not os.path.exists(self.filename):
            raise FileNotFoundError(f"no such file: {self.filename}")


class HDF5Storage(RecordStorage):
    """A storage in an HDF5 file.

    ``mode`` is h5py's: ``"r"`` read-only, ``"r+"`` read/write (must exist),
    ``"a"`` read/write (created if missing), ``"w"`` create or truncate
    (refuses files tinystore did not write), ``"w-"``/``"x"`` create (must not
    exist).  ``compression`` (e.g. ``"gzip"``, ``"lzf"``) applies to the
    arrays stored as datasets.

    The file is opened for each operation and closed after it, under a
    cross-process lock (the file ``<filename>.lock`` beside it; beside the
    file a symbolic link points to), so several
    processes can use one file.  Writes go through a rollback journal
    (``<filename>.journal`` while a write is under way), so a killed process
    leaves the file as it was after its last complete write; a new file is
    written as ``<filename>.writing`` and renamed into place (a writer killed
    before that leaves no file).  ``lock_timeout`` is how long to wait
    for another process (seconds); ``storage.hold()`` / ``storage.batch()``
    keep the file open for a block of reads / writes.  ``check=False`` leaves
    checking that the file is a tinystore file (and applying ``mode``) to the
    first operation: :func:`tinystore.load` and :func:`tinystore.save` use it
    to open the file once.  ``durable=True``: every write session ends with
    its data on the disk (``fsync`` of the journal before the file changes,
    of the file before the journal goes, and of the directory after), so it
    survives power loss; by default a write survives the death of the
    process (SIGKILL), not of the machine.

    >>> import tempfile, os
    >>> fn = os.path.join(tempfile.mkdtemp(), "example.h5")
    >>> with HDF5Storage(fn, mode="w") as s:
    ...     s["energy"] = -3.5
    >>> HDF5Storage(fn, mode="r")["energy"]
    -3.5
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        mode: str = "a",
        compression: Any = None,
        compression_opts: Any = None,
        lock_timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
        durable: bool = False,
    ):
        self._init_root(
            _HDF5Physical(
                filename, mode, compression, compression_opts, lock_timeout, check, durable
            )
        )
