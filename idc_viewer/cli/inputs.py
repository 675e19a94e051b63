"""What the commands read: the model (``--model``), slides (``--mpp``), folders of slides."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from idc_viewer.cli.errors import UserError
from idc_viewer.core.native_stderr import native_stderr_silenced
from idc_viewer.core.readers.formats import SLIDE_SUFFIXES

if TYPE_CHECKING:
    from idc_viewer.core.slide import Slide
    from idc_viewer.ml.loading import LoadedModel


def resolve_model_path(path: str | None) -> Path:
    """The model file ``--model`` names, else the bundled default model."""
    from idc_viewer.ml.loading import default_model_path
    from idc_viewer.ml.spec import ModelContractError

    if path:
        return Path(path)
    try:
        return Path(default_model_path())
    except ModelContractError as exc:
        raise UserError(f"{exc} Or pass --model PATH.") from None


def load_model(path: str | None, *, predictor: bool = False) -> LoadedModel:
    """Load and verify a model; with ``predictor``, also create and warm up its predictor."""
    import numpy as np

    from idc_viewer.ml import loading
    from idc_viewer.ml.spec import ModelContractError

    model_path = resolve_model_path(path)
    try:
        model = loading.load_model(model_path)
        if predictor:
            size = model.spec.patch_size_px
            with native_stderr_silenced():  # LiteRT's "Created XNNPACK delegate" INFO line
                model.predictor.predict(np.zeros((1, size, size, 3), np.uint8))
        return model
    except (ModelContractError, OSError, ValueError, RuntimeError) as exc:
        raise UserError(f"cannot load model {model_path}: {exc}") from None


def open_slide(path: str, mpp: float | None) -> Slide:
    """Open a slide (``SlideError`` as it is; an ``OSError`` as a :class:`UserError`)."""
    from idc_viewer.core import readers

    try:
        return readers.open_slide(path, mpp=mpp)
    except OSError as exc:
        raise UserError(f"cannot open {path}: {exc}") from None


def missing_mpp_message(path: str, slide: Slide | None = None) -> str:
    """What to say of a slide without a (plausible) µm/px, and how to give one."""
    from idc_viewer.core.scale import implausible_mpp

    stored = implausible_mpp(slide.info.properties) if slide is not None else None
    what = stored or "the slide stores no µm per pixel (nor an objective power)"
    return f"{path}: {what}; pass --mpp M (e.g. --mpp 0.25 for a 40x scan, 0.5 for 20x)"


def expand_slides(paths: Sequence[str]) -> list[Path]:
    """Slide files named by ``paths``; a folder stands for the slide files directly inside it.

    The files of a DICOM series share a folder and form one slide, so a folder contributes
    at most one ``.dcm`` file (the first by name; OpenSlide finds the rest of the series).
    """
    slides: list[Path] = []
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            slides.append(path)
            continue
        files = sorted(
            p
            for p in path.iterdir()
            if p.is_file() and p.suffix.lower() in SLIDE_SUFFIXES and not p.name.startswith(".")
        )
        dicom = [p for p in files if p.suffix.lower() == ".dcm"]
        slides.extend(p for p in files if p.suffix.lower() != ".dcm")
        slides.extend(dicom[:1])
    return slides
