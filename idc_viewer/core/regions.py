"""Suspicious regions: 8-connected groups of flagged patches, ranked, with area and extent."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import Cell

__all__ = ["Region", "find_regions"]


@dataclass(frozen=True)
class Region:
    """A connected group of flagged patches.

    Attributes
    ----------
    region_id : int
        1-based rank by ``max_probability`` (1 = most suspicious).
    n_patches : int
        Number of patches in the region.
    area_mm2 : float
        Tissue area of the patches in mm², footprints clipped at the slide edge.
    l0_x, l0_y, l0_width, l0_height : int
        Bounding box of the patch footprints, level-0 pixels.
    l0_centroid_x, l0_centroid_y : float
        Area-weighted centre of the patch footprints, level-0 pixels.
    max_probability, mean_probability : float
        Over the region's patches.
    cells : tuple of (col, row)
        The region's grid cells, row-major order.
    """

    region_id: int
    n_patches: int
    area_mm2: float
    l0_x: int
    l0_y: int
    l0_width: int
    l0_height: int
    l0_centroid_x: float
    l0_centroid_y: float
    max_probability: float
    mean_probability: float
    cells: tuple[Cell, ...] = field(repr=False)


def find_regions(heatmap: Heatmap, threshold: float) -> list[Region]:
    """Group flagged patches into 8-connected regions.

    Parameters
    ----------
    heatmap : Heatmap
        Probabilities per patch (``NaN`` cells are never flagged).
    threshold : float
        A patch is flagged when its probability is at or above this value.

    Returns
    -------
    list of Region
        Sorted by ``max_probability`` descending (ties: larger region first, then top-left
        first), ``region_id`` 1..n in that order.

    Notes
    -----
    ``area_mm2`` sums each patch's level-0 footprint clipped at the slide edge, so interior
    patches count ``(l0_patch_size * slide_mpp / 1000) ** 2`` each and edge patches less.
    """
    grid = heatmap.grid
    mask = heatmap.flagged_mask(threshold).astype(np.uint8)
    if not mask.any():
        return []
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # Exact (float) footprint per column/row, clipped at the slide edge, in level-0 px.
    size = float(grid.l0_patch_size)
    col_lo = np.arange(grid.cols) * size
    row_lo = np.arange(grid.rows) * size
    col_w = np.clip(np.minimum(col_lo + size, grid.l0_width) - col_lo, 0.0, None)
    row_h = np.clip(np.minimum(row_lo + size, grid.l0_height) - row_lo, 0.0, None)
    xs, ys = grid.l0_edges()
    mm2_per_px = (float(grid.slide_mpp) / 1000.0) ** 2
    probs = heatmap.probabilities

    found = []
    for label in range(1, n_labels):
        x, y, w, h = (int(v) for v in stats[label, :4])
        rows, cols = np.nonzero(labels[y : y + h, x : x + w] == label)
        rows += y
        cols += x
        p = probs[rows, cols].astype(np.float64)
        area_px = col_w[cols] * row_h[rows]
        total = float(area_px.sum())
        cx = col_lo[cols] + col_w[cols] / 2.0
        cy = row_lo[rows] + row_h[rows] / 2.0
        weights = area_px if total > 0 else np.ones_like(area_px)
        found.append(
            Region(
                region_id=0,  # numbered after sorting
                n_patches=len(rows),
                area_mm2=total * mm2_per_px,
                l0_x=int(xs[x]),
                l0_y=int(ys[y]),
                l0_width=int(xs[x + w] - xs[x]),
                l0_height=int(ys[y + h] - ys[y]),
                l0_centroid_x=float(np.average(cx, weights=weights)),
                l0_centroid_y=float(np.average(cy, weights=weights)),
                max_probability=float(p.max()),
                mean_probability=float(p.mean()),
                cells=tuple(zip(cols.tolist(), rows.tolist(), strict=True)),
            )
        )
    found.sort(key=lambda r: (-r.max_probability, -r.n_patches, r.l0_y, r.l0_x))
    return [dataclasses.replace(r, region_id=i) for i, r in enumerate(found, start=1)]
