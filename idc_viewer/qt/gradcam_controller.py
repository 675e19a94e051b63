"""Wires the Grad-CAM layer to the window: which slide, model and cells, and the layer mode.

:class:`GradCamLayerController` listens to the :class:`~idc_viewer.qt.state.AppState` (slide,
model, heatmap) and to the view's viewport; it asks the loader for the visible analysed cells
the layer lacks and repaints when their maps arrive. A new slide, model or grid is a new
context: the cache is emptied and results of the old one are ignored, so the layer only ever
shows the maps of the model whose heatmap is on screen.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QRectF, Signal

from idc_viewer.engine.gradcam_layer import LAYER_CHOICES, Layers
from idc_viewer.qt.viewer.gradcam_layer import CamTile, GradCamLayer, GradCamLoader

if TYPE_CHECKING:
    from idc_viewer.engine.gradcam_layer import Explainer
    from idc_viewer.qt.state import AppState
    from idc_viewer.qt.viewer.slide_view import SlideView


def default_explainer(model: Any) -> Explainer:
    """The app's Grad-CAM of a loaded model (LiteRT + numpy, no TensorFlow).

    One LiteRT thread: on the 2-core target the other core stays free for the GUI thread
    and the tile readers while the layer fills.
    """
    from idc_viewer.ml.gradcam import GradCam

    return GradCam.for_model(model, num_threads=1)


class GradCamLayerController(QObject):
    """The Grad-CAM layer of one window.

    Signals
    -------
    filled()
        Every visible analysed cell has its map (tests and the benchmark wait for it).
    failed(object)
        The exception that stopped the maps being computed (once per slide/model/grid).
    """

    filled = Signal()
    failed = Signal(object)

    def __init__(
        self,
        view: SlideView,
        state: AppState,
        make_explainer: Callable[[Any], Explainer] = default_explainer,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.view, self.state = view, state
        self.layer = GradCamLayer()
        self.loader = GradCamLoader(make_explainer, self)
        self.mode: Layers = "both"
        self._contexts = itertools.count(1)
        self._context = 0
        self._key: tuple[Any, Any, Any] | None = None
        self._reported_failure = False
        view.add_layer(self.layer)
        self.loader.tiles_ready.connect(self._on_tiles)
        self.loader.failed.connect(self._on_failed)
        view.viewport_changed.connect(self._on_viewport)
        state.heatmap_changed.connect(self._on_heatmap_changed)
        state.model_changed.connect(self._on_heatmap_changed)
        state.slide_changed.connect(self._on_heatmap_changed)

    # -- controls -----------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """``heatmap`` / ``gradcam`` / ``both`` / ``none``: which layers the view shows."""
        if mode not in LAYER_CHOICES:
            raise ValueError(f"unknown layer mode {mode!r}; choose one of {LAYER_CHOICES}")
        self.mode = mode
        self.view.set_overlay_visible(mode in ("heatmap", "both"))
        self.layer.visible = mode in ("gradcam", "both")
        self.refresh()
        self.view.update()

    def set_opacity(self, opacity: float) -> None:
        """Opacity of the Grad-CAM layer in [0, 1]."""
        self.layer.opacity = min(1.0, max(0.0, float(opacity)))
        self.view.update()

    @property
    def active(self) -> bool:
        """The layer is on and the zoom is close enough for it."""
        return self.layer.visible and self.layer.active_at(self.view.view_transform())

    def pending_cells(self) -> list[tuple[int, int]]:
        """Visible analysed cells still without a map."""
        if not self.layer.visible:
            return []
        return self.layer.missing_cells(
            self.view.view_transform(), self.view.width(), self.view.height()
        )

    def shutdown(self) -> None:
        """Stop the loader thread."""
        self.loader.shutdown()

    # -- reacting -----------------------------------------------------------------------------
    def _on_heatmap_changed(self) -> None:
        state = self.state
        heatmap = state.heatmap
        key = (state.slide, state.model, heatmap.grid if heatmap is not None else None)
        old = self._key
        same = old is not None and key[0] is old[0] and key[1] is old[1] and key[2] == old[2]
        if not same:
            self._key = key
            self._context = next(self._contexts)
            self._reported_failure = False
            self.loader.set_context(self._context, state.model)
        self.layer.set_heatmap(heatmap if state.model is not None else None, keep_maps=same)
        self.refresh()

    def _on_viewport(self, _rect: QRectF) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Ask for the visible cells that lack a map (or cancel when none is wanted)."""
        slide, heatmap = self.state.slide, self.layer.heatmap
        if slide is None or heatmap is None or self.state.model is None:
            self.loader.cancel()
            return
        missing = self.pending_cells()
        self.loader.request(slide, heatmap.grid, missing)
        if not missing and self.active:
            self.filled.emit()

    def _on_tiles(self, context: int, generation: int, tiles: Sequence[CamTile]) -> None:
        if context != self._context or self.layer.heatmap is None:
            return  # another slide or model: never shown
        self.layer.add(tiles)
        if self.loader.current(context, generation):
            self.view.update()
            if self.active and not self.pending_cells():
                self.filled.emit()

    def _on_failed(self, context: int, exc: Exception) -> None:
        if context == self._context and not self._reported_failure:
            self._reported_failure = True  # once per context, not once per viewport
            self.failed.emit(exc)
