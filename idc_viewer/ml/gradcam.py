"""Grad-CAM for the IDC network: where in a patch the evidence for IDC lies.

Only computes: it returns arrays in [0, 1]; painting is :func:`overlay` (or the GUI's job).
The gradient model is built once, the shared Keras model is never changed, and the
pre-sigmoid score is a linear copy of the final ``Dense`` layer (its kernel and bias applied
to that layer's input), so the model's sigmoid stays untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class GradCamResult:
    """One explanation.

    Attributes
    ----------
    cam
        float32 ``(p, p)`` in [0, 1] at the patch's size (all zeros when nothing speaks for IDC).
    probability
        The model's IDC probability for the patch (sigmoid of ``score``).
    score
        The pre-sigmoid score (logit) whose gradients make the map.
    cam_lowres
        float32 ``(h, w)`` in [0, 1] at the Grad-CAM layer's resolution (6x6 for 50x50 input).
    """

    cam: np.ndarray
    probability: float
    score: float
    cam_lowres: np.ndarray


def _normalise(cam: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1]; all-zero (or non-finite) maps become zeros."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    cam = np.maximum(cam, 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    if not peak > 1e-12:
        return np.zeros_like(cam, dtype=np.float32)
    return (cam / peak).astype(np.float32)


class GradCam:
    """Grad-CAM on one Keras model (built once, reused for every patch).

    Parameters
    ----------
    keras_model
        The loaded model; it is never modified.
    layer_or_spec
        Either the spec (the layer is ``spec.gradcam_layer``) or the layer name, in which case
        ``spec`` must follow: ``GradCam(model, spec)`` or ``GradCam(model, "layer", spec)``.
    spec
        The model's contract (preprocessing) when a layer name is given.

    Notes
    -----
    Not thread-safe; use from one worker thread. The first call traces the ``tf.function``
    (~0.5 s); later calls take ~10 ms per patch on two cores.
    """

    def __init__(self, keras_model: keras.Model, layer_or_spec: str | ModelSpec,
                 spec: ModelSpec | None = None) -> None:
        if isinstance(layer_or_spec, ModelSpec):
            spec = layer_or_spec
            layer_name = spec.gradcam_layer
        else:
            layer_name = layer_or_spec
        if spec is None:
            raise TypeError("GradCam needs the model's spec")
        from idc_viewer.ml.inference import configure_tensorflow_threads

        configure_tensorflow_threads()
        import keras as k
        import tensorflow as tf

        self.spec = spec
        self.layer_name = layer_name
        try:
            conv_layer = keras_model.get_layer(layer_name)
        except ValueError as exc:
            raise ModelContractError(
                f"The model has no layer {layer_name!r} for Grad-CAM."
            ) from exc
        final = keras_model.layers[-1]
        if not isinstance(final, k.layers.Dense) or final.units != 1:
            raise ModelContractError("Grad-CAM needs a model ending in Dense(1, sigmoid).")
        # A second view of the same layers and weights: no copy, no change to the model.
        grad_model = k.Model(keras_model.inputs, [conv_layer.output, final.input])
        kernel, bias = final.kernel, final.bias
        size = spec.input_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]

        @tf.function(input_signature=signature, reduce_retracing=True)
        def compute_maps(x: Any) -> tuple[Any, Any]:
            with tf.GradientTape() as tape:
                conv, features = grad_model(x, training=False)
                tape.watch(conv)
                score = tf.matmul(features, kernel)[:, 0]
                if bias is not None:
                    score = score + bias[0]
            grads = tape.gradient(score, conv)  # (N, h, w, c)
            weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)  # (N, 1, 1, c)
            cam = tf.nn.relu(tf.reduce_sum(conv * weights, axis=-1))  # (N, h, w)
            return cam, score

        self._grad_model = grad_model
        self._compute_maps = compute_maps

    def compute_batch(self, patches_uint8: np.ndarray) -> list[GradCamResult]:
        """Grad-CAM for ``(N, p, p, 3)`` uint8 RGB patches (one pass, faster than N calls)."""
        patches = np.asarray(patches_uint8)
        if patches.ndim == 3:
            patches = patches[np.newaxis]
        if patches.shape[0] == 0:
            return []
        x = to_model_input(patches, self.spec)
        cams, scores = self._compute_maps(x)
        cams = np.asarray(cams, dtype=np.float32)
        scores = np.asarray(scores, dtype=np.float64)
        results = []
        for patch, cam_raw, score in zip(patches, cams, scores, strict=True):
            low = _normalise(cam_raw)
            h, w = patch.shape[:2]
            cam = cv2.resize(low, (w, h), interpolation=cv2.INTER_LINEAR)
            cam = np.clip(cam, 0.0, 1.0).astype(np.float32)
            probability = float(1.0 / (1.0 + np.exp(-score)))
            results.append(GradCamResult(cam=cam, probability=probability, score=float(score),
                                         cam_lowres=low))
        return results

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Grad-CAM for one ``(p, p, 3)`` uint8 RGB patch."""
        patch = np.asarray(patch_uint8)
        if patch.ndim != 3:
            raise ValueError(f"expected one (p, p, 3) patch, got shape {patch.shape}")
        return self.compute_batch(patch[np.newaxis])[0]


def overlay(patch_uint8: np.ndarray, cam: np.ndarray, alpha: float = 0.4,
            colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """Blend a Grad-CAM map over its patch.

    Parameters
    ----------
    patch_uint8
        ``(p, p, 3)`` uint8 RGB patch.
    cam
        Map in [0, 1]; resized to the patch if its size differs.
    alpha
        Weight of the colour map (0 = patch only, 1 = map only).
    colormap
        An OpenCV colour map.

    Returns
    -------
    numpy.ndarray
        ``(p, p, 3)`` uint8 RGB.
    """
    patch = np.ascontiguousarray(patch_uint8, dtype=np.uint8)
    h, w = patch.shape[:2]
    cam = np.asarray(cam, dtype=np.float32)
    if cam.shape != (h, w):
        cam = cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    levels = np.clip(np.nan_to_num(cam) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    heat_bgr = cv2.applyColorMap(levels, colormap)
    heat_rgb = cv2.cvtColor(heat_bgr, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(patch, 1.0 - alpha, heat_rgb, alpha, 0.0)
