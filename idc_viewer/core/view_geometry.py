"""Pure geometry of a slide view: level-0 <-> view pixels, zoom, level and tile choice.

Nothing here imports Qt (the Qt viewer and headless renderers share it). Units are in the names:
``l0_`` level-0 pixels, ``lvl_`` pixels of one pyramid level, ``view_`` widget (device-
independent) pixels, ``um`` micrometres. The zoom is ``view_px_per_l0`` (2.0 = one level-0
pixel drawn as 2x2 view pixels; 1.0 = 1:1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from idc_viewer.core.formatting import format_length_um

#: Zoom limits in view pixels per level-0 pixel (1/512 shows a 100k slide in 200 px).
MIN_VIEW_PX_PER_L0 = 1.0 / 4096.0
MAX_VIEW_PX_PER_L0 = 64.0


@dataclass(frozen=True)
class ViewTransform:
    """Where the view looks: the level-0 point at the view's top-left corner and the zoom.

    Attributes
    ----------
    l0_origin_x, l0_origin_y : float
        Level-0 coordinates shown at view pixel (0, 0).
    view_px_per_l0 : float
        Zoom: view pixels per level-0 pixel.
    """

    l0_origin_x: float = 0.0
    l0_origin_y: float = 0.0
    view_px_per_l0: float = 1.0

    def view_from_l0(self, l0_x: float, l0_y: float) -> tuple[float, float]:
        """Return the view pixel position of a level-0 point."""
        return (
            (l0_x - self.l0_origin_x) * self.view_px_per_l0,
            (l0_y - self.l0_origin_y) * self.view_px_per_l0,
        )

    def l0_from_view(self, view_x: float, view_y: float) -> tuple[float, float]:
        """Return the level-0 point under a view pixel position."""
        return (
            self.l0_origin_x + view_x / self.view_px_per_l0,
            self.l0_origin_y + view_y / self.view_px_per_l0,
        )

    def l0_rect_from_view_size(
        self, view_w: float, view_h: float
    ) -> tuple[float, float, float, float]:
        """Return ``(l0_x, l0_y, l0_w, l0_h)`` seen by a view of ``view_w x view_h`` pixels."""
        return (
            self.l0_origin_x,
            self.l0_origin_y,
            view_w / self.view_px_per_l0,
            view_h / self.view_px_per_l0,
        )

    def zoomed_about_view_point(self, factor: float, view_x: float, view_y: float) -> ViewTransform:
        """Multiply the zoom by ``factor`` keeping the level-0 point under (view_x, view_y).

        The new zoom is clamped to [:data:`MIN_VIEW_PX_PER_L0`, :data:`MAX_VIEW_PX_PER_L0`].
        """
        l0_x, l0_y = self.l0_from_view(view_x, view_y)
        zoom = clamp_zoom(self.view_px_per_l0 * factor)
        return ViewTransform(l0_x - view_x / zoom, l0_y - view_y / zoom, zoom)

    def panned_by_view_px(self, view_dx: float, view_dy: float) -> ViewTransform:
        """Move the content by (view_dx, view_dy) view pixels (a drag to the right is +dx)."""
        return replace(
            self,
            l0_origin_x=self.l0_origin_x - view_dx / self.view_px_per_l0,
            l0_origin_y=self.l0_origin_y - view_dy / self.view_px_per_l0,
        )

    def centered_on_l0(
        self, l0_x: float, l0_y: float, view_w: float, view_h: float
    ) -> ViewTransform:
        """Keep the zoom, put level-0 point (l0_x, l0_y) at the centre of the view."""
        return replace(
            self,
            l0_origin_x=l0_x - view_w / 2.0 / self.view_px_per_l0,
            l0_origin_y=l0_y - view_h / 2.0 / self.view_px_per_l0,
        )


def clamp_zoom(view_px_per_l0: float) -> float:
    """Clamp a zoom to the supported range."""
    return min(MAX_VIEW_PX_PER_L0, max(MIN_VIEW_PX_PER_L0, view_px_per_l0))


def transform_showing_l0_rect(
    l0_x: float, l0_y: float, l0_w: float, l0_h: float, view_w: float, view_h: float
) -> ViewTransform:
    """Return the transform that shows the whole level-0 rectangle, centred, aspect kept."""
    l0_w = max(l0_w, 1e-9)
    l0_h = max(l0_h, 1e-9)
    zoom = clamp_zoom(min(max(view_w, 1.0) / l0_w, max(view_h, 1.0) / l0_h))
    return ViewTransform(view_px_per_l0=zoom).centered_on_l0(
        l0_x + l0_w / 2.0, l0_y + l0_h / 2.0, view_w, view_h
    )


def choose_level(level_downsamples: Sequence[float], view_px_per_l0: float) -> int:
    """Pick the pyramid level to draw at a zoom.

    The coarsest level whose pixels are still at least as fine as the screen's: its
    downsample must not exceed ``1 / view_px_per_l0`` (with 1 % slack for rounding in the
    stored downsamples). Zoomed in past 1:1 this is level 0.
    """
    l0_px_per_view_px = 1.0 / view_px_per_l0
    best = 0
    for level, downsample in enumerate(level_downsamples):
        if downsample <= l0_px_per_view_px * 1.01 and downsample >= level_downsamples[best]:
            best = level
    return best


def tiles_covering_l0_rect(
    l0_rect: tuple[float, float, float, float],
    lvl_downsample: float,
    lvl_size: tuple[int, int],
    lvl_tile_px: int,
) -> list[tuple[int, int]]:
    """Return the ``(col, row)`` tiles of one level that intersect a level-0 rectangle.

    Tiles are ``lvl_tile_px`` square in that level's pixels; the result is ordered from the
    rectangle's centre outwards (most useful first).
    """
    l0_x, l0_y, l0_w, l0_h = l0_rect
    lvl_w, lvl_h = lvl_size
    n_cols = math.ceil(lvl_w / lvl_tile_px)
    n_rows = math.ceil(lvl_h / lvl_tile_px)
    l0_per_tile = lvl_downsample * lvl_tile_px
    col0 = max(0, math.floor(l0_x / l0_per_tile))
    row0 = max(0, math.floor(l0_y / l0_per_tile))
    col1 = min(n_cols - 1, math.floor((l0_x + l0_w) / l0_per_tile))
    row1 = min(n_rows - 1, math.floor((l0_y + l0_h) / l0_per_tile))
    if col1 < col0 or row1 < row0:
        return []
    centre_col = (l0_x + l0_w / 2.0) / l0_per_tile - 0.5
    centre_row = (l0_y + l0_h / 2.0) / l0_per_tile - 0.5
    tiles = [(c, r) for r in range(row0, row1 + 1) for c in range(col0, col1 + 1)]
    tiles.sort(key=lambda t: (t[0] - centre_col) ** 2 + (t[1] - centre_row) ** 2)
    return tiles


def tile_lvl_rect(
    col: int, row: int, lvl_size: tuple[int, int], lvl_tile_px: int
) -> tuple[int, int, int, int]:
    """Return ``(lvl_x, lvl_y, lvl_w, lvl_h)`` of a tile, clipped at the level's edge."""
    lvl_x = col * lvl_tile_px
    lvl_y = row * lvl_tile_px
    return (
        lvl_x,
        lvl_y,
        max(0, min(lvl_tile_px, lvl_size[0] - lvl_x)),
        max(0, min(lvl_tile_px, lvl_size[1] - lvl_y)),
    )


def nice_length_um(max_um: float) -> float:
    """Return the largest 1-2-5 x 10^k length (µm) not longer than ``max_um``."""
    if max_um <= 0 or not math.isfinite(max_um):
        return 0.0
    exponent = math.floor(math.log10(max_um))
    for step in (5.0, 2.0, 1.0):
        length = step * 10.0**exponent
        if length <= max_um * (1 + 1e-9):
            return length
    return 10.0 ** (exponent - 1) * 5.0


def scale_bar_for(
    mpp: float | None, view_px_per_l0: float, max_view_px: float = 150.0
) -> tuple[float, str] | None:
    """Return ``(bar_view_px, label)`` for a scale bar at most ``max_view_px`` long.

    Returns None when the slide's µm per pixel is unknown (the caller shows "no scale").
    """
    if mpp is None or mpp <= 0:
        return None
    um_per_view_px = mpp / view_px_per_l0
    length_um = nice_length_um(max_view_px * um_per_view_px)
    if length_um <= 0:
        return None
    return length_um / um_per_view_px, format_length_um(length_um)
