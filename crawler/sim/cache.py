"""A byte-bounded LRU of serialized JSON objects, shared by every view of a catalog.

A crawl fetches the same big objects (tracks embedding their album, albums embedding a page
of tracks) over and over in batches; keeping their serialized bytes turns a batch body into
one join.  The bound is in bytes, not entries, because objects range from 200 B to 150 KB and
the catalog itself must stay O(1) in memory whatever its size.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K")

# A full crawl of the default 1,000-artist catalog renders ~560 MB, so no cache holds all of
# it; 64 MB keeps what one crawl reuses (artists in related lists, tracks from album pages
# to track batches) and whole small catalogs.  The process grows by ~1.5× the budget, as
# malloc cannot reuse every hole that evictions leave.
DEFAULT_CACHE_MB = 64
# Bookkeeping per entry beyond its bytes (two key tuples, the ordered dict's slot and node,
# the bytes header), so a cache of small objects cannot exceed its budget by several times.
ENTRY_OVERHEAD = 320


class ByteCache:
    """Least-recently-used bytes within `limit` bytes; a limit of 0 disables caching."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("the cache size must not be negative")
        self.limit = limit
        self.size = 0
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, build: Callable[[K], bytes], arg: K) -> bytes:
        """The bytes cached under `key`, else `build(arg)` (kept if it fits the budget)."""
        entries = self._entries
        body = entries.get(key)
        if body is not None:
            entries.move_to_end(key)
            return body
        body = build(arg)
        cost = len(body) + ENTRY_OVERHEAD
        if cost <= self.limit:
            entries[key] = body
            self.size += cost
            while self.size > self.limit:
                _, evicted = entries.popitem(last=False)
                self.size -= len(evicted) + ENTRY_OVERHEAD
        return body
