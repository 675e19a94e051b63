"""A fast, deterministic stand-in for the CNN, shared by the engine and the application tests."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from idc_viewer.ml.spec import ModelSpec


def fake_spec(name: str = "fake", digit: str = "a", threshold: float = 0.5) -> ModelSpec:
    """A native-preset contract; ``digit`` makes the weights hash (and so the model id) differ."""
    return ModelSpec(
        name=name,
        preset="native",
        input_size=50,
        patch_size_px=50,
        patch_mpp=4.0,
        threshold=threshold,
        weights_file=f"{name}.keras",
        weights_sha256=digit * 64,
        metrics={"test": {"auc": 0.91, "balanced_accuracy": 0.84}},
    )


def save_random_model(directory: Path, seed: int = 0) -> Path:
    """Save a randomly initialised native (50 px) model with its .tflite; the spec's path.

    Seeded, so every run tests the same weights: an unlucky draw can make a Grad-CAM zero
    over a whole region (its ReLU), which made the region test fail now and then.
    """
    import keras

    from idc_viewer.ml.model_def import build_model
    from idc_viewer.ml.saving import save_model

    keras.utils.set_random_seed(seed)

    spec = ModelSpec(
        name="random50",
        preset="native",
        input_size=50,
        patch_size_px=50,
        patch_mpp=4.0,
        threshold=0.5,
    )
    return Path(save_model(build_model(50), spec, directory, tflite=True))


@dataclass
class FakePredictor:
    """P(IDC) = mean red of the patch / 255; records its calls; ``delay_s`` per batch to slow it."""

    delay_s: float = 0.0
    calls: int = 0
    patches_seen: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    on_call: object = None  # callable(calls) run before predicting

    def predict(self, patches_uint8: np.ndarray) -> np.ndarray:
        patches = patches_uint8
        assert patches.dtype == np.uint8 and patches.shape[1:] == (50, 50, 3)
        if callable(self.on_call):
            self.on_call(self.calls)
        self.calls += 1
        self.patches_seen += len(patches)
        self.batch_sizes.append(len(patches))
        if self.delay_s:
            time.sleep(self.delay_s)
        return (patches[..., 0].mean(axis=(1, 2)) / 255.0).astype(np.float32)


@dataclass
class FakeModel:
    """Duck-types ``ml.loading.LoadedModel`` (spec + predictor)."""

    spec: ModelSpec = field(default_factory=fake_spec)
    predictor: FakePredictor = field(default_factory=FakePredictor)
