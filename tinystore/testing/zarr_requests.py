"""A zarr store wrapper that counts the requests made to the store beneath.

For tests and benchmarks of the zarr backend (it needs zarr)::

    from tinystore.testing.zarr_requests import CountingStore

    counter = []
    tinystore.save(obj, "s3://bucket/run.zarr", store_wrapper=lambda s: CountingStore(s, counter))
"""

from __future__ import annotations

from collections import Counter

from zarr.storage import WrapperStore

#: methods that read, and that write; each call is one request (a listing may be
#: several pages on a real service; here every listing is small)
READS = ("get", "get_partial_values", "exists", "list", "list_prefix", "list_dir", "getsize")
WRITES = ("set", "set_if_not_exists", "delete", "delete_dir")


class CountingStore(WrapperStore):
    """Counts calls by method (``counts``) and keeps them in order (``log``)."""

    def __init__(self, store, log: list | None = None):
        super().__init__(store)
        self.log = [] if log is None else log

    def _with_store(self, store):
        return type(self)(store, self.log)  # zarr's copies count into the same log

    @property
    def counts(self) -> Counter:
        return Counter(method for method, _ in self.log)

    def reads(self) -> int:
        return sum(n for m, n in self.counts.items() if m in READS)

    def writes(self) -> int:
        return sum(n for m, n in self.counts.items() if m in WRITES)

    def clear(self) -> None:
        self.log.clear()


def _counted(name: str):
    async def method(self, *args, **kwargs):
        self.log.append((name, args[0] if args else None))
        return await getattr(self._store, name)(*args, **kwargs)

    method.__name__ = name
    return method


def _counted_gen(name: str):
    def method(self, *args, **kwargs):
        self.log.append((name, args[0] if args else None))
        return getattr(self._store, name)(*args, **kwargs)

    method.__name__ = name
    return method


for _name in ("get", "get_partial_values", "exists", "getsize", *WRITES):
    setattr(CountingStore, _name, _counted(_name))
for _name in ("list", "list_prefix", "list_dir"):
    setattr(CountingStore, _name, _counted_gen(_name))
