"""What the window remembers between sessions: geometry, docks, the last folder.

Plain functions over QSettings so the tests drive them with a temporary ini file.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow

GEOMETRY_KEY = "window/geometry"
STATE_KEY = "window/state"
FOLDER_KEY = "last_folder"
#: Bumped when the docks change so that an older saved layout is not applied to new docks.
LAYOUT_VERSION = 1


def save_window(window: QMainWindow, settings: QSettings | None) -> None:
    """Store the window's geometry and its docks' layout."""
    if settings is None:
        return
    settings.setValue(GEOMETRY_KEY, window.saveGeometry())
    settings.setValue(STATE_KEY, window.saveState(LAYOUT_VERSION))
    settings.sync()


def restore_window(window: QMainWindow, settings: QSettings | None) -> bool:
    """Apply the stored geometry and dock layout; False when there is none (first start)."""
    if settings is None:
        return False
    geometry, state = settings.value(GEOMETRY_KEY), settings.value(STATE_KEY)
    restored = False
    if isinstance(geometry, QByteArray | bytes) and geometry:
        restored = bool(window.restoreGeometry(QByteArray(geometry)))
    if isinstance(state, QByteArray | bytes) and state:
        restored = bool(window.restoreState(QByteArray(state), LAYOUT_VERSION)) or restored
    return restored


def last_folder(settings: QSettings | None) -> str:
    """The folder of the last file opened or saved through a dialog ("" for none)."""
    if settings is None:
        return ""
    value = settings.value(FOLDER_KEY, "")
    folder = str(value) if value else ""
    return folder if folder and Path(folder).is_dir() else ""


def remember_folder(settings: QSettings | None, path: str | Path) -> None:
    """Remember ``path``'s folder (``path`` itself when it is a folder)."""
    if settings is None or not str(path):
        return
    p = Path(path)
    settings.setValue(FOLDER_KEY, str(p if p.is_dir() else p.parent))
    settings.sync()
