"""Heatmap overlay controls: on/off, context or patch map, opacity, threshold, legend."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel, QSlider, QWidget

from idc_viewer.qt.panels.threshold_box import ThresholdBox
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer.color_legend import ColorLegend

CONTEXT_TIP = (
    "On: each patch's probability is the weighted mean of its analysed tissue neighbours' "
    "(the model's context stage: what flags and regions use).\n"
    "Off: each patch's own CNN probability, at the patch threshold."
)
NO_CONTEXT_TIP = "The loaded model has no context stage: the map is each patch's own CNN output."


class OverlayPanel(QWidget):
    """Opacity and visibility go to the view (signals); the threshold goes to the state.

    Signals
    -------
    opacity_changed(float)
        In [0, 1].
    visible_changed(bool)
    """

    opacity_changed = Signal(float)
    visible_changed = Signal(bool)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.visible_box = QCheckBox("Show heatmap (H)")
        self.visible_box.setChecked(True)
        self.context_box = QCheckBox("Context map (the model's decision)")
        self.context_box.setChecked(state.show_context)
        self.opacity_slider = self._slider(50)
        self.threshold_slider = self._slider(round(state.threshold * 100))
        self.threshold_label = QLabel()
        self.threshold_box = ThresholdBox(state)
        self.legend = ColorLegend(threshold=state.threshold)
        layout = QFormLayout(self)
        layout.addRow(self.visible_box)
        layout.addRow(self.context_box)
        layout.addRow("Opacity", self.opacity_slider)
        layout.addRow("Threshold", self.threshold_slider)
        layout.addRow("", self.threshold_box)
        layout.addRow("", self.threshold_label)
        layout.addRow(self.legend)
        self.visible_box.toggled.connect(self.visible_changed)
        self.context_box.toggled.connect(state.set_show_context)
        state.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        self.threshold_slider.valueChanged.connect(self._on_slider_moved)
        state.threshold_changed.connect(self._on_threshold_changed)
        self._on_threshold_changed(state.threshold)

    def _on_model_changed(self) -> None:
        has_context = self._state.model_has_context()
        self.context_box.setEnabled(has_context)
        self.context_box.setToolTip(CONTEXT_TIP if has_context else NO_CONTEXT_TIP)

    @staticmethod
    def _slider(value: int) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(0, 100)
        slider.setValue(value)
        return slider

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100

    def _on_slider_moved(self, value: int) -> None:
        self._state.set_threshold(value / 100)

    def _on_threshold_changed(self, threshold: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(threshold * 100))
        self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"flag patches with P(IDC) ≥ {threshold:.2f}")
        self.legend.set_threshold(threshold)
