"""How the window's controllers talk to the user: error dialogs, yes/no questions, the status bar.

Controllers receive a :class:`Messenger` instead of the window, so none of them imports
:mod:`idc_viewer.qt.main_window`.
"""

from __future__ import annotations

import logging

from PySide6.QtWidgets import QMainWindow, QMessageBox

log = logging.getLogger(__name__)


class Messenger:
    """Dialogs and status-bar messages of one main window.

    Parameters
    ----------
    window : QMainWindow
        Parent of the dialogs; its status bar shows the messages.
    """

    def __init__(self, window: QMainWindow) -> None:
        self.window = window

    def show_error(self, title: str, message: str) -> None:
        """Log and show an error; the app stays usable."""
        log.error("%s: %s", title, message)
        self.status(f"{title}: {message}", 10_000)
        QMessageBox.warning(self.window, title, message)

    def confirm(self, title: str, question: str) -> bool:
        """Ask a yes/no question (No by default)."""
        answer = QMessageBox.question(
            self.window,
            title,
            question,
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def status(self, text: str, timeout_ms: int = 0) -> None:
        """Show ``text`` in the status bar (0: until replaced)."""
        self.window.statusBar().showMessage(text, timeout_ms)

    def clear_status(self) -> None:
        """Remove the status-bar message."""
        self.window.statusBar().clearMessage()
