"""Built-in adapters; importing this package registers them."""

from tinystore.objects.adapters import builtins, numpy  # noqa: F401
