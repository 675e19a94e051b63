"""Tests for idc_viewer.core.tissue: H&E tissue cells and non-H&E warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import make_grid
from idc_viewer.core.readers import open_slide
from idc_viewer.core.synthetic import Blob, SyntheticSlide
from idc_viewer.core.tissue import detect_tissue


def test_synthetic_blobs_are_found() -> None:
    slide = SyntheticSlide(40_000, 30_000, mpp=0.25, seed=11, n_blobs=4)
    grid = make_grid(slide.info)
    result = detect_tissue(slide, grid)
    assert result.warning is None
    assert result.mask.shape == (grid.rows, grid.cols) and result.mask.dtype == bool
    # Ground truth: share of each cell inside the blobs, sampled on a fine lattice.
    s = grid.l0_patch_size
    offsets = (np.arange(8) + 0.5) / 8
    truth = np.zeros(grid.shape)
    for row in range(grid.rows):
        for col in range(grid.cols):
            xs = (col + offsets)[None, :] * s
            ys = (row + offsets)[:, None] * s
            truth[row, col] = slide.is_tissue(xs, ys).mean()
    assert result.mask[truth >= 0.5].all()  # mostly-tissue cells are all found
    assert not result.mask[truth == 0].any()  # glass-only cells are never tissue
    assert result.tissue_fraction == pytest.approx(result.mask.mean())
    assert 0.05 < result.tissue_fraction < 0.9


def test_small_blob_in_one_cell() -> None:
    blob = Blob(cx=2000.0, cy=1200.0, rx=250.0, ry=250.0, angle=0.0)  # inside cell (2, 1)
    slide = SyntheticSlide(8000, 8000, mpp=0.25, blobs=[blob])
    result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is None
    assert list(zip(*np.nonzero(result.mask), strict=True)) == [(1, 2)]


def test_empty_glass_warns() -> None:
    slide = SyntheticSlide(20_000, 20_000, mpp=0.25, n_blobs=0)
    result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is not None and "no stained tissue" in result.warning
    assert not result.mask.any()
    assert result.tissue_fraction == 0.0


def test_fluorescence_warns() -> None:
    slide = SyntheticSlide(20_000, 20_000, mpp=0.25, style="fluorescence")
    result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is not None and "fluorescence" in result.warning
    assert not result.mask.any()


def test_greyscale_image_warns() -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(60, 200, (500, 500), dtype=np.uint8)
    slide = ArraySlide([grey], mpp=4.0)
    result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is not None
    assert not result.mask.any()


def test_dark_pen_mark_is_not_tissue() -> None:
    image = np.full((500, 500, 3), 245, np.uint8)
    image[:, :100] = (20, 20, 30)  # black marker along one edge
    image[200:300, 200:300] = (220, 140, 190)  # pink tissue
    slide = ArraySlide([image], mpp=4.0)
    result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is None
    expected = np.zeros((10, 10), bool)
    expected[4:6, 4:6] = True
    np.testing.assert_array_equal(result.mask, expected)


def test_real_he_image_has_tissue(shared_data: Path) -> None:
    with open_slide(shared_data / "images" / "he-1000px.png", mpp=4.0) as slide:
        result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is None
    assert result.tissue_fraction > 0.3


def test_real_aperio_has_tissue_and_background(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "CMU-1-Small-Region.svs") as slide:
        result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is None
    assert 0.2 < result.tissue_fraction < 0.9


def test_real_fluorescence_warns(shared_data: Path) -> None:
    with open_slide(shared_data / "wsi" / "fluorescence-DAPI.ndpi") as slide:
        result = detect_tissue(slide, make_grid(slide.info))
    assert result.warning is not None and "fluorescence" in result.warning
    assert not result.mask.any()


def test_stain_warning_flags_what_is_not_brightfield_he() -> None:
    from idc_viewer.core.tissue import stain_warning

    he = np.full((200, 300, 3), 245, np.uint8)
    he[40:160, 50:250] = (200, 110, 170)  # eosin pink
    he[80:120, 100:200] = (120, 70, 160)  # haematoxylin purple
    assert stain_warning(he) is None
    dark = np.zeros((200, 300, 3), np.uint8)
    dark[90:110, 100:200] = (40, 60, 230)  # fluorescent nuclei on black
    assert "fluorescence" in (stain_warning(dark) or "")
    boxes = np.full((200, 300, 3), 255, np.uint8)
    boxes[20:100, 20:140], boxes[100:190, 150:290] = (30, 200, 30), (20, 20, 230)
    assert "may not be an H&E slide" in (stain_warning(boxes) or "")
    dab = np.full((200, 300, 3), 240, np.uint8)
    dab[40:160, 50:250] = (150, 95, 50)  # immunohistochemistry brown
    assert "may not be an H&E slide" in (stain_warning(dab) or "")
    assert "no stained tissue" in (stain_warning(np.full((50, 50, 3), 250, np.uint8)) or "")


# --- bounded memory whatever the slide size, µm/px or grid -------------------------------------


def traced_peak_bytes(fn) -> tuple[object, int]:  # type: ignore[no-untyped-def]
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_cell_far_larger_than_the_slide_reads_only_the_slide() -> None:
    """--mpp 0.05 on a 600 x 800 px image: one 4,000 px cell; the area outside is not read."""
    image = np.full((800, 600, 3), 235, np.uint8)
    image[200:600, 150:450] = (200, 110, 170)
    slide = ArraySlide([image], mpp=0.05)
    grid = make_grid(slide.info)
    assert (grid.cols, grid.rows) == (1, 1) and grid.l0_patch_size == pytest.approx(4000)
    result, peak = traced_peak_bytes(lambda: detect_tissue(slide, grid))
    assert peak < 20e6  # a 4,000^2 px read alone would be 48 MB
    assert result.warning is not None and "much less than one 200 µm patch" in result.warning


def test_many_cells_get_fewer_view_pixels_each() -> None:
    """100,000^2 px at the model's 4 µm/px: 2,000^2 patches, the view stays small."""
    slide = SyntheticSlide(100_000, 100_000, mpp=4.0, seed=3)
    grid = make_grid(slide.info)
    assert grid.cols * grid.rows == 4_000_000
    result, peak = traced_peak_bytes(lambda: detect_tissue(slide, grid))
    assert peak < 400e6  # the full 8 px/cell view would be 768 MB before HSV and masks
    assert result.warning is None and result.mask.any()
    truth = slide.is_tissue(
        (np.arange(grid.cols)[None, :] + 0.5) * 50.0, (np.arange(grid.rows)[:, None] + 0.5) * 50.0
    )
    assert (result.mask == truth).mean() > 0.95  # one pixel per cell still finds the tissue


