"""SlideView: navigation, asynchronous tiles, painting at the right place, signals."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication

from idc_viewer.core.tile_cache import TileCache
from idc_viewer.qt.viewer.slide_view import BACKGROUND


def _close(pixel: np.ndarray, rgb: tuple[int, int, int], tol: int = 6) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(rgb)) <= tol))


def test_fit_shows_whole_slide(make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    rect = view.visible_l0_rect()
    assert rect.contains(0, 0) and rect.contains(2048, 1536)
    assert view.view_px_per_l0() == pytest.approx(min(400 / 2048, 300 / 1536))
    # Slide spans the full width; both ends are on screen.
    assert view.view_transform().view_from_l0(0, 0)[0] == pytest.approx(0)
    assert view.view_transform().view_from_l0(2048, 0)[0] == pytest.approx(400)
    view.center_on_l0(100, 100)
    view.fit()
    assert view.visible_l0_rect().contains(2048, 1536)


def test_level_follows_zoom(make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)  # fit: ~0.195 view px per l0 -> level 2 (downsample 4)
    assert view.current_level() == 2
    view.zoom_by(2.0)  # ~0.39 -> level 1
    assert view.current_level() == 1
    view.zoom_to_one_to_one()
    assert view.view_px_per_l0() == pytest.approx(1.0)
    assert view.current_level() == 0


def test_fit_paints_quadrants_at_the_right_place(
    qtbot, make_view, quadrant_slide, grab, quadrants
) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide, 400, 400)
    transform = view.view_transform()
    qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=5000)
    pixels = grab(view)
    for (l0_x, l0_y), colour in [
        ((512, 1100), quadrants.blue),
        ((1536, 384), quadrants.green),
        ((1536, 1100), quadrants.yellow),
        ((800, 700), quadrants.red),
    ]:
        view_x, view_y = transform.view_from_l0(l0_x, l0_y)
        assert _close(pixels[int(view_y), int(view_x)], colour), (l0_x, l0_y)
    # Outside the slide (fit letterboxes it vertically: rows 50..350) is background.
    assert _close(pixels[45, 200], BACKGROUND.getRgb()[:3])
    assert _close(pixels[355, 200], BACKGROUND.getRgb()[:3])
    assert _close(pixels[55, 100], quadrants.red)
    assert _close(pixels[55, 300], quadrants.green)


def test_sharp_tiles_replace_the_blurry_stand_in(
    qtbot, make_view, gated_slide, grab, quadrants
) -> None:  # type: ignore[no-untyped-def]
    view = make_view(gated_slide)
    x0, y0, _side = quadrants.checker_l0
    view.zoom_to_one_to_one()
    # Put l0 (x0 + 10, y0 + 10) at view (200, 150) with an integer origin.
    view.center_on_l0(x0 + 10, y0 + 10)
    origin = view.view_transform()
    assert origin.l0_origin_x == int(origin.l0_origin_x)
    # Tiles are blocked: the thumbnail (2x smaller, checkerboard averaged to grey) stands in.
    before = grab(view)
    patch = before[150:160, 200:210]
    assert np.all((patch > 60) & (patch < 195)), "expected the grey stand-in"
    gated_slide.gate.set()

    def sharp() -> bool:
        return bool(np.all(np.isin(grab(view)[150:160, 200:210], (0, 255))))

    qtbot.waitUntil(sharp, timeout=5000)
    after = grab(view)
    for view_y in range(140, 170):
        for view_x in range(190, 220):
            l0_x = int(origin.l0_origin_x) + view_x
            l0_y = int(origin.l0_origin_y) + view_y
            assert after[view_y, view_x, 0] == quadrants.checker_value(l0_x, l0_y)


def _wheel(view, pos: QPointF, notches: float) -> None:  # type: ignore[no-untyped-def]
    event = QWheelEvent(
        pos,
        view.mapToGlobal(pos),
        QPoint(0, 0),
        QPoint(0, int(120 * notches)),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(view, event)


@pytest.mark.parametrize("notches", [1, 3, -2])
def test_wheel_zoom_keeps_point_under_cursor(make_view, quadrant_slide, notches: int) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    view.zoom_by(3.0)
    cursor = QPointF(97.0, 211.0)
    before_zoom = view.view_px_per_l0()
    l0_before = view.view_transform().l0_from_view(cursor.x(), cursor.y())
    _wheel(view, cursor, notches)
    assert view.view_px_per_l0() == pytest.approx(before_zoom * 1.25**notches)
    assert view.view_transform().l0_from_view(cursor.x(), cursor.y()) == pytest.approx(l0_before)


def test_keyboard_navigation(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    fit_zoom = view.view_px_per_l0()
    qtbot.keyClick(view, Qt.Key.Key_Plus)
    assert view.view_px_per_l0() == pytest.approx(fit_zoom * 1.5)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert view.view_px_per_l0() == pytest.approx(fit_zoom)
    qtbot.keyClick(view, Qt.Key.Key_1)
    assert view.view_px_per_l0() == pytest.approx(1.0)
    origin_x = view.view_transform().l0_origin_x
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert view.view_transform().l0_origin_x > origin_x  # looking further right
    origin_y = view.view_transform().l0_origin_y
    qtbot.keyClick(view, Qt.Key.Key_Up)
    assert view.view_transform().l0_origin_y < origin_y
    qtbot.keyClick(view, Qt.Key.Key_F)
    assert view.view_px_per_l0() == pytest.approx(fit_zoom)


def test_zoom_to_l0_rect_and_viewport_signal(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    with qtbot.waitSignal(view.viewport_changed, timeout=1000) as blocker:
        view.zoom_to_l0_rect(1000, 500, 200, 100)
    rect = blocker.args[0]
    assert rect.contains(1000, 500) and rect.contains(1200, 600)
    assert rect.width() == pytest.approx(200) or rect.height() == pytest.approx(100)
    assert rect.center().x() == pytest.approx(1100) and rect.center().y() == pytest.approx(550)


def test_click_emits_patch_clicked_with_l0_coordinates(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    view.zoom_by(2.5)
    expected = view.view_transform().l0_from_view(123, 77)
    with qtbot.waitSignal(view.patch_clicked, timeout=1000) as blocker:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(123, 77))
    assert blocker.args == pytest.approx(list(expected))


def test_drag_pans_and_does_not_click(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    view.zoom_by(2.0)
    clicks: list[tuple[float, float]] = []
    view.patch_clicked.connect(lambda x, y: clicks.append((x, y)))
    l0_under = view.view_transform().l0_from_view(100, 100)
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    qtbot.mouseMove(view, QPoint(130, 110))
    qtbot.mouseMove(view, QPoint(160, 140))
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(160, 140))
    assert clicks == []
    # The grabbed level-0 point followed the mouse.
    assert view.view_transform().view_from_l0(*l0_under) == pytest.approx((160, 140))


def test_cursor_moved_reports_l0(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    view = make_view(quadrant_slide)
    with qtbot.waitSignal(view.cursor_moved_l0, timeout=1000) as blocker:
        qtbot.mouseMove(view, QPoint(40, 50))
    assert blocker.args == pytest.approx(list(view.view_transform().l0_from_view(40, 50)))


def test_scale_bar_text(make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    from idc_viewer.core.memory import ArraySlide

    view = make_view(quadrant_slide)  # 0.25 µm/px
    view.zoom_to_one_to_one()  # 150 px max -> 37.5 µm -> 20 µm
    assert view.scale_bar_text() == "20 µm"
    view.set_slide(ArraySlide([np.zeros((64, 64, 3), np.uint8)], mpp=None))
    assert view.scale_bar_text() == "no scale"


def test_shared_cache_and_slide_switch(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    cache: TileCache = TileCache(max_bytes=64 * 1024 * 1024)
    view = make_view(quadrant_slide, cache=cache)
    view.zoom_by(4.0)  # past what the thumbnail shows: tiles are read
    qtbot.waitUntil(lambda: view.pending_tiles() == 0 and len(cache) > 0, timeout=5000)
    view.set_slide(None)
    assert len(cache) == 0
    assert view.slide() is None
    view.fit()  # no slide: nothing happens, no crash
    view.repaint()


def test_real_svs_opens_and_paints(qtbot, make_view, shared_data, grab) -> None:  # type: ignore[no-untyped-def]
    from idc_viewer.core.readers import open_slide

    path = shared_data / "wsi" / "CMU-1-Small-Region.svs"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    slide = open_slide(path)
    try:
        view = make_view(slide, 600, 500)
        assert view.visible_l0_rect().contains(2220, 2967)
        view.zoom_to_one_to_one()
        view.center_on_l0(1110, 1480)
        qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=10000)
        pixels = grab(view)
        reference = slide.read_region(1110 - 300, 1480 - 250, 0, 600, 500)
        # Painted pixels are the slide's own (JPEG decode is deterministic per build).
        assert np.abs(pixels.astype(int) - reference.astype(int)).mean() < 3
        assert view.scale_bar_text().endswith("µm")
    finally:
        slide.close()


def test_zoomed_out_the_thumbnail_is_enough(qtbot, make_view, quadrant_slide) -> None:  # type: ignore[no-untyped-def]
    cache: TileCache = TileCache(max_bytes=64 * 1024 * 1024)
    view = make_view(quadrant_slide, cache=cache)  # fitted: 400 px wide, thumbnail 1024 px
    assert view.thumbnail_suffices()
    view.repaint()
    assert view.pending_tiles() == 0 and len(cache) == 0  # nothing decoded for no detail
    view.zoom_by(4.0)
    assert not view.thumbnail_suffices()
    qtbot.waitUntil(lambda: len(cache) > 0, timeout=5000)
