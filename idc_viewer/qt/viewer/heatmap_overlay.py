"""Paints a :class:`~idc_viewer.core.heatmap.Heatmap` over the slide, aligned to its grid.

The heatmap is data; this class only paints it. Its probability grid becomes a small RGBA
image (one pixel per patch). Zoomed out it is drawn as one image scaled by the grid's
(possibly fractional) ``l0_patch_size``; when few cells are visible each cell is filled on
exactly its ``grid.l0_rect(col, row)`` footprint, so the overlay matches the patches the model
saw at every zoom. Flagged cells (>= threshold) get a contrasting outline.

Colours follow :func:`~idc_viewer.core.colormap.overlay_rgba` (transparent below a floor, so
benign tissue stays readable); tissue cells not analysed yet (a partial analysis) get a grey
veil, so "not analysed" never looks like "analysed, low". Everything is clipped to the slide:
the last row and column of cells may extend past its edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray
from PySide6.QtCore import QLineF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QImage, QPainter, QPainterPath, QPen, QTransform

from idc_viewer.core.colormap import overlay_rgba
from idc_viewer.core.view_geometry import ViewTransform
from idc_viewer.qt.image_convert import qimage_from_array

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap

#: Above this many visible cells the overlay is drawn as one scaled image.
MAX_CELLS_DRAWN_ONE_BY_ONE = 2500
#: RGBA of a tissue cell not analysed yet (before the layer's opacity), under a hatch.
PENDING_RGBA = (150, 150, 150, 200)
PENDING_HATCH = QColor(40, 40, 40, 170)


def outline_segments_l0(
    mask: NDArray[np.bool_], x_edges_l0: NDArray[np.int64], y_edges_l0: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Return the boundary of the True cells of ``mask[rows, cols]`` as level-0 segments.

    Returns
    -------
    numpy.ndarray
        ``float64[N, 4]`` of ``(l0_x1, l0_y1, l0_x2, l0_y2)``; collinear cell edges are merged
        into one segment.
    """
    rows, cols = mask.shape
    padded = np.zeros((rows + 2, cols + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
    # vertical[r, c]: the cell edge at x_edges[c] in row r separates flagged from not.
    vertical = padded[1:-1, :-1] != padded[1:-1, 1:]
    # horizontal[r, c]: the cell edge at y_edges[r] in column c separates flagged from not.
    horizontal = padded[:-1, 1:-1] != padded[1:, 1:-1]
    v_fixed, v_start, v_stop = _runs(vertical.T)
    h_fixed, h_start, h_stop = _runs(horizontal)
    v_segments = np.stack(
        [x_edges_l0[v_fixed], y_edges_l0[v_start], x_edges_l0[v_fixed], y_edges_l0[v_stop]], 1
    )
    h_segments = np.stack(
        [x_edges_l0[h_start], y_edges_l0[h_fixed], x_edges_l0[h_stop], y_edges_l0[h_fixed]], 1
    )
    return np.concatenate([v_segments, h_segments]).astype(np.float64)


def _runs(
    lines: NDArray[np.bool_],
) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.intp]]:
    """Runs of True along axis 1: (line index, start, stop-exclusive) arrays."""
    padded = np.zeros((lines.shape[0], lines.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = lines
    step = np.diff(padded, axis=1)
    line_idx, starts = np.nonzero(step == 1)
    _, stops = np.nonzero(step == -1)
    return line_idx, starts, stops


class ViewLayer(Protocol):
    """Something the slide view paints over the heatmap (Grad-CAM layer, outlines).

    ``paint(painter, transform, view_rect)`` draws in view pixels.
    """

    def paint(self, painter: QPainter, transform: ViewTransform, view_rect: QRectF) -> None:
        """Draw the layer in view pixels."""


class HeatmapOverlay:
    """State and painting of the heatmap layer of a :class:`SlideView`.

    Parameters
    ----------
    colormap : str
        Colormap name understood by :func:`idc_viewer.core.colormap.overlay_rgba`.
    """

    def __init__(self, colormap: str = "inferno") -> None:
        self.heatmap: Heatmap | None = None
        self.colormap = colormap
        self.opacity = 0.5
        self.visible = True
        self.threshold: float | None = None
        self._rgba: NDArray[np.uint8] = np.zeros((0, 0, 4), dtype=np.uint8)
        self._image = QImage()
        self._edges: tuple[NDArray[np.int64], NDArray[np.int64]] | None = None
        self._outline_lines: list[QLineF] | None = None
        self._pending: NDArray[np.bool_] | None = None
        self._pending_path: QPainterPath | None = None

    def set_heatmap(self, heatmap: Heatmap | None) -> None:
        """Show ``heatmap`` (None removes the layer and its pending mask)."""
        self.heatmap = heatmap
        self._edges = heatmap.grid.l0_edges() if heatmap is not None else None
        if heatmap is None or (
            self._pending is not None and self._pending.shape != heatmap.probabilities.shape
        ):
            self._pending = None
        self.refresh()

    def set_pending_mask(self, pending: NDArray[np.bool_] | None) -> None:
        """Tissue cells not analysed yet, painted grey (None: none known)."""
        if pending is not None and self.heatmap is not None:
            pending = np.asarray(pending, dtype=bool)
            if pending.shape != self.heatmap.probabilities.shape:
                pending = None
        self._pending = None if pending is None or not pending.any() else pending
        self._pending_path = None
        self.refresh()

    def set_threshold(self, threshold: float | None) -> None:
        """Outline cells at or above ``threshold`` (None: no outline)."""
        self.threshold = threshold
        self._outline_lines = None

    def set_colormap(self, colormap: str) -> None:
        """Change the colormap."""
        self.colormap = colormap
        self.refresh()

    def refresh(self, cells: NDArray[np.integer] | None = None) -> None:
        """Re-read probabilities from the heatmap (all, or only ``cells`` as (col, row) rows)."""
        self._outline_lines = None
        if self.heatmap is None:
            self._rgba = np.zeros((0, 0, 4), dtype=np.uint8)
            self._image = QImage()
            return
        probs = self.heatmap.probabilities
        self._pending_path = None  # cells analysed since lose their hatch
        if cells is None or self._rgba.shape[:2] != probs.shape:
            self._rgba = overlay_rgba(probs, self.colormap)
            if self._pending is not None:
                self._rgba[self._pending & np.isnan(probs)] = PENDING_RGBA
        else:
            cols, rows = cells[:, 0], cells[:, 1]
            self._rgba[rows, cols] = overlay_rgba(probs[rows, cols], self.colormap)
        self._image = qimage_from_array(self._rgba)

    def paint(self, painter: QPainter, transform: ViewTransform, view_rect: QRectF) -> None:
        """Draw the layer (cells, then outlines) into a view of ``view_rect``."""
        if self.heatmap is None or not self.visible or self._edges is None:
            return
        painter.save()
        grid = self.heatmap.grid
        view_x0, view_y0 = transform.view_from_l0(0.0, 0.0)
        view_x1, view_y1 = transform.view_from_l0(float(grid.l0_width), float(grid.l0_height))
        painter.setClipRect(
            QRectF(view_x0, view_y0, view_x1 - view_x0, view_y1 - view_y0),
            Qt.ClipOperation.IntersectClip,
        )
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setOpacity(self.opacity)
        visible = self._visible_cells(transform, view_rect)
        if visible is not None and _cell_count(visible) <= MAX_CELLS_DRAWN_ONE_BY_ONE:
            self._paint_cells(painter, transform, visible)
        else:
            self._paint_image(painter, transform)
        self._paint_pending_hatch(painter, transform)
        painter.setOpacity(1.0)
        self._paint_outline(painter, transform)
        painter.restore()

    def _paint_pending_hatch(self, painter: QPainter, transform: ViewTransform) -> None:
        """Diagonal hatch (screen-sized strokes at every zoom) over the not-analysed cells."""
        if self._pending is None or self._edges is None or self.heatmap is None:
            return
        if self._pending_path is None:
            self._pending_path = _cells_path(
                self._pending & np.isnan(self.heatmap.probabilities), *self._edges
            )
        if self._pending_path.isEmpty():
            return
        zoom = transform.view_px_per_l0
        to_view = QTransform(
            zoom, 0, 0, zoom, -transform.l0_origin_x * zoom, -transform.l0_origin_y * zoom
        )
        painter.fillPath(
            to_view.map(self._pending_path), QBrush(PENDING_HATCH, Qt.BrushStyle.BDiagPattern)
        )

    def _visible_cells(
        self, transform: ViewTransform, view_rect: QRectF
    ) -> tuple[int, int, int, int] | None:
        """(col0, row0, col1, row1) inclusive range of cells on screen, None when none."""
        assert self._edges is not None
        x_edges, y_edges = self._edges
        l0_x0, l0_y0 = transform.l0_from_view(view_rect.left(), view_rect.top())
        l0_x1, l0_y1 = transform.l0_from_view(view_rect.right(), view_rect.bottom())
        col0 = max(0, int(np.searchsorted(x_edges, l0_x0, side="right")) - 1)
        row0 = max(0, int(np.searchsorted(y_edges, l0_y0, side="right")) - 1)
        col1 = min(len(x_edges) - 2, int(np.searchsorted(x_edges, l0_x1, side="left")))
        row1 = min(len(y_edges) - 2, int(np.searchsorted(y_edges, l0_y1, side="left")))
        if col1 < col0 or row1 < row0:
            return None
        return col0, row0, col1, row1

    def _paint_cells(
        self, painter: QPainter, transform: ViewTransform, cells: tuple[int, int, int, int]
    ) -> None:
        assert self._edges is not None
        x_edges, y_edges = self._edges
        col0, row0, col1, row1 = cells
        view_xs = [transform.view_from_l0(float(x), 0.0)[0] for x in x_edges[col0 : col1 + 2]]
        view_ys = [transform.view_from_l0(0.0, float(y))[1] for y in y_edges[row0 : row1 + 2]]
        block = self._rgba[row0 : row1 + 1, col0 : col1 + 1]
        for r_idx, c_idx in zip(*np.nonzero(block[..., 3]), strict=True):
            red, green, blue, alpha = (int(v) for v in block[r_idx, c_idx])
            painter.fillRect(
                QRectF(
                    view_xs[c_idx],
                    view_ys[r_idx],
                    view_xs[c_idx + 1] - view_xs[c_idx],
                    view_ys[r_idx + 1] - view_ys[r_idx],
                ),
                QColor(red, green, blue, alpha),
            )

    def _paint_image(self, painter: QPainter, transform: ViewTransform) -> None:
        if self._image.isNull() or self.heatmap is None:
            return
        size = float(self.heatmap.grid.l0_patch_size)
        view_x0, view_y0 = transform.view_from_l0(0.0, 0.0)
        view_x1, view_y1 = transform.view_from_l0(
            size * self._image.width(), size * self._image.height()
        )
        painter.drawImage(
            QRectF(view_x0, view_y0, view_x1 - view_x0, view_y1 - view_y0), self._image
        )

    def _paint_outline(self, painter: QPainter, transform: ViewTransform) -> None:
        if self.threshold is None or self.heatmap is None or self._edges is None:
            return
        if self._outline_lines is None:
            segments = outline_segments_l0(self.heatmap.flagged_mask(self.threshold), *self._edges)
            self._outline_lines = [QLineF(*map(float, seg)) for seg in segments]
        if not self._outline_lines:
            return
        zoom = transform.view_px_per_l0
        painter.setTransform(
            QTransform(
                zoom, 0, 0, zoom, -transform.l0_origin_x * zoom, -transform.l0_origin_y * zoom
            ),
            True,
        )
        # Axis-aligned lines: crisp (no antialiasing) so the cyan core keeps its full colour.
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        for color, width in ((QColor(0, 0, 0, 200), 4.0), (QColor(0, 255, 255), 2.0)):
            pen = QPen(color, width)
            pen.setCosmetic(True)
            pen.setCapStyle(Qt.PenCapStyle.SquareCap)
            painter.setPen(pen)
            painter.drawLines(self._outline_lines)


def _cells_path(
    mask: NDArray[np.bool_], x_edges: NDArray[np.int64], y_edges: NDArray[np.int64]
) -> QPainterPath:
    """The True cells of ``mask`` as one level-0 path (runs of a row merged into rectangles)."""
    path = QPainterPath()
    path.setFillRule(Qt.FillRule.WindingFill)
    rows, starts, stops = _runs(mask)
    for row, start, stop in zip(rows.tolist(), starts.tolist(), stops.tolist(), strict=True):
        x0, x1 = float(x_edges[start]), float(x_edges[stop])
        y0, y1 = float(y_edges[row]), float(y_edges[row + 1])
        path.addRect(QRectF(x0, y0, x1 - x0, y1 - y0))
    return path


def _cell_count(cells: tuple[int, int, int, int]) -> int:
    col0, row0, col1, row1 = cells
    return (col1 - col0 + 1) * (row1 - row0 + 1)
