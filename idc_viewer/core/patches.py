"""The patch grid a model sees, and fast patch reads.

A patch covers ``patch_px * model_mpp`` µm (50 px at 4.0 µm/px = 200 µm, as in the IDC
dataset), i.e. ``l0_patch_size = patch_px * model_mpp / slide_mpp`` level-0 pixels. The grid is
anchored at level-0 (0, 0); a cell's rectangle is the floor of the float grid, so neighbouring
cells tile the slide without gaps or overlaps.

Edge policy: partial patches at the right and bottom edges are included (``cols = ceil(...)``)
and the part outside the slide reads as white, like the IDC dataset which keeps its smaller
edge patches. Tissue detection normally marks such mostly-white patches as background.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from idc_viewer.core.slide import MissingMppError, Slide, SlideError, SlideInfo

__all__ = [
    "DEFAULT_PATCH_MPP",
    "DEFAULT_PATCH_PX",
    "MAX_GRID_CELLS",
    "Cell",
    "GridTooLargeError",
    "PatchGrid",
    "iter_patch_batches",
    "make_grid",
    "order_for_reading",
    "read_patch",
]

#: The IDC dataset's patches, and the paper's model input: 50 x 50 px at about 4.0 µm/px
#: (2.5x scans), 200 µm of tissue.
DEFAULT_PATCH_PX = 50
DEFAULT_PATCH_MPP = 4.0

#: A grid cell as ``(col, row)``.
Cell = tuple[int, int]

#: Largest grid accepted: 4,000 x 4,000 patches is a 200,000 px slide at the model's own 4 µm/px
#: (80 cm of tissue); beyond it the µm/px is wrong, and masks and heatmaps would take gigabytes.
MAX_GRID_CELLS = 1 << 24


class GridTooLargeError(SlideError):
    """The slide's µm/px makes more patches than any real slide has."""


# Target side, in read-level pixels, of one grouped region read (STACK-NOTES: ~1024 px reads
# sliced into patches are ~8x faster than one read per patch).
_BLOCK_LVL_PX = 1024
# A level up to 1% coarser than the model's scale is accepted: pyramids store downsamples such
# as 2.0005 or 4.016, and resampling by 1% is invisible to the model.
_LEVEL_TOLERANCE = 1.01


