"""Horizontal 0-to-1 colour legend for the heatmap colormap, with ticks and threshold."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize
from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from idc_viewer.core.heatmap import colormap_lut
from idc_viewer.qt.image_convert import qimage_from_array

TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


class ColorLegend(QWidget):
    """Gradient bar of the heatmap colormap from probability 0 (left) to 1 (right).

    Parameters
    ----------
    colormap : str
        Name understood by :func:`idc_viewer.core.heatmap.colormap_lut`.
    threshold : float, optional
        Drawn as a marker on the bar.
    title : str
        Shown above the bar.
    parent : QWidget, optional
    """

    def __init__(
        self,
        colormap: str = "inferno",
        threshold: float | None = None,
        title: str = "P(IDC)",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._colormap = colormap
        self._threshold = threshold
        self._title = title
        self._gradient = self._make_gradient(colormap)

    @property
    def colormap(self) -> str:
        """Current colormap name."""
        return self._colormap

    @property
    def threshold(self) -> float | None:
        """Current threshold marker (None: none)."""
        return self._threshold

    def set_colormap(self, colormap: str) -> None:
        """Show another colormap."""
        self._colormap = colormap
        self._gradient = self._make_gradient(colormap)
        self.update()

    def set_threshold(self, threshold: float | None) -> None:
        """Move (or hide, with None) the threshold marker."""
        self._threshold = threshold
        self.update()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        height = QFontMetricsF(self.font()).height()
        return QSize(220, int(2 * height + 22))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(120, self.sizeHint().height())

    def bar_rect(self) -> QRectF:
        """Where the gradient is drawn, in widget pixels."""
        metrics = QFontMetricsF(self.font())
        side = metrics.horizontalAdvance("0.00") / 2 + 2
        return QRectF(side, metrics.height() + 2, self.width() - 2 * side, 12.0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        metrics = QFontMetricsF(self.font())
        bar = self.bar_rect()
        painter.setPen(self.palette().windowText().color())
        painter.drawText(QPointF(bar.left(), metrics.ascent()), self._title)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.drawImage(bar, self._gradient)
        painter.setPen(QPen(self.palette().windowText().color(), 1))
        painter.drawRect(bar)
        for tick in TICKS:
            x = bar.left() + tick * bar.width()
            painter.drawLine(QPointF(x, bar.bottom()), QPointF(x, bar.bottom() + 4))
            label = f"{tick:g}"
            half = metrics.horizontalAdvance(label) / 2
            painter.drawText(QPointF(x - half, bar.bottom() + 4 + metrics.ascent()), label)
        if self._threshold is not None:
            x = bar.left() + float(np.clip(self._threshold, 0, 1)) * bar.width()
            for color, width in ((QColor(0, 0, 0), 4.0), (QColor(0, 255, 255), 2.0)):
                painter.setPen(QPen(color, width))
                painter.drawLine(QPointF(x, bar.top() - 2), QPointF(x, bar.bottom() + 2))
        painter.end()

    @staticmethod
    def _make_gradient(colormap: str) -> QImage:
        rgb = np.ascontiguousarray(colormap_lut(colormap)[np.newaxis, :, :])
        return qimage_from_array(rgb)

    def color_at(self, probability: float) -> QColor:
        """Colour the legend shows for ``probability`` (same table as the overlay)."""
        index = round(float(np.clip(probability, 0.0, 1.0)) * 255)
        red, green, blue = (int(v) for v in colormap_lut(self._colormap)[index])
        return QColor(red, green, blue)
