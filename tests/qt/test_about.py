"""Help › About names the app, its version, the model in use and the bundled licences."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtWidgets import QDialogButtonBox

sys.path.insert(0, str(Path(__file__).parent))  # helpers, under --import-mode=importlib
from window_fixtures import new_window

from idc_viewer import __version__
from idc_viewer.core.bundled import models_dir
from idc_viewer.ml.loading import load_model
from idc_viewer.qt.about import AboutDialog
from idc_viewer.qt.main_window import MainWindow


def _open_about(qtbot, window: MainWindow) -> AboutDialog:  # type: ignore[no-untyped-def]
    menus = {a.text(): a.menu() for a in window.menuBar().actions()}
    (about,) = [a for a in menus["&Help"].actions() if a.text().startswith("&About")]
    about.trigger()
    qtbot.waitUntil(lambda: bool(window.findChildren(AboutDialog)))
    (dialog,) = window.findChildren(AboutDialog)
    return dialog


def test_about_shows_version_model_and_licences(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = new_window(qtbot, tmp_path)
    spec_path = models_dir() / "idc-native-50.spec.json"
    model = load_model(spec_path)
    window.state.set_model(model, str(spec_path))

    dialog = _open_about(qtbot, window)
    text = dialog.label.text()
    assert dialog.isVisible() and dialog.windowTitle() == "About IDC Viewer"
    assert f"IDC Viewer {__version__}" in text
    assert f"{model.spec.name} (hash {model.spec.model_hash})" in text
    for needed in (
        "OpenSlide",
        "LGPL-2.1",
        "github.com/openslide/openslide",
        "PySide6",
        "LGPL-3.0",
        "TensorFlow",
        "LiteRT",
        "Apache-2.0",
    ):
        assert needed in text, needed

    dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Close).click()
    qtbot.waitUntil(lambda: not window.findChildren(AboutDialog))


def test_about_says_when_no_model_is_loaded(qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    window = new_window(qtbot, tmp_path)
    assert "no model loaded" in _open_about(qtbot, window).label.text()
