"""Evaluate a finished run on held-out patients and export it as an app model.

Order matters for honesty: the decision threshold is chosen on validation patients only, then
frozen; the test patients are scored once with it. Slide-level figures come from reassembling the
complete test patients as slides and scoring them with the app's own engine.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from idc_viewer.core.patches import DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX
from training.config import PRESETS, TrainConfig, augmentation_summary
from training.figures import BinaryMetrics
from training.metrics import best_threshold, binary_metrics, patient_bootstrap_interval
from training.pipeline import set_threads
from training.results import EvaluationResult, GradCamExample, ValidationResult
from training.run_data import SplitArrays, prepare_data
from training.run_state import RunState
from training.slide_eval import add_context, complete_patients, context_of, slide_level_figures
from training.slide_figures import ContextChoice, SlideFigures, choose_context, slide_figures
from training.slides import score_slides

THRESHOLD_CRITERION = "f1"  # maximise IDC F1 on validation patients


def _predict(model: Any, x: np.ndarray, preset: str) -> np.ndarray:
    """Probabilities with the app's own preprocessing for ``preset`` (before the spec exists)."""
    from idc_viewer.ml.preprocessing import to_model_input
    from idc_viewer.ml.spec import ModelSpec, Preprocessing

    settings = PRESETS[preset]
    preprocessing_spec = ModelSpec(
        name="evaluation",
        preset=preset,
        input_size=int(settings["input_size"]),
        patch_size_px=DEFAULT_PATCH_PX,
        preprocessing=Preprocessing(resize_interpolation=settings["resize_interpolation"]),
    )
    out = []
    for start in range(0, len(x), 512):
        batch = to_model_input(x[start : start + 512], preprocessing_spec)
        out.append(np.asarray(model(batch, training=False)).reshape(-1))
    return np.concatenate(out) if out else np.zeros((0,), np.float32)


def _load_best(run_dir: Path) -> tuple[TrainConfig, RunState, Any]:
    """A run's config, its state and its model with the best weights (by validation loss)."""
    config = TrainConfig.read(run_dir)
    state = RunState.read(run_dir)
    set_threads()
    from idc_viewer.ml.model_def import build_model

    model = build_model(config.input_size, l2=config.l2)
    model.load_weights(run_dir / "best.weights.h5")
    return config, state, model


def _threshold_on_validation(
    model: Any, data: SplitArrays, preset: str
) -> tuple[float, BinaryMetrics]:
    """The decision threshold chosen on validation patients, and their figures at it."""
    prob = _predict(model, data.x["validation"], preset)
    threshold = best_threshold(data.y["validation"], prob, criterion=THRESHOLD_CRITERION)
    return threshold, binary_metrics(data.y["validation"], prob, threshold)


def evaluate_run(
    run_dir: Path, *, log: Callable[[str], None] = print, model_dir: Path | None = None
) -> EvaluationResult:
    """Pick the threshold on validation, score test patients, export model + report + card."""
    run_dir = Path(run_dir)
    config, state, model = _load_best(run_dir)
    import keras

    from idc_viewer.ml.saving import save_model

    data = prepare_data(config, log)
    threshold, val_metrics = _threshold_on_validation(model, data, config.preset)
    test_prob = _predict(model, data.x["test"], config.preset)
    test_metrics = binary_metrics(data.y["test"], test_prob, threshold)
    log(
        f"threshold {threshold:.3f} (max {THRESHOLD_CRITERION} on validation patients); "
        f"test patients: F1(IDC) {test_metrics.f1:.3f}, "
        f"balanced accuracy {test_metrics.balanced_accuracy:.3f}"
    )

    name = f"idc-{config.preset}-{config.input_size}"
    model_dir = Path(model_dir) if model_dir else run_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    speed = _inference_speed(model, config.input_size)
    spec = _app_spec(
        config,
        name,
        threshold,
        training_data=_training_summary(config, data, state),
        metrics={
            "test_patients": test_metrics.to_dict(),
            "validation_patients": val_metrics.to_dict(),
            "threshold_criterion": f"max {THRESHOLD_CRITERION} on validation patients",
            "keras_patches_per_s": speed,
        },
    )
    sample = data.x["validation"][:512]
    spec_path = save_model(model, spec, model_dir, sample_patches=sample)
    keras.backend.clear_session()

    from idc_viewer.ml.loading import load_model

    # the context stage is chosen on the validation patients' slides, then frozen into the spec
    validation_slides = score_slides(
        load_model(spec_path),
        complete_patients(run_dir / "split.json", "validation"),
        Path(config.data_dir),
        log=log,
    )
    choice = add_context(spec_path, validation_slides, log=log)
    loaded = load_model(spec_path)
    validation_figures = slide_figures(
        validation_slides, patch_threshold=threshold, context=context_of(loaded.spec)
    )
    slide_level = slide_level_figures(
        loaded, complete_patients(run_dir / "split.json", "test"), Path(config.data_dir), log=log
    )
    examples = gradcam_examples(loaded, data.x["test"], data.y["test"], test_prob)
    from training.report import write_evaluation_report

    final_spec = loaded.spec
    report = write_evaluation_report(
        model_dir,
        name=name,
        history=state.history,
        test_y=data.y["test"],
        test_prob=test_prob,
        threshold=threshold,
        gradcam_examples=examples,
        slide_level=slide_level,
        validation_slides=validation_figures.pooled,
        context_choice=choice,
        test_interval=patient_bootstrap_interval(
            data.y["test"], test_prob, [r.patient for r in data.records["test"]], threshold
        ),
        card_info={
            "preset": config.preset,
            "input_size": config.input_size,
            "dataset": final_spec.training_data["dataset"],
            "split_counts": {
                k: {
                    "patients": len(data.patients[k]),
                    "patches": len(data.y[k]),
                    "idc_patches": int(data.y[k].sum()),
                }
                for k in data.patients
            },
            "threshold_criterion": final_spec.metrics["threshold_criterion"],
            "patches_per_s": round(speed),
            "epochs": final_spec.training_data["epochs_run"],
            "seed": config.seed,
            "model_file": final_spec.weights_file,
            "trained_at": final_spec.created,
            "framework": f"keras {keras.__version__}",
            "notes": [
                f"best epoch {final_spec.training_data['best_epoch']} by validation loss",
                f"balance: {config.balance}",
                f"augmentation: {augmentation_summary(config)}",
                "patients per split in split.json",
            ],
        },
    )
    return EvaluationResult(
        spec_path=Path(spec_path),
        metrics=test_metrics.headline,
        report=report,
        slide_level=slide_level,
    )


