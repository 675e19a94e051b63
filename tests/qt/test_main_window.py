"""The main window end to end (offscreen): opening, analysis, Grad-CAM, regions, export."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # app_fakes, under --import-mode=importlib
from app_fakes import FakeModel, FakePredictor, fake_spec, two_region_image
from PySide6.QtWidgets import QInputDialog
from window_fixtures import run_analysis

from idc_viewer.qt.main_window import MainWindow


def test_open_slide_sets_title_info_and_recent(make_window, slide_file: Path) -> None:
    window = make_window()
    assert "IDC" in window.windowTitle()
    assert window.slides.open_path(str(slide_file))
    assert window.windowTitle().startswith("two-regions.tiff")
    assert "IDC" in window.windowTitle()
    assert window.info_panel.values["Size (px)"].text() == "1200 × 800"
    assert window.info_panel.values["µm/px"].text().startswith("4")
    assert window.view.slide() is window.state.slide
    recent = window.actions_.recent_menu.actions()
    assert [a.text() for a in recent] == ["two-regions.tiff"]


def test_showing_a_slide_reads_its_thumbnail_once(make_window, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from idc_viewer.core.memory import ArraySlide

    slide = ArraySlide([two_region_image()], mpp=4.0, path="memory")
    sides: list[int] = []
    real_thumbnail = slide.thumbnail

    def counting_thumbnail(max_side: int) -> Any:
        sides.append(max_side)
        return real_thumbnail(max_side)

    monkeypatch.setattr(slide, "thumbnail", counting_thumbnail)
    window = make_window()
    window.slides.show_slide(slide, fingerprint="f" * 64, name="memory")
    assert len(sides) == 1  # a whole-image read on single-level slides: view and minimap share it
    assert max(window.minimap._image.width(), window.minimap._image.height()) == 256


def test_unopenable_file_shows_reason_and_app_stays_usable(
    make_window, dialogs, tmp_path: Path, slide_file: Path
) -> None:
    window = make_window()
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"this is not a slide" * 10)
    assert not window.slides.open_path(str(bad))
    assert len(dialogs) == 1
    assert "broken.svs" in dialogs[0][1]
    assert "\n" not in dialogs[0][1]
    assert window.state.slide is None
    assert window.slides.open_path(str(slide_file))  # still works afterwards
    assert window.state.slide is not None


def test_slide_without_mpp_opens_and_scale_is_asked_by_the_analysis_and_remembered(
    qtbot, make_window, monkeypatch, tmp_path: Path
) -> None:
    import cv2

    png = tmp_path / "no-scale.png"
    cv2.imwrite(str(png), two_region_image()[..., ::-1])
    asked: list[str] = []
    answer = [(4.0, True)]

    def get_double(_parent: Any, title: str, label: str, *args: Any, **kw: Any) -> Any:
        asked.append(label)
        return answer[0]

    monkeypatch.setattr(QInputDialog, "getDouble", get_double)
    window = make_window()
    assert window.slides.open_path(str(png))  # viewing needs no scale: shown at once, nothing asked
    assert asked == [] and window.view.slide() is window.state.slide
    assert window.state.slide.info.mpp is None
    assert "Set scale" in window.statusBar().currentMessage()
    answer[0] = (0.0, False)  # cancelling the question: no analysis, the slide stays
    assert window.analysis.start() is None
    assert window.state.slide is not None and len(asked) == 1
    answer[0] = (4.0, True)
    assert run_analysis(qtbot, window) == "done"
    assert len(asked) == 2
    info = window.state.slide.info
    assert info.mpp == pytest.approx(4.0) and info.mpp_source == "user"
    assert window.info_panel.values["µm/px"].text().startswith("4")
    # Reopened (Open recent, or a later session with the same settings): remembered, not asked.
    other = make_window()
    assert other.slides.open_path(str(png))
    assert other.state.slide.info.mpp == pytest.approx(4.0) and len(asked) == 2
    assert other.state.heatmap is not None  # and its stored analysis is shown at once
    # Slide › Set scale… changes it later.
    answer[0] = (2.0, True)
    other.actions_.set_scale.trigger()
    assert other.state.slide.info.mpp == pytest.approx(2.0)
    assert other.state.heatmap is None  # the heatmap at 4 µm/px no longer fits


def test_analysis_paints_progressively_and_stores(qtbot, make_window, slide_file: Path) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor(delay_s=0.06)))
    window.slides.open_path(str(slide_file))
    assert window.state.heatmap is None
    changes: list[int] = []
    window.state.heatmap_changed.connect(
        lambda: changes.append(window.state.heatmap.analysed_count if window.state.heatmap else 0)
    )
    assert run_analysis(qtbot, window) == "done"
    heatmap = window.state.heatmap
    assert heatmap is not None and heatmap.analysed_count > 50
    assert len(changes) > 3 and changes == sorted(changes)  # batch after batch, growing
    assert window.analysis_panel.progress_bar.value() == 1000
    assert "patches" in window.analysis_panel.status.text()
    assert "fake" in window.state.heatmap_source
    assert not window.analysis.running and window.analysis_panel.run_button.isEnabled()


def test_cancel_keeps_partial_results_and_resumes(qtbot, make_window, slide_file: Path) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor(delay_s=0.15)))
    window.slides.open_path(str(slide_file))
    with qtbot.waitSignal(window.analysis.stopped, timeout=30_000) as blocker:
        worker = window.analysis.start()
        assert worker is not None
        qtbot.waitUntil(
            lambda: window.state.heatmap is not None and window.state.heatmap.analysed_count >= 8,
            timeout=10_000,
        )
        window.analysis_panel.cancel_button.click()
    assert blocker.args == ["cancelled"]
    partial = window.state.heatmap.analysed_count
    assert 8 <= partial < 88
    assert "Cancelled" in window.analysis_panel.status.text()
    # A rerun resumes from what was stored.
    window.state.model.predictor.delay_s = 0.0
    assert run_analysis(qtbot, window) == "done"
    assert window.state.heatmap.analysed_count == 88


def test_reopening_shows_stored_heatmap_at_once(
    qtbot, make_window, slide_file: Path, tmp_path: Path
) -> None:
    window = make_window(store_dir=tmp_path / "store")
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    expected = window.state.heatmap.probabilities.copy()
    other = make_window(store_dir=tmp_path / "store")
    assert other.slides.open_path(str(slide_file))
    assert other.state.heatmap is not None  # no analysis run: it came from the store
    np.testing.assert_allclose(other.state.heatmap.probabilities, expected, equal_nan=True)
    assert "fake" in other.state.heatmap_source
    assert "fake" in other.info_panel.values["Heatmap"].text()
    # Another model never shows this analysis: no heatmap, its own threshold, an offer.
    other_model = FakeModel(spec=fake_spec("other", "b", threshold=0.3))
    third = make_window(model=other_model, store_dir=tmp_path / "store")
    third.slides.open_path(str(slide_file))
    assert third.state.heatmap is None and third.state.threshold == pytest.approx(0.3)
    assert third.model_badge.analyse_button.text() == "Analyse with other"
    run_analysis(qtbot, third)
    assert third.state.threshold == pytest.approx(0.3)
    assert "bbbbbbbb" in third.state.heatmap_source


def assert_one_model_on_screen(window: MainWindow) -> None:
    """Heatmap, threshold, layers and labels all belong to the loaded model."""
    state, model = window.state, window.state.model
    assert state.threshold == pytest.approx(model.spec.threshold)
    assert window.view._overlay.heatmap is state.heatmap
    assert window.gradcam_layer.layer.heatmap is state.heatmap
    if state.heatmap is not None:
        assert state.heatmap_source.endswith(f"({model.spec.model_hash[:8]})")
    assert model.spec.name in window.model_badge.label.text()
    assert model.spec.name in window.gradcam_panel.model_label.text()


def test_switching_model_never_mixes_two_models(qtbot, make_window, slide_file: Path) -> None:
    alpha = FakeModel(spec=fake_spec("alpha", "a", threshold=0.5))
    beta = FakeModel(spec=fake_spec("beta", "b", threshold=0.3))
    models = {"alpha.keras": alpha, "beta.keras": beta}
    window = make_window(model=None, model_loader=lambda path: models[path])

    def switch(path: str) -> None:
        with qtbot.waitSignal(window.state.model_changed, timeout=10_000):
            window.models.load_model(path)
        assert window.state.model is models[path]
        assert_one_model_on_screen(window)

    switch("alpha.keras")
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    assert_one_model_on_screen(window)
    by_alpha = window.state.heatmap.probabilities.copy()

    window.regions_panel.refresh()
    assert window.regions_panel.table.rowCount() > 0
    window.regions_panel.table.selectRow(0)
    assert window.marks.region_l0 is not None
    switch("beta.keras")  # no stored analysis by beta: nothing, and the offer to analyse
    assert window.state.heatmap is None and window.view._overlay.heatmap is None
    window.regions_panel.refresh()
    assert window.regions_panel.table.rowCount() == 0
    assert window.marks.region_l0 is None and window.marks.patch_l0 is None
    badge = window.model_badge
    assert badge.analyse_button.isVisibleTo(badge)
    assert badge.analyse_button.text() == "Analyse with beta"
    assert "Analyse with beta" in window.statusBar().currentMessage()
    with qtbot.waitSignal(window.analysis.stopped, timeout=30_000):
        badge.analyse_button.click()
    assert_one_model_on_screen(window)
    assert not badge.analyse_button.isVisibleTo(badge)

    switch("alpha.keras")  # alpha's stored analysis comes back, at alpha's threshold
    np.testing.assert_array_equal(window.state.heatmap.probabilities, by_alpha)

    # mid-analysis: beta is slowed down, and alpha is loaded while it runs
    beta.predictor.delay_s = 0.1
    store, window.store = window.store, None  # beta must not find its finished analysis
    switch("beta.keras")
    worker = window.analysis.start()
    assert worker is not None
    qtbot.waitUntil(lambda: window.state.heatmap is not None, timeout=10_000)
    window.store = store
    switch("alpha.keras")
    assert not worker.running
    qtbot.wait(300)  # late batches of beta's run are not painted
    assert_one_model_on_screen(window)
    np.testing.assert_array_equal(window.state.heatmap.probabilities, by_alpha)


def test_clicking_a_patch_opens_gradcam_dock(qtbot, make_window, slide_file: Path) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    grid = window.state.heatmap.grid
    x, y, w, h = grid.l0_rect(5, 5)  # inside the red block
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000) as blocker:
        window.view.patch_clicked.emit(x + w / 2, y + h / 2)
    view = blocker.args[0]
    assert view.cell == (5, 5)
    assert window.gradcam_dock.isVisible()
    assert "P(IDC) = " in window.gradcam_panel.probability_label.text()
    assert "µm" in window.gradcam_panel.position_label.text()
    assert not window.gradcam_panel.images[0].pixmap().isNull()


def test_next_flagged_steps_from_most_probable(qtbot, make_window, slide_file: Path) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    probs = window.state.heatmap.probabilities
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000):
        window.actions_.next_flagged.trigger()
    first = window.state.selected_cell
    assert probs[first[1], first[0]] == pytest.approx(np.nanmax(probs))
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000):
        window.actions_.next_flagged.trigger()
    second = window.state.selected_cell
    assert second != first and probs[second[1], second[0]] <= probs[first[1], first[0]]
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000):
        window.actions_.prev_flagged.trigger()
    assert window.state.selected_cell == first


def test_inspected_patch_is_outlined_and_n_zooms_in_to_see_it(
    qtbot, make_window, slide_file: Path, grab
) -> None:
    from idc_viewer.qt.inspection_controller import INSPECT_PATCH_VIEW_PX
    from idc_viewer.qt.viewer.marks_layer import PATCH_COLOUR

    window = make_window()
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    window.view.fit()  # a patch is a few screen pixels here
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000) as blocker:
        window.actions_.next_flagged.trigger()
    view = blocker.args[0]
    rect = window.state.heatmap.grid.l0_rect(*view.cell)
    assert window.marks.patch_l0 == rect
    assert window.view.view_px_per_l0() * rect[2] >= INSPECT_PATCH_VIEW_PX - 1e-6
    pixels = grab(window.view).astype(int)
    t = window.view.view_transform()
    x0, y0 = t.view_from_l0(rect[0], rect[1])
    _x1, y1 = t.view_from_l0(rect[0] + rect[2], rect[1] + rect[3])
    edge = pixels[int((y0 + y1) / 2), round(x0) - 1 : round(x0) + 2]  # the left edge
    yellow = np.array([PATCH_COLOUR.red(), PATCH_COLOUR.green(), PATCH_COLOUR.blue()])
    assert np.abs(edge - yellow).sum(axis=1).min() < 60
    # the full-resolution patch, enlarged, carries its map at full resolution
    dialog = window.gradcam_panel.enlarge()
    assert dialog is not None and dialog.isVisible()
    shown = dialog.shown_array()
    assert shown.shape == view.full.shape and not np.array_equal(shown, view.full)
    dialog.cam_box.setChecked(False)
    np.testing.assert_array_equal(dialog.shown_array(), view.full)
    assert "model fake" in dialog.caption.text()


def test_regions_sorted_and_selection_zooms(qtbot, make_window, slide_file: Path) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    panel = window.regions_panel
    panel.refresh()
    table = panel.table
    assert table.rowCount() >= 2
    max_p = [float(table.item(r, 3).text()) for r in range(table.rowCount())]
    assert max_p == sorted(max_p, reverse=True)
    window.view.fit()
    zoom_before = window.view.view_px_per_l0()
    table.selectRow(1)
    region = panel.region_at_row(1)
    visible = window.view.visible_l0_rect()
    assert window.view.view_px_per_l0() > zoom_before
    assert visible.contains(region.l0_centroid_x, region.l0_centroid_y)
    assert visible.width() < 2 * max(region.l0_width, region.l0_height) + 1
    assert window.marks.region_l0 == (region.l0_x, region.l0_y, region.l0_width, region.l0_height)


def test_export_writes_engine_files_and_png(
    qtbot, make_window, slide_file: Path, tmp_path: Path
) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    paths = window.exports.export_results(tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == sorted(
        [
            "two-regions.patches.csv",
            "two-regions.regions.csv",
            "two-regions.regions.geojson",
            "two-regions.provenance.json",
        ]
    )
    assert all(p.stat().st_size > 0 for p in paths)
    assert "fake" in (tmp_path / "out" / "two-regions.provenance.json").read_text()
    png = tmp_path / "view.png"
    assert window.exports.export_view_png(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_export_of_another_models_stored_heatmap_records_that_model(
    qtbot, make_window, slide_file: Path, tmp_path: Path
) -> None:
    beta = FakeModel(spec=fake_spec("beta", "b", threshold=0.3))
    first = make_window(model=beta, store_dir=tmp_path / "store")
    first.slides.open_path(str(slide_file))
    run_analysis(qtbot, first)
    window = make_window(model=None, store_dir=tmp_path / "store")
    assert window.slides.open_path(str(slide_file))  # beta's stored heatmap is shown
    window.state.set_model(FakeModel(), "alpha.keras")  # model A loaded, B's heatmap kept
    assert window.state.heatmap is not None and not window.state.heatmap_by_loaded_model()
    assert window.exports.export_results(tmp_path / "out")
    record = json.loads((tmp_path / "out" / "two-regions.provenance.json").read_text())
    assert record["model"] == {
        "name": "beta",
        "hash": beta.spec.model_hash,
        "model_threshold": pytest.approx(0.3),
    }


def test_export_without_heatmap_is_a_message(make_window, dialogs, slide_file, tmp_path) -> None:
    window = make_window()
    window.slides.open_path(str(slide_file))
    assert window.exports.export_results(tmp_path / "out") == []
    assert dialogs and "analyse" in dialogs[-1][1].lower()


def test_wrong_model_file_keeps_previous_model(qtbot, make_window, dialogs, tmp_path) -> None:
    from idc_viewer.qt.model_controller import default_model_loader

    window = make_window(model_loader=default_model_loader)
    old = window.state.model
    bad = tmp_path / "evil.keras"
    bad.write_bytes(b"not a model")
    with qtbot.waitSignal(window.models.load_failed, timeout=10_000):
        window.models.load_model(str(bad))
    assert window.state.model is old
    assert dialogs and dialogs[-1][0] == "Cannot load model" and "evil.keras" in dialogs[-1][1]
    assert window.model_panel.name_label.text().startswith("fake")


def test_load_model_switches_model(qtbot, make_window) -> None:
    new = FakeModel(spec=fake_spec("newer", "c"))
    window = make_window(model_loader=lambda path: new)
    with qtbot.waitSignal(window.state.model_changed, timeout=10_000):
        window.models.load_model("newer.keras")
    assert window.state.model is new
    assert "cccccccc" in window.model_panel.hash_label.text()


def test_closing_mid_analysis_cancels_without_hanging(qtbot, make_window, slide_file) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor(delay_s=0.3)))
    window.slides.open_path(str(slide_file))
    worker = window.analysis.start()
    assert worker is not None
    qtbot.waitUntil(lambda: worker.running, timeout=5_000)
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 5.0
    assert not worker.running


def test_an_analysis_failure_is_one_line_and_a_missing_scale_asks_for_it(
    qtbot, make_window, dialogs, slide_file, monkeypatch
) -> None:
    """The worker relays the exception object: the runner formats it, or reacts to its type."""
    from idc_viewer.core.slide import MissingMppError

    def boom(_calls: int) -> None:
        raise RuntimeError("disk on fire\nsecond line")

    window = make_window(model=FakeModel(predictor=FakePredictor(on_call=boom)))
    assert window.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, window) == "failed"
    assert dialogs[-1] == ("Analysis failed", "disk on fire second line")

    asked: list[str] = []

    def get_double(_parent: Any, _title: str, label: str, *args: Any, **kw: Any) -> Any:
        asked.append(label)
        return 4.0, False  # cancelled: no scale given

    monkeypatch.setattr(QInputDialog, "getDouble", get_double)

    def lost_scale(_calls: int) -> None:
        raise MissingMppError("the slide lost its scale")

    window.state.model.predictor.on_call = lost_scale
    shown = len(dialogs)
    assert run_analysis(qtbot, window) == "failed"
    assert len(asked) == 1 and len(dialogs) == shown  # asked for the scale, no error dialog
