"""The slide's scale (µm per pixel) when its file has none: asked when needed, remembered.

Viewing needs no scale, so a slide without one opens at once; the analysis asks for it (or
Slide › Set scale…), and what the user typed is kept per file in QSettings and used the next
time that file is opened.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QInputDialog, QWidget

SCALE_GROUP = "slide_scale_um_per_px"
DEFAULT_MPP = 0.5


def _key(path: str) -> str:
    # QSettings keys must not hold slashes; the resolved path's hash is stable and short
    resolved = str(Path(path).resolve()) if path else ""
    return f"{SCALE_GROUP}/{hashlib.sha1(resolved.encode()).hexdigest()[:16]}"


def remembered_mpp(settings: QSettings | None, path: str) -> float | None:
    """The µm/px the user gave for this file before, or None."""
    if settings is None or not path:
        return None
    value = settings.value(_key(path))
    try:
        mpp = float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
    return mpp if mpp is not None and mpp > 0 else None


def remember_mpp(settings: QSettings | None, path: str, mpp: float) -> None:
    """Keep the µm/px the user gave for this file."""
    if settings is not None and path:
        settings.setValue(_key(path), float(mpp))
        settings.sync()


def ask_mpp(parent: QWidget, name: str, current: float | None) -> float | None:
    """Ask for µm per pixel; None when the user cancels."""
    value, ok = QInputDialog.getDouble(
        parent,
        "Slide scale",
        f"How many µm is one pixel of {name}?\n"
        "0.25 for a 40× scan, 0.5 for 20×, 4.0 for the IDC patches. Remembered for this file.",
        current or DEFAULT_MPP,
        0.01,
        100.0,
        4,
    )
    return float(value) if ok else None
