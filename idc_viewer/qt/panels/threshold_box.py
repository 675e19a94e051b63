"""A numeric entry for the decision threshold, with a reset to the loaded model's own."""

from __future__ import annotations

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QPushButton, QWidget

from idc_viewer.qt.state import AppState


class ThresholdBox(QWidget):
    """Spin box (0.000–1.000) bound to :attr:`AppState.threshold`, and *Reset to model's*."""

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.spin = QDoubleSpinBox()
        self.spin.setRange(0.0, 1.0)
        self.spin.setDecimals(3)
        self.spin.setSingleStep(0.01)
        self.spin.setToolTip("Decision threshold: patches with P(IDC) at or above it are flagged")
        self.reset_button = QPushButton("Model's")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.spin, 1)
        layout.addWidget(self.reset_button)
        self.spin.valueChanged.connect(self._state.set_threshold)
        self.reset_button.clicked.connect(self.reset)
        state.threshold_changed.connect(self._on_threshold_changed)
        state.model_changed.connect(self._on_model_changed)
        self._on_threshold_changed(state.threshold)
        self._on_model_changed()

    def reset(self) -> None:
        """Back to the loaded model's threshold (the one chosen on its validation patients)."""
        model = self._state.model
        if model is not None:
            self._state.threshold_borrowed = False
            self._state.set_threshold(self._state.model_threshold())

    def _on_threshold_changed(self, threshold: float) -> None:
        self.spin.blockSignals(True)
        self.spin.setValue(threshold)
        self.spin.blockSignals(False)

    def _on_model_changed(self) -> None:
        model = self._state.model
        self.reset_button.setEnabled(model is not None)
        self.reset_button.setToolTip(
            f"Back to the model's threshold {float(model.spec.threshold):.3f}"
            if model
            else "Load a model first"
        )
