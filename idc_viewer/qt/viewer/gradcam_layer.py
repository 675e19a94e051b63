"""The Grad-CAM layer of the slide view: every visible analysed patch's map on its footprint.

When patches are at least :data:`MIN_PATCH_VIEW_PX` screen pixels, the view asks
:class:`GradCamLoader` for the maps of the visible analysed cells it lacks (nearest the centre
first). One worker thread explains them in small batches with its own explainer; each
request carries a generation, a newer request replaces the queue, and a batch of an older one
is still cached (its maps are right) but starts no repaint. The worker also colours each map
(:func:`idc_viewer.engine.gradcam_layer.cam_rgba`) into a QImage, so the GUI thread only
draws. :class:`GradCamLayer` keeps those images in a byte-bounded LRU cache and paints them
on the cells' exact footprints (the heatmap's level-0 edges).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QRectF, Signal
from PySide6.QtGui import QImage, QPainter

from idc_viewer.core.errors import one_line
from idc_viewer.core.patches import Cell
from idc_viewer.core.view_geometry import ViewTransform
from idc_viewer.engine.gradcam_layer import CellCam, cam_rgba, cells_in_l0_rect, explain_cells
from idc_viewer.qt.image_convert import qimage_for_painting

if TYPE_CHECKING:
    from idc_viewer.core.heatmap import Heatmap
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import Slide
    from idc_viewer.engine.gradcam_layer import Explainer

log = logging.getLogger(__name__)

#: The layer shows (and computes) only when one patch is at least this many screen pixels.
MIN_PATCH_VIEW_PX = 64.0
#: Longest side of one patch's coloured map (the footprint's own size when smaller: a 4 µm/px
#: slide's 50-px patch gets a 50-px map, a 20x slide's 401-px patch a 256-px one).
MAP_MAX_SIDE_PX = 256
#: Budget of the cached maps (QImages, ~4 bytes per pixel).
DEFAULT_CACHE_BYTES = 128 * 1024 * 1024
#: Cells per explainer call in the worker: a repaint after each.
LOADER_BATCH = 8
#: Niceness added to the worker thread: on two busy cores the GUI thread goes first.
WORKER_NICE = 5


@dataclass(frozen=True)
class CamTile:
    """One explained cell as the layer paints it."""

    cam: CellCam
    image: QImage


@dataclass(frozen=True)
class CamRequest:
    """Explain ``cells`` (most wanted first) of ``slide`` with the model of ``context``."""

    context: int
    generation: int
    cells: tuple[Cell, ...]
    grid: PatchGrid
    slide: Slide = field(compare=False, repr=False)


def map_side_px(grid: PatchGrid) -> int:
    """Side of a patch's coloured map: its level-0 footprint, at most MAP_MAX_SIDE_PX."""
    return int(max(8, min(MAP_MAX_SIDE_PX, math.ceil(grid.l0_patch_size))))


class GradCamLoader(QObject):
    """One thread that explains cells newest request first and sends back painted tiles.

    Parameters
    ----------
    make_explainer
        ``make_explainer(model)`` builds an explainer (in the worker thread, once per
        context); :meth:`idc_viewer.ml.gradcam.GradCam.for_model` in the app.

    Signals
    -------
    tiles_ready(int, int, object)
        ``(context, generation, list[CamTile])`` in the GUI thread.
    failed(int, object)
        ``(context, exception)``: the explainer could not be built or failed.
    """

    tiles_ready = Signal(int, int, object)
    failed = Signal(int, object)

    def __init__(
        self, make_explainer: Callable[[Any], Explainer], parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._make_explainer = make_explainer
        self._cond = threading.Condition()
        self._pending: CamRequest | None = None
        self._generation = 0
        self._context = 0
        self._model: Any = None
        self._busy = False
        self._stopping = False
        self.dropped_batches = 0
        """Batches computed for a request that had been replaced (cached, not repainted)."""
        self._thread = threading.Thread(target=self._work, name="gradcam-layer", daemon=True)
        self._thread.start()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being computed."""
        with self._cond:
            return self._pending is None and not self._busy

    def set_context(self, context: int, model: Any) -> None:
        """A new slide/model/grid: forget what is queued.

        The worker builds the model's explainer now (h5 weights, LiteRT interpreter), before
        the first zoom needs it.
        """
        with self._cond:
            self._context, self._model = context, model
            self._pending = None
            self._generation += 1
            self._cond.notify_all()

    def request(self, slide: Slide, grid: PatchGrid, cells: Sequence[Cell]) -> int:
        """Replace the queue with ``cells`` (most wanted first); returns the generation."""
        with self._cond:
            self._generation += 1
            self._pending = (
                CamRequest(self._context, self._generation, tuple(cells), grid, slide)
                if cells
                else None
            )
            self._cond.notify_all()
            return self._generation

    def cancel(self) -> None:
        """Forget what is queued; what is being computed is no longer current."""
        with self._cond:
            self._generation += 1
            self._pending = None

    def current(self, context: int, generation: int) -> bool:
        """The request ``(context, generation)`` is still the one wanted."""
        with self._cond:
            return context == self._context and generation == self._generation

    def shutdown(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (waits up to ``timeout_s`` seconds)."""
        with self._cond:
            self._stopping = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout_s)

    def _next(self, built_for: int) -> tuple[CamRequest | None, int, Any] | None:
        """The next request, or ``(None, context, model)`` to build an explainer first."""
        with self._cond:
            while (
                self._pending is None
                and not self._stopping
                and (self._model is None or built_for == self._context)
            ):
                self._cond.wait()
            if self._stopping:
                return None
            request, self._pending = self._pending, None
            self._busy = True
            context = request.context if request is not None else self._context
            return request, context, self._model

    @staticmethod
    def _lower_priority() -> None:
        """Make this thread yield to the GUI thread on a busy CPU (Linux: a thread's nice)."""
        with contextlib.suppress(AttributeError, OSError):  # not Linux, or not permitted
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + WORKER_NICE)

    def _work(self) -> None:
        self._lower_priority()
        explainer: Explainer | None = None
        built_for = -1
        while (job := self._next(built_for)) is not None:
            request, context, model = job
            try:
                if built_for != context:
                    explainer, built_for = None, context  # a failed build is not retried
                    explainer = self._make_explainer(model)
                if request is None or explainer is None:
                    continue
                side = map_side_px(request.grid)
                for batch in explain_cells(
                    request.slide, request.grid, request.cells, explainer, LOADER_BATCH
                ):
                    tiles = [
                        CamTile(c, qimage_for_painting(cam_rgba(c.cam_lowres, side, side)))
                        for c in batch
                    ]
                    if self._stopping:
                        return
                    try:
                        self.tiles_ready.emit(request.context, request.generation, tiles)
                    except RuntimeError:  # the QObject was deleted under us
                        return
                    if not self.current(request.context, request.generation):
                        self.dropped_batches += 1
                        break  # a newer viewport wants other cells first
            except Exception as exc:  # a failure reaches the user, the thread carries on
                log.warning("Grad-CAM layer: %s", one_line(exc))
                try:
                    self.failed.emit(context, exc.with_traceback(None))
                except RuntimeError:
                    return
            finally:
                with self._cond:
                    self._busy = False


