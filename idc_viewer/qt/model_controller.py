"""Loading a model off the GUI thread, and the Retrain… dialog that exports new ones.

:class:`ModelController` loads and validates a model in a worker and says so with ``loaded``;
the window switches everything on screen to it. On failure the old model stays.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from idc_viewer.core.errors import one_line
from idc_viewer.qt import window_memory
from idc_viewer.qt.messenger import Messenger
from idc_viewer.qt.panels.retrain_dialog import CommandFactory, RetrainDialog
from idc_viewer.qt.workers import CallWorker, WorkerPool

MODEL_FILTER = "IDC models (*.keras *.tflite *.spec.json);;All files (*)"


def default_model_loader(path: str) -> Any:
    """Load and validate the model at ``path`` (``idc_viewer.ml.loading.load_model``)."""
    from idc_viewer.ml.loading import load_model

    return load_model(Path(path))


class ModelController(QObject):
    """Model › Load… and Model › Retrain… of one window.

    Parameters
    ----------
    pool : WorkerPool
        Runs the loading.
    messages : Messenger
    settings : QSettings, optional
        The last folder used.
    model_loader : callable
        ``model_loader(path)`` -> a loaded model (raises on a bad file).
    runs_root : Path
        Default parent folder of retraining runs.
    retrain_command : CommandFactory
        Builds the training command of the Retrain… dialog.
    parent : QWidget
        Parent of the dialogs.

    Signals
    -------
    loaded(object, str)
        ``(model, path)``: a model was loaded (not yet in use).
    load_failed(object)
        The exception that stopped loading.
    """

    loaded = Signal(object, str)
    load_failed = Signal(object)

    def __init__(
        self,
        pool: WorkerPool,
        messages: Messenger,
        settings: QSettings | None,
        model_loader: Callable[[str], Any],
        runs_root: Path,
        retrain_command: CommandFactory,
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self._pool, self.messages, self.settings = pool, messages, settings
        self._model_loader = model_loader
        self.runs_root = runs_root
        self._retrain_command = retrain_command
        self._parent = parent
        self.retrain_dialog: RetrainDialog | None = None

    def choose_and_load_model(self) -> None:
        """Model › Load…."""
        path, _ = QFileDialog.getOpenFileName(
            self._parent, "Load model", window_memory.last_folder(self.settings), MODEL_FILTER
        )
        if path:
            window_memory.remember_folder(self.settings, path)
            self.load_model(path)

    def load_model(self, path: str) -> CallWorker:
        """Load and validate a model off the GUI thread; on failure the old model stays."""
        worker = CallWorker("load-model", lambda: self._model_loader(path))
        worker.finished.connect(lambda model: self.loaded.emit(model, path))
        worker.failed.connect(lambda exc: self._on_failed(path, exc))
        self.messages.status(f"Loading model {Path(path).name}…")
        self._pool.start(worker)
        return worker

    def _on_failed(self, path: str, exc: Exception) -> None:
        self.messages.show_error("Cannot load model", f"{Path(path).name}: {one_line(exc)}")
        self.load_failed.emit(exc)

    def open_retrain_dialog(self) -> RetrainDialog:
        """Model › Retrain…: the dialog that trains and exports a model (then loaded)."""
        if self.retrain_dialog is None:
            dialog = RetrainDialog(self.runs_root, self._retrain_command, self._parent)
            dialog.model_exported.connect(self.load_model)
            self.retrain_dialog = dialog
        self.retrain_dialog.show()
        self.retrain_dialog.raise_()
        return self.retrain_dialog
