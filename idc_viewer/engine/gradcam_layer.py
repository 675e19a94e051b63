"""The Grad-CAM layer over a slide, without Qt: which cells, their maps, and the picture.

One pipeline for the GUI and ``idc-viewer gradcam --region``: :func:`explain_cells` turns
cells into :class:`CellCam` (the low-resolution map and probability of each patch),
:func:`cam_rgba` colours one map at any size over its patch's footprint, and
:func:`render_region` composes slide, heatmap and Grad-CAM layers for a level-0 rectangle.
The GUI paints the very images :func:`cam_rgba` returns, at the footprint the heatmap uses.

The Grad-CAM colour is the map's value through :data:`GRADCAM_COLORMAP`; its alpha is the
value too (0 = transparent), so tissue without evidence stays visible and the layer can sit
over the heatmap. Each patch's map is scaled to its own maximum (the paper's Grad-CAM).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

import cv2
import numpy as np

from idc_viewer.core.colormap import colorize, rgba_from_index
from idc_viewer.core.patches import Cell, iter_patch_batches, order_for_reading
from idc_viewer.ml.gradcam import GradCamResult, upsample_cam

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.jobs import CancelToken
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import Slide

Layers = Literal["heatmap", "gradcam", "both", "none"]
LAYER_CHOICES: tuple[Layers, ...] = ("heatmap", "gradcam", "both", "none")
#: Colour scale of Grad-CAM (distinct from the heatmap's inferno).
GRADCAM_COLORMAP = "turbo"
HEATMAP_COLORMAP = "inferno"
#: Patches per call to the explainer.
EXPLAIN_BATCH = 16


class Explainer(Protocol):
    """Anything that explains patches (:class:`idc_viewer.ml.gradcam.GradCam`)."""

    def compute_batch(self, patches_uint8: np.ndarray) -> list[GradCamResult]:
        """Explain a batch of ``(p, p, 3)`` uint8 patches."""
        ...


@dataclass(frozen=True)
class CellCam:
    """The Grad-CAM of one cell: its low-resolution map in [0, 1] and the model's P(IDC)."""

    cell: Cell
    cam_lowres: np.ndarray
    probability: float

    @property
    def nbytes(self) -> int:
        """Memory held, for the cache's budget."""
        return int(self.cam_lowres.nbytes) + 64


def cam_rgba(
    cam_lowres: np.ndarray, width_px: int, height_px: int, colormap: str = GRADCAM_COLORMAP
) -> np.ndarray:
    """One patch's map as ``(height_px, width_px, 4)`` uint8 RGBA (straight alpha = value)."""
    cam = upsample_cam(cam_lowres, width_px, height_px)
    index = np.rint(cam * 255.0).astype(np.uint8)
    return rgba_from_index(index, index, colormap)


def colour_scale_rgba(
    width_px: int, height_px: int, colormap: str = GRADCAM_COLORMAP
) -> np.ndarray:
    """The Grad-CAM colour scale, low (left, transparent) to high (right), as RGBA."""
    ramp = np.linspace(0.0, 1.0, max(2, width_px), dtype=np.float32)
    index = np.rint(ramp * 255.0).astype(np.uint8)
    row = rgba_from_index(index, index, colormap)
    return np.repeat(row[np.newaxis], max(1, height_px), axis=0)


def cells_in_l0_rect(
    grid: PatchGrid,
    l0_rect: tuple[float, float, float, float],
    wanted: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
) -> list[Cell]:
    """Cells whose footprint meets ``l0_rect``, nearest the rectangle's centre first.

    ``wanted`` is an optional ``bool[rows, cols]`` (e.g. the tissue cells); with
    ``probabilities`` (``float[rows, cols]``) only cells with a value (analysed) are kept,
    looked up for the rectangle's cells only (cheap on a large grid).
    """
    l0_x, l0_y, l0_w, l0_h = l0_rect
    size = float(grid.l0_patch_size)
    col0 = max(0, math.floor(l0_x / size))
    row0 = max(0, math.floor(l0_y / size))
    col1 = min(grid.cols - 1, math.floor((l0_x + l0_w) / size))
    row1 = min(grid.rows - 1, math.floor((l0_y + l0_h) / size))
    if col1 < col0 or row1 < row0:
        return []
    col_grid, row_grid = np.meshgrid(np.arange(col0, col1 + 1), np.arange(row0, row1 + 1))
    cols, rows = col_grid.ravel(), row_grid.ravel()
    if wanted is not None:
        keep = wanted[rows, cols]
        cols, rows = cols[keep], rows[keep]
    if probabilities is not None:
        keep = ~np.isnan(probabilities[rows, cols])
        cols, rows = cols[keep], rows[keep]
    centre_col = (l0_x + l0_w / 2.0) / size - 0.5
    centre_row = (l0_y + l0_h / 2.0) / size - 0.5
    order = np.argsort((cols - centre_col) ** 2 + (rows - centre_row) ** 2, kind="stable")
    return [(int(cols[i]), int(rows[i])) for i in order]


