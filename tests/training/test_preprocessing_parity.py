"""Training feeds the network exactly what the app feeds it (both presets, real patches)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from idc_viewer.ml.preprocessing import to_model_input  # noqa: E402
from idc_viewer.ml.spec import ModelSpec, Preprocessing  # noqa: E402
from training.config import PRESETS  # noqa: E402
from training.data import load_patches, scan_dataset  # noqa: E402
from training.pipeline import rescaler  # noqa: E402

PATIENT = "8951"


def _app_spec(preset: str) -> ModelSpec:
    settings = PRESETS[preset]
    return ModelSpec(
        name="parity",
        preset=preset,
        input_size=int(settings["input_size"]),
        preprocessing=Preprocessing(resize_interpolation=settings["resize_interpolation"]),
        weights_file="parity.keras",
        weights_sha256="0" * 64,
    )


def _real_patches(shared_data: Path) -> np.ndarray:
    if not (shared_data / "idc" / PATIENT).is_dir():
        pytest.skip(f"patient {PATIENT} not in {shared_data / 'idc'}")
    records = [r for r in scan_dataset(shared_data / "idc").records if r.patient == PATIENT]
    x, _, _, _ = load_patches(records[:64])
    return x


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_training_preprocessing_equals_the_apps(preset: str, shared_data: Path) -> None:
    patches = _real_patches(shared_data)
    spec = _app_spec(preset)
    trained_on = rescaler(spec.input_size)(tf.constant(patches)).numpy()
    app_feeds = to_model_input(patches, spec)
    assert (
        trained_on.shape == app_feeds.shape == (len(patches), spec.input_size, spec.input_size, 3)
    )
    # measured on 64 patches of 8951: max 1.2e-7 (paper preset, bilinear resize), 6e-8 (native)
    np.testing.assert_allclose(trained_on, app_feeds, atol=1e-5, rtol=0)
