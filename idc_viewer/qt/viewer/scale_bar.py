"""Scale bar drawn in a corner of the slide view (µm / mm in 1-2-5 steps)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFontMetricsF, QPainter

from idc_viewer.core.view_geometry import scale_bar_for

NO_SCALE_TEXT = "no scale"


class ScaleBar:
    """Computes and paints the scale bar; holds no state but its look.

    Parameters
    ----------
    max_view_px : float
        Longest bar, in view pixels.
    margin_view_px : float
        Distance from the view's bottom-left corner.
    """

    def __init__(self, max_view_px: float = 150.0, margin_view_px: float = 12.0) -> None:
        self.max_view_px = max_view_px
        self.margin_view_px = margin_view_px

    def text(self, mpp: float | None, view_px_per_l0: float) -> str:
        """The label for this scale and zoom, or :data:`NO_SCALE_TEXT` when mpp is unknown."""
        bar = scale_bar_for(mpp, view_px_per_l0, self.max_view_px)
        return NO_SCALE_TEXT if bar is None else bar[1]

    def paint(
        self, painter: QPainter, view_rect: QRectF, mpp: float | None, view_px_per_l0: float
    ) -> None:
        """Draw the bar (or "no scale") in the bottom-left corner of ``view_rect``."""
        bar = scale_bar_for(mpp, view_px_per_l0, self.max_view_px)
        label = NO_SCALE_TEXT if bar is None else bar[1]
        bar_view_px = 0.0 if bar is None else bar[0]
        metrics = QFontMetricsF(painter.font())
        pad = 5.0
        box_w = max(bar_view_px, metrics.horizontalAdvance(label)) + 2 * pad
        box_h = metrics.height() + (8.0 if bar is not None else 0.0) + 2 * pad
        box = QRectF(
            view_rect.left() + self.margin_view_px,
            view_rect.bottom() - self.margin_view_px - box_h,
            box_w,
            box_h,
        )
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.fillRect(box, QColor(255, 255, 255, 190))
        painter.setPen(QColor(0, 0, 0))
        text_rect = QRectF(box.left() + pad, box.top() + pad, box_w - 2 * pad, metrics.height())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignLeft, label)
        if bar is not None:
            bar_rect = QRectF(box.left() + pad, box.bottom() - pad - 5.0, bar_view_px, 5.0)
            painter.fillRect(bar_rect, QColor(0, 0, 0))
        painter.restore()
