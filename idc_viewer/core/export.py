"""Export an analysis as one set of files: regions, per-patch CSV, QuPath GeoJSON, provenance.

:func:`export_all` replaces a slide's four files (:mod:`idc_viewer.core.writers`) as one set
(:mod:`idc_viewer.core.fileset`): all old or all new, the provenance naming each other file's
SHA-256. :func:`recover_exports` repairs a set a killed process left half-replaced and
:func:`verify_export` checks a set against its seal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from idc_viewer.core import fileset
from idc_viewer.core.fileset_recovery import FileSetError, recover
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.regions import find_regions
from idc_viewer.core.writers import (
    ExportError,
    write_geojson,
    write_patches_csv,
    write_provenance,
    write_regions_csv,
)

__all__ = [
    "SET_SUFFIXES",
    "export_all",
    "export_provenance_only",
    "recover_exports",
    "verify_export",
]

#: The files of one exported analysis; the provenance (first) seals the set.
SET_SUFFIXES = (".provenance.json", ".patches.csv", ".regions.csv", ".regions.geojson")


def _commit_set(
    out_dir: Path | str,
    stem: str,
    writers: Mapping[str, Callable[[Path], object]],
    info: Mapping[str, Any],
) -> list[Path]:
    try:
        return fileset.commit(
            out_dir,
            stem,
            SET_SUFFIXES,
            writers,
            lambda path, files: write_provenance(path, {**info, **files}),
        )
    except FileSetError as exc:
        raise ExportError(str(exc)) from exc


def export_all(
    out_dir: Path | str,
    stem: str,
    heatmap: Heatmap,
    threshold: float,
    provenance: Mapping[str, Any],
    patch_heatmap: Heatmap | None = None,
) -> list[Path]:
    """Write the four export files for one analysis, replacing the previous ones all at once.

    Parameters
    ----------
    out_dir : path-like
        Folder, created if missing.
    stem : str
        File name prefix: ``<stem>.patches.csv``, ``<stem>.regions.csv``,
        ``<stem>.regions.geojson``, ``<stem>.provenance.json``.
    heatmap : Heatmap
        The analysis: decision probabilities (flags and regions use them).
    threshold : float
        Decision threshold for the regions.
    provenance : mapping
        Written to the provenance file together with the threshold, counts and ``files``
        (name -> ``sha256``, ``bytes`` of each other file: the set's seal).
    patch_heatmap : Heatmap, optional
        The CNN's own probabilities, when ``heatmap`` comes from a context stage.

    Returns
    -------
    list of pathlib.Path
        The written files, the provenance last. On failure (or Ctrl-C) :class:`ExportError`
        is raised and the previous files of ``stem`` are as they were (see
        :mod:`idc_viewer.core.fileset`).
    """
    probs = heatmap.probabilities
    known = probs[~np.isnan(probs)]
    if known.size and not (float(known.min()) >= 0.0 and float(known.max()) <= 1.0):
        raise ExportError(
            f"cannot export {stem}: the heatmap holds values outside [0, 1] "
            f"({float(known.min()):g} to {float(known.max()):g}), which are not probabilities"
        )
    regions = find_regions(heatmap, threshold)
    info = {
        **provenance,
        "threshold": threshold,
        "counts": {
            "patches_analysed": heatmap.analysed_count,
            "patches_flagged": heatmap.flagged_count(threshold),
            "regions": len(regions),
            "flagged_area_mm2": round(sum(r.area_mm2 for r in regions), 6),
        },
    }
    writers: dict[str, Callable[[Path], object]] = {
        ".patches.csv": lambda p: write_patches_csv(p, heatmap, patch_heatmap=patch_heatmap),
        ".regions.csv": lambda p: write_regions_csv(p, regions),
        ".regions.geojson": lambda p: write_geojson(p, regions, heatmap),
    }
    return _commit_set(out_dir, stem, writers, info)


def export_provenance_only(out_dir: Path | str, stem: str, provenance: Mapping[str, Any]) -> Path:
    """Replace the set of ``stem`` by its provenance alone (a slide with nothing to analyse).

    Older CSV and GeoJSON files of ``stem`` go with the old set: the folder never shows a
    warning beside another run's heatmap.
    """
    return _commit_set(out_dir, stem, {}, provenance)[-1]


def recover_exports(out_dir: Path | str) -> list[str]:
    """Repair export sets that a killed process left half-replaced in ``out_dir``.

    Returns one line per repaired set; raises :class:`ExportError` when one cannot be.
    """
    try:
        return recover(out_dir, SET_SUFFIXES)
    except FileSetError as exc:
        raise ExportError(str(exc)) from exc


def verify_export(out_dir: Path | str, stem: str) -> list[str]:
    """What is wrong with the set ``stem`` in ``out_dir`` against its seal (empty: all good)."""
    return fileset.verify(out_dir, stem, SET_SUFFIXES[0])
