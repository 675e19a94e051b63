"""Averaging the weights of a run's best epochs into one model of the same size (SWA-style).

A run trained with ``--keep-epoch-weights`` holds every epoch's weights in ``epochs/``. The
``top`` epochs with the lowest validation loss are averaged weight by weight, and the BatchNorm
statistics of the average (which no epoch ever had) are re-estimated on un-augmented training
patches. The result is written as a new run folder whose ``best.weights.h5`` is the average, so
``idc-train validate`` / ``evaluate`` treat it like any run: choosing it stays a validation-only
decision, and the app's speed is unchanged (same architecture, same 171,329 parameters).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from training.train import (
    TrainConfig,
    clean_training_batches,
    prepare_data,
    set_threads,
)


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
    if (out_dir / "state.json").exists():
        raise FileExistsError(f"{out_dir} already holds a run; choose another folder.")
    config = TrainConfig(**json.loads((run_dir / "config.json").read_text()))
    state = json.loads((run_dir / "state.json").read_text())
    picked = best_epochs(state["history"]["val_loss"], set(files), top)

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
    (out_dir / "config.json").write_text(json.dumps(asdict(averaged), indent=2))
    shutil.copy(run_dir / "split.json", out_dir / "split.json")
    model.save_weights(out_dir / "best.weights.h5")
    state = {**state, "finished": True, "averaged_epochs": picked}
    (out_dir / "state.json").write_text(json.dumps(state, indent=1))
    keras.backend.clear_session()
    log(f"averaged epochs {picked} of {run_dir} into {out_dir}")
    return out_dir


def _reestimate_batchnorm(model: object, config: TrainConfig, log: Callable[[str], None]) -> None:
    """BatchNorm statistics for the averaged weights, from un-augmented training patches."""
    import keras

    data = prepare_data(config, log, splits=("train",))
    norms = [
        layer
        for layer in model.layers  # type: ignore[attr-defined]
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.9
    for batch in clean_training_batches(config, data):
        model(batch, training=True)  # type: ignore[operator]
    for layer, momentum in zip(norms, momenta, strict=True):
        layer.momentum = momentum
