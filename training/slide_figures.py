"""The figures of scored slides: per slide and pooled, with the CNN alone and with context.

The context stage's σ and threshold are chosen here too (:func:`choose_context`), on the
validation patients' slides only, pooled over every storage (lossless, JPEG Q90, 20x).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from training.figures import Headline, flat_dict
from training.metrics import best_threshold, binary_metrics
from training.slides import SLIDE_STORAGES, ScoredSlide, pooled

#: σ (patches) tried for the context stage; 0 = no context (each patch's own CNN probability)
CONTEXT_SIGMAS = (0.0, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)


@dataclass(frozen=True)
class SlideRow:
    """One slide's figures in one storage and mode (``"cnn"`` or ``"context"``)."""

    patient: str
    storage: str
    mode: str
    patches: int
    idc_patches: int
    not_analysed_by_engine: int
    figures: Headline

    def to_dict(self) -> dict[str, Any]:
        """The row as ``report.json`` holds it (the figures beside the other fields)."""
        return flat_dict(self)


@dataclass(frozen=True)
class PooledRow:
    """The figures of every slide of one storage pooled, in one mode, with 95 % intervals."""

    storage: str
    mode: str
    slides: int
    patches: int
    threshold: float
    sigma_patches: float
    figures: Headline
    interval_95: dict[str, list[float]]

    def to_dict(self) -> dict[str, Any]:
        """The row as ``report.json`` holds it (the figures beside the other fields)."""
        return flat_dict(self)