def test_an_impossible_grid_is_refused_before_anything_is_allocated() -> None:
    from idc_viewer.core.patches import MAX_GRID_CELLS, GridTooLargeError

    slide = SyntheticSlide(200_000, 200_000, mpp=100.0)  # 2 px patches: 10^10 of them
    with pytest.raises(GridTooLargeError, match="check the µm per pixel") as info:
        make_grid(slide.info)
    assert f"{MAX_GRID_CELLS:,}" in str(info.value)


def test_the_issues_200000_px_slide_at_4_um_per_px_is_planned_quickly_in_little_memory() -> None:
    """161 s and 9.1 GB before: the view was built at full size from a fine level."""
    read_px = [0]

    class Counting(SyntheticSlide):
        def read_region(
            self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int
        ) -> np.ndarray:
            read_px[0] += lvl_w * lvl_h
            return super().read_region(l0_x, l0_y, level, lvl_w, lvl_h)

    slide = Counting(200_000, 200_000, mpp=4.0, seed=3)
    grid = make_grid(slide.info)
    assert grid.cols * grid.rows == 16_000_000
    result, peak = traced_peak_bytes(lambda: detect_tissue(slide, grid))
    assert peak < 500e6
    assert read_px[0] <= 80e6  # decoded pixels bounded, not the 156 M of the 1/16 level
    assert result.warning is None and 0.1 < result.tissue_fraction < 0.3