@dataclass(frozen=True)
class PatchGrid:
    """Model patches laid over a slide.

    Attributes
    ----------
    l0_patch_size : float
        Side of a patch in level-0 pixels (``patch_px * model_mpp / slide_mpp``).
    cols, rows : int
        Grid size, including partial edge patches.
    patch_px : int
        Side of the model's input patch in pixels.
    model_mpp, slide_mpp : float
        µm per pixel of the model's patches and of the slide's level 0.
    read_level : int
        Coarsest pyramid level at least as fine as ``model_mpp``.
    read_downsample : float
        Downsample of ``read_level``.
    l0_width, l0_height : int
        Level-0 size of the slide.
    """

    l0_patch_size: float
    cols: int
    rows: int
    patch_px: int
    model_mpp: float
    slide_mpp: float
    read_level: int
    l0_width: int
    l0_height: int
    read_downsample: float = 1.0

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``, the shape of masks and heatmaps over this grid."""
        return (self.rows, self.cols)

    def _edge(self, i: int) -> int:
        return math.floor(i * self.l0_patch_size + 1e-9)

    def l0_rect(self, col: int, row: int) -> tuple[int, int, int, int]:
        """Return ``(l0_x, l0_y, l0_w, l0_h)`` of a cell; edge cells may extend past the slide."""
        x0, x1 = self._edge(col), self._edge(col + 1)
        y0, y1 = self._edge(row), self._edge(row + 1)
        return (x0, y0, x1 - x0, y1 - y0)

    def l0_edges(self, clip_to_slide: bool = True) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """Level-0 x edges (``cols + 1``) and y edges (``rows + 1``) of the cells.

        ``xs[c]`` is the left edge of column ``c`` and ``xs[c + 1]`` its right edge, exactly
        as :meth:`l0_rect`. With ``clip_to_slide`` (the footprints on the slide: exports,
        regions, the overlay) the last edges stop at the slide's size; without it they keep
        the whole last patch, part of which lies outside the slide (what was read, as white).
        """
        xs = np.asarray([self._edge(i) for i in range(self.cols + 1)], dtype=np.int64)
        ys = np.asarray([self._edge(i) for i in range(self.rows + 1)], dtype=np.int64)
        if clip_to_slide:
            xs = np.minimum(xs, int(self.l0_width))
            ys = np.minimum(ys, int(self.l0_height))
        return xs, ys

    def lvl_span(self, index: int) -> tuple[int, int]:
        """Return ``[start, stop)`` read-level pixels of column/row ``index`` along one axis.

        Defined on absolute read-level coordinates so single and grouped reads agree.
        """
        ds = self.read_downsample
        start = round(self._edge(index) / ds)
        stop = max(start + 1, round(self._edge(index + 1) / ds))
        return start, stop

    def cell_at(self, l0_x: float, l0_y: float) -> Cell | None:
        """Return ``(col, row)`` of the cell containing a level-0 point, or ``None`` if outside."""
        col = self._index_at(l0_x)
        row = self._index_at(l0_y)
        if 0 <= col < self.cols and 0 <= row < self.rows:
            return (col, row)
        return None

    def _index_at(self, v: float) -> int:
        if v < 0:
            return -1
        i = int(v // self.l0_patch_size)
        # Match the floored cell edges exactly.
        if self._edge(i + 1) <= v:
            i += 1
        elif self._edge(i) > v:
            i -= 1
        return i

    def cells(self) -> Iterator[Cell]:
        """All cells, row by row."""
        for row in range(self.rows):
            for col in range(self.cols):
                yield (col, row)


def make_grid(
    info: SlideInfo, patch_px: int = DEFAULT_PATCH_PX, model_mpp: float = DEFAULT_PATCH_MPP
) -> PatchGrid:
    """Build the patch grid of a slide for a model.

    Parameters
    ----------
    info : SlideInfo
        The slide; must have ``mpp``.
    patch_px : int
        Model input side in pixels.
    model_mpp : float
        µm per pixel of the model's patches.

    Raises
    ------
    MissingMppError
        The slide has no µm/px.
    GridTooLargeError
        The grid would exceed :data:`MAX_GRID_CELLS` (an implausible µm/px).
    """
    if info.mpp is None:
        raise MissingMppError(
            f"{info.path}: the slide has no µm/px in its metadata; enter the scan resolution"
        )
    if patch_px <= 0 or not model_mpp > 0:
        raise ValueError(f"invalid patch_px={patch_px} or model_mpp={model_mpp}")
    l0_patch = patch_px * model_mpp / info.mpp
    cols = max(1, math.ceil(info.l0_width / l0_patch - 1e-9))
    rows = max(1, math.ceil(info.l0_height / l0_patch - 1e-9))
    if cols * rows > MAX_GRID_CELLS:
        raise GridTooLargeError(
            f"{info.path}: at {info.mpp:g} µm/px a {patch_px * model_mpp:g} µm patch is only "
            f"{l0_patch:.3g} px, a grid of {cols:,} x {rows:,} patches (more than "
            f"{MAX_GRID_CELLS:,}): check the µm per pixel"
        )
    wanted_ds = model_mpp / info.mpp * _LEVEL_TOLERANCE
    level = 0
    for i, ds in enumerate(info.level_downsamples):
        if ds <= wanted_ds:
            level = i
    return PatchGrid(
        l0_patch_size=l0_patch,
        cols=cols,
        rows=rows,
        patch_px=patch_px,
        model_mpp=model_mpp,
        slide_mpp=info.mpp,
        read_level=level,
        l0_width=info.l0_width,
        l0_height=info.l0_height,
        read_downsample=info.level_downsamples[level],
    )


def _to_patch(region: np.ndarray, patch_px: int) -> np.ndarray:
    if region.shape[0] == patch_px and region.shape[1] == patch_px:
        return np.ascontiguousarray(region)
    return cv2.resize(region, (patch_px, patch_px), interpolation=cv2.INTER_AREA)


def read_patch(slide: Slide, grid: PatchGrid, col: int, row: int) -> np.ndarray:
    """Read one model patch.

    Reads the cell from ``grid.read_level`` and resamples it to ``patch_px`` with
    ``cv2.INTER_AREA``.

    Returns
    -------
    numpy.ndarray
        ``(patch_px, patch_px, 3)`` uint8 RGB.
    """
    x0, x1 = grid.lvl_span(col)
    y0, y1 = grid.lvl_span(row)
    ds = grid.read_downsample
    region = slide.read_region(round(x0 * ds), round(y0 * ds), grid.read_level, x1 - x0, y1 - y0)
    return _to_patch(region, grid.patch_px)


def _block_cells(grid: PatchGrid) -> int:
    """Cells per block side so that one grouped read is about ``_BLOCK_LVL_PX`` pixels."""
    lvl_patch = grid.l0_patch_size / grid.read_downsample
    return max(1, int(_BLOCK_LVL_PX // max(lvl_patch, 1.0)))


def order_for_reading(grid: PatchGrid, cells: Iterable[Cell]) -> list[Cell]:
    """Sort cells block by block so that batches share grouped region reads."""
    n = _block_cells(grid)
    return sorted(cells, key=lambda c: (c[1] // n, c[0] // n, c[1], c[0]))


def _read_group(slide: Slide, grid: PatchGrid, group: Sequence[Cell]) -> list[np.ndarray]:
    """Read cells with one region read over their bounding box and slice it."""
    cols = [c for c, _ in group]
    rows = [r for _, r in group]
    bx0, _ = grid.lvl_span(min(cols))
    _, bx1 = grid.lvl_span(max(cols))
    by0, _ = grid.lvl_span(min(rows))
    _, by1 = grid.lvl_span(max(rows))
    ds = grid.read_downsample
    region = slide.read_region(
        round(bx0 * ds), round(by0 * ds), grid.read_level, bx1 - bx0, by1 - by0
    )
    out = []
    for col, row in group:
        x0, x1 = grid.lvl_span(col)
        y0, y1 = grid.lvl_span(row)
        out.append(_to_patch(region[y0 - by0 : y1 - by0, x0 - bx0 : x1 - bx0], grid.patch_px))
    return out


def iter_patch_batches(
    slide: Slide, grid: PatchGrid, cells: Iterable[Cell], batch_size: int
) -> Iterator[tuple[list[Cell], np.ndarray]]:
    """Yield patches in batches, reading neighbouring cells together.

    Cells of a batch that fall in the same block of about 1024 x 1024 read-level pixels are
    read with one region read. Batches keep the order of ``cells``; pass cells through
    :func:`order_for_reading` first for the fewest reads.

    Parameters
    ----------
    slide : Slide
    grid : PatchGrid
    cells : iterable of (col, row)
    batch_size : int
        Maximum patches per batch.

    Yields
    ------
    (list of (col, row), numpy.ndarray)
        The batch's cells and their patches, ``(N, patch_px, patch_px, 3)`` uint8.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    n = _block_cells(grid)
    batch: list[Cell] = []
    for cell in cells:
        batch.append((int(cell[0]), int(cell[1])))
        if len(batch) == batch_size:
            yield batch, _read_batch(slide, grid, batch, n)
            batch = []
    if batch:
        yield batch, _read_batch(slide, grid, batch, n)


def _read_batch(slide: Slide, grid: PatchGrid, batch: list[Cell], block: int) -> np.ndarray:
    groups: dict[Cell, list[int]] = defaultdict(list)
    for i, (col, row) in enumerate(batch):
        groups[(col // block, row // block)].append(i)
    out = np.empty((len(batch), grid.patch_px, grid.patch_px, 3), dtype=np.uint8)
    for indices in groups.values():
        patches = _read_group(slide, grid, [batch[i] for i in indices])
        for i, patch in zip(indices, patches, strict=True):
            out[i] = patch
    return out
