"""Find the grid cells that hold H&E tissue, from a low-resolution view of the slide.

Brightfield H&E tissue is stained pink/purple on near-white glass, so a pixel is tissue when it
is saturated enough and not too dark (black pen marks, slide edges, dirt are dark or grey).
A cell is tissue when enough of its pixels are. Slides that do not look like brightfield
(mostly dark: fluorescence) or that hold no stained tissue (empty glass, greyscale images)
get an empty mask and a warning instead of a misleading analysis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.slide import Slide

__all__ = ["TissueMap", "detect_tissue", "patch_tissue_fraction", "stain_warning", "tissue_pixels"]

# Pixels per grid cell side in the low-resolution view: enough to measure a cell's tissue
# fraction in steps of 1/64 while keeping the view small (a 100k px slide -> ~1000 px).
_PX_PER_CELL = 8
# The view never exceeds this many pixels: huge grids get fewer pixels per cell (down to one,
# the cell's mean colour), so memory and time stay bounded whatever the slide or µm/px.
_MAX_VIEW_PX = 1 << 24
# Side, in view pixels, of the tiles the view is built and classified in.
_CHUNK = 512
# Largest side, in pixels of the level read, of one region read (a 2048^2 RGBA read is 16 MB).
_MAX_READ_PX = 2048
# Level pixels decoded for the whole view at most (a few seconds here).
_MAX_LEVEL_PX = 64 << 20
# HSV thresholds on a 0-255 scale: saturation > 0.07 is stained; value < 0.2 is dark.
_MIN_SATURATION = 18
_MIN_VALUE = 51
# More than this share of dark pixels inside the slide means dark-field / fluorescence.
_DARK_SHARE = 0.5
# OpenCV hues (0-180) of haematoxylin purple through eosin pink (wrapping past red):
# H&E slides measured 96-100 % inside; coloured boxes 24 %, a DAB (brown) IHC image 4 %.
_HE_HUE_FROM, _HE_HUE_TO = 125, 10
# Below this share of stained pixels with an H&E hue the slide is flagged as not H&E.
_MIN_HE_HUE_SHARE = 0.5
# A slide covering less than this share of one patch cannot be analysed meaningfully: the
# µm/px is almost certainly wrong (0.01 makes a 2,000 px slide 20 µm wide).
_MIN_SLIDE_SHARE_OF_PATCH = 0.25


@dataclass(frozen=True)
class TissueMap:
    """Tissue cells of a grid.

    Attributes
    ----------
    mask : numpy.ndarray
        ``bool[rows, cols]``, True where a cell holds enough tissue to analyse.
    tissue_fraction : float
        Share of grid cells marked as tissue (0 to 1).
    warning : str or None
        Why the slide does not look like brightfield H&E (then ``mask`` is all False).
    cell_fraction : numpy.ndarray or None
        ``float32[rows, cols]``, share of each cell's pixels that are tissue.
    """

    mask: np.ndarray
    tissue_fraction: float
    warning: str | None = None
    cell_fraction: np.ndarray | None = None


def _px_per_cell(grid: PatchGrid) -> int:
    cells = max(1, int(grid.cols) * int(grid.rows))
    return max(1, min(_PX_PER_CELL, math.isqrt(_MAX_VIEW_PX // cells)))


def _mean_colour(
    slide: Slide, level: int, ds: float, l0_box: tuple[float, float, float, float]
) -> np.ndarray:
    """Mean RGB of a level-0 box, read in bounded pieces; the part outside the slide is white.

    For view pixels wider than one bounded read (a cell much larger than the pyramid's
    coarsest level allows).
    """
    x0, y0, x1, y1 = l0_box
    area = max((x1 - x0) * (y1 - y0), 1e-9)
    in_x1 = min(x1, float(slide.info.l0_width))
    in_y1 = min(y1, float(slide.info.l0_height))
    total = np.zeros(3, dtype=np.float64)
    covered = 0.0
    step = _MAX_READ_PX * ds
    y = y0
    while y < in_y1:
        x = x0
        h = min(step, in_y1 - y)
        while x < in_x1:
            w = min(step, in_x1 - x)
            lvl_w, lvl_h = max(1, round(w / ds)), max(1, round(h / ds))
            region = slide.read_region(round(x), round(y), level, lvl_w, lvl_h)
            total += region.reshape(-1, 3).mean(axis=0, dtype=np.float64) * (w * h)
            covered += w * h
            x += w
        y += h
    total += 255.0 * max(area - covered, 0.0)
    return np.clip(np.rint(total / area), 0, 255).astype(np.uint8)


def _view_tile(
    slide: Slide,
    grid: PatchGrid,
    px_per_cell: int,
    level: int,
    vx: int,
    vy: int,
    cw: int,
    ch: int,
) -> np.ndarray:
    """View pixels ``[vx, vx + cw) x [vy, vy + ch)``; reads only the part inside the slide."""
    info = slide.info
    ds = info.level_downsamples[level]
    l0_per_px = grid.l0_patch_size / px_per_cell
    tile = np.full((ch, cw, 3), 255, dtype=np.uint8)
    # view pixels that touch the slide; the rest stays white without a read
    in_w = min(cw, max(0, math.ceil(info.l0_width / l0_per_px - 1e-9) - vx))
    in_h = min(ch, max(0, math.ceil(info.l0_height / l0_per_px - 1e-9) - vy))
    if in_w == 0 or in_h == 0:
        return tile
    lvl_per_px = l0_per_px / ds
    if lvl_per_px > _MAX_READ_PX:  # one view pixel is more than one bounded read
        for j in range(in_h):
            for i in range(in_w):
                box = (
                    (vx + i) * l0_per_px,
                    (vy + j) * l0_per_px,
                    (vx + i + 1) * l0_per_px,
                    (vy + j + 1) * l0_per_px,
                )
                tile[j, i] = _mean_colour(slide, level, ds, box)
        return tile
    step = max(1, int(_MAX_READ_PX // max(lvl_per_px, 1e-9)))  # view px per bounded read
    for j0 in range(0, in_h, step):
        for i0 in range(0, in_w, step):
            w, h = min(step, in_w - i0), min(step, in_h - j0)
            x, y = vx + i0, vy + j0
            l0_x, l0_y = round(x * l0_per_px), round(y * l0_per_px)
            lvl_w = max(1, round((x + w) * l0_per_px / ds) - round(l0_x / ds))
            lvl_h = max(1, round((y + h) * l0_per_px / ds) - round(l0_y / ds))
            region = slide.read_region(l0_x, l0_y, level, lvl_w, lvl_h)
            if (lvl_w, lvl_h) != (w, h):
                region = cv2.resize(region, (w, h), interpolation=cv2.INTER_AREA)
            tile[j0 : j0 + h, i0 : i0 + w] = region
    return tile


def tissue_pixels(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classify pixels of an RGB uint8 image.

    Returns
    -------
    (tissue, dark) : tuple of bool arrays
        ``tissue``: stained and not dark; ``dark``: HSV value below 0.2.
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    sat, val = hsv[..., 1], hsv[..., 2]
    dark = val < _MIN_VALUE
    return (sat > _MIN_SATURATION) & ~dark, dark


def patch_tissue_fraction(rgb: np.ndarray) -> float:
    """Share of a patch's pixels that are stained tissue (see :func:`tissue_pixels`)."""
    tissue, _ = tissue_pixels(np.ascontiguousarray(rgb[..., :3]))
    return float(tissue.mean()) if tissue.size else 0.0


