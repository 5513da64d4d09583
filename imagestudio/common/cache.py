"""One per-process cache for everything the service derives from stored data and keeps in memory (embedding
matrices, metadata columns, ground truth, artifacts, text vectors, loaded encoders). Pure Python, no Django.

An entry is valid for one `version` of its source (a counter or marker the caller reads cheaply from the
database); a different version reloads it. One loader per key runs at a time, the others wait for its value.
Eviction is least-recently-used, bounded by entry count and / or by the entries' total size, and never takes
the keys the caller asks to keep (pinned dedicated resources).
"""

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Any

_registry: list["VersionedLRU"] = []


class VersionedLRU:
    def __init__(self, name: str, *, max_entries: int | None = None, max_bytes: int | None = None,
                 size: Callable[[Any], int] = lambda value: 1, from_database: bool = True):
        self.name = name
        self.from_database = from_database  # cleared by clear_database_caches
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict = OrderedDict()  # key -> (version, value, size)
        self._lock = threading.Lock()
        self._gates: dict = {}
        _registry.append(self)

    def get(self, key: Hashable, version: Hashable, load: Callable[[], Any], keep: Iterable[Hashable] = ()) -> Any:
        """The value of `key` at `version`, loading it with `load()` when missing or stale."""
        hit = self._lookup(key, version)
        if hit is not None:
            return hit[0]
        with self._lock:
            gate = self._gates.setdefault(key, threading.Lock())
        with gate:
            hit = self._lookup(key, version)  # another thread loaded it while we waited
            if hit is not None:
                return hit[0]
            value = load()
            with self._lock:
                self._entries[key] = (version, value, self._size(value))
                self._entries.move_to_end(key)
                self._evict({*keep, key})
            return value

    def _lookup(self, key, version):
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] != version:
                return None
            self._entries.move_to_end(key)
            return (entry[1],)

    def _evict(self, keep):
        total = sum(entry[2] for entry in self._entries.values())
        for key in list(self._entries):
            over_count = self.max_entries is not None and len(self._entries) > self.max_entries
            over_size = self.max_bytes is not None and total > self.max_bytes
            if not (over_count or over_size):
                break
            if key not in keep:
                total -= self._entries.pop(key)[2]

    def peek(self, key: Hashable) -> tuple[Hashable, Any] | None:
        """(version, value) held for `key` whatever its version, or None; for a loader that can reuse part of
        a stale value."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else (entry[0], entry[1])

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def held(self) -> dict:
        """Key -> size of every entry held."""
        with self._lock:
            return {key: entry[2] for key, entry in self._entries.items()}


def clear_database_caches() -> None:
    """Forget every cached value derived from the database (tests roll databases back under the caches' feet)."""
    for cache in _registry:
        if cache.from_database:
            cache.clear()
