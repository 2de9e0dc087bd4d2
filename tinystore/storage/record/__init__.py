"""Record-packed storage: the physical layout shared by every built-in backend.

Logically a storage is a tree of groups and leaves.  Physically each
*physical group* (the root, groups made by ``create_group`` and every value
assigned directly into a physical group) keeps **one record**: a JSON
document that holds its own metadata and the whole subtree below it, down to
the next physical groups.  Small leaves are written inline; large arrays and
byte strings are written next to the record in the backend's native form
(HDF5 datasets, ``.npy`` files).  So storing a dict of 1,000 floats costs one
record write, not 1,000.

A record is a flat table of nodes (so that arbitrarily deep structures need
no deep JSON nesting)::

    {"tinystore": [1, 0], "attrs": [{attrs}, ...], "nodes": [node0, node1, ...]}
    node  = {"a": {attrs} | index, "c": {key: entry, ...} | [entry, ...], "g": 1}
    entry = plain JSON leaf | tagged leaf (see leaves.py)
          | {"@": index}               an inline node of this record
          | {"@": node}                a small node of plain values, in place
          | {"@<n>": children}         the same, short: {"a": n, "c": children}
          | {"G": name, "g": 1}        a physical subgroup (``g``: made by create_group)
          | {"X": name, "k": kind,...} a leaf stored outside the record

Metadata that many nodes share (every tuple of a list of tuples has the
same) is written once, in the record's ``attrs`` table; a node's ``a`` is
then its index there.

A backend provides a :class:`Physical` (read/write records and external
leaves); :class:`RecordStorage` does everything else, identically for all.

The package, one job a module:

* :mod:`.format`: the entry grammar, record bytes and metadata tables (no I/O);
* :mod:`.packing`: trees to entries and back;
* :mod:`.transactions`: sessions, commit, rollback, recovery;
* :mod:`.physical`: the interface a backend implements;
* :mod:`.storage`: :class:`RecordStorage`, the groups users hold.
"""

from tinystore.storage.record.format import (
    FORMAT_VERSION,
    INLINE_LIMIT,
    MAX_RECORD_BYTES,
    GPath,
    Record,
    check_name,
    dumps_record,
    loads_record,
)
from tinystore.storage.record.physical import Physical
from tinystore.storage.record.storage import RecordStorage

__all__ = [
    "FORMAT_VERSION",
    "INLINE_LIMIT",
    "MAX_RECORD_BYTES",
    "GPath",
    "Physical",
    "Record",
    "RecordStorage",
    "check_name",
    "dumps_record",
    "loads_record",
]