def detect_tissue(slide: Slide, grid: PatchGrid, min_cell_fraction: float = 0.1) -> TissueMap:
    """Mark the grid cells that contain H&E tissue.

    Parameters
    ----------
    slide : Slide
    grid : PatchGrid
        Grid of the slide (see :func:`idc_viewer.core.patches.make_grid`).
    min_cell_fraction : float
        Minimum share of a cell's pixels that must be tissue.

    Returns
    -------
    TissueMap
        With a warning and an empty mask when the slide looks like fluorescence (mostly dark)
        or holds no stained tissue.
    """
    p = _px_per_cell(grid)
    level = slide.best_level_for_downsample(grid.l0_patch_size / p)
    dims = slide.info.level_dimensions
    # Huge slides at a coarse µm/px: a slightly coarser level than one pixel per view pixel
    # beats decoding hundreds of megapixels for a view of one pixel per cell.
    while level + 1 < len(dims) and dims[level][0] * dims[level][1] > _MAX_LEVEL_PX:
        level += 1
    side = max(p, _CHUNK // p * p)  # tiles hold whole cells
    # Only pixels inside the slide count for the brightfield check (edge padding is white).
    in_w = max(1, round(grid.l0_width / grid.l0_patch_size * p))
    in_h = max(1, round(grid.l0_height / grid.l0_patch_size * p))
    fraction = np.zeros((grid.rows, grid.cols), dtype=np.float32)
    dark_px = 0
    # Built and classified tile by tile: only one tile of the view is ever in memory.
    for vy in range(0, grid.rows * p, side):
        for vx in range(0, grid.cols * p, side):
            cw, ch = min(side, grid.cols * p - vx), min(side, grid.rows * p - vy)
            tile = _view_tile(slide, grid, p, level, vx, vy, cw, ch)
            tissue, dark = tissue_pixels(tile)
            dark_px += int(dark[: max(0, in_h - vy), : max(0, in_w - vx)].sum())
            fraction[vy // p : (vy + ch) // p, vx // p : (vx + cw) // p] = tissue.reshape(
                ch // p, p, cw // p, p
            ).mean(axis=(1, 3), dtype=np.float32)
    dark_share = dark_px / float(min(in_w, grid.cols * p) * min(in_h, grid.rows * p))

    mask = fraction >= min_cell_fraction

    warning: str | None = None
    slide_share = grid.l0_width * grid.l0_height / grid.l0_patch_size**2
    if slide_share < _MIN_SLIDE_SHARE_OF_PATCH:
        patch_um = grid.patch_px * grid.model_mpp
        warning = (
            f"the slide is only {grid.l0_width * grid.slide_mpp:.3g} x "
            f"{grid.l0_height * grid.slide_mpp:.3g} µm at {grid.slide_mpp:g} µm/px, much less "
            f"than one {patch_um:g} µm patch: check the µm per pixel"
        )
    elif dark_share > _DARK_SHARE:
        warning = (
            f"{dark_share:.0%} of the slide is dark: it looks like fluorescence or dark-field, "
            "not brightfield H&E; the model was trained on H&E only"
        )
    elif not mask.any():
        warning = "no stained tissue found: the slide looks empty or is not H&E-stained"
    if warning is not None:
        mask = np.zeros_like(mask)
    return TissueMap(
        mask=mask,
        tissue_fraction=float(mask.mean()),
        warning=warning,
        cell_fraction=fraction,
    )


def stain_warning(rgb: np.ndarray) -> str | None:
    """Why a slide (seen as a small RGB image, e.g. its thumbnail) may not be H&E, or None.

    Checked when a slide opens, before any analysis: mostly dark (fluorescence, dark-field),
    no stained pixels, or stained pixels mostly outside the purple-to-pink hues of H&E
    (immunohistochemistry's brown, coloured drawings).
    """
    tissue, dark = tissue_pixels(np.ascontiguousarray(rgb[..., :3]))
    dark_share = float(dark.mean()) if dark.size else 0.0
    if dark_share > _DARK_SHARE:
        return (
            f"{dark_share:.0%} of the slide is dark: it looks like fluorescence, not "
            "brightfield H&E (the model was trained on H&E only)"
        )
    if not tissue.any():
        return "no stained tissue seen: the slide looks empty or is not H&E-stained"
    hue = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2HSV)[..., 0][tissue]
    he_share = float(np.mean((hue >= _HE_HUE_FROM) | (hue < _HE_HUE_TO)))
    if he_share < _MIN_HE_HUE_SHARE:
        return (
            f"only {he_share:.0%} of the stained area has H&E's purple-pink colours: "
            "this may not be an H&E slide (the model was trained on H&E only)"
        )
    return None
