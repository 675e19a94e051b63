"""The engine's events: frozen values with read-only copies, folded into a heatmap."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from idc_viewer.core.jobs import Progress
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import make_grid
from idc_viewer.core.tissue import TissueMap
from idc_viewer.engine.events import (
    Batch,
    Finished,
    HeatmapBuilder,
    NoTissue,
    ScoredCells,
    Started,
    fold,
    frozen_array,
    frozen_tissue,
)


def grid():
    return make_grid(ArraySlide([np.zeros((200, 300, 3), np.uint8)], mpp=4.0).info)


def test_frozen_array_copies_and_locks():
    source = np.arange(4, dtype=np.float64)
    frozen = frozen_array(source, np.float32)
    source[0] = 9
    assert frozen.dtype == np.float32 and frozen[0] == 0 and not frozen.flags.writeable


def test_scored_cells_and_a_frozen_tissue_map():
    cells = ScoredCells.of([1, 2], [0, 3], [0.25, 0.75])
    assert len(cells) == 2 and cells.cols.tolist() == [1, 2] and cells.rows.tolist() == [0, 3]
    assert len(ScoredCells.none()) == 0
    mask = np.ones((4, 6), bool)
    tissue = frozen_tissue(TissueMap(mask, 1.0, cell_fraction=np.ones((4, 6), np.float32)))
    mask[0, 0] = False
    assert tissue.mask[0, 0] and not tissue.mask.flags.writeable
    assert tissue.cell_fraction is not None and not tissue.cell_fraction.flags.writeable


def test_the_builder_folds_a_run_in_order():
    g = grid()
    tissue = frozen_tissue(TissueMap(np.ones((g.rows, g.cols), bool), 1.0))
    resumed = ScoredCells.of([0], [0], [0.1])
    more = ScoredCells.of([1, 2], [0, 0], [0.2, 0.3])
    events = [
        Started(g, tissue, resumed, Progress(1, 3)),
        Batch(more.cells, more.probabilities, Progress(3, 3)),
        Finished(True, Progress(3, 3)),
    ]
    built = fold(events)
    assert built.heatmap is not None and built.grid is g and built.tissue is tissue
    assert built.heatmap.analysed_count == 3 and built.resumed_count == 1
    np.testing.assert_allclose(built.heatmap.probabilities[0, :3], [0.1, 0.2, 0.3])
    assert built.complete is True and built.ended and built.progress == Progress(3, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        events[0].grid = None  # type: ignore[misc]


def test_no_tissue_and_a_batch_out_of_order():
    built = HeatmapBuilder()
    assert built.apply(NoTissue("fluorescence")) is None
    assert built.ended and built.warning == "fluorescence" and built.heatmap is None
    batch = ScoredCells.of([0], [0], [0.5])
    with pytest.raises(ValueError, match="before"):
        HeatmapBuilder().apply(Batch(batch.cells, batch.probabilities, Progress(1, 1)))
    cancelled = fold([Finished(False, Progress(0, 5))])
    assert cancelled.complete is False and cancelled.ended
