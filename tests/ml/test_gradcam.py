"""Grad-CAM: maps in [0, 1], the shared model untouched, the degenerate case guarded."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest

from idc_viewer.ml.gradcam import GradCam, GradCamResult, overlay
from idc_viewer.ml.loading import load_model
from idc_viewer.ml.spec import read_spec

if TYPE_CHECKING:
    from conftest import SavedModel


@pytest.fixture(scope="module")
def cam(saved_model: SavedModel) -> GradCam:
    return GradCam(saved_model.keras_model, read_spec(saved_model.spec_path))


def test_cam_shape_and_range(cam: GradCam, patch_factory: Any) -> None:
    for patch in patch_factory(6, seed=11):
        result = cam.compute(patch)
        assert isinstance(result, GradCamResult)
        assert result.cam.shape == (50, 50) and result.cam.dtype == np.float32
        assert result.cam_lowres.shape == (6, 6)  # 50 -> 25 -> 12 -> 6 at separable_conv2d
        assert np.all(np.isfinite(result.cam))
        assert result.cam.min() >= 0.0 and result.cam.max() <= 1.0
        assert result.cam_lowres.max() in (0.0, 1.0)  # normalised by its maximum
        assert 0.0 < result.probability < 1.0


def test_probability_equals_model_prediction(
    cam: GradCam, saved_model: SavedModel, patch_factory: Any
) -> None:
    patches = patch_factory(8, seed=5)
    expected = np.asarray(saved_model.keras_model(patches / 255.0, training=False)).ravel()
    results = cam.compute_batch(patches)
    got = np.array([r.probability for r in results])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    scores = np.array([r.score for r in results])
    np.testing.assert_allclose(1 / (1 + np.exp(-scores)), expected, atol=1e-5)
    lite = load_model(saved_model.spec_path).predictor.predict(patches)
    np.testing.assert_allclose(got, lite, atol=1e-4)
    single = cam.compute(patches[3])
    np.testing.assert_allclose(single.cam, results[3].cam, atol=1e-5)


def test_model_is_never_changed(saved_model: SavedModel, patch_factory: Any) -> None:
    import keras

    model = saved_model.keras_model
    before = [w.copy() for w in model.get_weights()]
    layers_before = [layer.name for layer in model.layers]
    patches = patch_factory(4, seed=2)
    prediction_before = np.asarray(model(patches / 255.0, training=False))
    gradcam = GradCam(model, "separable_conv2d", read_spec(saved_model.spec_path))
    gradcam.compute(patches[0])
    gradcam.compute_batch(patches)
    assert model.layers[-1].activation is keras.activations.sigmoid
    assert [layer.name for layer in model.layers] == layers_before
    after = model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    np.testing.assert_array_equal(np.asarray(model(patches / 255.0, training=False)),
                                  prediction_before)


def test_all_zero_map_gives_zeros_not_nan(saved_model: SavedModel, patch_factory: Any) -> None:
    import keras

    model = keras.models.clone_model(saved_model.keras_model)
    model.set_weights(saved_model.keras_model.get_weights())
    final = model.get_layer("dense_2")
    kernel, bias = final.get_weights()
    final.set_weights([np.zeros_like(kernel), bias])  # score no longer depends on the image
    result = GradCam(model, read_spec(saved_model.spec_path)).compute(patch_factory(2)[0])
    assert np.all(np.isfinite(result.cam)) and not np.any(result.cam)
    assert not np.any(result.cam_lowres)


def test_unknown_layer_is_refused(saved_model: SavedModel) -> None:
    from idc_viewer.ml.spec import ModelContractError

    with pytest.raises(ModelContractError, match="no layer 'nope'"):
        GradCam(saved_model.keras_model, "nope", read_spec(saved_model.spec_path))


def test_overlay_colours_are_rgb() -> None:
    patch = np.full((50, 50, 3), 255, np.uint8)
    cam = np.zeros((50, 50), np.float32)
    cam[:, 25:] = 1.0
    out = overlay(patch, cam, alpha=1.0)
    assert out.shape == (50, 50, 3) and out.dtype == np.uint8
    low, high = out[0, 0].astype(int), out[0, 49].astype(int)
    assert low[2] > low[0]  # JET at 0 is blue: the B of RGB
    assert high[0] > high[2]  # JET at 1 is red: the R of RGB
    np.testing.assert_array_equal(overlay(patch, cam, alpha=0.0), patch)
    blended = overlay(patch, cv2.resize(cam, (6, 6)), alpha=0.4)  # low-res map is resized
    assert blended.shape == (50, 50, 3)
