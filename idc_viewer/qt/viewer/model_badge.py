"""The small label in a corner of the slide view naming the model on screen.

Everything on screen (heatmap, threshold, flags, regions, Grad-CAM) is that model's. When the
slide has no analysis by it, the badge says so and offers "Analyse with <model>".
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

MARGIN_PX = 8


class ModelBadge(QWidget):
    """A child of the view, kept in its top-left corner.

    Signals
    -------
    analyse_requested()
        The "Analyse with <model>" button was clicked.
    """

    analyse_requested = Signal()

    def __init__(self, view: QWidget) -> None:
        super().__init__(view)
        self.setObjectName("model_badge")
        self.setStyleSheet(
            "#model_badge { background: rgba(20, 20, 20, 190); border-radius: 4px; }"
            "QLabel { color: white; font-size: 9pt; }"
        )
        self.label = QLabel("")
        self.analyse_button = QPushButton("")
        self.analyse_button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 3, 6, 3)
        layout.addWidget(self.label)
        layout.addWidget(self.analyse_button)
        self.analyse_button.clicked.connect(self.analyse_requested)
        view.installEventFilter(self)
        self.hide()

    def show_model(self, label: str, note: str = "", analyse_name: str | None = None) -> None:
        """Name the model; ``note`` after it; ``analyse_name`` shows the analyse button."""
        if not label:
            self.hide()
            return
        self.label.setText(f"Model: {label}" + (f" — {note}" if note else ""))
        self.analyse_button.setVisible(analyse_name is not None)
        if analyse_name is not None:
            self.analyse_button.setText(f"Analyse with {analyse_name}")
        self.adjustSize()
        self.move(MARGIN_PX, MARGIN_PX)
        self.show()
        self.raise_()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        """Stay in the view's top-left corner when it resizes."""
        if event.type() == QEvent.Type.Resize and self.isVisible():
            self.move(MARGIN_PX, MARGIN_PX)
        return False
