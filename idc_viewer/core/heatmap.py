"""The IDC heatmap as data: one probability per patch of a :class:`PatchGrid`.

The heatmap only holds numbers; :mod:`idc_viewer.core.colormap` turns them into colours, the
same for the GUI overlay and the CLI's figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idc_viewer.core.colormap import probabilities_to_rgba

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid


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
        """Colour the heatmap; see :func:`idc_viewer.core.colormap.probabilities_to_rgba`."""
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