class GradCamLayer:
    """State, cache and painting of the Grad-CAM layer (GUI thread only).

    Parameters
    ----------
    max_bytes
        Budget of the cached maps; the least recently painted are evicted first.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.visible = True
        self.opacity = 0.7
        self.max_bytes = int(max_bytes)
        self.heatmap: Heatmap | None = None
        self._tiles: OrderedDict[Cell, CamTile] = OrderedDict()
        self._bytes = 0
        self._edges: tuple[np.ndarray, np.ndarray] | None = None

    # -- data ---------------------------------------------------------------------------------
    def set_heatmap(self, heatmap: Heatmap | None, keep_maps: bool = False) -> None:
        """The analysed cells (and grid) the layer explains; ``keep_maps`` for the same model."""
        same_grid = (
            heatmap is not None and self.heatmap is not None and heatmap.grid == self.heatmap.grid
        )
        self.heatmap = heatmap
        if not same_grid:  # per batch of a running analysis the grid stays: keep its edges
            # unclipped: a map covers its whole patch, part of which may lie past the slide
            self._edges = (
                heatmap.grid.l0_edges(clip_to_slide=False) if heatmap is not None else None
            )
        if not (keep_maps and same_grid):
            self.clear()

    def clear(self) -> None:
        """Forget every map."""
        self._tiles.clear()
        self._bytes = 0

    @property
    def bytes_used(self) -> int:
        """Memory held by the painted maps (bytes)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._tiles)

    def tile(self, cell: Cell) -> CamTile | None:
        """The map of ``cell``, if computed."""
        return self._tiles.get(cell)

    def add(self, tiles: Sequence[CamTile]) -> None:
        """Keep computed maps; beyond ``max_bytes`` the oldest are dropped."""
        for tile in tiles:
            old = self._tiles.pop(tile.cam.cell, None)
            if old is not None:
                self._bytes -= old.image.sizeInBytes()
            self._tiles[tile.cam.cell] = tile
            self._bytes += tile.image.sizeInBytes()
        while self._bytes > self.max_bytes and self._tiles:
            _, evicted = self._tiles.popitem(last=False)
            self._bytes -= evicted.image.sizeInBytes()

    # -- geometry -----------------------------------------------------------------------------
    def active_at(self, transform: ViewTransform) -> bool:
        """True when the zoom makes patches large enough to show their maps."""
        if self.heatmap is None:
            return False
        return transform.view_px_per_l0 * float(self.heatmap.grid.l0_patch_size) >= (
            MIN_PATCH_VIEW_PX
        )

    def visible_cells(self, transform: ViewTransform, view_w: float, view_h: float) -> list[Cell]:
        """Analysed cells on screen, nearest the centre first (empty when not active)."""
        if not self.active_at(transform) or self.heatmap is None:
            return []
        rect = transform.l0_rect_from_view_size(view_w, view_h)
        return cells_in_l0_rect(self.heatmap.grid, rect, probabilities=self.heatmap.probabilities)

    def missing_cells(self, transform: ViewTransform, view_w: float, view_h: float) -> list[Cell]:
        """Visible analysed cells without a map, most central first."""
        return [c for c in self.visible_cells(transform, view_w, view_h) if c not in self._tiles]

    # -- painting -----------------------------------------------------------------------------
    def paint(self, painter: QPainter, transform: ViewTransform, view_rect: QRectF) -> None:
        """Draw the cached maps of the visible cells on their footprints."""
        if not self.visible or self._edges is None or not self.active_at(transform):
            return
        x_edges, y_edges = self._edges
        cells = self.visible_cells(transform, view_rect.width(), view_rect.height())
        if not cells:
            return
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
        painter.setOpacity(self.opacity)
        for cell in cells:
            tile = self._tiles.get(cell)
            if tile is None:
                continue
            self._tiles.move_to_end(cell)
            col, row = cell
            view_x0, view_y0 = transform.view_from_l0(float(x_edges[col]), float(y_edges[row]))
            view_x1, view_y1 = transform.view_from_l0(
                float(x_edges[col + 1]), float(y_edges[row + 1])
            )
            painter.drawImage(
                QRectF(view_x0, view_y0, view_x1 - view_x0, view_y1 - view_y0), tile.image
            )
        painter.restore()
