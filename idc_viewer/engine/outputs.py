"""Writing one slide's analysis to disk: CSVs, GeoJSON and provenance (via core.export)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from idc_viewer.core.export import export_all, export_provenance_only
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.regions import find_regions

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
        """``N tissue patches, F at or above the threshold, R regions``."""
        return (
            f"{self.n_patches} tissue patches, {self.n_flagged} at or above the threshold, "
            f"{self.n_regions} region{'s' if self.n_regions != 1 else ''}"
        )


def write_outputs(
    out_dir: Path,
    stem: str,
    heatmap: Heatmap,
    decision: Heatmap,
    threshold: float,
    info: Mapping[str, Any],
) -> WrittenOutputs:
    """Write ``<stem>.patches.csv``, ``.regions.csv``, ``.regions.geojson``, ``.provenance.json``.

    ``heatmap`` holds the CNN's probabilities, ``decision`` the map flags and regions come from
    at ``threshold`` (the model's decision probabilities); both go into the CSV. ``info`` is
    the provenance (:func:`idc_viewer.engine.provenance.provenance`). Raises
    :class:`~idc_viewer.core.writers.ExportError` (one line) when a file cannot be written.
    """
    paths = export_all(out_dir, stem, decision, threshold, info, patch_heatmap=heatmap)
    return WrittenOutputs(
        paths=tuple(paths),
        n_patches=decision.analysed_count,
        n_flagged=decision.flagged_count(threshold),
        n_regions=len(find_regions(decision, threshold)),
    )


def write_warning_provenance(out_dir: Path, stem: str, info: Mapping[str, Any]) -> Path:
    """Write only ``<stem>.provenance.json``, recording why no heatmap was produced.

    Older files of ``stem`` are replaced with it, as a set. Raises
    :class:`~idc_viewer.core.writers.ExportError` when it cannot be written.
    """
    return export_provenance_only(out_dir, stem, info)
