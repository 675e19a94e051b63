"""Evaluation report of a trained model: figures, plots, Grad-CAM figure and a model card.

``write_evaluation_report`` writes, for one model named ``<name>``, into ``out_dir``:

- ``<name>.report.json``: every figure (held-out test patches, slide level, history, card info);
- ``<name>.classification_report.txt``: scikit-learn-style text report;
- ``<name>.curves.png``: loss and accuracy, train against validation, per epoch;
- ``<name>.roc.png``: ROC curve of the held-out test patches with its AUC;
- ``<name>.gradcam.png``: 2x2 grid, one IDC-positive and one IDC-negative test patch, original and
  Grad-CAM overlay;
- ``<name>.model_card.md``: a short model card.

``write_comparison_card`` renders several reports side by side (one row per preset).
matplotlib is imported inside the functions and switched to the Agg backend there.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from training.metrics import binary_metrics, classification_report_text, roc_curve
from training.slide_card import SLIDE_HEADING, decision_mode, per_slide_rows, slide_section

__all__ = ["TARGET_NAMES", "write_comparison_card", "write_evaluation_report"]

TARGET_NAMES = ("IDC-negative (0)", "IDC-positive (1)")
_DEFAULT_DATASET = (
    "Breast Histopathology Images (IDC), Kaggle release: 50x50 px RGB patches of 2.5x H&E scans"
)
_FILES = {
    "report": "report.json",
    "classification_report": "classification_report.txt",
    "curves": "curves.png",
    "roc": "roc.png",
    "gradcam": "gradcam.png",
    "model_card": "model_card.md",
}
_LIMITS = (
    "Trained and tested on 2.5x scans at about 4.0 µm/px only; other scales are resampled to it "
    "and untested beyond that.",
    "H&E stained breast tissue only; other stains, organs or fluorescence give meaningless output.",
    "Single-source dataset (Janowczyk & Madabhushi 2016 / Cruz-Roa et al. 2014, one institution, "
    "one scanner); performance on other labs, scanners or staining protocols is unknown.",
    "Labels are coarse patch-level annotations of invasive ductal carcinoma; other lesions "
    "(DCIS, lobular carcinoma) are not a class.",
    "Research and teaching software, not a diagnostic device: not for clinical decisions.",
)


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return "n/a" if math.isnan(float(value)) else f"{float(value):.{digits}f}"
    return str(value)


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
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
    path: Path, y: np.ndarray, prob: np.ndarray, metrics: Mapping[str, Any], name: str
) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], ":", color="grey", label="chance")
    if metrics["roc_auc"] is not None:
        fpr, tpr, _ = roc_curve(y, prob)
        ax.plot(fpr, tpr, label=f"{name} (AUC = {metrics['roc_auc']:.3f})")
        ax.plot(
            1.0 - metrics["specificity"],
            metrics["sensitivity"],
            "o",
            label=f"threshold {metrics['threshold']:.3f}",
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


def _pick_examples(examples: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    picked: list[Mapping[str, Any]] = []
    for label in (1, 0):
        match = next((e for e in examples if int(e["label"]) == label), None)
        if match is not None:
            picked.append(match)
    return picked


def _plot_gradcam(path: Path, examples: Sequence[Mapping[str, Any]], threshold: float) -> None:
    plt = _plt()
    picked = _pick_examples(examples)
    fig, axes = plt.subplots(len(picked), 2, figsize=(6, 3.2 * len(picked)), dpi=100, squeeze=False)
    for row, ex in enumerate(picked):
        label = int(ex["label"])
        prob = float(ex["probability"])
        verdict = "IDC+" if prob >= threshold else "IDC-"
        truth = TARGET_NAMES[label]
        axes[row][0].imshow(np.asarray(ex["patch"], dtype=np.uint8), interpolation="nearest")
        axes[row][0].set_title(f"true: {truth}\np(IDC) = {prob:.3f} → {verdict}", fontsize=9)
        axes[row][1].imshow(np.asarray(ex["overlay"], dtype=np.uint8), interpolation="nearest")
        axes[row][1].set_title(f"Grad-CAM, true: {truth}\np(IDC) = {prob:.3f}", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle("Held-out test patches: original and Grad-CAM", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _split_table(split_counts: Mapping[str, Any]) -> str:
    keys: list[str] = []
    for value in split_counts.values():
        if isinstance(value, Mapping):
            keys += [k for k in value if k not in keys]
    if not keys:
        return _md_table(("split", "patients"), [(s, v) for s, v in split_counts.items()])
    rows = [
        [split, *(value.get(k) if isinstance(value, Mapping) else None for k in keys)]
        for split, value in split_counts.items()
    ]
    return _md_table(("split", *keys), rows)


def replace_slide_section(card_path: Path, report: Mapping[str, Any]) -> None:
    """Swap an existing card's slide-level section for the report's; the rest is kept."""
    card_path = Path(card_path)
    text = card_path.read_text(encoding="utf-8")
    if SLIDE_HEADING not in text:
        raise ValueError(f"{card_path} has no section {SLIDE_HEADING!r}")
    before, rest = text.split(SLIDE_HEADING, 1)
    next_heading = rest.find("\n## ")
    after = rest[next_heading:] if next_heading >= 0 else "\n"
    card_path.write_text(before + slide_section(report) + after, encoding="utf-8")


def _card_markdown(report: Mapping[str, Any]) -> str:
    info = report["card_info"]
    m = report["test"]
    name = report["name"]
    criterion = info.get("threshold_criterion", "f1")
    dataset = info.get("dataset") or _DEFAULT_DATASET
    threshold_note = info.get("threshold_note") or (
        f"Chosen on the validation patients only (criterion: {criterion}); "
        "the test patients were not used to pick it."
    )
    parts = [
        f"# Model card: {name}\n\n",
        "IDC (invasive ductal carcinoma) patch classifier, "
        f"preset **{info.get('preset', 'n/a')}**, input {info.get('input_size', 'n/a')} px "
        "(50x50 px patches at about 4.0 µm/px, 200x200 µm of tissue). "
        "Output: probability that the patch shows IDC.\n\n",
        "## Data\n\n",
        f"{dataset}. Split **by patient** (never by patch): neighbouring patches of one patient "
        "are near-duplicates.\n\n",
    ]
    if info.get("split_counts"):
        parts.append(_split_table(info["split_counts"]))
    parts.append("\n## Held-out test patients (patch level)\n\n")
    cm = m["confusion_matrix"]
    rows = [
        ("accuracy", m["accuracy"]),
        ("balanced accuracy", m["balanced_accuracy"]),
        ("ROC AUC", m["roc_auc"]),
        ("F1, IDC-positive", m["per_class"]["1"]["f1"]),
        ("precision, IDC-positive", m["per_class"]["1"]["precision"]),
        ("recall (sensitivity), IDC-positive", m["per_class"]["1"]["recall"]),
        ("specificity", m["specificity"]),
        ("F1, IDC-negative", m["per_class"]["0"]["f1"]),
        ("patches (IDC-neg / IDC-pos)", f"{m['support']['0']} / {m['support']['1']}"),
        ("confusion [[tn, fp], [fn, tp]]", f"[[{cm[0][0]}, {cm[0][1]}], [{cm[1][0]}, {cm[1][1]}]]"),
    ]
    if info.get("patches_per_s") is not None:
        rows.append(("inference speed, patches/s", info["patches_per_s"]))
    interval = report.get("test_patient_bootstrap_95")
    if interval:
        for key, label in (("f1", "F1, IDC-positive"), ("balanced_accuracy", "balanced accuracy")):
            low, high = interval[key]
            name = f"{label}: 95 % interval, test patients resampled"
            rows.append((name, f"{low:.3f}–{high:.3f}"))
    parts.append(_md_table(("figure", "value"), rows))
    if report.get("slide_level"):
        parts.append("\n" + slide_section(report))
    parts += [
        "\n## Threshold\n\n",
        f"A patch is called IDC-positive when p >= **{report['threshold']:.4f}**. "
        f"{threshold_note}\n",
        "\n## Limits\n\n",
        *[f"- {line}\n" for line in (*_LIMITS, *info.get("extra_limits", ()))],
    ]
    extras = {
        k: v
        for k, v in info.items()
        if k in ("epochs", "seed", "model_file", "trained_at", "framework", "notes")
    }
    if extras:
        parts.append("\n## Training\n\n")
        parts += [f"- {k}: {_fmt(v)}\n" for k, v in extras.items()]
    return "".join(parts)


def write_evaluation_report(
    out_dir: Path,
    *,
    name: str,
    history: Mapping[str, Sequence[float]],
    test_y: ArrayLike,
    test_prob: ArrayLike,
    threshold: float,
    gradcam_examples: Sequence[Mapping[str, Any]],
    slide_level: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    card_info: Mapping[str, Any],
    test_interval: Mapping[str, Sequence[float]] | None = None,
    validation_slides: Sequence[Mapping[str, Any]] | None = None,
    context_choice: Mapping[str, Any] | None = None,
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
    gradcam_examples : sequence of dict
        ``{"patch": uint8 HxWx3, "overlay": uint8 HxWx3, "label": int, "probability": float}``;
        the first IDC-positive and the first IDC-negative one are drawn. Empty: no Grad-CAM figure.
    slide_level : dict, sequence of dict or None
        ``{"per_slide": [...], "pooled": [...]}`` of the complete test patients
        (:func:`training.slides.slide_figures`); an older list of per-slide rows is accepted.
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
        The content of ``<name>.report.json``: ``name``, ``threshold``, ``test`` (see
        :func:`training.metrics.binary_metrics`), ``slide_level``, ``history``, ``card_info`` and
        ``files`` (kind -> path; ``gradcam`` is None without examples).
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
                dict(slide_level) if isinstance(slide_level, Mapping)
                else list(slide_level) if slide_level else None
            ),
            "validation_slides": list(validation_slides) if validation_slides else None,
            "context_choice": dict(context_choice) if context_choice else None,
            "test_patient_bootstrap_95": dict(test_interval) if test_interval else None,
            "history": {k: list(v) for k, v in history.items()},
            "card_info": dict(card_info),
            "files": files,
        }
    )
    Path(str(files["model_card"])).write_text(_card_markdown(report), encoding="utf-8")
    Path(str(files["report"])).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def slide_mean(
    slide_level: Any, key: str, storage: str = "lossless"
) -> float | None:
    """Mean of ``key`` over the slides stored as ``storage``, in the mode the app decides with.

    Older reports scored JPEG only and had no modes.
    """
    rows = per_slide_rows(slide_level)
    mode = decision_mode(rows)
    values = [
        r.get(key) for r in rows
        if r.get("storage", "JPEG Q90") == storage and r.get("mode", "cnn") == mode
    ]
    nums = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(float(v))]
    return sum(nums) / len(nums) if nums else None


COMPARISON_BEGIN = "<!-- presets side by side: written by idc-train compare -->"
COMPARISON_END = "<!-- end of presets side by side -->"
COMPARISON_NOTE = (
    "Same patient split for every model. val: validation patients (used for early stopping, "
    "the threshold and the choice between models); test: held-out test patients, patch level, "
    "scored once at the threshold chosen on validation. app patches/s: the app's LiteRT "
    "predictor on this machine (2 threads, preprocessing included), all models timed in the same "
    "process. Slide-level: complete test patients reassembled and scored by the app's engine, "
    "stored lossless (the patches' exact pixels) and as JPEG Q90 tiles (as scanners store them).\n"
)


def comparison_table(cards: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of several models: validation and held-out test figures, speed."""
    if not cards:
        raise ValueError("a comparison needs at least one report.")
    headers = (
        "preset",
        "model",
        "input px",
        "val F1 (IDC+)",
        "val balanced acc.",
        "test F1 (IDC+)",
        "test balanced acc.",
        "test ROC AUC",
        "threshold",
        "app patches/s",
        "slide F1 lossless (mean)",
        "slide F1 JPEG Q90 (mean)",
    )
    rows = []
    for card in cards:
        info, m, val = card.get("card_info", {}), card["test"], card.get("validation") or {}
        rows.append(
            (
                info.get("preset", "n/a"),
                card["name"],
                info.get("input_size"),
                val.get("f1"),
                val.get("balanced_accuracy"),
                m["per_class"]["1"]["f1"],
                m["balanced_accuracy"],
                m["roc_auc"],
                card["threshold"],
                card.get("app_patches_per_s", info.get("patches_per_s")),
                slide_mean(card.get("slide_level"), "f1"),
                slide_mean(card.get("slide_level"), "f1", "JPEG Q90"),
            )
        )
    return _md_table(headers, rows)


