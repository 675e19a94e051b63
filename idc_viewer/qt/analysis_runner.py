"""Running the engine's analysis for the window: its events become Qt signals.

:class:`AnalysisRunner` runs the open slide's :meth:`SlideSession.analyze
<idc_viewer.engine.session.SlideSession.analyze>` in a coalescing
:class:`~idc_viewer.qt.workers.GeneratorWorker`. The engine's events are immutable and hold
read-only copies, so nothing is shared across threads: in the GUI thread a
:class:`~idc_viewer.engine.events.HeatmapBuilder` folds each event (each batch once) into the
heatmap the window shows, and the runner says what happened through its signals. It knows
neither the window nor its widgets, and computes nothing of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from idc_viewer.core.errors import one_line
from idc_viewer.core.formatting import format_count, patches
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE
from idc_viewer.core.slide import MissingMppError
from idc_viewer.engine.events import Batch, Finished, HeatmapBuilder, NoTissue, Started
from idc_viewer.engine.provenance import ModelRef
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.state import AppState
from idc_viewer.qt.workers import GeneratorWorker, WorkerPool

if TYPE_CHECKING:
    from idc_viewer.engine.events import AnalysisEvent

log = logging.getLogger(__name__)

#: Batches arriving faster than this are coalesced into one repaint of the heatmap and
#: progress (keeps the GUI thread free: at most ~6 overlay rebuilds and repaints per second).
UPDATE_INTERVAL_MS = 150


class AnalysisRunner(QObject):
    """Starts, follows and cancels the analysis of the open slide.

    Parameters
    ----------
    state : AppState
        The slide and model to analyse; the heatmap it shows grows batch by batch.
    pool : WorkerPool
        Runs the analysis worker.
    messages : Messenger
        Errors and questions for the user.
    ask_scale : callable
        ``ask_scale()`` asks the user for the open slide's µm/px; False when cancelled.
    batch_size : int
        Patches per engine batch.
    parent : QObject, optional

    Signals
    -------
    stopped(str)
        ``"done"``, ``"cancelled"``, ``"failed"`` or ``"warning"`` (no H&E tissue found).
    running_changed(bool)
        A run started (True) or ended (False).
    message(str)
        What the run is doing or how it ended, for the analysis panel.
    progress(object)
        A :class:`~idc_viewer.core.jobs.Progress`.
    heatmap_replaced()
        ``state.heatmap`` is another heatmap: repaint all of it.
    cells_changed(object)
        ``(N, 2)`` ``(col, row)`` cells of ``state.heatmap`` that gained probabilities.
    """

    stopped = Signal(str)
    running_changed = Signal(bool)
    message = Signal(str)
    progress = Signal(object)
    heatmap_replaced = Signal()
    cells_changed = Signal(object)

    def __init__(
        self,
        state: AppState,
        pool: WorkerPool,
        messages: Messenger,
        ask_scale: Callable[[], bool],
        batch_size: int = DEFAULT_BATCH_SIZE,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._state = state
        self._pool = pool
        self._messages = messages
        self._ask_scale = ask_scale
        self.batch_size = batch_size
        self.worker: GeneratorWorker | None = None
        self._run_model: Any = None  # the model the running analysis scores with
        self._builder = HeatmapBuilder()  # its heatmap is the one shown, folded from events
        self._outcome = ""
        self._made_by = ModelRef("", "")  # the running model, as the heatmap records it
        # Batches folded into the builder's heatmap, not yet shown (``_flush_timer`` coalesces).
        self._pending_cells: list[np.ndarray] = []
        self._pending_progress: Any = None
        self._flush_timer = QTimer(self)
        self._flush_timer.setSingleShot(True)
        self._flush_timer.setInterval(UPDATE_INTERVAL_MS)
        self._flush_timer.timeout.connect(self.flush_updates)

    @property
    def running(self) -> bool:
        """An analysis worker is running."""
        return self.worker is not None and self.worker.running

    def start(self) -> GeneratorWorker | None:
        """Analyse the open slide with the current model (resuming stored results)."""
        session, model = self._state.session, self._state.model
        if self.running:
            return self.worker
        if session is None or model is None:
            self._messages.show_error("Cannot analyse", "Open a slide and load a model first.")
            return None
        warning = self._state.slide_warning
        if warning and not self._messages.confirm("Not H&E?", f"{warning}.\n\nAnalyse anyway?"):
            return None
        if session.info.mpp is None and not self._ask_scale():
            return None
        batch_size = self.batch_size
        worker = GeneratorWorker(
            "analysis", lambda token: session.analyze(model, token, batch_size), coalesce=True
        )
        worker.items_ready.connect(self._on_items_ready)
        worker.finished.connect(lambda _last: self._finish("done"))
        worker.cancelled.connect(lambda: self._finish("cancelled"))
        worker.failed.connect(self._on_failed)
        worker.stopped.connect(self._on_stopped)
        self._discard_pending()
        self._state.restore_model_threshold()  # the loaded model's heatmap, its threshold
        self.worker, self._outcome = worker, ""
        self._builder = HeatmapBuilder()
        self._run_model = model
        spec = model.spec
        self._made_by = ModelRef(str(spec.name), spec.model_hash, float(spec.threshold))
        self.running_changed.emit(True)
        self.message.emit("Finding tissue…")
        self._pool.start(worker)
        return worker

    def cancel(self) -> None:
        """Ask the running analysis to stop after its current batch."""
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
        """Fold every event the worker produced since the last call (in order).

        Each batch goes into the heatmap shown at once (cheap numpy); the state, the overlay
        and the progress bar follow together at the next flush, so the panels agree with each
        other and lag what is stored by at most UPDATE_INTERVAL_MS.
        """
        if not self._run_is_on_screen:
            self._discard_pending()
            return
        for event in events:
            if isinstance(event, NoTissue):
                self._outcome = "warning"
                self._messages.show_error("No tissue to analyse", event.warning)
                continue
            live = self._builder.apply(event)
            if isinstance(event, Started):
                self._discard_pending()
                self._state.set_heatmap(live, self._made_by, event.tissue.mask)
                self.heatmap_replaced.emit()
                self.progress.emit(event.progress)
                continue
            if isinstance(event, Batch) and len(event):
                self._pending_cells.append(np.asarray(event.cells))
            if isinstance(event, Finished) and not event.complete:
                self._outcome = self._outcome or "cancelled"
            self._pending_progress = event.progress
        if self._pending_progress is not None and not self._flush_timer.isActive():
            self._flush_timer.start()

    def flush_updates(self) -> None:
        """Show the batches received since the last flush (state, heatmap cells, progress)."""
        self._flush_timer.stop()
        cells, progress = self._pending_cells, self._pending_progress
        self._pending_cells, self._pending_progress = [], None
        live = self._builder.heatmap
        if not self._run_is_on_screen:
            return
        if cells and live is not None and self._state.heatmap is live:
            self._state.set_heatmap(live)
            if self._state.context_active():  # new cells change their neighbours' context
                self.heatmap_replaced.emit()
            else:
                self.cells_changed.emit(np.concatenate(cells))  # recolours them
        if progress is not None:
            self.progress.emit(progress)

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

    def _on_failed(self, exc: Exception) -> None:
        self._drain()
        self._outcome = "failed"
        if isinstance(exc, MissingMppError):  # the scale went missing: ask for it again
            self._ask_scale()
            return
        self._messages.show_error("Analysis failed", one_line(exc))

    def _on_stopped(self) -> None:
        self._drain()
        outcome = self._outcome or "done"
        self.running_changed.emit(False)
        if not self._run_is_on_screen:  # the model was switched while it ran
            self.message.emit(f"Stopped: {self._made_by.label} was replaced by another model.")
            self.stopped.emit("cancelled")
            return
        coverage = self._state.coverage() or (0, 0)
        texts = {
            "done": f"Done: {patches(coverage[1])} analysed.",
            "cancelled": f"Cancelled: {format_count(*coverage)} kept — Resume continues.",
            "failed": "The analysis failed (see the message).",
            "warning": "Nothing analysed: no H&E tissue found.",
        }
        self.message.emit(texts[outcome])
        self.stopped.emit(outcome)
