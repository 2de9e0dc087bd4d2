"""Read h5io and pyiron_base HDF5 files with h5py alone: classify, browse, load.

Nothing here imports a module a file names, and nothing is unpickled unless
the :class:`Policy` says so.  The rules (see ``docs/legacy.rst``):

* h5io: every node has a ``TITLE`` attribute; datasets ``ndarray``, ``int``
  (bool dtype: a bool), ``float``, ``np_<type>``, ``unicode``/``str``/``ascii``
  (UTF-8 bytes), ``json``, ``None``, ``datetime``/``date`` (ISO text),
  ``timezone`` (repr text, parsed, never evaluated), ``class``, ``void``,
  ``ndarray_str``; groups ``dict`` (``key_<k>``), ``list``/``tuple``
  (``idx_N``), ``multiarray``, sparse matrices, pandas objects (PyTables fixed
  format, or any group with a ``pandas_type`` attribute), and any other title
  ``module.Class``: a ``use_state`` object whose children are its state.
* pyiron_base: a group with a ``TYPE`` dataset (``"<class 'mod.Class'>"``) is
  an object, a job if it also has ``status`` and ``server``; DataContainer
  children are named ``<key>__index_<i>``; base64 cloudpickle strings begin
  with ``gAWV``/``gASV``.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import h5py
import numpy as np

from tinystore.errors import UnloadableError

__all__ = [
    "Opaque",
    "Lost",
    "Record",
    "GlobalRef",
    "Policy",
    "Info",
    "classify",
    "children",
    "load",
    "resolve",
    "is_legacy",
    "LostDataWarning",
    "OpaqueDataWarning",
]

#: pyiron's metadata datasets (plain datasets, not attributes)
PYIRON_META = ("NAME", "OBJECT", "TYPE", "VERSION", "HDF_VERSION", "DICT_VERSION")
#: DataContainer bookkeeping, kept out of the loaded mapping
PYIRON_BOOKKEEPING = ("READ_ONLY", "KEY_ORDER")
SPARSE = ("csr_matrix", "csc_matrix", "csr_array", "csc_array")
#: use_state groups of these modules keep their value in the reduce arguments,
#: which h5io does not write: an empty group of them is data lost at write time
LOSSY_MODULES = ("builtins", "datetime", "decimal", "fractions")
_PYIRON_TYPE = re.compile(r"^<class '([A-Za-z_][\w.]*)'>$")
_INDEX = re.compile(r"^(.*)__index_(\d+)$")
_PICKLE_B64 = ("gAWV", "gASV", "gAN", "gAJ")


class LostDataWarning(UserWarning):
    """Loaded data that h5io had already lost when the file was written."""


class OpaqueDataWarning(UserWarning):
    """Loaded a pickled part as an :class:`Opaque` placeholder (not unpickled)."""


@dataclass(frozen=True)
class Opaque:
    """A pickled part that was not unpickled: ``kind`` (``"pickle"``,
    ``"cloudpickle-base64"``, ``"pickled-columns"``), its raw ``data``, ``path``."""

    kind: str
    data: bytes = field(repr=False)
    path: str = ""

    def __repr__(self) -> str:
        return f"<opaque {self.kind} of {len(self.data)} bytes at {self.path!r}>"


@dataclass(frozen=True)
class Lost:
    """A value h5io lost at write time: an empty ``use_state`` group of ``type``."""

    type: str
    path: str = ""

    def __repr__(self) -> str:
        return f"<lost at write time: {self.type} at {self.path!r}>"


@dataclass(frozen=True)
class GlobalRef:
    """A class stored by name (h5io ``class``), not imported."""

    name: str

    def __repr__(self) -> str:
        return f"<class {self.name} (not imported)>"


@dataclass(frozen=True)
class Record:
    """An object named by class, not rebuilt: its ``type`` (``mod.Class``),
    ``state`` and ``layout`` (``"h5io use_state"``, ``"pyiron object"``...)."""

    type: str
    state: Any
    layout: str = ""


@dataclass
class Policy:
    """What loading may do: ``rebuild(name)`` for ``module:qualname`` names of
    classes it may import and instantiate; ``unpickle``: run pickled parts."""

    rebuild: Callable[[str], bool] = lambda name: False
    unpickle: bool = False
    #: objects as :class:`Record` (type and state) instead of their state
    records: bool = False

    @classmethod
    def from_options(cls, safe: Any, allow: Any = ()) -> Policy:
        """tinystore's ``safe``/``allow``: only an explicit ``safe=False``
        rebuilds every class and unpickles; ``allow`` rebuilds those classes."""
        allowed = frozenset(allow or ())
        if allowed:
            return cls(allowed.__contains__, False)
        if safe is False:
            return cls(lambda name: True, True)
        return cls()


@dataclass
class Info:
    """What a node is, from metadata: ``kind``, Python ``type`` name, shape, flags."""

    kind: str
    type: str
    shape: tuple | None = None
    dtype: Any = None
    nbytes: int = 0
    lost: bool = False
    opaque: str = ""  # the kind of pickle, if any
    meta: dict = field(default_factory=dict)
    title: str | None = None  # the h5io TITLE it was classified from


# ----------------------------------------------------------------------------
# small helpers
def title(obj: Any) -> str | None:
    """The h5io ``TITLE`` of a node (None if absent or not text)."""
    value = obj.attrs.get("TITLE")
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) and value else None


def _text(ds: h5py.Dataset) -> str:
    value = ds[()]
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SV" or value.dtype == np.uint8:
            return value.tobytes().decode("utf-8", "surrogateescape")
        if value.dtype.kind == "O" and value.size == 1:
            value = value.reshape(-1)[0]
        else:
            return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return str(value)


def _scalar(ds: h5py.Dataset) -> str:
    """A scalar string dataset as str."""
    value = ds[()]
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


def _attr_text(obj: Any, key: str) -> str | None:
    value = obj.attrs.get(key)
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else None


def pyiron_type(group: h5py.Group) -> str | None:
    """``mod.Class`` of a pyiron object group (from its ``TYPE`` dataset)."""
    ds = group.get("TYPE")
    if not isinstance(ds, h5py.Dataset):
        return None
    text = _text(ds)
    match = _PYIRON_TYPE.match(text.strip())
    return match.group(1) if match else text.strip()


def _dotted_to_global(name: str) -> str:
    module, _, qual = name.rpartition(".")
    return f"{module}:{qual}" if module else name


def _is_lost(group: h5py.Group, name: str) -> bool:
    return len(group) == 0 and name.rpartition(".")[0] in LOSSY_MODULES


def _is_pickle(raw: bytes) -> bool:
    return len(raw) > 2 and raw[0] == 0x80 and 2 <= raw[1] <= 5


def _b64_pickle(text: str) -> bool:
    return text.startswith(_PICKLE_B64) and len(text) >= 8


# ----------------------------------------------------------------------------
# classification
def classify(obj: Any, meta: bool = True) -> Info:
    """The :class:`Info` of an h5py node, from its metadata (reads at most the
    first bytes of a text dataset, to recognise base64 pickles).  ``meta=False``
    leaves pyiron's metadata datasets (``NAME``, ``VERSION``...) unread."""
    if isinstance(obj, h5py.Dataset):
        return _classify_dataset(obj, meta)
    return _classify_group(obj, meta)


