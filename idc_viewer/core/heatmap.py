"""The IDC heatmap as data: one probability per patch of a :class:`PatchGrid`.

The heatmap only holds numbers; painting it is the viewer's job. The one painting helper
kept here, :func:`probabilities_to_rgba`, is a pure function from probabilities to RGBA
pixels so that the GUI overlay and the CLI's figures colour a heatmap identically.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid

#: Colormaps offered by :func:`colormap_lut`, mapped to their OpenCV constants.
COLORMAPS: dict[str, int] = {
    "inferno": cv2.COLORMAP_INFERNO,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "jet": cv2.COLORMAP_JET,
}


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Probabilities of IDC for every patch of a grid.

    Parameters
    ----------
    grid : PatchGrid
        Geometry of the patches (level-0 footprint of each cell).
    probabilities : numpy.ndarray
        ``float32`` array of shape ``(grid.rows, grid.cols)``; ``NaN`` marks a cell that was
        not analysed (background or not reached yet). Other dtypes are converted.

    Notes
    -----
    The dataclass is frozen but the array is not: :meth:`set_cells` fills it in place while
    an analysis runs, so a view holding the heatmap sees new batches without a copy.
    """

    grid: PatchGrid
    probabilities: NDArray[np.float32]

    def __post_init__(self) -> None:
        probs = np.asarray(self.probabilities, dtype=np.float32)
        expected = (int(self.grid.rows), int(self.grid.cols))
        if probs.shape != expected:
            raise ValueError(f"probabilities have shape {probs.shape}, grid needs {expected}")
        object.__setattr__(self, "probabilities", probs)

    @classmethod
    def empty(cls, grid: PatchGrid) -> Heatmap:
        """Return a heatmap of ``grid`` with no cell analysed (all ``NaN``)."""
        return cls(grid, np.full((grid.rows, grid.cols), np.nan, dtype=np.float32))

    @property
    def analysed_mask(self) -> NDArray[np.bool_]:
        """``bool[rows, cols]``: True where a probability is known."""
        return ~np.isnan(self.probabilities)

    @property
    def analysed_count(self) -> int:
        """Number of cells with a probability."""
        return int(np.count_nonzero(self.analysed_mask))

    def flagged_mask(self, threshold: float) -> NDArray[np.bool_]:
        """Return ``bool[rows, cols]``, True where probability is at or above ``threshold``.

        Parameters
        ----------
        threshold : float
            Decision threshold in [0, 1]; a cell equal to it counts as flagged.
        """
        with np.errstate(invalid="ignore"):
            # NaN compares False, so unanalysed cells are never flagged.
            return np.asarray(self.probabilities >= np.float32(threshold))

    def flagged_count(self, threshold: float) -> int:
        """Number of cells at or above ``threshold``."""
        return int(np.count_nonzero(self.flagged_mask(threshold)))

    def probability_at(self, col: int, row: int) -> float | None:
        """Probability of one cell, or None if it was not analysed or lies outside the grid."""
        if not (0 <= col < self.grid.cols and 0 <= row < self.grid.rows):
            return None
        value = float(self.probabilities[row, col])
        return None if np.isnan(value) else value

    def set_cells(
        self,
        cells: Sequence[tuple[int, int]] | NDArray[np.integer],
        probabilities: ArrayLike,
    ) -> None:
        """Write probabilities for ``cells`` (``(col, row)`` pairs) in place."""
        cols, rows = cells_to_arrays(cells)
        self.probabilities[rows, cols] = np.asarray(probabilities, dtype=np.float32).reshape(-1)

    def copy(self) -> Heatmap:
        """Return a heatmap with its own copy of the probabilities."""
        return Heatmap(self.grid, self.probabilities.copy())

    def to_rgba(self, colormap: str = "inferno", opacity: float = 1.0) -> NDArray[np.uint8]:
        """Colour the heatmap; see :func:`probabilities_to_rgba`."""
        return probabilities_to_rgba(self.probabilities, colormap, opacity)


