"""How the HDF5 backend lays out arrays: the creation properties of the
datasets that hold them and of the *folders* (plain groups) between a record's
group and them (see "The HDF5 layout" in ``docs/format.rst``).

A list of 100 ``ase.Atoms`` is ~700 small datasets in ~800 folders: with
HDF5's default properties their object headers (~270 and ~230 bytes each, half
of it reserved space that nothing uses) are a third of the file.  Here each
header is as small as HDF5 makes it, the datasets stay what they were
(h5py, ``h5dump`` and every HDF5 reader see the same dtype, shape and bytes):

* *minimized* dataset headers (``H5Pset_dset_no_attrs_hint``, HDF5 1.10.5):
  sized to the dataset's messages, without HDF5's room for attributes (256
  bytes reserved by default; tinystore writes no attributes);
* attribute creation order tracked (no attribute is ever written): it is what
  makes HDF5 write a version 2 object header in a file of the oldest formats
  (4-6 byte message headers instead of 8, no padding to 8 bytes);
* arrays of at most :data:`COMPACT_ARRAY_BYTES` bytes are *compact*: their
  bytes are in the header (one block to write and read, no data address);
  compressed ones are chunked (h5py's ``create_dataset``, given these
  properties);
* a folder's header starts with room for :data:`FOLDER_LINKS` links (HDF5's
  default is 4, most folders hold one or two), and grows past it.

No timestamps anywhere (deterministic bytes).  ``H5Pset_dset_no_attrs_hint``
and ``H5Pset_est_link_info`` are not wrapped by h5py: they are called in the
HDF5 library h5py itself runs on (found through h5py's own extension module,
so never a second copy of HDF5), once, on property lists of this module.
Where that library cannot be reached so (Windows) or lacks them, the headers
are HDF5's default size: a larger file, the same datasets.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from typing import Any

import h5py
from h5py import h5d, h5p

#: Arrays (and byte strings) of at most this many bytes are compact datasets
#: (~20 bytes less each).  HDF5 allows up to 64 KiB in a header, but keeps a
#: compact dataset's bytes in its metadata cache: from ~4 KiB on, that costs
#: time (300 arrays of 16 KiB: save 33 to 51 ms), and reading part of one
#: reads all of it.
COMPACT_ARRAY_BYTES = 2048
#: Links a new folder's header has room for (more make it grow).
FOLDER_LINKS = 2
#: The length of name that room is made for.
FOLDER_NAME_BYTES = 4


@functools.cache
def hdf5_library() -> Any:
    """The HDF5 library h5py runs on, through ``ctypes`` (None if it cannot
    be reached that way).  On POSIX, a symbol looked up in a loaded library
    is looked up in the libraries it links too: h5py's ``defs`` module links
    h5py's HDF5, whichever file that is (a wheel's bundled copy, a system
    one).  Elsewhere (Windows) no lookup is made."""
    if os.name != "posix":
        return None
    try:
        return ctypes.CDLL(h5py.defs.__file__)
    except OSError:
        return None


def _call(name: str, plist: Any, *args: int) -> bool:
    """Call the property setter ``name`` of h5py's HDF5 on ``plist``, with
    unsigned int arguments (HDF5's ``hbool_t`` and ``unsigned``): False if
    the library or the setter is missing, or HDF5 refuses the call."""
    lib = hdf5_library()
    setter = getattr(lib, name, None) if lib is not None else None
    if setter is None:
        return False
    setter.argtypes = [ctypes.c_int64] + [ctypes.c_uint] * len(args)
    setter.restype = ctypes.c_int
    # h5py's lock around every HDF5 call (a private name: none if it moves)
    with getattr(getattr(h5py, "_objects", None), "phil", None) or contextlib.nullcontext():
        return setter(plist.id, *args) >= 0


def _array_list(compact: bool) -> h5p.PropDCID:
    dcpl = h5p.create(h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    dcpl.set_attr_creation_order(h5p.CRT_ORDER_TRACKED)  # (a version 2 header)
    _call("H5Pset_dset_no_attrs_hint", dcpl, 1)
    if compact:
        dcpl.set_layout(h5d.COMPACT)
    return dcpl


def _folder_list() -> h5p.PropGCID:
    """Folders as every tinystore group (no timestamps, links kept in the
    header in the order they were made), with a version 2 header sized for
    :data:`FOLDER_LINKS` links."""
    gcpl = h5p.create(h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    gcpl.set_link_creation_order(h5p.CRT_ORDER_TRACKED)
    gcpl.set_attr_creation_order(h5p.CRT_ORDER_TRACKED)
    _call("H5Pset_est_link_info", gcpl, FOLDER_LINKS, FOLDER_NAME_BYTES)
    return gcpl


ARRAY_DCPL = _array_list(compact=False)
ARRAY_DCPL_COMPACT = _array_list(compact=True)
FOLDER_GCPL = _folder_list()


def array_list(nbytes: int) -> h5p.PropDCID:
    """The creation properties of a dataset of ``nbytes`` bytes."""
    return ARRAY_DCPL_COMPACT if nbytes <= COMPACT_ARRAY_BYTES else ARRAY_DCPL
