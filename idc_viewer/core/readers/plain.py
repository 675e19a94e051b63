"""Plain PNG, JPEG and TIFF images that OpenSlide does not read (untiled, or not a slide)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from idc_viewer.core.errors import one_line
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.pixels import to_rgb_uint8, virtual_pyramid
from idc_viewer.core.scale import check_user_mpp
from idc_viewer.core.slide import Slide, SlideError

__all__ = ["open_plain_image"]


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    try:
        image = np.asarray(tifffile.imread(str(path), key=0))
    except Exception as exc:  # tifffile raises many types for damaged files
        raise SlideError(
            f"not a readable TIFF (damaged or truncated): {one_line(exc, 200)}"
        ) from exc
    if image.size == 0 or image.ndim < 2:
        raise SlideError("the TIFF holds no image (a header only, or damaged)")
    if image.ndim == 3 and image.shape[0] in (3, 4) and image.shape[2] not in (3, 4):
        image = np.moveaxis(image, 0, -1)  # planar (C, H, W) layout
    return image


def _read_with_opencv(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SlideError("not a readable image (corrupt or unsupported encoding)")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return np.asarray(image)


def _read_rgb(path: Path, fmt: str) -> np.ndarray:
    """The image as RGB uint8; :class:`SlideError` (naming the file) when it cannot be read."""
    try:
        image = _read_tiff(path) if fmt == "image/tiff" else _read_with_opencv(path)
        if image.ndim == 2 or (image.ndim == 3 and image.shape[2] <= 4):
            return to_rgb_uint8(image)
        raise SlideError(f"unsupported image layout {image.shape}")
    except SlideError as exc:
        raise SlideError(f"cannot open {path.name}: {exc}") from exc
    except Exception as exc:  # decoders raise many types for damaged files
        raise SlideError(f"cannot open {path.name}: {one_line(exc, 200)}") from exc


def open_plain_image(path: Path, fmt: str, mpp: float | None) -> Slide:
    """Open a PNG/JPEG/TIFF as an in-memory slide with virtual 4x levels.

    Parameters
    ----------
    path : pathlib.Path
        The image file.
    fmt : str
        ``"image/png"``, ``"image/jpeg"`` or ``"image/tiff"``.
    mpp : float or None
        µm per pixel given by the user (plain images carry no trustworthy scale).
    """
    rgb = _read_rgb(path, fmt)
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise SlideError(f"cannot open {path.name}: the image is empty")
    return ArraySlide(
        virtual_pyramid(rgb),
        None if mpp is None else check_user_mpp(mpp),
        str(path),
        format=fmt,
    )
