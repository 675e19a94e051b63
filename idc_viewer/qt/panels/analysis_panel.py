"""Run / Cancel the analysis, with a progress bar showing patches/s and the time left."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from idc_viewer.core.jobs import Progress
from idc_viewer.qt.state import AppState, format_duration


def progress_text(progress: Progress) -> str:
    """``1,024 / 4,096 patches · 1,500 patches/s · ETA 0:02``."""
    text = f"{progress.done:,} / {progress.total:,} patches"
    if progress.rate_per_s > 0:
        text += f" · {progress.rate_per_s:,.0f} patches/s"
    return text + f" · ETA {format_duration(progress.eta_s)}"


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
        self.cancel_button.setToolTip("Stop; what was analysed is kept and resumed next time")
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setValue(0)
        self.status = QLabel("Open a slide to analyse it.")
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
        state.slide_changed.connect(self._on_slide_changed)
        state.model_changed.connect(self._on_slide_changed)
        self._running = False
        self._on_slide_changed()

    def set_running(self, running: bool) -> None:
        self._running = running
        self.cancel_button.setEnabled(running)
        self._on_slide_changed()

    def show_progress(self, progress: Progress) -> None:
        # QProgressBar.setValue repaints synchronously; with updates disabled meanwhile the
        # repaint is only scheduled (and merged with the window's next paint).
        bar = self.progress_bar
        bar.setUpdatesEnabled(False)
        bar.setValue(round(progress.fraction * 1000))
        bar.setUpdatesEnabled(True)
        bar.update()
        self.status.setText(progress_text(progress))

    def show_message(self, text: str) -> None:
        self.status.setText(text)

    def _on_slide_changed(self) -> None:
        ready = self._state.slide is not None and self._state.model is not None
        self.run_button.setEnabled(ready and not self._running)
        self.cancel_button.setEnabled(self._running)
        if not self._running:
            if self._state.slide is None:
                self.status.setText("Open a slide to analyse it.")
            elif self._state.model is None:
                self.status.setText("Load a model to analyse the slide.")
