"""Tests for idc_viewer.core.regions: 8-connected flagged regions, ranked, with area and extent."""

from __future__ import annotations

import numpy as np
import pytest
from heatmap_fakes import grid_for, heatmap_from

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.regions import Region, find_regions


def test_regions_use_diagonal_connectivity_and_threshold_at_or_above():
    hm = heatmap_from(
        [
            "5.....",
            ".5..4.",
            "..5...",
            "....#9",
        ]
    )
    regions = find_regions(hm, 0.5)
    # The diagonal 0.5 chain is one region (8-connected); 0.4 is below; '#9' is another.
    assert [r.n_patches for r in regions] == [2, 3]
    assert regions[0].max_probability == pytest.approx(1.0)
    assert set(regions[1].cells) == {(0, 0), (1, 1), (2, 2)}
    assert regions[1].max_probability == pytest.approx(0.5)  # equal to threshold counts


def test_regions_sorted_by_max_probability_with_ids_in_order():
    hm = heatmap_from(["6.9.7", ".....", "#...8"])
    regions = find_regions(hm, 0.5)
    assert [r.region_id for r in regions] == [1, 2, 3, 4, 5]
    assert [round(r.max_probability, 2) for r in regions] == [1.0, 0.9, 0.8, 0.7, 0.6]


def test_region_geometry_area_bbox_centroid():
    hm = heatmap_from(["....", ".##.", ".#..", "...."], size=100.0, mpp=2.0)
    (region,) = find_regions(hm, 0.5)
    assert region.n_patches == 3
    # Each patch is 100 px * 2 µm = 0.2 mm wide -> 0.04 mm².
    assert region.area_mm2 == pytest.approx(3 * 0.04)
    assert (region.l0_x, region.l0_y, region.l0_width, region.l0_height) == (100, 100, 200, 200)
    assert region.l0_centroid_x == pytest.approx((150 + 250 + 150) / 3)
    assert region.l0_centroid_y == pytest.approx((150 + 150 + 250) / 3)
    assert region.mean_probability == pytest.approx(1.0)


def test_region_area_clipped_at_slide_edge():
    # Slide 160 x 60 px: the last column is 60 px wide and the only row 60 px high.
    grid = grid_for(2, 1, size=100.0, mpp=1.0, edge=40)
    hm = Heatmap(grid, np.array([[0.9, 0.9]], dtype=np.float32))
    (region,) = find_regions(hm, 0.5)
    assert region.area_mm2 == pytest.approx((100 * 60 + 60 * 60) * 1e-6)
    assert region.l0_width == 160


def test_no_regions_when_nothing_flagged():
    assert find_regions(heatmap_from(["12", ".3"]), 0.5) == []
    assert find_regions(heatmap_from(["..", ".."]), 0.0) == []


def test_region_is_frozen():
    hm = heatmap_from(["#"])
    (region,) = find_regions(hm, 0.5)
    assert isinstance(region, Region)
    with pytest.raises(AttributeError):
        region.n_patches = 3  # type: ignore[misc]