_DATASET_TYPES = {
    "ndarray": ("ndarray", "numpy.ndarray"),
    "float": ("leaf", "builtins.float"),
    "json": ("json", "json"),
    "None": ("leaf", "builtins.NoneType"),
    "datetime": ("leaf", "datetime.datetime"),
    "date": ("leaf", "datetime.date"),
    "timezone": ("leaf", "datetime.timezone"),
    "class": ("class", "builtins.type"),
    "ndarray_str": ("ndarray", "numpy.ndarray"),
}


def _classify_dataset(ds: h5py.Dataset, peek: bool = True) -> Info:
    t = title(ds)
    info = _classify_dataset_titled(ds, t, peek)
    info.title = t
    return info


def _classify_dataset_titled(ds: h5py.Dataset, t: str | None, peek: bool) -> Info:
    shape, dtype = ds.shape, ds.dtype
    nbytes = int(np.prod(shape or (1,), dtype=np.int64)) * dtype.itemsize
    if t == "int":
        kind, name = "leaf", "builtins.bool" if dtype.kind == "b" else "builtins.int"
    elif t is not None and t.startswith("np_"):
        kind, name = "leaf", f"numpy.{t[3:]}"
    elif t in ("unicode", "str", "ascii"):
        # (the loader, peek=False, looks at the text it reads anyway)
        head = ds[:8].tobytes() if peek and ds.shape and ds.dtype == np.uint8 else b""
        if _b64_pickle(head.decode("ascii", "replace")):
            return Info(
                "opaque", "cloudpickle (base64)", nbytes=nbytes, opaque="cloudpickle-base64"
            )
        kind, name = "leaf", "builtins.str"
    elif t == "void":
        head = bytes(ds[()].tobytes()[:3]) if nbytes else b""
        if _is_pickle(head):
            return Info("opaque", "pickle bytes", nbytes=nbytes, opaque="pickle")
        kind, name = "leaf", "builtins.bytes"
    elif t in _DATASET_TYPES:
        kind, name = _DATASET_TYPES[t]
    elif t is None and shape == ():  # a plain h5py scalar
        if h5py.check_string_dtype(dtype) is not None or dtype.kind == "S":
            if _b64_pickle(_scalar(ds)[:8]):
                return Info(
                    "opaque", "cloudpickle (base64)", nbytes=nbytes, opaque="cloudpickle-base64"
                )
            kind, name = "leaf", "builtins.str"
        else:
            kind, name = "leaf", f"numpy.{dtype.name}"
    elif t is None:
        kind, name = "ndarray", "numpy.ndarray"  # plain h5py data
    else:
        kind, name = "unknown", t
    info = Info(kind, name, nbytes=nbytes)
    if kind == "ndarray":
        info.shape, info.dtype = shape, dtype
    return info


