"""Heatmaps on plain grids for the export tests: ``grid_for`` and ``heatmap_from`` (ASCII art)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import PatchGrid


def grid_for(cols: int, rows: int, size: float = 100.0, mpp: float = 2.0, edge: float = 0.0):
    """A grid of ``cols x rows`` patches of ``size`` level-0 px; ``edge`` trims the last ones."""
    return PatchGrid(
        l0_patch_size=size,
        cols=cols,
        rows=rows,
        patch_px=50,
        model_mpp=size * mpp / 50,
        slide_mpp=mpp,
        read_level=0,
        l0_width=int(cols * size - edge),
        l0_height=int(rows * size - edge),
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
