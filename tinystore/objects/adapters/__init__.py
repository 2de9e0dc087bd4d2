"""Built-in adapters; importing this package registers them.

The pandas adapters are registered without importing pandas (see
:mod:`tinystore.objects.adapters.pandas`).
"""

from tinystore.objects.adapters import builtins, numpy, pandas  # noqa: F401
