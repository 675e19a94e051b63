"""The TensorFlow reference of Grad-CAM (``GradientTape``), for training and the tests only.

The app computes Grad-CAM without TensorFlow (:mod:`idc_viewer.ml.gradcam`); this is the
textbook computation it is tested against, and what export verifies a model's ``.tflite``
with. The gradient model is a second view of the same layers: the Keras model is never
changed, and the pre-sigmoid score is the final ``Dense`` kernel and bias applied to that
layer's input, so the model's sigmoid stays untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from idc_viewer.ml.gradcam import GradCamResult, one_patch, patch_batch
from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec

if TYPE_CHECKING:
    import keras


class KerasGradCam:
    """Grad-CAM on one Keras model (built once, reused for every patch).

    Parameters
    ----------
    keras_model
        The loaded model; it is never modified.
    layer_or_spec
        Either the spec (the layer is ``spec.gradcam_layer``) or the layer name, in which case
        ``spec`` must follow: ``KerasGradCam(model, spec)`` or
        ``KerasGradCam(model, "layer", spec)``.
    spec
        The model's contract (preprocessing) when a layer name is given.

    Notes
    -----
    Not thread-safe; use from one worker thread. The first call traces the ``tf.function``
    (~0.5 s); later calls take ~10 ms per patch on two cores.
    """

    def __init__(
        self,
        keras_model: keras.Model,
        layer_or_spec: str | ModelSpec,
        spec: ModelSpec | None = None,
    ) -> None:
        if isinstance(layer_or_spec, ModelSpec):
            spec = layer_or_spec
            layer_name = spec.gradcam_layer
        else:
            layer_name = layer_or_spec
        if spec is None:
            raise TypeError("KerasGradCam needs the model's spec")
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
        grad_model = k.Model(keras_model.inputs[0], [conv_layer.output, final.input])
        kernel, bias = final.kernel, final.bias
        size = spec.input_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]

        @tf.function(input_signature=signature, reduce_retracing=True)  # type: ignore[untyped-decorator]
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
        patches = patch_batch(patches_uint8)
        if patches.shape[0] == 0:
            return []
        cams, scores = self._compute_maps(to_model_input(patches, self.spec))
        h, w = patches.shape[1:3]
        return [
            # the reference checks the map, not the resize: upsampled as the app does
            GradCamResult.from_raw(cam_raw, score, 1.0 / (1.0 + np.exp(-score)), w, h)
            for cam_raw, score in zip(
                np.asarray(cams, np.float32), np.asarray(scores, np.float64), strict=True
            )
        ]

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Grad-CAM for one ``(p, p, 3)`` uint8 RGB patch."""
        return self.compute_batch(one_patch(patch_uint8))[0]
