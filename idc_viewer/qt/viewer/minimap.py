"""Overview of the whole slide with the viewport rectangle; click or drag to jump."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from idc_viewer.qt.image_convert import qimage_for_painting

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray


class Minimap(QWidget):
    """Slide thumbnail with the visible area outlined.

    Parameters
    ----------
    thumbnail : numpy.ndarray, optional
        ``(H, W, 3)`` uint8 RGB picture of the whole slide.
    l0_size : tuple of int, optional
        ``(l0_width, l0_height)`` of the slide the thumbnail shows.
    parent : QWidget, optional

    Signals
    -------
    jump_requested(float, float)
        Level-0 point the user clicked or dragged to (meant as the new view centre);
        connect it to ``SlideView.center_on_l0``.
    """

    jump_requested = Signal(float, float)

    def __init__(
        self,
        thumbnail: NDArray[np.uint8] | None = None,
        l0_size: tuple[int, int] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._image = QImage()
        self._l0_size = (0, 0)
        self._viewport_l0 = QRectF()
        self.setMinimumSize(80, 60)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.set_slide_thumbnail(thumbnail, l0_size)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """A small panel."""
        return QSize(240, 180)

    def set_slide_thumbnail(
        self, thumbnail: NDArray[np.uint8] | None, l0_size: tuple[int, int] | None
    ) -> None:
        """Show another slide's thumbnail (None for none) covering ``l0_size`` level-0 pixels."""
        if thumbnail is None or l0_size is None:
            self._image, self._l0_size = QImage(), (0, 0)
        else:
            self._image, self._l0_size = qimage_for_painting(thumbnail), l0_size
        self._viewport_l0 = QRectF()
        self.update()

    def set_viewport_l0(self, rect_l0: QRectF) -> None:
        """Outline the visible level-0 rectangle (connect ``SlideView.viewport_changed``)."""
        self._viewport_l0 = QRectF(rect_l0)
        self.update()

    def image_rect(self) -> QRectF:
        """Where the thumbnail is drawn (aspect kept, centred), in widget pixels."""
        l0_w, l0_h = self._l0_size
        if l0_w <= 0 or l0_h <= 0:
            return QRectF()
        scale = min(self.width() / l0_w, self.height() / l0_h)
        w, h = l0_w * scale, l0_h * scale
        return QRectF((self.width() - w) / 2, (self.height() - h) / 2, w, h)

    def l0_from_widget(self, pos: QPointF) -> tuple[float, float] | None:
        """Level-0 point under a widget position, clamped to the slide; None with no slide."""
        rect = self.image_rect()
        if rect.isEmpty():
            return None
        l0_w, l0_h = self._l0_size
        l0_x = (pos.x() - rect.left()) / rect.width() * l0_w
        l0_y = (pos.y() - rect.top()) / rect.height() * l0_h
        return min(max(l0_x, 0.0), float(l0_w)), min(max(l0_y, 0.0), float(l0_h))

    def widget_rect_from_l0(self, rect_l0: QRectF) -> QRectF:
        """Level-0 rectangle -> widget rectangle."""
        rect = self.image_rect()
        if rect.isEmpty():
            return QRectF()
        scale = rect.width() / self._l0_size[0]
        return QRectF(
            rect.left() + rect_l0.left() * scale,
            rect.top() + rect_l0.top() * scale,
            rect_l0.width() * scale,
            rect_l0.height() * scale,
        )

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """The thumbnail and the visible rectangle."""
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(48, 48, 48))
        rect = self.image_rect()
        if not self._image.isNull() and not rect.isEmpty():
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawImage(rect, self._image)
            if not self._viewport_l0.isEmpty():
                view = self.widget_rect_from_l0(self._viewport_l0).intersected(rect)
                pen = QPen(QColor(255, 40, 40), 2)
                painter.setPen(pen)
                painter.drawRect(view.adjusted(1, 1, -1, -1) if view.width() > 4 else view)
        painter.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """Jump to the clicked point."""
        if event.button() == Qt.MouseButton.LeftButton:
            self._jump_to(event.position())
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """Follow a drag."""
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._jump_to(event.position())
            event.accept()

    def _jump_to(self, pos: QPointF) -> None:
        target = self.l0_from_widget(pos)
        if target is not None:
            self.jump_requested.emit(*target)