def _classify_group(group: h5py.Group, full: bool = True) -> Info:
    t = title(group)
    pandas_type = _attr_text(group, "pandas_type")
    if pandas_type is not None or t in ("pd_dataframe", "pd_series"):
        return _classify_pandas(group, pandas_type or "frame")
    if t in ("dict", "list", "tuple"):
        return Info(t, f"builtins.{t}")
    if t == "multiarray":
        return Info("ndarray", "numpy.ndarray", dtype=np.dtype(object))
    if t in SPARSE:
        return Info("sparse", f"scipy.sparse.{t}")
    if t is not None:
        if _is_lost(group, t):
            return Info("lost", t, lost=True)
        return Info("object", t, meta={"layout": "h5io use_state"})
    cls = pyiron_type(group)
    if cls is not None:
        names = PYIRON_META if full else ()
        meta = {k: _text(group[k]) for k in names if isinstance(group.get(k), h5py.Dataset)}
        if "status" in group and "server" in group:
            meta["layout"] = "pyiron job"
            meta["status_note"] = "as last written to the file; pyiron's database may differ"
            return Info("job", cls, meta=meta)
        meta["layout"] = "pyiron object"
        return Info("object", cls, meta=meta)
    return Info("group", "")


def _classify_pandas(group: h5py.Group, pandas_type: str) -> Info:
    if pandas_type == "series":
        values = group.get("values")
        n = values.shape[0] if isinstance(values, h5py.Dataset) and values.shape else 0
        opaque = "pickled-columns" if _pickled_block(values) else ""
        return Info("dataframe", "pandas.Series", shape=(n,), opaque=opaque)
    axis0, axis1 = group.get("axis0"), group.get("axis1")
    shape = tuple(a.shape[0] if isinstance(a, h5py.Dataset) else 0 for a in (axis1, axis0))
    nblocks = int(group.attrs.get("nblocks", 0))
    pickled = any(_pickled_block(group.get(f"block{i}_values")) for i in range(nblocks))
    return Info(
        "dataframe", "pandas.DataFrame", shape=shape, opaque="pickled-columns" if pickled else ""
    )


