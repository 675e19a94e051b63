"""Small slide files written by tests, shared by name (``conftest`` is ambiguous across folders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
    import cv2
    import tifffile

    kwargs: dict[str, object] = {}
    if mpp is not None:
        kwargs = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    with tifffile.TiffWriter(path) as tif:
        level = image
        for i in range(levels):
            tif.write(
                level,
                subfiletype=0 if i == 0 else 1,  # OpenSlide lists only reduced-resolution pages
                tile=(tile, tile),
                photometric="rgb",
                compression=compression,
                **kwargs,  # type: ignore[arg-type]
            )
            h, w = level.shape[:2]
            if min(h, w) < 2 * tile:
                break
            level = cv2.resize(level, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    return path
