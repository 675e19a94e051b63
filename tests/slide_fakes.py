"""Slides for tests, shared by name (``conftest`` is ambiguous across folders).

Small slide files written by tests, and the description of a one-level slide.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))  # pyramid_tiff
from pyramid_tiff import write_pyramid

from idc_viewer.core.slide import SlideInfo


def one_level_info(width: int, height: int, mpp: float) -> SlideInfo:
    """A one-level generic-tiff slide of ``width x height`` px at ``mpp`` µm/px (from metadata)."""
    return SlideInfo(
        path="memory",
        format="generic-tiff",
        l0_width=width,
        l0_height=height,
        level_count=1,
        level_dimensions=((width, height),),
        level_downsamples=(1.0,),
        mpp=mpp,
        mpp_source="metadata",
        objective_power=None,
        properties={},
    )


def write_pyramid_tiff(
    path: Path,
    image: np.ndarray,
    *,
    levels: int = 3,
    mpp: float | None = None,
    tile: int = 64,
    compression: str | None = "jpeg",
) -> Path:
    """Write ``image`` as a tiled TIFF pyramid (2x per level) that OpenSlide opens as generic-tiff.

    ``mpp`` is stored as the TIFF resolution in pixels per centimetre, which OpenSlide reports
    as ``openslide.mpp-x/y``.
    """
    return write_pyramid(
        path,
        image,
        levels=levels,
        tile_px=tile,
        mpp=mpp,
        last_below_px=2 * tile,
        compression=compression,
    )
