"""Record-packed storage: the physical layout shared by every built-in backend.

Each *physical group* keeps **one record**, a JSON document holding its
subtree down to the next physical groups, with big arrays and byte strings
beside it in the backend's native form; :mod:`.format` describes the layout
and the entry grammar (in one place: its module docstring).

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
