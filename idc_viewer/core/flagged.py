"""The flagged patches of a heatmap in the order a user steps through them (Qt-free).

The GUI's *Next/Previous flagged* (N / P) and any headless listing share this order: most
probable first, ties in reading order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from idc_viewer.core.patches import Cell

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap


def flagged_cells(heatmap: Heatmap, threshold: float) -> list[Cell]:
    """Flagged cells ``(col, row)``, most probable first (ties in reading order)."""
    probs = heatmap.probabilities
    rows, cols = np.nonzero(heatmap.flagged_mask(threshold))
    order = np.lexsort((cols, rows, -probs[rows, cols]))
    return [(int(cols[i]), int(rows[i])) for i in order]


def step_cell(cells: list[Cell], current: Cell | None, step: int) -> Cell | None:
    """The cell ``step`` places after ``current`` in ``cells`` (wrapping); first if not in it."""
    if not cells:
        return None
    if current not in cells:
        return cells[0] if step >= 0 else cells[-1]
    return cells[(cells.index(current) + step) % len(cells)]
