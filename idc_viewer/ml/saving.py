"""Write a model with its contract: ``<name>.keras``, a verified ``<name>.tflite``, the spec.

The ``.tflite`` is only written after its outputs have been compared with Keras on sample
patches: a conversion that silently lost its weights (NaN outputs) is a known pitfall.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec, sha256_of, write_spec

if TYPE_CHECKING:
    import keras

#: Largest allowed |tflite - keras| probability difference for an fp32 conversion.
FP32_TOLERANCE = 1e-3
#: Largest allowed share of threshold decisions that differ for an int8 conversion.
INT8_MAX_DISAGREEMENT = 0.005

Quantization = Literal["none", "dynamic"]


class ConversionError(ModelContractError):
    """The TFLite conversion does not reproduce the Keras model."""


def check_model_matches_spec(keras_model: keras.Model, spec: ModelSpec) -> None:
    """Raise :class:`ModelContractError` unless the model has the shape the spec promises.

    Checks the input shape ``(None, s, s, 3)``, one output of one unit with a sigmoid, and that
    ``spec.gradcam_layer`` exists.
    """
    import keras as k

    shape = tuple(keras_model.input_shape)
    wanted = (None, spec.input_size, spec.input_size, 3)
    if shape != wanted:
        raise ModelContractError(f"The model takes inputs of shape {shape}, spec says {wanted}.")
    if len(keras_model.outputs) != 1 or tuple(keras_model.output_shape) != (None, 1):
        raise ModelContractError(
            f"The model must have one output of shape (None, 1), it has {keras_model.output_shape}."
        )
    last = keras_model.layers[-1]
    if getattr(last, "activation", None) is not k.activations.sigmoid:
        raise ModelContractError(
            f"The model's last layer {last.name!r} must end in a sigmoid (one IDC probability)."
        )
    names = {layer.name for layer in keras_model.layers}
    if spec.gradcam_layer not in names:
        raise ModelContractError(
            f"The spec's Grad-CAM layer {spec.gradcam_layer!r} is not a layer of the model."
        )


def _sample_patches(spec: ModelSpec, sample_patches: np.ndarray | None) -> np.ndarray:
    if sample_patches is not None and len(sample_patches) > 0:
        return np.asarray(sample_patches)
    rng = np.random.default_rng(0)
    p = spec.patch_size_px
    noise = rng.integers(0, 256, (96, p, p, 3), dtype=np.uint8)
    # Smooth, tissue-like colours too: pink/purple gradients rather than only noise.
    base = rng.integers(80, 256, (32, 1, 1, 3)).astype(np.float32)
    ramp = np.linspace(0.6, 1.0, p, dtype=np.float32)[None, :, None, None]
    smooth = np.clip(base * ramp, 0, 255).astype(np.uint8).repeat(p, axis=2)
    return np.concatenate([noise, smooth])


def _keras_probabilities(
    keras_model: keras.Model, spec: ModelSpec, patches: np.ndarray
) -> np.ndarray:
    out = []
    for start in range(0, len(patches), 256):
        x = to_model_input(patches[start : start + 256], spec)
        out.append(np.asarray(keras_model(x, training=False), dtype=np.float32).reshape(-1))
    return np.concatenate(out)


def _convert(keras_model: keras.Model, quantization: Quantization) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(keras_model)
    if quantization == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with contextlib.redirect_stdout(io.StringIO()):  # the export lists every captured variable
        return bytes(converter.convert())


def verify_tflite(
    tflite_path: Path,
    spec: ModelSpec,
    reference: np.ndarray,
    patches: np.ndarray,
    quantization: Quantization = "none",
) -> dict[str, float]:
    """Compare a ``.tflite`` with Keras probabilities; raise :class:`ConversionError` if off.

    Returns
    -------
    dict
        ``max_abs_diff`` and ``decision_disagreement`` (share of patches whose thresholded
        decision differs).
    """
    from idc_viewer.ml.inference import LiteRtPredictor

    got = LiteRtPredictor(tflite_path, spec).predict(patches)
    if not np.all(np.isfinite(got)):
        raise ConversionError("The converted TFLite model outputs NaN/inf: conversion failed.")
    diff = float(np.max(np.abs(got - reference)))
    disagree = float(np.mean((got >= spec.threshold) != (reference >= spec.threshold)))
    if quantization == "none" and diff > FP32_TOLERANCE:
        raise ConversionError(
            f"The TFLite model differs from Keras by up to {diff:.2e} (limit {FP32_TOLERANCE:g})."
        )
    if quantization == "dynamic" and disagree > INT8_MAX_DISAGREEMENT:
        raise ConversionError(
            f"The int8 TFLite model changes {disagree:.2%} of decisions "
            f"(limit {INT8_MAX_DISAGREEMENT:.1%})."
        )
    return {"max_abs_diff": diff, "decision_disagreement": disagree}


def verify_gradcam(
    tflite_path: Path, keras_path: Path, spec: ModelSpec, patches: np.ndarray
) -> None:
    """Check the app can explain the exported model without TensorFlow.

    The app's Grad-CAM reads the depthwise half of ``spec.gradcam_layer`` from the ``.tflite``
    and runs the rest in numpy from the ``.keras`` weights; it checks on every batch that its
    probabilities are the ``.tflite``'s. Raises :class:`ConversionError` when it cannot.
    """
    from idc_viewer.ml.gradcam import GradCam
    from idc_viewer.ml.gradcam_features import LiteRtFeatures
    from idc_viewer.ml.gradcam_head import Head

    try:
        head = Head.from_keras(keras_path, spec.gradcam_layer)
        explainer = GradCam(LiteRtFeatures(tflite_path, spec, head), head, spec)
        explainer.compute_batch(patches[:64])
    except ModelContractError as exc:
        raise ConversionError(f"The exported model cannot be explained by Grad-CAM: {exc}") from exc


def save_model(
    keras_model: keras.Model,
    spec: ModelSpec,
    directory: Path,
    *,
    tflite: bool = True,
    sample_patches: np.ndarray | None = None,
    quantization: Quantization = "none",
) -> Path:
    """Save ``keras_model`` under ``directory`` with its contract and return the spec's path.

    Parameters
    ----------
    keras_model
        The trained model (not modified).
    spec
        Its contract; ``weights_file``/``tflite_file`` and the hashes are filled in here.
    directory
        Created if missing; receives ``<name>.keras``, ``<name>.tflite``, ``<name>.spec.json``.
    tflite
        Also write the LiteRT fast-path model.
    sample_patches
        uint8 ``(N, p, p, 3)`` patches (real ones preferably) on which the ``.tflite`` must
        reproduce Keras; random and smooth synthetic patches when omitted.
    quantization
        ``"none"`` (fp32, max |diff| <= 1e-3) or ``"dynamic"`` (dynamic-range int8, at most
        0.5% of decisions may change).

    Raises
    ------
    ModelContractError
        The model does not match the spec, outputs NaN, or the conversion fails verification
        (:class:`ConversionError`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    check_model_matches_spec(keras_model, spec)
    name = spec.name
    keras_path = directory / f"{name}.keras"
    tmp_keras = directory / f".{name}.tmp.keras"
    keras_model.save(tmp_keras)
    os.replace(tmp_keras, keras_path)

    tflite_file: str | None = None
    tflite_sha: str | None = None
    if tflite:
        patches = _sample_patches(spec, sample_patches)
        reference = _keras_probabilities(keras_model, spec, patches)
        if not np.all(np.isfinite(reference)):
            raise ModelContractError("The Keras model outputs NaN/inf on sample patches.")
        tflite_path = directory / f"{name}.tflite"
        tmp_tflite = directory / f".{name}.tmp.tflite"
        tmp_tflite.write_bytes(_convert(keras_model, quantization))
        try:
            verify_tflite(tmp_tflite, spec, reference, patches, quantization)
            if quantization == "none":  # int8 weights differ from the .keras the head reads
                verify_gradcam(tmp_tflite, keras_path, spec, patches)
        except Exception:
            tmp_tflite.unlink(missing_ok=True)
            raise
        os.replace(tmp_tflite, tflite_path)
        tflite_file, tflite_sha = tflite_path.name, sha256_of(tflite_path)

    final = dataclasses.replace(
        spec,
        weights_file=keras_path.name,
        weights_sha256=sha256_of(keras_path),
        tflite_file=tflite_file,
        tflite_sha256=tflite_sha,
    )
    return write_spec(final, directory)
