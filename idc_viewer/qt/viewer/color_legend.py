"""Horizontal 0-to-1 colour legend of the heatmap overlay, with ticks and threshold.

The bar shows the overlay's colours as they fall on white glass (alpha included: clear below
the floor), and a note says what clear and grey mean.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QPointF, QRectF, QSize
from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

from idc_viewer.core.colormap import OVERLAY_FLOOR, overlay_rgba
from idc_viewer.core.pixels import composite_on_white
from idc_viewer.qt.image_convert import qimage_from_array

TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


class ColorLegend(QWidget):
    """Gradient bar of the heatmap colormap from probability 0 (left) to 1 (right).

    Parameters
    ----------
    colormap : str
        Name understood by :func:`idc_viewer.core.colormap.colormap_lut`.
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
        """Room for the bar and two lines of labels."""
        height = QFontMetricsF(self.font()).height()
        return QSize(220, int(3 * height + 24))

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        """Narrower, as high."""
        return QSize(120, self.sizeHint().height())

    def bar_rect(self) -> QRectF:
        """Where the gradient is drawn, in widget pixels."""
        metrics = QFontMetricsF(self.font())
        side = metrics.horizontalAdvance("0.00") / 2 + 2
        return QRectF(side, metrics.height() + 2, self.width() - 2 * side, 12.0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """The title, the colour bar with its ticks, the note and the threshold mark."""
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
        note_y = bar.bottom() + 6 + metrics.height() + metrics.ascent()
        painter.drawText(QPointF(bar.left(), note_y), self.note())
        if self._threshold is not None:
            x = bar.left() + float(np.clip(self._threshold, 0, 1)) * bar.width()
            for color, width in ((QColor(0, 0, 0), 4.0), (QColor(0, 255, 255), 2.0)):
                painter.setPen(QPen(color, width))
                painter.drawLine(QPointF(x, bar.top() - 2), QPointF(x, bar.bottom() + 2))
        painter.end()

    @staticmethod
    def note() -> str:
        """What the bar cannot show: clear below the floor, hatched grey for not analysed."""
        return f"clear below {OVERLAY_FLOOR:g} · hatched: not analysed yet"

    @staticmethod
    def _rgba(values: NDArray[np.float32], colormap: str) -> np.ndarray:
        """The layer's RGBA of a ``(1, n)`` row of values (here the heatmap overlay's)."""
        return overlay_rgba(values, colormap)

    @classmethod
    def _on_white(cls, values: NDArray[np.float32], colormap: str) -> np.ndarray:
        return composite_on_white(cls._rgba(values, colormap))

    @classmethod
    def _make_gradient(cls, colormap: str) -> QImage:
        ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)[np.newaxis, :]
        return qimage_from_array(np.ascontiguousarray(cls._on_white(ramp, colormap)))

    def color_at(self, probability: float) -> QColor:
        """Colour the legend shows for ``probability``: the overlay's, on white glass."""
        p = np.array([[float(np.clip(probability, 0.0, 1.0))]], dtype=np.float32)
        red, green, blue = (int(v) for v in self._on_white(p, self._colormap)[0, 0])
        return QColor(red, green, blue)
