"""Leaf values: the closed set of values every backend stores exactly.

A leaf is one of ``None``, ``bool``, ``int`` (any size), ``float``,
``complex``, ``str`` (any code point, lone surrogates included), ``bytes``,
``bytearray``, a ``numpy.ndarray`` without object fields, or a numpy scalar.
Only these exact types are leaves (subclasses such as ``IntEnum`` are not:
the object model stores those).

This module converts leaves to and from *entries*, the JSON-compatible
values that records hold.  Plain JSON values stand for themselves; anything
JSON cannot carry exactly is a one-key-tagged dict (see ``docs/format.rst``).
"""

from __future__ import annotations

import base64
import struct
import warnings
from typing import Any

import numpy as np
import orjson
from numpy.lib.format import descr_to_dtype, dtype_to_descr

from tinystore.errors import CorruptStoreError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Ints of at most this many bits are written in decimal (``{"L": ...}``):
#: under 640 digits, which Python converts from text whatever its int-to-str
#: limit (``sys.set_int_max_str_digits`` takes no less); larger ones in hex.
DECIMAL_MAX_BITS = 2048

_PLAIN = frozenset([type(None), bool, int, float, complex, str, bytes, bytearray])


def is_leaf(value: Any) -> bool:
    """True if ``value`` is a storage leaf (see the module docstring)."""
    t = type(value)
    if t in _PLAIN:
        return True
    if t is np.ndarray or isinstance(value, np.generic):
        return not value.dtype.hasobject and _metadata_ok(value.dtype)
    return False


def array_order(arr: np.ndarray) -> str:
    """The memory order a loaded copy of ``arr`` gets: like numpy's pickle."""
    return "F" if arr.flags.f_contiguous and not arr.flags.c_contiguous and arr.ndim > 1 else "C"


def descr_to_json(dtype: np.dtype) -> Any:
    """numpy's description of ``dtype`` (``numpy.lib.format``), as JSON reads it back."""
    with warnings.catch_warnings():  # metadata is kept apart (dtype_flags)
        warnings.simplefilter("ignore", UserWarning)
        return _listed(dtype_to_descr(dtype))


def _listed(descr: Any) -> Any:
    if isinstance(descr, (tuple, list)):
        return [_listed(x) for x in descr]
    return descr


#: id(dtype) -> (dtype, its description, its "al" flag): structured dtypes are
#: checked once (the dtype is kept, so its id is not reused)
_DESCRIPTIONS: dict[int, tuple[np.dtype, Any, bool]] = {}


def describe_dtype(dtype: np.dtype, flag: bool = False) -> tuple[Any, bool]:
    """The stored description of ``dtype`` (metadata aside), and whether the
    aligned flag must be stored beside it (only if ``flag``: entries have it).

    numpy's own description (a str, or a list of fields) where it rebuilds the
    dtype exactly, so files stay readable by numpy's ``descr_to_dtype``; else
    the complete form of :func:`full_description`.
    """
    if dtype.names is None and dtype.subdtype is None:
        return dtype.str, False  # what dtype_to_descr gives, without its warning
    hit = _DESCRIPTIONS.get(id(dtype))
    if hit is None or hit[0] is not dtype:
        if len(_DESCRIPTIONS) > 256:
            _DESCRIPTIONS.clear()
        hit = _DESCRIPTIONS[id(dtype)] = (dtype, *_describe(dtype))
    _, descr, aligned = hit
    if aligned and not flag:
        return full_description(dtype), False
    return descr, aligned


def _describe(dtype: np.dtype) -> tuple[Any, bool]:
    bare = np.dtype(dtype, metadata={}) if dtype.metadata is not None else dtype
    aligned = bare.isalignedstruct
    try:
        descr = descr_to_json(bare)
        back = dtype_from_json(descr, allow_objects=True)
    except (ValueError, CorruptStoreError):  # overlapping fields, nested sub-arrays, ...
        descr = None
    else:
        if aligned:
            back = with_flags(back, {"al": 1})
        if same_dtype(back, bare):
            return descr, aligned
    return full_description(bare), False


def full_description(dtype: np.dtype) -> Any:
    """A description of any dtype: a str for a plain one, ``{"base", "shape"}``
    for a sub-array, ``{"names", "formats", "offsets", "itemsize"}`` (and
    ``"titles"``, ``"aligned"``) for a structured one, as numpy's dict form."""
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return {"base": full_description(base), "shape": list(shape)}
    if dtype.names is None:
        return dtype.str
    fields = dtype.fields
    out: dict = {
        "names": list(dtype.names),
        "formats": [full_description(fields[n][0]) for n in dtype.names],
        "offsets": [fields[n][1] for n in dtype.names],
        "itemsize": dtype.itemsize,
    }
    titles = [fields[n][2] if len(fields[n]) > 2 else None for n in dtype.names]
    if any(t is not None for t in titles):
        out["titles"] = titles
    if dtype.isalignedstruct:
        out["aligned"] = 1
    if dtype.type is not np.void:  # fields over numpy.record, or over a plain type (a union)
        out["type"] = "record" if dtype.type is np.record else dtype.str
    return out


