"""Main-window fixtures shared by the application tests (imported by name into test modules)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from app_fakes import FakeModel, fake_explain, fake_explainer, two_region_image
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from idc_viewer.core.store import ResultStore
from idc_viewer.qt.main_window import MainWindow
from idc_viewer.qt.state import AppState

SHARED_WSI = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "wsi"


def shared_wsi(name: str) -> Path:
    """A file of ../shared/data/wsi, or a skip saying it is absent."""
    path = (SHARED_WSI / name).resolve()
    if not path.is_file():
        pytest.skip(f"{path} is absent (real slides of ../shared/data)")
    return path


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every QMessageBox.warning/critical/information shown, as (title, text)."""
    shown: list[tuple[str, str]] = []

    def fake(_parent: Any, title: str, text: str, *args: Any, **kwargs: Any) -> Any:
        shown.append((title, text))
        return QMessageBox.StandardButton.Ok

    for name in ("warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, name, fake)
    return shown


class Questions(list[str]):
    """The texts asked; ``answer`` is what the next question gets (No by default)."""

    answer = QMessageBox.StandardButton.No


@pytest.fixture
def questions(monkeypatch: pytest.MonkeyPatch) -> Questions:
    """QMessageBox.question recorded and answered with ``questions.answer``."""
    asked = Questions()

    def fake(_parent: Any, title: str, text: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(text)
        return asked.answer

    monkeypatch.setattr(QMessageBox, "question", fake)
    return asked


def new_window(  # type: ignore[no-untyped-def]
    qtbot,
    tmp_path: Path,
    store_dir: Path | None = None,
    size: tuple[int, int] | None = None,
    **kwargs: Any,
) -> MainWindow:
    """A main window shown on screen, its settings, results and runs under ``tmp_path``."""
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        AppState(),
        store=ResultStore(store_dir or tmp_path / "results"),
        settings=settings,
        runs_root=tmp_path / "runs",
        **kwargs,
    )
    qtbot.addWidget(window)
    if size is not None:
        window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    return window


@pytest.fixture
def make_window(qtbot, tmp_path: Path, dialogs):  # type: ignore[no-untyped-def]
    windows: list[MainWindow] = []

    def factory(model: Any = "fake", store_dir: Path | None = None, **kwargs: Any) -> MainWindow:
        kwargs.setdefault("explain_fn", fake_explain)
        kwargs.setdefault("explainer_factory", fake_explainer)
        kwargs.setdefault("batch_size", 8)
        window = new_window(qtbot, tmp_path, store_dir, size=(1000, 700), **kwargs)
        if model == "fake":
            model = FakeModel()
        if model is not None:
            window.state.set_model(model, "fake.keras")
        windows.append(window)
        return window

    yield factory
    for window in windows:
        window.close()


@pytest.fixture
def slide_file(synthetic_tiff) -> Path:  # type: ignore[no-untyped-def]
    return synthetic_tiff(image=two_region_image(), name="two-regions.tiff", mpp=4.0, levels=2)


def run_analysis(qtbot, window: MainWindow, timeout: int = 30_000) -> str:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(window.analysis.stopped, timeout=timeout) as blocker:
        assert window.analysis.start() is not None
    return str(blocker.args[0])
