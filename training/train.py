"""Training the paper's CNN with the paper's recipe, checkpointed every epoch and resumable.

A run lives in one folder: ``config.json``, ``split.json`` (patients per split), ``last.keras``
(model + optimizer after the latest epoch), ``best.weights.h5``, ``state.json`` (epoch, history,
early-stopping and LR-plateau counters). ``resume=True`` continues from there, so a run can
outlive a working session.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from training.data import (
    COMPLETE_PATIENTS,
    COMPLETE_STRATUM,
    Dataset,
    load_patches,
    scan_dataset,
    split_patients,
    undersample,
    write_split,
)

PRESETS: dict[str, dict[str, Any]] = {
    # exactly the paper: 50x50 patches resized to 128x128
    "paper": {"input_size": 128, "resize_interpolation": "bilinear"},
    # native resolution: the 50x50 patch as it is, ~6x cheaper per patch
    "native": {"input_size": 50, "resize_interpolation": "none"},
}
LARGE_PATIENT_PATCHES = 200  # patients with more patches are (near-)complete slides: stratify on it


def _stratum(patient: str, n_patches: int) -> str:
    """Complete slides, other large (near-complete) patients, and sampled ones split apart."""
    if patient in COMPLETE_PATIENTS:
        return COMPLETE_STRATUM
    return "large" if n_patches > LARGE_PATIENT_PATCHES else "sampled"


@dataclass
class TrainConfig:
    data_dir: str
    run_dir: str
    preset: str = "native"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    l2: float = 1e-4
    seed: int = 42
    # "undersample" (paper: one fixed balanced subset) | "resample" (a fresh balanced subset of
    # the majority class every epoch, so all patches are used) | "class-weights" | "none"
    balance: str = "undersample"
    stain_jitter: float = 0.0
    hed_jitter: float = 0.0
    dihedral: bool = False
    # 0 = off; else half the training patches JPEG-recompressed at a quality from this to 100
    jpeg_quality: int = 0
    # re-estimate BatchNorm statistics on un-augmented training patches before each validation:
    # statistics gathered on augmented batches do not fit clean slides, which makes val_loss
    # (and so early stopping and the LR schedule) jump from epoch to epoch
    recalibrate_bn: bool = False
    # keep every epoch's weights in epochs/ (for averaging the best epochs: idc-train average)
    keep_epoch_weights: bool = False
    max_patients: int | None = None  # a small real subset (CI)
    early_stopping_patience: int = 5
    plateau_patience: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        return int(PRESETS[self.preset]["input_size"])


@dataclass
class SplitArrays:
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]
    patients: dict[str, list[str]]
    records: dict[str, list[Any]]
    skipped: int


SPLITS = ("train", "validation", "test")


def prepare_data(
    config: TrainConfig, log: Callable[[str], None] = print, splits: Sequence[str] = SPLITS
) -> SplitArrays:
    """Scan, split by patient (reusing the run's split.json if present), decode patches.

    ``splits`` limits which splits are decoded, e.g. validation only when choosing between runs.
    """
    run_dir = Path(config.run_dir)
    dataset: Dataset = scan_dataset(Path(config.data_dir))
    split_file = run_dir / "split.json"
    if split_file.exists():
        split = {k: v for k, v in json.loads(split_file.read_text()).items() if k in SPLITS}
    elif dataset.preset_split is not None:
        split = {
            name: sorted(p for p, s in dataset.preset_split.items() if s == name)
            for name in ("train", "validation", "test")
        }
    else:
        patients = dataset.patients
        if config.max_patients:
            rng = np.random.default_rng(config.seed)
            patients = sorted(
                rng.choice(
                    patients, min(config.max_patients, len(patients)), replace=False
                ).tolist()
            )
        counts: dict[str, int] = {}
        for rec in dataset.records:
            counts[rec.patient] = counts.get(rec.patient, 0) + 1
        strata = {p: _stratum(p, counts[p]) for p in patients}
        split = split_patients(patients, seed=config.seed, strata=strata)
        complete = sorted(p for p in patients if strata[p] == COMPLETE_STRATUM)
        write_split(
            split,
            split_file,
            seed=config.seed,
            layout=dataset.layout,
            complete_patients=complete,
            large_patients=sorted(p for p in patients if strata[p] != "sampled"),
        )
    by_patient: dict[str, list[Any]] = {}
    for rec in dataset.records:
        by_patient.setdefault(rec.patient, []).append(rec)
    x, y, records = {}, {}, {}
    skipped = 0
    for name, members in split.items():
        if name not in splits:
            continue
        recs = [r for p in members for r in by_patient.get(p, [])]
        x[name], y[name], kept, n_skipped = load_patches(recs)
        records[name] = [recs[i] for i in kept]
        skipped += n_skipped
        log(
            f"{name}: {len(members)} patients, {len(y[name])} patches "
            f"({int(y[name].sum())} IDC), {n_skipped} undecodable skipped"
        )
    if "train" in splits and (len(y["train"]) == 0 or len(np.unique(y["train"])) < 2):
        from training.data import DatasetError

        raise DatasetError("The training split needs patches of both classes (0 and 1).")
    return SplitArrays(x, y, split, records, skipped)


def set_threads() -> None:
    import tensorflow as tf

    # measured: intra-op 2 / inter-op 1 is fastest on the 2-core machine (STACK-NOTES)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(
            int(os.environ.get("IDC_TF_THREADS", 2))
        )
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised in this process


def rescaler(size: int) -> Callable[[Any], Any]:
    """uint8 batch -> float32 in [0, 1] at the model's input size (the paper's rescale)."""
    import tensorflow as tf

    def rescale(images: Any) -> Any:
        images = tf.cast(images, tf.float32) / 255.0
        if size != images.shape[1]:
            images = tf.image.resize(images, (size, size), method="bilinear")
        return images

    return rescale


def training_patches(x: np.ndarray, y: np.ndarray, balance: str, seed: int) -> Any:
    """The training (patch, label) stream of one epoch, before batching and augmentation."""
    import tensorflow as tf

    def shuffled(index: np.ndarray) -> Any:
        return tf.data.Dataset.from_tensor_slices((x[index], y[index].astype(np.float32))).shuffle(
            len(index), seed=seed, reshuffle_each_iteration=True
        )

    if balance != "resample":
        return shuffled(np.arange(len(y)))
    # both classes drawn with equal odds from endless reshuffled streams; an epoch is as long as
    # the paper's undersampled one, but each epoch sees a different slice of the majority class
    by_class = [np.flatnonzero(y == label) for label in (0, 1)]
    minority = min(len(index) for index in by_class)
    return tf.data.Dataset.sample_from_datasets(
        [shuffled(index).repeat() for index in by_class], [0.5, 0.5], seed=seed
    ).take(2 * minority)


def make_datasets(
    config: TrainConfig, data: SplitArrays
) -> tuple[Any, Any, dict[int, float] | None]:
    import tensorflow as tf

    from training.augment import build_augmenter
    from training.data import class_weights

    x_train, y_train = data.x["train"], data.y["train"]
    weights = None
    if config.balance == "undersample":
        keep = undersample(y_train, config.seed)
        x_train, y_train = x_train[keep], y_train[keep]
    elif config.balance == "class-weights":
        weights = class_weights(y_train)
    elif config.balance not in ("resample", "none"):
        raise ValueError(f"Unknown balance {config.balance!r}.")
    rescale = rescaler(config.input_size)
    augment = build_augmenter(
        config.seed, config.stain_jitter, config.hed_jitter, dihedral=config.dihedral
    )

    patches = training_patches(x_train, y_train, config.balance, config.seed)
    if config.jpeg_quality:
        from training.augment import jpeg_recompress

        patches = patches.map(
            lambda x, y: (jpeg_recompress(x, config.jpeg_quality), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    train = (
        patches.batch(config.batch_size)
        .map(lambda x, y: (augment(rescale(x)), y), num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(tf.data.AUTOTUNE)
    )
    val = (
        tf.data.Dataset.from_tensor_slices(
            (data.x["validation"], data.y["validation"].astype(np.float32))
        )
        .batch(256)
        .map(lambda x, y: (rescale(x), y))
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    return train, val, weights


RECALIBRATION_BATCHES = 64  # x 64 patches; with momentum 0.9 the old statistics weigh 0.1 %


def clean_training_batches(config: TrainConfig, data: SplitArrays) -> Any:
    """Un-augmented, class-balanced training batches for re-estimating BatchNorm statistics."""
    import tensorflow as tf

    keep = undersample(data.y["train"], config.seed)
    rescale = rescaler(config.input_size)

    return (
        tf.data.Dataset.from_tensor_slices(data.x["train"][keep])
        .shuffle(len(keep), seed=config.seed, reshuffle_each_iteration=True)
        .batch(64, drop_remainder=True)
        .take(RECALIBRATION_BATCHES)
        .map(rescale)
    )


def recalibrated_validation(clean_batches: Any, val_ds: Any) -> Any:
    """A callback that re-estimates BatchNorm statistics, then validates (val_* logs).

    It must come before EarlyStopping and ReduceLROnPlateau: they read the same logs dict.
    """
    import keras

    class RecalibratedValidation(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            norms = [
                layer
                for layer in self.model.layers
                if isinstance(layer, keras.layers.BatchNormalization)
            ]
            momenta = [layer.momentum for layer in norms]
            for layer in norms:
                layer.momentum = 0.9
            for batch in clean_batches:
                self.model(batch, training=True)
            for layer, momentum in zip(norms, momenta, strict=True):
                layer.momentum = momentum
            results = self.model.evaluate(val_ds, verbose=0, return_dict=True)
            if logs is not None:
                logs.update({f"val_{name}": float(value) for name, value in results.items()})

    return RecalibratedValidation()


def _epoch_callbacks(config: TrainConfig, report: Callable[[dict[str, Any]], None]) -> list[Any]:
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
            if es.best_epoch == epoch or not (run_dir / "best.weights.h5").exists():
                self.model.save_weights(run_dir / "best.weights.h5.tmp.weights.h5")
                os.replace(run_dir / "best.weights.h5.tmp.weights.h5", run_dir / "best.weights.h5")
            if config.keep_epoch_weights:
                (run_dir / "epochs").mkdir(exist_ok=True)
                self.model.save_weights(run_dir / "epochs" / f"epoch-{epoch + 1:03d}.weights.h5")
            self.model.save(run_dir / "last.tmp.keras")
            os.replace(run_dir / "last.tmp.keras", run_dir / "last.keras")
            state = {
                "epoch": epoch,
                "history": self.history,
                "epoch_times_s": self.epoch_times,
                "early_stopping": {
                    "best": float(es.best),
                    "wait": es.wait,
                    "best_epoch": es.best_epoch,
                },
                "plateau": {
                    "best": float(plateau.best),
                    "wait": plateau.wait,
                    "cooldown_counter": plateau.cooldown_counter,
                },
            }
            tmp = run_dir / "state.json.tmp"
            tmp.write_text(json.dumps(state, indent=1))
            os.replace(tmp, run_dir / "state.json")
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

    es = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
    )
    plateau = keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=config.plateau_patience, min_lr=1e-6
    )
    return [es, plateau, Checkpoint()]


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    report: Callable[[dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train (or resume) a run; returns the final state. Best weights end in ``best.weights.h5``."""
    if config.preset not in PRESETS:
        raise ValueError(f"Unknown preset {config.preset!r}; choose one of {sorted(PRESETS)}.")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file = run_dir / "state.json"
    if resume and (run_dir / "config.json").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        # a resumed run keeps its recipe; only its limits may be raised
        saved.update(
            {
                "epochs": config.epochs,
                "early_stopping_patience": max(
                    config.early_stopping_patience, saved.get("early_stopping_patience", 5)
                ),
            }
        )
        config = TrainConfig(**saved)
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    else:
        if state_file.exists() and not resume:
            raise FileExistsError(
                f"{run_dir} already holds a run; pass --resume or another folder."
            )
        (run_dir / "config.json").write_text(json.dumps(asdict(config), indent=2))
    report = report or _console_report(log)

    set_threads()
    import keras

    from idc_viewer.ml.model_def import build_model

    keras.utils.set_random_seed(config.seed)
    data = prepare_data(config, log)
    train_ds, val_ds, weights = make_datasets(config, data)
    callbacks = _epoch_callbacks(config, report)
    es, plateau, checkpoint = callbacks
    validation_data = val_ds
    if config.recalibrate_bn:
        validation_data = None  # validated by the callback, after re-estimating BN statistics
        callbacks = [
            recalibrated_validation(clean_training_batches(config, data), val_ds),
            *callbacks,
        ]
    initial_epoch = 0
    if resume and state_file.exists() and (run_dir / "last.keras").exists():
        state = json.loads(state_file.read_text())
        model = keras.saving.load_model(run_dir / "last.keras", safe_mode=True)
        best = build_model(config.input_size, l2=config.l2)
        best.load_weights(run_dir / "best.weights.h5")
        es.best, es.wait = state["early_stopping"]["best"], state["early_stopping"]["wait"]
        es.best_epoch, es.best_weights = state["early_stopping"]["best_epoch"], best.get_weights()
        plateau.best, plateau.wait = state["plateau"]["best"], state["plateau"]["wait"]
        plateau.cooldown_counter = state["plateau"]["cooldown_counter"]
        checkpoint.history, checkpoint.epoch_times = state["history"], state["epoch_times_s"]
        initial_epoch = state["epoch"] + 1
        if es.wait >= es.patience or initial_epoch >= config.epochs:
            log("run already finished; nothing to resume")
            return dict(state)
        log(f"resuming at epoch {initial_epoch + 1}")
    else:
        model = build_model(config.input_size, l2=config.l2)
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc")],
        )
    # ES keeps its own "wait" but Keras resets it in on_train_begin: re-apply after that point
    if initial_epoch:
        saved_es = (es.best, es.wait, es.best_epoch, es.best_weights)
        saved_plateau = (plateau.best, plateau.wait, plateau.cooldown_counter)

        class _Restore(keras.callbacks.Callback):  # type: ignore[misc]  # Keras is untyped
            def on_train_begin(self, logs: Any = None) -> None:
                es.best, es.wait, es.best_epoch, es.best_weights = saved_es
                plateau.best, plateau.wait, plateau.cooldown_counter = saved_plateau

        callbacks = [*callbacks, _Restore()]
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
    state = json.loads(state_file.read_text())
    state["finished"] = True
    state_file.write_text(json.dumps(state, indent=1))
    report({"event": "finished", "best_epoch": es.best_epoch + 1, "best_val_loss": float(es.best)})
    return dict(state)


def _console_report(log: Callable[[str], None]) -> Callable[[dict[str, Any]], None]:
    """The console gets epochs; per-batch progress is for ``--progress-json`` (the app)."""

    def report(event: dict[str, Any]) -> None:
        if event.get("event") != "batch":
            log(_format_event(event))

    return report


def _format_event(event: dict[str, Any]) -> str:
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
