"""Load a model through its contract, refusing anything that is not exactly what it claims.

``load_model`` reads the spec, checks the SHA-256 of every file it names (the ``.keras`` one
included: ``weights_sha256``), and checks the ``.keras`` archive's structure without importing
TensorFlow: exactly the members Keras writes (weights an HDF5 file, nothing else, no paths),
and ``config.json``: no Lambda layer or custom class, input shape, one sigmoid output,
Grad-CAM layer. Predictions then run
with LiteRT on the verified ``.tflite``; the Keras model itself (TensorFlow, 3-4 s) is loaded
lazily, with ``safe_mode=True`` and never by unpickling, when Grad-CAM or the fallback needs it.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_viewer.core.bundled import models_dir
from idc_viewer.ml.spec import (
    SPEC_SUFFIX,
    ModelContractError,
    ModelSpec,
    first_line,
    read_spec,
    spec_path_for,
    verify_file_hash,
)

if TYPE_CHECKING:
    import keras

    from idc_viewer.ml.inference import Predictor

#: Same exception: every refusal of a model is a contract error with a one-line message.
ModelLoadError = ModelContractError

#: Environment variable naming the model (``.keras`` or ``.spec.json``) to use by default.
MODEL_ENV_VAR = "IDC_VIEWER_MODEL"
#: Preferred bundled model when several exist (the fast native-resolution preset).
PREFERRED_DEFAULT = "idc-native-50"
#: The members of a ``.keras`` archive Keras 3 writes for this app's models, with the largest
#: unpacked size accepted for each (the bundled models: 25 kB config, 0.8-3 MB weights).
KERAS_MEMBERS = {"metadata.json": 1 << 16, "config.json": 8 << 20, "model.weights.h5": 512 << 20}
KERAS_REQUIRED = ("config.json", "model.weights.h5")
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: Keras class names that carry Python code and are never accepted.
FORBIDDEN_CLASSES = frozenset({"Lambda", "__lambda__", "TFOpLambda", "SlicingOpLambda"})


# --------------------------------------------------------------------------- default model


def _models_dirs() -> list[Path]:
    return [models_dir()]


def default_model_path() -> Path:
    """Return the spec path of the model to use when the user named none.

    Order: the ``IDC_VIEWER_MODEL`` environment variable; else in the bundled
    ``idc_viewer/resources/models`` the spec named ``idc-native-50.spec.json``, else the
    only/first ``*.spec.json``.

    Raises
    ------
    ModelContractError
        If the variable names a missing file or no bundled model exists.
    """
    env = os.environ.get(MODEL_ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise ModelContractError(f"{MODEL_ENV_VAR} names {path}, which is not a file.")
        return path
    for folder in _models_dirs():
        preferred = folder / f"{PREFERRED_DEFAULT}{SPEC_SUFFIX}"
        if preferred.is_file():
            return preferred
        specs = sorted(folder.glob(f"*{SPEC_SUFFIX}"))
        if specs:
            return specs[0]
    raise ModelContractError(
        f"No bundled model found in {models_dir()}: train one (idc-train) or choose a "
        f"model file (or set {MODEL_ENV_VAR})."
    )


# --------------------------------------------------------------------------- structural check


def _walk(obj: Any) -> Iterator[dict[str, Any]]:
    if isinstance(obj, dict):
        if "class_name" in obj:
            yield obj
        for value in obj.values():
            yield from _walk(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _walk(value)


def _unsafe_object(config: Any) -> str | None:
    """Name the first class in a Keras config that could carry custom Python code."""
    for obj in _walk(config):
        cls = str(obj.get("class_name"))
        module = obj.get("module")
        registered = obj.get("registered_name")
        if cls in FORBIDDEN_CLASSES:
            return "a Lambda layer (Python code)" if "Lambda" in cls or "lambda" in cls else cls
        if module is not None and not (module == "keras" or str(module).startswith("keras.")):
            return f"the custom class {cls!r} from module {module!r}"
        if registered is not None and ">" in str(registered):
            return f"the custom registered object {registered!r}"
    return None


def check_keras_config(config: Any, spec: ModelSpec, file_name: str) -> None:
    """Check a ``.keras`` archive's ``config.json`` against the spec (no TensorFlow needed).

    Raises
    ------
    ModelContractError
        On custom code (Lambda, custom classes), a wrong input shape, anything but one
        ``Dense(1, sigmoid)`` output, or a missing Grad-CAM layer.
    """
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise ModelContractError(f"{file_name} has no Keras model configuration.")
    unsafe = _unsafe_object(config)
    if unsafe:
        raise ModelContractError(
            f"{file_name} contains {unsafe}; models with custom code are refused."
        )
    layers = config["config"].get("layers")
    if not isinstance(layers, list) or not layers:
        raise ModelContractError(f"{file_name} is not a layered Keras model.")
    inputs = [layer for layer in layers if layer.get("class_name") == "InputLayer"]
    if len(inputs) != 1:
        raise ModelContractError(f"{file_name} must have exactly one input, has {len(inputs)}.")
    shape = inputs[0].get("config", {}).get("batch_shape")
    wanted = [None, spec.input_size, spec.input_size, 3]
    if shape != wanted:
        raise ModelContractError(
            f"{file_name} takes inputs of shape {shape}, its spec says {wanted}."
        )
    outputs = config["config"].get("output_layers")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], list):
        names = [out[0] for out in outputs]
    elif isinstance(outputs, list) and outputs and isinstance(outputs[0], str):
        names = [outputs[0]]
    else:
        names = [layers[-1].get("name")]
    by_name = {layer.get("name"): layer for layer in layers}
    out_layer = by_name.get(names[0]) if len(names) == 1 else None
    out_cfg = (out_layer or {}).get("config", {})
    if (
        out_layer is None
        or out_layer.get("class_name") != "Dense"
        or out_cfg.get("units") != 1
        or out_cfg.get("activation") != "sigmoid"
    ):
        raise ModelContractError(
            f"{file_name} must end in one Dense(1, sigmoid) output (one IDC probability)."
        )
    if spec.gradcam_layer not in by_name:
        raise ModelContractError(
            f"The spec's Grad-CAM layer {spec.gradcam_layer!r} is not a layer of {file_name}."
        )


def _check_members(archive: zipfile.ZipFile, name: str) -> None:
    """Exactly the files Keras writes, each of a sane size, the weights an HDF5 file."""
    infos = archive.infolist()
    names = [info.filename for info in infos]
    if len(names) != len(set(names)):
        raise ModelContractError(f"{name} holds the same member twice; refused.")
    extra = sorted(set(names) - set(KERAS_MEMBERS))
    if extra:
        raise ModelContractError(
            f"{name} holds {extra[0]!r}, which Keras never writes; archives with extra "
            "members are refused."
        )
    missing = sorted(set(KERAS_REQUIRED) - set(names))
    if missing:
        raise ModelContractError(f"{name} is not a Keras model archive ({missing[0]} missing).")
    for info in infos:
        if info.file_size > KERAS_MEMBERS[info.filename]:
            raise ModelContractError(
                f"{name}: {info.filename} is {info.file_size:,} bytes unpacked, more than a "
                f"model of this app holds ({KERAS_MEMBERS[info.filename]:,}); refused."
            )
    with archive.open("model.weights.h5") as weights:
        if weights.read(len(HDF5_SIGNATURE)) != HDF5_SIGNATURE:
            raise ModelContractError(f"{name}: model.weights.h5 is not an HDF5 file; refused.")


def check_keras_archive(path: Path, spec: ModelSpec) -> None:
    """Open a ``.keras`` zip without TensorFlow and check its structure against the spec.

    Members: exactly ``config.json``, ``model.weights.h5`` (starting with the HDF5 signature)
    and optionally ``metadata.json``, each within a size limit; no other file (no code, no
    ``../`` path). Then the configuration, as :func:`check_keras_config`.
    """
    name = Path(path).name
    try:
        with zipfile.ZipFile(path) as archive:
            _check_members(archive, name)
            broken = archive.testzip()
            if broken is not None:
                raise ModelContractError(f"{name} is corrupted ({broken} fails its checksum).")
            config = json.loads(archive.read("config.json").decode("utf-8"))
            if "metadata.json" in archive.namelist():
                metadata = json.loads(archive.read("metadata.json").decode("utf-8"))
                if not isinstance(metadata, dict):
                    raise ModelContractError(f"{name}: metadata.json is not a JSON object.")
    except ModelContractError:
        raise
    except RecursionError:
        raise ModelContractError(f"{name}: its configuration is nested too deeply.") from None
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        ValueError,
        NotImplementedError,
    ) as exc:
        reason = "not a zip archive" if isinstance(exc, zipfile.BadZipFile) else first_line(exc)
        raise ModelContractError(f"{name} is not a valid Keras model file ({reason}).") from exc
    try:
        check_keras_config(config, spec, name)
    except RecursionError:
        raise ModelContractError(f"{name}: its configuration is nested too deeply.") from None
    except (AttributeError, TypeError, KeyError, IndexError) as exc:
        raise ModelContractError(
            f"{name} has a malformed Keras configuration ({type(exc).__name__})."
        ) from exc


def load_keras_model(path: Path, spec: ModelSpec) -> keras.Model:
    """Load a ``.keras`` with ``safe_mode=True`` (imports TensorFlow) and check it again.

    Raises
    ------
    ModelContractError
        If Keras refuses the file (custom code, corrupt weights) or it does not match the spec.
    """
    from idc_viewer.ml.inference import configure_tensorflow_threads
    from idc_viewer.ml.saving import check_model_matches_spec

    configure_tensorflow_threads()
    import keras

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises many types; all mean "refused"
        raise ModelContractError(
            f"Keras refused to load {Path(path).name} safely: {first_line(exc)}"
        ) from exc
    check_model_matches_spec(model, spec)
    return model


# --------------------------------------------------------------------------- loaded model


class LoadedModel:
    """A verified model: its spec, a predictor, and the Keras model on demand.

    Attributes
    ----------
    spec
        The contract read from ``spec_path``.
    keras_path, tflite_path
        The verified files (``tflite_path`` is ``None`` without a ``.tflite``).
    """

    def __init__(
        self, spec: ModelSpec, spec_path: Path, keras_path: Path, tflite_path: Path | None
    ) -> None:
        self.spec = spec
        self.spec_path = spec_path
        self.keras_path = keras_path
        self.tflite_path = tflite_path
        self._lock = threading.Lock()
        self._keras_model: keras.Model | None = None
        self._predictor: Predictor | None = None

    @property
    def uses_litert(self) -> bool:
        """True when predictions run on LiteRT (no TensorFlow)."""
        return self.tflite_path is not None

    @property
    def keras_model(self) -> keras.Model:
        """The Keras model, loaded once on first use (imports TensorFlow, a few seconds)."""
        with self._lock:
            if self._keras_model is None:
                self._keras_model = load_keras_model(self.keras_path, self.spec)
            return self._keras_model

    @property
    def predictor(self) -> Predictor:
        """The shared predictor (LiteRT when a ``.tflite`` exists), created on first use.

        Use it from one thread; call :meth:`new_predictor` for another thread.
        """
        if self._predictor is None:
            self._predictor = self.new_predictor()
        return self._predictor

    def new_predictor(self, num_threads: int = 2) -> Predictor:
        """A fresh, unshared predictor (LiteRT if possible, else Keras)."""
        from idc_viewer.ml.inference import KerasPredictor, LiteRtPredictor

        if self.tflite_path is not None:
            return LiteRtPredictor(self.tflite_path, self.spec, num_threads=num_threads)
        return KerasPredictor(self.keras_model, self.spec)

    def __repr__(self) -> str:
        return (
            f"LoadedModel({self.spec.name!r}, {self.keras_path.name}, "
            f"tflite={self.tflite_path.name if self.tflite_path else None})"
        )


def _plain_name(file_name: str, what: str) -> str:
    if not file_name or Path(file_name).name != file_name:
        raise ModelContractError(f"The spec's {what} {file_name!r} must be a plain file name.")
    return file_name


def load_model(path: Path | str) -> LoadedModel:
    """Load the model at ``path`` (its ``.keras`` or its ``.spec.json``) through its contract.

    Parameters
    ----------
    path
        The ``.keras`` file or the ``.spec.json`` beside it.

    Returns
    -------
    LoadedModel
        Verified files; the predictor is created on first use, the Keras model lazily.

    Raises
    ------
    ModelContractError
        With a one-line message: missing file or spec, hash mismatch, not a Keras archive,
        custom code (Lambda / custom classes), or a model that does not match its spec.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelContractError(f"Model file {path.name} not found.")
    spec_path = spec_path_for(path)
    spec = read_spec(spec_path)
    weights_file = _plain_name(spec.weights_file, "weights_file")
    if not path.name.endswith(SPEC_SUFFIX) and path.name not in (weights_file, spec.tflite_file):
        raise ModelContractError(f"{spec_path.name} describes {weights_file}, not {path.name}.")
    keras_path = verify_file_hash(spec_path.parent, weights_file, spec.weights_sha256)
    check_keras_archive(keras_path, spec)
    tflite_path = None
    if spec.tflite_file:
        if not spec.tflite_sha256:
            raise ModelContractError(f"{spec_path.name} names a .tflite without its hash.")
        tflite_name = _plain_name(spec.tflite_file, "tflite_file")
        tflite_path = verify_file_hash(spec_path.parent, tflite_name, spec.tflite_sha256)
    return LoadedModel(spec, spec_path, keras_path, tflite_path)
