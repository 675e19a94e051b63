"""The slide view: a pyramid-aware, tiled, zoomable view of a :class:`Slide` with overlays.

Painting goes coarse to fine: the thumbnail over the whole slide, then whatever cached tiles
of coarser levels cover the screen, then the tiles of the level chosen for the zoom. Missing
tiles are requested from a :class:`TileLoader` every time the viewport moves (a new request
generation), so the sharper tile replaces its blurry stand-in as soon as it is decoded.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Protocol

import numpy as np
from PySide6.QtCore import QPointF, QRect, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QApplication, QWidget

from idc_viewer.core.tile_cache import TileCache, TileKey
from idc_viewer.core.view_geometry import (
    ViewTransform,
    choose_level,
    tile_lvl_rect,
    tiles_covering_l0_rect,
    transform_showing_l0_rect,
)
from idc_viewer.qt.image_convert import qimage_for_painting
from idc_viewer.qt.viewer.display_adjust import DisplayAdjustments, apply_in_place
from idc_viewer.qt.viewer.heatmap_overlay import HeatmapOverlay
from idc_viewer.qt.viewer.ruler import Ruler
from idc_viewer.qt.viewer.scale_bar import ScaleBar
from idc_viewer.qt.viewer.tile_loader import TileLoader, TileRequest

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.slide import Slide

#: Longest side of the thumbnail drawn under the tiles.
THUMBNAIL_MAX_SIDE = 1024
#: How many levels coarser than the chosen one are drawn as stand-ins (when cached).
FALLBACK_LEVELS = 3
WHEEL_ZOOM_PER_NOTCH = 1.25
KEY_ZOOM_FACTOR = 1.5
KEY_PAN_FRACTION = 0.15
BACKGROUND = QColor(48, 48, 48)
#: Zoom limits: out to half the "whole slide fits" zoom, in to this many screen pixels per
#: native (level-0) pixel.
MIN_ZOOM_OF_FIT = 0.5
MAX_DEVICE_PX_PER_L0 = 8.0

_slide_ids = itertools.count(1)


class ViewLayer(Protocol):
    """Something painted over the heatmap (the Grad-CAM layer, outlines of the inspected
    patch): ``paint(painter, transform, view_rect)`` in view pixels."""

    def paint(self, painter: QPainter, transform: ViewTransform, view_rect: QRectF) -> None: ...


class SlideView(QWidget):
    """Shows one slide; wheel/keys/drag to navigate; heatmap overlay and scale bar on top.

    Parameters
    ----------
    slide : Slide, optional
        Slide shown at start (``set_slide`` changes it).
    cache : TileCache, optional
        Shared tile cache; a private 256 MB one by default.
    tile_px : int
        Side of a tile in pixels of its pyramid level.
    loader_threads : int
        Tile decoding threads.
    parent : QWidget, optional

    Signals
    -------
    viewport_changed(QRectF)
        The level-0 rectangle now visible (after every zoom, pan or resize).
    ruler_changed(str)
        The ruler's length as text ("" when cleared), while and after dragging.
    cursor_moved_l0(float, float)
        Level-0 position under the mouse.
    patch_clicked(float, float)
        Level-0 position of a left click that was not a drag.
    """

    viewport_changed = Signal(QRectF)
    ruler_changed = Signal(str)
    cursor_moved_l0 = Signal(float, float)
    patch_clicked = Signal(float, float)

    def __init__(
        self,
        slide: Slide | None = None,
        cache: TileCache[QImage] | None = None,
        *,
        tile_px: int = 256,
        loader_threads: int = 2,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent, True)
        self.setMinimumSize(64, 64)
        self._cache: TileCache[QImage] = cache if cache is not None else TileCache()
        self._tile_px = tile_px
        self._loader = TileLoader(self._cache, loader_threads, parent=self)
        self._loader.tile_ready.connect(self._on_tile_ready)
        self._transform = ViewTransform()
        self._generation = 0
        self._slide: Slide | None = None
        self._slide_id = ""
        self._thumbnail = QImage()
        self._needs_fit = False
        self._press_view_pos: QPointF | None = None
        self._last_view_pos = QPointF()
        self._dragging = False
        self._overlay = HeatmapOverlay()
        self._layers: list[ViewLayer] = []
        self._scale_bar = ScaleBar()
        self._ruler = Ruler()
        self._adjustments = DisplayAdjustments()
        self.set_slide(slide)

    # ------------------------------------------------------------------ slide and state

    def slide(self) -> Slide | None:
        """The slide shown (None when empty)."""
        return self._slide

    def set_slide(self, slide: Slide | None, thumbnail: NDArray[np.uint8] | None = None) -> None:
        """Show ``slide`` (fitted to the view); None empties the view. Does not close it.

        ``thumbnail``: the slide's ``thumbnail(THUMBNAIL_MAX_SIDE)`` when the caller already has
        it (on a single-level slide it costs a read of the whole image, ~0.5 s).
        """
        self._loader.cancel_all()
        if self._slide_id:
            self._cache.discard_slide(self._slide_id)
        self._slide = slide
        self._slide_id = f"{slide.info.path}#{next(_slide_ids)}" if slide is not None else ""
        self._thumbnail = QImage()
        if slide is not None:
            if thumbnail is None:
                thumbnail = slide.thumbnail(THUMBNAIL_MAX_SIDE)
            self._thumbnail = qimage_for_painting(thumbnail)
        self._overlay.set_heatmap(None)
        self._ruler.clear()
        self._needs_fit = True
        if slide is not None and self.isVisible():
            self.fit()
        self.update()

    def view_transform(self) -> ViewTransform:
        """Current level-0 origin and zoom."""
        return self._transform

    def set_view_transform(self, transform: ViewTransform) -> None:
        """Jump to a saved view."""
        self._needs_fit = False
        self._transform = transform
        self._on_viewport_changed()

    def view_px_per_l0(self) -> float:
        """Zoom: view pixels per level-0 pixel."""
        return self._transform.view_px_per_l0

    def visible_l0_rect(self) -> QRectF:
        """Level-0 rectangle shown now."""
        return QRectF(*self._transform.l0_rect_from_view_size(self.width(), self.height()))

    def current_level(self) -> int:
        """Pyramid level drawn at the current zoom (device pixel ratio included)."""
        if self._slide is None:
            return 0
        device_px_per_l0 = self._transform.view_px_per_l0 * self.devicePixelRatioF()
        return choose_level(self._slide.info.level_downsamples, device_px_per_l0)

    def pending_tiles(self) -> int:
        """Tiles queued or being decoded."""
        return self._loader.pending_count

    def scale_bar_text(self) -> str:
        """The scale bar's label now ("no scale" when the slide's µm/px is unknown)."""
        mpp = self._slide.info.mpp if self._slide is not None else None
        return self._scale_bar.text(mpp, self._transform.view_px_per_l0)

    def shutdown(self) -> None:
        """Stop the tile threads; call before the application quits."""
        self._loader.shutdown()

    # ------------------------------------------------------------------ navigation

    def fit(self) -> None:
        """Show the whole slide, centred."""
        if self._slide is None:
            return
        info = self._slide.info
        self.zoom_to_l0_rect(0, 0, info.l0_width, info.l0_height)

    def zoom_to_l0_rect(self, l0_x: float, l0_y: float, l0_w: float, l0_h: float) -> None:
        """Show the level-0 rectangle as large as fits (within the zoom limits), centred."""
        self._needs_fit = False
        transform = transform_showing_l0_rect(l0_x, l0_y, l0_w, l0_h, self.width(), self.height())
        zoom = self._clamped_zoom(transform.view_px_per_l0)
        self._transform = ViewTransform(view_px_per_l0=zoom).centered_on_l0(
            l0_x + l0_w / 2, l0_y + l0_h / 2, self.width(), self.height()
        )
        self._on_viewport_changed()

    def zoom_limits(self) -> tuple[float, float]:
        """``(min, max)`` view px per level-0 px: half the fit zoom .. 8 device px per native px."""
        top = MAX_DEVICE_PX_PER_L0 / self.devicePixelRatioF()
        if self._slide is None:
            return 1.0 / 4096.0, top
        info = self._slide.info
        fit = min(
            max(self.width(), 1) / max(info.l0_width, 1),
            max(self.height(), 1) / max(info.l0_height, 1),
        )
        return min(fit * MIN_ZOOM_OF_FIT, top), top

    def _clamped_zoom(self, view_px_per_l0: float) -> float:
        low, high = self.zoom_limits()
        return min(high, max(low, view_px_per_l0))

    def center_on_l0(self, l0_x: float, l0_y: float) -> None:
        """Keep the zoom, put a level-0 point at the centre of the view."""
        self._needs_fit = False
        self._transform = self._transform.centered_on_l0(l0_x, l0_y, self.width(), self.height())
        self._on_viewport_changed()

    def zoom_by(self, factor: float, view_anchor: QPointF | None = None) -> None:
        """Multiply the zoom, keeping the level-0 point under ``view_anchor`` (default: centre)."""
        anchor = view_anchor if view_anchor is not None else QPointF(self.rect().center())
        self._needs_fit = False
        current = self._transform.view_px_per_l0
        factor = self._clamped_zoom(current * factor) / current
        self._transform = self._transform.zoomed_about_view_point(factor, anchor.x(), anchor.y())
        self._on_viewport_changed()

    def zoom_to_one_to_one(self) -> None:
        """1:1 — one level-0 pixel per screen (device) pixel, about the centre."""
        target = 1.0 / self.devicePixelRatioF()
        self.zoom_by(target / self._transform.view_px_per_l0)

    def pan_by_view_px(self, view_dx: float, view_dy: float) -> None:
        """Move the content by view pixels (as a drag would)."""
        self._needs_fit = False
        self._transform = self._transform.panned_by_view_px(view_dx, view_dy)
        self._on_viewport_changed()

    # ------------------------------------------------------------------ ruler, adjustments

    def set_ruler_enabled(self, enabled: bool) -> None:
        """Ruler tool on (a drag measures instead of panning) or off (the segment goes)."""
        self._ruler.enabled = bool(enabled)
        if not enabled:
            self._ruler.clear()
            self.ruler_changed.emit("")
        if enabled:
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.unsetCursor()
        self.update()

    def ruler_text(self) -> str:
        """The measured length ("" when nothing is measured)."""
        return self._ruler.text(self._slide.info.mpp if self._slide is not None else None)

    def set_display_adjustments(self, adjustments: DisplayAdjustments) -> None:
        """Brightness/contrast/gamma of the slide layer (display only)."""
        self._adjustments = adjustments
        self.update()

    def display_adjustments(self) -> DisplayAdjustments:
        return self._adjustments

    # ------------------------------------------------------------------ heatmap overlay

    def add_layer(self, layer: ViewLayer) -> None:
        """Paint ``layer`` over the heatmap, after the layers added before it."""
        self._layers.append(layer)
        self.update()

    def set_heatmap(self, heatmap: Heatmap | None) -> None:
        """Paint ``heatmap`` over the slide (None removes it)."""
        self._overlay.set_heatmap(heatmap)
        self.update()

    def update_heatmap_cells(self, cells: NDArray[np.integer] | None = None) -> None:
        """Repaint after the heatmap's probabilities changed in place (only ``cells`` if given).

        ``cells`` is an ``(N, 2)`` array of ``(col, row)``; cheap, for streaming batches.
        """
        if cells is not None:
            cells = np.asarray(cells, dtype=np.intp).reshape(-1, 2)
        self._overlay.refresh(cells)
        self.update()

    def set_pending_mask(self, pending: NDArray[np.bool_] | None) -> None:
        """Grey veil over the heatmap's tissue cells not analysed yet (None: no veil)."""
        self._overlay.set_pending_mask(pending)
        self.update()

    def set_overlay_opacity(self, opacity: float) -> None:
        """Overlay opacity in [0, 1]."""
        self._overlay.opacity = min(1.0, max(0.0, float(opacity)))
        self.update()

    def set_overlay_visible(self, visible: bool) -> None:
        """Show or hide the heatmap layer (outline included)."""
        self._overlay.visible = bool(visible)
        self.update()

    def set_threshold(self, threshold: float | None) -> None:
        """Outline the cells at or above ``threshold`` (None: no outline)."""
        self._overlay.set_threshold(threshold)
        self.update()

    def set_colormap(self, colormap: str) -> None:
        """Colormap of the overlay (a name known to ``core.colormap``)."""
        self._overlay.set_colormap(colormap)
        self.update()

    # ------------------------------------------------------------------ tiles

    def _on_viewport_changed(self) -> None:
        self._request_tiles()
        self.update()
        self.viewport_changed.emit(self.visible_l0_rect())

    def thumbnail_suffices(self) -> bool:
        """True when the thumbnail is as fine as the screen: no tile would add detail.

        Zoomed out on a slide without coarse levels (a single-level 20x scan) the chosen level
        is level 0, whose tiles would cost decoding and a scaled paint of the whole slide.
        """
        if self._slide is None or self._thumbnail.isNull():
            return False
        thumb_px_per_l0 = self._thumbnail.width() / max(1, self._slide.info.l0_width)
        return thumb_px_per_l0 >= self._transform.view_px_per_l0 * self.devicePixelRatioF()

    def _request_tiles(self) -> None:
        if self._slide is None or self.width() <= 0 or self.height() <= 0:
            return
        self._generation += 1
        if self.thumbnail_suffices():
            self._loader.request([], self._generation)  # drop requests of earlier views
            return
        level = self.current_level()
        requests = [
            request for request in self._tile_requests(level) if request.key not in self._cache
        ]
        self._loader.request(requests, self._generation)

    def _tile_requests(self, level: int) -> list[TileRequest]:
        assert self._slide is not None
        info = self._slide.info
        downsample = info.level_downsamples[level]
        lvl_size = info.level_dimensions[level]
        l0_rect = self._transform.l0_rect_from_view_size(self.width(), self.height())
        requests = []
        for col, row in tiles_covering_l0_rect(l0_rect, downsample, lvl_size, self._tile_px):
            lvl_x, lvl_y, lvl_w, lvl_h = tile_lvl_rect(col, row, lvl_size, self._tile_px)
            requests.append(
                TileRequest(
                    key=TileKey(self._slide_id, level, col, row),
                    generation=self._generation,
                    l0_x=round(lvl_x * downsample),
                    l0_y=round(lvl_y * downsample),
                    lvl_w=lvl_w,
                    lvl_h=lvl_h,
                    slide=self._slide,
                )
            )
        return requests

    def _on_tile_ready(self, request: TileRequest) -> None:
        if request.key.slide_id == self._slide_id:
            self.update()

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        if self._slide is None:
            painter.fillRect(self.rect(), BACKGROUND)
        elif self._adjustments.is_identity:
            self._paint_slide_layer(painter)
        else:  # the slide layer alone goes through the table; heatmap and labels do not
            ratio = self.devicePixelRatioF()
            layer = QImage(
                round(self.width() * ratio),
                round(self.height() * ratio),
                QImage.Format.Format_RGB32,
            )
            layer.setDevicePixelRatio(ratio)
            layer_painter = QPainter(layer)
            self._paint_slide_layer(layer_painter)
            layer_painter.end()
            apply_in_place(layer, self._adjustments)
            painter.drawImage(0, 0, layer)
        if self._slide is not None:
            view_rect = QRectF(self.rect())
            self._overlay.paint(painter, self._transform, view_rect)
            for extra in self._layers:
                extra.paint(painter, self._transform, view_rect)
            self._scale_bar.paint(
                painter, view_rect, self._slide.info.mpp, self._transform.view_px_per_l0
            )
            self._ruler.paint(painter, self._transform, self._slide.info.mpp)
        painter.end()

    def _paint_slide_layer(self, painter: QPainter) -> None:
        assert self._slide is not None
        painter.fillRect(self.rect(), BACKGROUND)
        # Smooth only when shrinking: beyond 1:1 each native pixel stays a crisp square.
        device_zoom = self._transform.view_px_per_l0 * self.devicePixelRatioF()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, device_zoom < 1.0)
        self._paint_thumbnail(painter)
        if self.thumbnail_suffices():
            return
        level = self.current_level()
        coarsest = min(self._slide.info.level_count - 1, level + FALLBACK_LEVELS)
        for fallback in range(coarsest, level, -1):
            self._paint_cached_tiles(painter, fallback)
        self._paint_cached_tiles(painter, level)

    def _view_rect_of_l0(self, l0_x: float, l0_y: float, l0_w: float, l0_h: float) -> QRect:
        """Level-0 rectangle -> view rectangle with edges rounded to whole pixels (no seams)."""
        view_x0, view_y0 = self._transform.view_from_l0(l0_x, l0_y)
        view_x1, view_y1 = self._transform.view_from_l0(l0_x + l0_w, l0_y + l0_h)
        x0, y0 = math.floor(view_x0 + 0.5), math.floor(view_y0 + 0.5)
        x1, y1 = math.floor(view_x1 + 0.5), math.floor(view_y1 + 0.5)
        return QRect(x0, y0, max(1, x1 - x0), max(1, y1 - y0))

    def _paint_thumbnail(self, painter: QPainter) -> None:
        assert self._slide is not None
        if self._thumbnail.isNull():
            return
        info = self._slide.info
        painter.drawImage(
            self._view_rect_of_l0(0, 0, info.l0_width, info.l0_height), self._thumbnail
        )

    def _paint_cached_tiles(self, painter: QPainter, level: int) -> None:
        assert self._slide is not None
        downsample = self._slide.info.level_downsamples[level]
        for request in self._tile_requests(level):
            image = self._cache.get(request.key)
            if image is None:
                continue
            target = self._view_rect_of_l0(
                request.l0_x, request.l0_y, request.lvl_w * downsample, request.lvl_h * downsample
            )
            painter.drawImage(target, image)

    # ------------------------------------------------------------------ events

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        if self._needs_fit:
            self.fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        if self._needs_fit:
            self.fit()
            return
        old = event.oldSize()
        if old.width() > 0 and old.height() > 0:
            # Keep the level-0 point at the centre where it was.
            l0_x, l0_y = self._transform.l0_from_view(old.width() / 2, old.height() / 2)
            self._transform = self._transform.centered_on_l0(
                l0_x, l0_y, self.width(), self.height()
            )
        self._on_viewport_changed()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 (Qt override)
        notches = event.angleDelta().y() / 120.0
        if notches == 0:
            event.ignore()
            return
        self.zoom_by(WHEEL_ZOOM_PER_NOTCH**notches, event.position())
        event.accept()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton and self._ruler.enabled and self._slide:
            pos = event.position()
            self._ruler.begin(*self._transform.l0_from_view(pos.x(), pos.y()))
            self.ruler_changed.emit(self.ruler_text())
            self.update()
            event.accept()
            return
        if event.button() == Qt.MouseButton.LeftButton:
            self._press_view_pos = event.position()
            self._last_view_pos = event.position()
            self._dragging = False
            event.accept()
        else:
            super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        pos = event.position()
        if self._ruler.dragging:
            self._ruler.drag_to(*self._transform.l0_from_view(pos.x(), pos.y()))
            self.ruler_changed.emit(self.ruler_text())
            self.update()
        elif self._press_view_pos is not None:
            if not self._dragging:
                moved = (pos - self._press_view_pos).manhattanLength()
                if moved >= QApplication.startDragDistance():
                    self._dragging = True
                    self.setCursor(Qt.CursorShape.ClosedHandCursor)
            if self._dragging:
                delta = pos - self._last_view_pos
                self._last_view_pos = pos
                self.pan_by_view_px(delta.x(), delta.y())
        self.cursor_moved_l0.emit(*self._transform.l0_from_view(pos.x(), pos.y()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton and self._ruler.dragging:
            self._ruler.finish()
            self.ruler_changed.emit(self.ruler_text())
            return
        if event.button() != Qt.MouseButton.LeftButton or self._press_view_pos is None:
            super().mouseReleaseEvent(event)
            return
        was_click = not self._dragging
        self._press_view_pos = None
        self._dragging = False
        self.unsetCursor()
        if was_click and self._slide is not None:
            pos = event.position()
            self.patch_clicked.emit(*self._transform.l0_from_view(pos.x(), pos.y()))

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        key = event.key()
        pan_x = self.width() * KEY_PAN_FRACTION
        pan_y = self.height() * KEY_PAN_FRACTION
        actions = {
            Qt.Key.Key_Plus: lambda: self.zoom_by(KEY_ZOOM_FACTOR),
            Qt.Key.Key_Equal: lambda: self.zoom_by(KEY_ZOOM_FACTOR),
            Qt.Key.Key_Minus: lambda: self.zoom_by(1 / KEY_ZOOM_FACTOR),
            Qt.Key.Key_Left: lambda: self.pan_by_view_px(pan_x, 0),
            Qt.Key.Key_Right: lambda: self.pan_by_view_px(-pan_x, 0),
            Qt.Key.Key_Up: lambda: self.pan_by_view_px(0, pan_y),
            Qt.Key.Key_Down: lambda: self.pan_by_view_px(0, -pan_y),
            Qt.Key.Key_F: self.fit,
            Qt.Key.Key_1: self.zoom_to_one_to_one,
        }
        action = actions.get(Qt.Key(key))
        if action is None:
            super().keyPressEvent(event)
            return
        action()
        event.accept()

    def closeEvent(self, event: object) -> None:  # noqa: N802 (Qt override)
        self._loader.cancel_all()
        super().closeEvent(event)  # type: ignore[arg-type]
