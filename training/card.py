"""The model card, rendered from ``<name>.report.json`` alone, every time.

No section is edited in place: a change of figures (``rescore-slides``, ``compare``) updates the
report and renders the card again, so card and report cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from training.markdown import fmt, md_table
from training.slide_card import decision_mode, per_slide_rows, slide_section

DEFAULT_DATASET = (
    "Breast Histopathology Images (IDC), Kaggle release: 50x50 px RGB patches of 2.5x H&E scans"
)
LIMITS = (
    "Trained and tested on 2.5x scans at about 4.0 µm/px only; other scales are resampled to it "
    "and untested beyond that.",
    "H&E stained breast tissue only; other stains, organs or fluorescence give meaningless output.",
    "Single-source dataset (Janowczyk & Madabhushi 2016 / Cruz-Roa et al. 2014, one institution, "
    "one scanner); performance on other labs, scanners or staining protocols is unknown.",
    "Labels are coarse patch-level annotations of invasive ductal carcinoma; other lesions "
    "(DCIS, lobular carcinoma) are not a class.",
    "Research and teaching software, not a diagnostic device: not for clinical decisions.",
)


def split_table(split_counts: Mapping[str, Any]) -> str:
    """A Markdown table of patients and patches per split."""
    keys: list[str] = []
    for value in split_counts.values():
        if isinstance(value, Mapping):
            keys += [k for k in value if k not in keys]
    if not keys:
        return md_table(("split", "patients"), [(s, v) for s, v in split_counts.items()])
    rows = [
        [split, *(value.get(k) if isinstance(value, Mapping) else None for k in keys)]
        for split, value in split_counts.items()
    ]
    return md_table(("split", *keys), rows)


def render_card(report: Mapping[str, Any]) -> str:
    """The whole model card, from a report (``<name>.report.json``) alone."""
    info = report["card_info"]
    m = report["test"]
    name = report["name"]
    criterion = info.get("threshold_criterion", "f1")
    dataset = info.get("dataset") or DEFAULT_DATASET
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
        f"`{name}.spec.json` holds the SHA-256 of `{name}.keras` (`weights_sha256`) and of the "
        "`.tflite` (`tflite_sha256`): the app refuses the model when a file's hash differs, when "
        "the `.keras` archive holds anything but Keras's `config.json`, `metadata.json` and an "
        "HDF5 `model.weights.h5`, or when its configuration carries code (Lambda or custom "
        "layers); Keras itself loads it only in safe mode.\n\n",
        "## Data\n\n",
        f"{dataset}. Split **by patient** (never by patch): neighbouring patches of one patient "
        "are near-duplicates.\n\n",
    ]
    if info.get("split_counts"):
        parts.append(split_table(info["split_counts"]))
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
    parts.append(md_table(("figure", "value"), rows))
    if report.get("slide_level"):
        parts.append("\n" + slide_section(report))
    parts += [
        "\n## Threshold\n\n",
        f"A patch is called IDC-positive when p >= **{report['threshold']:.4f}**. "
        f"{threshold_note}\n",
        _context_threshold_note(report.get("context_choice")),
        "\n## Limits\n\n",
        *[f"- {line}\n" for line in (*LIMITS, *info.get("extra_limits", ()))],
    ]
    extras = {
        k: v
        for k, v in info.items()
        if k in ("epochs", "seed", "model_file", "trained_at", "framework", "notes")
    }
    if extras:
        parts.append("\n## Training\n\n")
        parts += [f"- {k}: {fmt(v)}\n" for k, v in extras.items()]
    # free-written sections (how the model was chosen, why it is not the default, ...)
    for section in info.get("extra_sections", ()):
        parts += [f"\n## {section['heading']}\n\n", str(section["markdown"]).strip(), "\n"]
    if report.get("comparison"):
        parts += [
            "\n## Presets side by side\n\n",
            COMPARISON_NOTE,
            "\n",
            comparison_table(report["comparison"]),
        ]
    return "".join(parts)


def _context_threshold_note(choice: Mapping[str, Any] | None) -> str:
    if not choice or not choice.get("sigma_patches"):
        return ""
    return (
        f"\nThe app decides on the **context map** (σ = {choice['sigma_patches']} patches): a "
        f"patch is flagged when its context probability is >= **{choice['threshold']:.4f}**, "
        "chosen with σ on the complete validation patients' slides (see the slide-level "
        "section). The threshold above is the patch map's (Overlay › Context map off).\n"
    )


def write_card(report: Mapping[str, Any], path: Path) -> Path:
    """Render ``report``'s card into ``path``."""
    path = Path(path)
    path.write_text(render_card(report), encoding="utf-8")
    return path


def slide_mean(slide_level: Any, key: str, storage: str = "lossless") -> float | None:
    """Mean of ``key`` over the slides stored as ``storage``, in the mode the app decides with.

    Older reports scored JPEG only and had no modes.
    """
    rows = per_slide_rows(slide_level)
    mode = decision_mode(rows)
    values = [
        r.get(key)
        for r in rows
        if r.get("storage", "JPEG Q90") == storage and r.get("mode", "cnn") == mode
    ]
    nums = [float(v) for v in values if isinstance(v, int | float) and math.isfinite(float(v))]
    return sum(nums) / len(nums) if nums else None


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
    return md_table(headers, rows)


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
        + "".join(f"- {line}\n" for line in LIMITS)
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text, encoding="utf-8")
    return out_path
