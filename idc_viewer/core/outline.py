"""The outline of a region's patch squares as GeoJSON polygons (holes and pinches handled)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from idc_viewer.core.patches import PatchGrid
from idc_viewer.core.regions import Region

__all__ = ["region_polygons"]


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
    xs, ys = grid.l0_edges()
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