@dataclass(frozen=True)
class SlideFigures:
    """Per-slide and pooled figures of a set of scored slides (:func:`slide_figures`)."""

    per_slide: list[SlideRow] = field(default_factory=list)
    pooled: list[PooledRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """``{"per_slide": [...], "pooled": [...]}``, as ``report.json`` holds them."""
        return {
            "per_slide": [row.to_dict() for row in self.per_slide],
            "pooled": [row.to_dict() for row in self.pooled],
        }


@dataclass(frozen=True)
class ContextCandidate:
    """One σ tried for the context stage: its F1-best threshold and pooled figures."""

    sigma_patches: float
    threshold: float
    figures: Headline
    f1_by_storage: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """The candidate as ``report.json`` holds it (``"f1 <storage>"`` per storage)."""
        row = flat_dict(self)
        del row["f1_by_storage"]
        row.update({f"f1 {storage}": f1 for storage, f1 in self.f1_by_storage.items()})
        return row


@dataclass(frozen=True)
class ContextChoice:
    """σ and threshold chosen on validation slides, with the figures of every σ tried."""

    sigma_patches: float
    threshold: float
    criterion: str
    table: list[ContextCandidate]

    @property
    def sigma_threshold(self) -> tuple[float, float] | None:
        """``(σ, threshold)`` of the context stage, or None when σ = 0 (no context) won."""
        return (self.sigma_patches, self.threshold) if self.sigma_patches > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """The choice as ``report.json`` and ``validation.json`` hold it."""
        return {
            "sigma_patches": self.sigma_patches,
            "threshold": self.threshold,
            "criterion": self.criterion,
            "candidates": [row.to_dict() for row in self.table],
        }


def choose_context(
    validation: Sequence[ScoredSlide], sigmas: Sequence[float] = CONTEXT_SIGMAS
) -> ContextChoice | None:
    """Pick σ and the decision threshold maximising pooled IDC F1 on validation slides.

    Every storage (lossless, JPEG Q90, 20x) of every complete validation patient is pooled, so
    the choice rewards a context stage that holds up on compressed and resampled slides too.
    For each σ the threshold is the F1-best cut; the σ with the highest F1 wins (ties: the
    smaller σ). Test patients never enter. None when the slides do not hold both classes
    (nothing to choose on).
    """
    if {int(v) for s in validation for v in s.labels} != {0, 1}:
        return None
    table = [_candidate(validation, sigma) for sigma in sigmas]
    best = max(table, key=lambda r: (round(r.figures.f1, 6), -r.sigma_patches))
    return ContextChoice(
        sigma_patches=float(best.sigma_patches),
        threshold=float(best.threshold),
        criterion="max pooled IDC F1 over the complete validation patients' slides "
        "(lossless, JPEG Q90 and 20x pooled)",
        table=table,
    )


def _candidate(validation: Sequence[ScoredSlide], sigma: float) -> ContextCandidate:
    y, p = pooled(validation, sigma)
    threshold = best_threshold(y, p, criterion="f1")
    by_storage = {}
    for storage in SLIDE_STORAGES:
        part = [s for s in validation if s.storage == storage]
        if part:
            ys, ps = pooled(part, sigma)
            by_storage[storage] = binary_metrics(ys, ps, threshold).f1
    return ContextCandidate(
        sigma_patches=sigma,
        threshold=round(threshold, 4),
        figures=binary_metrics(y, p, threshold).headline,
        f1_by_storage=by_storage,
    )


def slide_figures(
    slides: Sequence[ScoredSlide],
    *,
    patch_threshold: float,
    context: tuple[float, float] | None,
) -> SlideFigures:
    """Per-slide and pooled figures, with the CNN alone and with the context stage.

    ``context`` is ``(sigma_patches, threshold)`` or None for a model without one.
    """
    modes = {"cnn": (0.0, patch_threshold)}
    if context is not None:
        modes["context"] = context
    figures = SlideFigures()
    for mode, (sigma, threshold) in modes.items():
        for s in slides:
            figures.per_slide.append(
                SlideRow(
                    patient=s.patient,
                    storage=s.storage,
                    mode=mode,
                    patches=len(s.labels),
                    idc_patches=int(s.labels.sum()),
                    not_analysed_by_engine=s.not_analysed,
                    figures=binary_metrics(
                        s.labels, s.decision_probabilities(sigma), threshold
                    ).headline,
                )
            )
        for storage in SLIDE_STORAGES:
            part = [s for s in slides if s.storage == storage]
            if part:
                figures.pooled.append(_pooled_row(part, storage, mode, sigma, threshold))
    return figures


def _pooled_row(
    part: Sequence[ScoredSlide], storage: str, mode: str, sigma: float, threshold: float
) -> PooledRow:
    y, p = pooled(part, sigma)
    return PooledRow(
        storage=storage,
        mode=mode,
        slides=len(part),
        patches=len(y),
        threshold=threshold,
        sigma_patches=sigma,
        figures=binary_metrics(y, p, threshold).headline,
        interval_95=slide_bootstrap_interval(part, sigma, threshold),
    )


def slide_bootstrap_interval(
    slides: Sequence[ScoredSlide],
    sigma_patches: float,
    threshold: float,
    *,
    n_resamples: int = 1000,
    seed: int = 0,
) -> dict[str, list[float]]:
    """95 % intervals of pooled F1 and balanced accuracy with the slides (patients) resampled."""
    rng = np.random.default_rng(seed)
    per_slide = [(s.labels, s.decision_probabilities(sigma_patches)) for s in slides]
    f1s, bacs = [], []
    for _ in range(n_resamples):
        pick = rng.integers(0, len(per_slide), len(per_slide))
        y = np.concatenate([per_slide[i][0] for i in pick])
        p = np.concatenate([per_slide[i][1] for i in pick])
        if len(np.unique(y)) < 2:
            continue
        m = binary_metrics(y, p, threshold)
        f1s.append(m.f1)
        bacs.append(m.balanced_accuracy)
    if not f1s:
        return {}
    return {
        "f1": [float(np.percentile(f1s, 2.5)), float(np.percentile(f1s, 97.5))],
        "balanced_accuracy": [float(np.percentile(bacs, 2.5)), float(np.percentile(bacs, 97.5))],
    }
