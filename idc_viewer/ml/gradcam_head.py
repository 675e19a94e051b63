"""The IDC network after its Grad-CAM layer, forward and backward, in numpy.

The paper's Grad-CAM is the gradient of the pre-sigmoid score with respect to the output ``A``
of ``separable_conv2d``. The network after that layer is small and, in inference mode,
piecewise linear: BatchNorm is a per-channel affine map, dropout is the identity, so the
gradient is written out by hand (:class:`Head`). Its weights are read from the ``.keras``
archive with h5py: no Keras, no TensorFlow.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from idc_viewer.ml.spec import ModelContractError

#: Keras BatchNormalization's default epsilon (the config's value is used when present).
BN_EPSILON = 1e-3
#: The layers after the Grad-CAM layer, in order, as the paper's network has them.
HEAD_LAYERS = (
    "batch_normalization_3",
    "dense",
    "batch_normalization_4",
    "dense_1",
    "batch_normalization_5",
    "dense_2",
)


def _layer_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    layers = config.get("config", {}).get("layers", [])
    return {layer.get("name"): layer.get("config", {}) for layer in layers}


def read_keras_weights(
    keras_path: Path, names: tuple[str, ...]
) -> tuple[dict[str, list[np.ndarray]], dict[str, dict[str, Any]]]:
    """The variables of the named layers of a ``.keras`` archive, read with h5py (no Keras).

    Returns ``({layer: [vars/0, vars/1, ...]}, {layer: config})``.
    """
    import h5py

    name = Path(keras_path).name
    try:
        with zipfile.ZipFile(keras_path) as archive:
            config = json.loads(archive.read("config.json").decode("utf-8"))
            data = archive.read("model.weights.h5")
        weights: dict[str, list[np.ndarray]] = {}
        with h5py.File(io.BytesIO(data), "r") as h5:
            for layer in names:
                group = h5.get(f"layers/{layer}/vars")
                if group is None:
                    raise ModelContractError(f"{name} has no weights for layer {layer!r}.")
                weights[layer] = [np.asarray(group[str(i)]) for i in range(len(group))]
    except ModelContractError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelContractError(f"cannot read the weights of {name}: {exc}") from exc
    return weights, _layer_configs(config)


def _bn_affine(
    variables: list[np.ndarray], config: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """BatchNorm in inference mode as ``x * scale + shift`` (gamma, beta, mean, variance)."""
    gamma, beta, mean, variance = (np.asarray(v, np.float64) for v in variables[:4])
    eps = float(config.get("epsilon") or BN_EPSILON)
    scale = gamma / np.sqrt(variance + eps)
    return scale, beta - mean * scale


# --------------------------------------------------------------------------- head


class Head:
    """The network after ``separable_conv2d``, forward and backward, in numpy.

    BN_3 -> ReLU -> MaxPool(2) -> GAP -> Dense(128) -> BN_4 -> ReLU -> Dense(64) -> BN_5 ->
    ReLU -> Dense(1): dropout is the identity in inference, so the score is piecewise linear
    in ``A`` and its gradient is exact.
    """

    def __init__(
        self, weights: dict[str, list[np.ndarray]], configs: dict[str, dict[str, Any]], layer: str
    ) -> None:
        def f64(a: np.ndarray) -> np.ndarray:
            return np.asarray(a, dtype=np.float64)

        sep = weights[layer]
        if len(sep) < 2 or np.ndim(sep[1]) != 4 or sep[1].shape[:2] != (1, 1):
            raise ModelContractError(
                f"Grad-CAM layer {layer!r} is not a separable convolution (depthwise + 1x1)."
            )
        self.pointwise = f64(sep[1]).reshape(sep[1].shape[-2], sep[1].shape[-1])  # (c_in, c)
        self.sep_bias = f64(sep[2]) if len(sep) > 2 else np.zeros(self.pointwise.shape[1])
        self.bn3 = _bn_affine(
            weights["batch_normalization_3"], configs.get("batch_normalization_3", {})
        )
        self.w1, self.b1 = f64(weights["dense"][0]), f64(weights["dense"][1])
        self.bn4 = _bn_affine(
            weights["batch_normalization_4"], configs.get("batch_normalization_4", {})
        )
        self.w2, self.b2 = f64(weights["dense_1"][0]), f64(weights["dense_1"][1])
        self.bn5 = _bn_affine(
            weights["batch_normalization_5"], configs.get("batch_normalization_5", {})
        )
        self.w3, self.b3 = f64(weights["dense_2"][0])[:, 0], float(weights["dense_2"][1][0])
        # the per-pixel work on (N, h, w, c) in float32, as the network itself computes it
        self._pointwise32 = self.pointwise.astype(np.float32)
        self._sep_bias32 = self.sep_bias.astype(np.float32)
        self._bn3_scale32 = self.bn3[0].astype(np.float32)
        self._bn3_shift32 = self.bn3[1].astype(np.float32)

    @classmethod
    def from_keras(cls, keras_path: Path, layer: str) -> Head:
        """The head of the ``.keras`` archive at ``keras_path`` after ``layer``."""
        weights, configs = read_keras_weights(keras_path, (layer, *HEAD_LAYERS))
        return cls(weights, configs, layer)

    def features_from_depthwise(self, depthwise: np.ndarray) -> np.ndarray:
        """``A`` from the depthwise half's output: the 1x1 pointwise product plus its bias."""
        return np.asarray(depthwise, np.float32) @ self._pointwise32 + self._sep_bias32

    def cams(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw Grad-CAM maps ``(N, h, w)`` and scores ``(N,)`` for features ``(N, h, w, c)``.

        The gradient needs no routing through the max-pooling: each 2x2 window passes
        ``d score / d pooled`` to one position, whose ReLU lets it through exactly when the
        window's maximum is positive, so ``sum_hw dS/dA = bn_scale * dS/dpooled * (number of
        windows with a positive maximum)``, whichever position wins a tie.
        """
        a = np.asarray(features, np.float32)
        n, h, w, c = a.shape
        relu3 = np.maximum(a * self._bn3_scale32 + self._bn3_shift32, 0.0)
        hp, wp = h // 2, w // 2  # MaxPooling2D(2), 'valid': an odd last row/column is dropped
        pooled = relu3[:, : 2 * hp, : 2 * wp].reshape(n, hp, 2, wp, 2, c).max(axis=(2, 4))
        gap = pooled.mean(axis=(1, 2), dtype=np.float64)
        pre4 = (gap @ self.w1 + self.b1) * self.bn4[0] + self.bn4[1]
        relu4 = np.maximum(pre4, 0.0)
        pre5 = (relu4 @ self.w2 + self.b2) * self.bn5[0] + self.bn5[1]
        relu5 = np.maximum(pre5, 0.0)
        score = relu5 @ self.w3 + self.b3
        # backward: d score / d A, summed over space
        g_pre5 = (pre5 > 0) * self.w3
        g_pre4 = (pre4 > 0) * ((g_pre5 * self.bn5[0]) @ self.w2.T)
        g_gap = (g_pre4 * self.bn4[0]) @ self.w1.T  # (n, c)
        open_windows = np.count_nonzero(pooled > 0, axis=(1, 2))  # (n, c)
        alpha = self.bn3[0] * g_gap * open_windows / float(hp * wp * h * w)
        cam = np.matmul(a.reshape(n, h * w, c), alpha.astype(np.float32)[:, :, None])
        return np.maximum(cam.reshape(n, h, w), 0.0), score
