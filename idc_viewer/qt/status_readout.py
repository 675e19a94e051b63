"""The status bar's permanent readouts: the position under the mouse and the zoom.

Both are in µm when the open slide's scale is known, else in pixels; a scale set later by the
user shows at once.
"""

from __future__ import annotations

from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QLabel, QStatusBar

from idc_viewer.core.formatting import format_length_um
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer import SlideView


class StatusReadout:
    """Cursor and zoom labels of one window's status bar.

    Parameters
    ----------
    state : AppState
        The open slide (its µm/px).
    view : SlideView
        Whose cursor and zoom are shown.
    status_bar : QStatusBar
        Receives the two labels.
    """

    def __init__(self, state: AppState, view: SlideView, status_bar: QStatusBar) -> None:
        self.state, self.view = state, view
        self.cursor_label = QLabel("")
        self.zoom_label = QLabel("")
        status_bar.addPermanentWidget(self.cursor_label)
        status_bar.addPermanentWidget(self.zoom_label)
        view.cursor_moved_l0.connect(self._on_cursor_moved)
        view.viewport_changed.connect(self._on_viewport_changed)
        state.slide_info_changed.connect(self.refresh_zoom)

    def _mpp(self) -> float | None:
        slide = self.state.slide
        return slide.info.mpp if slide is not None else None

    def _on_cursor_moved(self, l0_x: float, l0_y: float) -> None:
        mpp = self._mpp()
        if mpp:
            self.cursor_label.setText(
                f"x {format_length_um(l0_x * mpp, fixed_decimals=True)}, "
                f"y {format_length_um(l0_y * mpp, fixed_decimals=True)}"
            )
        else:
            self.cursor_label.setText(f"x {l0_x:.0f}, y {l0_y:.0f} px")

    def _on_viewport_changed(self, _rect: QRectF) -> None:
        self.refresh_zoom()

    def refresh_zoom(self) -> None:
        """Write the view's zoom (and, with a scale, µm per screen pixel and objective)."""
        zoom = self.view.view_px_per_l0()
        mpp = self._mpp()
        text = f"zoom {zoom:.3g}×"
        if mpp:
            text += f" ({mpp / zoom:.3g} µm/screen px, ≈{10.0 * zoom / mpp:.3g}× objective)"
        self.zoom_label.setText(text)
