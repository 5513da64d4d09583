"""The one process-cache helper: versions, LRU bounds, kept keys, one loader per key."""

import threading
import time

from hypothesis import given
from hypothesis import strategies as st

from imagestudio.common.cache import VersionedLRU, clear_database_caches


def test_a_new_version_reloads_and_the_same_version_does_not():
    cache, loads = VersionedLRU("t1", max_entries=4), []
    load = lambda: loads.append(1) or len(loads)  # noqa: E731
    assert cache.get("k", 1, load) == 1
    assert cache.get("k", 1, load) == 1
    assert cache.get("k", 2, load) == 2
    assert len(loads) == 2


@given(st.lists(st.tuples(st.integers(0, 9), st.integers(1, 50)), max_size=60), st.integers(20, 200))
def test_size_bound_holds_except_for_kept_keys(accesses, max_bytes):
    cache, loads = VersionedLRU("t2", max_bytes=max_bytes, size=lambda value: value), []
    for key, size in accesses:
        cache.get(key, size, lambda size=size: loads.append(size) or size, keep={0})
        held = cache.held()
        assert key in held  # what was just asked for is never evicted by its own load
        if loads:  # eviction runs on loads: after one, the rest fits
            assert sum(v for k, v in held.items() if k not in (0, key)) <= max_bytes
            loads.clear()
    clear_database_caches()


def test_least_recently_used_goes_first():
    cache = VersionedLRU("t3", max_entries=2)
    cache.get("a", 0, lambda: "A")
    cache.get("b", 0, lambda: "B")
    cache.get("a", 0, lambda: "A")  # a is now the most recent
    cache.get("c", 0, lambda: "C")
    assert set(cache.held()) == {"a", "c"}


def test_concurrent_misses_load_once():
    cache, calls = VersionedLRU("t4", max_entries=4), []

    def slow_load():
        calls.append(1)
        time.sleep(0.05)
        return "value"

    threads = [threading.Thread(target=cache.get, args=("k", 0, slow_load)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1


def test_database_caches_clear_and_others_stay():
    derived = VersionedLRU("t5", max_entries=2)
    loaded = VersionedLRU("t6", max_entries=2, from_database=False)
    derived.get("k", 0, lambda: 1)
    loaded.get("k", 0, lambda: 1)
    clear_database_caches()
    assert derived.held() == {} and loaded.held() == {"k": 1}
