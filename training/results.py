"""What evaluating and validating a run return: typed values, not loose dictionaries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.figures import Headline
from training.slide_figures import ContextChoice, SlideFigures


@dataclass(frozen=True)
class GradCamExample:
    """A test patch of the card's Grad-CAM figure: its pixels, their overlay, truth, P(IDC)."""

    patch: np.ndarray
    overlay: np.ndarray
    label: int
    probability: float


@dataclass(frozen=True)
class EvaluationResult:
    """An evaluated and exported run: its spec, headline test figures, report, slide figures.

    ``report`` is the content of ``<name>.report.json``, the JSON document the model card is
    rendered from (:func:`training.report.write_evaluation_report`).
    """

    spec_path: Path
    metrics: Headline
    report: dict[str, Any]
    slide_level: SlideFigures


@dataclass(frozen=True)
class ValidationResult:
    """A candidate run's validation-patient figures (test patients never decoded).

    ``validation_slides`` holds the complete validation patients' slides' figures (None when
    slides were not scored); ``context_choice`` the context stage chosen on those slides, or None.
    """

    run_dir: str
    preset: str
    balance: str
    augmentation: str
    best_epoch: int
    epochs_run: int
    finished: bool
    threshold: float
    validation_patients: Headline
    validation_slides: SlideFigures | None
    context_choice: ContextChoice | None

    def to_dict(self) -> dict[str, Any]:
        """The result as ``validation.json`` holds it (``{}`` for slides not scored)."""
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["validation_patients"] = asdict(self.validation_patients)
        slides = self.validation_slides
        data["validation_slides"] = slides.to_dict() if slides is not None else {}
        choice = self.context_choice
        data["context_choice"] = choice.to_dict() if choice is not None else None
        return data

    def write(self, path: Path) -> None:
        """Write the result as JSON (the run's ``validation.json``)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
