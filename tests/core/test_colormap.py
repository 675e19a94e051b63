"""Tests for idc_viewer.core.colormap: one set of colour tables for heatmap, Grad-CAM, figures."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from idc_viewer.core.colormap import (
    COLORMAPS,
    colorize,
    colormap_lut,
    lut_index,
    overlay_rgba,
    rgba_from_index,
)


def test_colormap_lut_is_rgb_and_perceptually_ordered():
    lut = colormap_lut("inferno")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    # inferno runs from near black to pale yellow: luminance rises monotonically (roughly).
    lum = lut.astype(float) @ [0.2126, 0.7152, 0.0722]
    assert lum[0] < 20 and lum[-1] > 200
    assert np.all(np.diff(lum[::16]) > 0)
    # RGB order: the bright end of inferno is yellow (red and green high, blue lower).
    assert lut[-1, 0] > lut[-1, 2] and lut[-1, 1] > lut[-1, 2]
    with pytest.raises(ValueError):
        colormap_lut("nope")


@pytest.mark.parametrize("name", sorted(COLORMAPS))
def test_the_tables_are_opencvs_maps_in_rgb(name: str) -> None:
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    bgr = cv2.applyColorMap(levels, COLORMAPS[name])
    np.testing.assert_array_equal(colormap_lut(name)[levels], bgr[..., ::-1])


def test_colorize_rounds_to_the_nearest_entry_and_clips() -> None:
    values = np.array([[np.nan, -1.0, 0.0], [0.5, 1.0, 7.0]], dtype=np.float32)
    np.testing.assert_array_equal(lut_index(values), [[0, 0, 0], [128, 255, 255]])
    rgb = colorize(values, "jet")
    assert rgb.shape == (2, 3, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[1, 1], colormap_lut("jet")[255])


def test_rgba_from_index_takes_one_alpha_or_one_per_pixel() -> None:
    index = np.array([[0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(rgba_from_index(index, 128, "turbo")[..., 3], [[128, 128]])
    rgba = rgba_from_index(index, index, "turbo")
    np.testing.assert_array_equal(rgba[..., 3], index)
    np.testing.assert_array_equal(rgba[0, 1, :3], colormap_lut("turbo")[255])


def test_overlay_is_clear_below_its_floor_and_solid_at_one() -> None:
    rgba = overlay_rgba(np.array([[np.nan, 0.1, 0.2, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(rgba[0, :, 3], [0, 0, 0, 255])
