"""Tile cache and asynchronous tile loader."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PySide6.QtGui import QImage

from idc_viewer.qt.image_convert import array_from_qimage
from idc_viewer.qt.viewer.tile_cache import TileCache, TileKey
from idc_viewer.qt.viewer.tile_loader import TileLoader, TileRequest


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


def _request(slide, col: int, generation: int, level: int = 0) -> TileRequest:  # type: ignore[no-untyped-def]
    ds = slide.info.level_downsamples[level]
    return TileRequest(key(col, level=level), generation, round(col * 64 * ds), 0, 64, 64, slide)


@pytest.fixture
def loader(qtbot):  # type: ignore[no-untyped-def]
    tile_loader = TileLoader(TileCache(), n_threads=1)
    yield tile_loader
    tile_loader.shutdown()


def test_tiles_arrive_asynchronously_with_pixels(qtbot, loader, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    request = _request(quadrant_slide, 3, generation=1)
    with qtbot.waitSignal(loader.tile_ready, timeout=5000) as blocker:
        loader.request([request], 1)
    assert blocker.args == [request]
    image = loader._cache.get(request.key)
    assert isinstance(image, QImage)
    expected = quadrant_slide.read_region(3 * 64, 0, 0, 64, 64)
    assert np.array_equal(array_from_qimage(image)[..., :3], expected)


def test_stale_generation_results_are_dropped(qtbot, loader, gated_slide) -> None:  # type: ignore[no-untyped-def]
    ready: list[TileRequest] = []
    loader.tile_ready.connect(ready.append)
    old = _request(gated_slide, 0, generation=1)
    loader.request([old], 1)
    assert gated_slide.reading.wait(5)  # the reader thread is inside read_region(old)
    new = _request(gated_slide, 1, generation=2)
    loader.request([new], 2)  # the view moved on
    gated_slide.gate.set()
    qtbot.waitUntil(lambda: ready == [new] and loader.dropped_count == 1, timeout=5000)
    qtbot.wait(50)
    assert ready == [new]
    # The stale pixels are still right, so they were cached for later.
    assert old.key in loader._cache


def test_queue_is_cleared_on_move_and_most_wanted_first(qtbot, loader, gated_slide) -> None:  # type: ignore[no-untyped-def]
    ready: list[TileRequest] = []
    loader.tile_ready.connect(ready.append)
    first = _request(gated_slide, 0, generation=1)
    loader.request([first], 1)
    assert gated_slide.reading.wait(5)
    loader.request([_request(gated_slide, c, 2) for c in (1, 2, 3)], 2)  # superseded at once
    wanted = [_request(gated_slide, c, 3) for c in (4, 5, 6)]
    loader.request(wanted, 3)
    gated_slide.gate.set()
    qtbot.waitUntil(lambda: len(ready) == 3, timeout=5000)
    assert ready == wanted
    read_cols = [x // 64 for x, *_ in gated_slide.reads]
    assert read_cols == [0, 4, 5, 6]
    assert loader.pending_count == 0


def test_read_errors_are_reported_not_fatal(qtbot, loader, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    bad = TileRequest(key(0, level=7), 1, 0, 0, 64, 64, quadrant_slide)  # no level 7
    with qtbot.waitSignal(loader.tile_failed, timeout=5000) as blocker:
        loader.request([bad], 1)
    assert blocker.args[0] == bad
    assert isinstance(blocker.args[1], Exception)  # the exception itself, not its text
    good = _request(quadrant_slide, 1, generation=2)
    with qtbot.waitSignal(loader.tile_ready, timeout=5000):
        loader.request([good], 2)
