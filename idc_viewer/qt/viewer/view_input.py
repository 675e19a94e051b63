"""Mouse and keyboard of the slide view: drag to pan, click a patch, measure, keys to move.

:class:`ViewInput` turns the view's events into navigation calls and into level-0 positions
(cursor, click, ruler); the view forwards its event handlers to it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, Qt
from PySide6.QtWidgets import QApplication

from idc_viewer.qt.viewer.ruler import Ruler

if TYPE_CHECKING:
    from idc_viewer.qt.viewer.slide_view import SlideView

WHEEL_ZOOM_PER_NOTCH = 1.25
KEY_ZOOM_FACTOR = 1.5
KEY_PAN_FRACTION = 0.15


class ViewInput:
    """Pointer and key handling of one view.

    Parameters
    ----------
    view : SlideView
        The view navigated.
    ruler : Ruler
        Measures instead of panning while enabled.
    on_ruler : callable
        Called after the ruler changed (the view emits its text).
    on_click : callable
        ``on_click(l0_x, l0_y)`` for a left click that was not a drag.
    """

    def __init__(
        self,
        view: SlideView,
        ruler: Ruler,
        on_ruler: Callable[[], None],
        on_click: Callable[[float, float], None],
    ) -> None:
        self._view, self._ruler = view, ruler
        self._on_ruler, self._on_click = on_ruler, on_click
        self._press_view_pos: QPointF | None = None
        self._last_view_pos = QPointF()
        self._dragging = False

    def _l0(self, pos: QPointF) -> tuple[float, float]:
        return self._view.view_transform().l0_from_view(pos.x(), pos.y())

    def set_ruler_enabled(self, enabled: bool) -> None:
        """Measure with the left button (cross cursor) or pan again (the segment goes)."""
        self._ruler.enabled = bool(enabled)
        if enabled:
            self._view.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self._ruler.clear()
            self._view.unsetCursor()

    def wheel(self, notches: float, pos: QPointF) -> bool:
        """Zoom about ``pos``; False for a wheel event without vertical turn."""
        if notches == 0:
            return False
        self._view.zoom_by(WHEEL_ZOOM_PER_NOTCH**notches, pos)
        return True

    def press(self, pos: QPointF, has_slide: bool) -> None:
        """Left button down: start measuring (ruler on) or a drag/click."""
        if self._ruler.enabled and has_slide:
            self._ruler.begin(*self._l0(pos))
            self._on_ruler()
            self._view.update()
            return
        self._press_view_pos = pos
        self._last_view_pos = pos
        self._dragging = False

    def move(self, pos: QPointF) -> None:
        """Mouse moved: extend the ruler, or pan once the press became a drag."""
        if self._ruler.dragging:
            self._ruler.drag_to(*self._l0(pos))
            self._on_ruler()
            self._view.update()
        elif self._press_view_pos is not None:
            if not self._dragging:
                moved = (pos - self._press_view_pos).manhattanLength()
                if moved >= QApplication.startDragDistance():
                    self._dragging = True
                    self._view.setCursor(Qt.CursorShape.ClosedHandCursor)
            if self._dragging:
                delta = pos - self._last_view_pos
                self._last_view_pos = pos
                self._view.pan_by_view_px(delta.x(), delta.y())

    def release(self, pos: QPointF, has_slide: bool) -> bool:
        """Left button up: end the ruler or the drag; a click reports its position.

        False when no press of ours was going on (the view passes the event on).
        """
        if self._ruler.dragging:
            self._ruler.finish()
            self._on_ruler()
            return True
        if self._press_view_pos is None:
            return False
        was_click = not self._dragging
        self._press_view_pos = None
        self._dragging = False
        self._view.unsetCursor()
        if was_click and has_slide:
            self._on_click(*self._l0(pos))
        return True

    def key(self, key: Qt.Key) -> bool:
        """Zoom, pan, fit or 1:1 for ``key``; False for other keys."""
        view = self._view
        pan_x = view.width() * KEY_PAN_FRACTION
        pan_y = view.height() * KEY_PAN_FRACTION
        actions: dict[Qt.Key, Callable[[], None]] = {
            Qt.Key.Key_Plus: lambda: view.zoom_by(KEY_ZOOM_FACTOR),
            Qt.Key.Key_Equal: lambda: view.zoom_by(KEY_ZOOM_FACTOR),
            Qt.Key.Key_Minus: lambda: view.zoom_by(1 / KEY_ZOOM_FACTOR),
            Qt.Key.Key_Left: lambda: view.pan_by_view_px(pan_x, 0),
            Qt.Key.Key_Right: lambda: view.pan_by_view_px(-pan_x, 0),
            Qt.Key.Key_Up: lambda: view.pan_by_view_px(0, pan_y),
            Qt.Key.Key_Down: lambda: view.pan_by_view_px(0, -pan_y),
            Qt.Key.Key_F: view.fit,
            Qt.Key.Key_1: view.zoom_to_one_to_one,
        }
        action = actions.get(key)
        if action is None:
            return False
        action()
        return True
