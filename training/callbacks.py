"""The Keras callbacks of a run: the per-epoch checkpoint, BatchNorm refits, progress events.

The checkpoint is the resume point; the BatchNorm refit comes before validation.

Events are plain JSON objects (``{"event": "batch" | "epoch" | "finished", ...}``): the app's
Retrain dialog reads them from ``--progress-json``; the console gets one line per epoch.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from training.config import TrainConfig
from training.pipeline import reestimate_batchnorm
from training.run_state import (
    BEST_WEIGHTS,
    LAST_MODEL,
    EarlyStoppingState,
    PlateauState,
    RunState,
)

#: One progress event, as ``--progress-json`` prints it.
Event = dict[str, Any]


def recalibrated_validation(clean_batches: Any, val_ds: Any) -> Any:
    """A callback that re-estimates BatchNorm statistics, then validates (val_* logs).

    It must come before EarlyStopping and ReduceLROnPlateau: they read the same logs dict.
    """
    import keras

    class RecalibratedValidation(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            reestimate_batchnorm(self.model, clean_batches)
            results = self.model.evaluate(val_ds, verbose=0, return_dict=True)
            if logs is not None:
                logs.update({f"val_{name}": float(value) for name, value in results.items()})

    return RecalibratedValidation()


def epoch_callbacks(config: TrainConfig, report: Callable[[Event], None]) -> list[Any]:
    """``[EarlyStopping, ReduceLROnPlateau, Checkpoint]`` for a run of ``config``.

    The checkpoint saves, after every epoch, the best and last weights and the
    :class:`~training.run_state.RunState` (with both other callbacks' counters), and reports
    batch (at most once a second) and epoch events.
    """
    import keras

    run_dir = Path(config.run_dir)

    class Checkpoint(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
        """Saves model+optimizer and callback counters after every epoch (resume point)."""

        def __init__(self) -> None:
            super().__init__()
            self.history: dict[str, list[float]] = {}
            self.t_epoch = time.perf_counter()
            self.epoch_times: list[float] = []
            self.epoch = 0
            self.t_batch_report = self.t_epoch

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.t_epoch = time.perf_counter()
            self.epoch = epoch
            self.t_batch_report = self.t_epoch

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            # progress within an epoch for the app's Retrain dialog, at most once a second
            now = time.perf_counter()
            if now - self.t_batch_report < 1.0:
                return
            self.t_batch_report = now
            steps = self.params.get("steps") if isinstance(self.params, dict) else None
            report(
                {
                    "event": "batch",
                    "epoch": self.epoch + 1,
                    "epochs": config.epochs,
                    "batch": batch + 1,
                    "batches": steps,
                    "seconds": now - self.t_epoch,
                }
            )

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            logs = dict(logs or {})
            logs["learning_rate"] = float(
                keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
            )
            for key, value in logs.items():
                self.history.setdefault(key, []).append(float(value))
            self.epoch_times.append(time.perf_counter() - self.t_epoch)
            self._save(epoch)
            mean_s = float(np.mean(self.epoch_times[-3:]))
            report(
                {
                    "event": "epoch",
                    "epoch": epoch + 1,
                    "epochs": config.epochs,
                    "seconds": self.epoch_times[-1],
                    "eta_s_max": mean_s * (config.epochs - epoch - 1),
                    "eta_s_patience": mean_s * max(0, config.early_stopping_patience - es.wait),
                    **{k: float(v) for k, v in logs.items()},
                }
            )

        def _save(self, epoch: int) -> None:
            if es.best_epoch == epoch or not (run_dir / BEST_WEIGHTS).exists():
                self.model.save_weights(run_dir / f"{BEST_WEIGHTS}.tmp.weights.h5")
                os.replace(run_dir / f"{BEST_WEIGHTS}.tmp.weights.h5", run_dir / BEST_WEIGHTS)
            if config.keep_epoch_weights:
                (run_dir / "epochs").mkdir(exist_ok=True)
                self.model.save_weights(run_dir / "epochs" / f"epoch-{epoch + 1:03d}.weights.h5")
            self.model.save(run_dir / "last.tmp.keras")
            os.replace(run_dir / "last.tmp.keras", run_dir / LAST_MODEL)
            RunState(
                epoch=epoch,
                history=self.history,
                epoch_times_s=self.epoch_times,
                early_stopping=EarlyStoppingState(float(es.best), es.wait, es.best_epoch),
                plateau=PlateauState(float(plateau.best), plateau.wait, plateau.cooldown_counter),
            ).write(run_dir)

    es = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=config.plateau_patience, min_lr=1e-6
    )
    return [es, plateau, Checkpoint()]


def restored_counters(es: Any, plateau: Any) -> Any:
    """A callback that puts back the counters a resumed run had (Keras resets them at start)."""
    import keras

    saved_es = (es.best, es.wait, es.best_epoch, es.best_weights)
    saved_plateau = (plateau.best, plateau.wait, plateau.cooldown_counter)

    class RestoreCounters(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
        def on_train_begin(self, logs: Any = None) -> None:
            es.best, es.wait, es.best_epoch, es.best_weights = saved_es
            plateau.best, plateau.wait, plateau.cooldown_counter = saved_plateau

    return RestoreCounters()


def console_report(log: Callable[[str], None]) -> Callable[[Event], None]:
    """The console gets epochs; per-batch progress is for ``--progress-json`` (the app)."""

    def report(event: Event) -> None:
        if event.get("event") != "batch":
            log(format_event(event))

    return report


def format_event(event: Event) -> str:
    """One console line for an event (an epoch with its figures and ETA)."""
    if event.get("event") != "epoch":
        return " ".join(f"{k}={v}" for k, v in event.items())
    eta = min(event["eta_s_max"], event["eta_s_patience"])

    def fmt(seconds: float) -> str:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s" if math.isfinite(seconds) else "?"

    return (
        f"epoch {event['epoch']}/{event['epochs']} {fmt(event['seconds'])} "
        f"loss {event.get('loss', float('nan')):.4f} acc {event.get('accuracy', 0):.4f} "
        f"val_loss {event.get('val_loss', float('nan')):.4f} "
        f"val_acc {event.get('val_accuracy', 0):.4f} val_auc {event.get('val_auc', 0):.4f} "
        f"lr {event.get('learning_rate', 0):.2e} | ETA if early-stopped ~{fmt(eta)}, "
        f"at most {fmt(event['eta_s_max'])}"
    )
