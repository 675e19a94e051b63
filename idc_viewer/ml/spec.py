"""The model contract: what travels with the weights and what loading checks.

A model is ``<name>.keras`` (weights + architecture, no custom code) beside ``<name>.spec.json``.
The spec says what the model expects (patch size and scale, input size, preprocessing), how to
explain it (Grad-CAM layer), how to decide (threshold), what it learnt from and how well it did on
held-out patients, and the SHA-256 of each file so a spec never describes other weights.
This module is plain Python: reading a spec needs no TensorFlow.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from idc_viewer.core.errors import DEFAULT_MESSAGE_LIMIT_CHARS, IdcViewerError, one_line
from idc_viewer.core.fileset import sha256_file
from idc_viewer.core.patches import DEFAULT_PATCH_MPP, DEFAULT_PATCH_PX

SPEC_FORMAT = "idc-viewer-model/1"
SPEC_SUFFIX = ".spec.json"
RESIZE_INTERPOLATIONS = ("none", "bilinear", "area", "nearest")
#: A spec is a few kB; anything far larger is refused before it is parsed.
MAX_SPEC_BYTES = 1 << 20
#: Largest input or patch side accepted (the presets use 50 and 128).
MAX_INPUT_PX = 1024


class ModelContractError(IdcViewerError):
    """A model file or spec that the app refuses, with a message fit for the user."""


def first_line(exc: BaseException) -> str:
    """A third-party error's first line, cut at 200 characters, for a refusal's message.

    Keras and LiteRT append whole configurations and stack notes after their first line.
    """
    lines = str(exc).strip().splitlines()
    return one_line(lines[0] if lines else exc, limit_chars=DEFAULT_MESSAGE_LIMIT_CHARS)


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
        """What is wrong with this context stage, in words (empty when valid)."""
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
        """The stage as the spec's JSON holds it."""
        return asdict(self)


def _is_number(value: object) -> bool:
    """A finite int or float; JSON ``true`` (a bool) is not a number here."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_sha256(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value.lower())
    )


@dataclass(frozen=True)
class ModelSpec:
    """The contract of one model file (see the module docstring)."""

    name: str
    preset: str
    input_size: int
    patch_size_px: int = DEFAULT_PATCH_PX
    patch_mpp: float = DEFAULT_PATCH_MPP
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
        """The spec file's text (indented JSON, fields in declaration order)."""
        return json.dumps(asdict(self), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        """A validated spec from its JSON object; :class:`ModelContractError` otherwise."""
        if not isinstance(data, dict):
            raise ModelContractError("The model spec is not a JSON object.")
        if data.get("format") != SPEC_FORMAT:
            raise ModelContractError(
                f"Unknown model spec format {data.get('format')!r}; expected {SPEC_FORMAT!r}."
            )
        known = set(cls.__dataclass_fields__)
        try:
            values = {k: v for k, v in data.items() if k in known}
            pre = data.get("preprocessing", {})
            if not isinstance(pre, dict):
                raise TypeError("preprocessing is not an object")
            unknown = set(pre) - set(Preprocessing.__dataclass_fields__)
            if unknown:
                raise TypeError(f"unknown preprocessing field {sorted(unknown)[0]!r}")
            values["preprocessing"] = Preprocessing(**pre)
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
        """Raise :class:`ModelContractError` unless every field has its exact type and range.

        Strict on purpose: JSON ``true`` is not a threshold, ``NaN`` not a scale, and a value
        the engine would ignore (``color: "BGR"``) is refused rather than silently dropped.
        """
        problems = []
        pre = self.preprocessing
        for name in ("name", "preset", "weights_file", "created", "format"):
            if not isinstance(getattr(self, name), str):
                problems.append(f"{name} {getattr(self, name)!r} must be text")
        if not _is_int(self.input_size) or not 16 <= self.input_size <= MAX_INPUT_PX:
            problems.append(
                f"input_size {self.input_size!r} must be an integer in [16, {MAX_INPUT_PX}]"
            )
        if not _is_int(self.patch_size_px) or not 8 <= self.patch_size_px <= MAX_INPUT_PX:
            problems.append(
                f"patch_size_px {self.patch_size_px!r} must be an integer in [8, {MAX_INPUT_PX}]"
            )
        if not (_is_number(self.patch_mpp) and self.patch_mpp > 0):
            problems.append(f"patch_mpp {self.patch_mpp!r} must be a positive number")
        if not (_is_number(self.threshold) and 0.0 <= self.threshold <= 1.0):
            problems.append(f"threshold {self.threshold!r} must be a number in [0, 1]")
        if not isinstance(self.gradcam_layer, str) or not self.gradcam_layer:
            problems.append(f"gradcam_layer {self.gradcam_layer!r} must be a layer name")
        if not isinstance(pre, Preprocessing):
            problems.append("preprocessing must be an object")
        else:
            if pre.color != "RGB":
                problems.append(
                    f"preprocessing color {pre.color!r} is not supported (the "
                    "engine feeds RGB patches; only 'RGB' is accepted)"
                )
            if not (_is_number(pre.scale) and pre.scale > 0):
                problems.append(f"preprocessing scale {pre.scale!r} must be a positive number")
            if pre.resize_interpolation not in RESIZE_INTERPOLATIONS:
                problems.append(
                    f"resize_interpolation {pre.resize_interpolation!r} is not one of "
                    f"{RESIZE_INTERPOLATIONS}"
                )
        if self.context is not None:
            problems.extend(self.context.problems())
        if not self.weights_file or not _is_sha256(self.weights_sha256):
            problems.append("weights_file and its 64-hex-digit weights_sha256 are required")
        if self.tflite_file is not None and not isinstance(self.tflite_file, str):
            problems.append(f"tflite_file {self.tflite_file!r} must be text or null")
        if self.tflite_sha256 is not None and not _is_sha256(self.tflite_sha256):
            problems.append("tflite_sha256 must be 64 hex digits or null")
        for name in ("training_data", "metrics"):
            if not isinstance(getattr(self, name), dict):
                problems.append(f"{name} must be an object")
        if problems:
            raise ModelContractError("Invalid model spec: " + "; ".join(problems) + ".")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file's content (the contract's hash of each model file)."""
    return sha256_file(Path(path))


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
        size = spec_path.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise ModelContractError(
                f"{spec_path.name} is {size:,} bytes; a model spec is a few kB "
                f"(limit {MAX_SPEC_BYTES:,}): refused unread."
            )
        data = json.loads(spec_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelContractError(
            f"{spec_path.name} is not a readable JSON spec: {one_line(exc)}"
        ) from exc
    except RecursionError:
        raise ModelContractError(
            f"{spec_path.name} is nested too deeply to be a model spec."
        ) from None
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
