"""Tests for idc_viewer.core.heatmap: the probability grid and its colouring."""

from __future__ import annotations

import numpy as np
import pytest
from slide_fakes import one_level_info

from idc_viewer.core.colormap import colormap_lut, probabilities_to_rgba
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import make_grid


def _grid(width: int = 1200, height: int = 800):
    return make_grid(one_level_info(width, height, 0.5))  # 400 px patches -> 3 x 2 cells


def test_empty_heatmap_has_nothing_analysed():
    hm = Heatmap.empty(_grid())
    assert hm.probabilities.shape == (2, 3)
    assert hm.probabilities.dtype == np.float32
    assert hm.analysed_count == 0
    assert not hm.flagged_mask(0.0).any()


def test_shape_must_match_grid():
    with pytest.raises(ValueError):
        Heatmap(_grid(), np.zeros((3, 2), dtype=np.float32))


def test_flagged_mask_is_at_or_above_and_ignores_nan():
    probs = np.array([[0.5, 0.49, np.nan], [1.0, 0.0, 0.51]])  # float64: converted
    hm = Heatmap(_grid(), probs)  # type: ignore[arg-type]
    assert hm.probabilities.dtype == np.float32
    np.testing.assert_array_equal(hm.flagged_mask(0.5), [[True, False, False], [True, False, True]])
    assert hm.flagged_count(0.5) == 3
    assert hm.analysed_count == 5


def test_set_cells_and_probability_at():
    hm = Heatmap.empty(_grid())
    hm.set_cells([(2, 1), (0, 0)], [0.75, 0.25])
    assert hm.probability_at(2, 1) == pytest.approx(0.75)
    assert hm.probability_at(0, 0) == pytest.approx(0.25)
    assert hm.probability_at(1, 0) is None
    assert hm.probability_at(5, 5) is None
    copy = hm.copy()
    copy.set_cells(np.array([[1, 0]]), [0.5])
    assert hm.probability_at(1, 0) is None


def test_rgba_nan_transparent_opacity_and_threshold():
    probs = np.array([[np.nan, 0.0], [0.5, 1.0]], dtype=np.float32)
    rgba = probabilities_to_rgba(probs, "turbo", opacity=0.5)
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert rgba[0, 0, 3] == 0
    assert rgba[0, 1, 3] == rgba[1, 1, 3] == 128
    lut = colormap_lut("turbo")
    np.testing.assert_array_equal(rgba[1, 1, :3], lut[255])
    np.testing.assert_array_equal(rgba[0, 1, :3], lut[0])
    only_flagged = probabilities_to_rgba(probs, threshold=0.5)
    np.testing.assert_array_equal(only_flagged[..., 3], [[0, 0], [255, 255]])
    hm = Heatmap(_grid(800, 800), probs)
    np.testing.assert_array_equal(hm.to_rgba("turbo", 0.5), rgba)
