"""Heatmap overlay: painted exactly on each cell's level-0 footprint, at every zoom."""

from __future__ import annotations

import numpy as np
import pytest
from heatmap_fakes import plain_grid

from idc_viewer.core.colormap import colormap_lut
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.view_geometry import ViewTransform
from idc_viewer.qt.viewer import heatmap_overlay
from idc_viewer.qt.viewer.heatmap_overlay import outline_segments_l0

L0_PATCH = 100.5  # fractional on purpose
HOT_CELL = (5, 3)
HOT = tuple(int(v) for v in colormap_lut("inferno")[255])
#: An analysed cell of P = 0 is transparent (below the overlay's floor): the white slide shows.
COLD = (255, 255, 255)
CYAN = (0, 255, 255)


def _close(pixel: np.ndarray, rgb: tuple[int, ...], tol: int = 4) -> bool:
    return bool(np.all(np.abs(pixel.astype(int) - np.array(rgb[:3])) <= tol))


@pytest.fixture
def white_slide() -> ArraySlide:
    return ArraySlide([np.full((1536, 2048, 3), 255, np.uint8)], mpp=4.0 * 50 / L0_PATCH)


@pytest.fixture
def grid() -> PatchGrid:
    return plain_grid(L0_PATCH, 21, 16, width=2048, height=1536)


@pytest.fixture
def heatmap(grid: PatchGrid) -> Heatmap:
    probs = np.zeros(grid.shape, np.float32)
    probs[HOT_CELL[1], HOT_CELL[0]] = 1.0
    probs[0, 0] = np.nan  # not analysed: slide shows through
    return Heatmap(grid, probs)


@pytest.fixture
def view(qtbot, make_view, white_slide, heatmap):  # type: ignore[no-untyped-def]
    slide_view = make_view(white_slide)
    slide_view.set_heatmap(heatmap)
    slide_view.set_overlay_opacity(1.0)
    qtbot.waitUntil(lambda: slide_view.pending_tiles() == 0, timeout=5000)
    return slide_view


def _hot_pixels_inside_footprint(view, grab, grid: PatchGrid) -> None:  # type: ignore[no-untyped-def]
    pixels = grab(view)
    transform = view.view_transform()
    l0_x, l0_y, l0_w, l0_h = grid.l0_rect(*HOT_CELL)
    vx0, vy0 = transform.view_from_l0(l0_x, l0_y)
    vx1, vy1 = transform.view_from_l0(l0_x + l0_w, l0_y + l0_h)
    hot = np.all(np.abs(pixels.astype(int) - np.array(HOT)) <= 4, axis=2)
    rows, cols = np.nonzero(hot)
    assert rows.size > 0, "the hot cell was not painted"
    # Every hot pixel's centre lies in the footprint (1 px slack for edge rounding) ...
    assert cols.min() + 0.5 >= vx0 - 1 and cols.max() + 0.5 <= vx1 + 1
    assert rows.min() + 0.5 >= vy0 - 1 and rows.max() + 0.5 <= vy1 + 1
    # ... and the footprint's interior is all hot.
    height, width = hot.shape
    top, left = max(0, int(np.ceil(vy0)) + 1), max(0, int(np.ceil(vx0)) + 1)
    bottom, right = min(height, int(vy1) - 1), min(width, int(vx1) - 1)
    inner = hot[top:bottom, left:right]
    assert inner.size > 0 and inner.all()


def test_hot_cell_lands_on_its_footprint_when_fitted(view, grab, grid) -> None:  # type: ignore[no-untyped-def]
    _hot_pixels_inside_footprint(view, grab, grid)
    pixels = grab(view)
    # Unanalysed cell (0, 0) and an analysed cold cell both show the white slide.
    vx, vy = view.view_transform().view_from_l0(50, 50)
    assert _close(pixels[int(vy), int(vx)], (255, 255, 255))
    vx, vy = view.view_transform().view_from_l0(150, 150)
    assert _close(pixels[int(vy), int(vx)], COLD)


