"""numpy: object arrays and dtypes (plain arrays and scalars are storage leaves)."""

from __future__ import annotations

import numpy as np

from tinystore.errors import UnloadableError
from tinystore.objects.registry import Adapter, register_adapter
from tinystore.storage.leaves import array_order, describe_dtype, dtype_from_json, same_dtype


class ObjectArrayAdapter(Adapter):
    """Arrays holding Python objects: dtype, shape, order, and one child per item."""

    kind = "ndarray"
    types = (np.ndarray,)  # plain arrays never get here: they are leaves

    def encode(self, obj: np.ndarray):
        order = array_order(obj)
        attrs = {"d": describe_dtype(obj.dtype)[0], "s": list(obj.shape)}
        if order == "F":
            attrs["o"] = "F"
        return attrs, obj.ravel(order=order).tolist() if obj.dtype.names else list(
            obj.ravel(order=order)
        )

    def decode(self, attrs, children, remember):
        dtype = _dtype(attrs["d"])
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


def _dtype(descr):
    return dtype_from_json(descr, allow_objects=True)  # object arrays are this adapter's job


class DtypeAdapter(Adapter):
    """numpy dtypes by their description (``"<f8"``, structured fields: see
    :func:`~tinystore.storage.leaves.describe_dtype`), which rebuilds any dtype.

    Dtypes with metadata (any Python objects) are stored as numpy's own
    reduce value, item by item: what pickle stores.
    """

    kind = "dtype"

    def accepts(self, cls):
        return issubclass(cls, np.dtype)

    def encode(self, obj: np.dtype):
        if obj.metadata is None:
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
        return dtype


register_adapter(DtypeAdapter())
OBJECT_ARRAYS = register_adapter(ObjectArrayAdapter())
