"""Averaging a run's best epochs: the right epochs, the mean weights, BN re-estimated."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from training.average import average_run, best_epochs
from training.config import TrainConfig


def test_best_epochs_are_the_lowest_validation_losses_among_those_kept() -> None:
    val_loss = [0.9, 0.5, 0.4, 0.6, 0.45, 0.7]
    assert best_epochs(val_loss, {1, 2, 3, 4, 5, 6}, 3) == [2, 3, 5]
    assert best_epochs(val_loss, {1, 4, 6}, 2) == [4, 6]


def test_average_run_writes_a_run_with_the_mean_of_the_best_epochs(
    shared_data: Path, tmp_path: Path
) -> None:
    import keras

    from idc_viewer.ml.model_def import build_model

    source = tmp_path / "run"
    (source / "epochs").mkdir(parents=True)
    config = TrainConfig(
        data_dir=str(shared_data / "idc"),
        run_dir=str(source),
        max_patients=6,
        keep_epoch_weights=True,
    )
    (source / "config.json").write_text(json.dumps(asdict(config)))
    patients = sorted(p.name for p in (shared_data / "idc").iterdir())[:6]
    (source / "split.json").write_text(
        json.dumps({"train": patients[:4], "validation": patients[4:5], "test": patients[5:]})
    )
    state = {  # as the checkpoint writes it (training.run_state.RunState)
        "epoch": 2,
        "history": {"val_loss": [0.7, 0.3, 0.5]},
        "epoch_times_s": [1.0, 1.0, 1.0],
        "early_stopping": {"best": 0.3, "wait": 1, "best_epoch": 1},
        "plateau": {"best": 0.3, "wait": 1, "cooldown_counter": 0},
    }
    (source / "state.json").write_text(json.dumps(state))
    kernels = []
    for epoch in (1, 2, 3):
        keras.utils.set_random_seed(epoch)
        model = build_model(50)
        model.save_weights(source / "epochs" / f"epoch-{epoch:03d}.weights.h5")
        kernels.append(model.get_layer("separable_conv2d").get_weights()[0])

    out = average_run(source, tmp_path / "averaged", top=2, log=lambda message: None)
    averaged = build_model(50)
    averaged.load_weights(out / "best.weights.h5")
    # epochs 2 and 3 have the lowest validation losses
    np.testing.assert_allclose(
        averaged.get_layer("separable_conv2d").get_weights()[0],
        (kernels[1] + kernels[2]) / 2,
        rtol=1e-6,
        atol=1e-7,
    )
    norm = averaged.get_layer("batch_normalization")
    moving_mean = norm.get_weights()[2]
    assert not np.allclose(moving_mean, 0.0)  # re-estimated on real patches, not the init's 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["run_dir"] == str(out) and saved["extra"]["averaged_epochs"] == [2, 3]
    assert json.loads((out / "state.json").read_text())["finished"]
    with pytest.raises(FileExistsError):
        average_run(source, out, top=2)
    with pytest.raises(ValueError):
        average_run(source, tmp_path / "other", top=1)
