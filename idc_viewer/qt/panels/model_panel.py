"""The model in use: name, hash, held-out figures from its spec; Load model… and Retrain…."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from idc_viewer.qt.state import AppState

#: Metrics shown first when the spec has them (others follow in their order).
PREFERRED_METRICS = ("auc", "roc_auc", "balanced_accuracy", "accuracy", "f1", "sensitivity",
                     "specificity", "precision", "recall")


def metric_lines(metrics: dict[str, Any]) -> list[str]:
    """Flatten a spec's ``metrics`` (possibly nested per split) into ``name: value`` lines."""
    lines: list[str] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            keys = sorted(value, key=lambda k: (k not in PREFERRED_METRICS, str(k)))
            for key in keys:
                walk(f"{prefix}{key}." if isinstance(value[key], dict) else f"{prefix}{key}",
                     value[key])
        elif isinstance(value, float):
            lines.append(f"{prefix}: {value:.3f}")
        elif isinstance(value, int | str):
            lines.append(f"{prefix}: {value}")

    walk("", metrics)
    return lines


class ModelPanel(QWidget):
    """Shows :attr:`AppState.model`; asks the window to load or retrain one.

    Signals
    -------
    load_requested(), retrain_requested()
    """

    load_requested = Signal()
    retrain_requested = Signal()

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        self.name_label = QLabel("no model loaded")
        self.hash_label = QLabel("–")
        self.metrics_label = QLabel("–")
        self.metrics_label.setWordWrap(True)
        self.load_button = QPushButton("Load model…")
        self.retrain_button = QPushButton("Retrain…")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.retrain_button)
        layout = QFormLayout(self)
        layout.addRow("Model", self.name_label)
        layout.addRow("Hash", self.hash_label)
        layout.addRow("Held-out", self.metrics_label)
        layout.addRow(buttons)
        self.load_button.clicked.connect(self.load_requested)
        self.retrain_button.clicked.connect(self.retrain_requested)
        state.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    def _on_model_changed(self) -> None:
        model = self._state.model
        if model is None:
            self.name_label.setText("no model loaded")
            self.hash_label.setText("–")
            self.metrics_label.setText("–")
            return
        spec = model.spec
        self.name_label.setText(f"{spec.name} ({spec.preset}, {spec.input_size} px)")
        self.name_label.setToolTip(self._state.model_path or "")
        self.hash_label.setText(spec.model_hash or "–")
        lines = metric_lines(dict(spec.metrics))
        self.metrics_label.setText("\n".join(lines[:8]) if lines else "no figures in its spec")
