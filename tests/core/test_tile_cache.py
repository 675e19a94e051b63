"""Tests for idc_viewer.core.tile_cache: the byte-bounded, thread-safe LRU of decoded tiles."""

from __future__ import annotations

import threading

import numpy as np

from idc_viewer.core.tile_cache import TileCache, TileKey


def key(col: int, row: int = 0, level: int = 0, slide_id: str = "s") -> TileKey:
    return TileKey(slide_id, level, col, row)


def test_cache_evicts_least_recently_used_by_bytes() -> None:
    cache: TileCache[np.ndarray] = TileCache(max_bytes=1000)
    for col in range(3):
        cache.put(key(col), np.zeros(300, np.uint8), 300)
    assert cache.bytes_used == 900
    assert cache.get(key(0)) is not None  # key(0) is now the most recently used
    cache.put(key(3), np.zeros(300, np.uint8), 300)  # 1200 > 1000: evict the LRU, key(1)
    assert key(1) not in cache
    assert all(k in cache for k in (key(0), key(2), key(3)))
    assert cache.bytes_used == 900
    cache.put(key(4), np.zeros(700, np.uint8), 700)  # needs 600 more bytes: drops 2 and 0
    assert {c for c in range(5) if key(c) in cache} == {3, 4}
    assert cache.bytes_used == 1000


def test_cache_replaces_same_key_and_rejects_oversized() -> None:
    cache: TileCache[str] = TileCache(max_bytes=100)
    cache.put(key(0), "a", 60)
    cache.put(key(0), "b", 50)
    assert cache.get(key(0)) == "b"
    assert cache.bytes_used == 50
    cache.put(key(1), "huge", 101)
    assert key(1) not in cache
    assert cache.get(key(0)) == "b"


def test_cache_discard_slide_and_thread_safety() -> None:
    cache: TileCache[int] = TileCache(max_bytes=10_000)

    def writer(slide_id: str) -> None:
        for col in range(500):
            cache.put(key(col, slide_id=slide_id), col, 7)
            cache.get(key(col // 2, slide_id=slide_id))

    threads = [threading.Thread(target=writer, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.bytes_used == 7 * len(cache) <= 10_000
    cache.discard_slide("s0")
    assert all(cache.get(key(c, slide_id="s0")) is None for c in range(500))
    assert cache.bytes_used == 7 * len(cache)