def _pickled_block(ds: Any) -> bool:
    return isinstance(ds, h5py.Dataset) and _attr_text(ds, "PSEUDOATOM") == "object"


# ----------------------------------------------------------------------------
# children: (logical key, h5py name) in order
def children(group: h5py.Group, info: Info | None = None) -> list[tuple[str, str]]:
    """The children of a group node as ``(key, hdf5 name)``, in their order.

    dict ``key_<k>`` -> ``k``; list/tuple ``idx_N`` -> ``N``; a DataContainer's
    ``<k>__index_<i>`` -> ``k`` (``i`` when ``k`` is empty), by ``i``; pyiron
    metadata datasets are left out of objects (they are in the view's attrs).
    """
    info = info or classify(group)
    names = list(group.keys())
    if info.kind == "dict":
        return [(n[4:], n) for n in names if n.startswith("key_")]
    if info.kind in ("list", "tuple"):
        out = [(n[4:], n) for n in names if n.startswith("idx_") and n[4:].isdigit()]
        return sorted(out, key=lambda kn: int(kn[0]))
    if info.kind in ("dataframe", "sparse", "lost") or (info.kind == "ndarray"):
        return []
    if info.meta.get("layout") in ("pyiron object", "pyiron job"):
        return _pyiron_children(group, names)
    return [(n, n) for n in names]


def _pyiron_children(group: h5py.Group, names: list[str]) -> list[tuple[str, str]]:
    skip = set(PYIRON_META) | set(PYIRON_BOOKKEEPING)
    indexed, plain = [], []
    for n in names:
        if n in skip:
            continue
        match = _INDEX.match(n)
        if match:
            indexed.append((int(match.group(2)), match.group(1) or match.group(2), n))
        else:
            plain.append((n, n))
    indexed.sort()
    return [(k, n) for _, k, n in indexed] + plain


def _pyiron_types(group: h5py.Group) -> list[str]:
    """``module:qualname`` of the pyiron objects in ``group`` (itself included)."""
    out = []
    stack = [group]
    while stack:
        g = stack.pop()
        name = pyiron_type(g)
        if name is not None:
            out.append(_dotted_to_global(name))
        stack.extend(v for v in g.values() if isinstance(v, h5py.Group))
    return out


def _is_list_container(group: h5py.Group) -> bool:
    names = [n for n in group if n not in PYIRON_META and n not in PYIRON_BOOKKEEPING]
    return bool(names) and all(n.startswith("__index_") for n in names)


def resolve(group: h5py.Group, key: str) -> Any:
    """The h5py child of ``group`` for the logical ``key`` (KeyError if none)."""
    for k, name in children(group):
        if k == key:
            return group[name]
    raise KeyError(key)


# ----------------------------------------------------------------------------
# loading
def load(obj: Any, policy: Policy | None = None) -> Any:
    """The plain value of an h5py node under ``policy`` (default: plain data,
    no imports of named classes, no unpickling)."""
    return _Loader(policy or Policy()).load(obj)


