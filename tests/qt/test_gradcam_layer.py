"""The Grad-CAM layer (offscreen): maps painted on the visible patches' exact footprints,
computed newest request first, bounded in memory, only when patches are large on screen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import threading
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # app_fakes, under --import-mode=importlib
from app_fakes import FakeExplainer, FakeModel, fake_explainer, tissue_slide

from idc_viewer.core.colormap import colormap_lut
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.patches import make_grid
from idc_viewer.core.view_geometry import ViewTransform
from idc_viewer.engine.gradcam_layer import GRADCAM_COLORMAP, CellCam
from idc_viewer.engine.provenance import ModelRef
from idc_viewer.engine.session import SlideSession
from idc_viewer.qt.gradcam_controller import GradCamLayerController
from idc_viewer.qt.image_convert import qimage_for_painting
from idc_viewer.qt.state import AppState
from idc_viewer.qt.viewer.gradcam_layer import CamTile, GradCamLayer, GradCamLoader

#: Analysed cells (cols, rows) inside the red tissue block of the two-region slide.
COLS, ROWS = range(2, 10), range(2, 8)


@pytest.fixture
def scene(qtbot, make_view):  # type: ignore[no-untyped-def]
    slide = tissue_slide()  # 1200 x 800 px at 4 µm/px: a patch is 50 level-0 px
    grid = make_grid(slide.info)
    probabilities = np.full(grid.shape, np.nan, np.float32)
    for col in COLS:
        for row in ROWS:
            probabilities[row, col] = 0.8
    heatmap = Heatmap(grid, probabilities)
    state = AppState()
    model = FakeModel()
    state.set_model(model, "fake.keras")  # type: ignore[arg-type]
    state.set_session(SlideSession(slide, None, "f" * 64))
    view = make_view(slide, 400, 300)
    controller = GradCamLayerController(view, state, fake_explainer)
    state.set_heatmap(heatmap, ModelRef(model.spec.name, model.spec.model_hash))
    view.set_heatmap(heatmap)
    yield view, controller, grid
    controller.shutdown()


def view_rect(view, grid, cell):  # type: ignore[no-untyped-def]
    x, y, w, h = grid.l0_rect(*cell)
    t = view.view_transform()
    x0, y0 = t.view_from_l0(x, y)
    x1, y1 = t.view_from_l0(x + w, y + h)
    return x0, y0, x1, y1


def test_layer_paints_each_visible_patch_on_its_footprint(qtbot, scene, grab) -> None:  # type: ignore[no-untyped-def]
    view, controller, grid = scene
    # 2 view px per level-0 px: a patch is 100 px; cells (1..5, 2..5) on screen
    view.set_view_transform(ViewTransform(l0_origin_x=60.0, l0_origin_y=110.0, view_px_per_l0=2.0))
    controller.set_mode("none")
    qtbot.waitUntil(lambda: view.pending_tiles() == 0, timeout=10_000)  # the sharp tiles
    base = grab(view).astype(int)
    with qtbot.waitSignal(controller.filled, timeout=10_000):
        controller.set_mode("gradcam")
    assert not controller.pending_cells() and view.pending_tiles() == 0
    painted = grab(view).astype(int)
    hot = np.array(colormap_lut(GRADCAM_COLORMAP)[255], int)
    opacity = controller.layer.opacity
    checked = 0
    for col in range(1, 6):
        for row in range(2, 6):
            x0, y0, x1, y1 = view_rect(view, grid, (col, row))
            if x0 < 0 or y0 < 0 or x1 > view.width() or y1 > view.height():
                continue
            lit = (int(x0 + 0.1 * (x1 - x0)), int((y0 + y1) / 2))  # left: map = 1
            dark = (int(x0 + 0.9 * (x1 - x0)), int((y0 + y1) / 2))  # right: map = 0
            if col in COLS and row in ROWS:
                want = base[lit[1], lit[0]] * (1 - opacity) + hot * opacity
                assert np.abs(painted[lit[1], lit[0]] - want).max() <= 8, (col, row)
                checked += 1
            else:  # not analysed (background): nothing painted
                assert np.abs(painted[lit[1], lit[0]] - base[lit[1], lit[0]]).max() <= 1
            assert np.abs(painted[dark[1], dark[0]] - base[dark[1], dark[0]]).max() <= 3
    assert checked >= 4
    # the footprint's left edge: painted just inside cell (2, 3), not in cell (1, 3) beside it
    x0, y0, _, y1 = view_rect(view, grid, (2, 3))
    y = int((y0 + y1) / 2)
    inside, outside = round(x0) + 1, round(x0) - 2
    assert np.abs(painted[y, inside] - base[y, inside]).max() > 40
    assert np.abs(painted[y, outside] - base[y, outside]).max() <= 1


def test_layer_waits_for_large_patches_and_follows_the_mode(qtbot, scene) -> None:  # type: ignore[no-untyped-def]
    view, controller, _grid = scene
    view.fit()  # a patch is ~17 px: no map is computed
    assert not controller.active and controller.pending_cells() == []
    qtbot.wait(100)
    assert len(controller.layer) == 0
    controller.set_mode("heatmap")
    assert view._overlay.visible and not controller.layer.visible
    controller.set_mode("both")
    assert view._overlay.visible and controller.layer.visible
    with pytest.raises(ValueError):
        controller.set_mode("sideways")


def test_a_new_model_empties_the_layer(qtbot, scene) -> None:  # type: ignore[no-untyped-def]
    view, controller, _grid = scene
    view.set_view_transform(ViewTransform(l0_origin_x=60.0, l0_origin_y=110.0, view_px_per_l0=2.0))
    qtbot.waitUntil(
        lambda: len(controller.layer) > 0 and not controller.pending_cells(), timeout=10_000
    )
    controller.state.set_model(FakeModel(), "other.keras")  # type: ignore[arg-type]
    assert len(controller.layer) == 0  # never the other model's maps


def test_loader_drops_a_replaced_request(qtbot) -> None:  # type: ignore[no-untyped-def]
    slide = tissue_slide()
    grid = make_grid(slide.info)
    gate, started = threading.Event(), threading.Event()

    class GatedExplainer(FakeExplainer):
        def compute_batch(self, patches):  # type: ignore[no-untyped-def]
            started.set()
            gate.wait(10)
            return super().compute_batch(patches)

    loader = GradCamLoader(lambda model: GatedExplainer(model))
    got: list[tuple[int, int]] = []
    loader.tiles_ready.connect(lambda _c, _g, tiles: got.extend(t.cam.cell for t in tiles))
    try:
        loader.set_context(1, FakeModel())
        old = [(c, r) for r in range(4) for c in range(10)]  # 40 cells, 5 batches
        new = [(c, 10) for c in range(8)]
        loader.request(slide, grid, old)
        assert started.wait(10)
        loader.request(slide, grid, new)  # the user moved on while the first batch ran
        gate.set()
        qtbot.waitUntil(lambda: loader.idle and len(got) >= 16, timeout=10_000)
        qtbot.wait(50)
        assert sorted(got[8:]) == sorted(new)  # then only the new viewport's cells
        assert len(got) == 16 and loader.dropped_batches == 1
    finally:
        gate.set()
        loader.shutdown()


def test_cache_is_bounded_in_bytes() -> None:
    layer = GradCamLayer(max_bytes=3 * 64 * 64 * 4)
    image = qimage_for_painting(np.zeros((64, 64, 4), np.uint8))
    low = np.zeros((6, 6), np.float32)
    layer.add([CamTile(CellCam((i, 0), low, 0.5), image) for i in range(10)])
    assert len(layer) == 3 and layer.bytes_used <= layer.max_bytes
    assert layer.tile((9, 0)) is not None and layer.tile((0, 0)) is None  # oldest evicted


def test_colour_scale_shows_the_layer_colours_on_white(qtbot) -> None:  # type: ignore[no-untyped-def]
    from idc_viewer.qt.viewer.gradcam_legend import GradCamLegend

    legend = GradCamLegend()
    qtbot.addWidget(legend)
    low, high = legend.color_at(0.0), legend.color_at(1.0)
    assert (low.red(), low.green(), low.blue()) == (255, 255, 255)  # 0 is clear
    hot = colormap_lut(GRADCAM_COLORMAP)[255]
    assert (high.red(), high.green(), high.blue()) == tuple(int(v) for v in hot)
    assert "clear below" not in legend.note()  # not the heatmap's floor
