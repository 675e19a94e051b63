"""Tests for idc_viewer.core.outline: region outlines as GeoJSON polygons (holes, pinches)."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
from heatmap_fakes import grid_for, heatmap_from

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.outline import region_polygons
from idc_viewer.core.regions import find_regions


def _rasterise(polygons, grid) -> np.ndarray:
    """Paint GeoJSON polygons back onto the cell grid by testing each cell centre."""
    out = np.zeros((grid.rows, grid.cols), dtype=bool)
    for polygon in polygons:
        outer, *holes = (np.array(ring, dtype=np.float32) for ring in polygon)
        for r in range(grid.rows):
            for c in range(grid.cols):
                x0, y0, w, h = grid.l0_rect(c, r)
                centre = (x0 + w / 2, y0 + h / 2)
                inside = cv2.pointPolygonTest(outer, centre, False) > 0
                if inside and not any(cv2.pointPolygonTest(h_, centre, False) > 0 for h_ in holes):
                    out[r, c] = True
    return out


def _ring_area(ring) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))


def test_single_patch_outline_is_its_footprint():
    hm = heatmap_from(["...", ".#.", "..."], size=10.5)
    (region,) = find_regions(hm, 0.5)
    (polygon,) = region_polygons(region, hm.grid)
    (outer,) = polygon
    x, y, w, h = hm.grid.l0_rect(1, 1)
    assert outer[0] == outer[-1]
    assert sorted(map(tuple, outer[:-1])) == sorted(
        [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
    )


def test_ring_outline_has_a_hole_with_correct_winding():
    hm = heatmap_from(["###", "#.#", "###"])
    (region,) = find_regions(hm, 0.5)
    (polygon,) = region_polygons(region, hm.grid)
    outer, hole = polygon
    assert _ring_area(outer) > 0 > _ring_area(hole)  # RFC 7946 winding (y read as a number)
    assert sorted(map(tuple, hole[:-1])) == [(100, 100), (100, 200), (200, 100), (200, 200)]
    assert len(outer) == 5  # four corners + closing point, no collinear vertices
    assert np.array_equal(_rasterise([polygon], hm.grid), hm.flagged_mask(0.5))


def test_diagonal_touch_becomes_multipolygon():
    hm = heatmap_from(["#.", ".#"])
    (region,) = find_regions(hm, 0.5)
    polygons = region_polygons(region, hm.grid)
    assert len(polygons) == 2
    assert all(len(p) == 1 and len(p[0]) == 5 for p in polygons)


def test_random_masks_round_trip_through_outlines():
    rng = np.random.default_rng(7)
    for _ in range(25):
        probs = np.where(rng.random((9, 11)) < 0.55, 0.9, np.nan).astype(np.float32)
        hm = Heatmap(grid_for(11, 9, size=7.3), probs)
        painted = np.zeros(probs.shape, dtype=bool)
        for region in find_regions(hm, 0.5):
            polygons = region_polygons(region, hm.grid)
            for polygon in polygons:
                assert _ring_area(polygon[0]) > 0
                assert all(_ring_area(h) < 0 for h in polygon[1:])
            mine = _rasterise(polygons, hm.grid)
            assert not (painted & mine).any()
            painted |= mine
        assert np.array_equal(painted, hm.flagged_mask(0.5))
