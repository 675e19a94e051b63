"""A procedurally generated slide: H&E-like tissue blobs on white, pixels made on demand.

Any size costs memory proportional to the region read, so edge cases and the
100,000 x 100,000 px memory benchmark need no file. A pixel depends only on its absolute
position, so overlapping reads agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

import numpy as np

from idc_viewer.core.pixels import MIN_LEVEL_SIDE, white
from idc_viewer.core.scale import check_user_mpp
from idc_viewer.core.slide import Slide, SlideError, SlideInfo

_U32 = np.uint32


def _hash01(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Deterministic uniform [0, 1) noise per integer coordinate pair (broadcasting)."""
    with np.errstate(over="ignore"):
        h = ix.astype(_U32) * _U32(0x9E3779B1) ^ iy.astype(_U32) * _U32(0x85EBCA77)
        h = h ^ _U32(salt & 0xFFFFFFFF)
        h ^= h >> _U32(15)
        h *= _U32(0x2C1B3C6D)
        h ^= h >> _U32(12)
        h *= _U32(0x297A2D39)
        h ^= h >> _U32(15)
    return h.astype(np.float32) / np.float32(2**32)


@dataclass(frozen=True)
class Blob:
    """An elliptical piece of tissue in level-0 pixels (``angle`` in radians)."""

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float


_STYLE_COLOURS = {
    # background, stroma (eosin), nucleus (haematoxylin)
    "he": ((243.0, 242.0, 245.0), (232.0, 158.0, 196.0), (98.0, 58.0, 148.0)),
    "fluorescence": ((4.0, 5.0, 9.0), (14.0, 22.0, 70.0), (50.0, 80.0, 235.0)),
}


