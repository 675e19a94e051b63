"""Export an analysis: suspicious regions, per-patch CSV, QuPath GeoJSON and provenance.

Every writer is atomic: it writes a hidden temporary file beside the target and moves it
into place with :func:`os.replace`, so a reader never sees half a file and a full disk leaves
no partial output (only an :class:`ExportError` with a one-line reason). :func:`export_all`
replaces a slide's four files as one set (:mod:`idc_viewer.core.fileset`): all old or all new,
the provenance naming each other file's SHA-256.

Coordinates are level-0 pixels of the slide (``l0_``), the frame QuPath and OpenSlide use.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from idc_viewer.core import fileset
from idc_viewer.core.errors import IdcViewerError
from idc_viewer.core.heatmap import Heatmap

if TYPE_CHECKING:
    from idc_viewer.core.patches import PatchGrid

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


@dataclass(frozen=True)
class Region:
    """A connected group of flagged patches.

    Attributes
    ----------
    region_id : int
        1-based rank by ``max_probability`` (1 = most suspicious).
    n_patches : int
        Number of patches in the region.
    area_mm2 : float
        Tissue area of the patches in mm², footprints clipped at the slide edge.
    l0_x, l0_y, l0_width, l0_height : int
        Bounding box of the patch footprints, level-0 pixels.
    l0_centroid_x, l0_centroid_y : float
        Area-weighted centre of the patch footprints, level-0 pixels.
    max_probability, mean_probability : float
        Over the region's patches.
    cells : tuple of (col, row)
        The region's grid cells, row-major order.
    """

    region_id: int
    n_patches: int
    area_mm2: float
    l0_x: int
    l0_y: int
    l0_width: int
    l0_height: int
    l0_centroid_x: float
    l0_centroid_y: float
    max_probability: float
    mean_probability: float
    cells: tuple[tuple[int, int], ...] = field(repr=False)


# --------------------------------------------------------------------------- regions


def _edges_l0(grid: PatchGrid) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Level-0 coordinate of every cell edge: ``xs[c]`` is the left edge of column c.

    Taken from ``grid.l0_rect`` so exported outlines match the footprints exactly, and
    clipped to the slide so edge patches do not reach past it.
    """
    xs = [grid.l0_rect(c, 0)[0] for c in range(grid.cols)]
    x0, _, w, _ = grid.l0_rect(grid.cols - 1, 0)
    xs.append(x0 + w)
    ys = [grid.l0_rect(0, r)[1] for r in range(grid.rows)]
    _, y0, _, h = grid.l0_rect(0, grid.rows - 1)
    ys.append(y0 + h)
    x_arr = np.minimum(np.asarray(xs, dtype=np.int64), int(grid.l0_width))
    y_arr = np.minimum(np.asarray(ys, dtype=np.int64), int(grid.l0_height))
    return x_arr, y_arr


def find_regions(heatmap: Heatmap, threshold: float) -> list[Region]:
    """Group flagged patches into 8-connected regions.

    Parameters
    ----------
    heatmap : Heatmap
        Probabilities per patch (``NaN`` cells are never flagged).
    threshold : float
        A patch is flagged when its probability is at or above this value.

    Returns
    -------
    list of Region
        Sorted by ``max_probability`` descending (ties: larger region first, then top-left
        first), ``region_id`` 1..n in that order.

    Notes
    -----
    ``area_mm2`` sums each patch's level-0 footprint clipped at the slide edge, so interior
    patches count ``(l0_patch_size * slide_mpp / 1000) ** 2`` each and edge patches less.
    """
    grid = heatmap.grid
    mask = heatmap.flagged_mask(threshold).astype(np.uint8)
    if not mask.any():
        return []
    n_labels, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    # Exact (float) footprint per column/row, clipped at the slide edge, in level-0 px.
    size = float(grid.l0_patch_size)
    col_lo = np.arange(grid.cols) * size
    row_lo = np.arange(grid.rows) * size
    col_w = np.clip(np.minimum(col_lo + size, grid.l0_width) - col_lo, 0.0, None)
    row_h = np.clip(np.minimum(row_lo + size, grid.l0_height) - row_lo, 0.0, None)
    xs, ys = _edges_l0(grid)
    mm2_per_px = (float(grid.slide_mpp) / 1000.0) ** 2
    probs = heatmap.probabilities

    found = []
    for label in range(1, n_labels):
        x, y, w, h = (int(v) for v in stats[label, :4])
        rows, cols = np.nonzero(labels[y : y + h, x : x + w] == label)
        rows += y
        cols += x
        p = probs[rows, cols].astype(np.float64)
        area_px = col_w[cols] * row_h[rows]
        total = float(area_px.sum())
        cx = col_lo[cols] + col_w[cols] / 2.0
        cy = row_lo[rows] + row_h[rows] / 2.0
        weights = area_px if total > 0 else np.ones_like(area_px)
        found.append(
            Region(
                region_id=0,  # numbered after sorting
                n_patches=len(rows),
                area_mm2=total * mm2_per_px,
                l0_x=int(xs[x]),
                l0_y=int(ys[y]),
                l0_width=int(xs[x + w] - xs[x]),
                l0_height=int(ys[y + h] - ys[y]),
                l0_centroid_x=float(np.average(cx, weights=weights)),
                l0_centroid_y=float(np.average(cy, weights=weights)),
                max_probability=float(p.max()),
                mean_probability=float(p.mean()),
                cells=tuple(zip(cols.tolist(), rows.tolist(), strict=True)),
            )
        )
    found.sort(key=lambda r: (-r.max_probability, -r.n_patches, r.l0_y, r.l0_x))
    return [dataclasses.replace(r, region_id=i) for i, r in enumerate(found, start=1)]


