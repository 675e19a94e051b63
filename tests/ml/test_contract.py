"""Saving and loading through the contract: round trip, and every refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
from model_tamper import rewrite_spec

from idc_viewer.ml import loading
from idc_viewer.ml.loading import ModelLoadError, load_keras_model, load_model
from idc_viewer.ml.spec import ModelContractError, ModelSpec, read_spec, sha256_of, write_spec

if TYPE_CHECKING:
    from conftest import SavedModel


def _copy_model(saved: SavedModel, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(saved.directory, target)
    return target / saved.spec_path.name


def _assert_refused(path: Path, match: str) -> ModelContractError:
    with pytest.raises(ModelContractError, match=match) as info:
        load_model(path)
    message = str(info.value)
    assert message and "\n" not in message, f"not a one-line message: {message!r}"
    return info.value


def _spec_for_file(path: Path, input_size: int = 50) -> Path:
    """A valid spec whose hash matches ``path``, so only the file's content can be refused."""
    spec = ModelSpec(
        name=path.stem,
        preset="native",
        input_size=input_size,
        weights_file=path.name,
        weights_sha256=sha256_of(path),
    )
    return write_spec(spec, path.parent)


def test_round_trip(saved_model: SavedModel, patch_factory: Any) -> None:
    spec = read_spec(saved_model.spec_path)
    assert spec.weights_file == "test-native-50.keras"
    assert spec.tflite_file == "test-native-50.tflite"
    keras_path = saved_model.directory / spec.weights_file
    assert spec.weights_sha256 == sha256_of(keras_path)
    assert spec.tflite_sha256 == sha256_of(saved_model.directory / spec.tflite_file)

    for path in (saved_model.spec_path, keras_path):
        loaded = load_model(path)
        assert loaded.spec == spec
        assert loaded.uses_litert
        assert loaded.keras_path == keras_path

    loaded = load_model(keras_path)
    model = loaded.keras_model
    assert model is loaded.keras_model  # loaded once
    original = saved_model.keras_model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), original, strict=True))
    x = patch_factory(16)
    np.testing.assert_allclose(
        loaded.predictor.predict(x),
        np.asarray(saved_model.keras_model(x / 255.0)).ravel(),
        atol=1e-4,
    )


def test_wrong_weights_hash_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    rewrite_spec(spec_path, weights_sha256="ab" * 32)
    _assert_refused(spec_path, "does not match its spec")


