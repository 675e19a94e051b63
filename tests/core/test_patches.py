"""Tests for idc_viewer.core.patches: grid geometry, level choice, resampling, batched reads."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from heatmap_fakes import plain_grid

from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import (
    PatchGrid,
    iter_patch_batches,
    make_grid,
    order_for_reading,
    read_patch,
)
from idc_viewer.core.readers import open_slide
from idc_viewer.core.slide import MissingMppError, Slide, SlideInfo
from idc_viewer.core.synthetic import SyntheticSlide


class CountingSlide(Slide):
    """Wraps a slide and counts region reads."""

    def __init__(self, inner: Slide) -> None:
        super().__init__(inner.info)
        self.inner = inner
        self.reads = 0

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        self.reads += 1
        return self.inner.read_region(l0_x, l0_y, level, lvl_w, lvl_h)


def _random_slide(w: int, h: int, mpp: float, seed: int = 0) -> ArraySlide:
    rng = np.random.default_rng(seed)
    return ArraySlide([rng.integers(0, 255, (h, w, 3), dtype=np.uint8)], mpp=mpp)


def test_missing_mpp_raises() -> None:
    with pytest.raises(MissingMppError) as exc:
        make_grid(SyntheticSlide(1000, 1000, mpp=None).info)
    assert "µm/px" in str(exc.value)


def test_grid_at_model_scale_is_the_plain_50px_grid() -> None:
    slide = _random_slide(1000, 760, mpp=4.0)
    grid = make_grid(slide.info)
    assert grid.l0_patch_size == 50.0
    assert grid.read_level == 0
    assert (grid.cols, grid.rows) == (20, 16)  # 760 / 50 = 15.2 -> partial last row kept
    assert grid.shape == (16, 20)
    assert grid.l0_rect(3, 2) == (150, 100, 50, 50)
    assert grid.cell_at(150, 100) == (3, 2)
    assert grid.cell_at(199.9, 149.9) == (3, 2)
    assert grid.cell_at(-1, 0) is None
    assert grid.cell_at(1000, 10) is None
    arr = slide.read_region(0, 0, 0, 1000, 760)
    np.testing.assert_array_equal(read_patch(slide, grid, 3, 2), arr[100:150, 150:200])


def test_partial_edge_patch_is_padded_white() -> None:
    slide = _random_slide(1020, 500, mpp=4.0)
    grid = make_grid(slide.info)
    assert grid.cols == 21
    patch = read_patch(slide, grid, 20, 0)
    assert patch.shape == (50, 50, 3)
    np.testing.assert_array_equal(patch[:, :20], slide.read_region(1000, 0, 0, 20, 50))
    assert (patch[:, 20:] == 255).all()


def test_grid_matches_idc_dataset_coordinates(shared_data: Path) -> None:
    """Reassemble a patient's slide from IDC patches; the grid must return the same patches."""
    folder = shared_data / "idc" / "8863"
    if not folder.is_dir():
        pytest.skip("IDC patient 8863 not available")
    pattern = re.compile(r"_x(\d+)_y(\d+)_class\d\.png$")
    files = sorted(folder.glob("*/*.png"))[:300]
    patches = []
    for f in files:
        m = pattern.search(f.name)
        assert m is not None
        bgr = cv2.imread(str(f))
        assert bgr is not None, f
        img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        patches.append((int(m.group(1)) - 1, int(m.group(2)) - 1, img))  # 1-based in names
    width = max(x + p.shape[1] for x, _, p in patches)
    height = max(y + p.shape[0] for _, y, p in patches)
    canvas = np.full((height, width, 3), 255, np.uint8)
    for x, y, p in patches:
        canvas[y : y + p.shape[0], x : x + p.shape[1]] = p
    slide = ArraySlide([canvas], mpp=4.0)
    grid = make_grid(slide.info, patch_px=50, model_mpp=4.0)
    for x, y, p in patches:
        cell = grid.cell_at(x, y)
        assert cell == (x // 50, y // 50)
        assert grid.l0_rect(*cell) == (x, y, 50, 50)
        if p.shape[:2] == (50, 50):
            np.testing.assert_array_equal(read_patch(slide, grid, *cell), p)


def test_grid_at_quarter_micron_reads_level_16() -> None:
    slide = SyntheticSlide(100_000, 80_000, mpp=0.25)
    grid = make_grid(slide.info)
    assert grid.l0_patch_size == 800.0
    assert (grid.cols, grid.rows) == (125, 100)
    assert grid.read_level == 2
    assert grid.read_downsample == 16.0
    assert grid.l0_rect(10, 7) == (8000, 5600, 800, 800)
    assert read_patch(slide, grid, 10, 7).shape == (50, 50, 3)


def _info(downsamples: tuple[float, ...], mpp: float) -> SlideInfo:
    dims = tuple((int(4000 / d), int(3000 / d)) for d in downsamples)
    return SlideInfo(
        path="x",
        format="test",
        l0_width=4000,
        l0_height=3000,
        level_count=len(dims),
        level_dimensions=dims,
        level_downsamples=downsamples,
        mpp=mpp,
        mpp_source="metadata",
        objective_power=None,
    )


@pytest.mark.parametrize(
    ("downsamples", "mpp", "level"),
    [
        ((1.0, 4.0, 16.0, 64.0), 0.25, 2),  # 0.25 * 16 = 4.0 exactly
        ((1.0, 4.0, 16.0, 64.0), 0.5, 1),  # 0.5 * 16 = 8 is too coarse, 0.5 * 4 = 2 is fine
        ((1.0, 4.016, 16.13), 0.25, 2),  # slightly-off stored downsamples are tolerated
        ((1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0), 0.228, 4),  # NDPI-like
        ((1.0, 4.0), 4.0, 0),
        ((1.0, 4.0), 8.0, 0),  # slide coarser than the model: only level 0 qualifies
    ],
)
def test_read_level_is_coarsest_not_coarser_than_model(
    downsamples: tuple[float, ...], mpp: float, level: int
) -> None:
    assert make_grid(_info(downsamples, mpp)).read_level == level


def test_non_integer_patch_size_tiles_without_gaps() -> None:
    grid = make_grid(_info((1.0,), 0.499))  # 400.8 level-0 px per patch
    assert grid.l0_patch_size == pytest.approx(400.8016, rel=1e-4)
    x_end = 0
    for col in range(grid.cols):
        x, _, w, _ = grid.l0_rect(col, 0)
        assert x == x_end
        assert w in (400, 401)
        assert grid.cell_at(x, 0) == (col, 0)
        assert grid.cell_at(x + w - 1, 0) == (col, 0)
        x_end = x + w
    assert grid.cols == 10  # ceil(4000 / 400.8)


def test_read_patch_uses_area_resampling() -> None:
    # 1-px checkerboard at 2 µm/px: a 100-px footprint shrunk 2x must average to grey,
    # where nearest-neighbour sampling would keep pure black or white.
    board = ((np.indices((400, 400)).sum(axis=0) % 2) * 255).astype(np.uint8)
    slide = ArraySlide([np.dstack([board] * 3)], mpp=2.0)
    grid = make_grid(slide.info)
    assert grid.l0_patch_size == 100.0
    patch = read_patch(slide, grid, 1, 1)
    assert patch.shape == (50, 50, 3)
    assert np.abs(patch.astype(int) - 127).max() <= 1


def test_read_patch_matches_cv2_area_on_a_level() -> None:
    rng = np.random.default_rng(2)
    l0 = rng.integers(0, 255, (1600, 1600, 3), dtype=np.uint8)
    l1 = cv2.resize(l0, (400, 400), interpolation=cv2.INTER_AREA)
    slide = ArraySlide([l0, l1], mpp=0.5)  # patch = 400 l0 px; level 1 is 2 µm/px
    grid = make_grid(slide.info)
    assert grid.read_level == 1
    expected = cv2.resize(l1[100:200, 200:300], (50, 50), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(read_patch(slide, grid, 2, 1), expected)


def _all_single(slide: Slide, grid: PatchGrid, cells: list[tuple[int, int]]) -> np.ndarray:
    return np.stack([read_patch(slide, grid, c, r) for c, r in cells])


def test_batches_equal_single_reads_synthetic() -> None:
    slide = SyntheticSlide(30_000, 21_000, mpp=0.25, seed=5)  # 800-px patches, partial edges
    grid = make_grid(slide.info)
    rng = np.random.default_rng(0)
    cells = [(int(rng.integers(0, grid.cols)), int(rng.integers(0, grid.rows))) for _ in range(60)]
    cells += [(grid.cols - 1, grid.rows - 1), (0, 0)]
    got_cells: list[tuple[int, int]] = []
    got = []
    for batch_cells, patches in iter_patch_batches(slide, grid, cells, batch_size=7):
        assert len(batch_cells) <= 7
        assert patches.shape == (len(batch_cells), 50, 50, 3) and patches.dtype == np.uint8
        got_cells += batch_cells
        got.append(patches)
    assert got_cells == cells  # order preserved
    np.testing.assert_array_equal(np.concatenate(got), _all_single(slide, grid, cells))


def test_batches_equal_single_reads_openslide(synthetic_tiff: Callable[..., Path]) -> None:
    rng = np.random.default_rng(3)
    image = rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)
    with open_slide(synthetic_tiff(image, mpp=1.0, levels=3, compression=None)) as slide:
        grid = make_grid(slide.info)  # 200-px footprint, read from level 2 (4 µm/px)
        assert grid.read_level == 2
        cells = list(grid.cells())
        patches = np.concatenate([p for _, p in iter_patch_batches(slide, grid, cells, 5)])
        np.testing.assert_array_equal(patches, _all_single(slide, grid, cells))


def test_batches_group_reads() -> None:
    slide = CountingSlide(_random_slide(2000, 2000, mpp=4.0))
    grid = make_grid(slide.info)  # 40 x 40 cells of 50 px at level 0; blocks of 20 x 20
    cells = order_for_reading(grid, list(grid.cells()))
    n = sum(len(c) for c, _ in iter_patch_batches(slide, grid, cells, batch_size=400))
    assert n == 1600
    assert slide.reads == 4


def test_bad_batch_size() -> None:
    slide = _random_slide(100, 100, mpp=4.0)
    with pytest.raises(ValueError):
        list(iter_patch_batches(slide, make_grid(slide.info), [(0, 0)], 0))


def test_l0_edges_follow_l0_rect_and_clip_at_the_slide_edge() -> None:
    grid = plain_grid(100.5, 21, 16, width=2048, height=1536)
    x_full, y_full = grid.l0_edges(clip_to_slide=False)
    assert len(x_full) == grid.cols + 1 and len(y_full) == grid.rows + 1
    for col in range(grid.cols):
        l0_x, _, l0_w, _ = grid.l0_rect(col, 0)
        assert (x_full[col], x_full[col + 1]) == (l0_x, l0_x + l0_w)
    for row in range(grid.rows):
        _, l0_y, _, l0_h = grid.l0_rect(0, row)
        assert (y_full[row], y_full[row + 1]) == (l0_y, l0_y + l0_h)
    assert (x_full[-1], y_full[-1]) == (2110, 1608)  # the last patch, partly past the slide
    x_edges, y_edges = grid.l0_edges()
    assert (x_edges[-1], y_edges[-1]) == (2048, 1536)  # its footprint on the slide
    np.testing.assert_array_equal(x_edges[:-1], x_full[:-1])
    np.testing.assert_array_equal(y_edges[:-1], y_full[:-1])
