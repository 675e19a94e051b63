"""Shared fixtures for the ml tests: one small random native model, saved through save_model.

Nothing here depends on which model it is: the weights are random (seeded), and the final
kernel is scaled so that probabilities spread over (0, 1) instead of all sitting near 0.5,
which would make every agreement check pass trivially.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# scripts/model_tamper.py: the hostile model files, shared with scripts/fuzz_cli.py
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

IDC_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "idc"


@dataclass(frozen=True)
class SavedModel:
    """The fixture model: its spec path and the in-memory Keras model it was saved from."""

    spec_path: Path
    keras_model: Any
    directory: Path


def make_spec(name: str = "test-native-50", input_size: int = 50, **kwargs: Any) -> Any:
    from idc_viewer.ml.spec import ModelSpec

    return ModelSpec(
        name=name,
        preset="native",
        input_size=input_size,
        weights_file=f"{name}.keras",
        weights_sha256="0" * 64,
        **kwargs,
    )


def random_patches(n: int, seed: int = 0, size: int = 50) -> np.ndarray:
    """Noise plus smooth pink/purple patches (uint8 RGB)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (n - n // 2, size, size, 3), dtype=np.uint8)
    base = rng.integers(60, 256, (n // 2, 1, 1, 3)).astype(np.float32)
    ramp = np.linspace(0.5, 1.0, size, dtype=np.float32)[None, :, None, None]
    smooth = np.clip(base * ramp, 0, 255).astype(np.uint8).repeat(size, axis=2)
    return np.concatenate([noise, smooth])


def real_patches(limit: int = 300) -> np.ndarray | None:
    """Up to ``limit`` real 50x50 IDC patches (both classes), or None without the data."""
    if not IDC_DIR.is_dir():
        return None
    files = sorted(IDC_DIR.glob("*/*/*.png"))
    if not files:
        return None
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(files), size=min(len(files), limit * 2), replace=False)
    patches = []
    for i in chosen:
        image = cv2.imread(str(files[i]), cv2.IMREAD_COLOR)
        if image is not None and image.shape[:2] == (50, 50):
            patches.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        if len(patches) == limit:
            break
    return np.stack(patches) if patches else None


@pytest.fixture(scope="session")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    from idc_viewer.ml.inference import configure_tensorflow_threads

    configure_tensorflow_threads()
    import keras

    from idc_viewer.ml.model_def import build_model
    from idc_viewer.ml.saving import save_model

    keras.utils.set_random_seed(1234)
    model = build_model(50)
    final = model.get_layer("dense_2")
    kernel, bias = final.get_weights()
    final.set_weights([kernel * 400.0, bias])  # spread the probabilities over (0, 1)
    directory = tmp_path_factory.mktemp("model")
    spec_path = save_model(model, make_spec(), directory, sample_patches=random_patches(64))
    return SavedModel(spec_path=spec_path, keras_model=model, directory=directory)


@pytest.fixture(scope="session")
def spec_factory() -> Any:
    """``make_spec(name=..., input_size=..., **fields)``: a spec before saving (dummy hash)."""
    return make_spec


@pytest.fixture(scope="session")
def patch_factory() -> Any:
    """``random_patches(n, seed=0, size=50)``: synthetic uint8 RGB patches."""
    return random_patches


@pytest.fixture(scope="session")
def idc_patches() -> np.ndarray:
    """A few hundred real IDC patches; skips the test when ../shared/data/idc is absent."""
    patches = real_patches(300)
    if patches is None:
        pytest.skip(f"real IDC patches not available at {IDC_DIR}")
    return patches
