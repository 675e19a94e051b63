"""Tiled TIFF pyramids that OpenSlide opens as generic-tiff, for the tests, fuzzer and benchmarks.

``write_pyramid`` halves an image in memory level by level; ``write_tiled_pyramid`` streams
tiles (small memory for huge slides) and divides each level by 4. The µm/px, when given, is
stored as the TIFF resolution (pixels per centimetre), which OpenSlide reports as its mpp.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np


def resolution(mpp: float | None) -> dict[str, object]:
    """The TIFF resolution arguments for ``mpp`` µm/px (none when it is unknown)."""
    if mpp is None:
        return {}
    return {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}


def write_pyramid(
    path: Path,
    image: np.ndarray,
    *,
    levels: int,
    tile_px: int,
    mpp: float | None,
    last_below_px: int,
    compression: str | None = "jpeg",
) -> Path:
    """Write ``image`` and up to ``levels - 1`` halvings, tiled; a level whose shorter side is
    under ``last_below_px`` is the last."""
    import cv2
    import tifffile

    with tifffile.TiffWriter(path) as tif:
        level = image
        for i in range(levels):
            tif.write(
                level,
                subfiletype=0 if i == 0 else 1,  # OpenSlide lists only reduced-resolution pages
                tile=(tile_px, tile_px),
                photometric="rgb",
                compression=compression,
                **resolution(mpp),  # type: ignore[arg-type]
            )
            if min(level.shape[:2]) < last_below_px:
                break
            level = cv2.resize(
                level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA
            )
    return path


def write_tiled_pyramid(
    path: Path,
    side_px: int,
    tiles: Callable[[int], Iterable[np.ndarray]],
    *,
    tile_px: int,
    mpp: float,
    compression: str | None,
) -> Path:
    """Write a square BigTIFF pyramid of ``side_px`` px, each level a quarter of the one above
    while it holds a tile; ``tiles(level_side_px)`` yields a level's tiles row by row."""
    import tifffile

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        level_side, sub = side_px, 0
        while level_side >= tile_px:
            tif.write(
                tiles(level_side),
                shape=(level_side, level_side, 3),
                dtype=np.uint8,
                tile=(tile_px, tile_px),
                photometric="rgb",
                compression=compression,
                subfiletype=sub,
                **resolution(mpp),  # type: ignore[arg-type]
            )
            level_side //= 4
            sub = 1
    return path
