"""The order in which flagged patches are stepped through (N / P in the GUI)."""

from __future__ import annotations

import numpy as np

from idc_viewer.core.flagged import flagged_cells, step_cell
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import make_grid


def test_flagged_cells_most_probable_first_and_stepping() -> None:
    slide = ArraySlide([np.full((800, 1200, 3), 200, np.uint8)], mpp=4.0, path="memory")
    heatmap = Heatmap.empty(make_grid(slide.info))
    heatmap.set_cells([(1, 1), (2, 2), (3, 3)], [0.6, 0.9, 0.3])
    cells = flagged_cells(heatmap, 0.5)
    assert cells == [(2, 2), (1, 1)]
    assert step_cell(cells, None, 1) == (2, 2)
    assert step_cell(cells, (2, 2), 1) == (1, 1)
    assert step_cell(cells, (1, 1), 1) == (2, 2)  # wraps
    assert step_cell(cells, (2, 2), -1) == (1, 1)
    assert step_cell(cells, None, -1) == (1, 1)
    assert step_cell([], None, 1) is None


def test_ties_are_in_reading_order() -> None:
    slide = ArraySlide([np.full((800, 1200, 3), 200, np.uint8)], mpp=4.0, path="memory")
    heatmap = Heatmap.empty(make_grid(slide.info))
    heatmap.set_cells([(3, 1), (1, 2), (2, 1)], [0.7, 0.7, 0.7])
    assert flagged_cells(heatmap, 0.5) == [(2, 1), (3, 1), (1, 2)]
