"""Layer controls: which layers show, how opaque, at which threshold, with their colour scales.

The layers are heatmap / Grad-CAM / both / none; the heatmap is the context or the patch map.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QSlider, QWidget

from idc_viewer.engine.gradcam_layer import LAYER_CHOICES
from idc_viewer.qt.panels.threshold_box import ThresholdBox
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer.color_legend import ColorLegend
from idc_viewer.qt.viewer.gradcam_legend import GradCamLegend

CONTEXT_TIP = (
    "On: each patch's probability is the weighted mean of its analysed tissue neighbours' "
    "(the model's context stage: what flags and regions use).\n"
    "Off: each patch's own CNN probability, at the patch threshold."
)
NO_CONTEXT_TIP = "The loaded model has no context stage: the map is each patch's own CNN output."
LAYER_TEXTS = {
    "heatmap": "Heatmap",
    "gradcam": "Grad-CAM",
    "both": "Heatmap + Grad-CAM",
    "none": "None",
}


class OverlayPanel(QWidget):
    """Layer mode and opacities go to the view (signals); the threshold goes to the state.

    Signals
    -------
    opacity_changed(float)
        Heatmap opacity in [0, 1].
    visible_changed(bool)
        Whether the heatmap layer shows (follows the mode).
    mode_changed(str)
        ``heatmap`` / ``gradcam`` / ``both`` / ``none``.
    gradcam_opacity_changed(float)
        In [0, 1].
    """

    opacity_changed = Signal(float)
    visible_changed = Signal(bool)
    mode_changed = Signal(str)
    gradcam_opacity_changed = Signal(float)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.mode_combo = QComboBox()
        for mode in LAYER_CHOICES:
            self.mode_combo.addItem(LAYER_TEXTS[mode], mode)
        self.mode_combo.setCurrentIndex(LAYER_CHOICES.index("both"))
        self.mode_combo.setToolTip(
            "H toggles the heatmap. Grad-CAM shows when patches are at "
            "least 64 screen pixels (zoom in)."
        )
        self.context_box = QCheckBox("Context map (the model's decision)")
        self.context_box.setChecked(state.show_context)
        self.opacity_slider = self._slider(50)
        self.gradcam_opacity_slider = self._slider(70)
        self.threshold_slider = self._slider(round(state.threshold * 100))
        self.threshold_label = QLabel()
        self.threshold_box = ThresholdBox(state)
        self.legend = ColorLegend(threshold=state.threshold)
        self.gradcam_legend = GradCamLegend()
        self.gradcam_note = QLabel("Zoom in until patches are ≥ 64 px to see Grad-CAM.")
        self.gradcam_note.setWordWrap(True)
        layout = QFormLayout(self)
        layout.addRow("Layers", self.mode_combo)
        layout.addRow(self.context_box)
        layout.addRow("Heatmap opacity", self.opacity_slider)
        layout.addRow("Threshold", self.threshold_slider)
        layout.addRow("", self.threshold_box)
        layout.addRow("", self.threshold_label)
        layout.addRow(self.legend)
        layout.addRow("Grad-CAM opacity", self.gradcam_opacity_slider)
        layout.addRow(self.gradcam_legend)
        layout.addRow(self.gradcam_note)
        self.mode_combo.currentIndexChanged.connect(self._on_mode_changed)
        self.context_box.toggled.connect(state.set_show_context)
        state.model_changed.connect(self._on_model_changed)
        self._on_model_changed()
        self.opacity_slider.valueChanged.connect(lambda v: self.opacity_changed.emit(v / 100))
        self.gradcam_opacity_slider.valueChanged.connect(
            lambda v: self.gradcam_opacity_changed.emit(v / 100)
        )
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
        """Heatmap opacity in [0, 1]."""
        return self.opacity_slider.value() / 100

    @property
    def gradcam_opacity(self) -> float:
        """Grad-CAM layer opacity in [0, 1]."""
        return self.gradcam_opacity_slider.value() / 100

    @property
    def mode(self) -> str:
        """The layers shown: ``heatmap``, ``gradcam``, ``both`` or ``none``."""
        return str(self.mode_combo.currentData())

    def set_mode(self, mode: str) -> None:
        """Choose the layers shown (one of ``LAYER_CHOICES``)."""
        self.mode_combo.setCurrentIndex(LAYER_CHOICES.index(mode))

    def toggle_heatmap(self) -> None:
        """H: the heatmap on/off, Grad-CAM as it was."""
        flip = {"heatmap": "none", "none": "heatmap", "both": "gradcam", "gradcam": "both"}
        self.set_mode(flip[self.mode])

    def _on_mode_changed(self, _index: int) -> None:
        mode = self.mode
        self.mode_changed.emit(mode)
        self.visible_changed.emit(mode in ("heatmap", "both"))

    def _on_slider_moved(self, value: int) -> None:
        self._state.set_threshold(value / 100)

    def _on_threshold_changed(self, threshold: float) -> None:
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round(threshold * 100))
        self.threshold_slider.blockSignals(False)
        self.threshold_label.setText(f"flag patches with P(IDC) ≥ {threshold:.2f}")
        self.legend.set_threshold(threshold)
