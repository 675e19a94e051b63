"""The app shows and flags the model's context map by default, the raw patch map on a toggle."""

from __future__ import annotations

import dataclasses
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # helpers, under --import-mode=importlib
from app_fakes import FakeModel, fake_spec
from window_fixtures import run_analysis

from idc_viewer.core.context import context_probabilities
from idc_viewer.core.regions import find_regions
from idc_viewer.ml.spec import ContextSpec

SIGMA, CONTEXT_THRESHOLD, PATCH_THRESHOLD = 1.5, 0.6, 0.5


def context_model() -> FakeModel:
    spec = dataclasses.replace(
        fake_spec(threshold=PATCH_THRESHOLD),
        context=ContextSpec(sigma_patches=SIGMA, threshold=CONTEXT_THRESHOLD),
    )
    return FakeModel(spec=spec)


def shown_probabilities(window) -> np.ndarray:  # type: ignore[no-untyped-def]
    heatmap = window.view._overlay.heatmap
    assert heatmap is not None
    return heatmap.probabilities


def test_the_context_map_is_shown_flagged_and_explained_and_the_toggle_shows_the_patch_map(
    qtbot, make_window, slide_file
) -> None:
    window = make_window(model=context_model())
    assert window.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, window) == "done"
    state = window.state
    raw = state.heatmap.probabilities
    expected = context_probabilities(raw, SIGMA)

    # by default: the context map, at the context stage's threshold, in view, regions and flags
    assert state.context_active() and state.threshold == pytest.approx(CONTEXT_THRESHOLD)
    np.testing.assert_allclose(shown_probabilities(window), expected, atol=1e-6, equal_nan=True)
    assert window.overlay_panel.context_box.isEnabled()
    window.regions_panel.refresh()
    decided = state.decision_map()
    assert [r.n_patches for r in window.regions_panel.regions] == [
        r.n_patches for r in find_regions(decided, CONTEXT_THRESHOLD)
    ]

    # the Grad-CAM panel names both numbers: the patch's own score and its context value
    cell = tuple(int(v) for v in np.argwhere(~np.isnan(raw))[0][::-1])
    with qtbot.waitSignal(window.inspection.gradcam_shown, timeout=10_000):
        window.inspection.inspect_cell(cell)
    text = window.gradcam_panel.probability_label.text()
    assert "patch" in text and f"context {expected[cell[1], cell[0]]:.3f}" in text

    # the toggle: each patch's own CNN probability, at the patch threshold
    window.overlay_panel.context_box.setChecked(False)
    assert not state.context_active() and state.threshold == pytest.approx(PATCH_THRESHOLD)
    np.testing.assert_allclose(shown_probabilities(window), raw, atol=0, equal_nan=True)
    window.regions_panel.refresh()
    assert [r.n_patches for r in window.regions_panel.regions] == [
        r.n_patches for r in find_regions(state.heatmap, PATCH_THRESHOLD)
    ]
    window.overlay_panel.context_box.setChecked(True)
    np.testing.assert_allclose(shown_probabilities(window), expected, atol=1e-6, equal_nan=True)


def test_a_model_without_context_shows_its_patch_map_and_disables_the_toggle(
    qtbot, make_window, slide_file
) -> None:
    window = make_window(model=FakeModel())
    assert window.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, window) == "done"
    assert not window.overlay_panel.context_box.isEnabled()
    assert window.state.decision_map() is window.state.heatmap
    np.testing.assert_array_equal(shown_probabilities(window), window.state.heatmap.probabilities)


def test_the_gui_export_writes_the_context_decision_and_the_patch_probability(
    qtbot, make_window, slide_file, tmp_path: Path
) -> None:
    import csv

    from idc_viewer.qt.export_controller import export_results

    window = make_window(model=context_model())
    assert window.slides.open_path(str(slide_file))
    assert run_analysis(qtbot, window) == "done"
    paths = export_results(window.state, tmp_path / "out")
    patches_csv = next(p for p in paths if p.name.endswith(".patches.csv"))
    with open(patches_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    raw = window.state.heatmap.probabilities
    expected = context_probabilities(raw, SIGMA)
    for row in rows[:50]:
        c, r = int(row["col"]), int(row["row"])
        assert float(row["probability"]) == pytest.approx(float(expected[r, c]), abs=1e-6)
        assert float(row["patch_probability"]) == pytest.approx(float(raw[r, c]), abs=1e-6)
