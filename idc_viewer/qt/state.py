"""The application's shared state, one QObject that widgets receive and listen to.

Widgets never reach into each other: they read :class:`AppState` and react to its signals
(``_on_<thing>_changed`` handlers). The formatting helpers at the bottom need no Qt.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.patches import Cell, PatchGrid
    from idc_viewer.core.slide import Slide
    from idc_viewer.engine.provenance import ModelRef
    from idc_viewer.engine.session import SlideSession
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
        #: The open slide as the engine serves it (fingerprint, stored analyses, export).
        self.session: SlideSession | None = None
        self.model: LoadedModel | None = None
        self.model_path: str | None = None
        self.heatmap: Heatmap | None = None
        #: The model the heatmap came from (name, hash, own threshold): shown and exported.
        self.heatmap_model: ModelRef | None = None
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

    @property
    def slide(self) -> Slide | None:
        """The open slide (None: none)."""
        return self.session.slide if self.session is not None else None

    @property
    def fingerprint(self) -> str | None:
        """The open slide's content id (computed once by its session)."""
        return self.session.fingerprint if self.session is not None else None

    def set_session(self, session: SlideSession | None, warning: str | None = None) -> None:
        """Open ``session``'s slide (None: none); closes the one before, forgets its heatmap."""
        old = self.session
        self.session = session
        self.heatmap, self.heatmap_model, self.selected_cell = None, None, None
        self.tissue_mask, self.slide_warning = None, warning
        if old is not None and (session is None or old.slide is not session.slide):
            old.close()
        self.restore_model_threshold()
        self.slide_changed.emit()
        self.heatmap_changed.emit()

    def notify_slide_info(self) -> None:
        """Tell the widgets that ``slide.info`` changed (e.g. a scale set by the user)."""
        self.slide_info_changed.emit()

    def set_model(self, model: LoadedModel, path: str | None) -> None:
        """Use ``model`` (loaded from ``path``) and its own threshold."""
        self.model, self.model_path = model, path
        self._decision_cache = None
        self.model_changed.emit()
        self.threshold_borrowed = False
        self.set_threshold(self.model_threshold())

    # -- the decision map: the model's context stage over the CNN map --------------------------
    def model_has_context(self) -> bool:
        """The loaded model has a context stage."""
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

    @property
    def heatmap_source(self) -> str:
        """The label (``name (hash[:8])``) of the model the heatmap came from; "" if unknown."""
        return self.heatmap_model.label if self.heatmap_model is not None else ""

    def set_heatmap(
        self,
        heatmap: Heatmap | None,
        made_by: ModelRef | None = None,
        tissue_mask: NDArray[np.bool_] | None = None,
    ) -> None:
        """Show ``heatmap`` made by ``made_by`` (kept, like ``tissue_mask``, until replaced)."""
        self.heatmap = heatmap
        if made_by is not None or heatmap is None:
            self.heatmap_model = made_by
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
        if self.heatmap is None or self.model is None or self.heatmap_model is None:
            return False
        return self.heatmap_model.model_hash == self.model.spec.model_hash

    def current_grid(self) -> PatchGrid | None:
        """The grid of the heatmap shown, else the loaded model's grid over the slide."""
        if self.heatmap is not None:
            return self.heatmap.grid
        session, model = self.session, self.model
        if session is None or model is None or session.info.mpp is None:
            return None
        return session.grid(model.spec)

    def set_threshold(self, threshold: float) -> None:
        """The decision threshold, clamped to [0, 1]."""
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
        """Inspect ``(col, row)`` (None: nothing)."""
        self.selected_cell = cell
        self.cell_selected.emit(cell)
