"""The one provenance of an exported analysis: slide, model, threshold, grid, app.

The CLI, the cohort task and the GUI all export through
:meth:`idc_viewer.engine.session.SlideSession.export`, which writes this record. A heatmap made
by the loaded model is described by that model's :class:`~idc_viewer.ml.spec.ModelSpec`; a
stored heatmap of another model by a :class:`ModelRef` (what the results store knows of it).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_viewer import __version__
from idc_viewer.core.labels import model_label

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid
    from idc_viewer.core.slide import SlideInfo
    from idc_viewer.ml.spec import ModelSpec


@dataclass(frozen=True)
class ModelRef:
    """What is known of a model that is not loaded: its name, hash and own threshold."""

    name: str
    model_hash: str
    threshold: float | None = None

    @property
    def label(self) -> str:
        """``name (hash[:8])``, as a heatmap's model is named on screen."""
        return model_label(self.name, self.model_hash)


def _model_record(model: ModelSpec | ModelRef) -> dict[str, Any]:
    if isinstance(model, ModelRef):
        record: dict[str, Any] = {"name": model.name, "hash": model.model_hash}
        if model.threshold is not None:
            record["model_threshold"] = model.threshold
        return record
    return {
        "name": model.name,
        "preset": model.preset,
        "hash": model.model_hash,
        "weights_sha256": model.weights_sha256,
        "input_size": model.input_size,
        "patch_size_px": model.patch_size_px,
        "patch_mpp": model.patch_mpp,
        "model_threshold": model.threshold,
        "decision_threshold": model.decision_threshold,
    }


def provenance(
    info: SlideInfo,
    fingerprint: str,
    model: ModelSpec | ModelRef,
    threshold: float,
    *,
    grid: PatchGrid | None = None,
    warning: str | None = None,
    decision_map: str | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce (and trust) an exported analysis.

    ``decision_map`` names the map the flags and regions come from (``"patch"`` or
    ``"context"``) when the exporter chose one; the CLI's files leave it out.
    """
    data: dict[str, Any] = {
        "app": "idc-viewer",
        "app_version": __version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "slide": {
            "path": str(info.path),
            "name": Path(str(info.path)).name,
            "format": info.format,
            "fingerprint": fingerprint,
            "l0_width": int(info.l0_width),
            "l0_height": int(info.l0_height),
            "mpp": info.mpp,
            "mpp_source": info.mpp_source,
        },
        "model": _model_record(model),
    }
    if not isinstance(model, ModelRef):
        # None: the model decides on each patch's own CNN probability
        data["context"] = None if model.context is None else model.context.as_dict()
    data.update({"threshold": threshold, "mpp": info.mpp, "coordinates": "level-0 pixels"})
    if grid is not None:
        data["grid"] = {
            "cols": int(grid.cols),
            "rows": int(grid.rows),
            "l0_patch_size": float(grid.l0_patch_size),
            "read_level": int(grid.read_level),
        }
    if warning:
        data["warning"] = warning
    if decision_map is not None:
        data["decision_map"] = decision_map
    return data