def cells_to_arrays(
    cells: Iterable[tuple[int, int]] | NDArray[np.integer],
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Split ``(col, row)`` pairs into a ``cols`` and a ``rows`` integer array."""
    arr = np.asarray(cells if isinstance(cells, np.ndarray) else list(cells), dtype=np.intp)
    if arr.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"cells must be (col, row) pairs, got array of shape {arr.shape}")
    return arr[:, 0].copy(), arr[:, 1].copy()


@cache
def colormap_lut(name: str = "inferno") -> NDArray[np.uint8]:
    """Return the 256-entry RGB table of a perceptual colormap.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAPS` (``"inferno"`` by default, perceptually uniform and readable
        in greyscale; ``"turbo"`` for more contrast).

    Returns
    -------
    numpy.ndarray
        Read-only ``uint8`` array of shape ``(256, 3)``, RGB order.
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {sorted(COLORMAPS)}")
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    # OpenCV returns BGR; flip once here so every caller gets RGB.
    lut = np.ascontiguousarray(cv2.applyColorMap(ramp, COLORMAPS[name])[:, 0, ::-1], np.uint8)
    lut.setflags(write=False)
    return lut


def probabilities_to_rgba(
    probabilities: ArrayLike,
    colormap: str = "inferno",
    opacity: float = 1.0,
    threshold: float | None = None,
) -> NDArray[np.uint8]:
    """Colour a probability grid, leaving unanalysed cells transparent.

    Parameters
    ----------
    probabilities : array_like
        ``float[rows, cols]`` in [0, 1]; ``NaN`` means no value.
    colormap : str
        Name accepted by :func:`colormap_lut`.
    opacity : float
        Alpha in [0, 1] given to every cell that has a value.
    threshold : float, optional
        When given, cells below it are transparent too (show only flagged cells).

    Returns
    -------
    numpy.ndarray
        ``uint8[rows, cols, 4]`` RGBA, one pixel per cell.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    valid = ~np.isnan(probs)
    if threshold is not None:
        with np.errstate(invalid="ignore"):
            valid &= probs >= np.float32(threshold)
    # Round to the nearest of 256 entries; NaN becomes 0 and is hidden by alpha below.
    index = np.rint(np.clip(np.nan_to_num(probs, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)
    rgba = np.zeros((*probs.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colormap_lut(colormap)[index]
    alpha = round(float(np.clip(opacity, 0.0, 1.0)) * 255)
    rgba[..., 3] = np.where(valid, alpha, 0).astype(np.uint8)
    return rgba


#: Below this probability the viewer's overlay is transparent: benign tissue stays readable.
OVERLAY_FLOOR = 0.2
#: The overlay's colours start this far up the colormap (its dark end would dim the tissue).
OVERLAY_COLOR_START = 0.25


def overlay_rgba(
    probabilities: ArrayLike,
    colormap: str = "inferno",
    floor: float = OVERLAY_FLOOR,
) -> NDArray[np.uint8]:
    """Colour a probability grid for painting over the slide.

    Transparent below ``floor`` and where there is no value; above it, alpha rises as the square
    root of ``(p - floor) / (1 - floor)`` (faint just above the floor, solid for likely IDC)
    and the colour runs over the upper part of ``colormap`` (from
    :data:`OVERLAY_COLOR_START` at the floor to its end at p = 1).

    Returns
    -------
    numpy.ndarray
        ``uint8[rows, cols, 4]`` RGBA, one pixel per cell.
    """
    probs = np.asarray(probabilities, dtype=np.float32)
    valid = ~np.isnan(probs)
    span = max(1e-6, 1.0 - float(floor))
    t = np.clip((np.nan_to_num(probs, nan=0.0) - np.float32(floor)) / np.float32(span), 0.0, 1.0)
    index = np.rint((OVERLAY_COLOR_START + (1.0 - OVERLAY_COLOR_START) * t) * 255).astype(np.uint8)
    rgba = np.zeros((*probs.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colormap_lut(colormap)[index]
    rgba[..., 3] = np.where(valid, np.rint(np.sqrt(t) * 255), 0).astype(np.uint8)
    return rgba
