"""Grad-CAM for the IDC network without TensorFlow: the explainer, its maps, their overlay.

The paper's Grad-CAM is the gradient of the pre-sigmoid score with respect to the output ``A``
of ``separable_conv2d``, averaged over space per channel (``alpha_k``), then
``ReLU(sum_k alpha_k A_k)``, normalised to [0, 1] and upsampled to the patch. ``A`` comes from
the verified ``.tflite`` (:mod:`idc_viewer.ml.gradcam_features`), the gradient from a numpy
copy of the network after that layer (:mod:`idc_viewer.ml.gradcam_head`). Every batch is
checked: the head's sigmoid must equal the ``.tflite``'s own output, so a converter that ever
fused or renamed that tensor is refused with a message, never explained wrongly. Only numpy,
OpenCV, h5py and LiteRT are imported (TensorFlow costs 3-4 s and ~600 MiB).

Only computes: it returns arrays in [0, 1]; painting is :func:`overlay` or the engine's job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from idc_viewer.core.colormap import colormap_lut
from idc_viewer.core.labels import model_label
from idc_viewer.ml.gradcam_features import FeatureSource, KerasFeatures, LiteRtFeatures
from idc_viewer.ml.gradcam_head import Head
from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelContractError, ModelSpec

if TYPE_CHECKING:
    from idc_viewer.ml.loading import LoadedModel

#: |sigmoid(head score) - .tflite probability| above this means the feature map is not the
#: one the head was written for.
CONSISTENCY_TOLERANCE = 1e-4


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

    @classmethod
    def from_raw(
        cls, cam_raw: np.ndarray, score: float, probability: float, width_px: int, height_px: int
    ) -> GradCamResult:
        """The explanation of a patch from its raw map: normalised, then upsampled to the patch."""
        raw = np.asarray(cam_raw, np.float32)
        low = normalise_cam(raw)
        return cls(
            cam=upsample_cam(low, width_px, height_px),
            probability=float(probability),
            score=float(score),
            cam_lowres=low,
            cam_raw=raw,
        )


def patch_batch(patches_uint8: np.ndarray) -> np.ndarray:
    """``(N, p, p, 3)`` patches from a batch, or from one ``(p, p, 3)`` patch."""
    patches = np.asarray(patches_uint8)
    return patches[np.newaxis] if patches.ndim == 3 else patches


def one_patch(patch_uint8: np.ndarray) -> np.ndarray:
    """A batch of the one ``(p, p, 3)`` patch given; ValueError for any other shape."""
    patch = np.asarray(patch_uint8)
    if patch.ndim != 3:
        raise ValueError(f"expected one (p, p, 3) patch, got shape {patch.shape}")
    return patch[np.newaxis]


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
        patches = patch_batch(patches_uint8)
        if patches.shape[0] == 0:
            return []
        x = to_model_input(patches, self.spec)
        h, w = patches.shape[1:3]
        results: list[GradCamResult] = []
        for start in range(0, len(x), self.max_batch):
            features, probabilities = self._source.features(x[start : start + self.max_batch])
            cams, scores = self.head.cams(features)
            self._check(scores, probabilities)
            for cam_raw, score, p in zip(cams, scores, probabilities, strict=True):
                results.append(GradCamResult.from_raw(cam_raw, score, p, w, h))
        return results

    def _check(self, scores: np.ndarray, probabilities: np.ndarray) -> None:
        """Refuse a head whose sigmoid is not the ``.tflite``'s probability."""
        head_p = 1.0 / (1.0 + np.exp(-scores))
        worst = float(np.max(np.abs(head_p - probabilities)))
        if not worst <= CONSISTENCY_TOLERANCE:
            raise ModelContractError(
                f"Grad-CAM of {self.model_label} disagrees with its prediction by "
                f"{worst:.1e}: the model file does not have the expected structure."
            )

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Grad-CAM for one ``(p, p, 3)`` uint8 RGB patch."""
        return self.compute_batch(one_patch(patch_uint8))[0]


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
        return model_label(str(spec.name), spec.model_hash)

    def _get(self) -> Any:
        if self._cam is None:
            self._cam = self._factory(self.model)
        return self._cam

    def compute_batch(self, patches_uint8: np.ndarray) -> list[GradCamResult]:
        """Explain patches (an empty batch only builds the explainer: a warm-up)."""
        with self._lock:
            return list(self._get().compute_batch(patches_uint8))

    def compute(self, patch_uint8: np.ndarray) -> GradCamResult:
        """Explain one ``(p, p, 3)`` uint8 RGB patch."""
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
