"""A slide held in memory: one array per pyramid level (tests, plain images, training)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import MappingProxyType

import numpy as np

from idc_viewer.core.pixels import to_rgb_uint8, white
from idc_viewer.core.scale import check_user_mpp
from idc_viewer.core.slide import Slide, SlideError, SlideInfo

__all__ = ["ArraySlide"]


class ArraySlide(Slide):
    """A slide held in memory as one array per pyramid level.

    Parameters
    ----------
    levels : list of numpy.ndarray
        Level 0 first; each ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``; coarser levels smaller.
        Downsamples are the width ratios to level 0, as OpenSlide reports them.
    mpp : float or None
        µm per level-0 pixel.
    path : str
        Name shown to the user and stored in :attr:`SlideInfo.path`.
    format : str
        Value of :attr:`SlideInfo.format`.
    mpp_source : str, optional
        Defaults to ``"user"`` when ``mpp`` is given.
    objective_power : float, optional
        Reported objective magnification.
    """

    def __init__(
        self,
        levels: Sequence[np.ndarray],
        mpp: float | None,
        path: str = "memory",
        *,
        format: str = "array",  # mirrors SlideInfo.format
        mpp_source: str | None = None,
        objective_power: float | None = None,
    ) -> None:
        if not levels:
            raise SlideError(f"cannot open {path}: no image levels")
        self._levels = [to_rgb_uint8(level) for level in levels]
        for level in self._levels:
            level.setflags(write=False)  # shared between reader threads
        h0, w0 = self._levels[0].shape[:2]
        if h0 == 0 or w0 == 0:
            raise SlideError(f"cannot open {path}: the image is empty")
        if mpp is not None:
            mpp = check_user_mpp(mpp)
        dims = tuple((int(a.shape[1]), int(a.shape[0])) for a in self._levels)
        downsamples = tuple((w0 / w + h0 / h) / 2 for w, h in dims)
        super().__init__(
            SlideInfo(
                path=path,
                format=format,
                l0_width=w0,
                l0_height=h0,
                level_count=len(dims),
                level_dimensions=dims,
                level_downsamples=downsamples,
                mpp=mpp,
                mpp_source=(mpp_source or "user") if mpp is not None else None,
                objective_power=objective_power,
                properties=MappingProxyType({}),
            )
        )

    def read_region(self, l0_x: int, l0_y: int, level: int, lvl_w: int, lvl_h: int) -> np.ndarray:
        """Read a region of the arrays (see :meth:`Slide.read_region`)."""
        arr = self._levels[level]
        ds = self._info.level_downsamples[level]
        # round() inverts l0 = round(lvl * ds), so level pixels stay put across reads.
        x0 = round(l0_x / ds)
        y0 = round(l0_y / ds)
        out = white(lvl_h, lvl_w)
        h, w = arr.shape[:2]
        sx0, sy0 = max(x0, 0), max(y0, 0)
        sx1, sy1 = min(x0 + lvl_w, w), min(y0 + lvl_h, h)
        if sx1 > sx0 and sy1 > sy0:
            out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = arr[sy0:sy1, sx0:sx1]
        return out

    def fingerprint_bytes(self) -> bytes:
        """Hash and shape of the smallest level."""
        smallest = self._levels[-1]
        return hashlib.sha256(smallest.tobytes()).digest() + repr(smallest.shape).encode()
