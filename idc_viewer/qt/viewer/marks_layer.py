"""Outlines over the slide: the patch being inspected and the region selected in the table.

Both are level-0 rectangles drawn with cosmetic pens (the same width at every zoom). A patch
smaller than :data:`MIN_MARK_VIEW_PX` on screen gets a ring around it as well, so the
inspected patch is found at any zoom (at fit a patch is ~18 screen pixels).
"""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen

from idc_viewer.core.view_geometry import ViewTransform

#: Below this on-screen side a ring of this radius also marks the inspected patch.
MIN_MARK_VIEW_PX = 24.0
PATCH_COLOUR = QColor(255, 230, 0)  # yellow: unlike the heatmap's cyan flag outline
REGION_COLOUR = QColor(255, 0, 200)  # magenta, dashed

Rect = tuple[float, float, float, float]


class MarksLayer:
    """What is outlined: ``patch_l0`` and ``region_l0`` (``(x, y, w, h)`` level-0 px or None)."""

    def __init__(self) -> None:
        self.patch_l0: Rect | None = None
        self.region_l0: Rect | None = None

    @staticmethod
    def _view_rect(transform: ViewTransform, rect: Rect) -> QRectF:
        x, y, w, h = rect
        x0, y0 = transform.view_from_l0(x, y)
        x1, y1 = transform.view_from_l0(x + w, y + h)
        return QRectF(x0, y0, x1 - x0, y1 - y0)

    @staticmethod
    def _pens(colour: QColor, width: float, dashed: bool = False) -> list[QPen]:
        pens = []
        for c, w in ((QColor(0, 0, 0, 200), width + 2.0), (colour, width)):
            pen = QPen(c, w)
            pen.setCosmetic(True)
            if dashed and c == colour:
                pen.setStyle(Qt.PenStyle.DashLine)
            pens.append(pen)
        return pens

    def paint(self, painter: QPainter, transform: ViewTransform, view_rect: QRectF) -> None:
        """Outline the inspected patch and the selected region."""
        if self.patch_l0 is None and self.region_l0 is None:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        if self.region_l0 is not None:
            rect = self._view_rect(transform, self.region_l0)
            for pen in self._pens(REGION_COLOUR, 2.0, dashed=True):
                painter.setPen(pen)
                painter.drawRect(rect)
        if self.patch_l0 is not None:
            rect = self._view_rect(transform, self.patch_l0)
            for pen in self._pens(PATCH_COLOUR, 2.0):
                painter.setPen(pen)
                painter.drawRect(rect)
                if max(rect.width(), rect.height()) < MIN_MARK_VIEW_PX:
                    centre = QPointF(rect.center())
                    painter.drawEllipse(centre, MIN_MARK_VIEW_PX, MIN_MARK_VIEW_PX)
        painter.restore()
