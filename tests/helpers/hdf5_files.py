"""The bytes of new HDF5 files that HDF5 itself makes, with tinystore's
creation properties: what the image writer (``storage/hdf5_image.py``) is
compared with."""

from __future__ import annotations

import os

import h5py
import numpy as np

from tinystore.storage import hdf5


def made_by_hdf5(folder, record: bytes, contiguous: bool = False) -> bytes:
    """The file HDF5 writes for ``record`` as the root record of a new file
    (its dataset's layout as tinystore chooses it; ``contiguous``: that
    layout, whatever the record's length)."""
    path = os.path.join(folder, "hdf5.h5")
    fid = hdf5._create_file(path)
    try:
        if contiguous:
            text = np.frombuffer(record, dtype=f"S{len(record)}").reshape(())
            root = h5py.h5g.open(fid, b"/")
            hdf5._create_dataset(root, hdf5.RECORD, text, {}, hdf5._DCPL)
        else:
            hdf5._write_root(fid, record)
    finally:
        fid.close()
    with open(path, "rb") as f:
        data = f.read()
    os.unlink(path)
    return data