def test_hot_cell_as_one_scaled_image(view, grab, grid, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(heatmap_overlay, "MAX_CELLS_DRAWN_ONE_BY_ONE", 0)
    view.zoom_by(1.7)
    _hot_pixels_inside_footprint(view, grab, grid)


@pytest.mark.parametrize("zoom", [4.0, 0.8])
def test_cell_edges_exact_when_zoomed_in(view, grab, grid, zoom: float) -> None:  # type: ignore[no-untyped-def]
    l0_x, l0_y, l0_w, l0_h = grid.l0_rect(*HOT_CELL)
    assert (l0_x, l0_w) == (502, 101)  # floor(5 * 100.5) = 502, floor(6 * 100.5) = 603
    # Top-left corner of the cell exactly at view (200, 150).
    view.set_view_transform(ViewTransform(l0_x - 200 / zoom, l0_y - 150 / zoom, zoom))
    pixels = grab(view)
    assert _close(pixels[150, 200], HOT)
    assert _close(pixels[149, 200], COLD) and _close(pixels[150, 199], COLD)
    # Bottom-right corner exactly at view (200, 150).
    view.set_view_transform(ViewTransform(l0_x + l0_w - 200 / zoom, l0_y + l0_h - 150 / zoom, zoom))
    pixels = grab(view)
    assert _close(pixels[149, 199], HOT)
    assert _close(pixels[150, 199], COLD) and _close(pixels[149, 200], COLD)


def test_visibility_opacity_and_progressive_update(view, grab, grid, heatmap) -> None:  # type: ignore[no-untyped-def]
    def centre_pixel(col: int, row: int) -> np.ndarray:
        l0_x, l0_y, l0_w, l0_h = grid.l0_rect(col, row)
        vx, vy = view.view_transform().view_from_l0(l0_x + l0_w / 2, l0_y + l0_h / 2)
        return grab(view)[int(vy), int(vx)]

    assert _close(centre_pixel(7, 3), COLD)
    heatmap.set_cells([(7, 3)], [1.0])  # a batch streams in
    view.update_heatmap_cells(np.array([[7, 3]]))
    assert _close(centre_pixel(7, 3), HOT)
    view.set_overlay_opacity(0.5)
    blended = tuple((h + 255) / 2 for h in HOT)
    assert _close(centre_pixel(*HOT_CELL), blended, tol=3)
    view.set_overlay_visible(False)
    assert _close(centre_pixel(*HOT_CELL), (255, 255, 255))
    view.set_overlay_visible(True)
    view.set_heatmap(None)
    assert _close(centre_pixel(*HOT_CELL), (255, 255, 255))


def test_threshold_outlines_flagged_cells(view, grab, grid) -> None:  # type: ignore[no-untyped-def]
    view.zoom_to_l0_rect(400, 200, 400, 300)

    def cyan_pixels() -> np.ndarray:
        pixels = grab(view)
        return np.argwhere(np.all(np.abs(pixels.astype(int) - np.array(CYAN)) <= 40, axis=2))

    assert len(cyan_pixels()) == 0
    view.set_threshold(0.5)
    found = cyan_pixels()
    assert len(found) > 20
    # The outline runs along the hot cell's border.
    l0_x, l0_y, l0_w, l0_h = grid.l0_rect(*HOT_CELL)
    transform = view.view_transform()
    vx0, vy0 = transform.view_from_l0(l0_x, l0_y)
    vx1, vy1 = transform.view_from_l0(l0_x + l0_w, l0_y + l0_h)
    near_x = np.minimum(np.abs(found[:, 1] - vx0), np.abs(found[:, 1] - vx1)) <= 2
    near_y = np.minimum(np.abs(found[:, 0] - vy0), np.abs(found[:, 0] - vy1)) <= 2
    assert np.all(near_x | near_y)
    view.set_threshold(None)
    assert len(cyan_pixels()) == 0


def test_a_flagged_edge_cell_is_outlined_along_the_slide_edge(view, grab, grid, heatmap) -> None:  # type: ignore[no-untyped-def]
    """The last column reaches past the slide (2010 to 2110.5 of 2048 px): its outline is drawn
    on the slide's edge, as the exported region's polygon is, not past it where it is clipped."""
    edge_cell = (grid.cols - 1, 5)
    heatmap.set_cells([edge_cell], [1.0])
    view.set_heatmap(heatmap)
    view.zoom_to_l0_rect(1850, 400, 400, 400)
    view.set_threshold(0.5)
    pixels = grab(view)
    cyan = np.all(np.abs(pixels.astype(int) - np.array(CYAN)) <= 40, axis=2)
    transform = view.view_transform()
    vx_edge, _ = transform.view_from_l0(float(grid.l0_width), 0.0)
    _, vy0 = transform.view_from_l0(0.0, float(grid.l0_rect(*edge_cell)[1]))
    _, vy1 = transform.view_from_l0(0.0, float(sum(grid.l0_rect(*edge_cell)[1::2])))
    band = cyan[int(vy0) + 3 : int(vy1) - 3, max(0, int(vx_edge) - 3) : int(vx_edge) + 1]
    assert band.any(axis=1).all(), "no outline along the slide's edge"


def test_outline_segments_merge_collinear_edges() -> None:
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True  # a 3 x 2 block of cells
    x_edges = np.arange(6, dtype=np.int64) * 10
    y_edges = np.arange(5, dtype=np.int64) * 10
    segments = {tuple(s) for s in outline_segments_l0(mask, x_edges, y_edges).tolist()}
    assert segments == {
        (10.0, 10.0, 10.0, 30.0),
        (40.0, 10.0, 40.0, 30.0),
        (10.0, 10.0, 40.0, 10.0),
        (10.0, 30.0, 40.0, 30.0),
    }
    assert outline_segments_l0(np.zeros((3, 3), bool), x_edges[:4], y_edges[:4]).shape == (0, 4)