def _from_full(descr: Any) -> np.dtype:
    if type(descr) is str:
        return np.dtype(descr)
    if type(descr) is not dict:
        raise TypeError(f"not a dtype description: {descr!r:.60}")
    if "base" in descr:
        return np.dtype((_from_full(descr["base"]), tuple(descr["shape"])))
    spec = {
        "names": descr["names"],
        "formats": [_from_full(f) for f in descr["formats"]],
        "offsets": descr["offsets"],
        "itemsize": descr["itemsize"],
    }
    if "titles" in descr:
        spec["titles"] = descr["titles"]
    dtype = np.dtype(spec, align=bool(descr.get("aligned")))
    if "type" not in descr:
        return dtype
    over = np.record if descr["type"] == "record" else np.dtype(descr["type"])
    if over is not np.record and over.kind == "V":
        raise TypeError(f"fields stored over {descr['type']!r}")
    return np.dtype((over, dtype))


def same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """True if ``a`` and ``b`` are the same dtype in every respect numpy keeps
    (``==`` ignores the aligned flag and a nested dtype's)."""
    if a != b or a.str != b.str or a.itemsize != b.itemsize or a.names != b.names:
        return False
    if a.type is not b.type:  # numpy.record, or a union (int32, fields): == ignores it
        return False
    if a.isalignedstruct != b.isalignedstruct or a.alignment != b.alignment:
        return False
    if a.subdtype is not None:
        return b.subdtype is not None and a.shape == b.shape and same_dtype(a.base, b.base)
    if a.names is not None:
        fa, fb = a.fields, b.fields
        if list(fa) != list(fb):  # titles are keys too
            return False
        for name in a.names:
            if fa[name][1:] != fb[name][1:] or not same_dtype(fa[name][0], fb[name][0]):
                return False
    return True


def _metadata_ok(dtype: np.dtype) -> bool:
    if dtype.metadata is None:
        return True
    try:
        orjson.dumps(dict(dtype.metadata))
    except TypeError:
        return False
    return True


def dtype_entry(dtype: np.dtype) -> dict:
    """The entry fields of a dtype: its description ``d``, and what that leaves
    out: ``al``, the aligned flag of numpy's form, and ``m``, metadata."""
    descr, aligned = describe_dtype(dtype, flag=True)
    entry: dict = {"d": descr}
    if aligned:
        entry["al"] = 1
    if dtype.metadata:
        entry["m"] = dict(dtype.metadata)
    return entry


def with_flags(dtype: np.dtype, entry: dict) -> np.dtype:
    """``dtype`` with the aligned flag and metadata an entry records."""
    if entry.get("al") and dtype.names:
        fields = dtype.fields
        dtype = np.dtype(
            {
                "names": list(dtype.names),
                "formats": [fields[n][0] for n in dtype.names],
                "offsets": [fields[n][1] for n in dtype.names],
                "itemsize": dtype.itemsize,
            },
            align=True,
        )
    metadata = entry.get("m")
    if type(metadata) is dict and metadata:
        dtype = np.dtype(dtype, metadata=metadata)
    return dtype


def _fields_from_json(descr: Any) -> Any:
    if isinstance(descr, str):
        return descr
    fields = []
    for field in descr:
        name = tuple(field[0]) if isinstance(field[0], list) else field[0]
        sub = _fields_from_json(field[1])
        fields.append((name, sub, tuple(field[2])) if len(field) > 2 else (name, sub))
    return fields


def dtype_from_json(descr: Any, allow_objects: bool = False) -> np.dtype:
    """The dtype of a stored description; object dtypes only if ``allow_objects``."""
    try:
        if type(descr) is dict:
            dtype = _from_full(descr)
            if dtype.hasobject and not allow_objects:
                raise CorruptStoreError(f"stored dtype {descr!r} holds Python objects; refusing it")
            return dtype
        fields = _fields_from_json(descr)
        if isinstance(fields, list) and any(isinstance(f[0], tuple) for f in fields):
            return np.dtype(fields)
        dtype = descr_to_dtype(fields)
    except (TypeError, ValueError, IndexError, KeyError, RecursionError) as exc:
        raise CorruptStoreError(f"invalid stored dtype {descr!r:.200}: {exc}") from None
    if dtype.hasobject and not allow_objects:
        raise CorruptStoreError(f"stored dtype {descr!r} holds Python objects; refusing it")
    return dtype


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _big_int_entry(value: int) -> dict:
    """The entry of an int outside 64 bits: decimal text, or sign and hex digits
    when long (hex has no int-to-str limit and takes linear time)."""
    if value.bit_length() <= DECIMAL_MAX_BITS:
        return {"L": str(value)}
    return {"H": format(value, "x")}  # "-" and lower-case digits, no "0x"


