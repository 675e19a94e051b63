"""One open slide as the engine serves it to the CLI and the GUI alike.

A :class:`SlideSession` holds an open slide, its fingerprint (computed once, on first use, or
passed in by whoever already has it), its grid for a model, and the results store. Through it
a caller finds the slide's stored analyses (:meth:`~SlideSession.stored`), analyses it
(:meth:`~SlideSession.analyze`: immutable events), exports a heatmap one way with one
provenance (:meth:`~SlideSession.export`), and explains a cell with Grad-CAM
(:meth:`~SlideSession.explain`). Everything the GUI shows
is reproducible headless through these calls.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from idc_viewer.core.closing import Closeable
from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.jobs import DEFAULT_BATCH_SIZE
from idc_viewer.core.patches import PatchGrid, make_grid
from idc_viewer.core.readers import open_slide
from idc_viewer.core.slide import Slide
from idc_viewer.engine.analysis import AnalysisModel, analyze
from idc_viewer.engine.decision import decision_heatmap
from idc_viewer.engine.explain import Explanation, explain_cell
from idc_viewer.engine.outputs import (
    WrittenOutputs,
    slide_stem,
    write_outputs,
    write_warning_provenance,
)
from idc_viewer.engine.provenance import ModelRef, provenance

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.jobs import CancelToken
    from idc_viewer.core.slide import SlideInfo
    from idc_viewer.core.store import ResultStore
    from idc_viewer.core.stored_analysis import StoredAnalysis
    from idc_viewer.engine.events import AnalysisEvent
    from idc_viewer.ml.spec import ModelSpec


@dataclass(frozen=True)
class StoredHeatmap:
    """A slide's stored analysis, with what is known of the model that made it.

    ``by_loaded_model`` says whether ``model`` is the model the caller has loaded.
    """

    heatmap: Heatmap
    model: ModelRef
    by_loaded_model: bool
    #: The tissue cells the analysis set out to score (None for stores without one).
    tissue_mask: np.ndarray | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        """The model's ``name (hash[:8])``."""
        return self.model.label

    @property
    def threshold(self) -> float | None:
        """The model's own threshold (None for analyses stored before it was recorded)."""
        return self.model.threshold


def _usable(analysis: StoredAnalysis, slide_mpp: float | None) -> bool:
    """Holds a cell, and (with ``slide_mpp``) was made at that scale."""
    if slide_mpp is not None and abs(analysis.grid.slide_mpp - slide_mpp) > 1e-6 * slide_mpp:
        return False
    return bool(analysis.done_mask().any())


def find_stored(
    store: ResultStore, fingerprint: str, model: AnalysisModel | None, slide_mpp: float | None
) -> StoredHeatmap | None:
    """The stored heatmap of a slide, or None.

    Prefers ``model``'s analysis; otherwise the most recently updated one. With ``slide_mpp``,
    only analyses made at that scale (others' cells would not fit the slide).
    """
    analyses = store.find(fingerprint)
    try:
        current = model.spec.model_hash if model is not None else None
        usable = [a for a in analyses if _usable(a, slide_mpp)]
        if not usable:
            return None
        chosen = next((a for a in usable if a.key.model_hash == current), usable[0])
        model_hash = chosen.key.model_hash
        by_loaded_model = model is not None and model_hash == current
        name = chosen.meta.get("model_name") or "model"
        threshold = chosen.meta.get("model_threshold")
        if model is not None and by_loaded_model:
            name, threshold = model.spec.name, float(model.spec.threshold)
        ref = ModelRef(str(name), model_hash, None if threshold is None else float(threshold))
        return StoredHeatmap(
            heatmap=chosen.heatmap(),
            model=ref,
            by_loaded_model=by_loaded_model,
            tissue_mask=chosen.tissue_mask,
        )
    finally:
        for analysis in analyses:
            analysis.close()