# --------------------------------------------------------------------------- outlines


def _trace_rings(mask: NDArray[np.bool_]) -> list[list[tuple[int, int]]]:
    """Trace the outline of the union of ``mask``'s unit squares, holes included.

    Returns closed rings of lattice points ``(x, y)`` (cell-edge coordinates, y down) with
    only corner vertices. Outer rings have positive shoelace area, holes negative. Where two
    cells touch only at a corner the rings are kept apart (a pinch is never crossed), so
    every ring stays simple and belongs to a single 4-connected group of cells.
    """
    rows, cols = mask.shape
    padded = np.zeros((rows + 2, cols + 2), dtype=bool)
    padded[1:-1, 1:-1] = mask
    out: dict[tuple[int, int], list[tuple[int, int]]] = {}
    # Walk each filled cell clockwise on screen (interior on the right); keep boundary edges.
    for r, c in zip(*np.nonzero(mask), strict=True):
        pr, pc = r + 1, c + 1
        if not padded[pr - 1, pc]:
            out.setdefault((c, r), []).append((c + 1, r))
        if not padded[pr, pc + 1]:
            out.setdefault((c + 1, r), []).append((c + 1, r + 1))
        if not padded[pr + 1, pc]:
            out.setdefault((c + 1, r + 1), []).append((c, r + 1))
        if not padded[pr, pc - 1]:
            out.setdefault((c, r + 1), []).append((c, r))

    rings = []
    while out:
        start = next(iter(out))
        ring = [start]
        prev, cur = start, out[start].pop()
        if not out[start]:
            del out[start]
        while cur != start:
            ring.append(cur)
            dx, dy = cur[0] - prev[0], cur[1] - prev[1]
            options = out[cur]
            # Prefer a right turn, then straight, then left: this keeps pinched rings apart.
            for ndx, ndy in ((-dy, dx), (dx, dy), (dy, -dx)):
                nxt = (cur[0] + ndx, cur[1] + ndy)
                if nxt in options:
                    break
            options.remove(nxt)
            if not options:
                del out[cur]
            prev, cur = cur, nxt
        rings.append(_corners_only(ring))
    return rings


def _corners_only(ring: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Drop vertices in the middle of straight runs and close the ring."""
    n = len(ring)
    keep = []
    for i, (x, y) in enumerate(ring):
        px, py = ring[i - 1]
        nx, ny = ring[(i + 1) % n]
        if (x - px) * (ny - y) - (y - py) * (nx - x) != 0:
            keep.append((x, y))
    keep.append(keep[0])
    return keep


def _signed_area(ring: Sequence[tuple[int, int]]) -> float:
    return 0.5 * sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in itertools.pairwise(ring))


def region_polygons(region: Region, grid: PatchGrid) -> list[list[list[list[int]]]]:
    """Outline of a region's patch squares as GeoJSON polygon coordinates.

    Parameters
    ----------
    region : Region
        From :func:`find_regions`.
    grid : PatchGrid
        The grid the region's cells refer to.

    Returns
    -------
    list
        One polygon per 4-connected part of the region, each ``[outer, *holes]`` with rings
        of ``[l0_x, l0_y]`` integer points, closed, outer counter-clockwise and holes
        clockwise in x-right/y-down coordinates read as plain numbers (RFC 7946 winding).
    """
    cols = np.array([c for c, _ in region.cells])
    rows = np.array([r for _, r in region.cells])
    c0, r0 = int(cols.min()), int(rows.min())
    mask = np.zeros((int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1), dtype=bool)
    mask[rows - r0, cols - c0] = True
    # Each ring lies on one 4-connected part (see _trace_rings); group rings by that part.
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    parts = np.asarray(labels, dtype=np.int32)
    xs, ys = _edges_l0(grid)
    outers: dict[int, list[list[int]]] = {}
    holes: dict[int, list[list[list[int]]]] = {}
    for ring in _trace_rings(mask):
        part = _ring_part(ring, parts)
        coords = [[int(xs[x + c0]), int(ys[y + r0])] for x, y in ring]
        if _signed_area(ring) > 0:
            outers[part] = coords
        else:
            holes.setdefault(part, []).append(coords)
    return [[outers[p], *holes.get(p, [])] for p in sorted(outers)]


def _ring_part(ring: Sequence[tuple[int, int]], parts: NDArray[np.int32]) -> int:
    """Label of the filled cell to the right of the ring's first edge."""
    (x0, y0), (x1, y1) = ring[0], ring[1]
    dx, dy = int(np.sign(x1 - x0)), int(np.sign(y1 - y0))
    # The cell right of a directed unit edge starting at (x0, y0), y down.
    if dx > 0:
        col, row = x0, y0
    elif dy > 0:
        col, row = x0 - 1, y0
    elif dx < 0:
        col, row = x0 - 1, y0 - 1
    else:
        col, row = x0, y0 - 1
    return int(parts[row, col])


# --------------------------------------------------------------------------- writers


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

    xs, ys = _edges_l0(grid)

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
    except fileset.FileSetError as exc:
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
        return fileset.recover(out_dir, SET_SUFFIXES)
    except fileset.FileSetError as exc:
        raise ExportError(str(exc)) from exc


def verify_export(out_dir: Path | str, stem: str) -> list[str]:
    """What is wrong with the set ``stem`` in ``out_dir`` against its seal (empty: all good)."""
    return fileset.verify(out_dir, stem, SET_SUFFIXES[0])
