"""The context stage on synthetic grids: islands, borders, background, partial analyses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from idc_viewer.core.context import context_probabilities, gaussian_kernel_1d

NAN = np.nan


def brute_force(probs: np.ndarray, sigma: float) -> np.ndarray:
    """The definition, cell by cell: weighted mean over analysed neighbours within 3σ."""
    kernel = gaussian_kernel_1d(sigma)
    r = len(kernel) // 2
    out = np.full(probs.shape, np.nan)
    rows, cols = probs.shape
    for i in range(rows):
        for j in range(cols):
            if math.isnan(probs[i, j]):
                continue
            num = den = 0.0
            for di in range(-r, r + 1):
                for dj in range(-r, r + 1):
                    a, b = i + di, j + dj
                    if 0 <= a < rows and 0 <= b < cols and not math.isnan(probs[a, b]):
                        w = kernel[di + r] * kernel[dj + r]
                        num += w * probs[a, b]
                        den += w
            out[i, j] = num / den
    return out


def test_equals_the_definition_on_a_random_grid_with_background():
    rng = np.random.default_rng(3)
    probs = rng.random((9, 13))
    probs[rng.random(probs.shape) < 0.3] = NAN
    for sigma in (0.5, 1.0, 2.0):
        np.testing.assert_allclose(
            context_probabilities(probs, sigma), brute_force(probs, sigma), atol=1e-6
        )


def test_background_and_unanalysed_cells_stay_nan_and_carry_no_weight():
    probs = np.full((5, 5), NAN)
    probs[1:4, 1:4] = 0.8  # a 3x3 tissue block on glass
    out = context_probabilities(probs, 1.5)
    assert np.isnan(out[0]).all() and np.isnan(out[:, 0]).all()
    # glass does not dilute the block: a constant field stays constant up to its edge
    np.testing.assert_allclose(out[1:4, 1:4], 0.8, atol=1e-6)


def test_an_isolated_tissue_island_keeps_its_own_probability():
    probs = np.full((15, 15), NAN)
    probs[7, 7] = 0.9  # one patch, nothing analysed within 3σ
    probs[0:3, 0:3] = 0.05  # benign tissue far away
    out = context_probabilities(probs, 1.0)
    assert out[7, 7] == pytest.approx(0.9, abs=1e-6)


def test_an_isolated_positive_in_benign_tissue_is_damped_and_a_region_is_kept():
    probs = np.full((11, 11), 0.1)
    probs[5, 5] = 0.95  # speckle
    out = context_probabilities(probs, 1.0)
    assert out[5, 5] < 0.5
    region = np.full((11, 11), 0.1)
    region[3:8, 3:8] = 0.9
    assert context_probabilities(region, 1.0)[5, 5] > 0.85


def test_the_slide_border_is_not_padded_with_zeros():
    probs = np.full((4, 6), 0.7)
    np.testing.assert_allclose(context_probabilities(probs, 2.0), 0.7, atol=1e-6)


def test_a_partial_analysis_uses_only_what_is_analysed_and_converges_to_the_full_map():
    rng = np.random.default_rng(0)
    full = rng.random((8, 10))
    partial = full.copy()
    partial[4:] = NAN  # the run was cancelled half-way
    out_partial = context_probabilities(partial, 1.0)
    assert np.isnan(out_partial[4:]).all()
    np.testing.assert_allclose(out_partial, brute_force(partial, 1.0), atol=1e-6)
    resumed = partial.copy()
    resumed[4:] = full[4:]
    np.testing.assert_array_equal(
        context_probabilities(resumed, 1.0), context_probabilities(full, 1.0)
    )


def test_sigma_zero_is_the_cnn_map_and_bad_sigmas_are_refused():
    probs = np.array([[0.2, NAN], [0.9, 0.4]])
    np.testing.assert_array_equal(context_probabilities(probs, 0.0), probs.astype(np.float32))
    for sigma in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError):
            context_probabilities(probs, sigma)
    assert np.isnan(context_probabilities(np.full((3, 3), NAN), 1.0)).all()
    with pytest.raises(ValueError):
        context_probabilities(np.zeros(4), 1.0)
