"""The model card's whole-slide section, rendered from ``report.json`` every time.

It shows the pooled figures of the complete test patients' slides (lossless, JPEG Q90, 20x;
the CNN alone and with the context stage), states plainly whether the project's target is met,
lists each slide, and shows how the context stage was chosen on validation slides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from training.markdown import md_table

SLIDE_HEADING = "## Slide level (complete test patients, reassembled slides)"
TARGET_F1, TARGET_BAC, TARGET_ROBUST_DROP = 0.80, 0.85, 0.03
STORAGE_TEXT = {
    "lossless": "*lossless* (the patches' exact pixels: the model's own figure)",
    "JPEG Q90": "*JPEG Q90* (as scanners store tiles)",
    "20x": "*20x* (the lossless slide upsampled 8x to 0.5 µm/px with a 4x-downsampled level, "
    "resampled by the engine to 4 µm/px)",
}


def per_slide_rows(slide_level: Any) -> list[dict[str, Any]]:
    """One row per slide and mode, from a new (dict) or an older (list) report."""
    if not slide_level:
        return []
    if isinstance(slide_level, Mapping):
        return list(slide_level.get("per_slide", []))
    return list(slide_level)


def decision_mode(rows: Sequence[Mapping[str, Any]]) -> str:
    """The mode the app decides with: ``context`` when the model has one, else ``cnn``."""
    return "context" if any(r.get("mode") == "context" for r in rows) else "cnn"


def _interval(row: Mapping[str, Any], key: str) -> str:
    values = (row.get("interval_95") or {}).get(key)
    return f"{values[0]:.3f}–{values[1]:.3f}" if values else "-"


def pooled_table(pooled: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of the pooled slide figures per storage and mode."""
    headers = (
        "storage",
        "mode",
        "slides",
        "patches",
        "threshold",
        "σ (patches)",
        "F1 (IDC)",
        "F1 95 %",
        "balanced acc.",
        "BAC 95 %",
        "ROC AUC",
    )
    rows = [
        (
            r["storage"],
            r["mode"],
            r["slides"],
            r["patches"],
            r["threshold"],
            r["sigma_patches"],
            r["f1"],
            _interval(r, "f1"),
            r["balanced_accuracy"],
            _interval(r, "balanced_accuracy"),
            r.get("roc_auc"),
        )
        for r in pooled
    ]
    return md_table(headers, rows)


def target_statement(pooled: Sequence[Mapping[str, Any]]) -> str:
    """Whether the decision mode meets F1 >= 0.80 and BAC >= 0.85 (lossless), robustly."""
    if not pooled:
        return ""
    mode = "context" if any(r["mode"] == "context" for r in pooled) else "cnn"
    by_storage = {r["storage"]: r for r in pooled if r["mode"] == mode}
    base = by_storage.get("lossless")
    if base is None:
        return ""
    met = base["f1"] >= TARGET_F1 and base["balanced_accuracy"] >= TARGET_BAC
    lines = [
        f"**Target (F1 ≥ {TARGET_F1:.2f} and balanced accuracy ≥ {TARGET_BAC:.2f} on the "
        f"complete test patients' lossless slides, as the app decides — {mode}): "
        f"{'met' if met else 'NOT met'}** (F1 {base['f1']:.3f}, balanced accuracy "
        f"{base['balanced_accuracy']:.3f})."
    ]
    for storage in ("JPEG Q90", "20x"):
        row = by_storage.get(storage)
        if row is None:
            continue
        drop_f1 = base["f1"] - row["f1"]
        drop_bac = base["balanced_accuracy"] - row["balanced_accuracy"]
        within = drop_f1 <= TARGET_ROBUST_DROP and drop_bac <= TARGET_ROBUST_DROP
        lines.append(
            f"{storage}: F1 {row['f1']:.3f}, balanced accuracy {row['balanced_accuracy']:.3f} — "
            f"{'within' if within else 'NOT within'} {TARGET_ROBUST_DROP:.2f} of lossless."
        )
    return " ".join(lines) + "\n"


def _per_slide_table(rows: Sequence[Mapping[str, Any]]) -> str:
    keys = [
        "patient",
        "storage",
        "mode",
        "patches",
        "idc_patches",
        "not_analysed_by_engine",
        "f1",
        "balanced_accuracy",
        "precision",
        "recall",
        "roc_auc",
    ]
    keys = [k for k in keys if any(k in r for r in rows)]
    return md_table(keys, [[r.get(k) for k in keys] for r in rows])


def context_section(choice: Mapping[str, Any] | None) -> str:
    """The card's account of the context stage's choice (empty without one)."""
    if not choice:
        return ""
    headers = (
        "σ (patches)",
        "threshold",
        "F1 pooled",
        "balanced acc.",
        "F1 lossless",
        "F1 JPEG Q90",
        "F1 20x",
    )
    rows = [
        (
            c["sigma_patches"],
            c["threshold"],
            c["f1"],
            c["balanced_accuracy"],
            c.get("f1 lossless"),
            c.get("f1 JPEG Q90"),
            c.get("f1 20x"),
        )
        for c in choice.get("candidates", [])
    ]
    chosen = (
        f"σ = {choice['sigma_patches']} patches, threshold {choice['threshold']:.4f}"
        if choice["sigma_patches"] > 0
        else "no context stage (σ = 0 was best)"
    )
    return (
        "\n### Context stage, chosen on validation slides\n\n"
        "Decision probability of a patch = Gaussian-weighted mean of the CNN probabilities of "
        "the analysed tissue patches around it (itself included; background and unanalysed "
        "cells carry no weight). σ and the threshold were chosen by "
        f"{choice['criterion']}; the test patients were not used. Chosen: **{chosen}**.\n\n"
        + md_table(headers, rows)
    )


def slide_section(report: Mapping[str, Any]) -> str:
    """The card's slide-level section, from the whole report."""
    slide_level = report.get("slide_level")
    rows = per_slide_rows(slide_level)
    pooled = slide_level.get("pooled", []) if isinstance(slide_level, Mapping) else []
    storages = list(dict.fromkeys(r.get("storage", "JPEG Q90") for r in rows))
    parts = [
        f"{SLIDE_HEADING}\n\n",
        "Each complete test patient is reassembled as a slide and scored by the app's engine, "
        f"stored {len(storages)} way{'s' if len(storages) != 1 else ''}: "
        + "; ".join(STORAGE_TEXT.get(s, s) for s in storages)
        + ". Mode *cnn*: each patch's own CNN probability at the patch threshold; *context*: "
        "the context stage's decision probability at its threshold (what the app flags). "
        "Pooled: every labelled patch of the slides together; 95 % intervals with the slides "
        "resampled.\n\n",
    ]
    if pooled:
        parts += [pooled_table(pooled), "\n", target_statement(pooled), "\n"]
    if rows:
        parts += ["Per slide:\n\n", _per_slide_table(rows)]
    validation = report.get("validation_slides")
    if validation:
        parts += [
            "\nThe same, pooled over the complete *validation* patients' slides:\n\n",
            pooled_table(validation),
        ]
    parts.append(context_section(report.get("context_choice")))
    return "".join(parts)
