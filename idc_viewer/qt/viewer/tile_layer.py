"""The slide's own pixels in the view: its thumbnail under its pyramid tiles, coarse to fine.

:class:`TileLayer` paints the thumbnail over the whole slide, then whatever cached tiles of
coarser levels cover the screen, then the tiles of the level chosen for the zoom. Missing tiles
are requested from a :class:`~idc_viewer.qt.viewer.tile_loader.TileLoader` every time the
viewport moves (a new request generation), so the sharper tile replaces its blurry stand-in as
soon as it is decoded.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QRect, Signal
from PySide6.QtGui import QColor, QImage, QPainter

from idc_viewer.core.tile_cache import TileCache, TileKey
from idc_viewer.core.view_geometry import (
    ViewTransform,
    choose_level,
    tile_lvl_rect,
    tiles_covering_l0_rect,
)
from idc_viewer.qt.image_convert import qimage_for_painting
from idc_viewer.qt.viewer.display_adjust import DisplayAdjustments, apply_in_place
from idc_viewer.qt.viewer.tile_loader import TileLoader, TileRequest

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from idc_viewer.core.slide import Slide

#: How many levels coarser than the chosen one are drawn as stand-ins (when cached).
FALLBACK_LEVELS = 3
BACKGROUND = QColor(48, 48, 48)

_slide_ids = itertools.count(1)


def view_rect_of_l0(
    transform: ViewTransform, l0_x: float, l0_y: float, l0_w: float, l0_h: float
) -> QRect:
    """Level-0 rectangle -> view rectangle with edges rounded to whole pixels (no seams)."""
    view_x0, view_y0 = transform.view_from_l0(l0_x, l0_y)
    view_x1, view_y1 = transform.view_from_l0(l0_x + l0_w, l0_y + l0_h)
    x0, y0 = math.floor(view_x0 + 0.5), math.floor(view_y0 + 0.5)
    x1, y1 = math.floor(view_x1 + 0.5), math.floor(view_y1 + 0.5)
    return QRect(x0, y0, max(1, x1 - x0), max(1, y1 - y0))


class TileLayer(QObject):
    """Thumbnail, tile requests and painting of one view's slide.

    Parameters
    ----------
    cache : TileCache
        Decoded tiles (shared or the view's own).
    tile_px : int
        Side of a tile in pixels of its pyramid level.
    loader_threads : int
        Tile decoding threads.
    parent : QObject, optional

    Signals
    -------
    tile_arrived()
        A tile of the slide shown is cached: repaint.
    """

    tile_arrived = Signal()

    def __init__(
        self,
        cache: TileCache[QImage],
        tile_px: int = 256,
        loader_threads: int = 2,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._cache = cache
        self._tile_px = tile_px
        self._loader = TileLoader(cache, loader_threads, parent=self)
        self._loader.tile_ready.connect(self._on_tile_ready)
        self._generation = 0
        self.slide: Slide | None = None
        self._slide_id = ""
        self.thumbnail = QImage()

    @property
    def pending_count(self) -> int:
        """Tiles queued or being decoded."""
        return self._loader.pending_count

    def set_slide(self, slide: Slide | None, thumbnail: NDArray[np.uint8] | None) -> None:
        """Paint ``slide`` (None: nothing); forget the tiles of the one before."""
        self._loader.cancel_all()
        if self._slide_id:
            self._cache.discard_slide(self._slide_id)
        self.slide = slide
        self._slide_id = f"{slide.info.path}#{next(_slide_ids)}" if slide is not None else ""
        self.thumbnail = qimage_for_painting(thumbnail) if thumbnail is not None else QImage()

    def cancel(self) -> None:
        """Forget the tiles requested (the view is closing or changing slide)."""
        self._loader.cancel_all()

    def shutdown(self) -> None:
        """Stop the tile threads."""
        self._loader.shutdown()

    # -- which tiles --------------------------------------------------------------------------
    def current_level(self, transform: ViewTransform, device_ratio: float) -> int:
        """Pyramid level drawn at ``transform``'s zoom on a screen of ``device_ratio``."""
        if self.slide is None:
            return 0
        device_px_per_l0 = transform.view_px_per_l0 * device_ratio
        return choose_level(self.slide.info.level_downsamples, device_px_per_l0)

    def thumbnail_suffices(self, transform: ViewTransform, device_ratio: float) -> bool:
        """True when the thumbnail is as fine as the screen: no tile would add detail.

        Zoomed out on a slide without coarse levels (a single-level 20x scan) the chosen level
        is level 0, whose tiles would cost decoding and a scaled paint of the whole slide.
        """
        if self.slide is None or self.thumbnail.isNull():
            return False
        thumb_px_per_l0 = self.thumbnail.width() / max(1, self.slide.info.l0_width)
        return thumb_px_per_l0 >= transform.view_px_per_l0 * device_ratio

    def request_tiles(
        self, transform: ViewTransform, width: int, height: int, device_ratio: float
    ) -> None:
        """Ask for the missing tiles of the view (a new generation; older requests drop)."""
        if self.slide is None or width <= 0 or height <= 0:
            return
        self._generation += 1
        if self.thumbnail_suffices(transform, device_ratio):
            self._loader.request([], self._generation)  # drop requests of earlier views
            return
        level = self.current_level(transform, device_ratio)
        requests = [
            request
            for request in self._tile_requests(level, transform, width, height)
            if request.key not in self._cache
        ]
        self._loader.request(requests, self._generation)

    def _tile_requests(
        self, level: int, transform: ViewTransform, width: int, height: int
    ) -> list[TileRequest]:
        assert self.slide is not None
        info = self.slide.info
        downsample = info.level_downsamples[level]
        lvl_size = info.level_dimensions[level]
        l0_rect = transform.l0_rect_from_view_size(width, height)
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
                    slide=self.slide,
                )
            )
        return requests

    def _on_tile_ready(self, request: TileRequest) -> None:
        if request.key.slide_id == self._slide_id:
            self.tile_arrived.emit()

    # -- painting -----------------------------------------------------------------------------
    def paint(
        self,
        painter: QPainter,
        transform: ViewTransform,
        view_rect: QRect,
        device_ratio: float,
        adjustments: DisplayAdjustments,
    ) -> None:
        """The slide layer, through the brightness/contrast/gamma table unless it is identity.

        Only the slide layer goes through the table; the heatmap and labels painted over it
        do not.
        """
        if adjustments.is_identity:
            self._paint_layer(painter, transform, view_rect, device_ratio)
            return
        layer = QImage(
            round(view_rect.width() * device_ratio),
            round(view_rect.height() * device_ratio),
            QImage.Format.Format_RGB32,
        )
        layer.setDevicePixelRatio(device_ratio)
        layer_painter = QPainter(layer)
        self._paint_layer(layer_painter, transform, view_rect, device_ratio)
        layer_painter.end()
        apply_in_place(layer, adjustments)
        painter.drawImage(0, 0, layer)

    def _paint_layer(
        self, painter: QPainter, transform: ViewTransform, view_rect: QRect, device_ratio: float
    ) -> None:
        """Background, thumbnail, then cached tiles from coarse to the chosen level."""
        assert self.slide is not None
        painter.fillRect(view_rect, BACKGROUND)
        # Smooth only when shrinking: beyond 1:1 each native pixel stays a crisp square.
        device_zoom = transform.view_px_per_l0 * device_ratio
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, device_zoom < 1.0)
        info = self.slide.info
        if not self.thumbnail.isNull():
            rect = view_rect_of_l0(transform, 0, 0, info.l0_width, info.l0_height)
            painter.drawImage(rect, self.thumbnail)
        if self.thumbnail_suffices(transform, device_ratio):
            return
        level = self.current_level(transform, device_ratio)
        coarsest = min(info.level_count - 1, level + FALLBACK_LEVELS)
        for fallback in range(coarsest, level - 1, -1):
            self._paint_cached_tiles(painter, fallback, transform, view_rect)

    def _paint_cached_tiles(
        self, painter: QPainter, level: int, transform: ViewTransform, view_rect: QRect
    ) -> None:
        assert self.slide is not None
        downsample = self.slide.info.level_downsamples[level]
        for request in self._tile_requests(level, transform, view_rect.width(), view_rect.height()):
            image = self._cache.get(request.key)
            if image is None:
                continue
            target = view_rect_of_l0(
                transform,
                request.l0_x,
                request.l0_y,
                request.lvl_w * downsample,
                request.lvl_h * downsample,
            )
            painter.drawImage(target, image)
