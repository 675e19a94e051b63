"""Test doubles for the application tests: a fast fake model and a two-region tissue slide."""

from __future__ import annotations

import numpy as np
from model_fakes import FakeModel, FakePredictor, fake_spec  # noqa: F401 (re-exported)

from idc_viewer.core.patches import PatchGrid, read_patch
from idc_viewer.core.slide import ArraySlide, Slide
from idc_viewer.qt.panels.gradcam_dock import GradCamView, read_full_resolution


def two_region_image(width: int = 1200, height: int = 800, seed: int = 0) -> np.ndarray:
    """White glass with a strongly red tissue block (high P) and a paler one (lower P)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)

    def block(y0: int, y1: int, x0: int, x1: int, base: tuple[int, int, int]) -> None:
        noise = rng.integers(0, 40, size=(y1 - y0, x1 - x0, 1), dtype=np.int16)
        image[y0:y1, x0:x1] = np.clip(np.array(base, np.int16) - noise, 0, 255).astype(np.uint8)

    block(100, 400, 100, 500, (250, 110, 170))  # P ~ 0.9
    block(450, 700, 700, 1100, (185, 100, 160))  # P ~ 0.65
    return image


def tissue_slide(mpp: float | None = 4.0, path: str = "memory") -> ArraySlide:
    return ArraySlide([two_region_image()], mpp=mpp, path=path)


def fake_gradcam(
    slide: Slide, grid: PatchGrid, cell: tuple[int, int], model: object
) -> GradCamView:
    """Grad-CAM stand-in: the real patch reads, a centred blob as the map."""
    patch = read_patch(slide, grid, *cell)
    yy, xx = np.mgrid[0:50, 0:50]
    cam = np.exp(-((xx - 25) ** 2 + (yy - 25) ** 2) / 200.0).astype(np.float32)
    rect = grid.l0_rect(*cell)
    return GradCamView(
        cell=cell, patch=patch, full=read_full_resolution(slide, rect), cam=cam,
        overlay=patch.copy(), probability=float(patch[..., 0].mean() / 255.0), l0_rect=rect,
        mpp=slide.info.mpp,
    )
