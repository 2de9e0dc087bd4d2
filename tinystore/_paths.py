"""Key and path rules, shared by every backend.

A *key* names one child of a group; a *path* is keys joined by ``/``
(``"jobs/relax/output"``).  All validation happens here, once, so every
backend accepts and refuses exactly the same names.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

from tinystore.errors import InvalidKeyError

MAX_KEY_BYTES = 255
SEPARATOR = "/"
#: Keys starting with this are tinystore's own (the metadata the storage base
#: class keeps on backends without native metadata); users cannot make them.
RESERVED_PREFIX = "@ts:"


def _key_error(path: object, why: str) -> InvalidKeyError:
    return InvalidKeyError(f"invalid key {path!r}: {why}")


def check_key(key: str, path: object = None) -> str:
    """Return ``key`` if it is a valid single key, else raise InvalidKeyError."""
    where = key if path is None else path
    if not key:
        raise _key_error(where, "empty keys are not allowed")
    if key == "." or key == "..":
        raise _key_error(where, "'.' and '..' are not allowed as keys")
    if "\x00" in key:
        raise _key_error(where, "keys may not contain NUL characters")
    if SEPARATOR in key:
        raise _key_error(where, "a single key may not contain '/'")
    if key.startswith(RESERVED_PREFIX):
        raise _key_error(
            where, f"keys starting with {RESERVED_PREFIX!r} are reserved for tinystore"
        )
    if not key.isascii():
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise _key_error(where, "keys may not contain lone surrogates") from None
        if size > MAX_KEY_BYTES:
            raise _key_error(where, f"keys are limited to {MAX_KEY_BYTES} UTF-8 bytes")
    elif len(key) > MAX_KEY_BYTES:
        raise _key_error(where, f"keys are limited to {MAX_KEY_BYTES} UTF-8 bytes")
    return key


#: Identifiers of at most this many characters are valid keys by
#: construction: :func:`is_key` and the record writer take them without
#: :func:`check_key` (a shortcut; the rule stays the one above).
QUICK_KEY_LEN = 63


def is_key(key: object) -> bool:
    """True if ``key`` is a valid single key (:func:`check_key` as a test)."""
    if type(key) is not str:
        return False
    if key.isidentifier() and len(key) <= QUICK_KEY_LEN:
        return True
    try:
        check_key(key)
    except InvalidKeyError:
        return False
    return True


def are_keys(keys: Any) -> bool:
    """``all(map(is_key, keys))``; for a dict, in a few passes in C.

    The keys of a dict joined by the separator tell in one string what
    :func:`check_key` asks of each: ASCII (so no surrogates, and characters
    are bytes), as many separators as the joins put there, no NUL, no
    ``@`` at all (so no reserved prefix), at most :data:`MAX_KEY_BYTES`
    long; and the dict answers in constant time whether ``""``, ``"."`` or
    ``".."`` is a key.  Keys that fail a test are looked at one by one.
    """
    n = len(keys)
    if n > 8 and type(keys) is dict:
        try:
            joined = SEPARATOR.join(keys)
        except TypeError:  # a key that is not a str
            return False
        if (
            joined.isascii()
            and joined.count(SEPARATOR) == n - 1
            and "\x00" not in joined
            and "@" not in joined
            and list(map(type, keys)).count(str) == n  # not a str subclass
            and "" not in keys
            and "." not in keys
            and ".." not in keys
            and (len(joined) - n < MAX_KEY_BYTES or _longest(keys, joined) <= MAX_KEY_BYTES)
        ):
            return True
    return all(map(is_key, keys))


def _longest(keys: Any, joined: str) -> int:
    """The length of the longest of ``keys`` (ASCII, none holding the
    separator), whose join is ``joined``: for many keys, from the places of
    the separators in the join (numpy: half the time of ``len`` on each)."""
    if len(keys) < 256:
        return max(map(len, keys))
    cuts = np.flatnonzero(np.frombuffer(joined.encode("ascii"), np.uint8) == ord(SEPARATOR))
    inner = int((cuts[1:] - cuts[:-1]).max()) - 1
    return max(inner, int(cuts[0]), len(joined) - 1 - int(cuts[-1]))


def split_path(path: object) -> list[str]:
    """Split ``"a/b/c"`` into validated keys; refuse absolute and empty parts."""
    if not isinstance(path, str):
        raise InvalidKeyError(
            f"keys must be str, not {type(path).__name__} ({path!r}); "
            "use e.g. s['items/3'] for the item at index 3"
        )
    if path.startswith(SEPARATOR):
        raise _key_error(path, "absolute paths are not allowed; use a relative path like 'a/b'")
    parts = path.split(SEPARATOR)
    for part in parts:
        check_key(part, path)
    return parts


def join_path(*parts: str) -> str:
    return SEPARATOR.join(p for p in parts if p)


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.")
_RESERVED_STEMS = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)


def safe_name(key: str, limit: int = 120) -> str:
    """Encode a key into a file name that is safe on every file system.

    Lower-case ASCII letters, digits, ``_``, ``-`` and inner ``.`` stay as
    they are; an upper-case letter becomes ``^`` plus its lower-case form
    (so names differing only in case never collide on case-insensitive file
    systems); every other byte becomes ``%xx``.  A leading ``.`` and Windows
    reserved stems are escaped too, so the result never starts with ``.``
    or ``@`` (names the backends reserve for their own files).  Long names
    are shortened and made unique with a hash of the key.
    """
    out = []
    for ch in key:
        if ch in _SAFE:
            out.append(ch)
        elif "A" <= ch <= "Z":
            out.append("^" + ch.lower())
        else:
            out.extend(f"%{b:02x}" for b in ch.encode("utf-8", "surrogatepass"))
    name = "".join(out)
    if name.startswith("."):
        name = "%2e" + name[1:]
    if name.endswith("."):
        name = name[:-1] + "%2e"
    if name.split(".")[0] in _RESERVED_STEMS:
        name = f"%{ord(name[0]):02x}" + name[1:]
    if len(name) > limit:
        digest = hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        name = name[: limit - 17].rstrip("%0123456789abcdef^") + "~" + digest
    return name
