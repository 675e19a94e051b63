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
    def _rgba(values: NDArray[np.float32], colormap: str) -> np.ndarray:
        """The Grad-CAM layer's RGBA of a ``(1, n)`` row of values."""
        return cam_rgba(values, values.shape[1], 1, colormap)
