"""The model contract: what travels with the weights and what loading checks.

A model is ``<name>.keras`` (weights + architecture, no custom code) beside ``<name>.spec.json``.
The spec says what the model expects (patch size and scale, input size, preprocessing), how to
explain it (Grad-CAM layer), how to decide (threshold), what it learnt from and how well it did on
held-out patients, and the SHA-256 of each file so a spec never describes other weights.
This module is plain Python: reading a spec needs no TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPEC_FORMAT = "idc-viewer-model/1"
SPEC_SUFFIX = ".spec.json"
RESIZE_INTERPOLATIONS = ("none", "bilinear", "area", "nearest")


class ModelContractError(Exception):
    """A model file or spec that the app refuses, with a message fit for the user."""


@dataclass(frozen=True)
class Preprocessing:
    """How a 50x50 uint8 RGB patch becomes the network's input."""

    color: str = "RGB"
    scale: float = 1.0 / 255.0  # uint8 -> [0, 1], as the paper's rescale
    resize_interpolation: str = "none"  # used when input_size != patch_size_px


@dataclass(frozen=True)
class ContextSpec:
    """The context stage that turns CNN probabilities into decision probabilities.

    ``sigma_patches`` is the Gaussian's σ in patches (see :mod:`idc_viewer.core.context`);
    ``threshold`` is the decision threshold on the context probabilities, chosen with σ on the
    validation patients' whole slides (the spec's own ``threshold`` stays the patch-level one).
    """

    method: str = "gaussian-tissue-mean"
    sigma_patches: float = 1.0
    threshold: float = 0.5
    chosen_on: str = ""

    def problems(self) -> list[str]:
        found = []
        if self.method != "gaussian-tissue-mean":
            found.append(f"context method {self.method!r} is not 'gaussian-tissue-mean'")
        if not (
            _is_number(self.sigma_patches)
            and math.isfinite(self.sigma_patches)
            and 0 < self.sigma_patches <= 20
        ):
            found.append(f"context sigma_patches {self.sigma_patches!r} must lie in (0, 20]")
        if not (_is_number(self.threshold) and 0.0 <= self.threshold <= 1.0):
            found.append(f"context threshold {self.threshold!r} must lie in [0, 1]")
        if not isinstance(self.chosen_on, str):
            found.append("context chosen_on must be text")
        return found

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class ModelSpec:
    """The contract of one model file (see the module docstring)."""

    name: str
    preset: str
    input_size: int
    patch_size_px: int = 50
    patch_mpp: float = 4.0
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    gradcam_layer: str = "separable_conv2d"
    threshold: float = 0.5
    weights_file: str = ""
    weights_sha256: str = ""
    tflite_file: str | None = None
    tflite_sha256: str | None = None
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    format: str = SPEC_FORMAT
    context: ContextSpec | None = None

    @property
    def decision_threshold(self) -> float:
        """The threshold flags and regions use: the context stage's when the model has one."""
        return float(self.context.threshold if self.context is not None else self.threshold)

    @property
    def model_hash(self) -> str:
        """Short content hash naming these weights in results and provenance."""
        return self.weights_sha256[:16]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelContractError("The model spec is not a JSON object.")
        if data.get("format") != SPEC_FORMAT:
            raise ModelContractError(
                f"Unknown model spec format {data.get('format')!r}; expected {SPEC_FORMAT!r}."
            )
        known = set(cls.__dataclass_fields__)
        try:
            values = {k: v for k, v in data.items() if k in known}
            values["preprocessing"] = Preprocessing(**data.get("preprocessing", {}))
            context = data.get("context")
            if context is not None:
                if not isinstance(context, dict):
                    raise ModelContractError("The model spec's context is not a JSON object.")
                values["context"] = ContextSpec(**context)
            spec = cls(**values)
        except TypeError as exc:
            raise ModelContractError(f"The model spec is incomplete or malformed: {exc}") from exc
        spec.validate()
        return spec

    def validate(self) -> None:
        """Raise :class:`ModelContractError` if a field is out of range."""
        problems = []
        if not isinstance(self.input_size, int) or self.input_size < 16:
            problems.append(f"input_size {self.input_size!r} must be an integer >= 16")
        if not isinstance(self.patch_size_px, int) or self.patch_size_px < 8:
            problems.append(f"patch_size_px {self.patch_size_px!r} must be an integer >= 8")
        if not (
            isinstance(self.patch_mpp, int | float)
            and math.isfinite(self.patch_mpp)
            and self.patch_mpp > 0
        ):
            problems.append(f"patch_mpp {self.patch_mpp!r} must be a positive number")
        if not (isinstance(self.threshold, int | float) and 0.0 <= self.threshold <= 1.0):
            problems.append(f"threshold {self.threshold!r} must lie in [0, 1]")
        if self.preprocessing.resize_interpolation not in RESIZE_INTERPOLATIONS:
            problems.append(
                f"resize_interpolation {self.preprocessing.resize_interpolation!r} is not one of "
                f"{RESIZE_INTERPOLATIONS}"
            )
        if self.context is not None:
            problems.extend(self.context.problems())
        if not self.weights_file or len(self.weights_sha256) != 64:
            problems.append("weights_file and its 64-hex-digit weights_sha256 are required")
        if problems:
            raise ModelContractError("Invalid model spec: " + "; ".join(problems) + ".")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def spec_path_for(path: Path) -> Path:
    """The spec beside a model: ``x.keras`` or ``x.spec.json`` -> ``x.spec.json``."""
    path = Path(path)
    if path.name.endswith(SPEC_SUFFIX):
        return path
    return path.with_name(path.name.removesuffix(path.suffix) + SPEC_SUFFIX)


def read_spec(path: Path) -> ModelSpec:
    """Read and validate the spec of the model at ``path`` (the .keras or the .spec.json)."""
    spec_path = spec_path_for(Path(path))
    if not spec_path.is_file():
        raise ModelContractError(
            f"No model spec found at {spec_path.name}: a model needs its .spec.json beside it."
        )
    try:
        data = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelContractError(f"{spec_path.name} is not a readable JSON spec: {exc}") from exc
    return ModelSpec.from_dict(data)


def verify_file_hash(spec_dir: Path, file_name: str, expected_sha256: str) -> Path:
    """Check a file named by a spec exists beside it and has the expected content hash."""
    path = Path(spec_dir) / file_name
    if not path.is_file():
        raise ModelContractError(f"The model file {file_name} named by the spec is missing.")
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise ModelContractError(
            f"{file_name} does not match its spec (content hash {actual[:12]}..., "
            f"spec says {expected_sha256[:12]}...): the spec describes other weights."
        )
    return path


def write_spec(spec: ModelSpec, directory: Path) -> Path:
    """Write ``<name>.spec.json`` atomically into ``directory`` and return its path."""
    spec.validate()
    path = Path(directory) / f"{spec.name}{SPEC_SUFFIX}"
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(spec.to_json(), encoding="utf-8")
    tmp.replace(path)
    return path
