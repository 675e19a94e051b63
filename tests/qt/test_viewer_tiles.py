"""The asynchronous tile loader (the cache it fills is tested in tests/core/test_tile_cache.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage

from idc_viewer.core.tile_cache import TileCache, TileKey
from idc_viewer.qt.image_convert import array_from_qimage
from idc_viewer.qt.viewer.tile_loader import TileLoader, TileRequest


def key(col: int, row: int = 0, level: int = 0, slide_id: str = "s") -> TileKey:
    return TileKey(slide_id, level, col, row)


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
