"""Several exported models side by side: figures from their reports, speed measured here.

``write_comparison`` stores the table in every compared model's report and renders each card
again from it, and writes a stand-alone comparison card (``PRESETS.md``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from idc_viewer.core.patches import DEFAULT_PATCH_PX


def app_patches_per_s(spec_path: Path, n: int = 2048, batch: int = 256) -> float:
    """Throughput of the app's own predictor (LiteRT, preprocessing included) on random patches."""
    from idc_viewer.ml.loading import load_model

    predictor = load_model(spec_path).new_predictor()
    patches = np.random.default_rng(0).integers(
        0, 256, (n, DEFAULT_PATCH_PX, DEFAULT_PATCH_PX, 3), np.uint8
    )
    predictor.predict(patches[:batch])  # warm-up: allocation, first-call costs
    start = time.perf_counter()
    for offset in range(0, n, batch):
        predictor.predict(patches[offset : offset + batch])
    return float(n / (time.perf_counter() - start))


def write_comparison(specs: Sequence[Path], out: Path, *, update_cards: bool = True) -> Path:
    """A side-by-side card of models, from the ``<name>.report.json`` beside each spec.

    Each model's own card gets the same table (``update_cards``), so a card shows every preset.
    """
    from idc_viewer.ml.spec import read_spec, spec_path_for
    from training.card import write_comparison_card
    from training.report import rewrite_report

    cards, report_files = [], []
    for path in specs:
        spec_path = spec_path_for(Path(path))
        spec = read_spec(spec_path)
        report_file = spec_path.with_name(f"{spec.name}.report.json")
        card = json.loads(report_file.read_text(encoding="utf-8"))
        card["validation"] = spec.metrics.get("validation_patients")
        card["app_patches_per_s"] = app_patches_per_s(spec_path)
        cards.append(card)
        report_files.append(report_file)
    written = Path(write_comparison_card(out, cards))
    if update_cards:
        summary = [_comparison_row(card) for card in cards]
        for report_file in report_files:
            report = json.loads(report_file.read_text(encoding="utf-8"))
            report["comparison"] = summary
            rewrite_report(report_file, report)
    return written


def _comparison_row(card: dict[str, Any]) -> dict[str, Any]:
    """What the comparison table reads of a report (not the whole report, nor its history)."""
    keys = (
        "name",
        "threshold",
        "test",
        "slide_level",
        "card_info",
        "validation",
        "app_patches_per_s",
    )
    return {k: card.get(k) for k in keys}
