"""The slide view: a pyramid-aware, tiled, zoomable view of a :class:`Slide` with overlays.

The view holds the navigation (zoom, pan, fit, limits) and stacks what it paints: the slide's
pixels (:class:`~idc_viewer.qt.viewer.tile_layer.TileLayer`, coarse to fine), the heatmap
overlay, the extra layers (Grad-CAM, outlines), the scale bar and the ruler. Its mouse and keys
go through :class:`~idc_viewer.qt.viewer.view_input.ViewInput`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QResizeEvent,
    QShowEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from idc_viewer.core.tile_cache import TileCache
from idc_viewer.core.view_geometry import ViewTransform, transform_showing_l0_rect
from idc_viewer.qt.viewer.display_adjust import DisplayAdjustments
from idc_viewer.qt.viewer.heatmap_overlay import HeatmapOverlay, ViewLayer
from idc_viewer.qt.viewer.ruler import Ruler
from idc_viewer.qt.viewer.scale_bar import ScaleBar
from idc_viewer.qt.viewer.tile_layer import BACKGROUND, TileLayer
from idc_viewer.qt.viewer.view_input import ViewInput

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.slide import Slide

#: Longest side of the thumbnail drawn under the tiles.
THUMBNAIL_MAX_SIDE = 1024
#: Zoom limits: out to half the "whole slide fits" zoom, in to this many screen pixels per
#: native (level-0) pixel.
MIN_ZOOM_OF_FIT = 0.5
MAX_DEVICE_PX_PER_L0 = 8.0


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
        self._tiles = TileLayer(
            cache if cache is not None else TileCache(), tile_px, loader_threads, parent=self
        )
        self._tiles.tile_arrived.connect(self.update)
        self._transform = ViewTransform()
        self._slide: Slide | None = None
        self._needs_fit = False
        self._overlay = HeatmapOverlay()
        self._layers: list[ViewLayer] = []
        self._scale_bar = ScaleBar()
        self._ruler = Ruler()
        self._adjustments = DisplayAdjustments()
        self._input = ViewInput(
            self,
            self._ruler,
            lambda: self.ruler_changed.emit(self.ruler_text()),
            self.patch_clicked.emit,
        )
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
        if slide is not None and thumbnail is None:
            thumbnail = slide.thumbnail(THUMBNAIL_MAX_SIDE)
        self._tiles.set_slide(slide, thumbnail if slide is not None else None)
        self._slide = slide
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
        return self._tiles.current_level(self._transform, self.devicePixelRatioF())

    def pending_tiles(self) -> int:
        """Tiles queued or being decoded."""
        return self._tiles.pending_count

    def scale_bar_text(self) -> str:
        """The scale bar's label now ("no scale" when the slide's µm/px is unknown)."""
        mpp = self._slide.info.mpp if self._slide is not None else None
        return self._scale_bar.text(mpp, self._transform.view_px_per_l0)

    def shutdown(self) -> None:
        """Stop the tile threads; call before the application quits."""
        self._tiles.shutdown()

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
        self._input.set_ruler_enabled(enabled)
        if not enabled:
            self.ruler_changed.emit("")
        self.update()

    def ruler_text(self) -> str:
        """The measured length ("" when nothing is measured)."""
        return self._ruler.text(self._slide.info.mpp if self._slide is not None else None)

    def set_display_adjustments(self, adjustments: DisplayAdjustments) -> None:
        """Brightness/contrast/gamma of the slide layer (display only)."""
        self._adjustments = adjustments
        self.update()

    def display_adjustments(self) -> DisplayAdjustments:
        """Brightness/contrast/gamma of the slide layer now."""
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
        self._tiles.request_tiles(
            self._transform, self.width(), self.height(), self.devicePixelRatioF()
        )
        self.update()
        self.viewport_changed.emit(self.visible_l0_rect())

    def thumbnail_suffices(self) -> bool:
        """True when the thumbnail is as fine as the screen: no tile would add detail."""
        return self._tiles.thumbnail_suffices(self._transform, self.devicePixelRatioF())

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        """Slide, heatmap, extra layers, scale bar and ruler, bottom to top."""
        painter = QPainter(self)
        if self._slide is None:
            painter.fillRect(self.rect(), BACKGROUND)
        else:
            ratio = self.devicePixelRatioF()
            self._tiles.paint(painter, self._transform, self.rect(), ratio, self._adjustments)
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

    # ------------------------------------------------------------------ events

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802 (Qt override)
        """Fit a slide set while hidden."""
        super().showEvent(event)
        if self._needs_fit:
            self.fit()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt override)
        """Keep the level-0 point at the centre (or fit, before the first view)."""
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
        """Zoom about the mouse."""
        if self._input.wheel(event.angleDelta().y() / 120.0, event.position()):
            event.accept()
        else:
            event.ignore()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """Left button: start a drag, a click or a measurement."""
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        self._input.press(event.position(), self._slide is not None)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """Pan or measure; report the level-0 position under the mouse."""
        pos = event.position()
        self._input.move(pos)
        self.cursor_moved_l0.emit(*self._transform.l0_from_view(pos.x(), pos.y()))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        """End the drag or measurement; a click reports its patch."""
        left = event.button() == Qt.MouseButton.LeftButton
        if not (left and self._input.release(event.position(), self._slide is not None)):
            super().mouseReleaseEvent(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt override)
        """+/- zoom, arrows pan, F fits, 1 shows 1:1."""
        if self._input.key(Qt.Key(event.key())):
            event.accept()
        else:
            super().keyPressEvent(event)

    def closeEvent(self, event: object) -> None:  # noqa: N802 (Qt override)
        """Drop the tile requests."""
        self._tiles.cancel()
        super().closeEvent(event)  # type: ignore[arg-type]
