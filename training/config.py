"""A training run's recipe: the presets and :class:`TrainConfig` (the run's ``config.json``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    # exactly the paper: 50x50 patches resized to 128x128
    "paper": {"input_size": 128, "resize_interpolation": "bilinear"},
    # native resolution: the 50x50 patch as it is, ~6x cheaper per patch
    "native": {"input_size": 50, "resize_interpolation": "none"},
}
CONFIG_FILE = "config.json"


@dataclass
class TrainConfig:
    """Everything that decides a run: data, preset, recipe, balance, augmentation, limits."""

    data_dir: str
    run_dir: str
    preset: str = "native"
    epochs: int = 100
    batch_size: int = 32
    learning_rate: float = 1e-3
    l2: float = 1e-4
    seed: int = 42
    # "undersample" (paper: one fixed balanced subset) | "resample" (a fresh balanced subset of
    # the majority class every epoch, so all patches are used) | "class-weights" | "none"
    balance: str = "undersample"
    stain_jitter: float = 0.0
    hed_jitter: float = 0.0
    dihedral: bool = False
    # 0 = off; else half the training patches JPEG-recompressed at a quality from this to 100
    jpeg_quality: int = 0
    # re-estimate BatchNorm statistics on un-augmented training patches before each validation:
    # statistics gathered on augmented batches do not fit clean slides, which makes val_loss
    # (and so early stopping and the LR schedule) jump from epoch to epoch
    recalibrate_bn: bool = False
    # keep every epoch's weights in epochs/ (for averaging the best epochs: idc-train average)
    keep_epoch_weights: bool = False
    max_patients: int | None = None  # a small real subset (CI)
    early_stopping_patience: int = 5
    plateau_patience: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def input_size(self) -> int:
        """The network's input side in pixels, by preset."""
        return int(PRESETS[self.preset]["input_size"])

    @classmethod
    def read(cls, run_dir: Path) -> TrainConfig:
        """The config a run folder was trained with."""
        return cls(**json.loads((Path(run_dir) / CONFIG_FILE).read_text()))

    def write(self, run_dir: Path) -> None:
        """Record this config as ``run_dir``'s ``config.json``."""
        (Path(run_dir) / CONFIG_FILE).write_text(json.dumps(asdict(self), indent=2))


def augmentation_summary(config: TrainConfig) -> str:
    """The run's augmentation in words, as the spec and the model card state it."""
    parts = ["paper (rotation 20, zoom 0.2, shift 0.1, brightness 0.8-1.2, hflip)"]
    if config.dihedral:
        parts.append("vertical flips and transposes (all 8 orientations)")
    if config.hed_jitter:
        parts.append(f"H&E density jitter {config.hed_jitter}")
    if config.stain_jitter:
        parts.append(f"hue/saturation jitter {config.stain_jitter}")
    if config.jpeg_quality:
        parts.append(f"JPEG recompression of half the patches at quality {config.jpeg_quality}-100")
    if config.recalibrate_bn:
        parts.append("BatchNorm statistics re-estimated on un-augmented patches each epoch")
    return "; ".join(parts)
