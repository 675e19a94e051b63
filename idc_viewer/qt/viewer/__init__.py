"""Slide viewing widgets: the tiled slide view, its overlays, minimap and colour legend.

A main window composes them and wires their signals, e.g.::

    view = SlideView(slide)
    minimap = Minimap(slide.thumbnail(256), (slide.info.l0_width, slide.info.l0_height))
    view.viewport_changed.connect(minimap.set_viewport_l0)
    minimap.jump_requested.connect(view.center_on_l0)
"""

from idc_viewer.qt.viewer.color_legend import ColorLegend
from idc_viewer.qt.viewer.minimap import Minimap
from idc_viewer.qt.viewer.scale_bar import ScaleBar
from idc_viewer.qt.viewer.slide_view import SlideView
from idc_viewer.qt.viewer.tile_loader import TileLoader, TileRequest

__all__ = [
    "ColorLegend",
    "Minimap",
    "ScaleBar",
    "SlideView",
    "TileLoader",
    "TileRequest",
]
