"""Pixel conversions shared by the readers: any image to RGB uint8 on white, and shrinking.

Every slide read returns ``(H, W, 3)`` uint8 RGB; these turn grey, grey+alpha, RGBA and
16-bit or float images into that, composite transparency onto white, and build the
4x-smaller virtual levels of images that have no pyramid.
"""

from __future__ import annotations

import cv2
import numpy as np

from idc_viewer.core.slide import SlideError

__all__ = [
    "MIN_LEVEL_SIDE",
    "composite_on_white",
    "shrink_to",
    "to_rgb_uint8",
    "virtual_pyramid",
    "white",
]

#: Images without a pyramid get virtual levels down to this size (cheap thumbnails, tissue).
MIN_LEVEL_SIDE = 512


def white(h: int, w: int) -> np.ndarray:
    """A white ``(h, w, 3)`` uint8 image (empty for a non-positive size)."""
    return np.full((max(h, 0), max(w, 0), 3), 255, dtype=np.uint8)


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Blend non-premultiplied RGBA onto white."""
    rgb = rgba[..., :3]
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgb)
    a = alpha.astype(np.uint16)
    out = (rgb.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale integer or float samples of any range to uint8."""
    if np.issubdtype(arr.dtype, np.integer):
        peak = max(int(arr.max()) if arr.size else 0, 1)
        # 16-bit images: scale by the dtype's range unless the data uses only 8 bits.
        div = 255 if peak <= 255 else np.iinfo(arr.dtype).max
        out: np.ndarray = np.clip(arr.astype(np.float64) * (255.0 / div), 0, 255)
    else:
        scale = 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else 1.0
        out = np.clip(np.nan_to_num(arr) * scale, 0, 255)
    return out.round().astype(np.uint8)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Convert a grey, RGB or RGBA array of any integer/float dtype to RGB uint8."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = _to_uint8(arr)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise SlideError(f"unsupported image shape {arr.shape}")
    channels = arr.shape[2]
    if channels == 1:
        return np.repeat(arr, 3, axis=2)
    if channels == 2:  # grey + alpha
        grey = np.repeat(arr[..., :1], 3, axis=2)
        return composite_on_white(np.concatenate([grey, arr[..., 1:]], axis=2))
    if channels == 3:
        return np.ascontiguousarray(arr)
    if channels == 4:
        return composite_on_white(arr)
    raise SlideError(f"unsupported image with {channels} channels")


def virtual_pyramid(image: np.ndarray) -> list[np.ndarray]:
    """Level 0 plus 4x-smaller copies until the longer side is below :data:`MIN_LEVEL_SIDE`."""
    levels = [image]
    while max(levels[-1].shape[:2]) > MIN_LEVEL_SIDE and min(levels[-1].shape[:2]) >= 4:
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 4, h // 4), interpolation=cv2.INTER_AREA))
    return levels


def shrink_to(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` scaled down (area averaging) so that its longer side is at most ``max_side``."""
    height, width = image.shape[:2]
    scale = max_side / max(height, width)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
