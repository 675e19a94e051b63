"""The ruler: drag on the slide to measure a straight distance, shown in µm or mm.

Pure state plus painting; the slide view feeds it level-0 points from mouse events while the
ruler tool is on, and paints it over everything else. Without a slide scale the length is
given in level-0 pixels.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QFontMetricsF, QPainter, QPen

from idc_viewer.core.view_geometry import ViewTransform


def ruler_text(l0_length: float, mpp: float | None) -> str:
    """``"412 µm"`` / ``"2.35 mm"``, or ``"830 px (no scale)"`` when µm/px is unknown."""
    if mpp is None or mpp <= 0:
        return f"{l0_length:,.0f} px (no scale)"
    um = l0_length * mpp
    return f"{um / 1000:.2f} mm" if um >= 1000 else f"{um:.1f} µm" if um < 10 else f"{um:.0f} µm"


class Ruler:
    """A measured segment in level-0 pixels (start and end), drawn while and after dragging."""

    def __init__(self) -> None:
        self.enabled = False
        self.l0_start: tuple[float, float] | None = None
        self.l0_end: tuple[float, float] | None = None
        self.dragging = False

    def begin(self, l0_x: float, l0_y: float) -> None:
        """Start measuring at a level-0 point."""
        self.l0_start = self.l0_end = (l0_x, l0_y)
        self.dragging = True

    def drag_to(self, l0_x: float, l0_y: float) -> None:
        """Move the end of the segment."""
        if self.dragging:
            self.l0_end = (l0_x, l0_y)

    def finish(self) -> None:
        """Stop dragging; the segment stays."""
        self.dragging = False

    def clear(self) -> None:
        """Forget the segment."""
        self.l0_start = self.l0_end = None
        self.dragging = False

    def l0_length(self) -> float | None:
        """Length of the segment in level-0 pixels (None: nothing measured)."""
        if self.l0_start is None or self.l0_end is None:
            return None
        return math.hypot(self.l0_end[0] - self.l0_start[0], self.l0_end[1] - self.l0_start[1])

    def text(self, mpp: float | None) -> str:
        """The length as text (µm or mm; px without a scale); "" when nothing is measured."""
        length = self.l0_length()
        return "" if length is None else ruler_text(length, mpp)

    def paint(self, painter: QPainter, transform: ViewTransform, mpp: float | None) -> None:
        """Draw the segment with end ticks and its length beside the end point."""
        if self.l0_start is None or self.l0_end is None:
            return
        x0, y0 = transform.view_from_l0(*self.l0_start)
        x1, y1 = transform.view_from_l0(*self.l0_end)
        start, end = QPointF(x0, y0), QPointF(x1, y1)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for color, width in ((QColor(0, 0, 0, 200), 4.0), (QColor(255, 230, 0), 2.0)):
            painter.setPen(QPen(color, width))
            painter.drawLine(start, end)
            for point in (start, end):
                painter.drawEllipse(point, 3.0, 3.0)
        label = self.text(mpp)
        metrics = QFontMetricsF(painter.font())
        box = QRectF(
            x1 + 8,
            y1 - metrics.height() - 8,
            metrics.horizontalAdvance(label) + 10,
            metrics.height() + 6,
        )
        painter.fillRect(box, QColor(255, 255, 255, 220))
        painter.setPen(QColor(0, 0, 0))
        painter.drawText(box.adjusted(5, 3, -5, -3), label)
        painter.restore()
