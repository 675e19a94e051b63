"""The model in use, in a pathologist's words; a button opens its model card.

What it is, its scale, its intended use, its threshold and how it did on patients it never saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QPushButton, QWidget

from idc_viewer.qt.state import AppState

INTENDED_USE = (
    "Research aid: marks patches of H&E breast tissue that look like invasive "
    "ductal carcinoma. Not a diagnostic device."
)
#: Spec metric groups holding held-out (test) figures, most specific first.
TEST_GROUPS = ("test_patients", "test")


def _pct(value: Any) -> str | None:
    return f"{100 * float(value):.0f} %" if isinstance(value, int | float) else None


def held_out_words(metrics: dict[str, Any], test_patients: Any = None) -> str:
    """The held-out test figures as sentences (what is in the spec; nothing invented)."""
    group = next((metrics[k] for k in TEST_GROUPS if isinstance(metrics.get(k), dict)), None)
    if group is None:
        return "No held-out figures in its spec: read the model card."
    parts = []
    n = group.get("n")
    who = f"{test_patients} patients" if isinstance(test_patients, int) else "patients"
    intro = (
        f"On {n:,} patches of {who} it never saw"
        if isinstance(n, int)
        else f"On {who} it never saw"
    )
    sens, spec = _pct(group.get("sensitivity")), _pct(group.get("specificity"))
    prec = _pct(group.get("precision"))
    if sens:
        parts.append(f"it found {sens} of the IDC patches")
    if spec:
        parts.append(f"called {spec} of the benign patches benign")
    if prec:
        parts.append(f"and {prec} of the patches it flagged were IDC")
    text = intro + (": " + ", ".join(parts) + "." if parts else ".")
    extra: list[str] = []
    for key, name in (
        ("balanced_accuracy", "balanced accuracy"),
        ("roc_auc", "ROC AUC"),
        ("auc", "ROC AUC"),
    ):
        value = group.get(key)
        if isinstance(value, int | float) and not any(name in e for e in extra):
            extra.append(f"{name} {float(value):.2f}")
    if not extra:
        return text
    figures = ", ".join(extra)
    return f"{text} {figures[0].upper()}{figures[1:]}."


def training_words(spec: Any) -> str:
    """``2.5× (4 µm/px), 50×50 px patches = 200×200 µm``."""
    side_um = spec.patch_size_px * spec.patch_mpp
    objective = 10.0 / spec.patch_mpp  # 10x objective ~ 1 µm/px
    return (
        f"{objective:.3g}× ({spec.patch_mpp:g} µm/px): {spec.patch_size_px}×"
        f"{spec.patch_size_px} px patches of {side_um:.0f}×{side_um:.0f} µm tissue"
    )


def model_card_path(spec: Any, model_path: str | None) -> Path | None:
    """``<name>.model_card.md`` beside the model file, if it is there."""
    if not model_path:
        return None
    card = Path(model_path).parent / f"{spec.name}.model_card.md"
    return card if card.is_file() else None


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
        self.scale_label = QLabel("–")
        self.use_label = QLabel(INTENDED_USE)
        self.threshold_label = QLabel("–")
        self.metrics_label = QLabel("–")
        self.hash_label = QLabel("–")
        for label in (
            self.name_label,
            self.scale_label,
            self.use_label,
            self.threshold_label,
            self.metrics_label,
        ):
            label.setWordWrap(True)
        self.card_button = QPushButton("Read the model card…")
        self.card_button.clicked.connect(self.open_model_card)
        self.load_button = QPushButton("Load model…")
        self.retrain_button = QPushButton("Retrain…")
        buttons = QHBoxLayout()
        buttons.addWidget(self.load_button)
        buttons.addWidget(self.retrain_button)
        layout = QFormLayout(self)
        layout.addRow("Model", self.name_label)
        layout.addRow("Trained at", self.scale_label)
        layout.addRow("For", self.use_label)
        layout.addRow("Threshold", self.threshold_label)
        layout.addRow("Held-out", self.metrics_label)
        layout.addRow("Identity", self.hash_label)
        layout.addRow(self.card_button)
        layout.addRow(buttons)
        self.load_button.clicked.connect(self.load_requested)
        self.retrain_button.clicked.connect(self.retrain_requested)
        state.model_changed.connect(self._on_model_changed)
        self._on_model_changed()

    def card_path(self) -> Path | None:
        """The loaded model's card (Markdown), when it has one."""
        model = self._state.model
        return model_card_path(model.spec, self._state.model_path) if model else None

    def open_model_card(self) -> bool:
        """Open the model card with the system's viewer for Markdown/text files."""
        card = self.card_path()
        return card is not None and QDesktopServices.openUrl(QUrl.fromLocalFile(str(card)))

    def _on_model_changed(self) -> None:
        model = self._state.model
        if model is None:
            for label in (
                self.name_label,
                self.scale_label,
                self.threshold_label,
                self.metrics_label,
                self.hash_label,
            ):
                label.setText("–")
            self.name_label.setText("no model loaded")
            self.card_button.setEnabled(False)
            return
        spec = model.spec
        self.name_label.setText(f"{spec.name} ({spec.preset} preset)")
        self.name_label.setToolTip(self._state.model_path or "")
        self.scale_label.setText(training_words(spec))
        if spec.context is not None:
            self.threshold_label.setText(
                f"context P(IDC) ≥ {spec.context.threshold:.2f} flags a patch: the mean of its "
                f"tissue neighbourhood (σ {spec.context.sigma_patches:g} patches), chosen on "
                f"validation slides; a patch's own P ≥ {float(spec.threshold):.2f} with the "
                "context map off"
            )
        else:
            self.threshold_label.setText(
                f"P(IDC) ≥ {float(spec.threshold):.2f} flags a patch (chosen on validation "
                "patients)"
            )
        self.threshold_label.setWordWrap(True)
        patients = dict(spec.training_data).get("patients")
        test_patients = patients.get("test") if isinstance(patients, dict) else None
        self.metrics_label.setText(held_out_words(dict(spec.metrics), test_patients))
        self.hash_label.setText(spec.model_hash or "–")
        card = self.card_path()
        self.card_button.setEnabled(card is not None)
        self.card_button.setToolTip(str(card) if card else "No model card beside the model file")
