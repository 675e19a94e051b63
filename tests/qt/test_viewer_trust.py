"""Issue 12, points 1-7: what is on screen is true (status, partial, cancel, clipping, stain,
errors, texts and colours)."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import logging
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers, under --import-mode=importlib
from app_fakes import FakeModel, FakePredictor, two_region_image
from heatmap_fakes import plain_grid
from window_fixtures import run_analysis, shared_wsi

from idc_viewer.core.colormap import overlay_rgba
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.memory import ArraySlide
from idc_viewer.core.readers import open_slide
from idc_viewer.core.store import ResultStore
from idc_viewer.core.tissue import stain_warning
from idc_viewer.engine.analysis import analyze
from idc_viewer.qt.user_messages import explain_open_error
from idc_viewer.qt.viewer.slide_view import BACKGROUND


def _store_partial(path: Path, store_dir: Path, batches: int) -> int:
    """Analyse ``batches`` batches of 8 of a slide file into a store, then stop (as a quit)."""
    slide = open_slide(path)
    try:
        gen = analyze(slide, FakeModel(), ResultStore(store_dir), batch_size=8)
        first = next(gen)
        total = first.progress.total
        for _ in range(batches):
            next(gen)
        gen.close()
        return total
    finally:
        slide.close()


# -- 1. status texts ------------------------------------------------------------------------


def test_status_follows_the_model_loaded_after_the_slide(make_window, slide_file) -> None:
    window = make_window(model=None)  # --demo: the slide opens before the model has loaded
    assert window.slides.open_path(str(slide_file))
    assert window.analysis_panel.status.text() == "Load a model to analyse the slide."
    window.state.set_model(FakeModel(), "fake.keras")
    text = window.analysis_panel.status.text()
    assert "Load a model" not in text and "Not analysed yet" in text
    assert window.analysis_panel.run_button.isEnabled()


def test_status_with_a_slide_without_scale_is_not_open_a_slide(make_window, tmp_path) -> None:
    import cv2

    png = tmp_path / "no-scale.png"
    cv2.imwrite(str(png), two_region_image()[..., ::-1])
    window = make_window()
    assert window.slides.open_path(str(png))
    text = window.analysis_panel.status.text()
    assert "Open a slide" not in text and "scale" in text


def test_a_complete_stored_heatmap_shows_done_and_a_full_bar(
    qtbot, make_window, slide_file, tmp_path
) -> None:
    first = make_window(store_dir=tmp_path / "store")
    first.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, first) == "done"
    window = make_window(store_dir=tmp_path / "store")
    assert window.slides.open_path(str(slide_file))
    assert window.state.heatmap is not None
    assert window.analysis_panel.progress_bar.value() == 1000
    assert window.analysis_panel.status.text() == "Done: 88 patches analysed."


# -- 2. partial analysis --------------------------------------------------------------------


def test_a_partial_stored_analysis_is_shown_as_partial_with_resume(
    qtbot, make_window, slide_file, tmp_path
) -> None:
    total = _store_partial(slide_file, tmp_path / "store", batches=3)
    window = make_window(store_dir=tmp_path / "store")
    assert window.slides.open_path(str(slide_file))
    assert window.state.coverage() == (24, total)
    assert window.analysis_panel.status.text() == f"24 of {total} patches — Resume"
    assert window.analysis_panel.run_button.text() == "Resume analysis"
    assert window.analysis_panel.progress_bar.value() == round(24 / total * 1000)
    assert f"24 of {total} patches" in window.info_panel.values["Heatmap"].text()
    assert "Partial" in window.statusBar().currentMessage()
    pending = window.state.pending_mask()
    assert pending is not None and int(pending.sum()) == total - 24
    assert run_analysis(qtbot, window) == "done"  # Resume finishes it
    assert window.analysis_panel.status.text() == f"Done: {total} patches analysed."
    assert "Partial" not in window.statusBar().currentMessage()  # no stale "partial" beside it
    assert window.analysis_panel.run_button.text() == "Analyse slide"


def test_not_analysed_tissue_looks_unlike_analysed_low(qtbot, make_view, grab) -> None:
    slide = ArraySlide([np.full((400, 400, 3), 255, np.uint8)], mpp=4.0)
    grid = plain_grid(100.0, 4, 4, slide_mpp=4.0)
    probs = np.full((4, 4), np.nan, np.float32)
    probs[0, 0] = 0.05  # analysed, low
    tissue = np.zeros((4, 4), bool)
    tissue[0, :2] = True  # (1, 0) is tissue not analysed yet
    view = make_view(slide)
    view.set_heatmap(Heatmap(grid, probs))
    view.set_pending_mask(tissue & np.isnan(probs))
    view.set_overlay_opacity(0.5)
    qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=5000)
    pixels = grab(view).astype(int)

    def at(l0_x: float, l0_y: float) -> np.ndarray:
        vx, vy = view.view_transform().view_from_l0(l0_x, l0_y)
        return pixels[int(vy), int(vx)]

    low, pending, background = at(50, 50), at(150, 50), at(350, 350)
    assert np.all(low == 255)  # analysed, low: the slide as it is
    assert np.all(background == 255)  # not tissue: nothing painted
    assert np.all(np.abs(pending - 255) > 40)  # not analysed yet: a grey veil
    assert np.ptp(pending) < 10  # grey, not a colour of the heatmap


# -- 3. cancel ------------------------------------------------------------------------------


def test_cancel_stops_within_a_batch_even_when_the_display_is_slow(
    qtbot, make_window, synthetic_tiff, tmp_path
) -> None:
    # ~350 patches in batches of 8; the model is quick, a heatmap listener slow (100 ms): the
    # display must still show what is done, and Cancel at ~10 % must really cancel.
    path = synthetic_tiff(image=two_region_image(), name="many.tiff", mpp=8.0, levels=2)
    predictor = FakePredictor(delay_s=0.02)
    window = make_window(model=FakeModel(predictor=predictor), store_dir=tmp_path / "store")
    assert window.slides.open_path(str(path))
    window.state.heatmap_changed.connect(lambda: time.sleep(0.1))
    bar = window.analysis_panel.progress_bar
    with qtbot.waitSignal(window.analysis.stopped, timeout=30_000) as blocker:
        assert window.analysis.start() is not None
        qtbot.waitUntil(lambda: bar.value() >= 100, timeout=20_000)
        calls_at_cancel = predictor.calls
        window.analysis_panel.cancel_button.click()
    assert blocker.args == ["cancelled"]
    assert predictor.calls <= calls_at_cancel + 1  # within one batch
    done, total = window.state.coverage()
    assert total > 300 and 0 < done < total
    assert window.analysis_panel.status.text().startswith(f"Cancelled: {done} of {total} patches")
    stored = ResultStore(tmp_path / "store").find(window.state.fingerprint)
    assert int(stored[0].done_mask().sum()) == done  # the display shows what is stored
    for analysis in stored:
        analysis.close()


def test_esc_cancels_the_analysis(qtbot, make_window, slide_file) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor(delay_s=0.1)))
    window.slides.open_path(str(slide_file))
    assert window.actions_.cancel.shortcut().toString() == "Esc"
    with qtbot.waitSignal(window.analysis.stopped, timeout=30_000) as blocker:
        assert window.analysis.start() is not None
        qtbot.waitUntil(lambda: window.analysis_panel.progress_bar.value() > 0, timeout=10_000)
        window.actions_.cancel.trigger()  # what Esc does, wherever the focus is
    assert blocker.args == ["cancelled"]
    done, total = window.state.coverage()
    assert done < total


def test_info_panel_and_progress_agree_during_a_run(qtbot, make_window, slide_file) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor(delay_s=0.03)))
    window.slides.open_path(str(slide_file))
    seen: list[tuple[str, str]] = []
    runner = window.analysis
    flush = runner.flush_updates

    def recording_flush() -> None:
        flush()
        seen.append(
            (
                window.info_panel.values["Heatmap"].text(),
                window.analysis_panel.progress_bar.format(),
            )
        )

    runner.flush_updates = recording_flush  # type: ignore[method-assign]
    runner._flush_timer.timeout.disconnect()
    runner._flush_timer.timeout.connect(recording_flush)
    assert run_analysis(qtbot, window) == "done"
    assert len(seen) >= 2
    for info, counts in seen:
        done = counts.split(" / ")[0]
        assert info.startswith(f"{done} of 88") or (done == "88" and info.startswith("88 patches"))


# -- 4. clipping ----------------------------------------------------------------------------


def test_heatmap_is_clipped_to_the_slide_edge(qtbot, make_view, grab) -> None:
    slide = ArraySlide([np.full((700, 1000, 3), 255, np.uint8)], mpp=4.0)
    # 300-px cells: the last column and row reach 1200 x 900, past the 1000 x 700 slide
    grid = plain_grid(300.0, 4, 3, width=1000, height=700)
    view = make_view(slide, width=600, height=600)
    view.set_heatmap(Heatmap(grid, np.ones((3, 4), np.float32)))
    view.set_overlay_opacity(1.0)
    view.fit()
    view.zoom_by(0.6)  # room around the slide on every side
    qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=5000)
    pixels = grab(view).astype(int)
    transform = view.view_transform()
    inside_x, inside_y = transform.view_from_l0(950, 650)
    assert np.abs(pixels[int(inside_y), int(inside_x)] - 255).max() > 40  # painted
    _, below_y = transform.view_from_l0(500, 750)  # under the slide, inside the last row
    right_x, _ = transform.view_from_l0(1100, 300)
    background = np.array(BACKGROUND.getRgb()[:3])
    mid_x, _ = transform.view_from_l0(500, 0)
    _, mid_y = transform.view_from_l0(0, 300)
    assert np.abs(pixels[int(below_y), int(mid_x)] - background).max() <= 2
    assert np.abs(pixels[int(mid_y), int(right_x)] - background).max() <= 2


# -- 5. non-H&E slides flagged on opening ---------------------------------------------------


def test_coloured_boxes_are_flagged_on_opening_and_before_analysing(
    make_window, questions, dialogs
) -> None:
    image = np.full((400, 600, 3), 255, np.uint8)
    image[50:200, 50:250] = (30, 200, 30)
    image[220:380, 300:550] = (30, 30, 220)
    image[50:150, 400:550] = (230, 220, 20)
    window = make_window()
    window.slides.show_slide(ArraySlide([image], mpp=4.0, path="boxes"), name="boxes")
    assert window.state.slide_warning is not None
    assert "Not H&E?" in window.info_panel.values["Stain"].text()
    assert "Not H&E?" in window.statusBar().currentMessage()
    assert window.analysis.start() is None  # asked first; answered No
    assert questions and "Analyse anyway?" in questions[-1]
    he = make_window()
    he.slides.show_slide(ArraySlide([two_region_image()], mpp=4.0, path="he"), name="he")
    assert he.state.slide_warning is None
    assert he.info_panel.values["Stain"].text() == "looks like H&E"


@pytest.mark.parametrize("name", ["boxes.tiff", "fluorescence-DAPI.ndpi"])
def test_real_non_he_slides_are_flagged_on_opening(make_window, name: str) -> None:
    window = make_window()
    assert window.slides.open_path(str(shared_wsi(name)))
    assert window.state.slide_warning is not None


@pytest.mark.parametrize("name", ["CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs"])
def test_real_he_slides_are_not_flagged(name: str) -> None:
    slide = open_slide(shared_wsi(name))
    try:
        assert stain_warning(slide.thumbnail(1024)) is None
    finally:
        slide.close()


# -- 6. errors in the user's words ----------------------------------------------------------


def test_broken_dicom_error_is_explained_with_detail_in_the_log(
    make_window, dialogs, caplog
) -> None:
    window = make_window()
    with caplog.at_level(logging.ERROR):
        assert not window.slides.open_path(str(shared_wsi("broken-dicom.dcm")))
    _title, text = dialogs[-1]
    assert "Couldn't get image flavor" not in text and "\n" not in text
    assert "broken-dicom.dcm" in text and "DICOM" in text and "export it again" in text
    assert "Couldn't get image flavor" in caplog.text  # the raw reason, for whoever debugs


def test_explain_open_error_falls_back_to_the_reason() -> None:
    assert "is not there" in explain_open_error("a.svs", "cannot open a.svs: file not found")
    text = explain_open_error("a.svs", "cannot open a.svs: something odd")
    assert "something odd" in text and "\n" not in text


# -- 7. texts fit, colours keep benign tissue readable --------------------------------------


def test_info_levels_fit_and_regions_headers_are_whole(qtbot, make_window, slide_file) -> None:
    from PySide6.QtGui import QFontMetrics

    window = make_window()
    levels = [(4864 // 2**i, 3968 // 2**i) for i in range(7)]  # the NDPI's seven levels
    slide = ArraySlide(
        [np.full((h // 8, w // 8, 3), 240, np.uint8) for w, h in levels[3:]], mpp=0.228
    )
    window.slides.show_slide(slide, name="seven")
    from idc_viewer.qt.panels.info_panel import levels_text

    text = levels_text(tuple(levels))
    assert text == "7 (4864×3968 … 76×62)"
    label = window.info_panel.values["Levels"]
    assert label.sizeHint().width() <= 200  # one short line in the dock
    assert "level 6" in label.toolTip() or slide.info.level_count < 7
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    panel = window.regions_panel
    window.tabs.setCurrentWidget(panel)
    panel.refresh()
    qtbot.wait(50)  # the dock takes the width the table asks for
    header = panel.table.horizontalHeader()
    metrics = QFontMetrics(header.font())
    for col in range(panel.table.columnCount()):
        label_text = panel.table.horizontalHeaderItem(col).text()
        assert header.sectionSize(col) >= metrics.horizontalAdvance(label_text)
    needed = sum(
        max(header.sectionSizeHint(c), panel.table.sizeHintForColumn(c))
        for c in range(panel.table.columnCount())
    )
    assert needed <= panel.table.viewport().width()  # every column whole, none scrolled away
    assert not panel.table.horizontalScrollBar().isVisible()


def test_progress_text_fits_the_panel_on_one_line(make_window) -> None:
    from PySide6.QtGui import QFontMetrics

    from idc_viewer.core.jobs import Progress
    from idc_viewer.qt.panels.analysis_panel import progress_text

    window = make_window()
    panel = window.analysis_panel
    progress = Progress(12_345, 123_456, rate_per_s=1500.0, eta_s=3723.0)
    panel.set_running(True)
    panel.show_progress(progress)
    assert panel.progress_bar.format() == "12,345 / 123,456 patches"  # the counts on the bar
    assert panel.status.text() == progress_text(progress) == "1,500 patches/s · ETA 1:02:03"
    width = QFontMetrics(panel.status.font()).horizontalAdvance(panel.status.text())
    assert width <= panel.status.width()  # the rate and ETA on one line


def test_low_probabilities_leave_benign_tissue_readable() -> None:
    probs = np.array([[np.nan, 0.0, 0.1, 0.19, 0.3, 0.5, 0.8, 1.0]], np.float32)
    rgba = overlay_rgba(probs).astype(int)
    assert list(rgba[0, :4, 3]) == [0, 0, 0, 0]  # below the floor: the tissue as stained
    alpha = rgba[0, 4:, 3]
    assert np.all(np.diff(alpha) > 0) and alpha[-1] == 255  # rising with probability
    luminance = rgba[0, 4:, :3] @ np.array([0.299, 0.587, 0.114])
    assert luminance.min() > 40  # no near-black at the low end


def test_default_overlay_leaves_benign_tissue_pixels_unchanged(
    qtbot, make_window, slide_file, grab
) -> None:
    window = make_window(model=FakeModel(predictor=FakePredictor()))
    window.slides.open_path(str(slide_file))
    run_analysis(qtbot, window)
    probs = window.state.heatmap.probabilities.copy()
    low = np.argwhere(np.nan_to_num(probs, nan=1.0) < 0.2)
    if len(low) == 0:  # the fake model rates every tissue patch >= 0.2: make one low
        probs[5, 5] = 0.05
        window.state.heatmap.probabilities[5, 5] = 0.05
        window.view.update_heatmap_cells(np.array([[5, 5]]))
        low = np.array([[5, 5]])
    row, col = low[0]
    x, y, w, h = window.state.heatmap.grid.l0_rect(int(col), int(row))
    vx, vy = window.view.view_transform().view_from_l0(x + w / 2, y + h / 2)
    window.state.set_threshold(1.0)  # no outline in the way
    qtbot.waitUntil(lambda: window.view.pending_tiles() == 0, timeout=5000)
    after = grab(window.view)  # default opacity
    window.view.set_overlay_visible(False)
    heatmap_free = grab(window.view)
    assert (
        np.abs(
            after[int(vy), int(vx)].astype(int) - heatmap_free[int(vy), int(vx)].astype(int)
        ).max()
        <= 3
    )
