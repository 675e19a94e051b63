"""Smoke-test mode of the real application (packaging/smoke_test.sh, tests/qt/test_demo_smoke.py).

With ``IDC_VIEWER_SMOKE_TEST`` set, the app prints ``window: <title> visible=<bool>`` once the
first slide is shown, then quits. With ``IDC_VIEWER_SMOKE_RETRAIN=<dataset folder>`` too, it
first goes through Model › Retrain… as a user would: the menu action, the dataset, one epoch,
*Start training*; every message box that comes up is answered Yes (so a new model is taken),
and when the training process ends it prints ``retrain: exit=<code> exported=<spec or None>``
and quits. The frozen build thereby shows that its own executable runs ``idc-train``.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QProcess, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from idc_viewer.qt.main_window import MainWindow

SMOKE_TEST_ENV = "IDC_VIEWER_SMOKE_TEST"
SMOKE_RETRAIN_ENV = "IDC_VIEWER_SMOKE_RETRAIN"
_POLL_MS = 200
_MODEL_WAIT_MS = 60_000  # give up waiting for the new model after this


def install(app: QApplication, window: MainWindow) -> None:
    """Arm the smoke test when ``IDC_VIEWER_SMOKE_TEST`` is set (else do nothing)."""
    if not os.environ.get(SMOKE_TEST_ENV):
        return
    retrain_data = os.environ.get(SMOKE_RETRAIN_ENV)
    done = False

    def report_and_continue(_path: str) -> None:
        nonlocal done
        if done:
            return
        done = True
        print(f"window: {window.windowTitle()} visible={window.isVisible()}", flush=True)
        if retrain_data:
            _retrain(app, window, retrain_data)
        else:
            QTimer.singleShot(0, app.quit)

    window.slides.slide_opened.connect(report_and_continue)


def _retrain(app: QApplication, window: MainWindow, data: str) -> None:
    window.actions_.retrain.trigger()
    dialog = window.models.retrain_dialog
    assert dialog is not None, "Model › Retrain… opened no dialog"
    dialog.data_edit.setText(data)
    dialog.epochs_spin.setValue(1)
    answer_boxes = QTimer(dialog)
    answer_boxes.timeout.connect(_answer_yes)
    answer_boxes.start(_POLL_MS)
    dialog.start()
    process = dialog.process
    if process is None:  # the dialog refused the fields (it has shown why)
        print("retrain: exit=None exported=None (not started)", flush=True)
        QTimer.singleShot(0, app.quit)
        return

    def finished(code: int, _status: QProcess.ExitStatus) -> None:
        print(f"retrain: exit={code} exported={dialog.exported_spec}", flush=True)
        if code != 0 or not dialog.exported_spec:
            QTimer.singleShot(0, app.quit)
            return
        # the answer Yes makes the window load the new model, off the GUI thread
        window.state.model_changed.connect(report_model)
        QTimer.singleShot(_MODEL_WAIT_MS, report_model)

    def report_model() -> None:
        print(f"model in use: {window.state.model_path}", flush=True)
        QTimer.singleShot(0, app.quit)

    process.finished.connect(finished)  # after the dialog's own handler (and its question)


def _answer_yes() -> None:
    box = QApplication.activeModalWidget()
    if isinstance(box, QMessageBox):
        print(f"message: {box.text().splitlines()[0] if box.text() else ''}", flush=True)
        yes = box.button(QMessageBox.StandardButton.Yes)
        (yes.click if yes is not None else box.accept)()
