"""The Grad-CAM layer's colour scale: its colours as they fall on white glass (alpha = value)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtWidgets import QWidget

from idc_viewer.engine.gradcam_layer import GRADCAM_COLORMAP, cam_rgba
from idc_viewer.qt.viewer.color_legend import ColorLegend


class GradCamLegend(ColorLegend):
    """0 (left, clear) to 1 (right) of a patch's Grad-CAM map, exactly as the layer paints it."""

    def __init__(
        self, title: str = "Grad-CAM (each patch to its max)", parent: QWidget | None = None
    ) -> None:
        super().__init__(colormap=GRADCAM_COLORMAP, threshold=None, title=title, parent=parent)

    @staticmethod
    def note() -> str:
        """What the colours mean."""
        return "where in the patch the evidence for IDC lies"

    @staticmethod
    def _on_white(probabilities: np.ndarray, colormap: str) -> np.ndarray:
        values = np.asarray(probabilities, np.float32).reshape(1, -1)
        rgba = cam_rgba(values, values.shape[1], 1, colormap).astype(np.float32)
        alpha = rgba[..., 3:4] / 255.0
        on_white: NDArray[np.uint8] = np.rint(rgba[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(
            np.uint8
        )
        return on_white
