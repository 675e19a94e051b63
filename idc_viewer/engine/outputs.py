"""Writing one slide's analysis to disk: CSVs, GeoJSON and provenance (via core.export)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from idc_viewer import __version__
from idc_viewer.core.export import export_all, export_provenance_only
from idc_viewer.core.fingerprint import slide_fingerprint
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.regions import find_regions
from idc_viewer.core.slide import Slide
from idc_viewer.core.writers import ExportError
from idc_viewer.engine.decision import decision_heatmap

if TYPE_CHECKING:
    from idc_viewer.ml.loading import LoadedModel


#: Joins a colliding stem and its number. A slide named ``a~2.svs`` would take ``a~2`` itself,
#: so numbered stems skip every stem another input of the same run takes.
_COLLISION_MARK = "~"


def slide_stem(path: Path | str) -> str:
    """Output name of one slide: its file name minus the last suffix (``a.v1.5.svs`` -> ``a.v1.5``).

    Folders of one slide (a DICOM series) and names without a suffix keep their whole name.
    """
    name = Path(path).name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem or name or "slide"


def output_stems(slides: Sequence[Path | str]) -> list[str]:
    """One output name per slide, unique and predictable from the list of inputs alone.

    Every slide gets :func:`slide_stem`; when several slides share it, the first (in input
    order) keeps it and the next get ``<stem>~2``, ``<stem>~3``, ... skipping any name that
    another input's own stem takes, so no two inputs ever write the same files.
    """
    bases = [slide_stem(p) for p in slides]
    taken = set(bases)  # reserved first: an input named a~2.svs keeps "a~2"
    seen: set[str] = set()
    stems = []
    for base in bases:
        if base not in seen:
            seen.add(base)
            stems.append(base)
            continue
        n = 2
        while f"{base}{_COLLISION_MARK}{n}" in taken:
            n += 1
        stem = f"{base}{_COLLISION_MARK}{n}"
        taken.add(stem)
        stems.append(stem)
    return stems


@dataclass(frozen=True)
class WrittenOutputs:
    """The files written for one slide and a one-line summary for the user."""

    paths: tuple[Path, ...]
    n_patches: int
    n_flagged: int
    n_regions: int

    @property
    def summary(self) -> str:
        return (
            f"{self.n_patches} tissue patches, {self.n_flagged} at or above the threshold, "
            f"{self.n_regions} region{'s' if self.n_regions != 1 else ''}"
        )


def provenance(
    slide: Slide,
    model: LoadedModel,
    threshold: float,
    heatmap: Heatmap | None = None,
    warning: str | None = None,
) -> dict[str, Any]:
    """Everything needed to reproduce (and trust) an exported analysis."""
    info = slide.info
    spec = model.spec
    data: dict[str, Any] = {
        "app": "idc-viewer",
        "app_version": __version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "slide": {
            "path": str(info.path),
            "name": Path(str(info.path)).name,
            "format": info.format,
            "fingerprint": slide_fingerprint(slide),
            "l0_width": int(info.l0_width),
            "l0_height": int(info.l0_height),
            "mpp": info.mpp,
            "mpp_source": info.mpp_source,
        },
        "model": {
            "name": spec.name,
            "preset": spec.preset,
            "hash": spec.model_hash,
            "weights_sha256": spec.weights_sha256,
            "input_size": spec.input_size,
            "patch_size_px": spec.patch_size_px,
            "patch_mpp": spec.patch_mpp,
            "model_threshold": spec.threshold,
            "decision_threshold": spec.decision_threshold,
        },
        # None: the model decides on each patch's own CNN probability
        "context": None if spec.context is None else spec.context.as_dict(),
        "threshold": threshold,
        "mpp": info.mpp,
        "coordinates": "level-0 pixels",
    }
    if heatmap is not None:
        grid = heatmap.grid
        data["grid"] = {
            "cols": int(grid.cols),
            "rows": int(grid.rows),
            "l0_patch_size": float(grid.l0_patch_size),
            "read_level": int(grid.read_level),
        }
    if warning:
        data["warning"] = warning
    return data


def write_outputs(
    out_dir: Path,
    stem: str,
    slide: Slide,
    model: LoadedModel,
    heatmap: Heatmap,
    threshold: float,
) -> WrittenOutputs:
    """Write ``<stem>.patches.csv``, ``.regions.csv``, ``.regions.geojson``, ``.provenance.json``.

    ``heatmap`` holds the CNN's probabilities; flags and regions use the model's decision
    probabilities (:func:`decision_heatmap`) at ``threshold``, and both go into the CSV.
    Raises ``OSError`` (with a one-line message) when a file cannot be written.
    """
    decision = decision_heatmap(heatmap, model.spec)
    try:
        paths = export_all(
            out_dir,
            stem,
            decision,
            threshold,
            provenance(slide, model, threshold, heatmap),
            patch_heatmap=heatmap,
        )
    except ExportError as exc:
        raise OSError(str(exc)) from None
    return WrittenOutputs(
        paths=tuple(paths),
        n_patches=decision.analysed_count,
        n_flagged=decision.flagged_count(threshold),
        n_regions=len(find_regions(decision, threshold)),
    )


def write_warning_provenance(
    out_dir: Path, stem: str, slide: Slide, model: LoadedModel, threshold: float, warning: str
) -> Path:
    """Write only ``<stem>.provenance.json`` recording why no heatmap was produced (older
    files of ``stem`` are replaced with it, as a set)."""
    try:
        return export_provenance_only(
            out_dir, stem, provenance(slide, model, threshold, warning=warning)
        )
    except ExportError as exc:
        raise OSError(str(exc)) from None
