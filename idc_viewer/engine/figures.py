"""Figures composed with numpy and OpenCV (no display, no matplotlib): the Grad-CAM panel."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from idc_viewer.core.colormap import colorize

PANEL_PX = 256
MARGIN_PX = 12
TITLE_PX = 40
CAPTION_PX = 26
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def _panel(image: np.ndarray, interpolation: int) -> np.ndarray:
    return cv2.resize(image, (PANEL_PX, PANEL_PX), interpolation=interpolation)


def _put_text(canvas: np.ndarray, text: str, x: int, y: int, scale: float) -> None:
    cv2.putText(canvas, text, (x, y), _FONT, scale, (0, 0, 0), 1, cv2.LINE_AA)


def _fit_scale(text: str, width: int, scale: float) -> float:
    (text_w, _), _ = cv2.getTextSize(text, _FONT, scale, 1)
    return scale if text_w <= width else scale * width / text_w


def gradcam_figure(
    patch: np.ndarray, cam: np.ndarray, overlay: np.ndarray, title: str
) -> np.ndarray:
    """Patch | Grad-CAM map | overlay side by side under ``title``, as uint8 RGB.

    Parameters
    ----------
    patch, overlay
        uint8 RGB images (any square size; shown at :data:`PANEL_PX` px).
    cam
        float map in [0, 1], any size.
    """
    panels = [
        (_panel(np.ascontiguousarray(patch[..., :3]), cv2.INTER_NEAREST), "patch"),
        (_panel(colorize(cam, "jet"), cv2.INTER_LINEAR), "Grad-CAM"),
        (_panel(np.ascontiguousarray(overlay[..., :3]), cv2.INTER_NEAREST), "overlay"),
    ]
    width = len(panels) * PANEL_PX + (len(panels) + 1) * MARGIN_PX
    height = TITLE_PX + PANEL_PX + CAPTION_PX + MARGIN_PX
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    _put_text(canvas, title, MARGIN_PX, 27, _fit_scale(title, width - 2 * MARGIN_PX, 0.6))
    for i, (image, caption) in enumerate(panels):
        x = MARGIN_PX + i * (PANEL_PX + MARGIN_PX)
        canvas[TITLE_PX : TITLE_PX + PANEL_PX, x : x + PANEL_PX] = image.astype(np.uint8)
        _put_text(canvas, caption, x, TITLE_PX + PANEL_PX + 19, 0.55)
    return canvas


def write_png(path: Path, rgb: np.ndarray) -> None:
    """Write a uint8 RGB image as PNG, atomically.

    A full disk leaves the old file (or none), never a truncated PNG. Raises OSError when it
    cannot.
    """
    path = Path(path)
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"cannot encode {path.name} as PNG")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data.tobytes())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
