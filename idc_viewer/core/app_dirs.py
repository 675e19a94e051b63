"""Where the application keeps its data on each platform (stored analyses go in ``results/``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["DATA_DIR_ENV", "default_results_dir"]

#: Environment variable that moves the application's data folder (results go in ``results/``).
DATA_DIR_ENV = "IDC_VIEWER_DATA_DIR"


def default_results_dir() -> Path:
    r"""Return the platform's folder for stored analyses.

    ``$IDC_VIEWER_DATA_DIR/results`` when that variable is set; otherwise
    ``%LOCALAPPDATA%\idc-viewer\results`` on Windows,
    ``~/Library/Application Support/idc-viewer/results`` on macOS and
    ``${XDG_DATA_HOME:-~/.local/share}/idc-viewer/results`` elsewhere.
    """
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser() / "results"
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "idc-viewer" / "results"
