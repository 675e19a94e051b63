"""The feature map ``A`` of the Grad-CAM layer: from the verified ``.tflite``, or from Keras.

``A`` comes from the ``.tflite``: its depthwise half is a tensor of the LiteRT graph (read with
``experimental_preserve_all_tensors``), the pointwise half (a 1x1 matrix product, 6x6x128 @
128x256 for native input) is the :class:`~idc_viewer.ml.gradcam_head.Head`'s. A model without
``.tflite`` falls back on Keras (:class:`KerasFeatures`, which imports TensorFlow).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from idc_viewer.ml.gradcam_head import Head
from idc_viewer.ml.spec import ModelContractError, ModelSpec

#: Intermediate tensors of one LiteRT call kept in memory at most (preserve_all_tensors keeps
#: every activation: ~300 * input_size^2 bytes per patch). Small batches are also the fastest
#: (measured: 8 native patches per call, 4 paper ones; 64 per call is 3-10x slower).
FEATURE_BATCH_BYTES = 20 * 1024 * 1024
FEATURE_BATCH_MAX = 8


class FeatureSource(Protocol):
    """Runs the network up to the Grad-CAM layer: ``(A (N, h, w, c), probability (N,))``."""

    max_batch: int

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` and the model's probabilities for a batch of network inputs."""
        ...


def _feature_side(input_size: int) -> int:
    side = int(input_size)
    for _ in range(3):  # three MaxPooling2D(2) before the Grad-CAM layer
        side //= 2
    return side


class LiteRtFeatures:
    """The ``.tflite`` with its intermediate tensors kept: the depthwise output is read back."""

    def __init__(self, tflite_path: Path, spec: ModelSpec, head: Head, num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter

        self._spec, self._head = spec, head
        self._name = Path(tflite_path).name
        with warnings.catch_warnings():  # "intended for debugging": we need one inner tensor
            warnings.simplefilter("ignore", UserWarning)
            try:
                self._interpreter = Interpreter(
                    model_path=str(tflite_path),
                    num_threads=num_threads,
                    experimental_preserve_all_tensors=True,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelContractError(f"{self._name} is not a TFLite model: {exc}") from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelContractError(f"{self._name} must have one input and one output.")
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])
        size = spec.input_size
        self.max_batch = int(
            max(1, min(FEATURE_BATCH_MAX, FEATURE_BATCH_BYTES // (300 * size * size)))
        )
        self._batch = -1
        self._resize(2)  # batch 2 tells the activation (batch 2) from the kernel (batch 1)
        side, channels = _feature_side(size), head.pointwise.shape[0]
        layer = spec.gradcam_layer
        candidates = [
            int(d["index"])
            for d in self._interpreter.get_tensor_details()
            if layer in d["name"]
            and "depthwise" in d["name"]
            and tuple(int(v) for v in d["shape"]) == (2, side, side, channels)
        ]
        if len(candidates) != 1:
            raise ModelContractError(
                f"{self._name} does not expose the depthwise output of {layer!r} "
                f"({len(candidates)} candidate tensors): Grad-CAM cannot run on it."
            )
        self._depthwise_index = candidates[0]

    def _resize(self, n: int) -> None:
        if n != self._batch:
            size = self._spec.input_size
            self._interpreter.resize_tensor_input(
                self._input_index, [n, size, size, 3], strict=False
            )
            self._interpreter.allocate_tensors()
            self._batch = n

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` (the head's pointwise half applied here) and the ``.tflite``'s probabilities."""
        self._resize(x.shape[0])
        self._interpreter.set_tensor(self._input_index, np.ascontiguousarray(x, np.float32))
        self._interpreter.invoke()
        depthwise = self._interpreter.get_tensor(self._depthwise_index)
        probability = np.asarray(self._interpreter.get_tensor(self._output_index), np.float64)
        return self._head.features_from_depthwise(depthwise), probability.reshape(-1)


class KerasFeatures:
    """Fallback for a model without ``.tflite``: Keras (imports TensorFlow; call in a worker)."""

    max_batch = 64

    def __init__(self, keras_model: Any, spec: ModelSpec) -> None:
        import keras

        layer = keras_model.get_layer(spec.gradcam_layer)
        self._model = keras.Model(keras_model.inputs[0], [layer.output, keras_model.outputs[0]])

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``A`` and the probabilities as Keras computes them."""
        conv, prob = self._model(x, training=False)
        return np.asarray(conv, np.float64), np.asarray(prob, np.float64).reshape(-1)
