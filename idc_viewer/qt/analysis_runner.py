"""Running the engine's analysis from the window, and the logic around stored results.

:class:`AnalysisRunner` starts :func:`idc_viewer.engine.analysis.analyze` in a
:class:`~idc_viewer.qt.workers.GeneratorWorker`, paints each batch into a GUI-side heatmap
(folding the engine's immutable events into its own heatmap in the GUI thread), and reports
progress. :func:`export_results` is a plain function the tests call directly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from idc_viewer.core.formatting import format_count, patches
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import PatchGrid, make_grid
from idc_viewer.engine.events import Batch, HeatmapBuilder, NoTissue, Started
from idc_viewer.qt.state import AppState, model_label
from idc_viewer.qt.workers import GeneratorWorker, WorkerPool

if TYPE_CHECKING:
    from idc_viewer.engine.events import AnalysisEvent
    from idc_viewer.ml.spec import ModelSpec
    from idc_viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)

#: Batches arriving faster than this are coalesced into one repaint of the heatmap and
#: progress (keeps the GUI thread free: at most ~6 overlay rebuilds and repaints per second).
UPDATE_INTERVAL_MS = 150


def export_results(state: AppState, folder: Path) -> list[Path]:
    """Write the engine's export files of the current heatmap into ``folder``."""
    from idc_viewer.engine.provenance import ModelRef
    from idc_viewer.engine.session import SlideSession

    slide, heatmap, model = state.slide, state.decision_map(), state.model
    if slide is None or heatmap is None or state.heatmap is None:
        raise ValueError("Nothing to export: analyse a slide first.")
    made_by: ModelSpec | ModelRef = ModelRef(state.heatmap_source, "")
    if model is not None and state.heatmap_source.endswith(f"({model.spec.model_hash[:8]})"):
        made_by = model.spec
    # what "probability" (flags, regions) means in these files: the map the user looked at
    decision_map = "context" if state.context_active() else "patch"
    session = SlideSession(slide, None, state.fingerprint)
    written = session.export(
        folder, state.heatmap, state.threshold, made_by, decision=heatmap, decision_map=decision_map
    )
    return list(written.paths)


