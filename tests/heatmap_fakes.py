"""Plain grids (``plain_grid``, ``grid_for``) and heatmaps from ASCII art (``heatmap_from``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import PatchGrid


def plain_grid(
    size: float,
    cols: int,
    rows: int,
    *,
    width: int | None = None,
    height: int | None = None,
    model_mpp: float = 4.0,
    slide_mpp: float | None = None,
) -> PatchGrid:
    """A level-0 grid of ``cols x rows`` patches of ``size`` level-0 px (50 model px each).

    The slide is ``width x height`` px (by default the grid's own extent) at ``slide_mpp``
    µm/px (by default the one at which ``size`` px cover 50 px of ``model_mpp`` µm/px).
    """
    return PatchGrid(
        l0_patch_size=size,
        cols=cols,
        rows=rows,
        patch_px=50,
        model_mpp=model_mpp,
        slide_mpp=model_mpp * 50 / size if slide_mpp is None else slide_mpp,
        read_level=0,
        l0_width=int(cols * size) if width is None else width,
        l0_height=int(rows * size) if height is None else height,
    )


def grid_for(cols: int, rows: int, size: float = 100.0, mpp: float = 2.0, edge: float = 0.0):
    """A grid of ``cols x rows`` patches of ``size`` level-0 px; ``edge`` trims the last ones."""
    return plain_grid(
        size,
        cols,
        rows,
        width=int(cols * size - edge),
        height=int(rows * size - edge),
        model_mpp=size * mpp / 50,
        slide_mpp=mpp,
    )


def heatmap_from(rows: list[str], size: float = 100.0, mpp: float = 2.0) -> Heatmap:
    """Build a heatmap from ASCII art: '.' NaN, digits 0-9 -> 0.0..0.9, '#' -> 1.0."""
    values = {".": np.nan, "#": 1.0, **{str(d): d / 10 for d in range(10)}}
    probs = np.array([[values[ch] for ch in line] for line in rows], dtype=np.float32)
    return Heatmap(grid_for(probs.shape[1], probs.shape[0], size, mpp), probs)


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file as lists of strings."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))
