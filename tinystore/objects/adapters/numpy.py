"""numpy: object arrays and dtypes (plain arrays and scalars are storage leaves)."""

from __future__ import annotations

import numpy as np

from tinystore.errors import UnloadableError
from tinystore.objects.budget import check_dtype, check_items
from tinystore.objects.registry import Adapter, register_adapter
from tinystore.storage.leaves import array_order, describe_dtype, dtype_from_json, same_dtype


class ObjectArrayAdapter(Adapter):
    """Arrays holding Python objects: dtype, shape, order, and one child per item.

    The dtype is a description (``a.d``), or, for dtypes that have none
    (numpy's new-style ``StringDType``, say), the first child (``a.dt = 1``).
    """

    kind = "ndarray"
    types = (np.ndarray,)  # plain arrays never get here: they are leaves

    def encode(self, obj: np.ndarray):
        order = array_order(obj)
        dtype = obj.dtype
        items = obj.ravel(order=order).tolist() if dtype.names else list(obj.ravel(order=order))
        if not _legacy(dtype):
            attrs = {"dt": 1, "s": list(obj.shape)}
            items.insert(0, dtype)
        else:
            attrs = {"d": describe_dtype(dtype)[0], "s": list(obj.shape)}
        if order == "F":
            attrs["o"] = "F"
        return attrs, items

    def decode(self, attrs, children, remember):
        if attrs.get("dt"):
            dtype = yield children[0]
            if not isinstance(dtype, np.dtype):
                raise UnloadableError(f"an array's dtype is a {type(dtype).__name__:.40}")
            children = children[1:]
            check_dtype(dtype, "an object array")
        else:
            dtype = _dtype(attrs["d"])
        check_items(attrs["s"], len(children), "an object array")  # before allocating
        shape = tuple(attrs["s"])
        order = attrs.get("o", "C")
        arr = np.empty(shape, dtype=dtype, order=order)
        remember(arr)
        items = yield children
        flat = arr.reshape(-1, order=order) if arr.size else arr
        if arr.size and not np.shares_memory(flat, arr):
            raise ValueError("cannot fill object array in place")
        for i, item in enumerate(items):
            flat[i] = item
        return arr


def _has_metadata(dtype: np.dtype) -> bool:
    """True if ``dtype`` or a dtype inside it (a field's, a sub-array's) has metadata."""
    if dtype.metadata is not None:
        return True
    if dtype.subdtype is not None:
        return _has_metadata(dtype.subdtype[0])
    return dtype.names is not None and any(_has_metadata(f[0]) for f in dtype.fields.values())


def _legacy(dtype: np.dtype) -> bool:
    """True for the dtypes numpy describes by strings and fields (not ``StringDType``)."""
    return getattr(type(dtype), "_legacy", True)


def _dtype(descr):
    return dtype_from_json(descr, allow_objects=True)  # object arrays are this adapter's job


class DtypeAdapter(Adapter):
    """numpy dtypes by their description (``"<f8"``, structured fields: see
    :func:`~tinystore.storage.leaves.describe_dtype`), which rebuilds any dtype.

    Dtypes with metadata (any Python objects), theirs or a field's, are
    stored as numpy's own reduce value, item by item: what pickle stores.
    """

    kind = "dtype"

    def accepts(self, cls):
        # new-style dtypes (StringDType) have no description: their __reduce__
        return issubclass(cls, np.dtype) and getattr(cls, "_legacy", True)

    def encode(self, obj: np.dtype):
        if not _has_metadata(obj):
            descr = describe_dtype(obj)[0]
            if same_dtype(_dtype(descr), obj):
                return {"d": descr}, {}
        return {"r": 1}, list(obj.__reduce__())

    def decode(self, attrs, children, remember):
        if not attrs.get("r"):
            return _dtype(attrs["d"])
        cls, args, state = yield children
        if cls is not np.dtype:  # a damaged or crafted node must not call anything else
            raise UnloadableError(f"a stored dtype is rebuilt by numpy.dtype, not {cls!r:.60}")
        dtype = cls(*args)
        dtype.__setstate__(state)
        check_dtype(dtype, "a stored dtype")  # numpy trusts its state: checked before use
        return dtype


register_adapter(DtypeAdapter())
OBJECT_ARRAYS = register_adapter(ObjectArrayAdapter())