def _app_spec(config: TrainConfig, name: str, threshold: float, **fields: Any) -> Any:
    """The contract under which the app loads this run's model."""
    from idc_viewer.ml.spec import ModelSpec, Preprocessing

    return ModelSpec(
        name=name,
        preset=config.preset,
        input_size=config.input_size,
        patch_size_px=DEFAULT_PATCH_PX,
        patch_mpp=DEFAULT_PATCH_MPP,
        preprocessing=Preprocessing(
            resize_interpolation=PRESETS[config.preset]["resize_interpolation"]
        ),
        threshold=float(round(threshold, 4)),
        weights_file=f"{name}.keras",
        weights_sha256="0" * 64,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        **fields,
    )


def _training_summary(config: TrainConfig, data: SplitArrays, state: RunState) -> dict[str, Any]:
    return {
        "dataset": f"Breast Histopathology Images (IDC), Kaggle release: {config.data_dir}",
        "split_unit": "patient",
        "seed": config.seed,
        "patients": {k: len(v) for k, v in data.patients.items()},
        "patches": {k: len(v) for k, v in data.y.items()},
        "idc_patches": {k: int(v.sum()) for k, v in data.y.items()},
        "balance": config.balance,
        "augmentation": augmentation_summary(config),
        "epochs_run": state.epochs_run,
        "best_epoch": state.best_epoch_1based,
        "undecodable_skipped": data.skipped,
    }


def validate_run(
    run_dir: Path, *, slides: bool = True, log: Callable[[str], None] = print
) -> ValidationResult:
    """Validation-patient figures of a trained run, for choosing between candidate runs.

    With ``slides``, the complete validation patients are also reassembled and scored by the
    engine, lossless and JPEG Q90 (:func:`slide_level_figures`): robustness to the JPEG tiles of
    real slides is part of the choice.

    Test patients are neither decoded nor scored here, so comparing candidates cannot leak the
    test split into the choice; ``evaluate`` then scores the chosen run's test patients once.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "split.json").exists():
        raise FileNotFoundError(f"{run_dir} has no split.json: is it a training run?")
    config, state, model = _load_best(run_dir)
    data = prepare_data(config, log, splits=("validation",))
    threshold, metrics = _threshold_on_validation(model, data, config.preset)
    slide_level: SlideFigures | None = None
    context: ContextChoice | None = None
    if slides:
        from idc_viewer.ml.loading import load_model
        from idc_viewer.ml.saving import save_model

        with tempfile.TemporaryDirectory() as tmp:
            spec = _app_spec(config, "validation-candidate", threshold)
            spec_path = save_model(
                model, spec, Path(tmp), sample_patches=data.x["validation"][:256]
            )
            scored = score_slides(
                load_model(spec_path),
                complete_patients(run_dir / "split.json", "validation"),
                Path(config.data_dir),
                log=log,
            )
            context = choose_context(scored)
            slide_level = slide_figures(
                scored,
                patch_threshold=threshold,
                context=context.sigma_threshold if context is not None else None,
            )
    result = ValidationResult(
        run_dir=str(run_dir),
        preset=config.preset,
        balance=config.balance,
        augmentation=augmentation_summary(config),
        best_epoch=state.best_epoch_1based,
        epochs_run=state.epochs_run,
        finished=state.finished,
        threshold=threshold,
        validation_patients=metrics.headline,
        validation_slides=slide_level,
        context_choice=context,
    )
    result.write(run_dir / "validation.json")
    return result


def _inference_speed(model: Any, input_size: int, n: int = 1024) -> float:
    import tensorflow as tf

    x = np.random.default_rng(0).random((n, input_size, input_size, 3), dtype=np.float32)
    fn = tf.function(lambda batch: model(batch, training=False))
    fn(x[:128])
    t0 = time.perf_counter()
    for start in range(0, n, 128):
        fn(x[start : start + 128])
    return float(n / (time.perf_counter() - t0))


def gradcam_examples(
    loaded: Any, x: np.ndarray, y: np.ndarray, prob: np.ndarray
) -> list[GradCamExample]:
    """The paper's figure: the most confident correct IDC-positive and -negative test patches."""
    from idc_viewer.ml.gradcam import GradCam, overlay

    cam = GradCam.for_model(loaded)  # the app's computation, so the card shows what it shows
    examples = []
    for label in (1, 0):
        idx = np.flatnonzero(y == label)
        if len(idx) == 0:
            continue
        score = prob[idx] if label == 1 else 1 - prob[idx]
        i = int(idx[np.argmax(score)])
        result = cam.compute(x[i])
        examples.append(
            GradCamExample(
                patch=x[i],
                overlay=overlay(x[i], result.cam),
                label=label,
                probability=float(result.probability),
            )
        )
    return examples