class SyntheticSlide(Slide):
    """A procedural slide: elliptical tissue blobs on glass, pixels generated on demand.

    Memory is O(region read) whatever the slide size, so it stands in for a
    100,000 x 100,000 px slide. Pixel values depend only on the absolute level pixel, so
    overlapping reads agree. Levels have downsamples 4**k down to about 512 px.

    Parameters
    ----------
    l0_width, l0_height : int
        Level-0 size in pixels.
    mpp : float or None
        µm per level-0 pixel (``None`` simulates a slide without scale).
    seed : int
        Chooses the blobs and the noise.
    n_blobs : int
        Number of tissue blobs; 0 gives empty glass.
    blobs : sequence of Blob, optional
        Explicit blobs (overrides ``seed``/``n_blobs`` placement).
    style : {"he", "fluorescence"}
        Brightfield H&E colours, or dark background with blue nuclei.
    objective_power : float, optional
        Reported objective magnification.
    """

    def __init__(
        self,
        l0_width: int,
        l0_height: int,
        mpp: float | None = 0.25,
        *,
        seed: int = 0,
        n_blobs: int = 5,
        blobs: Sequence[Blob] | None = None,
        style: Literal["he", "fluorescence"] = "he",
        objective_power: float | None = None,
        path: str = "synthetic",
    ) -> None:
        if l0_width <= 0 or l0_height <= 0:
            raise SlideError(f"cannot open {path}: empty size {l0_width}x{l0_height}")
        if mpp is not None:
            mpp = check_user_mpp(mpp)
        self._seed = seed
        self._style = style
        if blobs is None:
            rng = np.random.default_rng(seed)
            side = min(l0_width, l0_height)
            blobs = [
                Blob(
                    cx=float(rng.uniform(0.2, 0.8) * l0_width),
                    cy=float(rng.uniform(0.2, 0.8) * l0_height),
                    rx=float(rng.uniform(0.06, 0.16) * side),
                    ry=float(rng.uniform(0.06, 0.16) * side),
                    angle=float(rng.uniform(0, math.pi)),
                )
                for _ in range(n_blobs)
            ]
        self._blobs = tuple(blobs)
        dims = [(l0_width, l0_height)]
        while max(dims[-1]) > MIN_LEVEL_SIDE and min(dims[-1]) >= 4:
            ds = 4 ** len(dims)
            dims.append((math.ceil(l0_width / ds), math.ceil(l0_height / ds)))
        source = "user" if mpp is not None else None
        super().__init__(
            SlideInfo(
                path=path,
                format="synthetic",
                l0_width=l0_width,
                l0_height=l0_height,
                level_count=len(dims),
                level_dimensions=tuple(dims),
                level_downsamples=tuple(float(4**k) for k in range(len(dims))),
                mpp=mpp,
                mpp_source=source,
                objective_power=objective_power,
                properties=MappingProxyType({}),
            )
        )

    @property
    def blobs(self) -> tuple[Blob, ...]:
        """The tissue blobs in level-0 pixels."""
        return self._blobs

    def is_tissue(self, l0_x: np.ndarray, l0_y: np.ndarray) -> np.ndarray:
        """Ground truth: whether level-0 points lie in tissue.

        ``l0_x`` and ``l0_y`` broadcast together (e.g. a row and a column of coordinates).
        """
        x = np.asarray(l0_x, dtype=np.float32)
        y = np.asarray(l0_y, dtype=np.float32)
        inside = np.zeros(np.broadcast_shapes(x.shape, y.shape), dtype=bool)
        for b in self._blobs:
            c, s = math.cos(b.angle), math.sin(b.angle)
            r = max(b.rx, b.ry)
            # Skip blobs whose bounding square misses every point (most reads of a big slide).
            if (
                x.size == 0
                or y.size == 0
                or x.max() < b.cx - r
                or x.min() > b.cx + r
                or y.max() < b.cy - r
                or y.min() > b.cy + r
            ):
                continue
            dx, dy = x - np.float32(b.cx), y - np.float32(b.cy)
            u = dx * np.float32(c / b.rx) + dy * np.float32(s / b.rx)
            v = dy * np.float32(c / b.ry) - dx * np.float32(s / b.ry)
            inside |= u * u + v * v <= 1.0
        inside &= (x >= 0) & (x < self._info.l0_width) & (y >= 0) & (y < self._info.l0_height)
        return inside

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """Generate the region's pixels (see :meth:`Slide.read_region`)."""
        if lvl_w <= 0 or lvl_h <= 0:
            return white(lvl_h, lvl_w)
        ds = self._info.level_downsamples[level]
        x0, y0 = round(l0_x / ds), round(l0_y / ds)
        ix = np.arange(x0, x0 + lvl_w, dtype=np.int64)[None, :]
        iy = np.arange(y0, y0 + lvl_h, dtype=np.int64)[:, None]
        # Pixel centres in level-0 coordinates (float32 keeps temporaries small).
        px = ((ix + 0.5) * ds).astype(np.float32)
        py = ((iy + 0.5) * ds).astype(np.float32)
        tissue = self.is_tissue(px, py)
        in_slide = (px < self._info.l0_width) & (py < self._info.l0_height) & (px >= 0) & (py >= 0)

        back, stroma, nucleus = (np.array(c, dtype=np.float32) for c in _STYLE_COLOURS[self._style])
        # Nuclei: one candidate per ~12 µm cell, drawn while a pixel is finer than half a cell;
        # coarser levels blend the average nuclear density instead (no aliasing).
        mpp = self._info.mpp or 0.25
        cell = 12.0 / mpp
        if not tissue.any():
            frac = np.zeros(tissue.shape, dtype=np.float32)
        elif ds < cell / 2:
            gx, gy = px / np.float32(cell), py / np.float32(cell)
            cx, cy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
            present = _hash01(cx, cy, self._seed + 1) < 0.45
            ox = _hash01(cx, cy, self._seed + 2) * np.float32(0.4) + np.float32(0.3)
            oy = _hash01(cx, cy, self._seed + 3) * np.float32(0.4) + np.float32(0.3)
            d2 = (gx - cx - ox) ** 2 + (gy - cy - oy) ** 2
            frac = (present & (d2 < 0.3**2)).astype(np.float32)
        else:
            frac = np.full(tissue.shape, 0.45 * math.pi * 0.3**2, dtype=np.float32)
        tissue_rgb = stroma + frac[..., None] * (nucleus - stroma)
        noise = (_hash01(ix, iy, self._seed * 31 + level + 7) - np.float32(0.5))[..., None]
        noise *= np.float32(16.0)
        rgb = np.where(tissue[..., None], tissue_rgb + noise, back + noise * np.float32(0.25))
        np.clip(rgb, 0, 255, out=rgb)
        out = rgb.astype(np.uint8)
        out[~in_slide] = 255
        return out

    def fingerprint_bytes(self) -> bytes:
        """The slide's recipe: size, µm/px, seed, style and blobs."""
        i = self._info
        return repr((i.l0_width, i.l0_height, i.mpp, self._seed, self._style, self._blobs)).encode()
