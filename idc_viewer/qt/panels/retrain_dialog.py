"""Retrain…: run ``python -m training train DATA --run-dir RUN --progress-json`` as a QProcess.

The app never imports the training package; it reads the JSON lines the process prints
(``{"event": "epoch" | "batch" | "exported" | "error" | "log" | ...}``) into two progress bars
(epochs of the number chosen; batches within the epoch, with its ETA) and a log. Cancel kills
the process; training checkpoints every epoch, so *Resume* continues from the last one saved
(the cancel message says whether there is one).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QProcess, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.formatting import format_duration

#: ``(data_dir, run_dir, epochs, resume, paper_recipe) -> (program, arguments)``.
CommandFactory = Callable[[str, str, int, bool, bool], tuple[str, list[str]]]

#: The bundled model's options beyond the paper: JPEG recompression of half the training patches
#: (slides store JPEG tiles), all 8 orientations, early-stopping patience 10.
BUNDLED_RECIPE_ARGS = ("--jpeg-quality", "70", "--dihedral", "--patience", "10")


def training_command(
    data: str, run_dir: str, epochs: int, resume: bool, paper_recipe: bool = False
) -> tuple[str, list[str]]:
    """The real training command, run with this interpreter.

    It follows the bundled model's recipe, or exactly the paper's with ``paper_recipe``.
    """
    args = [
        "-m",
        "training",
        "train",
        data,
        "--run-dir",
        run_dir,
        "--progress-json",
        "--epochs",
        str(epochs),
    ]
    if not paper_recipe:
        args += BUNDLED_RECIPE_ARGS
    if resume:
        args.append("--resume")
    return sys.executable, args


def parse_event(line: str) -> dict[str, Any] | None:
    """A JSON event line, or None for any other output (shown as plain log)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return None
    return event if isinstance(event, dict) and "event" in event else None


def describe_epoch(event: dict[str, Any]) -> str:
    """One line for an epoch event: its number, losses and AUCs."""
    parts = [f"epoch {event.get('epoch')}/{event.get('epochs')}"]
    for key in ("loss", "val_loss", "val_auc", "auc"):
        if isinstance(event.get(key), int | float):
            parts.append(f"{key} {event[key]:.4f}")
    eta = event.get("eta_s_max", event.get("eta_s"))
    if isinstance(eta, int | float):
        parts.append(f"ETA ≤ {format_duration(float(eta))}")
    return ", ".join(parts)


