"""The export files of one analysis: per-patch CSV, regions CSV, QuPath GeoJSON, provenance.

Every writer is atomic: it writes a hidden temporary file beside the target and moves it
into place with :func:`os.replace`, so a reader never sees half a file and a full disk leaves
no partial output (only an :class:`ExportError` with a one-line reason). Coordinates are
level-0 pixels of the slide (``l0_``), the frame QuPath and OpenSlide use.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np

from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.heatmap import Heatmap
from idc_viewer.core.outline import region_polygons
from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.regions import Region

__all__ = [
    "IDC_CLASS_COLOR",
    "PATCHES_HEADER",
    "REGIONS_HEADER",
    "ExportError",
    "csv_safe",
    "write_geojson",
    "write_patches_csv",
    "write_provenance",
    "write_regions_csv",
]

# probability: the decision probability (after the model's context stage, when it has one);
# patch_probability: the CNN's own output for the patch
PATCHES_HEADER = ("x", "y", "width", "height", "probability", "col", "row", "patch_probability")
REGIONS_HEADER = (
    "region_id",
    "n_patches",
    "area_mm2",
    "x",
    "y",
    "width",
    "height",
    "centroid_x",
    "centroid_y",
    "max_probability",
    "mean_probability",
)
#: Colour QuPath gives the imported "IDC" class (crimson).
IDC_CLASS_COLOR = (220, 20, 60)
# Characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# Fixed namespace so a region's feature id is stable between exports of the same result.
_FEATURE_NAMESPACE = uuid.UUID("5b0c3f0e-9a59-4d8e-8f53-2f1c2b6f7a11")


class ExportError(IdcViewerError):
    """An export file could not be written; ``str(exc)`` is a one-line reason."""


def csv_safe(value: object) -> object:
    """Neutralise spreadsheet formula injection in a CSV cell.

    Text starting with ``= + - @``, tab or carriage return gets a leading apostrophe so
    spreadsheets show it as text; numbers and other values are returned unchanged.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    return value


def _fmt(value: object, decimals: int = 6) -> object:
    if isinstance(value, bool | np.bool_):
        return int(value)
    if isinstance(value, float | np.floating):
        return f"{float(value):.{decimals}f}"
    if isinstance(value, np.integer):
        return int(value)
    return csv_safe(value)


def _atomic_write(path: Path | str, write: Callable[[IO[str]], None]) -> Path:
    """Write text to ``path`` through a temporary file; raise :class:`ExportError` on failure."""
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise ExportError(f"cannot write {target}: the disk is full") from exc
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
    return target


def _write_text(fh: IO[str], text: str) -> None:
    fh.write(text)


def _write_csv(
    path: Path | str,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    extra_columns: Mapping[str, object] | None,
) -> Path:
    extra = dict(extra_columns or {})
    extra_values = [_fmt(v) for v in extra.values()]

    def write(fh: IO[str]) -> None:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow([*header, *(csv_safe(k) for k in extra)])
        for row in rows:
            writer.writerow([*(_fmt(v) for v in row), *extra_values])

    return _atomic_write(path, write)


