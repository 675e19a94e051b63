"""What the engine would do with a slide, before running the CNN (``idc-viewer info``)."""

from __future__ import annotations

from dataclasses import dataclass

from idc_viewer.core.patches import DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX, PatchGrid, make_grid
from idc_viewer.core.slide import Slide
from idc_viewer.core.tissue import TissueMap, detect_tissue

#: Rough end-to-end patches per second on a 2-core CPU with the LiteRT predictor and a 50 px
#: input; only used to estimate a duration before a run (the run itself reports the measured rate).
ESTIMATED_PATCHES_PER_S = 1500.0
REFERENCE_INPUT_PX = DEFAULT_PATCH_PX


def estimated_patches_per_s(input_size: int) -> float:
    """End-to-end rate for a model with ``input_size`` px inputs.

    The CNN's cost grows with the input's area (measured: the paper's 128 px preset runs 6-8x
    slower than the 50 px one, (128/50)^2 = 6.6).
    """
    return ESTIMATED_PATCHES_PER_S * (REFERENCE_INPUT_PX / max(int(input_size), 1)) ** 2


@dataclass(frozen=True)
class AnalysisPlan:
    """The grid, read level, tissue count and estimated time of analysing one slide.

    ``lvl_patch_px`` is the side (pixels of the read level) of the region read for one patch
    before it is resampled to ``grid.patch_px``; ``footprint_um`` its side in µm.
    """

    grid: PatchGrid
    read_downsample: float
    read_mpp: float
    lvl_patch_px: float
    footprint_um: float
    tissue: TissueMap
    tissue_patches: int
    estimated_s: float

    @property
    def cell_count(self) -> int:
        """Cells of the grid, tissue or not."""
        return int(self.grid.cols) * int(self.grid.rows)


def plan_analysis(
    slide: Slide,
    patch_px: int = DEFAULT_PATCH_PX,
    model_mpp: float = DEFAULT_PATCH_MPP,
    patches_per_s: float = ESTIMATED_PATCHES_PER_S,
) -> AnalysisPlan:
    """Plan the analysis of ``slide`` (raises ``MissingMppError`` without a µm/px).

    Runs the tissue detector (on a low-resolution level), nothing else.
    """
    grid = make_grid(slide.info, patch_px=patch_px, model_mpp=model_mpp)
    tissue = detect_tissue(slide, grid)
    downsample = float(slide.info.level_downsamples[grid.read_level])
    n_tissue = 0 if tissue.warning else int(tissue.mask.sum())
    return AnalysisPlan(
        grid=grid,
        read_downsample=downsample,
        read_mpp=float(grid.slide_mpp) * downsample,
        lvl_patch_px=float(grid.l0_patch_size) / downsample,
        footprint_um=float(grid.patch_px) * float(grid.model_mpp),
        tissue=tissue,
        tissue_patches=n_tissue,
        estimated_s=n_tissue / patches_per_s if patches_per_s > 0 else float("nan"),
    )
