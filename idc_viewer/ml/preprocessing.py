"""Patch -> network input, exactly as the spec says (numpy + OpenCV only, no TensorFlow).

The LiteRT fast path runs without TensorFlow, so this module must never import it.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

#: OpenCV interpolation for each ``Preprocessing.resize_interpolation`` value.
CV2_INTERPOLATION = {
    "bilinear": cv2.INTER_LINEAR,
    "area": cv2.INTER_AREA,
    "nearest": cv2.INTER_NEAREST,
}


def to_model_input(patches_uint8: np.ndarray, spec: Any) -> np.ndarray:
    """Turn RGB uint8 patches into the float32 batch the network expects.

    Parameters
    ----------
    patches_uint8
        ``(N, p, p, 3)`` RGB patches (one ``(p, p, 3)`` patch is accepted too), normally uint8.
    spec
        A :class:`~idc_viewer.ml.spec.ModelSpec` (or any object with ``input_size`` and
        ``preprocessing.scale`` / ``preprocessing.resize_interpolation``).

    Returns
    -------
    numpy.ndarray
        ``(N, input_size, input_size, 3)`` float32: resized with the spec's interpolation when the
        patch side differs from ``input_size``, then multiplied by ``preprocessing.scale``.

    Raises
    ------
    ValueError
        If the array is not a batch of RGB patches, or a resize is needed but the spec's
        interpolation is ``"none"``.
    """
    arr = np.asarray(patches_uint8)
    if arr.ndim == 3:
        arr = arr[np.newaxis]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"expected RGB patches of shape (N, p, p, 3), got {arr.shape}")
    size = int(spec.input_size)
    scale = np.float32(spec.preprocessing.scale)
    if arr.shape[1:3] != (size, size):
        method = spec.preprocessing.resize_interpolation
        if method not in CV2_INTERPOLATION:
            raise ValueError(
                f"patches are {arr.shape[1]}x{arr.shape[2]} px but the model takes {size}x{size} "
                f"and its spec allows no resize (resize_interpolation={method!r})"
            )
        flag = CV2_INTERPOLATION[method]
        out = np.empty((arr.shape[0], size, size, 3), dtype=np.float32)
        # Resize in float32 (no rounding back to uint8), as tf.image.resize does in training.
        for i, patch in enumerate(arr):
            out[i] = cv2.resize(patch.astype(np.float32), (size, size), interpolation=flag)
        np.clip(out, 0.0, 255.0, out=out)  # float area/bilinear may overshoot by rounding
        out *= scale
        return out
    return arr.astype(np.float32) * scale