class RetrainDialog(QDialog):
    """Choose a dataset folder, train in a subprocess, offer to switch to the new model.

    Signals
    -------
    model_exported(str)
        Path of the new model's spec, after the process succeeded and the user accepted it.
    """

    model_exported = Signal(str)

    def __init__(
        self,
        runs_root: Path,
        command: CommandFactory = training_command,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Retrain the IDC model")
        self.resize(640, 480)
        self._runs_root = Path(runs_root)
        self._command = command
        self._buffer = ""
        self.exported_spec: str | None = None
        self.last_error: str | None = None
        self.process: QProcess | None = None

        self.data_edit = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_edit)
        data_row.addWidget(browse)
        run_name = dt.datetime.now().strftime("run-%Y%m%d-%H%M")
        self.run_edit = QLineEdit(str(self._runs_root / run_name))
        self.epochs_spin = QSpinBox()
        self.epochs_spin.setRange(1, 500)
        self.epochs_spin.setValue(30)
        self.resume_box = QCheckBox("Resume an interrupted run in this folder")
        self.paper_recipe_box = QCheckBox(
            "Paper's exact recipe (unticked: the bundled model's, + JPEG and orientation "
            "augmentation)"
        )
        self.paper_recipe_box.setToolTip(
            "Unticked: " + " ".join(BUNDLED_RECIPE_ARGS) + " on top of the paper's recipe."
        )
        form = QFormLayout()
        form.addRow("Dataset folder", data_row)
        form.addRow("Run folder", self.run_edit)
        form.addRow("Epochs (at most)", self.epochs_spin)
        form.addRow(self.paper_recipe_box)
        form.addRow(self.resume_box)

        self.progress_bar = QProgressBar()
        self.progress_bar.setFormat("epoch %v / %m")
        self.progress_bar.setRange(0, self.epochs_spin.value())
        self.progress_bar.setValue(0)
        self.epochs_spin.valueChanged.connect(self._on_epochs_changed)
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setRange(0, 1000)
        self.epoch_bar.setFormat("this epoch: waiting for the first batches")
        self.epoch_bar.setValue(0)
        self._epochs_done = 0
        self._cancelled = False
        # batches of the last finished epoch: the length of the next when the stream's is unknown
        self._batches_seen = 0
        self._epoch_batches: int | None = None
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.start_button = QPushButton("Start training")
        self.cancel_button = QPushButton("Cancel training")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        buttons.addWidget(self.close_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.epoch_bar)
        layout.addWidget(self.log)
        layout.addLayout(buttons)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)

    # -- running -------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """The training process runs."""
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def start(self) -> None:
        """Start the training process with the dialog's fields."""
        data = self.data_edit.text().strip()
        if not data or not Path(data).is_dir():
            QMessageBox.warning(self, "Retrain", f"Choose an existing dataset folder ({data!r}).")
            return
        program, args = self._command(
            data,
            self.run_edit.text().strip(),
            self.epochs_spin.value(),
            self.resume_box.isChecked(),
            self.paper_recipe_box.isChecked(),
        )
        self.exported_spec, self.last_error, self._buffer = None, None, ""
        self._epochs_done, self._cancelled = 0, False
        self.progress_bar.setRange(0, self.epochs_spin.value())
        self.progress_bar.setValue(0)
        self.epoch_bar.setValue(0)
        self.epoch_bar.setFormat("this epoch: waiting for the first batches")
        process = QProcess(self)
        process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        process.readyReadStandardOutput.connect(self._on_output)
        process.finished.connect(self._on_finished)
        process.errorOccurred.connect(self._on_process_error)
        self.process = process
        self._append(f"$ {program} {' '.join(args)}")
        process.start(program, args)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)

    def cancel(self) -> None:
        """Kill the process; say truthfully whether a finished epoch was saved to resume from."""
        if self.running and self.process is not None:
            self._cancelled = True
            self._append(self.cancel_message())
            self.process.kill()
            self.process.waitForFinished(5_000)

    def cancel_message(self) -> str:
        """What cancelling keeps (the epochs saved so far), for the question."""
        run_dir = Path(self.run_edit.text().strip())
        saved = self._epochs_done > 0 or (run_dir / "last.keras").is_file()
        if self._epochs_done:
            return (
                f"Cancelled after epoch {self._epochs_done}: it is saved; tick Resume and "
                "Start to continue from it."
            )
        if saved:
            return (
                "Cancelled before this run finished an epoch: the folder's earlier "
                "checkpoint is kept; tick Resume to continue from it."
            )
        return "Cancelled before the first epoch finished: nothing was saved to resume from."

    def _on_epochs_changed(self, epochs: int) -> None:
        if not self.running:
            self.progress_bar.setRange(0, epochs)

    def _on_browse(self) -> None:
        current = self.data_edit.text().strip()
        start = current if current and Path(current).is_dir() else ""
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder (patient/0|1/*.png)", start)
        if folder:
            self.data_edit.setText(folder)

    def _append(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _on_output(self) -> None:
        if self.process is None:
            return
        chunk = bytes(self.process.readAllStandardOutput().data())
        self._buffer += chunk.decode("utf-8", "replace")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self.handle_line(line)

    def handle_line(self, line: str) -> None:
        """Apply one line of the process's output to the progress bar and the log."""
        event = parse_event(line)
        if event is None:
            if line.strip():
                self._append(line.rstrip())
            return
        kind = event.get("event")
        if kind == "epoch":
            epochs = int(event.get("epochs") or self.progress_bar.maximum())
            self._epochs_done = int(event.get("epoch") or 0)
            if self._batches_seen:
                self._epoch_batches, self._batches_seen = self._batches_seen, 0
            self.progress_bar.setRange(0, max(1, epochs))
            self.progress_bar.setValue(self._epochs_done)
            self.epoch_bar.setRange(0, 1000)
            self.epoch_bar.setValue(1000)
            self.epoch_bar.setFormat(f"epoch {self._epochs_done} done")
            self._append(describe_epoch(event))
        elif kind == "batch":
            self._show_batch(event)
        elif kind == "exported":
            self.exported_spec = str(event.get("spec"))
            self._append(f"Model exported: {self.exported_spec}")
        elif kind == "error":
            self.last_error = str(event.get("message", "unknown error"))
            self._append(f"Error: {self.last_error}")
        elif kind == "log":
            self._append(str(event.get("message", "")))
        else:
            details = ", ".join(f"{k}={v}" for k, v in event.items() if k != "event")
            self._append(f"{kind}: {details}")

    def _show_batch(self, event: dict[str, Any]) -> None:
        """Progress within the running epoch: batches done and the epoch's time left."""
        batch, given = event.get("batch"), event.get("batches")
        seconds = event.get("seconds")
        if not isinstance(batch, int) or batch < 1:
            return
        epoch = event.get("epoch")
        batches = given if isinstance(given, int) and given > 0 else None
        self._batches_seen = max(self._batches_seen, batches or batch)
        if batches is None and self._epoch_batches:
            batches = max(self._epoch_batches, batch)  # as long as the last epoch
        if batches is not None:
            fraction = min(1.0, batch / batches)
            eta = (
                float(seconds) / batch * (batches - batch)
                if isinstance(seconds, int | float)
                else None
            )
            self.epoch_bar.setRange(0, 1000)
            self.epoch_bar.setValue(round(fraction * 1000))
            self.epoch_bar.setFormat(
                f"epoch {epoch}: batch {batch:,} / {batches:,} · ETA {format_duration(eta)}"
            )
        else:  # the number of batches is unknown (a resampled stream): count them
            self.epoch_bar.setRange(0, 0)
            self.epoch_bar.setFormat(f"epoch {epoch}: batch {batch:,}")

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self.last_error = "the training process could not start"
            self._append(f"Error: {self.last_error}")
            self._reset_buttons()

    def _on_finished(self, exit_code: int, status: QProcess.ExitStatus) -> None:
        if self._buffer:
            self.handle_line(self._buffer)
            self._buffer = ""
        self._reset_buttons()
        ok = status == QProcess.ExitStatus.NormalExit and exit_code == 0
        if self._cancelled:
            return  # cancel() said what is kept
        if not ok:
            how = (
                "the training process crashed"
                if status == QProcess.ExitStatus.CrashExit
                else f"the training process ended with an error (exit code {exit_code})"
            )
            self._append(f"Training stopped: {how}; the log above says why.")
            QMessageBox.warning(self, "Retrain", f"Training failed: {self.last_error or how}.")
            return
        self._append("Training finished.")
        if self.exported_spec:
            answer = QMessageBox.question(
                self, "Retrain", f"Training finished. Use the new model?\n{self.exported_spec}"
            )
            if answer == QMessageBox.StandardButton.Yes:
                self.model_exported.emit(self.exported_spec)

    def _reset_buttons(self) -> None:
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def closeEvent(self, event: Any) -> None:  # noqa: N802 (Qt override)
        """Stop the training with the dialog."""
        self.cancel()
        super().closeEvent(event)
