"""Colour scales: values in [0, 1] to RGB and RGBA through one set of lookup tables.

Every colouring in the app goes through :func:`colormap_lut` (OpenCV's maps, flipped to RGB
once): the heatmap (:func:`probabilities_to_rgba`, :func:`overlay_rgba`), the Grad-CAM maps and
figures (``"turbo"``, ``"jet"``) and the legends.
"""

from __future__ import annotations

from functools import cache

import cv2
import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "COLORMAPS",
    "OVERLAY_COLOR_START",
    "OVERLAY_FLOOR",
    "colorize",
    "colormap_lut",
    "lut_index",
    "overlay_rgba",
    "probabilities_to_rgba",
    "rgba_from_index",
]

#: Colormaps offered by :func:`colormap_lut`, mapped to their OpenCV constants.
COLORMAPS: dict[str, int] = {
    "inferno": cv2.COLORMAP_INFERNO,
    "turbo": cv2.COLORMAP_TURBO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "jet": cv2.COLORMAP_JET,
}


@cache
def colormap_lut(name: str = "inferno") -> NDArray[np.uint8]:
    """Return the 256-entry RGB table of a perceptual colormap.

    Parameters
    ----------
    name : str
        One of :data:`COLORMAPS` (``"inferno"`` by default, perceptually uniform and readable
        in greyscale; ``"turbo"`` for more contrast).

    Returns
    -------
    numpy.ndarray
        Read-only ``uint8`` array of shape ``(256, 3)``, RGB order.
    """
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {sorted(COLORMAPS)}")
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    # OpenCV returns BGR; flip once here so every caller gets RGB.
    lut = np.ascontiguousarray(cv2.applyColorMap(ramp, COLORMAPS[name])[:, 0, ::-1], np.uint8)
    lut.setflags(write=False)
    return lut


def lut_index(values: ArrayLike) -> NDArray[np.uint8]:
    """Values in [0, 1] as the nearest of the 256 table entries (NaN as 0, others clipped)."""
    index: NDArray[np.uint8] = np.rint(
        np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * 255
    ).astype(np.uint8)
    return index


def colorize(values: ArrayLike, colormap: str) -> NDArray[np.uint8]:
    """Values in [0, 1] through ``colormap`` as uint8 RGB (shape ``values.shape + (3,)``)."""
    rgb: NDArray[np.uint8] = colormap_lut(colormap)[lut_index(values)]
    return rgb


def rgba_from_index(index: NDArray[np.uint8], alpha: ArrayLike, colormap: str) -> NDArray[np.uint8]:
    """RGBA pixels: ``colormap``'s colour at each table ``index`` and the given ``alpha``.

    ``alpha`` is one value or one per pixel (0-255, cast to uint8).
    """
    rgba = np.empty((*index.shape, 4), dtype=np.uint8)
    rgba[..., :3] = colormap_lut(colormap)[index]
    rgba[..., 3] = np.asarray(alpha).astype(np.uint8)
    return rgba


def _with_values(
    probabilities: ArrayLike,
) -> tuple[NDArray[np.float32], NDArray[np.bool_]]:
    """The grid as float32, and where it holds a value (not NaN)."""
    probs = np.asarray(probabilities, dtype=np.float32)
    return probs, ~np.isnan(probs)


def probabilities_to_rgba(
    probabilities: ArrayLike,
    colormap: str = "inferno",
    opacity: float = 1.0,
    threshold: float | None = None,
) -> NDArray[np.uint8]:
    """Colour a probability grid, leaving unanalysed cells transparent.

    Parameters
    ----------
    probabilities : array_like
        ``float[rows, cols]`` in [0, 1]; ``NaN`` means no value.
    colormap : str
        Name accepted by :func:`colormap_lut`.
    opacity : float
        Alpha in [0, 1] given to every cell that has a value.
    threshold : float, optional
        When given, cells below it are transparent too (show only flagged cells).

    Returns
    -------
    numpy.ndarray
        ``uint8[rows, cols, 4]`` RGBA, one pixel per cell.
    """
    probs, valid = _with_values(probabilities)
    if threshold is not None:
        with np.errstate(invalid="ignore"):
            valid &= probs >= np.float32(threshold)
    alpha = round(float(np.clip(opacity, 0.0, 1.0)) * 255)
    # NaN gets index 0, hidden by its alpha of 0.
    return rgba_from_index(lut_index(probs), np.where(valid, alpha, 0), colormap)


#: Below this probability the viewer's overlay is transparent: benign tissue stays readable.
OVERLAY_FLOOR = 0.2
#: The overlay's colours start this far up the colormap (its dark end would dim the tissue).
OVERLAY_COLOR_START = 0.25


def overlay_rgba(
    probabilities: ArrayLike,
    colormap: str = "inferno",
    floor: float = OVERLAY_FLOOR,
) -> NDArray[np.uint8]:
    """Colour a probability grid for painting over the slide.

    Transparent below ``floor`` and where there is no value; above it, alpha rises as the square
    root of ``(p - floor) / (1 - floor)`` (faint just above the floor, solid for likely IDC)
    and the colour runs over the upper part of ``colormap`` (from
    :data:`OVERLAY_COLOR_START` at the floor to its end at p = 1).

    Returns
    -------
    numpy.ndarray
        ``uint8[rows, cols, 4]`` RGBA, one pixel per cell.
    """
    probs, valid = _with_values(probabilities)
    span = max(1e-6, 1.0 - float(floor))
    t = np.clip((np.nan_to_num(probs, nan=0.0) - np.float32(floor)) / np.float32(span), 0.0, 1.0)
    index = np.rint((OVERLAY_COLOR_START + (1.0 - OVERLAY_COLOR_START) * t) * 255).astype(np.uint8)
    return rgba_from_index(index, np.where(valid, np.rint(np.sqrt(t) * 255), 0), colormap)
