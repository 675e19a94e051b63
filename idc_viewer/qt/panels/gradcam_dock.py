"""Grad-CAM inspector: one patch as the model saw it, at full resolution with its map.

The engine explains the cell (:func:`idc_viewer.engine.explain.explain_cell`, in a worker);
:class:`GradCamPanel` only displays the :class:`~idc_viewer.engine.explain.Explanation`. The
full-resolution image carries the map painted over it at its own resolution (the same colours
and alpha as the slide's Grad-CAM layer); a click on it opens it enlarged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QMouseEvent, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from idc_viewer.core.colormap import colorize
from idc_viewer.engine.gradcam_layer import GRADCAM_COLORMAP, cam_rgba
from idc_viewer.qt.image_convert import qpixmap_from_array

if TYPE_CHECKING:
    from idc_viewer.engine.explain import Explanation

IMAGE_SIDE = 200
#: The enlarged view shows the footprint at least this large (a 50-px patch is magnified).
ENLARGED_MIN_SIDE = 600
CAM_OPACITY = 0.6


def full_with_cam(view: Explanation, opacity: float = CAM_OPACITY) -> np.ndarray:
    """The full-resolution footprint with the map painted at its resolution (as on the slide)."""
    full = np.ascontiguousarray(view.full[..., :3], dtype=np.uint8)
    low = view.cam_lowres if view.cam_lowres is not None else view.cam
    h, w = full.shape[:2]
    rgba = cam_rgba(low, w, h).astype(np.float32)
    alpha = rgba[..., 3:4] / 255.0 * opacity
    blended: NDArray[np.uint8] = np.rint(full * (1 - alpha) + rgba[..., :3] * alpha).astype(
        np.uint8
    )
    return blended


def position_text(view: Explanation) -> str:
    """Where the patch is: level-0 pixels and, with a scale, µm."""
    x, y, w, h = view.l0_rect
    text = f"x {x}, y {y} px (level 0), {w}×{h} px"
    if view.mpp:
        text += f"\n= {x * view.mpp:,.0f}, {y * view.mpp:,.0f} µm, {w * view.mpp:.0f} µm wide"
    return text


def probability_text(view: Explanation, context_probability: float | None = None) -> str:
    """The patch's own CNN score (what Grad-CAM explains) first, its context value beside it."""
    context = context_probability if context_probability is not None else view.context_probability
    if context is None:
        return f"P(IDC) = {view.probability:.3f}  patch {view.cell}"
    return f"P(IDC) patch {view.probability:.3f} · context {context:.3f}  patch {view.cell}"


