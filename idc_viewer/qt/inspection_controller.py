"""Inspecting patches and regions: the Grad-CAM dock, N / P stepping, the outlines on the slide.

:class:`InspectionController` has the engine explain a clicked (or stepped-to) patch in a
worker (:func:`~idc_viewer.engine.explain.explain_cell`, the CLI's Grad-CAM pipeline) and shows
the :class:`~idc_viewer.engine.explain.Explanation` in the
:class:`~idc_viewer.qt.panels.gradcam_dock.GradCamPanel`; it outlines the inspected
patch and the selected region in the :class:`~idc_viewer.qt.viewer.marks_layer.MarksLayer` and
zooms the view to them. A result of another patch, slide or model is never shown.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QDockWidget

from idc_viewer.core.errors import one_line
from idc_viewer.core.flagged import flagged_cells, step_cell
from idc_viewer.core.regions import Region
from idc_viewer.engine.explain import Explanation
from idc_viewer.ml.gradcam import SharedGradCam
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.panels.gradcam_dock import GradCamPanel
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer import SlideView
from idc_viewer.qt.viewer.marks_layer import MarksLayer
from idc_viewer.qt.workers import CallWorker, WorkerPool

log = logging.getLogger(__name__)
#: N / P zoom in until the inspected patch is this many screen pixels (the Grad-CAM layer's
#: threshold is 64), when it would be smaller.
INSPECT_PATCH_VIEW_PX = 96.0


class InspectionController(QObject):
    """The Grad-CAM inspector of one window and the outlines of what is inspected.

    Parameters
    ----------
    state : AppState
    view : SlideView
        Centred and zoomed on what is inspected.
    marks : MarksLayer
        Outlines of the inspected patch and the selected region.
    panel : GradCamPanel
    dock : QDockWidget
        Holds ``panel``; shown when a patch is inspected.
    pool : WorkerPool
        Runs the Grad-CAM computations.
    messages : Messenger
    explain_fn : callable
        ``explain_fn(slide, grid, cell, explainer, decision=...)`` -> :class:`Explanation`
        (in a worker): :func:`~idc_viewer.engine.explain.explain_cell` in the app.
    explainer_factory : callable
        ``explainer_factory(model)`` builds a model's Grad-CAM.
    parent : QObject, optional

    Signals
    -------
    gradcam_shown(object)
        The :class:`Explanation` now in the dock.
    """

    gradcam_shown = Signal(object)

    def __init__(
        self,
        state: AppState,
        view: SlideView,
        marks: MarksLayer,
        panel: GradCamPanel,
        dock: QDockWidget,
        pool: WorkerPool,
        messages: Messenger,
        explain_fn: Callable[..., Explanation],
        explainer_factory: Callable[[Any], Any],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.state, self.view, self.marks = state, view, marks
        self.panel, self.dock = panel, dock
        self._pool, self._messages = pool, messages
        self._explain_fn = explain_fn
        self._explainer_factory = explainer_factory
        self._cam: SharedGradCam | None = None  # the Grad-CAM of state.model
        self._request = 0
        state.slide_changed.connect(self._on_slide_changed)
        state.cell_selected.connect(self._on_cell_selected)
        view.patch_clicked.connect(self._on_patch_clicked)
        panel.step_requested.connect(self.step_flagged)

    # -- model --------------------------------------------------------------------------------
    def switch_model(self, model: Any) -> None:
        """Forget the old model's Grad-CAM (and one in flight); warm ``model``'s up."""
        self._cam = None
        self._request += 1  # a Grad-CAM in flight is the old model's
        self._warm(model)
        self._forget_inspected()
        self.marks.region_l0 = None  # the old model's region and patch are no longer on screen
        self.state.select_cell(None)

    def _warm(self, model: Any) -> None:
        """Build the inspector's Grad-CAM now, off the GUI thread: the first click is instant."""
        cam = SharedGradCam(model, self._explainer_factory)
        self._cam = cam
        side = model.spec.patch_size_px
        worker = CallWorker(
            "gradcam-warm", lambda: cam.compute_batch(np.zeros((0, side, side, 3), np.uint8))
        )
        worker.failed.connect(lambda exc: log.warning("Grad-CAM warm-up: %s", one_line(exc)))
        self._pool.start(worker)

    # -- inspecting ---------------------------------------------------------------------------
    def inspect_cell(self, cell: tuple[int, int]) -> CallWorker | None:
        """Show the Grad-CAM dock for ``cell``; the computation runs in a worker."""
        slide, model, grid = self.state.slide, self.state.model, self.state.current_grid()
        if slide is None or grid is None:
            return None
        if model is None:
            self._messages.show_error("Grad-CAM", "Load a model to explain a patch.")
            return None
        self.state.select_cell(cell)
        self._request += 1
        request = self._request
        self.dock.show()
        self.panel.show_loading(cell)
        if self._cam is None or self._cam.model is not model:
            self._cam = SharedGradCam(model, self._explainer_factory)
        fn, explainer = self._explain_fn, self._cam
        # the context map's value is shown beside the patch's own score (a map never mutated)
        decision = self.state.decision_map() if self.state.context_active() else None
        worker = CallWorker("gradcam", lambda: fn(slide, grid, cell, explainer, decision=decision))
        worker.finished.connect(lambda view: self._on_ready(request, view))
        worker.failed.connect(lambda exc: self._on_failed(request, exc))
        self._pool.start(worker)
        return worker

    def step_flagged(self, step: int) -> None:
        """Inspect the next (+1) or previous (-1) flagged patch, most probable first."""
        heatmap = self.state.decision_map()
        if heatmap is None:
            return
        cell = step_cell(
            flagged_cells(heatmap, self.state.threshold), self.state.selected_cell, step
        )
        if cell is None:
            self._messages.status("No patch at or above the threshold.", 5000)
            return
        x, y, w, h = heatmap.grid.l0_rect(*cell)
        self.view.center_on_l0(x + w / 2, y + h / 2)
        patch_view_px = self.view.view_px_per_l0() * max(w, h)
        if patch_view_px < INSPECT_PATCH_VIEW_PX:  # too small to see: zoom in on it
            self.view.zoom_by(INSPECT_PATCH_VIEW_PX / max(patch_view_px, 1e-9))
        self.inspect_cell(cell)

    def show_region(self, region: Region) -> None:
        """Outline ``region`` and zoom to it with a margin."""
        self.marks.region_l0 = (region.l0_x, region.l0_y, region.l0_width, region.l0_height)
        margin = 0.25 * max(region.l0_width, region.l0_height)
        self.view.zoom_to_l0_rect(
            region.l0_x - margin,
            region.l0_y - margin,
            region.l0_width + 2 * margin,
            region.l0_height + 2 * margin,
        )

    # -- reacting -----------------------------------------------------------------------------
    def _forget_inspected(self) -> None:
        self.panel.clear()
        self.dock.hide()

    def _on_slide_changed(self) -> None:
        self.marks.patch_l0 = self.marks.region_l0 = None
        self._forget_inspected()

    def _on_patch_clicked(self, l0_x: float, l0_y: float) -> None:
        grid = self.state.current_grid()
        cell = grid.cell_at(l0_x, l0_y) if grid is not None else None
        if cell is not None:
            self.inspect_cell(cell)

    def _on_cell_selected(self, cell: tuple[int, int] | None) -> None:
        grid = self.state.current_grid()
        self.marks.patch_l0 = grid.l0_rect(*cell) if cell is not None and grid else None
        self.view.update()

    def _on_ready(self, request: int, view: Explanation) -> None:
        if request != self._request:
            return  # the user clicked another patch meanwhile
        self.panel.show_view(view)
        self.gradcam_shown.emit(view)

    def _on_failed(self, request: int, exc: Exception) -> None:
        if request == self._request:
            message = one_line(exc)
            self.panel.show_error(message)
            self._messages.show_error("Grad-CAM failed", message)
