"""The application's shared state, one QObject that widgets receive and listen to.

Widgets never reach into each other: they read :class:`AppState` and react to its signals
(``_on_<thing>_changed`` handlers). The pure helpers at the bottom (flagged-cell stepping,
formatting) need no Qt and are unit-tested directly.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.patches import Cell
    from idc_viewer.core.slide import Slide
    from idc_viewer.ml.loading import LoadedModel


class AppState(QObject):
    """What is open, which model is in use, the heatmap and how it is shown.

    Signals
    -------
    slide_changed()
        A slide was opened or closed (``slide`` may be None).
    slide_info_changed()
        The open slide's metadata changed (the user set its scale).
    model_changed()
        ``model`` changed.
    heatmap_changed()
        ``heatmap`` was replaced or gained cells (progressive analysis).
    threshold_changed(float)
        The decision threshold in [0, 1].
    map_mode_changed()
        Switched between the context map (the model's decision) and the raw patch map.
    cell_selected(object)
        ``(col, row)`` of the inspected patch, or None.
    """

    slide_changed = Signal()
    slide_info_changed = Signal()
    model_changed = Signal()
    heatmap_changed = Signal()
    threshold_changed = Signal(float)
    map_mode_changed = Signal()
    cell_selected = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.slide: Slide | None = None
        self.fingerprint: str | None = None
        self.model: LoadedModel | None = None
        self.model_path: str | None = None
        self.heatmap: Heatmap | None = None
        #: Which model the heatmap came from (name and hash), shown beside it.
        self.heatmap_source: str = ""
        self.threshold: float = 0.5
        #: True while the threshold is another model's, lent to its stored heatmap on display.
        self.threshold_borrowed: bool = False
        self.selected_cell: Cell | None = None
        #: ``bool[rows, cols]`` of the heatmap's grid: the tissue cells an analysis scores
        #: (None: not known, e.g. no heatmap). Analysed vs this is what "partial" means.
        self.tissue_mask: NDArray[np.bool_] | None = None
        #: Why the open slide may not be H&E (shown on opening), or None.
        self.slide_warning: str | None = None
        #: Show (and flag) the model's context map when it has a context stage; False: each
        #: patch's own CNN probability.
        self.show_context: bool = True
        #: (CNN heatmap, its analysed count, model hash, context) -> decision map
        self._decision_cache: tuple[Heatmap, tuple[object, ...], Heatmap] | None = None

    def set_slide(
        self, slide: Slide | None, fingerprint: str | None = None, warning: str | None = None
    ) -> None:
        old = self.slide
        self.slide, self.fingerprint = slide, fingerprint
        self.heatmap, self.heatmap_source, self.selected_cell = None, "", None
        self.tissue_mask, self.slide_warning = None, warning
        if old is not None and old is not slide:
            old.close()
        self.restore_model_threshold()
        self.slide_changed.emit()
        self.heatmap_changed.emit()

    def notify_slide_info(self) -> None:
        """Tell the widgets that ``slide.info`` changed (e.g. a scale set by the user)."""
        self.slide_info_changed.emit()

    def set_model(self, model: LoadedModel, path: str | None) -> None:
        self.model, self.model_path = model, path
        self._decision_cache = None
        self.model_changed.emit()
        self.threshold_borrowed = False
        self.set_threshold(self.model_threshold())

    # -- the decision map: the model's context stage over the CNN map --------------------------
    def model_has_context(self) -> bool:
        return self.model is not None and self.model.spec.context is not None

    def context_active(self) -> bool:
        """True when the map shown is the loaded model's context map (its decision)."""
        return self.show_context and self.model_has_context() and self.heatmap_by_loaded_model()

    def model_threshold(self) -> float:
        """The loaded model's own threshold for the map mode shown (context or patch)."""
        if self.model is None:
            return self.threshold
        if self.show_context and self.model_has_context():
            return float(self.model.spec.decision_threshold)
        return float(self.model.spec.threshold)

    def decision_map(self) -> Heatmap | None:
        """The map that is shown and flagged: the context map when active, else the CNN's.

        Derived from the CNN heatmap each time it gains cells (cached per heatmap object,
        analysed count and model), so a stale context map is never shown.
        """
        heatmap = self.heatmap
        if heatmap is None or not self.context_active() or self.model is None:
            return heatmap
        key = (heatmap.analysed_count, self.model.spec.model_hash, self.model.spec.context)
        cache = self._decision_cache
        if cache is None or cache[0] is not heatmap or cache[1] != key:
            from idc_viewer.engine.decision import decision_heatmap

            cache = (heatmap, key, decision_heatmap(heatmap, self.model.spec))
            self._decision_cache = cache
        return cache[2]

    def set_show_context(self, show: bool) -> None:
        """Switch between the context map and the raw patch map (and their thresholds)."""
        if show == self.show_context:
            return
        self.show_context = show
        if not self.threshold_borrowed:
            self.set_threshold(self.model_threshold())
        self.map_mode_changed.emit()
        self.heatmap_changed.emit()

    def set_heatmap(
        self,
        heatmap: Heatmap | None,
        source: str = "",
        tissue_mask: NDArray[np.bool_] | None = None,
    ) -> None:
        """Show ``heatmap``; ``tissue_mask`` (its grid's tissue cells) is kept until replaced."""
        self.heatmap = heatmap
        if source or heatmap is None:
            self.heatmap_source = source
        if heatmap is None:
            self.tissue_mask = None
        elif tissue_mask is not None:
            self.tissue_mask = np.asarray(tissue_mask, dtype=bool)
        if (
            self.tissue_mask is not None
            and heatmap is not None
            and self.tissue_mask.shape != heatmap.probabilities.shape
        ):
            self.tissue_mask = None  # another grid: the old mask says nothing about it
        self.heatmap_changed.emit()

    def coverage(self) -> tuple[int, int] | None:
        """``(analysed, total)`` tissue patches of the heatmap shown; None without a heatmap.

        ``total`` is the tissue cell count when known, else the analysed count (then the
        heatmap cannot be told apart from a complete one).
        """
        if self.heatmap is None:
            return None
        analysed = self.heatmap.analysed_mask
        if self.tissue_mask is None:
            n = int(np.count_nonzero(analysed))
            return n, n
        return (
            int(np.count_nonzero(analysed & self.tissue_mask)),
            int(np.count_nonzero(self.tissue_mask)),
        )

    def pending_mask(self) -> NDArray[np.bool_] | None:
        """Tissue cells not analysed yet (painted apart from "analysed, low"); None if unknown."""
        if self.heatmap is None or self.tissue_mask is None:
            return None
        return self.tissue_mask & ~self.heatmap.analysed_mask

    def heatmap_by_loaded_model(self) -> bool:
        """True when the heatmap shown was made by the loaded model."""
        if self.heatmap is None or self.model is None:
            return False
        spec = self.model.spec
        return self.heatmap_source == model_label(spec.name, spec.model_hash)

    def set_threshold(self, threshold: float) -> None:
        threshold = min(1.0, max(0.0, float(threshold)))
        if not math.isclose(threshold, self.threshold):
            self.threshold = threshold
            self.threshold_changed.emit(threshold)

    def borrow_threshold(self, threshold: float) -> None:
        """Flag a stored heatmap of another model at that model's own threshold."""
        self.set_threshold(threshold)
        self.threshold_borrowed = True

    def restore_model_threshold(self) -> None:
        """Back to the loaded model's threshold after showing another model's heatmap."""
        if self.threshold_borrowed and self.model is not None:
            self.threshold_borrowed = False
            self.set_threshold(self.model_threshold())

    def select_cell(self, cell: Cell | None) -> None:
        self.selected_cell = cell
        self.cell_selected.emit(cell)


def model_label(name: str, model_hash: str) -> str:
    """How a model is named next to a heatmap: ``name (hash[:8])``."""
    return f"{name} ({model_hash[:8]})" if model_hash else name


def flagged_cells(heatmap: Heatmap, threshold: float) -> list[Cell]:
    """Flagged cells, most probable first (ties in reading order)."""
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
