"""Find the grid cells that hold H&E tissue, from a low-resolution view of the slide.

Brightfield H&E tissue is stained pink/purple on near-white glass, so a pixel is tissue when it
is saturated enough and not too dark (black pen marks, slide edges, dirt are dark or grey).
A cell is tissue when enough of its pixels are. Slides that do not look like brightfield
(mostly dark: fluorescence) or that hold no stained tissue (empty glass, greyscale images)
get an empty mask and a warning instead of a misleading analysis.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.slide import Slide

__all__ = ["TissueMap", "detect_tissue", "patch_tissue_fraction", "stain_warning", "tissue_pixels"]

# Pixels per grid cell side in the low-resolution view: enough to measure a cell's tissue
# fraction in steps of 1/64 while keeping the view small (a 100k px slide -> ~1000 px).
_PX_PER_CELL = 8
# Chunk side in view pixels: bounds memory for slides without a usable pyramid.
_CHUNK = 512
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


def _low_res_view(slide: Slide, grid: PatchGrid, px_per_cell: int) -> np.ndarray:
    """Read the grid's extent at ``px_per_cell`` pixels per cell, chunk by chunk."""
    view_w, view_h = grid.cols * px_per_cell, grid.rows * px_per_cell
    l0_per_px = grid.l0_patch_size / px_per_cell
    level = slide.best_level_for_downsample(l0_per_px)
    ds = slide.info.level_downsamples[level]
    view = np.empty((view_h, view_w, 3), dtype=np.uint8)
    for vy in range(0, view_h, _CHUNK):
        for vx in range(0, view_w, _CHUNK):
            cw, ch = min(_CHUNK, view_w - vx), min(_CHUNK, view_h - vy)
            l0_x, l0_y = round(vx * l0_per_px), round(vy * l0_per_px)
            lvl_w = max(1, round((vx + cw) * l0_per_px / ds) - round(l0_x / ds))
            lvl_h = max(1, round((vy + ch) * l0_per_px / ds) - round(l0_y / ds))
            region = slide.read_region(l0_x, l0_y, level, lvl_w, lvl_h)
            if (lvl_w, lvl_h) != (cw, ch):
                region = cv2.resize(region, (cw, ch), interpolation=cv2.INTER_AREA)
            view[vy : vy + ch, vx : vx + cw] = region
    return view


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
    view = _low_res_view(slide, grid, _PX_PER_CELL)
    tissue, dark = tissue_pixels(view)

    # Only pixels inside the slide count for the brightfield check (edge padding is white).
    in_w = min(view.shape[1], max(1, round(grid.l0_width / grid.l0_patch_size * _PX_PER_CELL)))
    in_h = min(view.shape[0], max(1, round(grid.l0_height / grid.l0_patch_size * _PX_PER_CELL)))
    dark_share = float(dark[:in_h, :in_w].mean())

    p = _PX_PER_CELL
    fraction = tissue.reshape(grid.rows, p, grid.cols, p).mean(axis=(1, 3), dtype=np.float32)
    mask = fraction >= min_cell_fraction

    warning: str | None = None
    if dark_share > _DARK_SHARE:
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
        return (f"{dark_share:.0%} of the slide is dark: it looks like fluorescence, not "
                "brightfield H&E (the model was trained on H&E only)")
    if not tissue.any():
        return "no stained tissue seen: the slide looks empty or is not H&E-stained"
    hue = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2HSV)[..., 0][tissue]
    he_share = float(np.mean((hue >= _HE_HUE_FROM) | (hue < _HE_HUE_TO)))
    if he_share < _MIN_HE_HUE_SHARE:
        return (f"only {he_share:.0%} of the stained area has H&E's purple-pink colours: "
                "this may not be an H&E slide (the model was trained on H&E only)")
    return None