def write_comparison_card(out_path: Path, cards: Sequence[Mapping[str, Any]]) -> Path:
    """Write a Markdown card that sets several models (presets) side by side.

    Parameters
    ----------
    out_path : Path
        Markdown file to write (parent created).
    cards : sequence of dict
        Reports as returned by :func:`write_evaluation_report` (or read from ``*.report.json``),
        optionally with ``validation`` figures and ``app_patches_per_s`` added.

    Returns
    -------
    Path
        ``out_path``.
    """
    text = (
        "# IDC models: presets side by side\n\n"
        + COMPARISON_NOTE
        + "\n"
        + comparison_table(cards)
        + "\n## Limits (all models)\n\n"
        + "".join(f"- {line}\n" for line in _LIMITS)
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path


def embed_comparison(card_path: Path, cards: Sequence[Mapping[str, Any]]) -> None:
    """Put (or replace) the side-by-side section in an existing model card."""
    card_path = Path(card_path)
    text = card_path.read_text(encoding="utf-8")
    section = (
        f"{COMPARISON_BEGIN}\n## Presets side by side\n\n{COMPARISON_NOTE}\n"
        f"{comparison_table(cards)}{COMPARISON_END}\n"
    )
    if COMPARISON_BEGIN in text and COMPARISON_END in text:
        before, rest = text.split(COMPARISON_BEGIN, 1)
        after = rest.split(COMPARISON_END, 1)[1].lstrip("\n")
        text = before + section + ("\n" + after if after else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    card_path.write_text(text, encoding="utf-8")