class _Loader:
    def __init__(self, policy: Policy):
        self.policy = policy

    def load(self, obj: Any) -> Any:
        info = classify(obj, meta=False)
        if isinstance(obj, h5py.Dataset):
            return self.dataset(obj, info)
        handler = getattr(self, "group_" + info.kind, None)
        if handler is None:
            return self.group_group(obj, info)
        return handler(obj, info)

    # datasets
    def dataset(self, ds: h5py.Dataset, info: Info) -> Any:  # noqa: C901 - one branch per title
        t = info.title
        if info.opaque:
            return self.opaque(ds, info)
        if t == "int":
            value = ds[()].reshape(-1)[0]
            return bool(value) if ds.dtype.kind == "b" else int(value)
        if t == "float":
            return float(ds[()].reshape(-1)[0])
        if t is not None and t.startswith("np_"):
            value = ds[()].reshape(-1)[0]
            return np.bool_(value) if t == "np_bool" else value
        if t in ("unicode", "str", "ascii"):
            text = _text(ds)
            if _b64_pickle(text[:8]):
                return self.opaque(ds, classify(ds))
            return text
        if t == "json":
            return json.loads(_text(ds))
        if t == "None":
            return None
        if t == "datetime":
            return datetime.datetime.fromisoformat(_text(ds))
        if t == "date":
            return datetime.date.fromisoformat(_text(ds))
        if t == "timezone":
            return parse_timezone(_text(ds))
        if t == "class":
            return self.global_ref(_text(ds))
        if t == "void":
            return ds[()].tobytes()
        if t == "ndarray_str":
            return _str_array(ds[()])
        if t is None and ds.shape == ():
            value = ds[()]
            return _scalar(ds) if isinstance(value, bytes) else value
        return _array(ds)

    def opaque(self, ds: h5py.Dataset, info: Info) -> Any:
        if info.opaque == "cloudpickle-base64":
            raw = base64.b64decode(_scalar(ds) if ds.shape == () else _text(ds))
        else:
            raw = ds[()].tobytes()
        if self.policy.unpickle:
            return _unpickle(raw)
        warnings.warn(
            f"{ds.name}: {info.type} not unpickled (pass safe=False to run it)",
            OpaqueDataWarning,
            stacklevel=4,
        )
        return Opaque(info.opaque, raw, ds.name)

    def global_ref(self, name: str) -> Any:
        qual = _dotted_to_global(name)
        if self.policy.rebuild(qual):
            return _import(qual)
        return GlobalRef(name)

    # groups
    def group_group(self, group: h5py.Group, info: Info) -> dict:
        return {k: self.load(group[n]) for k, n in children(group, info)}

    def group_dict(self, group: h5py.Group, info: Info) -> dict:
        return self.group_group(group, info)

    def group_list(self, group: h5py.Group, info: Info) -> list:
        return [self.load(group[n]) for _, n in children(group, info)]

    def group_tuple(self, group: h5py.Group, info: Info) -> tuple:
        return tuple(self.group_list(group, info))

    def group_ndarray(self, group: h5py.Group, info: Info) -> np.ndarray:
        index = _array(group["index"])
        data = _array(group["data"])
        parts, start = [], 0
        for stop in list(index[:-1]) + [len(data)]:
            parts.append(data[start:stop])
            start = stop
        out = np.empty(len(parts), dtype=object)
        out[:] = parts
        return out

    def group_sparse(self, group: h5py.Group, info: Info) -> Any:
        import scipy.sparse

        kind = info.type.rsplit(".", 1)[1]
        shape = self.load(group["shape"]) if "shape" in group else None
        parts = tuple(_array(group[k]) for k in ("data", "indices", "indptr"))
        return getattr(scipy.sparse, kind)(parts, shape=shape)

    def group_dataframe(self, group: h5py.Group, info: Info) -> Any:
        return read_pandas(group, info, self.policy)

    def group_lost(self, group: h5py.Group, info: Info) -> Lost:
        warnings.warn(
            f"{group.name}: h5io lost this {info.type} when the file was written",
            LostDataWarning,
            stacklevel=4,
        )
        return Lost(info.type, group.name)

    def group_object(self, group: h5py.Group, info: Info) -> Any:
        layout = info.meta.get("layout", "")
        qual = _dotted_to_global(info.type)
        if (
            layout == "pyiron object"
            and self.policy.rebuild(qual)
            and all(map(self.policy.rebuild, _pyiron_types(group)))
        ):
            create = _import("pyiron_base.interfaces.has_dict:create_from_dict")
            return create(self.pyiron_dict(group))
        if layout == "pyiron object" and _is_list_container(group):
            state: Any = [self.load(group[n]) for _, n in children(group, info)]
        else:
            state = self.group_group(group, info)
        if layout == "h5io use_state" and self.policy.rebuild(qual):
            return _setstate(_import(qual), state)
        return Record(info.type, state, layout) if self.policy.records else state

    def group_job(self, group: h5py.Group, info: Info) -> Any:
        """A job is always its content: rebuilding one needs its project and database."""
        state = self.group_group(group, info)
        return Record(info.type, state, "pyiron job") if self.policy.records else state

    def pyiron_dict(self, group: h5py.Group) -> dict:
        """The ``to_dict`` form pyiron_base rebuilds an object from (its
        ``create_from_dict``): content, metadata and ``KEY_ORDER``."""
        out: dict = {}
        keys = children(group)
        for key, name in keys:
            obj = group[name]
            nested = isinstance(obj, h5py.Group) and pyiron_type(obj) is not None
            out[key] = self.pyiron_dict(obj) if nested else self.load(obj)
        for name in PYIRON_META + ("READ_ONLY",):
            if isinstance(group.get(name), h5py.Dataset):
                out[name] = self.load(group[name])
        out["KEY_ORDER"] = [key for key, _ in keys]
        return out


