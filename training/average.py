"""Averaging the weights of a run's best epochs into one model of the same size (SWA-style).

A run trained with ``--keep-epoch-weights`` holds every epoch's weights in ``epochs/``. The
``top`` epochs with the lowest validation loss are averaged weight by weight, and the BatchNorm
statistics of the average (which no epoch ever had) are re-estimated on un-augmented training
patches. The result is written as a new run folder whose ``best.weights.h5`` is the average, so
``idc-train validate`` / ``evaluate`` treat it like any run: choosing it stays a validation-only
decision, and the app's speed is unchanged (same architecture, same 171,329 parameters).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from training.config import TrainConfig
from training.pipeline import clean_training_batches, reestimate_batchnorm, set_threads
from training.run_data import SPLIT_FILE, prepare_data
from training.run_state import BEST_WEIGHTS, STATE_FILE, RunState


def epoch_weight_files(run_dir: Path) -> dict[int, Path]:
    """Epoch number (1-based) -> its weights file, for a run kept with ``--keep-epoch-weights``."""
    found = {}
    for path in sorted((Path(run_dir) / "epochs").glob("epoch-*.weights.h5")):
        found[int(path.name.split("-")[1].split(".")[0])] = path
    return found


def best_epochs(val_loss: list[float], available: set[int], top: int) -> list[int]:
    """The ``top`` available epochs (1-based) with the lowest validation loss, in epoch order."""
    ranked = sorted((loss, epoch) for epoch, loss in enumerate(val_loss, 1) if epoch in available)
    return sorted(epoch for _, epoch in ranked[:top])


def average_run(
    run_dir: Path, out_dir: Path, *, top: int = 5, log: Callable[[str], None] = print
) -> Path:
    """Write ``out_dir``: a run whose best weights average ``run_dir``'s ``top`` best epochs."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if top < 2:
        raise ValueError(f"averaging needs at least 2 epochs, got top={top}")
    files = epoch_weight_files(run_dir)
    if len(files) < 2:
        raise FileNotFoundError(
            f"{run_dir} keeps no per-epoch weights: train it with --keep-epoch-weights."
        )
    if (out_dir / STATE_FILE).exists():
        raise FileExistsError(f"{out_dir} already holds a run; choose another folder.")
    config = TrainConfig.read(run_dir)
    state = RunState.read(run_dir)
    picked = best_epochs(state.history["val_loss"], set(files), top)

    set_threads()
    import keras

    from idc_viewer.ml.model_def import build_model

    model = build_model(config.input_size, l2=config.l2)
    total: list[np.ndarray] | None = None
    for epoch in picked:
        model.load_weights(files[epoch])
        weights = [np.asarray(w, dtype=np.float64) for w in model.get_weights()]
        total = weights if total is None else [a + b for a, b in zip(total, weights, strict=True)]
    assert total is not None
    model.set_weights([(w / len(picked)).astype(np.float32) for w in total])
    _reestimate_batchnorm(model, config, log)

    out_dir.mkdir(parents=True, exist_ok=True)
    averaged = replace(
        config,
        run_dir=str(out_dir),
        keep_epoch_weights=False,
        extra={**config.extra, "averaged_from": str(run_dir), "averaged_epochs": picked},
    )
    averaged.write(out_dir)
    shutil.copy(run_dir / SPLIT_FILE, out_dir / SPLIT_FILE)
    model.save_weights(out_dir / BEST_WEIGHTS)
    replace(state, finished=True, averaged_epochs=picked).write(out_dir)
    keras.backend.clear_session()
    log(f"averaged epochs {picked} of {run_dir} into {out_dir}")
    return out_dir


def _reestimate_batchnorm(model: object, config: TrainConfig, log: Callable[[str], None]) -> None:
    """BatchNorm statistics for the averaged weights, from un-augmented training patches."""
    data = prepare_data(config, log, splits=("train",))
    reestimate_batchnorm(model, clean_training_batches(config, data))
