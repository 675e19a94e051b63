"""Run / Cancel the analysis, with a progress bar showing patches/s and the time left.

When no analysis runs, the status line and the bar say what is so, from the state alone: no
slide, no model, not analysed, partial ("768 of 1,111 patches — Resume") or complete.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from idc_viewer.core.formatting import format_count, format_duration, patches
from idc_viewer.core.jobs import Progress
from idc_viewer.qt.state import AppState


def progress_counts(progress: Progress) -> str:
    """``1,024 / 4,096 patches``, written on the progress bar."""
    return f"{progress.done:,} / {progress.total:,} patches"


def progress_text(progress: Progress) -> str:
    """``1,500 patches/s · ETA 0:02``: the status line under the bar (one line in the dock)."""
    rate = f"{progress.rate_per_s:,.0f} patches/s · " if progress.rate_per_s > 0 else ""
    return f"{rate}ETA {format_duration(progress.eta_s)}"


def idle_status(state: AppState) -> tuple[str, float | None, bool]:
    """What the panel says when nothing runs: ``(text, bar fraction or None, partial)``."""
    if state.slide is None:
        return "Open a slide to analyse it.", None, False
    if state.model is None:
        return "Load a model to analyse the slide.", None, False
    coverage = state.coverage()
    if coverage is None:
        if state.slide.info.mpp is None:
            return "Not analysed yet. Analyse slide (F5) first asks for the scale.", 0.0, False
        return "Not analysed yet: Analyse slide (F5).", 0.0, False
    done, total = coverage
    fraction = done / total if total else 1.0
    if not state.heatmap_by_loaded_model():
        return (
            f"Another model's heatmap ({format_count(done, total)}): "
            "Analyse slide scores it with the loaded model.",
            fraction,
            False,
        )
    if done < total:
        return f"{format_count(done, total)} — Resume", fraction, True
    return f"Done: {patches(total)} analysed.", fraction, False


class AnalysisPanel(QWidget):
    """Buttons and progress of the analysis; the window runs the worker.

    Signals
    -------
    run_requested(), cancel_requested()
    """

    run_requested = Signal()
    cancel_requested = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.run_button = QPushButton("Analyse slide")
        self.run_button.setToolTip("Run the IDC model on every tissue patch (F5)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop (Esc); what was analysed is kept and resumed next time")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.status)
        self.run_button.clicked.connect(self.run_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        state.slide_changed.connect(self.refresh)
        state.slide_info_changed.connect(self.refresh)
        state.model_changed.connect(self.refresh)
        state.heatmap_changed.connect(self.refresh)
        self._running = False
        self.refresh()

    def set_running(self, running: bool) -> None:
        """A run started (buttons: Cancel only) or ended."""
        self._running = running
        self.refresh()

    def show_progress(self, progress: Progress) -> None:
        """Bar, counts, rate and time left of the running analysis."""
        # QProgressBar.setValue repaints synchronously; with updates disabled meanwhile the
        # repaint is only scheduled (and merged with the window's next paint).
        self._set_fraction(progress.fraction)
        self.progress_bar.setFormat(progress_counts(progress))
        self.status.setText(progress_text(progress))

    def show_message(self, text: str) -> None:
        """Say how a run ended; the next change of slide, model or heatmap replaces it."""
        self.status.setText(text)

    def _set_fraction(self, fraction: float) -> None:
        bar = self.progress_bar
        bar.setUpdatesEnabled(False)
        bar.setValue(round(min(1.0, max(0.0, fraction)) * 1000))
        bar.setUpdatesEnabled(True)
        bar.update()

    def refresh(self) -> None:
        """Buttons and (when idle) the status line from the state."""
        ready = self._state.slide is not None and self._state.model is not None
        self.run_button.setEnabled(ready and not self._running)
        self.cancel_button.setEnabled(self._running)
        if self._running:
            return
        text, fraction, partial = idle_status(self._state)
        self.status.setText(text)
        self.progress_bar.setFormat("%p%")
        self._set_fraction(fraction or 0.0)
        self.run_button.setText("Resume analysis" if partial else "Analyse slide")
