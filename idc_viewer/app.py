"""Composition root of the desktop application: arguments, QApplication, settings, window.

``idc-viewer`` (no subcommand) calls :func:`main`; :func:`run_app` is the same with
already-parsed options. Logging goes to ``<data dir>/idc-viewer.log``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from idc_viewer.core.app_dirs import default_results_dir
from idc_viewer.core.bundled import demo_dir, icon_path
from idc_viewer.core.errors import IdcViewerError, one_line
from idc_viewer.core.store import ResultStore
from idc_viewer.qt import smoke
from idc_viewer.qt.main_window import MainWindow
from idc_viewer.qt.state import AppState

log = logging.getLogger("idc_viewer")
DEMO_DIR = demo_dir()
ORGANIZATION, APPLICATION = "idc-viewer", "IDC Viewer"


class DemoMissingError(IdcViewerError, FileNotFoundError):
    """The bundled demo slide is not there; the message says how to make it."""


def demo_slide_path(demo_dir: Path = DEMO_DIR) -> Path:
    """The demo slide: the first ``*.tiff`` (or ``*.tif``) in ``idc_viewer/resources/demo``."""
    candidates = sorted(demo_dir.glob("*.tiff")) + sorted(demo_dir.glob("*.tif"))
    if not candidates:
        raise DemoMissingError(
            f"No demo slide in {demo_dir}: build it with "
            f"`idc-train assemble-slide <patient folder> {demo_dir}/<name>.tiff` "
            "or open a slide of your own."
        )
    return candidates[0]


def data_dir() -> Path:
    """The application's data folder (holds ``results/`` and the log)."""
    return default_results_dir().parent


def setup_logging(folder: Path) -> Path | None:
    """Log to ``folder/idc-viewer.log`` (and warnings to stderr); returns the log path."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    path: Path | None = folder / "idc-viewer.log"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(folder / "idc-viewer.log", encoding="utf-8")
    except OSError:
        handler, path = logging.StreamHandler(), None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    return path


def _excepthook(window: MainWindow | None) -> Any:
    def hook(exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        log.error("unhandled exception", exc_info=(exc_type, exc, tb))
        if window is not None:
            QMessageBox.warning(window, "Unexpected error", one_line(exc))

    return hook


#: Set to quit as soon as the first slide is shown, printing the window's title (smoke test).
SMOKE_TEST_ENV = smoke.SMOKE_TEST_ENV


def create_window(
    store: ResultStore | None = None, settings: QSettings | None = None, **kwargs: Any
) -> MainWindow:
    """A main window with a fresh state (tests use this with temporary folders)."""
    return MainWindow(AppState(), store=store, settings=settings, **kwargs)


def run_app(
    argv: Sequence[str],
    slide_path: str | None = None,
    demo: bool = False,
    model_path: str | None = None,
) -> int:
    """Create the QApplication and main window, open what was asked, run the event loop."""
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    assert isinstance(app, QApplication)
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setWindowIcon(QIcon(str(icon_path())))
    log_path = setup_logging(data_dir())
    log.info("starting, log at %s", log_path)
    window = create_window(
        store=ResultStore(default_results_dir()),
        settings=QSettings(ORGANIZATION, APPLICATION),
        runs_root=data_dir() / "runs",
    )
    sys.excepthook = _excepthook(window)
    window.show()

    def start() -> None:
        model = model_path or _default_model()
        if model:
            window.models.load_model(model)
        path = slide_path
        if demo:
            try:
                path = str(demo_slide_path())
            except DemoMissingError as exc:
                window.messages.show_error("Demo slide missing", str(exc))
        if path:
            window.slides.open_path(path)

    smoke.install(app, window)  # only when IDC_VIEWER_SMOKE_TEST is set
    QTimer.singleShot(0, start)  # the window appears first, then the slide opens
    return int(app.exec())


def _default_model() -> str | None:
    try:
        from idc_viewer.ml.loading import default_model_path

        return str(default_model_path())
    except Exception as exc:  # no bundled model: the user loads one
        log.warning("no default model: %s", exc)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """``idc-viewer [--demo] [--model PATH] [SLIDE]``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="idc-viewer")
    parser.add_argument("--demo", action="store_true", help="open the bundled demo slide")
    parser.add_argument("--model", metavar="PATH", help="model file (default: the bundled one)")
    parser.add_argument("slide", nargs="?", metavar="SLIDE")
    args, qt_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    return run_app(qt_args, slide_path=args.slide, demo=args.demo, model_path=args.model)


if __name__ == "__main__":
    raise SystemExit(main())