def explain_cells(
    slide: Slide,
    grid: PatchGrid,
    cells: Sequence[Cell],
    explainer: Explainer,
    batch_size: int = EXPLAIN_BATCH,
    cancel: CancelToken | None = None,
) -> Iterator[list[CellCam]]:
    """Grad-CAM of ``cells``, batch by batch in the given order (most wanted first)."""
    for start in range(0, len(cells), batch_size):
        if cancel is not None:
            cancel.raise_if_cancelled()
        chunk = list(cells[start : start + batch_size])
        # within a batch, read neighbours together; the batches keep the caller's priority
        for batch_cells, patches in iter_patch_batches(
            slide, grid, order_for_reading(grid, chunk), len(chunk)
        ):
            results = explainer.compute_batch(patches)
            yield [
                CellCam(cell, r.cam_lowres, r.probability)
                for cell, r in zip(batch_cells, results, strict=True)
            ]


def _blend(canvas: np.ndarray, rgba: np.ndarray, x0: int, y0: int, opacity: float) -> None:
    """Alpha-blend ``rgba`` onto ``canvas`` at (x0, y0), clipped to the canvas."""
    h, w = rgba.shape[:2]
    ch, cw = canvas.shape[:2]
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(cw, x0 + w), min(ch, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    part = rgba[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0].astype(np.float32)
    alpha = part[..., 3:4] / 255.0 * float(opacity)
    target = canvas[cy0:cy1, cx0:cx1].astype(np.float32)
    canvas[cy0:cy1, cx0:cx1] = np.rint(target * (1 - alpha) + part[..., :3] * alpha).astype(
        np.uint8
    )


def footprint_px(
    grid: PatchGrid, cell: Cell, l0_x0: float, l0_y0: float, px_per_l0: float
) -> tuple[int, int, int, int]:
    """A cell's ``grid.l0_rect`` in output pixels, edges rounded so neighbours tile exactly."""
    x, y, w, h = grid.l0_rect(*cell)
    x0 = math.floor((x - l0_x0) * px_per_l0 + 0.5)
    y0 = math.floor((y - l0_y0) * px_per_l0 + 0.5)
    x1 = math.floor((x + w - l0_x0) * px_per_l0 + 0.5)
    y1 = math.floor((y + h - l0_y0) * px_per_l0 + 0.5)
    return x0, y0, max(1, x1 - x0), max(1, y1 - y0)


def render_region(
    slide: Slide,
    grid: PatchGrid,
    l0_rect: tuple[int, int, int, int],
    cams: Mapping[Cell, CellCam],
    *,
    layers: Layers = "gradcam",
    heatmap: Heatmap | None = None,
    gradcam_opacity: float = 0.7,
    heatmap_opacity: float = 0.5,
    max_side_px: int = 2048,
) -> np.ndarray:
    """The slide's ``l0_rect`` with its layers, as ``(H, W, 3)`` uint8 RGB.

    The region is read from the finest level that keeps its longer side at most
    ``max_side_px``; ``heatmap`` fills each analysed cell with its probability's colour;
    ``cams`` paint each explained cell over its exact footprint.
    """
    l0_x, l0_y, l0_w, l0_h = (int(v) for v in l0_rect)
    downsample = max(1.0, max(l0_w, l0_h) / float(max_side_px))
    out_w, out_h = max(1, round(l0_w / downsample)), max(1, round(l0_h / downsample))
    level = slide.best_level_for_downsample(downsample)
    level_ds = float(slide.info.level_downsamples[level])
    region = slide.read_region(
        l0_x, l0_y, level, max(1, round(l0_w / level_ds)), max(1, round(l0_h / level_ds))
    )
    canvas = np.ascontiguousarray(
        cv2.resize(region, (out_w, out_h), interpolation=cv2.INTER_AREA)
        if region.shape[:2] != (out_h, out_w)
        else region,
        dtype=np.uint8,
    ).copy()
    px_per_l0 = out_w / float(l0_w)
    cells = cells_in_l0_rect(grid, (l0_x, l0_y, l0_w, l0_h))
    if layers in ("heatmap", "both") and heatmap is not None:
        for cell in cells:
            p = heatmap.probabilities[cell[1], cell[0]]
            if np.isnan(p):
                continue
            x0, y0, w, h = footprint_px(grid, cell, l0_x, l0_y, px_per_l0)
            block = np.empty((h, w, 4), np.uint8)
            block[..., :3] = colorize(p, HEATMAP_COLORMAP)
            block[..., 3] = 255
            _blend(canvas, block, x0, y0, heatmap_opacity)
    if layers in ("gradcam", "both"):
        for cell in cells:
            found = cams.get(cell)
            if found is None:
                continue
            x0, y0, w, h = footprint_px(grid, cell, l0_x, l0_y, px_per_l0)
            _blend(canvas, cam_rgba(found.cam_lowres, w, h), x0, y0, gradcam_opacity)
    return canvas


def with_colour_scale(image: np.ndarray, caption: str, bar_px: int = 16) -> np.ndarray:
    """``image`` above the Grad-CAM colour scale (over white) and a one-line caption."""
    width = image.shape[1]
    strip = np.full((bar_px + 30, width, 3), 255, np.uint8)
    bar_w = max(2, min(width - 20, 400))
    _blend(strip, colour_scale_rgba(bar_w, bar_px), 10, 4, 1.0)
    cv2.putText(
        strip, caption, (10, bar_px + 22), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA
    )
    return np.concatenate([image, strip], axis=0)


def explain_all(
    slide: Slide, grid: PatchGrid, cells: Iterable[Cell], explainer: Explainer
) -> dict[Cell, CellCam]:
    """Every map of ``cells`` (blocking; the CLI's path)."""
    out: dict[Cell, CellCam] = {}
    for batch in explain_cells(slide, grid, list(cells), explainer):
        out.update((c.cell, c) for c in batch)
    return out