class ClickableImage(QLabel):
    """A label that says when it is clicked (to enlarge it)."""

    clicked = Signal()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """A left click says ``clicked``."""
        if event.button() == Qt.MouseButton.LeftButton:
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class EnlargedPatchDialog(QDialog):
    """The full-resolution footprint, large, with its map on or off."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Patch at full resolution")
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        scroll = QScrollArea()
        scroll.setWidget(self.image)
        scroll.setWidgetResizable(True)
        self.cam_box = QCheckBox("Grad-CAM overlay")
        self.cam_box.setChecked(True)
        self.caption = QLabel("")
        layout = QVBoxLayout(self)
        layout.addWidget(self.caption)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.cam_box)
        self.cam_box.toggled.connect(lambda _on: self._render())
        self.view: Explanation | None = None
        self.resize(760, 820)

    def show_view(self, view: Explanation, caption: str) -> None:
        """Show ``view`` under ``caption``."""
        self.view = view
        self.caption.setText(caption)
        self._render()

    def shown_array(self) -> np.ndarray | None:
        """The image shown now (with or without the map); None before a view."""
        if self.view is None:
            return None
        return full_with_cam(self.view) if self.cam_box.isChecked() else self.view.full[..., :3]

    def _render(self) -> None:
        array = self.shown_array()
        if array is None:
            return
        h, w = array.shape[:2]
        side = max(ENLARGED_MIN_SIDE, max(h, w))
        pixmap = qpixmap_from_array(np.ascontiguousarray(array))
        if max(h, w) < side:  # magnify small footprints without inventing detail
            pixmap = pixmap.scaled(
                side,
                side,
                Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.FastTransformation,
            )
        self.image.setPixmap(pixmap)


class GradCamPanel(QWidget):
    """The inspector's content (the window puts it in a dock).

    Signals
    -------
    step_requested(int)
        +1 for the next flagged patch, -1 for the previous one.
    """

    step_requested = Signal(int)
    TITLES = (
        "Model input",
        "Full resolution + Grad-CAM (click to enlarge)",
        "Grad-CAM",
        "Overlay on the model input",
    )

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.images: list[QLabel] = []
        grid = QGridLayout()
        for i, title in enumerate(self.TITLES):
            image = ClickableImage() if i == 1 else QLabel()
            image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
            image.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image.setStyleSheet("background: #222;")
            self.images.append(image)
            caption = QLabel(title)
            caption.setWordWrap(True)
            caption.setMaximumWidth(IMAGE_SIDE)
            grid.addWidget(caption, (i // 2) * 2, i % 2)
            grid.addWidget(image, (i // 2) * 2 + 1, i % 2)
        self.probability_label = QLabel("Click a patch of the heatmap.")
        self.probability_label.setStyleSheet("font-size: 14pt; font-weight: bold;")
        self.model_label = QLabel("")
        self.position_label = QLabel("")
        self.position_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.enlarge_button = QPushButton("Enlarge full resolution…")
        self.enlarge_button.setEnabled(False)
        self.prev_button = QPushButton("◀ Previous flagged (P)")
        self.next_button = QPushButton("Next flagged (N) ▶")
        buttons = QHBoxLayout()
        buttons.addWidget(self.prev_button)
        buttons.addWidget(self.next_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.probability_label)
        layout.addWidget(self.model_label)
        layout.addWidget(self.position_label)
        layout.addLayout(grid)
        layout.addWidget(self.enlarge_button)
        layout.addLayout(buttons)
        layout.addStretch(1)
        self.prev_button.clicked.connect(lambda: self.step_requested.emit(-1))
        self.next_button.clicked.connect(lambda: self.step_requested.emit(1))
        self.images[1].clicked.connect(self.enlarge)  # type: ignore[attr-defined]
        self.enlarge_button.clicked.connect(self.enlarge)
        self.view: Explanation | None = None
        self._model_text = ""
        self._context: float | None = None
        self.dialog: EnlargedPatchDialog | None = None

    def set_model(self, label: str) -> None:
        """Name the model whose Grad-CAM is shown (the model on screen)."""
        self._model_text = label
        self.model_label.setText(f"Grad-CAM of model {label}" if label else "")

    def clear(self, message: str = "Click a patch of the heatmap.") -> None:
        """Forget the patch shown (e.g. another model was loaded)."""
        self.view = None
        for label in self.images:
            label.clear()
        self.probability_label.setText(message)
        self.position_label.setText("")
        self.enlarge_button.setEnabled(False)
        if self.dialog is not None:
            self.dialog.hide()

    def show_loading(self, cell: tuple[int, int]) -> None:
        """Say that the patch is being explained."""
        self.probability_label.setText(f"Computing Grad-CAM of patch {cell}…")

    def show_error(self, message: str) -> None:
        """Say why the patch could not be explained."""
        self.probability_label.setText(f"Grad-CAM failed: {message}")

    def show_view(self, view: Explanation, context_probability: float | None = None) -> None:
        """Show ``view``; ``context_probability`` is the patch's decision (context) value.

        Grad-CAM explains the patch's own CNN score, so that number comes first; the context
        map's value (what the heatmap shows and flags) is named beside it when there is one.
        """
        self.view = view
        arrays = (
            view.patch,
            full_with_cam(view),
            colorize(view.cam, GRADCAM_COLORMAP),
            view.overlay,
        )
        for label, array in zip(self.images, arrays, strict=True):
            smooth = array.shape[0] > IMAGE_SIDE
            mode = (
                Qt.TransformationMode.SmoothTransformation
                if smooth
                else Qt.TransformationMode.FastTransformation
            )
            pixmap: QPixmap = qpixmap_from_array(np.ascontiguousarray(array)).scaled(
                IMAGE_SIDE, IMAGE_SIDE, Qt.AspectRatioMode.KeepAspectRatio, mode
            )
            label.setPixmap(pixmap)
        self._context = (
            context_probability if context_probability is not None else view.context_probability
        )
        self.probability_label.setText(probability_text(view, self._context))
        name = view.model_label or self._model_text
        self.model_label.setText(f"Grad-CAM of model {name}" if name else "")
        self.position_label.setText(position_text(view))
        self.enlarge_button.setEnabled(True)
        if self.dialog is not None and self.dialog.isVisible():
            self.enlarge()

    def enlarge(self) -> EnlargedPatchDialog | None:
        """Open (or refresh) the enlarged full-resolution view of the patch shown."""
        if self.view is None:
            return None
        if self.dialog is None:
            self.dialog = EnlargedPatchDialog(self)
        h, w = self.view.full.shape[:2]
        name = self.view.model_label or self._model_text
        caption = (
            f"{probability_text(self.view, self._context)} — model {name} — "
            f"{w}×{h} px read from the slide"
        )
        self.dialog.show_view(self.view, caption)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog
