"""Panels and dialogs on their own: overlay, model, analysis text, retrain, helpers."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QMessageBox

sys.path.insert(0, str(Path(__file__).parent))  # app_fakes, under --import-mode=importlib
from app_fakes import FakeModel, fake_spec, tissue_slide

from idc_viewer.core.jobs import Progress
from idc_viewer.core.patches import make_grid
from idc_viewer.qt.actions import push_recent
from idc_viewer.qt.panels.analysis_panel import progress_text
from idc_viewer.qt.panels.model_panel import ModelPanel
from idc_viewer.qt.panels.overlay_panel import OverlayPanel
from idc_viewer.qt.panels.retrain_dialog import RetrainDialog, parse_event
from idc_viewer.qt.state import AppState


def test_progress_text_has_rate_and_eta() -> None:
    text = progress_text(Progress(1024, 4096, rate_per_s=1500.0, eta_s=65.0))
    assert text == "1,500 patches/s · ETA 1:05"


def test_overlay_threshold_slider_and_state_agree(qtbot) -> None:
    state = AppState()
    panel = OverlayPanel(state)
    qtbot.addWidget(panel)
    panel.threshold_slider.setValue(70)
    assert state.threshold == pytest.approx(0.7)
    state.set_threshold(0.25)
    assert panel.threshold_slider.value() == 25 and "0.25" in panel.threshold_label.text()
    with qtbot.waitSignal(panel.opacity_changed) as blocker:
        panel.opacity_slider.setValue(80)
    assert blocker.args == [pytest.approx(0.8)]
    assert panel.mode == "both"
    with qtbot.waitSignal(panel.visible_changed) as blocker:
        panel.toggle_heatmap()  # H: the heatmap off, Grad-CAM stays
    assert blocker.args == [False] and panel.mode == "gradcam"
    with qtbot.waitSignal(panel.mode_changed) as mode_blocker:
        panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("none"))
    assert mode_blocker.args == ["none"]
    panel.toggle_heatmap()
    assert panel.mode == "heatmap"
    with qtbot.waitSignal(panel.gradcam_opacity_changed) as blocker:
        panel.gradcam_opacity_slider.setValue(30)
    assert blocker.args == [pytest.approx(0.3)]


def test_a_borrowed_threshold_returns_to_the_loaded_models_on_the_next_slide() -> None:
    state = AppState()
    state.set_model(FakeModel(spec=fake_spec(threshold=0.3)), "fake.keras")  # type: ignore[arg-type]
    state.borrow_threshold(0.7)  # another model's stored heatmap on display
    assert state.threshold == pytest.approx(0.7) and state.threshold_borrowed
    state.set_session(None)
    assert state.threshold == pytest.approx(0.3) and not state.threshold_borrowed
    state.set_threshold(0.6)  # the user's own choice is not "borrowed": it stays
    state.set_session(None)
    assert state.threshold == pytest.approx(0.6)


def test_model_panel_shows_name_hash_and_held_out_figures(qtbot) -> None:
    state = AppState()
    panel = ModelPanel(state)
    qtbot.addWidget(panel)
    assert panel.name_label.text() == "no model loaded"
    state.set_model(FakeModel(), "fake.keras")  # type: ignore[arg-type]
    assert panel.name_label.text().startswith("fake")
    assert panel.hash_label.text() == "a" * 16
    assert "ROC AUC 0.91" in panel.metrics_label.text()
    assert "balanced accuracy 0.84" in panel.metrics_label.text().lower()
    assert "_" not in panel.metrics_label.text()  # words, not raw keys


def test_push_recent_dedupes_and_limits() -> None:
    assert push_recent(["a", "b", "c"], "b") == ["b", "a", "c"]
    assert push_recent([str(i) for i in range(10)], "new", limit=3) == ["new", "0", "1"]


def test_parse_event_ignores_plain_output() -> None:
    assert parse_event('{"event": "epoch", "epoch": 1}') == {"event": "epoch", "epoch": 1}
    assert parse_event("Epoch 1/3 ...") is None
    assert parse_event("{broken") is None


def fake_training(script: str):  # type: ignore[no-untyped-def]
    """A command factory running ``script`` with this Python instead of the training package."""

    def command(
        data: str, run_dir: str, epochs: int, resume: bool, paper_recipe: bool
    ) -> tuple[str, list[str]]:
        return sys.executable, ["-c", textwrap.dedent(script), data, run_dir, str(epochs)]

    return command


def retrain_dialog(qtbot, runs_root: Path, script: str, data: Path) -> RetrainDialog:  # type: ignore[no-untyped-def]
    """A retrain dialog whose training runs ``script``, with ``data`` as its patches folder."""
    dialog = RetrainDialog(runs_root, command=fake_training(script))
    qtbot.addWidget(dialog)
    dialog.data_edit.setText(str(data))
    return dialog


def test_retrain_command_is_a_valid_idc_train_call_with_the_bundled_or_the_paper_recipe() -> None:
    from idc_viewer.qt.panels.retrain_dialog import training_command
    from training.cli import _parser

    _, bundled = training_command("data", "runs/x", 30, False)
    assert bundled[:2] == ["-m", "training"]
    args = _parser().parse_args(bundled[2:])
    assert (args.jpeg_quality, args.dihedral, args.patience, args.epochs) == (70, True, 10, 30)
    _, paper = training_command("data", "runs/x", 30, True, paper_recipe=True)
    args = _parser().parse_args(paper[2:])
    assert (args.jpeg_quality, args.dihedral, args.patience, args.resume) == (0, False, 5, True)


TRAINING_SCRIPT = """
    import json, sys, time
    data, run_dir, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print("TensorFlow noise on stdout", flush=True)
    print(json.dumps({"event": "log", "message": "loading " + data}), flush=True)
    for e in range(1, epochs + 1):
        print(json.dumps({"event": "epoch", "epoch": e, "epochs": epochs, "loss": 0.5 / e,
                          "val_loss": 0.6 / e, "eta_s_max": 10.0 * (epochs - e)}), flush=True)
    print(json.dumps({"event": "exported", "spec": run_dir + "/model.spec.json"}), flush=True)
"""


def test_retrain_dialog_runs_training_and_offers_the_new_model(qtbot, tmp_path, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    dialog = retrain_dialog(qtbot, tmp_path / "runs", TRAINING_SCRIPT, data=tmp_path)
    dialog.epochs_spin.setValue(3)
    with qtbot.waitSignal(dialog.model_exported, timeout=20_000) as blocker:
        dialog.start()
    assert blocker.args[0].endswith("model.spec.json")
    assert dialog.progress_bar.value() == 3 and dialog.progress_bar.maximum() == 3
    log = dialog.log.toPlainText()
    assert "epoch 3/3" in log and "val_loss 0.2000" in log
    assert "TensorFlow noise" in log and "loading " in log
    assert dialog.start_button.isEnabled() and not dialog.cancel_button.isEnabled()


def test_retrain_error_event_is_shown(qtbot, tmp_path, monkeypatch) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda _p, _t, text, *a: warnings.append(text))
    script = (
        "import json, sys; print(json.dumps({'event': 'error', 'message': 'no patients'}));"
        " sys.exit(1)"
    )
    dialog = retrain_dialog(qtbot, tmp_path, script, data=tmp_path)
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.running, timeout=20_000)
    qtbot.waitUntil(lambda: bool(warnings), timeout=5_000)
    assert "no patients" in warnings[0]


def test_retrain_cancel_kills_the_process(qtbot, tmp_path) -> None:
    script = (
        "import json, time\nfor e in range(1, 1000):\n"
        "    print(json.dumps({'event': 'epoch', 'epoch': e, 'epochs': 999}), flush=True)\n"
        "    time.sleep(0.2)\n"
    )
    dialog = retrain_dialog(qtbot, tmp_path, script, data=tmp_path)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.progress_bar.value() >= 1, timeout=20_000)
    dialog.cancel_button.click()
    assert not dialog.running
    assert "Cancelled" in dialog.log.toPlainText()


def test_demo_slide_path_explains_when_missing(tmp_path: Path) -> None:
    from idc_viewer.app import DemoMissingError, demo_slide_path

    with pytest.raises(DemoMissingError, match="No demo slide") as missing:
        demo_slide_path(tmp_path)
    # the advice names a command that exists
    assert "idc-train assemble-slide" in str(missing.value)
    from training.cli import main as idc_train

    with pytest.raises(SystemExit) as help_exit:
        idc_train(["assemble-slide", "--help"])
    assert help_exit.value.code == 0
    (tmp_path / "demo.tiff").write_bytes(b"x")
    assert demo_slide_path(tmp_path) == tmp_path / "demo.tiff"


def test_gradcam_view_with_a_real_small_model(tmp_path: Path) -> None:
    """The real chain: saved random model -> load_model -> Grad-CAM of a slide patch."""
    from idc_viewer.engine.explain import explain_cell
    from idc_viewer.ml.loading import load_model
    from idc_viewer.ml.model_def import build_model
    from idc_viewer.ml.saving import save_model
    from idc_viewer.qt.panels.gradcam_dock import position_text

    spec_path = save_model(build_model(50), fake_spec("tiny"), tmp_path, tflite=False)
    model = load_model(spec_path)
    slide = tissue_slide()
    grid = make_grid(slide.info)
    view = explain_cell(slide, grid, (5, 5), model)
    assert view.patch.shape == (50, 50, 3) and view.overlay.shape == (50, 50, 3)
    assert view.cam.shape == (50, 50) and view.cam.min() >= 0.0 and view.cam.max() <= 1.0
    assert 0.0 <= view.probability <= 1.0
    assert view.full.shape[:2] == (50, 50)  # 4 µm/px slide: the footprint is 50 px
    assert "µm" in position_text(view)
    assert json.loads(spec_path.read_text())["name"] == "tiny"
    assert np.isfinite(view.cam).all()
