"""The context stage: a patch's decision probability from its analysed tissue neighbourhood.

IDC is a region, not a speckle. After the CNN has scored each patch on its own 200 µm view, the
decision probability of a patch is the Gaussian-weighted mean of the CNN probabilities of the
*analysed* patches around it (itself included), normalised by the weights that fell on analysed
patches. Background and not-yet-analysed cells carry no weight, so

- a tissue island or the slide border is averaged over the tissue that is there, not diluted by
  zeros;
- a half-analysed (cancelled) slide uses only what was analysed, and once the remaining batches
  arrive the map equals an uninterrupted run's (it is a pure function of the probability grid);
- cells with no probability stay ``NaN``.

The parameters (and the decision threshold chosen with them on validation slides) belong to the
model's contract (:class:`idc_viewer.ml.spec.ContextSpec`); a model without them runs without
context.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from numpy.typing import NDArray

#: The kernel is cut at this many σ: beyond it a weight is below 1.1 % of the centre's.
TRUNCATE_SIGMAS = 3.0
#: Name of the one method, recorded in specs and provenance.
GAUSSIAN_TISSUE_MEAN = "gaussian-tissue-mean"


def gaussian_kernel_1d(sigma_patches: float) -> NDArray[np.float64]:
    """Normalised 1-D Gaussian weights over ``±ceil(3σ)`` patches (σ in patches, > 0)."""
    if not (math.isfinite(sigma_patches) and sigma_patches > 0):
        raise ValueError(f"sigma_patches must be a positive number, got {sigma_patches!r}")
    radius = max(1, math.ceil(TRUNCATE_SIGMAS * sigma_patches))
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    weights = np.exp(-0.5 * (offsets / sigma_patches) ** 2)
    normalised: NDArray[np.float64] = weights / weights.sum()
    return normalised


def context_probabilities(
    probabilities: NDArray[np.floating], sigma_patches: float
) -> NDArray[np.float32]:
    """Decision probabilities from CNN probabilities (``NaN`` = not analysed).

    Parameters
    ----------
    probabilities : numpy.ndarray
        ``[rows, cols]`` CNN probabilities in [0, 1]; ``NaN`` where no patch was analysed.
    sigma_patches : float
        Standard deviation of the Gaussian, in patches (grid cells); 0 returns a copy.

    Returns
    -------
    numpy.ndarray
        ``float32 [rows, cols]``: for each analysed cell, the Gaussian-weighted mean of the
        analysed cells' probabilities around it; ``NaN`` where the input is ``NaN``.
    """
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise ValueError(f"probabilities must be a 2-D grid, got shape {probs.shape}")
    analysed = ~np.isnan(probs)
    if sigma_patches == 0 or not analysed.any():
        return probs.astype(np.float32)
    kernel = gaussian_kernel_1d(sigma_patches)
    weights = analysed.astype(np.float64)
    values = np.where(analysed, probs, 0.0)
    # zero padding: outside the grid there is no tissue, so it adds neither value nor weight
    border = cv2.BORDER_CONSTANT
    numerator = cv2.sepFilter2D(values, cv2.CV_64F, kernel, kernel, borderType=border)
    denominator = cv2.sepFilter2D(weights, cv2.CV_64F, kernel, kernel, borderType=border)
    out = np.full(probs.shape, np.nan, dtype=np.float64)
    # an analysed cell always weighs itself (centre weight > 0), so the denominator is > 0
    out[analysed] = numerator[analysed] / denominator[analysed]
    return np.clip(out, 0.0, 1.0).astype(np.float32)
