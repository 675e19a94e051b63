"""Test doubles for the application tests: a fast fake model and a two-region tissue slide."""

from __future__ import annotations

import numpy as np
from model_fakes import FakeModel, FakePredictor, fake_spec  # noqa: F401 (re-exported)

from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.patches import PatchGrid, read_patch
from idc_viewer.core.slide import Slide
from idc_viewer.engine.explain import Explanation, read_full_resolution


def two_region_image(width: int = 1200, height: int = 800, seed: int = 0) -> np.ndarray:
    """White glass with a strongly red tissue block (high P) and a paler one (lower P)."""
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 245, dtype=np.uint8)

    def block(y0: int, y1: int, x0: int, x1: int, base: tuple[int, int, int]) -> None:
        noise = rng.integers(0, 40, size=(y1 - y0, x1 - x0, 1), dtype=np.int16)
        image[y0:y1, x0:x1] = np.clip(np.array(base, np.int16) - noise, 0, 255).astype(np.uint8)

    block(100, 400, 100, 500, (250, 110, 170))  # P ~ 0.9
    block(450, 700, 700, 1100, (185, 100, 160))  # P ~ 0.65
    return image


def tissue_slide(mpp: float | None = 4.0, path: str = "memory") -> ArraySlide:
    return ArraySlide([two_region_image()], mpp=mpp, path=path)


def fake_explain(
    slide: Slide,
    grid: PatchGrid,
    cell: tuple[int, int],
    explainer: object,
    *,
    decision: Heatmap | None = None,
) -> Explanation:
    """``explain_cell`` stand-in: the real patch reads, a centred blob as the map."""
    patch = read_patch(slide, grid, *cell)
    yy, xx = np.mgrid[0:50, 0:50]
    cam = np.exp(-((xx - 25) ** 2 + (yy - 25) ** 2) / 200.0).astype(np.float32)
    rect = grid.l0_rect(*cell)
    context = None if decision is None else decision.probability_at(*cell)
    return Explanation(
        cell=cell,
        patch=patch,
        full=read_full_resolution(slide, rect),
        cam=cam,
        overlay=patch.copy(),
        probability=float(patch[..., 0].mean() / 255.0),
        l0_rect=rect,
        mpp=slide.info.mpp,
        context_probability=None if context is None else float(context),
    )


#: The fake Grad-CAM map: the left half of every patch lit (1), the right half dark (0).
FAKE_CAM_LOWRES = np.zeros((6, 6), np.float32)
FAKE_CAM_LOWRES[:, :3] = 1.0


class FakeExplainer:
    """Grad-CAM stand-in with the app's interface: a fixed map, P as the fake predictor's."""

    def __init__(self, model: object) -> None:
        self.model = model
        spec = getattr(model, "spec", None)
        self.model_label = str(getattr(spec, "name", "fake"))
        self.patches_seen = 0

    def compute_batch(self, patches: np.ndarray) -> list:
        from idc_viewer.ml.gradcam import GradCamResult, upsample_cam

        patches = np.asarray(patches)
        self.patches_seen += len(patches)
        probabilities = patches[..., 0].mean(axis=(1, 2)) / 255.0
        return [
            GradCamResult(
                cam=upsample_cam(FAKE_CAM_LOWRES, 50, 50),
                probability=float(p),
                score=0.0,
                cam_lowres=FAKE_CAM_LOWRES.copy(),
                cam_raw=FAKE_CAM_LOWRES.copy(),
            )
            for p in probabilities
        ]

    def compute(self, patch: np.ndarray):  # type: ignore[no-untyped-def]
        return self.compute_batch(np.asarray(patch)[np.newaxis])[0]


def fake_explainer(model: object) -> FakeExplainer:
    return FakeExplainer(model)
