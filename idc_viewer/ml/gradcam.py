"""Grad-CAM for the IDC network without TensorFlow: LiteRT for the convolutions, numpy after.

The paper's Grad-CAM is the gradient of the pre-sigmoid score with respect to the output ``A``
of ``separable_conv2d``, averaged over space per channel (``alpha_k``), then
``ReLU(sum_k alpha_k A_k)``, normalised to [0, 1] and upsampled to the patch. The network
after that layer is small and, in inference mode, piecewise linear: BatchNorm is a per-channel
affine map, dropout is the identity, so the gradient is written out by hand (:class:`Head`).

``A`` itself comes from the verified ``.tflite``: its depthwise half is a tensor of the LiteRT
graph (read with ``experimental_preserve_all_tensors``), the pointwise half (a 1x1 matrix
product, 6x6x128 @ 128x256 for native input) is done here from the ``.keras`` weights. Every
batch is checked: the head's sigmoid must equal the ``.tflite``'s own output, so a converter
that ever fused or renamed that tensor is refused with a message, never explained wrongly.
Only numpy, OpenCV, h5py and LiteRT are imported (TensorFlow costs 3-4 s and ~600 MiB).

Only computes: it returns arrays in [0, 1]; painting is :func:`overlay` or the engine's job.
"""

from __future__ import annotations

import io
import threading
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np

from idc_viewer.core.colormap import colormap_lut
from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec

if TYPE_CHECKING:
    from idc_viewer.ml.loading import LoadedModel

#: Keras BatchNormalization's default epsilon (the config's value is used when present).
BN_EPSILON = 1e-3
#: |sigmoid(head score) - .tflite probability| above this means the feature map is not the
#: one the head was written for.
CONSISTENCY_TOLERANCE = 1e-4
#: Intermediate tensors of one LiteRT call kept in memory at most (preserve_all_tensors keeps
#: every activation: ~300 * input_size^2 bytes per patch). Small batches are also the fastest
#: (measured: 8 native patches per call, 4 paper ones; 64 per call is 3-10x slower).
FEATURE_BATCH_BYTES = 20 * 1024 * 1024
FEATURE_BATCH_MAX = 8
#: The layers after the Grad-CAM layer, in order, as the paper's network has them.
HEAD_LAYERS = (
    "batch_normalization_3",
    "dense",
    "batch_normalization_4",
    "dense_1",
    "batch_normalization_5",
    "dense_2",
)


@dataclass(frozen=True)
class GradCamResult:
    """One explanation.

    Attributes
    ----------
    cam
        float32 ``(p, p)`` in [0, 1] at the patch's size (all zeros when nothing speaks for IDC).
    probability
        The model's IDC probability for the patch (the ``.tflite``'s output, as in the heatmap).
    score
        The pre-sigmoid score (logit) whose gradients make the map.
    cam_lowres
        float32 ``(h, w)`` in [0, 1] at the Grad-CAM layer's resolution (6x6 for 50x50 input).
    cam_raw
        float32 ``(h, w)`` before normalisation (``ReLU(sum_k alpha_k A_k)``).
    """

    cam: np.ndarray
    probability: float
    score: float
    cam_lowres: np.ndarray
    cam_raw: np.ndarray | None = None


