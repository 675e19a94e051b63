"""Training the paper's CNN with the paper's recipe, checkpointed every epoch and resumable.

A run lives in one folder: ``config.json`` (:class:`~training.config.TrainConfig`),
``split.json`` (patients per split, :mod:`training.run_data`), ``last.keras`` (model +
optimizer after the latest epoch), ``best.weights.h5``, ``state.json`` (epoch, history,
early-stopping and LR-plateau counters: :class:`~training.run_state.RunState`). ``resume=True``
continues from there, so a run can outlive a working session.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from training.callbacks import (
    Event,
    console_report,
    epoch_callbacks,
    recalibrated_validation,
    restored_counters,
)
from training.config import CONFIG_FILE, PRESETS, TrainConfig
from training.pipeline import clean_training_batches, make_datasets, set_threads
from training.run_data import prepare_data
from training.run_state import BEST_WEIGHTS, LAST_MODEL, STATE_FILE, RunState


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    report: Callable[[Event], None] | None = None,
    log: Callable[[str], None] = print,
) -> RunState:
    """Train (or resume) a run; returns the final state. Best weights end in ``best.weights.h5``."""
    if config.preset not in PRESETS:
        raise ValueError(f"Unknown preset {config.preset!r}; choose one of {sorted(PRESETS)}.")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = _run_config(config, resume)
    report = report or console_report(log)

    set_threads()
    import keras

    keras.utils.set_random_seed(config.seed)
    data = prepare_data(config, log)
    train_ds, val_ds, weights = make_datasets(config, data)
    callbacks = epoch_callbacks(config, report)
    es, plateau, checkpoint = callbacks
    validation_data = val_ds
    if config.recalibrate_bn:
        validation_data = None  # validated by the callback, after re-estimating BN statistics
        callbacks = [
            recalibrated_validation(clean_training_batches(config, data), val_ds),
            *callbacks,
        ]
    resumable = (run_dir / STATE_FILE).exists() and (run_dir / LAST_MODEL).exists()
    if resume and resumable:
        state = RunState.read(run_dir)
        model = _resume(config, state, es, plateau, checkpoint)
        initial_epoch = state.epoch + 1
        if es.wait >= es.patience or initial_epoch >= config.epochs:
            log("run already finished; nothing to resume")
            return state
        log(f"resuming at epoch {initial_epoch + 1}")
        # ES keeps its own "wait" but Keras resets it in on_train_begin: re-apply after that
        callbacks = [*callbacks, restored_counters(es, plateau)]
    else:
        model, initial_epoch = _new_model(config), 0
    model.fit(
        train_ds,
        validation_data=validation_data,
        epochs=config.epochs,
        initial_epoch=initial_epoch,
        callbacks=callbacks,
        class_weight=weights,
        shuffle=False,  # tf.data shuffles (and resamples) each epoch itself
        verbose=0,
    )
    state = RunState.read(run_dir)
    state.finished = True
    state.write(run_dir)
    report({"event": "finished", "best_epoch": es.best_epoch + 1, "best_val_loss": float(es.best)})
    return state


def _run_config(config: TrainConfig, resume: bool) -> TrainConfig:
    """The config the run goes on with, recorded in its folder.

    A resumed run keeps its recipe; only its limits (epochs, patience) may be raised.
    """
    run_dir = Path(config.run_dir)
    if resume and (run_dir / CONFIG_FILE).exists():
        saved = TrainConfig.read(run_dir)
        saved.epochs = config.epochs
        saved.early_stopping_patience = max(
            config.early_stopping_patience, saved.early_stopping_patience
        )
        config = saved
    elif (run_dir / STATE_FILE).exists() and not resume:
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume or another folder.")
    config.write(run_dir)
    return config


def _new_model(config: TrainConfig) -> Any:
    """The paper's network, compiled with Adam and binary cross-entropy."""
    import keras

    from idc_viewer.ml.model_def import build_model

    model = build_model(config.input_size, l2=config.l2)
    model.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss="binary_crossentropy",
        metrics=["accuracy", keras.metrics.AUC(name="auc")],
    )
    return model


def _resume(config: TrainConfig, state: RunState, es: Any, plateau: Any, checkpoint: Any) -> Any:
    """The last model of a run, with the callbacks' counters and history put back."""
    import keras

    from idc_viewer.ml.model_def import build_model

    run_dir = Path(config.run_dir)
    model = keras.saving.load_model(run_dir / LAST_MODEL, safe_mode=True)
    best = build_model(config.input_size, l2=config.l2)
    best.load_weights(run_dir / BEST_WEIGHTS)
    es.best, es.wait = state.early_stopping.best, state.early_stopping.wait
    es.best_epoch, es.best_weights = state.early_stopping.best_epoch, best.get_weights()
    plateau.best, plateau.wait = state.plateau.best, state.plateau.wait
    plateau.cooldown_counter = state.plateau.cooldown_counter
    checkpoint.history, checkpoint.epoch_times = state.history, state.epoch_times_s
    return model