class AnalysisRunner(QObject):
    """Starts, follows and cancels the analysis of the open slide.

    Signals
    -------
    stopped(str)
        ``"done"``, ``"cancelled"``, ``"failed"`` or ``"warning"`` (no H&E tissue found).
    """

    stopped = Signal(str)

    def __init__(
        self, window: MainWindow, state: AppState, pool: WorkerPool, batch_size: int = 256
    ) -> None:
        super().__init__(window)
        self._window = window
        self._state = state
        self._pool = pool
        self.batch_size = batch_size
        self.worker: GeneratorWorker | None = None
        self._run_model: Any = None  # the model the running analysis scores with
        self._live: Heatmap | None = None  # this thread's own heatmap, folded from events
        self._builder = HeatmapBuilder()
        self._outcome = ""
        self._label = ""
        # Batches applied to ``_live`` but not yet shown (coalesced by ``_flush_timer``).
        self._pending_cells: list[np.ndarray] = []
        self._pending_progress: Any = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(UPDATE_INTERVAL_MS)
        self._flush_timer.timeout.connect(self.flush_updates)

    @property
    def running(self) -> bool:
        return self.worker is not None and self.worker.running

    def current_grid(self) -> PatchGrid | None:
        """The grid of the heatmap shown, else the current model's grid over the slide."""
        if self._state.heatmap is not None:
            return self._state.heatmap.grid
        slide, model = self._state.slide, self._state.model
        if slide is None or model is None or slide.info.mpp is None:
            return None
        return make_grid(slide.info, model.spec.patch_size_px, model.spec.patch_mpp)

    def start(self) -> GeneratorWorker | None:
        """Analyse the open slide with the current model (resuming stored results)."""
        from idc_viewer.engine.analysis import analyze

        window, slide, model = self._window, self._state.slide, self._state.model
        if self.running:
            return self.worker
        if slide is None or model is None:
            window.show_error("Cannot analyse", "Open a slide and load a model first.")
            return None
        warning = self._state.slide_warning
        if warning and not window.confirm("Not H&E?", f"{warning}.\n\nAnalyse anyway?"):
            return None
        if slide.info.mpp is None:
            if not window.ask_scale_for_analysis():
                return None
            slide = self._state.slide
            assert slide is not None
        store, batch_size = window.store, self.batch_size
        fingerprint = self._state.fingerprint if store is not None else None
        worker = GeneratorWorker(
            "analysis",
            lambda token: analyze(slide, model, store, token, batch_size, fingerprint=fingerprint),
            coalesce=True,
        )
        worker.items_ready.connect(self._on_items_ready)
        worker.finished.connect(lambda _last: self._finish("done"))
        worker.cancelled.connect(lambda: self._finish("cancelled"))
        worker.failed.connect(self._on_failed)
        worker.stopped.connect(self._on_stopped)
        self._discard_pending()
        self._state.restore_model_threshold()  # the loaded model's heatmap, its threshold
        self.worker, self._live, self._outcome = worker, None, ""
        self._run_model = model
        self._label = model_label(model.spec.name, model.spec.model_hash)
        window.analysis_panel.set_running(True)
        window.analysis_panel.show_message("Finding tissue…")
        self._pool.start(worker)
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def cancel_and_wait(self, timeout_ms: int = 30_000) -> None:
        """Cancel and wait for the thread (used before switching slides)."""
        worker = self.worker
        if worker is not None and worker.running:
            worker.cancel()
            worker.wait(timeout_ms)

    def _on_items_ready(self) -> None:
        worker = self.sender()
        if worker is not self.worker or not isinstance(worker, GeneratorWorker):
            return  # a late notice from a run that was replaced
        self._apply(worker.take_items())

    @property
    def _run_is_on_screen(self) -> bool:
        """False once another model was loaded: this run's results are then never shown."""
        return self._state.model is self._run_model

    def _apply(self, events: list[AnalysisEvent]) -> None:
        """Apply every event the worker produced since the last call (in order).

        The batches go into the GUI-side heatmap at once (cheap numpy); the state, the overlay
        and the progress bar follow together at the next flush, so the panels agree with each
        other and lag what is stored by at most UPDATE_INTERVAL_MS.
        """
        if not self._run_is_on_screen:
            self._discard_pending()
            return
        window = self._window
        for event in events:
            if isinstance(event, NoTissue):
                self._outcome = "warning"
                window.show_error("No tissue to analyse", event.warning)
                continue
            if isinstance(event, Started):
                self._discard_pending()
                self._builder = HeatmapBuilder()
                self._live = self._builder.apply(event)
                assert self._live is not None
                self._state.set_heatmap(self._live, self._label, event.tissue.mask)
                window.view.set_heatmap(self._state.decision_map())
                window.view.set_pending_mask(self._state.pending_mask())
                window.analysis_panel.show_progress(event.progress)
                continue
            if isinstance(event, Batch) and self._live is not None and len(event):
                self._builder.apply(event)
                self._pending_cells.append(np.asarray(event.cells))
            self._pending_progress = event.progress
        if self._pending_progress is not None and not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush_updates(self) -> None:
        """Show the batches received since the last flush (state, heatmap cells, progress)."""
        self._flush_timer.stop()
        cells, progress = self._pending_cells, self._pending_progress
        self._pending_cells, self._pending_progress = [], None
        live = self._live
        if not self._run_is_on_screen:
            return
        if cells and live is not None and self._state.heatmap is live:
            self._state.set_heatmap(live)
            if self._state.context_active():  # new cells change their neighbours' context
                self._window.view.set_heatmap(self._state.decision_map())
                self._window.view.set_pending_mask(self._state.pending_mask())
            else:
                self._window.view.update_heatmap_cells(np.concatenate(cells))  # recolours them
        if progress is not None:
            self._window.analysis_panel.show_progress(progress)

    def _drain(self) -> None:
        worker = self.worker
        if worker is not None:
            self._apply(worker.take_items())
        self.flush_updates()

    def _discard_pending(self) -> None:
        self._flush_timer.stop()
        self._pending_cells, self._pending_progress = [], None

    def _finish(self, outcome: str) -> None:
        self._drain()
        if not self._outcome:
            self._outcome = outcome

    def _on_failed(self, message: str) -> None:
        self._drain()
        self._outcome = "failed"
        self._window.show_error("Analysis failed", message)

    def _on_stopped(self) -> None:
        self._drain()
        outcome = self._outcome or "done"
        panel = self._window.analysis_panel
        panel.set_running(False)
        if not self._run_is_on_screen:  # the model was switched while it ran
            panel.show_message(f"Stopped: {self._label} was replaced by another model.")
            self.stopped.emit("cancelled")
            return
        coverage = self._state.coverage() or (0, 0)
        texts = {
            "done": f"Done: {patches(coverage[1])} analysed.",
            "cancelled": f"Cancelled: {format_count(*coverage)} kept — Resume continues.",
            "failed": "The analysis failed (see the message).",
            "warning": "Nothing analysed: no H&E tissue found.",
        }
        panel.show_message(texts[outcome])
        self.stopped.emit(outcome)
