"""Hypothesis strategies shared by the property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


def dtypes(*, titles: bool = True, max_bytes: int = 6, max_chars: int = 4) -> st.SearchStrategy:
    """Every numpy dtype kind tinystore stores, either byte order; structured
    dtypes of up to 3 fields with subarrays, with field titles if ``titles``."""
    scalar = st.one_of(
        hnp.boolean_dtypes(),
        hnp.integer_dtypes(endianness="?"),
        hnp.unsigned_integer_dtypes(endianness="?"),
        hnp.floating_dtypes(endianness="?"),
        hnp.complex_number_dtypes(endianness="?"),
        hnp.datetime64_dtypes(endianness="?"),
        hnp.timedelta64_dtypes(endianness="?"),
        hnp.byte_string_dtypes(endianness="?", min_len=1, max_len=max_bytes),
        hnp.unicode_string_dtypes(endianness="?", min_len=1, max_len=max_chars),
    )
    structured = hnp.array_dtypes(scalar, max_size=3, allow_subarrays=True)
    if not titles:
        structured = structured.filter(lambda dt: all(len(dt.fields[n]) == 2 for n in dt.names))
    return st.one_of(scalar, scalar, scalar, structured)


def in_layout(arr: np.ndarray, how: int) -> np.ndarray:
    """``arr`` as is (0), in Fortran order (1) or as a strided view (2), where it can be."""
    if how == 1 and arr.ndim > 1:
        return np.asfortranarray(arr)
    if how == 2 and arr.ndim >= 1 and arr.shape[0] > 1:
        return arr[::2]  # not contiguous: stored as a C-ordered copy
    return arr


def small_arrays(dtype_strategy: st.SearchStrategy) -> st.SearchStrategy:
    """Arrays of up to 3 dimensions of up to 4, in any of the layouts of :func:`in_layout`."""
    return st.builds(
        in_layout,
        dtype_strategy.flatmap(
            lambda dt: hnp.arrays(
                dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
            )
        ),
        st.integers(0, 2),
    )