def test_tampered_tflite_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    tflite = spec_path.with_name("test-native-50.tflite")
    data = bytearray(tflite.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tflite.write_bytes(bytes(data))
    _assert_refused(spec_path, "test-native-50.tflite does not match")


def test_spec_input_size_mismatch_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    rewrite_spec(spec_path, input_size=64)
    _assert_refused(spec_path, "shape")


def test_spec_gradcam_layer_missing_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    rewrite_spec(spec_path, gradcam_layer="no_such_layer")
    _assert_refused(spec_path, "Grad-CAM layer")


def test_other_keras_file_than_the_spec_names_is_refused(
    saved_model: SavedModel, tmp_path: Path
) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    other = spec_path.with_name("other.keras")
    shutil.copy(spec_path.with_name("test-native-50.keras"), other)
    shutil.copy(spec_path, spec_path.with_name("other.spec.json"))
    _assert_refused(other, "describes test-native-50.keras, not other.keras")


def test_path_in_weights_file_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    rewrite_spec(spec_path, weights_file="../model/test-native-50.keras")
    _assert_refused(spec_path, "plain file name")


def test_missing_spec_gives_clear_message(saved_model: SavedModel, tmp_path: Path) -> None:
    lone = tmp_path / "lone.keras"
    shutil.copy(saved_model.directory / "test-native-50.keras", lone)
    _assert_refused(lone, r"No model spec found at lone\.spec\.json")


def test_missing_file_gives_clear_message(tmp_path: Path) -> None:
    _assert_refused(tmp_path / "nothing.keras", "not found")


def test_lambda_layer_is_refused(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((50, 50, 3), name="input")
    x = keras.layers.Lambda(lambda t: t * 2.0, name="lambda")(inputs)
    x = keras.layers.SeparableConv2D(4, 3, padding="same", name="separable_conv2d")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="dense_2")(x)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    spec_path = _spec_for_file(path)

    error = _assert_refused(spec_path, "Lambda")
    assert "custom code" in str(error)
    # The lazy full load (safe_mode=True) refuses it as well, independently of the zip check.
    with pytest.raises(ModelContractError, match=r"refused to load lambda\.keras safely"):
        load_keras_model(path, read_spec(spec_path))


def test_custom_class_is_refused(saved_model: SavedModel, tmp_path: Path) -> None:
    spec_path = _copy_model(saved_model, tmp_path)
    keras_path = spec_path.with_name("test-native-50.keras")
    import zipfile

    with zipfile.ZipFile(keras_path) as src:
        members = {name: src.read(name) for name in src.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][1]["module"] = "evil_module"
    members["config.json"] = json.dumps(config).encode()
    hacked = tmp_path / "hacked.keras"
    with zipfile.ZipFile(hacked, "w") as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    _assert_refused(_spec_for_file(hacked), "custom class 'Conv2D' from module 'evil_module'")


def _png_bytes() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("kind", ["text", "truncated", "png", "empty"])
def test_non_model_files_are_refused(kind: str, saved_model: SavedModel, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.keras"
    if kind == "text":
        path.write_text("this is not a model\n")
    elif kind == "truncated":
        data = (saved_model.directory / "test-native-50.keras").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "png":
        path.write_bytes(_png_bytes())
    else:
        path.write_bytes(b"")
    _assert_refused(_spec_for_file(path), rf"{kind}\.keras is not a valid Keras model file")


def test_png_without_spec_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "slide.png"
    path.write_bytes(_png_bytes())
    _assert_refused(path, "No model spec found")


def test_load_error_alias() -> None:
    assert ModelLoadError is ModelContractError


def test_save_refuses_model_not_matching_spec(
    saved_model: SavedModel, tmp_path: Path, spec_factory: Any
) -> None:
    from idc_viewer.ml.saving import save_model

    with pytest.raises(ModelContractError, match="shape"):
        save_model(saved_model.keras_model, spec_factory(input_size=64), tmp_path)
    assert not list(tmp_path.iterdir())


def test_save_refuses_a_conversion_that_differs(
    saved_model: SavedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec_factory: Any
) -> None:
    """A .tflite that does not reproduce Keras (e.g. lost weights) is never written."""
    import keras

    from idc_viewer.ml import saving

    other = keras.models.clone_model(saved_model.keras_model)
    other.set_weights(saved_model.keras_model.get_weights())
    final = other.get_layer("dense_2")
    kernel, bias = final.get_weights()
    final.set_weights([kernel, bias + 3.0])
    real_convert = saving._convert
    monkeypatch.setattr(saving, "_convert", lambda model, q: real_convert(other, q))
    with pytest.raises(saving.ConversionError, match="differs from Keras"):
        saving.save_model(saved_model.keras_model, spec_factory(), tmp_path)
    assert not list(tmp_path.glob("*.tflite")) and not list(tmp_path.glob("*.spec.json"))


def test_default_model_path(
    saved_model: SavedModel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(loading.MODEL_ENV_VAR, str(saved_model.spec_path))
    assert loading.default_model_path() == saved_model.spec_path

    monkeypatch.setenv(loading.MODEL_ENV_VAR, str(tmp_path / "gone.keras"))
    with pytest.raises(ModelContractError, match="not a file"):
        loading.default_model_path()

    monkeypatch.delenv(loading.MODEL_ENV_VAR)
    empty = tmp_path / "models"
    empty.mkdir()
    monkeypatch.setattr(loading, "_models_dirs", lambda: [empty])
    with pytest.raises(ModelContractError, match="No bundled model"):
        loading.default_model_path()
    (empty / "b.spec.json").write_text("{}")
    (empty / "a.spec.json").write_text("{}")
    assert loading.default_model_path() == empty / "a.spec.json"
    (empty / f"{loading.PREFERRED_DEFAULT}.spec.json").write_text("{}")
    assert loading.default_model_path().name == f"{loading.PREFERRED_DEFAULT}.spec.json"
