"""Shared pytest fixtures: real data location and small synthetic slide files."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# shared test doubles (tests/model_fakes.py) are imported by name under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (real, read-only files); skips the test when it is absent."""
    path = (REPO_ROOT / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip(f"real test data not available: {path} is missing")
    return path


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


@pytest.fixture
def synthetic_tiff(tmp_path: Path) -> Callable[..., Path]:
    """Factory ``synthetic_tiff(image=None, name="slide.tiff", **write_pyramid_tiff_kwargs)``.

    Without ``image`` it writes a 512x384 white slide with a pink square.
    """

    def make(image: np.ndarray | None = None, name: str = "slide.tiff", **kwargs: object) -> Path:
        if image is None:
            image = np.full((384, 512, 3), 255, dtype=np.uint8)
            image[100:300, 150:400] = (230, 150, 190)
        return write_pyramid_tiff(tmp_path / name, image, **kwargs)  # type: ignore[arg-type]

    return make
