"""Read h5io and pyiron_base HDF5 files: browse, load as plain data, convert.

Read-only and without running code: nothing a file names is imported and
nothing pickled is unpickled unless ``safe=False`` (everything) or
``allow=[...]`` (those classes) is passed.  :func:`tinystore.open`,
:func:`tinystore.load` and the command line recognise such files by
themselves (an HDF5 file without tinystore's ``@record`` but with h5io
``TITLE`` attributes or pyiron's job layout), or take ``backend="legacy"``.
See the "Coming from pyiron / h5io" page of the documentation.
"""

from tinystore.legacy.reader import (
    GlobalRef,
    Lost,
    LostDataWarning,
    Opaque,
    OpaqueDataWarning,
    Policy,
    classify,
    is_legacy,
)

__all__ = [
    "GlobalRef",
    "Lost",
    "LostDataWarning",
    "Opaque",
    "OpaqueDataWarning",
    "Policy",
    "classify",
    "is_legacy",
]
