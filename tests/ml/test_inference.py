"""Predictors: preprocessing, LiteRT vs Keras agreement, batching; the fast path imports no TF."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from idc_viewer.ml.inference import KerasPredictor, LiteRtPredictor
from idc_viewer.ml.loading import load_model
from idc_viewer.ml.preprocessing import to_model_input
from idc_viewer.ml.spec import ModelSpec, Preprocessing, read_spec

if TYPE_CHECKING:
    from conftest import SavedModel


def _spec(input_size: int, interpolation: str) -> ModelSpec:
    return ModelSpec(
        name="x",
        preset="p",
        input_size=input_size,
        weights_file="x.keras",
        weights_sha256="0" * 64,
        preprocessing=Preprocessing(resize_interpolation=interpolation),
    )


def test_to_model_input_scales_without_resize(patch_factory: Any) -> None:
    patches = patch_factory(4)
    x = to_model_input(patches, _spec(50, "none"))
    assert x.dtype == np.float32 and x.shape == (4, 50, 50, 3)
    np.testing.assert_allclose(x, patches / 255.0, atol=1e-7)
    assert to_model_input(patches[0], _spec(50, "none")).shape == (1, 50, 50, 3)


@pytest.mark.parametrize("interpolation", ["bilinear", "area", "nearest"])
def test_to_model_input_resizes(interpolation: str) -> None:
    patch = np.zeros((1, 50, 50, 3), np.uint8)
    patch[:, :, 25:] = 255  # left half black, right half white
    x = to_model_input(patch, _spec(128, interpolation))
    assert x.shape == (1, 128, 128, 3) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert x[0, :, :60].max() == 0.0 and x[0, :, 68:].min() >= 1.0 - 1e-6
    edge = x[0, 0, 62:66, 0]
    if interpolation == "nearest":
        assert set(np.unique(edge)) <= {0.0, 1.0}
    elif interpolation == "bilinear":
        assert np.any((edge > 0) & (edge < 1))  # blended edge


def test_to_model_input_refuses_unplanned_resize_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="allows no resize"):
        to_model_input(np.zeros((2, 50, 50, 3), np.uint8), _spec(128, "none"))
    with pytest.raises(ValueError, match="RGB patches"):
        to_model_input(np.zeros((2, 50, 50), np.uint8), _spec(50, "none"))


def test_litert_agrees_with_keras_on_random_patches(
    saved_model: SavedModel, patch_factory: Any
) -> None:
    loaded = load_model(saved_model.spec_path)
    patches = patch_factory(300, seed=7)
    lite = loaded.predictor.predict(patches)
    keras_probs = KerasPredictor(saved_model.keras_model, loaded.spec).predict(patches)
    assert isinstance(loaded.predictor, LiteRtPredictor)
    assert lite.shape == keras_probs.shape == (300,) and lite.dtype == np.float32
    assert np.all(np.isfinite(lite))
    assert keras_probs.std() > 0.05, "fixture model outputs are not spread; test would be trivial"
    assert float(np.max(np.abs(lite - keras_probs))) < 1e-4


def test_litert_agrees_with_keras_on_real_patches(
    saved_model: SavedModel, idc_patches: np.ndarray
) -> None:
    spec = read_spec(saved_model.spec_path)
    lite = load_model(saved_model.spec_path).predictor.predict(idc_patches)
    keras_probs = KerasPredictor(saved_model.keras_model, spec).predict(idc_patches)
    assert len(idc_patches) >= 100
    assert float(np.max(np.abs(lite - keras_probs))) < 1e-3
    # A threshold inside the spread of outputs, so decisions are not all the same.
    threshold = float(np.median(keras_probs))
    agreement = np.mean((lite >= threshold) == (keras_probs >= threshold))
    assert agreement >= 0.995


@pytest.mark.parametrize("cls", ["litert", "keras"])
def test_any_batch_size(cls: str, saved_model: SavedModel, patch_factory: Any) -> None:
    spec = read_spec(saved_model.spec_path)
    if cls == "litert":
        predictor: Any = LiteRtPredictor(
            saved_model.directory / str(spec.tflite_file), spec, max_batch=64
        )
    else:
        predictor = KerasPredictor(saved_model.keras_model, spec, max_batch=64)
    patches = patch_factory(150, seed=3)
    whole = predictor.predict(patches)  # split 64 + 64 + 22
    assert whole.shape == (150,)
    parts = np.concatenate(
        [
            predictor.predict(patches[:1]),
            predictor.predict(patches[1:38]),
            predictor.predict(patches[38:]),
        ]
    )
    np.testing.assert_allclose(parts, whole, atol=1e-5)
    empty = predictor.predict(np.zeros((0, 50, 50, 3), np.uint8))
    assert empty.shape == (0,) and empty.dtype == np.float32


def test_litert_path_does_not_import_tensorflow(saved_model: SavedModel) -> None:
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from idc_viewer.ml.loading import load_model
        model = load_model({str(saved_model.spec_path)!r})
        probs = model.predictor.predict(np.full((5, 50, 50, 3), 200, np.uint8))
        assert probs.shape == (5,) and np.all(np.isfinite(probs)), probs
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        print("HEAVY", heavy[:5])
        assert not heavy, heavy
    """)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HEAVY []" in result.stdout
