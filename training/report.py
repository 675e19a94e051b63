"""Evaluation report of a trained model: figures, plots, Grad-CAM figure and a model card.

``write_evaluation_report`` writes, for one model named ``<name>``, into ``out_dir``:

- ``<name>.report.json``: every figure (held-out test patches, slide level, history, card info);
- ``<name>.classification_report.txt``: scikit-learn-style text report;
- ``<name>.curves.png``: loss and accuracy, train against validation, per epoch;
- ``<name>.roc.png``: ROC curve of the held-out test patches with its AUC;
- ``<name>.gradcam.png``: 2x2 grid, one IDC-positive and one IDC-negative test patch, original and
  Grad-CAM overlay;
- ``<name>.model_card.md``: a short model card.

The card itself is rendered from the report by :mod:`training.card` (also after
``rescore-slides`` and ``compare``, through :func:`rewrite_report`).
matplotlib is imported inside the functions and switched to the Agg backend there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from training.card import write_card
from training.figures import BinaryMetrics
from training.metrics import binary_metrics, classification_report_text, roc_curve
from training.results import GradCamExample
from training.slide_figures import ContextChoice, PooledRow, SlideFigures

__all__ = ["TARGET_NAMES", "rewrite_report", "write_evaluation_report"]

TARGET_NAMES = ("IDC-negative (0)", "IDC-positive (1)")
_FILES = {
    "report": "report.json",
    "classification_report": "classification_report.txt",
    "curves": "curves.png",
    "roc": "roc.png",
    "gradcam": "gradcam.png",
    "model_card": "model_card.md",
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(value.to_dict() if hasattr(value, "to_dict") else asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _plot_curves(path: Path, history: Mapping[str, Sequence[float]], name: str) -> None:
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    for ax, key, title in zip(axes, ("loss", "accuracy"), ("Loss", "Accuracy"), strict=True):
        for series, style, label in ((key, "-", "train"), (f"val_{key}", "--", "validation")):
            values = list(history.get(series, []))
            if values:
                ax.plot(range(1, len(values) + 1), values, style, marker="o", ms=3, label=label)
        ax.set_title(f"{title} — {name}")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_roc(
    path: Path, y: np.ndarray, prob: np.ndarray, metrics: BinaryMetrics, name: str
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    if metrics.roc_auc is not None:
        fpr, tpr, _ = roc_curve(y, prob)
        ax.plot(fpr, tpr, label=f"{name} (AUC = {metrics.roc_auc:.3f})")
        ax.plot(
            1.0 - metrics.specificity,
            metrics.sensitivity,
            "o",
            label=f"threshold {metrics.threshold:.3f}",
        )
    else:
        ax.text(0.5, 0.5, "ROC undefined: one class only", ha="center")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC, held-out test patients")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _pick_examples(examples: Sequence[GradCamExample]) -> list[GradCamExample]:
    picked: list[GradCamExample] = []
    for label in (1, 0):
        match = next((e for e in examples if int(e.label) == label), None)
        if match is not None:
            picked.append(match)
    return picked


def _plot_gradcam(path: Path, examples: Sequence[GradCamExample], threshold: float) -> None:
    plt = _plt()
    picked = _pick_examples(examples)
    fig, axes = plt.subplots(len(picked), 2, figsize=(6, 3.2 * len(picked)), dpi=100, squeeze=False)
    for row, ex in enumerate(picked):
        label = int(ex.label)
        prob = float(ex.probability)
        verdict = "IDC+" if prob >= threshold else "IDC-"
        truth = TARGET_NAMES[label]
        axes[row][0].imshow(np.asarray(ex.patch, dtype=np.uint8), interpolation="nearest")
        axes[row][0].set_title(f"true: {truth}\np(IDC) = {prob:.3f} → {verdict}", fontsize=9)
        axes[row][1].imshow(np.asarray(ex.overlay, dtype=np.uint8), interpolation="nearest")
        axes[row][1].set_title(f"Grad-CAM, true: {truth}\np(IDC) = {prob:.3f}", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Held-out test patches: original and Grad-CAM", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_evaluation_report(
    out_dir: Path,
    *,
    name: str,
    history: Mapping[str, Sequence[float]],
    test_y: ArrayLike,
    test_prob: ArrayLike,
    threshold: float,
    gradcam_examples: Sequence[GradCamExample],
    slide_level: SlideFigures | Sequence[Mapping[str, Any]] | None,
    card_info: Mapping[str, Any],
    test_interval: Mapping[str, Sequence[float]] | None = None,
    validation_slides: Sequence[PooledRow] | None = None,
    context_choice: ContextChoice | None = None,
) -> dict[str, Any]:
    """Write the figures, plots and model card of one trained model.

    Parameters
    ----------
    out_dir : Path
        Folder to write into (created).
    name : str
        Model name; every file is ``<name>.<kind>``.
    history : mapping of str to list of float
        Keras history: ``loss``, ``val_loss``, ``accuracy``, ``val_accuracy`` per epoch (missing
        series are left out of the plot).
    test_y, test_prob : array_like
        Held-out test patch labels (0/1) and predicted IDC probabilities.
    threshold : float
        Decision threshold, chosen on validation patients.
    gradcam_examples : sequence of GradCamExample
        The first IDC-positive and the first IDC-negative one are drawn. Empty: no Grad-CAM
        figure.
    slide_level : SlideFigures, sequence of dict or None
        The complete test patients' slide figures (:func:`training.slide_figures.slide_figures`);
        an older list of per-slide rows is accepted.
    validation_slides, context_choice : optional
        Pooled validation-slide figures and the context stage's choice (σ, threshold, every
        candidate), shown in the card's slide section.
    test_interval : mapping, optional
        ``{"f1": [low, high], "balanced_accuracy": [low, high]}``: 95 % intervals with the test
        patients resampled (:func:`training.metrics.patient_bootstrap_interval`).
    card_info : mapping
        Free facts for the card. Known keys: ``preset``, ``input_size``, ``dataset``,
        ``split_counts`` (``{split: {"patients": n, "patches": n, ...}}``), ``threshold_criterion``,
        ``threshold_note``, ``patches_per_s``, ``epochs``, ``seed``, ``model_file``, ``trained_at``,
        ``framework``, ``notes``, ``extra_limits`` (list of str).

    Returns
    -------
    dict
        The JSON document ``<name>.report.json`` holds, which the card is rendered from:
        ``name``, ``threshold``, ``test`` (:class:`training.figures.BinaryMetrics`),
        ``slide_level``, ``history``, ``card_info`` and ``files`` (kind -> path; ``gradcam`` is
        None without examples).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y = np.asarray(test_y).reshape(-1)
    prob = np.asarray(test_prob, dtype=np.float64).reshape(-1)
    metrics = binary_metrics(y, prob, threshold)
    files: dict[str, str | None] = {
        kind: str(out_dir / f"{name}.{suffix}") for kind, suffix in _FILES.items()
    }
    text = classification_report_text(y, prob, threshold, target_names=TARGET_NAMES, digits=3)
    Path(str(files["classification_report"])).write_text(text, encoding="utf-8")
    _plot_curves(Path(str(files["curves"])), history, name)
    _plot_roc(Path(str(files["roc"])), y, prob, metrics, name)
    if _pick_examples(gradcam_examples):
        _plot_gradcam(Path(str(files["gradcam"])), gradcam_examples, threshold)
    else:
        files["gradcam"] = None
    report: dict[str, Any] = _jsonable(
        {
            "name": name,
            "threshold": float(threshold),
            "test": metrics,
            "slide_level": (
                slide_level
                if isinstance(slide_level, SlideFigures | Mapping)
                else list(slide_level)
                if slide_level
                else None
            ),
            "validation_slides": list(validation_slides) if validation_slides else None,
            "context_choice": context_choice,
            "test_patient_bootstrap_95": dict(test_interval) if test_interval else None,
            "history": {k: list(v) for k, v in history.items()},
            "card_info": dict(card_info),
            "files": files,
        }
    )
    return rewrite_report(Path(str(files["report"])), report)


def rewrite_report(report_file: Path, report: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``report`` to ``report_file`` and render the model card beside it from it."""
    data: dict[str, Any] = _jsonable(report)
    report_file = Path(report_file)
    write_card(data, report_file.with_name(f"{data['name']}.model_card.md"))
    report_file.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data
