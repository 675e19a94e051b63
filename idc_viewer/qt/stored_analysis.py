"""A slide's stored analyses as the window shows them (which one, by which model, its threshold).

Qt-free: :func:`find_stored` reads a :class:`~idc_viewer.core.results.ResultStore`; the tests
call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.labels import model_label
from idc_viewer.core.results import ResultStore


@dataclass(frozen=True)
class StoredHeatmap:
    """A slide's stored analysis as the window shows it.

    ``threshold`` is the decision threshold of the model that made it (None for analyses stored
    before it was recorded); ``by_loaded_model`` says whether that model is the loaded one.
    """

    heatmap: Heatmap
    label: str
    threshold: float | None
    by_loaded_model: bool
    #: The tissue cells the analysis set out to score (None for stores without one).
    tissue_mask: np.ndarray | None = None


def find_stored(
    store: ResultStore, fingerprint: str, model: Any | None, slide_mpp: float | None = None
) -> StoredHeatmap | None:
    """The stored heatmap of a slide, or None.

    Prefers the current model's analysis; otherwise the most recently updated one. With
    ``slide_mpp``, only analyses made at that scale (others' cells would not fit the slide).
    """
    analyses = store.find(fingerprint)
    try:
        current = model.spec.model_hash if model is not None else None
        usable = [
            a
            for a in analyses
            if a.done_mask().any()
            and (slide_mpp is None or abs(a.grid.slide_mpp - slide_mpp) <= 1e-6 * slide_mpp)
        ]
        if not usable:
            return None
        chosen = next((a for a in usable if a.key.model_hash == current), usable[0])
        model_hash = chosen.key.model_hash
        by_loaded_model = model is not None and model_hash == current
        name = chosen.meta.get("model_name") or "model"
        threshold = chosen.meta.get("model_threshold")
        if model is not None and by_loaded_model:
            name, threshold = model.spec.name, float(model.spec.threshold)
        return StoredHeatmap(
            heatmap=chosen.heatmap(),
            label=model_label(str(name), model_hash),
            threshold=None if threshold is None else float(threshold),
            by_loaded_model=by_loaded_model,
            tissue_mask=chosen.tissue_mask,
        )
    finally:
        for analysis in analyses:
            analysis.close()