class SlideSession(Closeable):
    """An open slide with its fingerprint, grids, stored analyses, export and Grad-CAM.

    Parameters
    ----------
    slide
        The open slide; the session closes it on :meth:`close` when it opened it itself
        (:meth:`open`) or when ``owns_slide`` is True.
    store
        Where analyses are kept and resumed from (None: nowhere; nothing is found stored).
    fingerprint
        The slide's :func:`~idc_viewer.core.fingerprint.slide_fingerprint` when the caller has it;
        otherwise computed on first use, once (cached in the store's fingerprint folder).
    """

    def __init__(
        self,
        slide: Slide,
        store: ResultStore | None = None,
        fingerprint: str | None = None,
        *,
        owns_slide: bool = False,
    ) -> None:
        self.slide = slide
        self.store = store
        self._fingerprint = fingerprint
        self._owns_slide = owns_slide

    @classmethod
    def open(
        cls, path: str | Path, *, mpp: float | None = None, store: ResultStore | None = None
    ) -> SlideSession:
        """Open the slide at ``path`` (``mpp`` overrides or supplies its µm/px).

        Raises :class:`~idc_viewer.core.slide.SlideError` when it cannot be opened.
        """
        return cls(open_slide(str(path), mpp=mpp), store, owns_slide=True)

    def close(self) -> None:
        """Close the slide when the session owns it."""
        if self._owns_slide:
            self.slide.close()

    @property
    def info(self) -> SlideInfo:
        """The slide's metadata."""
        return self.slide.info

    @property
    def fingerprint(self) -> str:
        """The slide's content id, computed once (raises ``SlideError`` if unreadable)."""
        if self._fingerprint is None:
            cache = self.store.fingerprint_dir if self.store is not None else None
            self._fingerprint = slide_fingerprint(self.slide, cache)
        return self._fingerprint

    def grid(self, spec: ModelSpec) -> PatchGrid:
        """The patch grid of a model with ``spec`` over this slide (``MissingMppError``)."""
        return make_grid(self.info, patch_px=spec.patch_size_px, model_mpp=spec.patch_mpp)

    def stored(self, model: AnalysisModel | None = None) -> StoredHeatmap | None:
        """The slide's stored heatmap at its scale, ``model``'s first (see :func:`find_stored`)."""
        if self.store is None:
            return None
        return find_stored(self.store, self.fingerprint, model, self.info.mpp)

    def analyze(
        self,
        model: AnalysisModel,
        cancel: CancelToken | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> Generator[AnalysisEvent, None, None]:
        """Analyse the slide with ``model``, resuming from the store (events: see analyze).

        The fingerprint is the session's: computed when the store is opened, unless known.
        """
        return analyze(
            self.slide,
            model,
            self.store,
            cancel,
            batch_size,
            fingerprint=lambda: self.fingerprint,
        )

    def export(
        self,
        out_dir: Path,
        heatmap: Heatmap,
        threshold: float,
        model: ModelSpec | ModelRef,
        *,
        stem: str | None = None,
        decision: Heatmap | None = None,
        decision_map: str | None = None,
    ) -> WrittenOutputs:
        """Write the four export files of ``heatmap`` (the CNN's probabilities) into ``out_dir``.

        ``model`` made the heatmap: its spec when loaded, else what the store knows of it.
        Flags and regions come from ``decision`` at ``threshold``; by default the model's
        decision map (:func:`~idc_viewer.engine.decision.decision_heatmap`, the heatmap itself
        for a :class:`ModelRef`). ``stem`` defaults to :func:`slide_stem`; ``decision_map``
        (``"patch"``/``"context"``) is recorded in the provenance when given. Raises
        :class:`~idc_viewer.core.writers.ExportError`.
        """
        if decision is None:
            decision = heatmap if isinstance(model, ModelRef) else decision_heatmap(heatmap, model)
        info = provenance(
            self.info,
            self.fingerprint,
            model,
            threshold,
            grid=heatmap.grid,
            decision_map=decision_map,
        )
        stem = stem if stem is not None else slide_stem(self.info.path)
        return write_outputs(out_dir, stem, heatmap, decision, threshold, info)

    def export_no_tissue(
        self,
        out_dir: Path,
        model: ModelSpec,
        threshold: float,
        warning: str,
        *,
        stem: str | None = None,
    ) -> Path:
        """Write only the provenance, recording ``warning`` (why no heatmap was made)."""
        info = provenance(self.info, self.fingerprint, model, threshold, warning=warning)
        stem = stem if stem is not None else slide_stem(self.info.path)
        return write_warning_provenance(out_dir, stem, info)

    def explain(
        self,
        grid: PatchGrid,
        cell: tuple[int, int],
        explainer: Any,
        *,
        decision: Heatmap | None = None,
        on_background: Callable[[float], None] | None = None,
    ) -> Explanation:
        """Explain ``cell`` of ``grid`` with Grad-CAM (blocking: call it in a worker).

        ``explainer`` is the model's (a :class:`~idc_viewer.ml.gradcam.SharedGradCam` or
        ``GradCam``; the caller keeps it, so its warm-up outlives the session); ``decision``
        is the context map whose value is shown beside the patch's own score (None: no
        context); see :func:`~idc_viewer.engine.explain.explain_cell` for ``on_background``.
        """
        return explain_cell(
            self.slide, grid, cell, explainer, decision=decision, on_background=on_background
        )