def write_patches_csv(
    path: Path | str,
    heatmap: Heatmap,
    extra_columns: Mapping[str, object] | None = None,
    patch_heatmap: Heatmap | None = None,
) -> Path:
    """Write one row per analysed patch.

    Parameters
    ----------
    path : path-like
        Target file (replaced atomically).
    heatmap : Heatmap
        Patches with a probability are written, in row-major order.
    extra_columns : mapping, optional
        Constant columns appended to every row (e.g. ``{"slide": name}``); text is made
        formula-safe.
    patch_heatmap : Heatmap, optional
        The CNN's own probabilities when ``heatmap`` holds decision probabilities of a
        context stage; None when they are the same.

    Returns
    -------
    pathlib.Path
        The written file. Columns: ``x,y,width,height,probability,col,row,patch_probability``
        (level-0 ints, the patch footprint clipped at the slide edge; probabilities with 6
        decimals), then ``extra_columns``.
    """
    grid = heatmap.grid
    probs = heatmap.probabilities
    patch_probs = probs if patch_heatmap is None else patch_heatmap.probabilities
    if patch_probs.shape != probs.shape:
        raise ValueError("patch_heatmap must be on the same grid as heatmap")
    rows_idx, cols_idx = np.nonzero(~np.isnan(probs))

    xs, ys = grid.l0_edges()

    def rows() -> Iterable[Sequence[object]]:
        for r, c in zip(rows_idx.tolist(), cols_idx.tolist(), strict=True):
            x, y = int(xs[c]), int(ys[r])
            w, h = int(xs[c + 1]) - x, int(ys[r + 1]) - y
            yield (x, y, w, h, float(probs[r, c]), c, r, float(patch_probs[r, c]))

    return _write_csv(path, PATCHES_HEADER, rows(), extra_columns)


def write_regions_csv(
    path: Path | str,
    regions: Sequence[Region],
    extra_columns: Mapping[str, object] | None = None,
) -> Path:
    """Write one row per region with the :data:`REGIONS_HEADER` columns (level-0 px, mm²)."""
    rows = (
        (
            r.region_id,
            r.n_patches,
            r.area_mm2,
            r.l0_x,
            r.l0_y,
            r.l0_width,
            r.l0_height,
            round(r.l0_centroid_x, 1),
            round(r.l0_centroid_y, 1),
            r.max_probability,
            r.mean_probability,
        )
        for r in regions
    )
    return _write_csv(path, REGIONS_HEADER, rows, extra_columns)


def _region_feature(region: Region, grid: PatchGrid) -> dict[str, Any]:
    polygons = region_polygons(region, grid)
    if len(polygons) == 1:
        geometry: dict[str, Any] = {"type": "Polygon", "coordinates": polygons[0]}
    else:
        geometry = {"type": "MultiPolygon", "coordinates": polygons}
    key = f"{region.region_id}:{region.l0_x},{region.l0_y},{region.n_patches}"
    return {
        "type": "Feature",
        "id": str(uuid.uuid5(_FEATURE_NAMESPACE, key)),
        "geometry": geometry,
        "properties": {
            "objectType": "annotation",
            "name": f"IDC region {region.region_id}",
            "classification": {"name": "IDC", "color": list(IDC_CLASS_COLOR)},
            "isLocked": False,
            "measurements": {
                "region_id": region.region_id,
                "n_patches": region.n_patches,
                "area_mm2": round(region.area_mm2, 6),
                "max_probability": round(region.max_probability, 6),
                "mean_probability": round(region.mean_probability, 6),
            },
        },
    }


def write_geojson(path: Path | str, regions: Sequence[Region], heatmap: Heatmap) -> Path:
    """Write the regions as a QuPath-compatible GeoJSON ``FeatureCollection``.

    Each region becomes an annotation classified "IDC" whose ``Polygon`` (or
    ``MultiPolygon`` when its patches touch only at corners) traces the union of its patch
    squares in level-0 pixels, holes included.
    """
    collection = {
        "type": "FeatureCollection",
        "features": [_region_feature(r, heatmap.grid) for r in regions],
    }
    text = json.dumps(collection, separators=(",", ":"))
    return _atomic_write(path, lambda fh: _write_text(fh, text))


def write_provenance(path: Path | str, info: Mapping[str, Any]) -> Path:
    """Write ``info`` (app version, model, threshold, µm/px, date, slide, counts) as JSON."""
    try:
        text = json.dumps(dict(info), indent=2, sort_keys=True, default=str, allow_nan=False)
    except ValueError as exc:
        raise ExportError(f"cannot write {path}: {exc}") from exc
    return _atomic_write(path, lambda fh: _write_text(fh, text + "\n"))
