"""Explaining one cell with Grad-CAM: the one pipeline of the CLI figure and the GUI inspector.

:func:`explain_cell` reads the patch the model saw, explains it and returns a frozen
:class:`Explanation` (read-only arrays): the patch, its footprint at up to full resolution,
the map (at patch size and at the feature map's own resolution), the overlay, the patch's own
P(IDC) and, beside it, the decision (context) probability when the model has a context stage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from idc_viewer.core.patches import read_patch
from idc_viewer.core.tissue import patch_tissue_fraction
from idc_viewer.engine.events import frozen_array

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import Slide
    from idc_viewer.ml.gradcam import GradCamResult

#: Longest side (pixels) of the full-resolution read of a patch's footprint.
FULL_RES_MAX_SIDE = 1024
#: Below this share of stained pixels a patch is background (as the tissue detector's
#: per-cell threshold): its score and map mean nothing.
MIN_TISSUE_FRACTION = 0.1


class CellExplainer(Protocol):
    """Anything that explains one patch (:class:`~idc_viewer.ml.gradcam.GradCam`, shared)."""

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Explain one ``(p, p, 3)`` uint8 patch."""
        ...


@dataclass(frozen=True)
class Explanation:
    """Everything known of one explained cell (``l0_`` level-0 pixels; arrays read-only).

    ``patch`` is the ``(p, p, 3)`` uint8 the model saw, ``full`` the footprint at up to
    :data:`FULL_RES_MAX_SIDE` px, ``cam`` the map in [0, 1] at patch size, ``cam_lowres`` at
    the feature map's resolution, ``overlay`` the map blended over the patch. ``probability``
    is the patch's own CNN score (what Grad-CAM explains); ``context_probability`` the decision
    map's value at the cell when that map is a context stage's, else None.
    """

    cell: tuple[int, int]
    patch: NDArray[np.uint8] = field(repr=False)
    full: NDArray[np.uint8] = field(repr=False)
    cam: NDArray[np.float32] = field(repr=False)
    overlay: NDArray[np.uint8] = field(repr=False)
    probability: float
    l0_rect: tuple[int, int, int, int]
    mpp: float | None
    cam_lowres: NDArray[np.float32] | None = field(default=None, repr=False)
    model_label: str = ""
    context_probability: float | None = None
    tissue_fraction: float = 1.0

    @property
    def is_background(self) -> bool:
        """True when the patch is mostly glass (fewer stained pixels than a tissue cell)."""
        return self.tissue_fraction < MIN_TISSUE_FRACTION


def read_full_resolution(slide: Slide, l0_rect: tuple[int, int, int, int]) -> np.ndarray:
    """The patch footprint from the finest level that keeps it under FULL_RES_MAX_SIDE px."""
    l0_x, l0_y, l0_w, l0_h = l0_rect
    downsample = max(1.0, max(l0_w, l0_h) / FULL_RES_MAX_SIDE)
    level = slide.best_level_for_downsample(downsample)
    ds = float(slide.info.level_downsamples[level])
    return slide.read_region(l0_x, l0_y, level, max(1, round(l0_w / ds)), max(1, round(l0_h / ds)))


def explain_cell(
    slide: Slide,
    grid: PatchGrid,
    cell: tuple[int, int],
    explainer: Any,
    *,
    decision: Heatmap | None = None,
    on_background: Callable[[float], None] | None = None,
) -> Explanation:
    """Read ``cell``'s patch and explain it (blocking: call it in a worker).

    ``explainer`` is anything with ``compute(patch)`` (a :class:`~idc_viewer.ml.gradcam.
    SharedGradCam` in the app), or a loaded model, explained with a fresh Grad-CAM.
    ``decision`` is the context map shown beside the patch's own score (None: no context).
    ``on_background(tissue_fraction)`` is called before explaining a background patch.
    """
    from idc_viewer.ml.gradcam import GradCam, overlay

    if not hasattr(explainer, "compute"):
        explainer = GradCam.for_model(explainer)
    col, row = cell
    patch = read_patch(slide, grid, col, row)
    tissue_fraction = float(patch_tissue_fraction(patch))
    if on_background is not None and tissue_fraction < MIN_TISSUE_FRACTION:
        on_background(tissue_fraction)
    rect = grid.l0_rect(col, row)
    result = explainer.compute(patch)
    cam = np.asarray(result.cam, dtype=np.float32)
    context = None if decision is None else decision.probability_at(col, row)
    lowres = getattr(result, "cam_lowres", None)
    return Explanation(
        cell=(int(col), int(row)),
        patch=frozen_array(patch, np.uint8),  # type: ignore[arg-type]
        full=frozen_array(read_full_resolution(slide, rect), np.uint8),  # type: ignore[arg-type]
        cam=frozen_array(cam, np.float32),  # type: ignore[arg-type]
        overlay=frozen_array(overlay(patch, cam), np.uint8),  # type: ignore[arg-type]
        probability=float(result.probability),
        l0_rect=rect,
        mpp=slide.info.mpp,
        cam_lowres=None if lowres is None else frozen_array(lowres, np.float32),  # type: ignore[arg-type]
        model_label=str(getattr(explainer, "model_label", "")),
        context_probability=None if context is None else float(context),
        tissue_fraction=tissue_fraction,
    )
