"""Help › Keyboard shortcuts: every menu command's keys plus the slide view's own."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHeaderView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

#: Keys the slide view handles itself (not menu commands).
VIEW_KEYS: tuple[tuple[str, str], ...] = (
    ("Wheel", "Zoom at the cursor"),
    ("+ / −", "Zoom in / out"),
    ("Arrows", "Pan"),
    ("Drag", "Pan (with Measure on: measure a distance)"),
    ("Click", "Explain the patch (Grad-CAM)"),
)


class ShortcutsDialog(QDialog):
    """A two-column table: keys, command."""

    def __init__(self, rows: list[tuple[str, str]], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.resize(460, 520)
        all_rows = [*rows, *VIEW_KEYS]
        self.table = QTableWidget(len(all_rows), 2)
        self.table.setHorizontalHeaderLabels(("Keys", "Command"))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (keys, command) in enumerate(all_rows):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(command))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)

    def commands(self) -> dict[str, str]:
        """``command -> keys`` as shown (for tests and the curious)."""
        out = {}
        for row in range(self.table.rowCount()):
            keys, command = self.table.item(row, 0), self.table.item(row, 1)
            if keys is not None and command is not None:
                out[command.text()] = keys.text()
        return out
