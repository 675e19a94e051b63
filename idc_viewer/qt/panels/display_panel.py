"""Brightness, contrast and gamma of the slide as shown (display only, never the model's input)."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFormLayout, QLabel, QPushButton, QSlider, QWidget

from idc_viewer.qt.viewer.display_adjust import DisplayAdjustments

#: (name, slider range, slider value of "no change", slider steps per unit)
_SLIDERS = (
    ("Brightness", (-100, 100), 0, 100.0),
    ("Contrast", (20, 300), 100, 100.0),
    ("Gamma", (20, 300), 100, 100.0),
)


class DisplayPanel(QWidget):
    """Three sliders and a Reset.

    Signals
    -------
    adjustments_changed(object)
        The new :class:`DisplayAdjustments`.
    """

    adjustments_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        layout = QFormLayout(self)
        self.sliders: dict[str, QSlider] = {}
        self._labels: dict[str, QLabel] = {}
        for name, (low, high), neutral, _scale in _SLIDERS:
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(low, high)
            slider.setValue(neutral)
            slider.valueChanged.connect(self._on_changed)
            label = QLabel()
            label.setMinimumWidth(36)
            self.sliders[name], self._labels[name] = slider, label
            layout.addRow(name, slider)
            layout.addRow("", label)
        self.reset_button = QPushButton("Reset")
        self.reset_button.setToolTip("Back to the slide's own colours")
        self.reset_button.clicked.connect(self.reset)
        note = QLabel("For viewing only: the model always sees the slide's own pixels.")
        note.setWordWrap(True)
        layout.addRow(self.reset_button)
        layout.addRow(note)
        self._update_labels()

    def adjustments(self) -> DisplayAdjustments:
        """The brightness/contrast/gamma the sliders say."""
        values = {name: self.sliders[name].value() / scale for name, _r, _n, scale in _SLIDERS}
        return DisplayAdjustments(
            brightness=values["Brightness"], contrast=values["Contrast"], gamma=values["Gamma"]
        )

    def reset(self) -> None:
        """Sliders back to neutral (the slide as read)."""
        for name, _range, neutral, _scale in _SLIDERS:
            self.sliders[name].blockSignals(True)
            self.sliders[name].setValue(neutral)
            self.sliders[name].blockSignals(False)
        self._on_changed()

    def _update_labels(self) -> None:
        adj = self.adjustments()
        self._labels["Brightness"].setText(f"{adj.brightness:+.2f}")
        self._labels["Contrast"].setText(f"×{adj.contrast:.2f}")
        self._labels["Gamma"].setText(f"{adj.gamma:.2f}")

    def _on_changed(self, *_: object) -> None:
        self._update_labels()
        self.adjustments_changed.emit(self.adjustments())
