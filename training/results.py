"""What evaluating and validating a run return: typed values, not loose dictionaries."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class EvaluationResult:
    """An evaluated and exported run: its spec, headline test figures, report, slide figures."""

    spec_path: Path
    metrics: dict[str, Any]
    report: dict[str, Any]
    slide_level: dict[str, Any]


@dataclass(frozen=True)
class ValidationResult:
    """A candidate run's validation-patient figures (test patients never decoded).

    ``validation_slides`` is ``{"per_slide": [...], "pooled": [...]}``
    (:func:`training.slides.slide_figures`); ``context_choice`` the context stage chosen on
    those slides (σ, threshold, every candidate) or None.
    """

    run_dir: str
    preset: str
    balance: str
    augmentation: str
    best_epoch: int
    epochs_run: int
    finished: bool
    threshold: float
    validation_patients: dict[str, Any]
    validation_slides: dict[str, Any]
    context_choice: dict[str, Any] | None

    def write(self, path: Path) -> None:
        """Write the result as JSON (the run's ``validation.json``)."""
        Path(path).write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
