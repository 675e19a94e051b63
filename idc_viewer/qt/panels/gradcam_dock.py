"""Grad-CAM inspector: one patch as the model saw it, at full resolution, its map and overlay.

:func:`compute_gradcam_view` is plain Python (run in a worker: its first call imports
TensorFlow); :class:`GradCamPanel` only displays a :class:`GradCamView`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from idc_viewer.core.heatmap import colormap_lut
from idc_viewer.core.patches import read_patch
from idc_viewer.qt.image_convert import qpixmap_from_array

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import Slide
    from idc_viewer.ml.loading import LoadedModel

#: Longest side (pixels) of the full-resolution read of a patch's footprint.
FULL_RES_MAX_SIDE = 1024
IMAGE_SIDE = 200


@dataclass(frozen=True)
class GradCamView:
    """Everything the inspector shows for one patch (``l0_`` level-0 pixels)."""

    cell: tuple[int, int]
    patch: np.ndarray  # (patch_px, patch_px, 3) uint8, what the model saw
    full: np.ndarray  # (H, W, 3) uint8, the footprint at (up to) full resolution
    cam: np.ndarray  # float32 [patch_px, patch_px] in [0, 1]
    overlay: np.ndarray  # (patch_px, patch_px, 3) uint8
    probability: float
    l0_rect: tuple[int, int, int, int]
    mpp: float | None


_gradcams: dict[int, Any] = {}
_gradcams_lock = threading.Lock()


def _gradcam_for(model: LoadedModel) -> Any:
    """One GradCam per loaded model (building it imports TensorFlow and traces a function)."""
    from idc_viewer.ml.gradcam import GradCam

    with _gradcams_lock:
        key = id(model)
        if key not in _gradcams:
            _gradcams.clear()
            _gradcams[key] = GradCam(model.keras_model, model.spec.gradcam_layer, model.spec)
        return _gradcams[key]


def read_full_resolution(slide: Slide, l0_rect: tuple[int, int, int, int]) -> np.ndarray:
    """The patch footprint from the finest level that keeps it under FULL_RES_MAX_SIDE px."""
    l0_x, l0_y, l0_w, l0_h = l0_rect
    downsample = max(1.0, max(l0_w, l0_h) / FULL_RES_MAX_SIDE)
    level = slide.best_level_for_downsample(downsample)
    ds = float(slide.info.level_downsamples[level])
    return slide.read_region(l0_x, l0_y, level, max(1, round(l0_w / ds)), max(1, round(l0_h / ds)))


def compute_gradcam_view(
    slide: Slide, grid: PatchGrid, cell: tuple[int, int], model: LoadedModel
) -> GradCamView:
    """Read the patch, run Grad-CAM on it (blocking: call it in a worker)."""
    from idc_viewer.ml.gradcam import overlay

    col, row = cell
    patch = read_patch(slide, grid, col, row)
    rect = grid.l0_rect(col, row)
    result = _gradcam_for(model).compute(patch)
    cam = np.asarray(result.cam, dtype=np.float32)
    return GradCamView(
        cell=cell, patch=patch, full=read_full_resolution(slide, rect), cam=cam,
        overlay=np.asarray(overlay(patch, cam), dtype=np.uint8),
        probability=float(result.probability), l0_rect=rect, mpp=slide.info.mpp,
    )


def cam_to_rgb(cam: np.ndarray) -> np.ndarray:
    """Colour a [0, 1] map with the jet colormap."""
    index = np.clip(np.nan_to_num(cam) * 255.0, 0, 255).astype(np.uint8)
    return np.asarray(colormap_lut("jet")[index], dtype=np.uint8)


def position_text(view: GradCamView) -> str:
    x, y, w, h = view.l0_rect
    text = f"x {x}, y {y} px (level 0), {w}×{h} px"
    if view.mpp:
        text += f"\n= {x * view.mpp:,.0f}, {y * view.mpp:,.0f} µm, {w * view.mpp:.0f} µm wide"
    return text


class GradCamPanel(QWidget):
    """The inspector's content (the window puts it in a dock).

    Signals
    -------
    step_requested(int)
        +1 for the next flagged patch, -1 for the previous one.
    """

    step_requested = Signal(int)
    TITLES = ("Model input", "Full resolution", "Grad-CAM", "Overlay")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images: list[QLabel] = []
        grid = QGridLayout()
        for i, title in enumerate(self.TITLES):
            image = QLabel()
            image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image.setStyleSheet("background: #222;")
            self.images.append(image)
            grid.addWidget(QLabel(title), (i // 2) * 2, i % 2)
            grid.addWidget(image, (i // 2) * 2 + 1, i % 2)
        self.probability_label = QLabel("Click a patch of the heatmap.")
        self.probability_label.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.position_label = QLabel("")
        self.position_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.prev_button = QPushButton("◀ Previous flagged (P)")
        self.next_button = QPushButton("Next flagged (N) ▶")
        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.probability_label)
        layout.addWidget(self.position_label)
        layout.addLayout(grid)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.prev_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.next_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.view: GradCamView | None = None

    def show_loading(self, cell: tuple[int, int]) -> None:
        self.probability_label.setText(f"Computing Grad-CAM of patch {cell}…")

    def show_error(self, message: str) -> None:
        self.probability_label.setText(f"Grad-CAM failed: {message}")

    def show_view(self, view: GradCamView, context_probability: float | None = None) -> None:
        """Show ``view``; ``context_probability`` is the patch's decision (context) value.

        Grad-CAM explains the patch's own CNN score, so that number comes first; the context
        map's value (what the heatmap shows and flags) is named beside it when there is one.
        """
        self.view = view
        arrays = (view.patch, view.full, cam_to_rgb(view.cam), view.overlay)
        for label, array in zip(self.images, arrays, strict=True):
            smooth = array.shape[0] > IMAGE_SIDE
            mode = (Qt.TransformationMode.SmoothTransformation if smooth
                    else Qt.TransformationMode.FastTransformation)
            pixmap: QPixmap = qpixmap_from_array(np.ascontiguousarray(array)).scaled(
                IMAGE_SIDE, IMAGE_SIDE, Qt.AspectRatioMode.KeepAspectRatio, mode
            )
            label.setPixmap(pixmap)
        text = f"P(IDC) = {view.probability:.3f}  patch {view.cell}"
        if context_probability is not None:
            text = (f"P(IDC) patch {view.probability:.3f} · context {context_probability:.3f}"
                    f"  patch {view.cell}")
        self.probability_label.setText(text)
        self.position_label.setText(position_text(view))
