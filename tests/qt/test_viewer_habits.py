"""Issue 12, points 8-14: the habits of a slide viewer (scale, layout memory, exports, zoom,
ruler, display adjustments, shortcuts, threshold entry, Model tab, Retrain progress)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QSettings, Qt, QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QMessageBox

sys.path.insert(0, str(Path(__file__).parent))  # helpers, under --import-mode=importlib
from app_fakes import FakeModel
from window_fixtures import run_analysis

from idc_viewer.qt.main_window import MainWindow
from idc_viewer.qt.panels.retrain_dialog import RetrainDialog
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer.display_adjust import DisplayAdjustments
from idc_viewer.qt.viewer.ruler import ruler_text

REPO = Path(__file__).resolve().parents[2]


# -- 9. layout and memory -------------------------------------------------------------------


def test_docks_are_restored_and_toggled_from_the_view_menu(qtbot, tmp_path) -> None:
    settings_path = str(tmp_path / "layout.ini")

    def window() -> MainWindow:
        w = MainWindow(
            AppState(), store=None, settings=QSettings(settings_path, QSettings.Format.IniFormat)
        )
        qtbot.addWidget(w)
        w.show()
        qtbot.waitExposed(w)
        return w

    first = window()
    toggles = {a.text(): a for a in first.actions_.view_menu.actions() if a.isCheckable()}
    assert {"Slide", "Analysis", "Grad-CAM", "Display"} <= set(toggles)
    assert not first.display_dock.isVisible()
    toggles["Display"].trigger()
    assert first.display_dock.isVisible()
    toggles["Slide"].trigger()
    assert not first.findChild(type(first.display_dock), "dock_Slide").isVisible()
    first.resize(701, 503)
    size = (first.width(), first.height())  # (the docks may need more height)
    assert size != (1400, 900)
    first.close()
    second = window()
    assert second.display_dock.isVisible()  # restored at start
    assert not second.findChild(type(second.display_dock), "dock_Slide").isVisible()
    assert (second.width(), second.height()) == size
    second.close()


def test_file_dialogs_start_in_the_last_folder(make_window, slide_file, monkeypatch) -> None:
    starts: list[str] = []

    def get_open(_parent: Any, _title: str, folder: str, _filter: str) -> tuple[str, str]:
        starts.append(folder)
        return str(slide_file), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", get_open)
    window = make_window()
    window.slides.choose_and_open()
    window.slides.choose_and_open()
    assert starts[0] == "" and Path(starts[1]) == slide_file.parent


def test_png_export_is_named_after_the_slide_and_gets_png_added(
    make_window, slide_file, monkeypatch, tmp_path
) -> None:
    offered: list[str] = []

    def get_save(_parent: Any, _title: str, start: str, _filter: str) -> tuple[str, str]:
        offered.append(start)
        return str(tmp_path / "for-report"), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", get_save)
    window = make_window()
    assert not window.actions_.export_png.isEnabled()  # nothing to export without a slide
    window.slides.open_path(str(slide_file))
    assert window.actions_.export_png.isEnabled()
    window.exports.choose_and_export_png()
    assert Path(offered[0]).name == "two-regions.png"
    assert (tmp_path / "for-report.png").read_bytes()[:4] == b"\x89PNG"


def test_results_export_asks_before_replacing_and_offers_the_folder(
    qtbot, make_window, slide_file, questions, monkeypatch, tmp_path
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", lambda url: opened.append(QUrl(url).toLocalFile()) or True
    )
    window = make_window()
    assert not window.actions_.export.isEnabled()
    window.slides.open_path(str(slide_file))
    assert not window.actions_.export.isEnabled()  # a slide, but no heatmap yet
    run_analysis(qtbot, window)
    assert window.actions_.export.isEnabled()
    out = tmp_path / "out"
    assert len(window.exports.export_results(out)) == 4 and questions == []
    box = window.exports.export_box
    assert box is not None and str(out) in box.text()
    button = next(b for b in box.buttons() if b.text() == "Open folder")
    button.click()
    assert opened == [str(out)]
    csv = out / "two-regions.patches.csv"
    csv.write_text("kept")
    questions.answer = QMessageBox.StandardButton.No
    assert window.exports.export_results(out) == []
    assert "two-regions.patches.csv" in questions[-1] and csv.read_text() == "kept"
    questions.answer = QMessageBox.StandardButton.Yes
    assert len(window.exports.export_results(out)) == 4 and csv.read_text() != "kept"


# -- 10. zoom limits and crisp pixels -------------------------------------------------------


def test_zoom_between_half_fit_and_eight_times_native(make_view, quadrant_slide) -> None:
    view = make_view(quadrant_slide)
    view.fit()
    fit = view.view_px_per_l0()
    view.zoom_by(1e-6)
    assert view.view_px_per_l0() == pytest.approx(fit / 2)
    view.zoom_by(1e9)
    assert view.view_px_per_l0() == pytest.approx(8.0 / view.devicePixelRatioF())
    view.zoom_to_l0_rect(100, 100, 2, 2)  # a tiny region: still at most 8x
    assert view.view_px_per_l0() == pytest.approx(8.0 / view.devicePixelRatioF())


def test_pixels_stay_crisp_beyond_one_to_one(
    qtbot, make_view, quadrant_slide, grab, quadrants
) -> None:
    from idc_viewer.core.view_geometry import ViewTransform

    view = make_view(quadrant_slide)
    x0, y0, _side = quadrants.checker_l0
    view.set_view_transform(ViewTransform(x0 + 10.25, y0 + 10.25, 4.0))
    qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=5000)
    pixels = grab(view)[:200, :200].astype(int)
    values = np.unique(pixels)
    assert set(values.tolist()) <= {0, 255}  # nearest neighbour: no blended greys


# -- 11. ruler and display adjustments ------------------------------------------------------


def test_ruler_measures_a_drag_in_micrometres_without_panning(
    qtbot, make_view, quadrant_slide
) -> None:
    view = make_view(quadrant_slide)
    view.fit()
    before = view.view_transform()
    texts: list[str] = []
    view.ruler_changed.connect(texts.append)
    view.set_ruler_enabled(True)
    QTest.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(50, 50))
    QTest.mouseMove(view, QPoint(150, 50))
    QTest.mouseMove(view, QPoint(250, 50))
    QTest.mouseRelease(view, Qt.MouseButton.LeftButton, pos=QPoint(250, 50))
    assert view.view_transform() == before  # measured, not panned
    l0_length = 200 / before.view_px_per_l0
    assert view.ruler_text() == ruler_text(l0_length, 0.25)
    assert texts[-1] == view.ruler_text() and "µm" in texts[-1]
    assert ruler_text(5000, 0.25) == "1.25 mm" and ruler_text(100, None) == "100 px (no scale)"
    view.set_ruler_enabled(False)
    assert view.ruler_text() == ""


def test_brightness_contrast_gamma_change_the_display_only(
    qtbot, make_window, slide_file, grab
) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    qtbot.waitUntil(lambda: window.view.pending_tiles() == 0, timeout=5000)
    plain = grab(window.view).astype(int)
    window.display_panel.sliders["Brightness"].setValue(-30)
    assert window.view.display_adjustments() == DisplayAdjustments(brightness=-0.3)
    darker = grab(window.view).astype(int)
    assert darker.mean() < plain.mean() - 20
    assert run_analysis(qtbot, window) == "done"  # the model sees the slide's own pixels
    adjusted_probs = window.state.heatmap.probabilities.copy()
    other = make_window(store_dir=window.store.root.parent / "other")  # type: ignore[union-attr]
    other.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, other) == "done"
    np.testing.assert_array_equal(adjusted_probs, other.state.heatmap.probabilities)
    window.display_panel.reset()
    assert window.view.display_adjustments().is_identity
    assert DisplayAdjustments(gamma=2.0).lut()[64] > 64 > DisplayAdjustments(contrast=2).lut()[64]


# -- 12. shortcuts and threshold entry ------------------------------------------------------


def test_help_lists_the_keyboard_shortcuts(make_window) -> None:
    window = make_window()
    help_texts = [a.text() for a in window.actions_.help_menu.actions()]
    assert "&Keyboard shortcuts" in help_texts
    commands = window.show_shortcuts().commands()
    assert commands["Analyse slide"] == "F5"
    assert commands["Measure (ruler)"] == "M"
    assert commands["Cancel analysis"] == "Esc"
    assert "Wheel" in commands.values() or "Zoom at the cursor" in commands


def test_threshold_typed_in_and_reset_to_the_models(make_window) -> None:
    window = make_window()
    box = window.overlay_panel.threshold_box
    box.spin.setValue(0.42)
    assert window.state.threshold == pytest.approx(0.42)
    assert window.overlay_panel.threshold_slider.value() == 42
    window.overlay_panel.threshold_slider.setValue(70)
    assert box.spin.value() == pytest.approx(0.70)
    box.reset_button.click()
    assert window.state.threshold == pytest.approx(0.5)  # the fake model's own
    assert box.spin.value() == pytest.approx(0.5)


# -- 13. the Model tab ----------------------------------------------------------------------


def test_model_tab_speaks_to_a_pathologist_and_opens_the_card(make_window, monkeypatch) -> None:
    from idc_viewer.core.bundled import models_dir
    from idc_viewer.ml.spec import read_spec

    spec_path = models_dir() / "idc-native-50.spec.json"
    if not spec_path.is_file():
        pytest.skip(f"{spec_path} is absent")
    opened: list[str] = []
    monkeypatch.setattr(
        QDesktopServices, "openUrl", lambda url: opened.append(QUrl(url).toLocalFile()) or True
    )
    window = make_window(model=None)
    window.state.set_model(FakeModel(spec=read_spec(spec_path)), str(spec_path))
    panel = window.model_panel
    texts = " ".join(
        label.text()
        for label in (
            panel.name_label,
            panel.scale_label,
            panel.use_label,
            panel.threshold_label,
            panel.metrics_label,
        )
    )
    assert "idc-native-50" in texts and "4 µm/px" in texts and "2.5×" in texts
    spec = read_spec(spec_path)
    assert spec.context is not None  # the bundled model decides on its context map
    assert "Not a diagnostic device" in texts
    assert f"context P(IDC) ≥ {spec.context.threshold:.2f}" in texts
    assert f"own P ≥ {spec.threshold:.2f}" in texts
    recall = spec.metrics["test_patients"]["per_class"]["1"]["recall"]
    assert "42 patients it never saw" in texts
    assert f"{recall * 100:.0f} % of the IDC patches" in texts
    assert "_" not in texts.replace("idc-native-50", "")  # no raw keys
    assert panel.card_button.isEnabled()
    panel.card_button.click()
    assert opened == [str(spec_path.parent / "idc-native-50.model_card.md")]


# -- 14. the Retrain dialog -----------------------------------------------------------------


def _fake_training(script: str):  # type: ignore[no-untyped-def]
    def command(data: str, run_dir: str, epochs: int, resume: bool, paper: bool):  # type: ignore[no-untyped-def]
        return sys.executable, ["-c", textwrap.dedent(script), data, run_dir, str(epochs)]

    return command


def test_retrain_progress_shows_the_chosen_epochs_and_batches_with_eta(qtbot, tmp_path) -> None:
    dialog = RetrainDialog(tmp_path, command=_fake_training("pass"))
    qtbot.addWidget(dialog)
    assert dialog.progress_bar.maximum() == dialog.epochs_spin.value() == 30
    dialog.epochs_spin.setValue(12)
    assert dialog.progress_bar.maximum() == 12
    # the stream's length unknown: batches counted, the bar busy
    dialog.handle_line('{"event": "batch", "epoch": 1, "epochs": 12, "batch": 7, "seconds": 1.0}')
    assert dialog.epoch_bar.maximum() == 0 and dialog.epoch_bar.format() == "epoch 1: batch 7"
    dialog.handle_line('{"event": "epoch", "epoch": 1, "epochs": 12, "eta_s_max": 400}')
    assert dialog.progress_bar.value() == 1 and dialog.progress_bar.maximum() == 12
    assert dialog.epoch_bar.maximum() == 1000 and dialog.epoch_bar.value() == 1000
    # then estimated from the last epoch (7 batches)
    dialog.handle_line('{"event": "batch", "epoch": 2, "epochs": 12, "batch": 2, "seconds": 1.0}')
    assert dialog.epoch_bar.format() == "epoch 2: batch 2 / 7 · ETA 0:02"
    # a known length wins
    dialog.handle_line(
        '{"event": "batch", "epoch": 2, "epochs": 12, "batch": 50, "batches": 200, "seconds": 10.0}'
    )
    assert dialog.epoch_bar.value() == 250
    assert dialog.epoch_bar.format() == "epoch 2: batch 50 / 200 · ETA 0:30"


def test_retrain_cancel_before_any_epoch_says_nothing_was_kept(qtbot, tmp_path) -> None:
    script = "import time\ntime.sleep(30)\n"
    dialog = RetrainDialog(tmp_path, command=_fake_training(script))
    qtbot.addWidget(dialog)
    dialog.data_edit.setText(str(tmp_path))
    dialog.run_edit.setText(str(tmp_path / "fresh-run"))
    dialog.start()
    qtbot.waitUntil(lambda: dialog.running, timeout=10_000)
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not dialog.running, timeout=10_000)
    log = dialog.log.toPlainText()
    assert "nothing was saved" in log
    assert "last finished epoch is kept" not in log and "exit code" not in log


def test_training_reports_progress_within_an_epoch(tmp_path, monkeypatch) -> None:
    pytest.importorskip("keras")
    from training import callbacks
    from training.config import TrainConfig

    events: list[dict[str, Any]] = []
    config = TrainConfig(data_dir=str(tmp_path), run_dir=str(tmp_path / "run"), epochs=7)
    checkpoint = callbacks.epoch_callbacks(config, events.append)[-1]
    checkpoint.set_params({"steps": 40, "epochs": 7})
    clock = iter([100.0, 100.2, 101.5, 101.9, 103.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    checkpoint.on_epoch_begin(2)
    for batch in range(4):
        checkpoint.on_train_batch_end(batch)
    # at most once a second: batches 2 (1.5 s) and 4 (3.0 s), not 1 (0.2 s) nor 3 (0.4 s later)
    assert events == [
        {"event": "batch", "epoch": 3, "epochs": 7, "batch": 2, "batches": 40, "seconds": 1.5},
        {"event": "batch", "epoch": 3, "epochs": 7, "batch": 4, "batches": 40, "seconds": 3.0},
    ]
