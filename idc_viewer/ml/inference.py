"""Predictors: uint8 RGB patches in, IDC probabilities out.

``LiteRtPredictor`` is the fast path: it runs the verified ``.tflite`` with LiteRT and never
imports TensorFlow (import of TensorFlow costs 3-4 s and ~600 MiB). ``KerasPredictor`` runs the
``.keras`` model through a ``tf.function`` and is the fallback when no ``.tflite`` exists.

Thread-safety: a predictor instance is NOT thread-safe. Use each one from a single worker thread
(the analysis worker); build another predictor for another thread.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec, first_line

if TYPE_CHECKING:
    import keras

#: Largest batch handed to the network at once; bigger requests are split.
MAX_BATCH = 256

_TF_THREADS_CONFIGURED = False


class Predictor(Protocol):
    """Anything that turns patches into IDC probabilities."""

    def predict(self, patches_uint8: np.ndarray) -> np.ndarray:
        """Return float32 ``(N,)`` probabilities for ``(N, p, p, 3)`` uint8 RGB patches."""
        ...


def configure_tensorflow_threads(intra_op: int = 2, inter_op: int = 1) -> None:
    """Set TensorFlow's thread pools (fastest on the 2-core target: intra 2, inter 1).

    Must run before TensorFlow executes its first op; later calls are silently ignored
    (TensorFlow refuses to change the pools once initialised).
    """
    global _TF_THREADS_CONFIGURED
    if _TF_THREADS_CONFIGURED:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra_op)
        tf.config.threading.set_inter_op_parallelism_threads(inter_op)
    except RuntimeError:
        pass  # TensorFlow already initialised by someone else: keep its pools.
    _TF_THREADS_CONFIGURED = True


def _empty() -> np.ndarray:
    return np.zeros((0,), dtype=np.float32)


class LiteRtPredictor:
    """Run a ``.tflite`` model with LiteRT (no TensorFlow import).

    Parameters
    ----------
    tflite_path
        The converted model (its hash is checked by :func:`idc_viewer.ml.loading.load_model`).
    spec
        The model's contract (input size, preprocessing).
    num_threads
        LiteRT CPU threads.
    max_batch
        Requests larger than this are split into chunks of ``max_batch`` patches.

    Notes
    -----
    The input tensor is resized (``resize_tensor_input`` + ``allocate_tensors``) only when the
    batch size changes. Not thread-safe: use from one thread.
    """

    def __init__(
        self, tflite_path: Path, spec: ModelSpec, num_threads: int = 2, max_batch: int = MAX_BATCH
    ) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        self.max_batch = int(max_batch)
        try:
            self._interpreter = Interpreter(model_path=str(tflite_path), num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise ModelContractError(
                f"{Path(tflite_path).name} is not a TFLite model: {first_line(exc)}"
            ) from exc
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelContractError(
                f"{Path(tflite_path).name} must have one input and one output."
            )
        shape = tuple(int(v) for v in inputs[0]["shape"])
        wanted = (spec.input_size, spec.input_size, 3)
        if shape[1:] != wanted:
            raise ModelContractError(
                f"{Path(tflite_path).name} takes inputs of shape {shape[1:]}, spec says {wanted}."
            )
        self._input_index = int(inputs[0]["index"])
        self._output_index = int(outputs[0]["index"])
        self._batch = -1

    def _run(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        if n != self._batch:
            self._interpreter.resize_tensor_input(self._input_index, list(x.shape), strict=False)
            self._interpreter.allocate_tensors()
            self._batch = n
        self._interpreter.set_tensor(self._input_index, x)
        self._interpreter.invoke()
        out = self._interpreter.get_tensor(self._output_index)
        return np.asarray(out, dtype=np.float32).reshape(n)

    def predict(self, patches_uint8: np.ndarray) -> np.ndarray:
        """Return float32 ``(N,)`` IDC probabilities for ``(N, p, p, 3)`` uint8 RGB patches."""
        x = to_model_input(patches_uint8, self.spec)
        if x.shape[0] == 0:
            return _empty()
        parts = [
            self._run(np.ascontiguousarray(x[i : i + self.max_batch]))
            for i in range(0, x.shape[0], self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class KerasPredictor:
    """Run the Keras model through one ``tf.function`` (imports TensorFlow).

    Parameters
    ----------
    keras_model
        The loaded model (never modified).
    spec
        The model's contract.
    max_batch
        Requests larger than this are split into chunks.

    Notes
    -----
    TensorFlow's thread pools are set to intra-op 2 / inter-op 1 if TensorFlow has not run yet.
    Not thread-safe: use from one thread.
    """

    def __init__(
        self, keras_model: keras.Model, spec: ModelSpec, max_batch: int = MAX_BATCH
    ) -> None:
        configure_tensorflow_threads()
        import tensorflow as tf

        self.spec = spec
        self.max_batch = int(max_batch)
        self._model = keras_model
        size = spec.input_size
        signature = [tf.TensorSpec([None, size, size, 3], tf.float32)]
        model = keras_model

        @tf.function(input_signature=signature, reduce_retracing=True)  # type: ignore[untyped-decorator]
        def forward(x: Any) -> Any:
            return model(x, training=False)

        self._forward = forward

    def predict(self, patches_uint8: np.ndarray) -> np.ndarray:
        """Return float32 ``(N,)`` IDC probabilities for ``(N, p, p, 3)`` uint8 RGB patches."""
        x = to_model_input(patches_uint8, self.spec)
        if x.shape[0] == 0:
            return _empty()
        parts = [
            np.asarray(self._forward(x[i : i + self.max_batch]), dtype=np.float32).reshape(-1)
            for i in range(0, x.shape[0], self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
