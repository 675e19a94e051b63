"""Whole-slide figures: complete patients reassembled as slides and scored by the app's engine.

A complete patient (every patch present, see ``training.data.COMPLETE_PATIENTS``) is rebuilt as
a slide three ways, and each is analysed exactly as ``idc-viewer analyze`` would:

- ``lossless``: a deflate TIFF holding the patches' exact pixels (the model on a whole slide);
- ``JPEG Q90``: a JPEG-tiled TIFF, as scanners store tiles (robustness to compression);
- ``20x``: the same tissue as if scanned at 0.5 µm/px — the lossless canvas upsampled 8x
  (bicubic) with an Aperio-like 4x-downsampled level, held in memory, so the engine reads the
  2 µm/px level and resamples it to the model's 4 µm/px (robustness to the engine's resampling).

The engine's CNN probabilities are kept per slide (:class:`ScoredSlide`), so the context stage
(:mod:`idc_viewer.core.context`) can be applied with any σ afterwards without rescoring; its σ
and decision threshold are chosen on the validation patients' slides only
(:func:`training.slide_figures.choose_context`).
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from idc_viewer.core.patches import DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX

LOSSLESS, JPEG, SCANNED_20X = "lossless", "JPEG Q90", "20x"
#: How each reassembled slide stores its tiles (``assemble_slide`` options); 20x is in memory.
SLIDE_STORAGES: dict[str, dict[str, Any]] = {
    LOSSLESS: {"lossless": True},
    JPEG: {"jpeg_quality": 90},
    SCANNED_20X: {},
}
SCAN_20X_MPP = 0.5


@dataclass(frozen=True)
class ScoredSlide:
    """One reassembled slide analysed by the engine, with the truth of every tissue patch.

    ``probabilities`` is the engine's CNN heatmap ``[rows, cols]`` (NaN = not analysed);
    ``truth_cells`` the ``(col, row)`` of each labelled patch in that grid and ``labels`` its
    label. A labelled patch the engine did not analyse (not tissue to it) counts as negative.
    """

    patient: str
    storage: str
    probabilities: np.ndarray
    truth_cells: np.ndarray  # int [n, 2] (col, row)
    labels: np.ndarray  # int [n]

    def decision_probabilities(self, sigma_patches: float) -> np.ndarray:
        """Per labelled patch: the context-stage probability (σ=0: the CNN's own), NaN -> 0."""
        from idc_viewer.core.context import context_probabilities

        grid = context_probabilities(self.probabilities, sigma_patches)
        values = grid[self.truth_cells[:, 1], self.truth_cells[:, 0]]
        filled: np.ndarray = np.nan_to_num(values, nan=0.0)
        return filled

    @property
    def not_analysed(self) -> int:
        """How many labelled patches the engine did not analyse (not tissue to it)."""
        values = self.probabilities[self.truth_cells[:, 1], self.truth_cells[:, 0]]
        return int(np.count_nonzero(np.isnan(values)))


def score_slides(
    loaded: Any,
    patients: Sequence[str],
    data_dir: Path,
    *,
    storages: Iterable[str] = tuple(SLIDE_STORAGES),
    log: Callable[[str], None] = print,
) -> list[ScoredSlide]:
    """Reassemble each complete patient in each storage and analyse it with the engine."""
    from idc_viewer.core.readers import open_slide
    from training.assemble_slide import assemble_patient_arrays, assemble_slide

    scored = []
    root = Path(data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        for patient in patients:
            for storage in storages:
                if storage == SCANNED_20X:
                    canvas = assemble_patient_arrays(root / patient)
                    truth = [(p.l0_x, p.l0_y, p.label) for p in canvas.patches]
                    with _scanned_20x(canvas.canvas) as slide:
                        scored.append(
                            _score(loaded, slide, patient, storage, truth, DEFAULT_PATCH_MPP / 0.5)
                        )
                else:
                    out = Path(tmp) / f"{patient}-{storage.split()[0]}.tiff"
                    made = assemble_slide(root / patient, out, **SLIDE_STORAGES[storage])
                    with open_slide(made.path) as slide:
                        scored.append(
                            _score(loaded, slide, patient, storage, _read_truth(made.truth_csv))
                        )
                    made.path.unlink()
                log(f"slide {patient} ({storage}) scored")
    return scored


def _read_truth(truth_csv: Path) -> list[tuple[int, int, int]]:
    with open(truth_csv, newline="") as handle:
        return [(int(r["x"]), int(r["y"]), int(r["label"])) for r in csv.DictReader(handle)]


def _scanned_20x(canvas: np.ndarray) -> Any:
    """The 4 µm/px canvas as a 0.5 µm/px two-level (1x, 4x-downsampled) in-memory slide."""
    from idc_viewer.core.memory import ArraySlide

    h, w = canvas.shape[:2]
    level0 = cv2.resize(canvas, (w * 8, h * 8), interpolation=cv2.INTER_CUBIC)
    level1 = cv2.resize(level0, (w * 2, h * 2), interpolation=cv2.INTER_AREA)
    return ArraySlide([level0, level1], SCAN_20X_MPP, "scanned-20x", format="array")


def _score(
    loaded: Any,
    slide: Any,
    patient: str,
    storage: str,
    truth: Sequence[tuple[int, int, int]],
    l0_per_truth_px: float = 1.0,
) -> ScoredSlide:
    from idc_viewer.engine.analysis import analyze
    from idc_viewer.engine.events import fold

    heatmap = fold(analyze(slide, loaded, None, None)).heatmap
    assert heatmap is not None
    grid = heatmap.grid
    cells, labels = [], []
    half = DEFAULT_PATCH_PX // 2  # half a patch of the truth grid (Kaggle's 50 px patches)
    for x, y, label in truth:
        # the patch's centre, in level-0 pixels of this slide
        cell = grid.cell_at((x + half) * l0_per_truth_px, (y + half) * l0_per_truth_px)
        if cell is None:
            continue
        cells.append(cell)
        labels.append(label)
    return ScoredSlide(
        patient=patient,
        storage=storage,
        probabilities=heatmap.probabilities.copy(),
        truth_cells=np.asarray(cells, dtype=np.int64).reshape(-1, 2),
        labels=np.asarray(labels, dtype=np.int64),
    )


def pooled(slides: Sequence[ScoredSlide], sigma_patches: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and decision probabilities of every labelled patch of ``slides``, pooled."""
    if not slides:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    y = np.concatenate([s.labels for s in slides])
    p = np.concatenate([s.decision_probabilities(sigma_patches) for s in slides])
    return y, p
