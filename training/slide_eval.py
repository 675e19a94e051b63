"""Whole-slide evaluation of an exported model: complete patients scored, context chosen.

The context stage's σ and threshold are chosen on the complete *validation* patients' slides
(:func:`add_context`) and written into the spec; the complete test patients' slides are then
scored once with it (:func:`slide_level_figures`). :func:`rescore_slides` redoes this for a
model already exported, without touching its weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from training.slide_figures import ContextChoice, SlideFigures, choose_context, slide_figures
from training.slides import ScoredSlide, score_slides


def complete_patients(split_file: Path, part: str) -> list[str]:
    """The patients of ``part`` whose whole slide can be reassembled.

    Splits written before ``complete_patients`` was recorded name them ``large_patients``.
    """
    split = json.loads(Path(split_file).read_text(encoding="utf-8"))
    complete = split.get("complete_patients", split.get("large_patients", []))
    return sorted(set(split[part]) & set(complete))


def context_of(spec: Any) -> tuple[float, float] | None:
    """``(σ, threshold)`` of the spec's context stage, or None."""
    return None if spec.context is None else (spec.context.sigma_patches, spec.context.threshold)


def slide_level_figures(
    loaded: Any,
    patients: Sequence[str],
    data_dir: Path,
    *,
    log: Callable[[str], None] = print,
) -> SlideFigures:
    """Score each complete patient as the engine scores a whole slide (lossless, JPEG, 20x).

    The figures are per slide and pooled (:func:`training.slide_figures.slide_figures`), with
    the CNN alone and, when the model has one, with its context stage.
    """
    scored = score_slides(loaded, patients, data_dir, log=log)
    figures = slide_figures(
        scored, patch_threshold=loaded.spec.threshold, context=context_of(loaded.spec)
    )
    for row in figures.pooled:
        log(
            f"slides pooled ({row.storage}, {row.mode}): F1 {row.figures.f1:.3f}, "
            f"balanced accuracy {row.figures.balanced_accuracy:.3f}"
        )
    return figures


def add_context(
    spec_path: Path, validation: Sequence[ScoredSlide], *, log: Callable[[str], None] = print
) -> ContextChoice | None:
    """Choose the context stage on validation slides and write it into the model's spec.

    Only the spec changes (the weights and their hashes stay); a choice of σ = 0 (no context
    helps) writes no context stage, and without validation slides of both classes nothing is
    chosen (None).
    """
    from dataclasses import replace

    from idc_viewer.ml.spec import ContextSpec, read_spec, write_spec

    choice = choose_context(validation)
    if choice is None:
        log("context stage: not chosen (no complete validation slide with both classes)")
        return None
    spec = read_spec(spec_path)
    context = None
    if choice.sigma_patches > 0:
        context = ContextSpec(
            sigma_patches=choice.sigma_patches,
            threshold=choice.threshold,
            chosen_on=choice.criterion,
        )
    write_spec(replace(spec, context=context), Path(spec_path).parent)
    log(
        f"context stage: sigma {choice.sigma_patches} patches, threshold {choice.threshold:.3f} "
        f"({choice.criterion})"
    )
    return choice


def rescore_slides(
    spec: Path, data_dir: Path, *, choose: bool = False, log: Callable[[str], None] = print
) -> SlideFigures:
    """Score an exported model's complete test patients as slides again; update report and card.

    For when the slide figures' method changed without retraining: the weights are not touched.
    With ``choose``, the context stage is first chosen on the complete *validation* patients'
    slides and written into the spec (only the spec changes). The patients come from the
    ``<name>.split.json`` beside the spec.
    """
    from idc_viewer.ml.loading import load_model
    from idc_viewer.ml.spec import read_spec, spec_path_for
    from training.report import rewrite_report

    spec_path = spec_path_for(Path(spec))
    name = read_spec(spec_path).name
    beside = spec_path.with_name
    split_file, report_file = beside(f"{name}.split.json"), beside(f"{name}.report.json")
    report = json.loads(report_file.read_text(encoding="utf-8"))
    if choose:
        loaded = load_model(spec_path)
        validation_slides = score_slides(
            loaded, complete_patients(split_file, "validation"), data_dir, log=log
        )
        choice = add_context(spec_path, validation_slides, log=log)
        report["context_choice"] = choice.to_dict() if choice is not None else None
        report["validation_slides"] = slide_figures(
            validation_slides,
            patch_threshold=loaded.spec.threshold,
            context=context_of(read_spec(spec_path)),
        ).pooled
    figures = slide_level_figures(
        load_model(spec_path), complete_patients(split_file, "test"), data_dir, log=log
    )
    report["slide_level"] = figures.to_dict()
    rewrite_report(report_file, report)
    return figures