def _decimal_int(text: Any) -> int:
    if type(text) is not str:
        raise TypeError("a decimal int entry holds text")
    try:
        return int(text)
    except ValueError:
        if len(text) <= 640 or not text.lstrip("-").isdigit():
            raise
    # longer than this process's int-to-str limit (a file written before hex
    # entries, or a lowered limit): read it in chunks the limit allows
    sign = -1 if text[0] == "-" else 1
    digits = text.lstrip("-")
    value = 0
    for start in range(0, len(digits), 600):
        chunk = digits[start : start + 600]
        value = value * 10 ** len(chunk) + int(chunk)
    return sign * value


def _hex_int(text: Any) -> int:
    if type(text) is not str or not text.lstrip("-").isalnum() or not text.isascii():
        raise ValueError(f"not hex digits: {text!r:.40}")
    return int(text, 16)


def _float_entry(x: float) -> Any:
    if x - x == 0.0:  # finite (nan and inf fail this)
        return x
    return {"F": struct.pack(">d", x).hex()}


def _float_value(entry: Any) -> float:
    if type(entry) is dict:
        return struct.unpack(">d", bytes.fromhex(entry["F"]))[0]
    return float(entry)


def array_meta(arr: np.ndarray) -> dict:
    """The entry fields that describe an array (dtype, shape, order)."""
    flags = dtype_entry(arr.dtype)
    meta = {"d": flags.pop("d"), "s": list(arr.shape)}
    if array_order(arr) == "F":
        meta["o"] = "F"
    meta.update(flags)
    return meta


def array_from_bytes(raw: bytes | bytearray | memoryview, meta: dict) -> np.ndarray:
    """Rebuild a writable array from its raw bytes and ``array_meta``."""
    dtype = with_flags(dtype_from_json(meta["d"]), meta)
    shape = tuple(meta["s"])
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise CorruptStoreError(
            f"array data has {len(raw)} bytes, but shape {shape} of {dtype} needs "
            f"{count * dtype.itemsize}"
        )
    buffer = raw if type(raw) is bytearray else bytearray(raw)  # writable, and our own
    flat = np.frombuffer(buffer, dtype=dtype, count=count)
    return flat.reshape(shape, order=meta.get("o", "C"))


def encode_inline(value: Any) -> Any:
    """Entry for a leaf that is stored inside a record."""
    t = type(value)
    if t is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return {"S": _b64(value.encode("utf-8", "surrogatepass"))}
        return value
    if t is int:
        if INT64_MIN <= value <= INT64_MAX:
            return value
        return _big_int_entry(value)
    if t is float:
        return _float_entry(value)
    if value is None or t is bool:
        return value
    if t is complex:
        return {"C": [_float_entry(value.real), _float_entry(value.imag)]}
    if t is bytes:
        return {"B": _b64(value)}
    if t is bytearray:
        return {"BA": _b64(bytes(value))}
    if t is np.ndarray:
        entry = {"A": _b64(value.tobytes(order=array_order(value)))}
        entry.update(array_meta(value))
        return entry
    if isinstance(value, np.generic):
        # numpy gives one byte (S0) or four (U0) for empty string scalars
        raw = value.tobytes() if value.dtype.itemsize else b""
        return {"N": _b64(raw), **dtype_entry(value.dtype)}
    raise TypeError(f"not a leaf: {t.__name__}")


def decode_inline(entry: Any) -> Any:
    """Leaf for an inline entry (the inverse of :func:`encode_inline`)."""
    if type(entry) is not dict:
        return entry
    try:
        if "F" in entry:
            return _float_value(entry)
        if "L" in entry:
            return _decimal_int(entry["L"])
        if "H" in entry:
            return _hex_int(entry["H"])
        if "S" in entry:
            return _unb64(entry["S"]).decode("utf-8", "surrogatepass")
        if "C" in entry:
            re, im = entry["C"]
            return complex(_float_value(re), _float_value(im))
        if "B" in entry:
            return _unb64(entry["B"])
        if "BA" in entry:
            return bytearray(_unb64(entry["BA"]))
        if "A" in entry:
            return array_from_bytes(_unb64(entry["A"]), entry)
        if "N" in entry:
            dtype = with_flags(dtype_from_json(entry["d"]), entry)
            raw = _unb64(entry["N"])
            if len(raw) != dtype.itemsize:
                raise CorruptStoreError(f"numpy scalar of {dtype} has {len(raw)} bytes")
            if not dtype.itemsize:
                return dtype.type()
            # a fresh buffer, indexed: .copy() of a structured scalar drops its padding bytes
            return np.frombuffer(bytearray(raw), dtype=dtype)[0]
    except CorruptStoreError:
        raise
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        raise CorruptStoreError(f"damaged leaf entry {entry!r:.200}: {exc}") from exc
    raise CorruptStoreError(f"unknown leaf entry {entry!r:.200}")


def leaf_nbytes(value: Any) -> int:
    """Payload size used to decide whether a leaf is stored outside its record."""
    t = type(value)
    if t is np.ndarray:
        return value.nbytes
    if t is bytes or t is bytearray:
        return len(value)
    return 0
