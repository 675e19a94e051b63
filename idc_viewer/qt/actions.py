"""The window's user commands as QActions (menus, shortcuts) and the recent-files list.

Each action is thin: it calls one method of the main window, whose logic the tests drive
directly. :func:`push_recent` is plain Python.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu

RECENT_KEY = "recent_files"
RECENT_LIMIT = 10


def push_recent(paths: list[str], path: str, limit: int = RECENT_LIMIT) -> list[str]:
    """``path`` first, without duplicates, at most ``limit`` entries."""
    return [path, *[p for p in paths if p != path]][:limit]


def read_recent(settings: QSettings) -> list[str]:
    """The recent slide paths, most recent first."""
    value: object = settings.value(RECENT_KEY, [])
    if isinstance(value, str):  # QSettings returns a lone string for one-element lists
        return [value] if value else []
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


def write_recent(settings: QSettings, paths: list[str]) -> None:
    """Store the recent slide paths."""
    settings.setValue(RECENT_KEY, list(paths))
    settings.sync()


@dataclass
class Actions:
    """Every command of the main window."""

    open: QAction
    export: QAction
    export_png: QAction
    quit: QAction
    analyse: QAction
    cancel: QAction
    load_model: QAction
    retrain: QAction
    fit: QAction
    one_to_one: QAction
    toggle_overlay: QAction
    next_flagged: QAction
    prev_flagged: QAction
    set_scale: QAction
    ruler: QAction
    shortcuts: QAction
    recent_menu: QMenu
    #: The View menu; the window adds its panel toggles (dock toggle actions) to it.
    view_menu: QMenu
    help_menu: QMenu


def _action(
    window: QMainWindow,
    text: str,
    slot: Callable[[], object],
    shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
    extra: list[str] | None = None,
) -> QAction:
    action = QAction(text, window)
    keys: list[QKeySequence] = []
    if isinstance(shortcut, QKeySequence.StandardKey):
        keys.extend(QKeySequence.keyBindings(shortcut))
    elif shortcut is not None:
        keys.append(QKeySequence(shortcut))
    keys.extend(QKeySequence(k) for k in extra or [])
    if keys:
        action.setShortcuts(keys)
    action.triggered.connect(lambda _checked=False: slot())
    window.addAction(action)  # shortcuts work wherever the focus is in the window
    return action


def build_actions(window: QMainWindow, handlers: dict[str, Callable[[], object]]) -> Actions:
    """Create the actions and the menu bar; ``handlers`` maps action names to window methods."""
    std = QKeySequence.StandardKey
    acts = Actions(
        open=_action(window, "&Open slide…", handlers["open"], std.Open),
        export=_action(window, "&Export results…", handlers["export"], "Ctrl+E"),
        export_png=_action(window, "Export view as &PNG…", handlers["export_png"], "Ctrl+Shift+E"),
        quit=_action(window, "&Quit", handlers["quit"], std.Quit),
        analyse=_action(window, "&Analyse slide", handlers["analyse"], "F5"),
        cancel=_action(window, "&Cancel analysis", handlers["cancel"], "Esc"),
        load_model=_action(window, "&Load model…", handlers["load_model"], "Ctrl+M"),
        retrain=_action(window, "&Retrain…", handlers["retrain"]),
        fit=_action(window, "&Fit slide", handlers["fit"], "F"),
        one_to_one=_action(window, "&1:1", handlers["one_to_one"], "1"),
        toggle_overlay=_action(window, "Show &heatmap", handlers["toggle_overlay"], "H"),
        next_flagged=_action(window, "&Next flagged patch", handlers["next_flagged"], "N"),
        prev_flagged=_action(
            window, "&Previous flagged patch", handlers["prev_flagged"], "P", extra=["Shift+Tab"]
        ),
        set_scale=_action(window, "Set &scale (µm/px)…", handlers["set_scale"]),
        ruler=_action(window, "&Measure (ruler)", handlers["ruler"], "M"),
        shortcuts=_action(window, "&Keyboard shortcuts", handlers["shortcuts"], "F1"),
        recent_menu=QMenu("Open &recent", window),
        view_menu=QMenu("&View", window),
        help_menu=QMenu("&Help", window),
    )
    acts.ruler.setCheckable(True)
    acts.ruler.setToolTip("Drag on the slide to measure a distance (M toggles)")
    menu = window.menuBar()
    file_menu = menu.addMenu("&File")
    file_menu.addAction(acts.open)
    file_menu.addMenu(acts.recent_menu)
    file_menu.addSeparator()
    file_menu.addAction(acts.export)
    file_menu.addAction(acts.export_png)
    file_menu.addSeparator()
    file_menu.addAction(acts.quit)
    slide_menu = menu.addMenu("&Slide")
    slide_menu.addAction(acts.set_scale)
    slide_menu.addAction(acts.ruler)
    analysis_menu = menu.addMenu("&Analysis")
    for action in (acts.analyse, acts.cancel, acts.next_flagged, acts.prev_flagged):
        analysis_menu.addAction(action)
    menu.addMenu(acts.view_menu)
    for action in (acts.fit, acts.one_to_one, acts.toggle_overlay):
        acts.view_menu.addAction(action)
    acts.view_menu.addSeparator()
    model_menu = menu.addMenu("&Model")
    model_menu.addAction(acts.load_model)
    model_menu.addAction(acts.retrain)
    menu.addMenu(acts.help_menu)
    acts.help_menu.addAction(acts.shortcuts)
    return acts


def shortcut_rows(actions: Actions) -> list[tuple[str, str]]:
    """``(keys, command)`` of every action with a shortcut, for Help › Keyboard shortcuts."""
    rows = []
    for action in vars(actions).values():
        if isinstance(action, QAction) and action.shortcuts():
            keys = ", ".join(
                k.toString(QKeySequence.SequenceFormat.NativeText) for k in action.shortcuts()
            )
            rows.append((keys, action.text().replace("&", "").rstrip("…")))
    return rows
