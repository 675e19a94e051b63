"""Pure view geometry: no Qt needed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from idc_viewer.core.view_geometry import (
    MAX_VIEW_PX_PER_L0,
    ViewTransform,
    choose_level,
    nice_length_um,
    scale_bar_for,
    tile_lvl_rect,
    tiles_covering_l0_rect,
    transform_showing_l0_rect,
)


@pytest.mark.parametrize("zoom", [0.01, 0.37, 1.0, 3.5])
def test_view_l0_round_trip(zoom: float) -> None:
    transform = ViewTransform(l0_origin_x=1234.5, l0_origin_y=-20.25, view_px_per_l0=zoom)
    for l0_x, l0_y in [(0.0, 0.0), (1234.5, -20.25), (99999.0, 5.5)]:
        view_x, view_y = transform.view_from_l0(l0_x, l0_y)
        assert transform.l0_from_view(view_x, view_y) == pytest.approx((l0_x, l0_y))
    assert transform.view_from_l0(1234.5, -20.25) == (0.0, 0.0)
    assert transform.view_from_l0(1234.5 + 10, -20.25) == pytest.approx((10 * zoom, 0.0))


@pytest.mark.parametrize("factor", [1.25, 0.5, 7.0])
def test_zoom_about_view_point_keeps_l0_point_fixed(factor: float) -> None:
    transform = ViewTransform(100.0, 200.0, 0.2)
    view_x, view_y = 123.0, 45.0
    before = transform.l0_from_view(view_x, view_y)
    zoomed = transform.zoomed_about_view_point(factor, view_x, view_y)
    assert zoomed.view_px_per_l0 == pytest.approx(0.2 * factor)
    assert zoomed.l0_from_view(view_x, view_y) == pytest.approx(before)


def test_zoom_is_clamped() -> None:
    zoomed = ViewTransform(view_px_per_l0=10.0).zoomed_about_view_point(1000.0, 5, 5)
    assert zoomed.view_px_per_l0 == MAX_VIEW_PX_PER_L0
    assert zoomed.l0_from_view(5, 5) == pytest.approx((0.5, 0.5))


def test_pan_moves_content_with_the_drag() -> None:
    transform = ViewTransform(100.0, 100.0, 2.0)
    panned = transform.panned_by_view_px(20.0, -10.0)
    # The level-0 point that was at view (0, 0) is now at view (20, -10).
    assert panned.view_from_l0(100.0, 100.0) == pytest.approx((20.0, -10.0))


def test_fit_shows_whole_rect_centred() -> None:
    transform = transform_showing_l0_rect(0, 0, 2000, 1000, 400, 300)
    assert transform.view_px_per_l0 == pytest.approx(0.2)
    x0, y0 = transform.view_from_l0(0, 0)
    x1, y1 = transform.view_from_l0(2000, 1000)
    assert (x0, x1) == pytest.approx((0.0, 400.0))
    assert (y0 + y1) / 2 == pytest.approx(150.0)
    assert y0 >= 0 and y1 <= 300


def test_centered_on_l0() -> None:
    transform = ViewTransform(0, 0, 0.5).centered_on_l0(1000, 600, 400, 300)
    assert transform.view_from_l0(1000, 600) == pytest.approx((200, 150))


@pytest.mark.parametrize(
    ("zoom", "level"),
    [(4.0, 0), (1.0, 0), (0.5, 0), (0.26, 0), (0.25, 1), (0.1, 1), (1 / 16, 2), (0.001, 2)],
)
def test_choose_level(zoom: float, level: int) -> None:
    assert choose_level((1.0, 4.0, 16.0), zoom) == level


def test_choose_level_tolerates_rounded_downsamples() -> None:
    # OpenSlide reports e.g. 4.000345 for a 4x level; at exactly 1/4 zoom it must still win.
    assert choose_level((1.0, 4.000345, 16.0012), 0.25) == 1


def test_tiles_covering_l0_rect_clips_and_orders_from_centre() -> None:
    # Level 1 (downsample 2) of a 1000 x 600 level; 256-px tiles -> 4 x 3 tiles.
    tiles = tiles_covering_l0_rect((600, 300, 800, 400), 2.0, (1000, 600), 256)
    assert set(tiles) == {(c, r) for c in (1, 2) for r in (0, 1)}
    everything = tiles_covering_l0_rect((-500, -500, 1e6, 1e6), 2.0, (1000, 600), 256)
    assert len(everything) == 4 * 3
    centred = tiles_covering_l0_rect((0, 0, 2000, 1200), 2.0, (1000, 600), 256)
    centre = ((2000 / 2) / 512 - 0.5, (1200 / 2) / 512 - 0.5)
    dists = [math.dist(t, centre) for t in centred]
    assert dists == sorted(dists)
    assert tiles_covering_l0_rect((5000, 5000, 10, 10), 2.0, (1000, 600), 256) == []


def test_tile_lvl_rect_clipped_at_edge() -> None:
    assert tile_lvl_rect(0, 0, (1000, 600), 256) == (0, 0, 256, 256)
    assert tile_lvl_rect(3, 2, (1000, 600), 256) == (768, 512, 232, 88)


@pytest.mark.parametrize(
    ("max_um", "expected"),
    [(75.0, 50.0), (150.0, 100.0), (30.0, 20.0), (1.0, 1.0), (0.7, 0.5), (2500.0, 2000.0)],
)
def test_nice_length_um(max_um: float, expected: float) -> None:
    assert nice_length_um(max_um) == pytest.approx(expected)


def test_scale_bar_for_known_and_unknown_mpp() -> None:
    bar = scale_bar_for(0.5, 1.0, 150.0)
    assert bar is not None
    assert bar[1] == "50 µm"
    assert bar[0] == pytest.approx(100.0)
    assert scale_bar_for(0.5, 0.01, 150.0) == (pytest.approx(100.0), "5 mm")
    assert scale_bar_for(None, 1.0) is None


def test_nice_lengths_are_1_2_5_steps() -> None:
    for max_um in np.geomspace(0.1, 1e5, 50):
        length = nice_length_um(float(max_um))
        mantissa = length / 10 ** math.floor(math.log10(length))
        assert round(mantissa, 6) in (1.0, 2.0, 5.0)
        assert max_um / 2.5 - 1e-9 <= length <= max_um + 1e-9