def normalise_cam(cam: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1]; all-zero (or non-finite) maps become zeros."""
    cam = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    cam = np.maximum(cam, 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    if not peak > 1e-12:
        return np.zeros_like(cam, dtype=np.float32)
    return (cam / peak).astype(np.float32)


def upsample_cam(cam_lowres: np.ndarray, width_px: int, height_px: int) -> np.ndarray:
    """A low-resolution map resized to ``width_px x height_px`` (bilinear, pixel centres).

    The same map at any size: the inspector's 50-px input and a 401-px slide footprint are two
    samplings of one function, so they line up.
    """
    low = np.asarray(cam_lowres, dtype=np.float32)
    out = cv2.resize(
        low, (max(1, int(width_px)), max(1, int(height_px))), interpolation=cv2.INTER_LINEAR
    )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- weights


def _layer_configs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    layers = config.get("config", {}).get("layers", [])
    return {layer.get("name"): layer.get("config", {}) for layer in layers}


def read_keras_weights(
    keras_path: Path, names: tuple[str, ...]
) -> tuple[dict[str, list[np.ndarray]], dict[str, dict[str, Any]]]:
    """The variables of the named layers of a ``.keras`` archive, read with h5py (no Keras).

    Returns ``({layer: [vars/0, vars/1, ...]}, {layer: config})``.
    """
    import json

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


# --------------------------------------------------------------------------- feature sources


class FeatureSource(Protocol):
    """Runs the network up to the Grad-CAM layer: ``(A (N, h, w, c), probability (N,))``."""

    max_batch: int

    def features(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


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
        conv, prob = self._model(x, training=False)
        return np.asarray(conv, np.float64), np.asarray(prob, np.float64).reshape(-1)


# --------------------------------------------------------------------------- Grad-CAM


class GradCam:
    """Grad-CAM of one loaded model (LiteRT + numpy; built once per thread, reused).

    Parameters
    ----------
    source
        Where the feature map comes from (:class:`LiteRtFeatures` normally).
    head
        The numpy head of the same model.
    spec
        The model's contract (preprocessing, Grad-CAM layer).

    Notes
    -----
    Not thread-safe (one LiteRT interpreter): build one per thread with :meth:`for_model`.
    """

    def __init__(
        self, source: FeatureSource, head: Head, spec: ModelSpec, model_label: str = ""
    ) -> None:
        self.spec, self.head, self._source = spec, head, source
        self.layer_name = spec.gradcam_layer
        self.model_label = model_label or spec.name
        self.max_batch = int(source.max_batch)

    @classmethod
    def for_model(cls, model: LoadedModel, num_threads: int = 2) -> GradCam:
        """Grad-CAM of a :class:`~idc_viewer.ml.loading.LoadedModel` (its verified files)."""
        spec = model.spec
        head = Head.from_keras(model.keras_path, spec.gradcam_layer)
        source: FeatureSource
        if model.tflite_path is not None:
            source = LiteRtFeatures(model.tflite_path, spec, head, num_threads)
        else:
            source = KerasFeatures(model.keras_model, spec)
        return cls(source, head, spec, spec.name)

    def feature_map(self, x: np.ndarray) -> np.ndarray:
        """``A`` (float32 ``(N, h, w, c)``) for a batch of network inputs (not patches)."""
        return np.asarray(self._source.features(x)[0], np.float32)

    def compute_batch(self, patches_uint8: np.ndarray) -> list[GradCamResult]:
        """Grad-CAM for ``(N, p, p, 3)`` uint8 RGB patches."""
        patches = np.asarray(patches_uint8)
        if patches.ndim == 3:
            patches = patches[np.newaxis]
        if patches.shape[0] == 0:
            return []
        x = to_model_input(patches, self.spec)
        results: list[GradCamResult] = []
        for start in range(0, len(x), self.max_batch):
            chunk = x[start : start + self.max_batch]
            features, probabilities = self._source.features(chunk)
            cams, scores = self.head.cams(features)
            head_p = 1.0 / (1.0 + np.exp(-scores))
            worst = float(np.max(np.abs(head_p - probabilities)))
            if not worst <= CONSISTENCY_TOLERANCE:
                raise ModelContractError(
                    f"Grad-CAM of {self.model_label} disagrees with its prediction by "
                    f"{worst:.1e}: the model file does not have the expected structure."
                )
            h, w = patches.shape[1:3]
            for cam_raw, score, p in zip(cams, scores, probabilities, strict=True):
                raw = cam_raw.astype(np.float32)
                low = normalise_cam(raw)
                results.append(
                    GradCamResult(
                        cam=upsample_cam(low, w, h),
                        probability=float(p),
                        score=float(score),
                        cam_lowres=low,
                        cam_raw=raw,
                    )
                )
        return results

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Grad-CAM for one ``(p, p, 3)`` uint8 RGB patch."""
        patch = np.asarray(patch_uint8)
        if patch.ndim != 3:
            raise ValueError(f"expected one (p, p, 3) patch, got shape {patch.shape}")
        return self.compute_batch(patch[np.newaxis])[0]


class SharedGradCam:
    """A :class:`GradCam` of one model, built on first use, used by one thread at a time.

    Held by whoever holds the model (no module-level cache keyed by ``id``): a new model gets
    a new instance, and the old explainer goes with the old model.
    """

    def __init__(self, model: LoadedModel, factory: Callable[[Any], Any] | None = None) -> None:
        self.model = model
        self._factory = factory or GradCam.for_model
        self._lock = threading.Lock()
        self._cam: Any = None

    @property
    def model_label(self) -> str:
        """``name (hash[:8])``, as the window names the model."""
        spec = self.model.spec
        return f"{spec.name} ({spec.model_hash[:8]})" if spec.model_hash else str(spec.name)

    def _get(self) -> Any:
        if self._cam is None:
            self._cam = self._factory(self.model)
        return self._cam

    def compute_batch(self, patches_uint8: np.ndarray) -> list[GradCamResult]:
        """Explain patches (an empty batch only builds the explainer: a warm-up)."""
        with self._lock:
            return list(self._get().compute_batch(patches_uint8))

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        return self.compute_batch(np.asarray(patch_uint8)[np.newaxis])[0]


def overlay(
    patch_uint8: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: str = "jet"
) -> np.ndarray:
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
        A name of :data:`idc_viewer.core.colormap.COLORMAPS`.

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
    heat_rgb = colormap_lut(colormap)[levels]
    return cv2.addWeighted(patch, 1.0 - alpha, heat_rgb, alpha, 0.0)
