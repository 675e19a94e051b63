"""What an analysis run reports: immutable events, and folding them into a heatmap.

:func:`idc_viewer.engine.analysis.analyze` yields :data:`AnalysisEvent` values: one
:class:`Started` (the grid, the tissue map and what was already stored), then one
:class:`Batch` per CNN call, then one :class:`Finished`; or a single :class:`NoTissue` when
the slide does not look like H&E tissue. Every event is frozen and its arrays are read-only
copies, so an event can cross threads: no array is shared between the engine and a consumer.

A consumer that wants the heatmap so far folds the events with its own
:class:`HeatmapBuilder` (the CLI, the cohort task, the benchmarks and the GUI all do).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.jobs import Progress

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.tissue import TissueMap


def frozen_array(values: ArrayLike, dtype: type) -> NDArray[np.generic]:
    """A read-only copy of ``values`` as ``dtype`` (never a view of the caller's array)."""
    array: NDArray[np.generic] = np.array(values, dtype=dtype, copy=True)
    array.flags.writeable = False
    return array


def frozen_tissue(tissue: TissueMap) -> TissueMap:
    """A copy of ``tissue`` whose arrays are read-only copies."""
    fraction = tissue.cell_fraction
    return replace(
        tissue,
        mask=frozen_array(tissue.mask, bool),
        cell_fraction=None if fraction is None else frozen_array(fraction, np.float32),
    )


class _CellColumns:
    """Columns, rows and count of an int32 ``(n, 2)`` ``cells`` array of (col, row)."""

    cells: NDArray[np.int32]

    @property
    def cols(self) -> NDArray[np.int32]:
        """The cells' columns (a read-only view)."""
        return self.cells[:, 0]

    @property
    def rows(self) -> NDArray[np.int32]:
        """The cells' rows (a read-only view)."""
        return self.cells[:, 1]

    def __len__(self) -> int:
        """The number of cells."""
        return int(self.cells.shape[0])


@dataclass(frozen=True)
class ScoredCells(_CellColumns):
    """Cells with a probability each: ``cells`` int32 ``(n, 2)`` of (col, row), read-only.

    ``probabilities`` is float32 ``(n,)``, the CNN's P(IDC) of each cell, read-only.
    """

    cells: NDArray[np.int32] = field(repr=False)
    probabilities: NDArray[np.float32] = field(repr=False)

    @classmethod
    def of(cls, cols: ArrayLike, rows: ArrayLike, probabilities: ArrayLike) -> ScoredCells:
        """Copy columns, rows and probabilities into a frozen value."""
        cells = np.column_stack(
            [np.asarray(cols, np.int32).reshape(-1), np.asarray(rows, np.int32).reshape(-1)]
        )
        return cls(
            frozen_array(cells.reshape(-1, 2), np.int32),  # type: ignore[arg-type]
            frozen_array(np.asarray(probabilities).reshape(-1), np.float32),  # type: ignore[arg-type]
        )

    @classmethod
    def none(cls) -> ScoredCells:
        """No cells."""
        return cls.of([], [], [])


@dataclass(frozen=True)
class Started:
    """The run has its grid and tissue map; ``resumed`` holds the cells already stored.

    ``progress.done`` counts the resumed tissue cells, ``progress.total`` all tissue cells.
    """

    grid: PatchGrid
    tissue: TissueMap = field(repr=False)
    resumed: ScoredCells
    progress: Progress


@dataclass(frozen=True)
class Batch(_CellColumns):
    """One CNN call's cells (int32 ``(n, 2)`` of (col, row)) and their probabilities."""

    cells: NDArray[np.int32] = field(repr=False)
    probabilities: NDArray[np.float32] = field(repr=False)
    progress: Progress


@dataclass(frozen=True)
class NoTissue:
    """The slide does not look like H&E tissue: nothing was analysed, and the run ended."""

    warning: str


@dataclass(frozen=True)
class Finished:
    """The run ended: ``complete`` True when every tissue cell has a probability.

    False means it stopped on the cancel token; what was done is kept in the store.
    """

    complete: bool
    progress: Progress


AnalysisEvent = Started | Batch | NoTissue | Finished


class HeatmapBuilder:
    """Folds a run's events into a heatmap the consumer owns (fill it in its own thread).

    After :meth:`apply` of a :class:`Started`, :attr:`heatmap` holds the resumed cells; each
    :class:`Batch` adds its cells. The builder's array is its own: snapshot it with
    ``builder.heatmap.copy()`` before handing it to another thread.
    """

    def __init__(self) -> None:
        self.heatmap: Heatmap | None = None
        self.tissue: TissueMap | None = None
        self.progress: Progress | None = None
        self.resumed_count = 0
        self.warning: str | None = None
        #: None while running; True or False once :class:`Finished` arrived.
        self.complete: bool | None = None

    @property
    def grid(self) -> PatchGrid | None:
        """The run's grid (None before :class:`Started`)."""
        return None if self.heatmap is None else self.heatmap.grid

    @property
    def ended(self) -> bool:
        """True after :class:`Finished` or :class:`NoTissue`."""
        return self.complete is not None or self.warning is not None

    def apply(self, event: AnalysisEvent) -> Heatmap | None:
        """Fold ``event`` in; return the heatmap so far (None before :class:`Started`)."""
        if isinstance(event, Started):
            self.heatmap = Heatmap.empty(event.grid)
            self.tissue = event.tissue
            self.resumed_count = len(event.resumed)
            self._fill(event.resumed.cols, event.resumed.rows, event.resumed.probabilities)
            self.progress = event.progress
        elif isinstance(event, Batch):
            if self.heatmap is None:
                raise ValueError("a Batch arrived before the run's Started event")
            self._fill(event.cols, event.rows, event.probabilities)
            self.progress = event.progress
        elif isinstance(event, Finished):
            self.complete = event.complete
            self.progress = event.progress
        elif isinstance(event, NoTissue):
            self.warning = event.warning
        return self.heatmap

    def _fill(self, cols: NDArray[np.int32], rows: NDArray[np.int32], probs: ArrayLike) -> None:
        assert self.heatmap is not None
        self.heatmap.probabilities[rows, cols] = probs


def fold(events: Iterable[AnalysisEvent]) -> HeatmapBuilder:
    """Apply every event of ``events`` to a new :class:`HeatmapBuilder` and return it."""
    builder = HeatmapBuilder()
    for event in events:
        builder.apply(event)
    return builder
