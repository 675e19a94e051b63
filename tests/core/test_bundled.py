"""The bundled resources are found as package data (importlib.resources), not by walking up."""

from __future__ import annotations

from pathlib import Path

import pytest

import idc_viewer
from idc_viewer.core import bundled


def test_resources_sit_inside_the_package() -> None:
    package = Path(idc_viewer.__file__).resolve().parent
    assert bundled.resources_dir().resolve() == package / "resources"


def test_the_bundled_models_demo_slide_and_icon_are_there() -> None:
    assert sorted(bundled.models_dir().glob("*.spec.json")), "no bundled model spec"
    assert sorted(bundled.demo_dir().glob("*.tiff")), "no demo slide"
    png = bundled.icon_path().read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert bundled.icon_path(".svg").read_text(encoding="utf-8").lstrip().startswith("<svg")


def test_the_default_model_is_the_bundled_native_one(monkeypatch: pytest.MonkeyPatch) -> None:
    from idc_viewer.ml.loading import MODEL_ENV_VAR, default_model_path

    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    assert default_model_path() == bundled.models_dir() / "idc-native-50.spec.json"
