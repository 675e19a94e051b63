"""Running the engine's analysis from the window, and the logic around stored results.

:class:`AnalysisRunner` starts :func:`idc_viewer.engine.analysis.analyze` in a
:class:`~idc_viewer.qt.workers.GeneratorWorker`, paints each batch into a GUI-side heatmap
(the engine's live array is written by the worker thread, so the GUI keeps its own copy and
applies each batch's cells), and reports progress. :func:`find_stored` and
:func:`export_results` are plain functions the tests call directly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from idc_viewer.core.formatting import format_count, patches
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import PatchGrid, make_grid
from idc_viewer.core.store import ResultStore
from idc_viewer.qt.state import AppState, model_label
from idc_viewer.qt.workers import GeneratorWorker, WorkerPool

if TYPE_CHECKING:
    from idc_viewer.engine.analysis import AnalysisUpdate
    from idc_viewer.qt.main_window import MainWindow

log = logging.getLogger(__name__)

#: Batches arriving faster than this are coalesced into one repaint of the heatmap and
#: progress (keeps the GUI thread free: at most ~6 overlay rebuilds and repaints per second).
UPDATE_INTERVAL_MS = 150


def _snapshot(update: AnalysisUpdate) -> tuple[AnalysisUpdate, Heatmap | None]:
    """Runs in the worker: copy the live heatmap when the update carries no batch."""
    return update, (update.heatmap.copy() if len(update.cols) == 0 else None)


@dataclass(frozen=True)
class StoredHeatmap:
    """A slide's stored analysis as the window shows it.

    ``threshold`` is the decision threshold of the model that made it (None for analyses stored
    before it was recorded); ``by_loaded_model`` says whether that model is the loaded one.
    """

    heatmap: Heatmap
    label: str
    threshold: float | None
    by_loaded_model: bool
    #: The tissue cells the analysis set out to score (None for stores without one).
    tissue_mask: np.ndarray | None = None


def find_stored(
    store: ResultStore, fingerprint: str, model: Any | None, slide_mpp: float | None = None
) -> StoredHeatmap | None:
    """The stored heatmap of a slide, or None.

    Prefers the current model's analysis; otherwise the most recently updated one. With
    ``slide_mpp``, only analyses made at that scale (others' cells would not fit the slide).
    """
    analyses = store.find(fingerprint)
    try:
        current = model.spec.model_hash if model is not None else None
        usable = [
            a
            for a in analyses
            if a.done_mask().any()
            and (slide_mpp is None or abs(a.grid.slide_mpp - slide_mpp) <= 1e-6 * slide_mpp)
        ]
        if not usable:
            return None
        chosen = next((a for a in usable if a.key.model_hash == current), usable[0])
        model_hash = chosen.key.model_hash
        by_loaded_model = model is not None and model_hash == current
        name = chosen.meta.get("model_name") or "model"
        threshold = chosen.meta.get("model_threshold")
        if model is not None and by_loaded_model:
            name, threshold = model.spec.name, float(model.spec.threshold)
        return StoredHeatmap(
            heatmap=chosen.heatmap(),
            label=model_label(str(name), model_hash),
            threshold=None if threshold is None else float(threshold),
            by_loaded_model=by_loaded_model,
            tissue_mask=chosen.tissue_mask,
        )
    finally:
        for analysis in analyses:
            analysis.close()


def export_results(state: AppState, folder: Path) -> list[Path]:
    """Write the engine's export files of the current heatmap into ``folder``."""
    from idc_viewer.core.export import export_all
    from idc_viewer.engine.outputs import provenance, slide_stem

    slide, heatmap, model = state.slide, state.decision_map(), state.model
    if slide is None or heatmap is None or state.heatmap is None:
        raise ValueError("Nothing to export: analyse a slide first.")
    stem = slide_stem(slide.info.path)
    if model is not None and state.heatmap_source.endswith(f"({model.spec.model_hash[:8]})"):
        info = provenance(slide, model, state.threshold, state.heatmap)
    else:  # a stored heatmap from another model: say only what is known
        info = {
            "app": "idc-viewer",
            "slide": {"path": slide.info.path},
            "model": {"label": state.heatmap_source},
            "mpp": slide.info.mpp,
        }
    # what "probability" (flags, regions) means in these files: the map the user looked at
    info["decision_map"] = "context" if state.context_active() else "patch"
    return export_all(folder, stem, heatmap, state.threshold, info, patch_heatmap=state.heatmap)


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
        self._live: Heatmap | None = None
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
        worker = GeneratorWorker(
            "analysis",
            lambda token: analyze(slide, model, store, token, batch_size),
            transform=_snapshot,
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

    def _apply(self, payloads: list[tuple[AnalysisUpdate, Heatmap | None]]) -> None:
        """Apply every update the worker produced since the last call (in order).

        The batches go into the GUI-side copy at once (cheap numpy); the state, the overlay
        and the progress bar follow together at the next flush, so the panels agree with each
        other and lag what is stored by at most UPDATE_INTERVAL_MS.
        """
        if not self._run_is_on_screen:
            self._discard_pending()
            return
        window = self._window
        for update, snapshot in payloads:
            if update.tissue_warning:
                self._outcome = "warning"
                window.show_error("No tissue to analyse", update.tissue_warning)
                continue
            if snapshot is not None:
                self._discard_pending()
                self._live = snapshot
                tissue = update.tissue.mask if update.tissue is not None else None
                self._state.set_heatmap(snapshot, self._label, tissue)
                window.view.set_heatmap(self._state.decision_map())
                window.view.set_pending_mask(self._state.pending_mask())
                window.analysis_panel.show_progress(update.progress)
                continue
            if self._live is not None and len(update.cols):
                self._live.probabilities[update.rows, update.cols] = update.probabilities
                self._pending_cells.append(np.column_stack([update.cols, update.rows]))
            self._pending_progress = update.progress
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