def _array(ds: h5py.Dataset) -> np.ndarray:
    value = ds[()]
    if ds.id.get_type().get_class() == h5py.h5t.BITFIELD:
        value = np.asarray(value).astype(bool)
    return value if isinstance(value, np.ndarray) else np.asarray(value)


def _str_array(value: Any) -> np.ndarray:
    value = np.asarray(value)
    if value.dtype.kind in "SO":
        flat = [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in value.reshape(-1)]
        return np.array(flat, dtype=str).reshape(value.shape)
    return value.astype(str)


_TZ = re.compile(
    r"^datetime\.timezone\(datetime\.timedelta\((?:days=(-?\d+))?(?:, )?(?:seconds=(-?\d+))?"
    r"(?:, )?(?:microseconds=(-?\d+))?\)(?:, '((?:[^'\\]|\\.)*)')?\)$"
)


def parse_timezone(text: str) -> datetime.timezone:
    """A ``datetime.timezone`` from its repr, parsed (never evaluated)."""
    text = text.strip()
    if text == "datetime.timezone.utc":
        return datetime.timezone.utc
    match = _TZ.match(text)
    if match is None:
        raise ValueError(f"not a datetime.timezone repr: {text[:80]!r}")
    days, seconds, micro, name = match.groups()
    delta = datetime.timedelta(
        days=int(days or 0), seconds=int(seconds or 0), microseconds=int(micro or 0)
    )
    if name is None:
        return datetime.timezone(delta)
    return datetime.timezone(
        delta, name.encode("latin-1", "backslashreplace").decode("unicode_escape")
    )


# ----------------------------------------------------------------------------
# pandas fixed format (PyTables), read with h5py
def _axis(ds: h5py.Dataset) -> Any:
    import pandas as pd

    values = _array(ds)
    kind = _attr_text(ds, "kind") or ""
    if values.dtype.kind == "S":
        values = np.array([v.decode("utf-8") for v in values], dtype=object)
    if kind.startswith("datetime64"):
        values = values.astype(kind if "[" in kind else "datetime64[ns]")
    name = _attr_text(ds, "name")
    return pd.Index(values, name=None if name in (None, "N.") else name)


def _block(ds: h5py.Dataset, policy: Policy, columns: int, rows: int) -> np.ndarray:
    """One block as ``(rows, columns)``; pickled blocks become Opaque cells."""
    if _attr_text(ds, "PSEUDOATOM") == "object":
        raw = np.asarray(ds[()]).reshape(-1)[0].tobytes()
        if policy.unpickle:
            values = np.asarray(_unpickle(raw))
        else:
            warnings.warn(
                f"{ds.name}: pickled pandas columns not unpickled (pass safe=False)",
                OpaqueDataWarning,
                stacklevel=5,
            )
            values = np.empty((columns, rows), dtype=object)
            values.fill(Opaque("pickled-columns", raw, ds.name))
        return values.reshape(columns, rows).T if values.ndim != 2 else values.T
    values = _array(ds)
    return values if int(ds.attrs.get("transposed", 0)) else values.T


