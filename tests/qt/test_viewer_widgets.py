"""Minimap, colour legend, scale bar painter and numpy <-> QImage conversion."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QRectF, Qt
from PySide6.QtGui import QImage

from idc_viewer.core.colormap import colormap_lut
from idc_viewer.qt.image_convert import array_from_qimage, qimage_from_array, qpixmap_from_array
from idc_viewer.qt.viewer import ColorLegend, Minimap, ScaleBar


@pytest.fixture
def minimap(qtbot):  # type: ignore[no-untyped-def]
    thumbnail = np.full((100, 200, 3), 200, np.uint8)
    widget = Minimap(thumbnail, (2000, 1000))
    qtbot.addWidget(widget)
    widget.resize(200, 100)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_minimap_click_and_drag_request_jumps(qtbot, minimap) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(minimap.jump_requested, timeout=1000) as blocker:
        qtbot.mouseClick(minimap, Qt.MouseButton.LeftButton, pos=QPoint(50, 25))
    assert blocker.args == pytest.approx([505.0, 255.0], abs=6)  # pixel centre, 10 l0 px each
    jumps: list[tuple[float, float]] = []
    minimap.jump_requested.connect(lambda x, y: jumps.append((x, y)))
    qtbot.mousePress(minimap, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    qtbot.mouseMove(minimap, QPoint(150, 80))
    qtbot.mouseRelease(minimap, Qt.MouseButton.LeftButton, pos=QPoint(150, 80))
    assert jumps[0] == pytest.approx((100.0, 100.0), abs=6)
    assert jumps[-1] == pytest.approx((1500.0, 800.0), abs=6)


def test_minimap_letterboxes_and_clamps(qtbot, minimap) -> None:  # type: ignore[no-untyped-def]
    minimap.resize(200, 200)  # image 200 x 100 centred vertically: rows 50..150
    assert minimap.image_rect() == QRectF(0, 50, 200, 100)
    assert minimap.l0_from_widget(QRectF(0, 0, 1, 1).topLeft()) == (0.0, 0.0)
    assert Minimap().l0_from_widget(QRectF(0, 0, 1, 1).topLeft()) is None


def test_minimap_draws_viewport_rectangle(minimap, grab) -> None:  # type: ignore[no-untyped-def]
    minimap.set_viewport_l0(QRectF(500, 200, 1000, 500))  # widget (50, 20) to (150, 70)
    pixels = grab(minimap).astype(int)
    red = (pixels[..., 0] > 200) & (pixels[..., 1] < 100) & (pixels[..., 2] < 100)
    rows, cols = np.nonzero(red)
    assert rows.size > 0
    assert abs(cols.min() - 50) <= 2 and abs(cols.max() - 150) <= 2
    assert abs(rows.min() - 20) <= 2 and abs(rows.max() - 70) <= 2
    assert not red[45, 100]  # inside the rectangle: the thumbnail


def test_color_legend_paints_the_colormap(qtbot, grab) -> None:  # type: ignore[no-untyped-def]
    legend = ColorLegend("inferno", threshold=0.5)
    qtbot.addWidget(legend)
    legend.resize(300, legend.sizeHint().height())
    legend.show()
    qtbot.waitExposed(legend)
    pixels = grab(legend).astype(int)
    bar = legend.bar_rect()
    y = int(bar.center().y())
    lut = colormap_lut("inferno").astype(int)
    # As the overlay paints on white glass: clear below the floor, solid at the top.
    assert np.abs(pixels[y, int(bar.left()) + 3] - 255).max() < 8
    assert np.abs(pixels[y, int(bar.right()) - 3] - lut[250]).max() < 25
    quarter = legend.color_at(0.75).getRgb()[:3]
    assert np.abs(pixels[y, int(bar.left() + 0.75 * bar.width())] - quarter).max() < 25
    assert "clear below 0.2" in legend.note() and "hatched: not analysed" in legend.note()
    marker_x = int(bar.left() + 0.5 * bar.width())
    assert tuple(pixels[y, marker_x]) == (0, 255, 255)  # threshold marker
    legend.set_threshold(None)
    assert tuple(grab(legend)[y, marker_x]) != (0, 255, 255)
    legend.set_colormap("viridis")
    assert legend.colormap == "viridis"
    assert legend.color_at(1.0).getRgb()[:3] == tuple(int(v) for v in colormap_lut("viridis")[255])
    assert legend.color_at(0.1).getRgb()[:3] == (255, 255, 255)


def test_scale_bar_paints_label(qtbot) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtGui import QPainter

    bar = ScaleBar(max_view_px=150)
    assert bar.text(0.5, 1.0) == "50 µm"
    assert bar.text(None, 1.0) == "no scale"
    image = QImage(300, 100, QImage.Format.Format_RGB32)
    image.fill(0xFF808080)
    painter = QPainter(image)
    bar.paint(painter, QRectF(0, 0, 300, 100), 0.5, 1.0)
    painter.end()
    pixels = array_from_qimage(image)[..., :3]
    black_rows = np.nonzero(np.all(pixels == 0, axis=2).sum(axis=1) >= 95)[0]
    assert black_rows.size > 0  # a 100-px black bar (50 µm at 0.5 µm/px, 1:1)


def test_qimage_round_trip_and_buffer_lifetime(qapp) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 13, 3), dtype=np.uint8)
    image = qimage_from_array(rgb)
    expected = rgb.copy()
    rgb[:] = 0  # the image owns its pixels
    del rgb
    gc.collect()
    assert np.array_equal(array_from_qimage(image)[..., :3], expected)
    rgba = rng.integers(0, 256, (5, 3, 4), dtype=np.uint8)
    assert image.format() == QImage.Format.Format_RGB888
    assert np.array_equal(array_from_qimage(qimage_from_array(rgba))[..., 3], rgba[..., 3])
    grey = rng.integers(0, 256, (4, 9), dtype=np.uint8)
    assert np.array_equal(array_from_qimage(qimage_from_array(grey))[..., 0], grey)
    strided = expected[:, ::2]  # non-contiguous input
    assert np.array_equal(array_from_qimage(qimage_from_array(strided))[..., :3], strided)
    assert qpixmap_from_array(expected).size().width() == 13
    with pytest.raises(ValueError):
        qimage_from_array(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError):
        qimage_from_array(np.zeros((4, 4, 3), np.float32))
