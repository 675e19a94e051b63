"""Hostile model archives and specs are refused at load, in one line, before any of it runs."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from model_tamper import rewrite_archive, rewrite_spec

from idc_viewer.ml.loading import load_model
from idc_viewer.ml.spec import ModelContractError, read_spec, sha256_of

if TYPE_CHECKING:
    from conftest import SavedModel


def copy_model(saved: SavedModel, tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "model"
    shutil.copytree(saved.directory, target)
    spec_path = target / saved.spec_path.name
    return spec_path, target / json.loads(spec_path.read_text())["weights_file"]


def refused(path: Path, match: str) -> str:
    with pytest.raises(ModelContractError, match=match) as info:
        load_model(path)
    assert "\n" not in str(info.value)
    return str(info.value)


class Payload:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled!",))


def test_pickled_weights_are_refused_even_with_a_tflite(saved_model, tmp_path):
    spec_path, _ = copy_model(saved_model, tmp_path)
    assert read_spec(spec_path).tflite_file  # the case where only config.json was checked
    rewrite_archive(spec_path, **{"model.weights.h5": pickle.dumps(Payload())})
    refused(spec_path, "not an HDF5 file")


@pytest.mark.parametrize(
    "extra", ["payload.py", "../../../tmp/zipslip.txt", "assets/x.bin", "/abs/path.txt"]
)
def test_extra_members_are_refused(saved_model, tmp_path, extra):
    spec_path, _ = copy_model(saved_model, tmp_path)
    rewrite_archive(spec_path, **{extra: b"print('hi')"})
    refused(spec_path, "Keras never writes")


def test_missing_weights_member_is_refused(saved_model, tmp_path):
    spec_path, _ = copy_model(saved_model, tmp_path)
    rewrite_archive(spec_path, **{"model.weights.h5": None})
    refused(spec_path, "model.weights.h5 missing")


def test_a_member_twice_is_refused(saved_model, tmp_path):
    spec_path, keras_path = copy_model(saved_model, tmp_path)
    with zipfile.ZipFile(keras_path, "a") as archive, pytest.warns(UserWarning):
        archive.writestr("config.json", b"{}")  # zip allows it; the later one would win
    rewrite_spec(spec_path, weights_sha256=sha256_of(keras_path))
    refused(spec_path, "same member twice")


def test_a_deeply_nested_config_is_refused(saved_model, tmp_path):
    spec_path, _ = copy_model(saved_model, tmp_path)
    rewrite_archive(spec_path, **{"config.json": b"[" * 200_000 + b"]" * 200_000})
    refused(spec_path, "nested too deeply")


def test_a_config_with_odd_types_is_refused(saved_model, tmp_path):
    spec_path, _ = copy_model(saved_model, tmp_path)
    odd = {"class_name": "Functional", "config": {"layers": [1, "two", None]}}
    rewrite_archive(spec_path, **{"config.json": json.dumps(odd).encode()})
    refused(spec_path, "malformed Keras configuration")


@pytest.mark.parametrize(
    ("change", "value", "match"),
    [
        ("threshold", True, "threshold True"),
        ("threshold", float("nan"), "threshold nan"),
        ("input_size", True, "input_size True"),
        ("input_size", 50.0, "input_size 50.0"),
        ("patch_mpp", "4.0", "patch_mpp '4.0'"),
        ("preprocessing.scale", float("nan"), "scale nan"),
        ("preprocessing.scale", True, "scale True"),
        ("preprocessing.color", "BGR", "color 'BGR' is not supported"),
        ("preprocessing.colour", "RGB", "unknown preprocessing field 'colour'"),
        ("weights_sha256", "z" * 64, "64-hex-digit"),
        ("gradcam_layer", 7, "gradcam_layer 7"),
        ("metrics", [], "metrics must be an object"),
        ("name", None, "name None"),
    ],
)
def test_spec_values_are_type_checked_strictly(saved_model, tmp_path, change, value, match):
    spec_path, _ = copy_model(saved_model, tmp_path)
    rewrite_spec(spec_path, **{change: value})
    refused(spec_path, match)


def test_a_huge_or_deeply_nested_spec_is_refused_unread(tmp_path):
    big = tmp_path / "big.spec.json"
    big.write_text('{"format": "idc-viewer-model/1", "pad": "' + "x" * (1 << 20) + '"}')
    with pytest.raises(ModelContractError, match="refused unread"):
        read_spec(big)
    deep = tmp_path / "deep.spec.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(ModelContractError, match="nested too deeply"):
        read_spec(deep)


def test_info_with_a_deep_spec_is_one_line(tmp_path, capsys):
    from idc_viewer.cli.main import main

    deep = tmp_path / "deep.spec.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert main(["info", "slide.svs", "--model", str(deep)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "nested" in err


def test_gradcam_of_a_model_keras_would_refuse_needs_no_keras(saved_model, tmp_path, capsys):
    """Passes the archive check (known Keras module), but Keras cannot build it in safe mode.

    Grad-CAM runs on the LiteRT model and the hash-checked weights (no Keras model is built),
    and checks its numpy head against the .tflite's own output: the explanation is written,
    with one line on stderr and no traceback.
    """
    from slide_fakes import write_pyramid_tiff

    from idc_viewer.cli.main import main

    spec_path, keras_path = copy_model(saved_model, tmp_path)
    with zipfile.ZipFile(keras_path) as src:
        config = json.loads(src.read("config.json"))
    layers = config["config"]["layers"]
    inner = next(layer for layer in layers if layer["class_name"] == "BatchNormalization")
    inner["class_name"] = "NoSuchLayer"
    rewrite_archive(spec_path, **{"config.json": json.dumps(config).encode()})
    image = np.full((400, 400, 3), 240, np.uint8)
    image[100:300, 100:300] = (200, 100, 170)
    slide = write_pyramid_tiff(tmp_path / "s.tiff", image, levels=1, mpp=4.0)
    rc = main(
        [
            "gradcam",
            str(slide),
            "--x",
            "200",
            "--y",
            "200",
            "-o",
            str(tmp_path / "g.png"),
            "--model",
            str(spec_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 0, err
    assert [line for line in err.splitlines() if line.strip()] == [err.strip()]
    assert "Traceback" not in err and "P(IDC)" in err
    assert (tmp_path / "g.png").stat().st_size > 0