def _check_fixed_format(group: h5py.Group) -> None:
    """Refuse, by name, the pandas layouts this reader does not read."""
    kind = _attr_text(group, "pandas_type") or "frame"
    odd = [k for k in group.attrs if k.endswith("_variety") and _attr_text(group, k) != "regular"]
    if kind not in ("frame", "series") or odd:
        what = f"pandas_type {kind!r}" if not odd else f"{odd[0]} {_attr_text(group, odd[0])!r}"
        raise UnloadableError(
            f"{group.name}: a pandas object in a layout this reader does not read ({what}; "
            "it reads PyTables' fixed format with plain indexes); pandas.read_hdf reads it"
        )


def read_pandas(group: h5py.Group, info: Info, policy: Policy) -> Any:
    """A DataFrame or Series from PyTables' fixed format, with h5py only."""
    import pandas as pd

    _check_fixed_format(group)

    if info.type == "pandas.Series":
        index = _axis(group["index"])
        values = group["values"]
        if _attr_text(values, "PSEUDOATOM") == "object":
            data = _block(values, policy, 1, len(index))[:, 0]
        else:
            data = _array(values)
        name = _attr_text(group, "name")
        return pd.Series(data, index=index, name=None if name in (None, "N.") else name)
    columns, index = _axis(group["axis0"]), _axis(group["axis1"])
    frame = {}
    for i in range(int(group.attrs.get("nblocks", 0))):
        items = _axis(group[f"block{i}_items"])
        values = _block(group[f"block{i}_values"], policy, len(items), len(index))
        for j, item in enumerate(items):
            frame[item] = values[:, j]
    return pd.DataFrame({c: frame[c] for c in columns}, index=index, columns=columns)


# ----------------------------------------------------------------------------
# the only places that import named modules or unpickle, behind the policy
def _import(qual: str) -> Any:
    import importlib

    module, _, name = qual.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _unpickle(raw: bytes) -> Any:
    import pickle

    return pickle.loads(raw)  # noqa: S301 - only under an explicit safe=False


def _setstate(cls: Any, state: dict) -> Any:
    """Rebuild a ``use_state`` object as h5io does: ``__new__`` then its state."""
    if not isinstance(cls, type):
        return cls  # a singleton stored by name
    args: Any = ()
    kwargs: dict = {}
    if hasattr(cls, "__getnewargs_ex__"):
        args, kwargs = cls.__getnewargs_ex__(cls)
    elif hasattr(cls, "__getnewargs__"):
        args = cls.__getnewargs__(cls)
    obj = cls.__new__(cls, *args, **kwargs)
    if hasattr(obj, "__setstate__"):
        obj.__setstate__(state)
    elif hasattr(obj, "__dict__"):
        obj.__dict__.update(state)
    else:
        for k, v in state.items():
            setattr(obj, k, v)
    return obj


# ----------------------------------------------------------------------------
# detection
def is_legacy(location: Any) -> bool:
    """True for an HDF5 file that tinystore did not write (no ``@record``) and
    that has h5io ``TITLE`` attributes or pyiron's job layout."""
    try:
        if not h5py.is_hdf5(location):
            return False
        with h5py.File(location, "r") as f:
            if "@record" in f:
                return False
            return _looks_legacy(f, depth=2)
    except (OSError, RuntimeError):  # (HDF5 reports a damaged header as RuntimeError)
        return False


def _looks_legacy(group: h5py.Group, depth: int) -> bool:
    for name in list(group.keys())[:64]:
        node = group.get(name)
        if node is None:
            continue
        if title(node) is not None:
            return True
        if isinstance(node, h5py.Group):
            if pyiron_type(node) is not None:
                return True
            if depth > 1 and _looks_legacy(node, depth - 1):
                return True
    return False
